"""Pixels: the docked widgets with the prediction overlay render (a shown viewer under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

from _widget_data import rocking_scan
from napari_weakbeam._napari._session import get_session

pytestmark = pytest.mark.gui


def test_docked_widgets_and_overlay_are_not_blank(make_napari_viewer, qtbot):
    from napari_weakbeam.core.classification.classifier import build_classifier

    data, angles, truth = rocking_scan()
    viewer = make_napari_viewer(show=True)
    viewer.add_image(data, name="scan", metadata={"angles": angles})
    widgets = {}
    for name in ("Annotate", "Train", "Predictions", "Rocking curve"):
        _, widgets[name] = viewer.window.add_plugin_dock_widget("napari-weakbeam", name)
    widgets["Annotate"].start_annotating("scan", 32)
    session = get_session(viewer)
    session.annotation_array()[0, 0] = truth[0]
    session.require_annotations().refresh()
    session.set_classifier(build_classifier("wbnet", 32), "untrained")
    predict = widgets["Predictions"]
    qtbot.waitUntil(lambda: predict.n_frame_predictions >= 1, timeout=30_000)
    qtbot.waitUntil(lambda: predict.frame_worker is None, timeout=30_000)
    widgets["Rocking curve"].show_patch(0, 1, 1)
    viewer.reset_view()
    qtbot.wait(200)

    window = viewer.screenshot(canvas_only=False, flash=False)
    assert window.mean() > 10
    assert window.shape[1] > 800  # the docks are part of the window shot

    with_overlay = viewer.screenshot(canvas_only=True, flash=False)
    assert with_overlay.mean() > 10
    for layer in viewer.layers:  # annotations, prediction outlines, picked patch
        layer.visible = layer.name == "scan"
    qtbot.wait(100)
    plain = viewer.screenshot(canvas_only=True, flash=False)
    # The overlay changes the colours of the picture (it is drawn, not just present as data).
    h, w = min(plain.shape[0], with_overlay.shape[0]), min(plain.shape[1], with_overlay.shape[1])
    diff = with_overlay[:h, :w, :3].astype(int) - plain[:h, :w, :3].astype(int)
    assert np.abs(diff).mean() > 3

    plot = widgets["Rocking curve"].canvas.grab().toImage()
    assert plot.width() > 100 and plot.height() > 100
