"""Follow mode of the Predictions widget with a real viewer, following a real writer process."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_weakbeam._napari._follow import follower_for, live_layer, live_weak_beam
from napari_weakbeam._napari._session import get_session
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.classification.predictions import load_predictions
from napari_weakbeam.workflows import classify_scan, run
from napari_weakbeam.core.scanfiles.readers import open_scan
from test_live import N, P, _scan_file

pytestmark = pytest.mark.gui


def test_follow_shows_frames_as_they_land_then_the_offline_labels(make_napari_viewer, qtbot, tmp_path):
    src, live = _scan_file(tmp_path / "src.h5", 1), tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-m", "napari_weakbeam.core.scanfiles.bliss_live_writer", str(src), str(live),
                               "--period", "0.15"], stdout=subprocess.PIPE, text=True)
    try:
        writer.stdout.readline()  # the first frame is written: open the file as a scientist would
        viewer = make_napari_viewer()
        viewer.open(str(live), plugin="napari-weakbeam")
        _, predict = viewer.window.add_plugin_dock_widget("napari-weakbeam", "Predictions")
        _, rocking = viewer.window.add_plugin_dock_widget("napari-weakbeam", "Rocking curve")
        session = get_session(viewer)
        session.set_scan_layer(viewer.layers[0], P)  # what the Annotate widget's Start does
        torch.manual_seed(3)
        clf = build_classifier("scanwb", P)
        session.set_classifier(clf, "test")
        rocking._redraw()  # no patch picked yet: the empty plot (which Follow does not redraw per frame)
        assert rocking._drawn == "empty"
        rocking.canvas.callbacks.exception_handler = None  # an error in a draw callback raises here
        rocking.canvas.draw()  # it had raised AttributeError: no frame line yet
        follower = follower_for(session)
        seen = []
        predict.follow_check.setChecked(True)
        follower.worker.yielded.connect(lambda ev: seen.append((ev.payload.kind, ev.payload.index)))
        qtbot.waitUntil(lambda: ("scan_done", -1) in seen, timeout=60_000)
        assert [i for k, i in seen if k == "frame"][-3:] == [N - 3, N - 2, N - 1]
        assert "ended" in predict.status_label.text()
        labels = viewer.layers["live 1.1 predictions"].data
        offline = tmp_path / "off.h5"
        run(classify_scan(open_scan(str(live)), clf, offline))
        np.testing.assert_array_equal(labels, load_predictions(offline).label[0])
        assert np.count_nonzero(viewer.layers["live 1.1"].data[N - 1]) > 0  # the last frame is shown
        assert live_weak_beam(session, 0) is not None
        rocking.show_patch(0, 0, 0)
        assert len(rocking.canvas.axes.patches) == len(live_weak_beam(session, 0).ranges)  # shaded ranges
        followed = live_layer(session, 0)  # the curve of the frames acquired, not of the file as opened
        np.testing.assert_array_equal(rocking.canvas.axes.lines[0].get_xdata(), followed.acc.angles[:N])
        np.testing.assert_array_equal(rocking.curve, followed.acc.curves[:N, 0, 0] * P * P)
        predict.follow_check.setChecked(False)
        qtbot.waitUntil(lambda: not follower.running, timeout=15_000)
        assert "stopped" in predict.status_label.text()
    finally:
        writer.wait(timeout=30)
