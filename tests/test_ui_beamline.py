"""napari at the beamline (issue 11), in real viewers under Xvfb: the one-dock layout fits 1280x800,
a pick never paints and a paint never picks, the hidden-layer path works, errors reach the widget's
status line, and a whole session (open, label, train, predict, pick, reconstruct) shows no
"Inconsistent units" warning while the 3D layers carry micrometres."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from _widget_data import rocking_scan
from napari_weakbeam._napari._session import get_session
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss

pytestmark = pytest.mark.gui
PLUGIN = "napari-weakbeam"
PANEL = "Weak beam (all steps)"
P = 32


def _bliss_scan(tmp_path, layers=2):
    data, angles, truth = rocking_scan(layers=layers)
    path = tmp_path / "grain.h5"
    write_bliss(path, list(data), list(angles), np.arange(layers) * 2.0, pixel_size=0.5)
    return path, truth


def _panel(viewer):
    _dock, panel = viewer.window.add_plugin_dock_widget(PLUGIN, PANEL)
    return panel, panel.widgets


def _open(viewer, tmp_path, layers=2):
    path, truth = _bliss_scan(tmp_path, layers)
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    return layer, truth


def test_one_dock_fits_1280x800_and_single_docks_join_it(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari.settings import get_settings
    from qtpy.QtWidgets import QAbstractButton, QDockWidget

    positions = get_settings().application.plugin_widget_positions
    viewer = make_napari_viewer(show=True)
    win = viewer.window._qt_window
    win.resize(1280, 800)
    _open(viewer, tmp_path)
    panel, widgets = _panel(viewer)
    widgets["Annotate"].start_annotating("grain", P)
    win.resize(1280, 800)
    canvas = viewer.window._qt_viewer.canvas.native
    # One column: our panel is a tab in front of napari's layer controls (and, 800 px tall, the layer list).
    controls, layer_list = viewer.window._qt_viewer.dockLayerControls, viewer.window._qt_viewer.dockLayerList
    ours = next(d for d in win.findChildren(QDockWidget) if d.widget() is panel)
    # (waited for: the dock moves after napari has docked it, and the layout settles over a few rounds)
    qtbot.waitUntil(lambda: {controls, layer_list} <= set(win.tabifiedDockWidgets(ours)) and panel.isVisible(),
                    timeout=10_000)
    qtbot.waitUntil(lambda: win.height() <= 800 and canvas.width() >= 0.6 * 1280, timeout=10_000)
    assert win.width() == 1280 and win.minimumSizeHint().height() <= 800
    assert controls.visibleRegion().isEmpty() and not ours.visibleRegion().isEmpty()  # ours in front
    assert positions.get(ours.objectName()) != "left"  # napari does not take our placement for the user's
    for i in range(panel.tabs.count()):  # every control of every tab fits the dock's width
        panel.tabs.setCurrentIndex(i)
        qtbot.wait(50)
        area = panel.tabs.currentWidget()
        for button in area.widget().findChildren(QAbstractButton):
            if button.isVisible():
                right = button.mapTo(area.viewport(), button.rect().topRight()).x()
                assert right <= area.viewport().width(), (panel.tabs.tabText(i), button.text())
    # Widgets docked one by one from the Plugins menu join one tab group instead of stacking.
    viewer2 = make_napari_viewer(show=True)
    main = viewer2.window._qt_window
    main.resize(1280, 800)
    for name in ("Annotate", "Train", "Predictions", "Rocking curve", "Reconstruct"):
        viewer2.window.add_plugin_dock_widget(PLUGIN, name)
    docks = [d for d in main.findChildren(QDockWidget) if d.windowTitle().startswith(("Annotate", "Train", "Predictions"))]
    assert len(docks) == 3
    qtbot.waitUntil(lambda: len(main.tabifiedDockWidgets(docks[0])) == 6, timeout=10_000)  # + layer controls, list
    canvas2 = viewer2.window._qt_viewer.canvas.native
    qtbot.waitUntil(lambda: main.height() <= 800 and canvas2.width() >= 0.6 * 1280, timeout=10_000)
    # A wide window keeps our column on the right, beside napari's (pytest-xvfb's screen is 800 px
    # wide, so "wide" starts lower here).
    from napari_weakbeam._napari import _dock

    monkeypatch.setattr(_dock, "ONE_COLUMN_BELOW", 700)
    viewer3 = make_napari_viewer(show=True)
    viewer3.window._qt_window.resize(1280, 800)
    dock3, _panel3 = viewer3.window.add_plugin_dock_widget(PLUGIN, PANEL)
    qtbot.wait(100)
    assert viewer3.window._qt_window.dockWidgetArea(dock3) == Qt.DockWidgetArea.RightDockWidgetArea
    assert not viewer3.window._qt_window.tabifiedDockWidgets(dock3)


def _click(qtbot, viewer, world_yx):
    """A real left click on the canvas at a world (y, x) position (Qt events through vispy)."""
    from qtpy.QtCore import QPoint, Qt

    from napari_weakbeam._napari._geometry import camera as _camera

    canvas = viewer.window._qt_viewer.canvas.native
    camera = _camera(viewer)
    cy, cx = camera.center[-2:]
    x = (world_yx[1] - cx) * camera.zoom + canvas.width() / 2
    y = (world_yx[0] - cy) * camera.zoom + canvas.height() / 2
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(round(x)), int(round(y))))
    qtbot.wait(50)


def test_pick_never_paints_and_painting_never_picks(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    layer, _ = _open(viewer, tmp_path, layers=1)
    panel, widgets = _panel(viewer)
    labels = widgets["Annotate"].start_annotating("grain", P)
    rocking = widgets["Rocking curve"]
    session = get_session(viewer)
    viewer.reset_view()
    qtbot.wait(200)
    frame = session.current_index()[1]
    world = layer.data_to_world((0, frame, 40, 100))[-2:]  # patch (1, 3)

    # Paint mode: the click paints that patch and does not move the rocking-curve marker.
    assert labels.mode == "paint" and not rocking.pick_mode
    _click(qtbot, viewer, world)
    assert labels.data[0, frame, 1, 3] == 1
    assert rocking.patch is None

    # Pick mode: the click shows the curve of the patch and paints nothing; painting is paused.
    labels.data[...] = 0
    rocking.pick_button.click()
    assert rocking.pick_mode and labels.mode == "pan_zoom"
    assert viewer.layers.selection.active is labels  # W/S/C still go to the annotations
    _click(qtbot, viewer, world)
    assert rocking.patch == (0, 1, 3)
    assert not labels.data.any()
    assert viewer.layers[f"{layer.name} picked patch"].data  # the patch is outlined

    # Choosing a brush again leaves pick mode.
    widgets["Annotate"].brush_sb.click()
    assert not rocking.pick_mode and labels.mode == "paint" and labels.selected_label == 2


def test_hidden_annotation_layer_then_frame_change_labels_the_right_frame(make_napari_viewer, qtbot, tmp_path, messages):
    from napari_weakbeam.core.classification.classifier import build_classifier

    viewer = make_napari_viewer()
    layer, _ = _open(viewer, tmp_path, layers=2)
    panel, widgets = _panel(viewer)
    annotate, predict = widgets["Annotate"], widgets["Predictions"]
    labels = annotate.start_annotating("grain", P)
    session = get_session(viewer)
    session.set_classifier(build_classifier("wbnet", P), "untrained")
    qtbot.waitUntil(lambda: predict.frame_worker is None and predict.n_frame_predictions >= 1, timeout=30_000)

    labels.visible = False  # the crash path of the issue: hide, change frame, then label
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 4)
    annotate.wb_button.click()  # W
    assert (labels.data[1, 4] == 1).all() and labels.data.sum() == labels.data[1, 4].size
    assert not labels.visible and labels.mode == "pan_zoom"

    viewer.dims.set_current_step(1, 7)
    predict.predict_current()
    qtbot.waitUntil(lambda: predict.frame_worker is None and predict._predicted[1, 7], timeout=30_000)
    assert predict.promote_frame() is not None  # Promote
    np.testing.assert_array_equal(labels.data[1, 7], session.predictions.data[1, 7])

    viewer.dims.set_current_step(1, 9)
    annotate.suggest()
    qtbot.waitUntil(lambda: annotate._suggest_worker is None, timeout=30_000)
    taken = annotate.accept_suggestions()  # Accept
    assert taken and (labels.data[1, 4] == 1).all()
    assert not any("out of bounds" in m or "Error" in m for m in messages), messages
    labels.visible = True
    viewer.dims.set_current_step(1, 4)
    qtbot.wait(50)
    assert labels.data[1, 4].all() and labels.data[1, 7].any()  # what the user sees is what was written


def test_errors_reach_the_status_line_of_the_widget(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer()
    layer, _ = _open(viewer, tmp_path, layers=1)
    panel, widgets = _panel(viewer)
    annotate, predict, train = widgets["Annotate"], widgets["Predictions"], widgets["Train"]

    predict.predict_all()  # before "Start annotating", with a scan open
    assert "'grain' is open but not in use yet" in predict.status_label.text()
    assert "Start annotating" in messages[-1]
    train.start()
    assert "Start annotating" in train.status_label.text()

    # Suggest on a flat scan: it finds nothing and says why.
    flat = np.random.default_rng(1).poisson(100, (1, 9, 64, 64)).astype(np.uint16)
    viewer.add_image(flat, name="flat", metadata={"angles": np.linspace(0, 0.1, 9)[None]})
    annotate.start_annotating("flat", P)
    annotate.suggest()
    qtbot.waitUntil(lambda: annotate._suggest_worker is None, timeout=30_000)
    text = annotate.status_label.text()
    assert "no suggestion in layer 0" in text and "clear rocking peak" in text and "by hand" in text

    # The Predictions status line always names the frame shown.
    viewer.dims.set_current_step(1, 5)
    assert "frame 5" in predict.status_label.text()
    assert "not predicted yet" in predict.status_label.text()


def test_a_whole_session_has_one_unit_per_axis_and_3d_in_micrometres(make_napari_viewer, qtbot, tmp_path, messages):
    viewer = make_napari_viewer(show=True)
    layer, truth = _open(viewer, tmp_path, layers=2)
    panel, widgets = _panel(viewer)
    annotate, train, predict = widgets["Annotate"], widgets["Train"], widgets["Predictions"]
    rocking, recon = widgets["Rocking curve"], widgets["Reconstruct"]
    labels = annotate.start_annotating("grain", P)
    session = get_session(viewer)
    labels.paint((0, 0, 1, 1), 1)  # a real paint event (the first paint click toasted the warning)
    for f in (0, 1, 6, 11, 12):
        session.set_frame_labels(0, f, truth[f])
    rocking.show_patch(0, 1, 3)

    train.epochs_spin.setValue(1)
    train.batch_spin.setValue(16)
    train.start_combo.setCurrentText("scratch")
    qtbot.waitUntil(lambda: train.warmup_worker is None, timeout=60_000)
    train.start()
    qtbot.waitUntil(lambda: train.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: predict.frame_worker is None, timeout=30_000)
    assert viewer.layers.selection.active is labels  # painting and W/S/C still work after training
    outlines = viewer.layers["grain predicted (outlines)"]  # predictions drawn as rings, not fills
    assert not session.predictions.visible and outlines.visible
    from napari_weakbeam._napari._overlays import SUB

    assert outlines.data.shape == (4 * SUB, 4 * SUB)  # the frame in view, SUB mark pixels per patch
    blocks = outlines.data.reshape(4, SUB, 4, SUB).transpose(0, 2, 1, 3)
    shown = np.asarray(session.predictions.data)[tuple(session.current_index())]
    for (r, c), cls in np.ndenumerate(shown):  # a hollow square in the class colour, or nothing
        block = blocks[r, c]
        assert block[2:-2, 2:-2].sum() == 0 and set(np.unique(block)) <= {0, cls}
        assert (block[1, 1:-1] == cls).all() and (block[0] == 0).all()
    assert session.probability.colorbar.visible

    recon.manual_check.setChecked(False)
    recon.source_combo.setCurrentIndex(1)  # classify on the fly: fast enough here
    recon.run()
    qtbot.waitUntil(lambda: recon.worker is None, timeout=120_000)
    vol = viewer.layers["reconstruction automated volume"]
    assert [str(vol.units[i]) for i in (0, 2, 3)] == ["micrometer"] * 3
    assert tuple(viewer.dims.axis_labels[i] for i in viewer.dims.displayed) == ("z", "y", "x")
    assert viewer.canvas.overlays.scale_bar.visible
    assert viewer.layers.extent.units is not None
    assert all(l.ndim in (2, 4) for l in viewer.layers)  # no 3D layer shifting the axes
    sliders = [viewer.dims.axis_labels[i] for i in viewer.dims.not_displayed if viewer.dims.nsteps[i] > 1]
    assert sliders == ["frame"]  # no leftover "layer" slider: the layers are the z axis now
    assert not any("Inconsistent units" in m for m in messages), messages


def test_effective_pixel_size_is_shown_and_settable(make_napari_viewer, tmp_path):
    """A camera-sized pixel (6.5 um, no magnification in the file) is flagged; entering the pixel
    size at the sample rescales the scan and every layer over it, in micrometres."""
    data, angles, _ = rocking_scan(layers=1)
    path = tmp_path / "camera.h5"
    write_bliss(path, list(data), list(angles), [0.0], pixel_size=6.5)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    panel, widgets = _panel(viewer)
    annotate = widgets["Annotate"]
    labels = annotate.start_annotating(layer.name, P)
    session = get_session(viewer)
    text = annotate.pixel_label.text()
    assert "6.5 um" in text and "magnification" in text
    annotate.set_pixel_size(6.5 / 20)
    assert session.scan.pixel_size == pytest.approx(0.325)
    assert tuple(layer.scale[-2:]) == pytest.approx((0.325, 0.325))
    assert tuple(labels.scale[-2:]) == pytest.approx((0.325 * P, 0.325 * P))  # patches follow
    assert [str(u) for u in labels.units[-2:]] == ["micrometer"] * 2
    assert "0.325 um per pixel at the sample (entered here)" in annotate.pixel_label.text()
    assert viewer.layers.extent.units is not None
    annotate.set_pixel_size(-1)
    assert "must be a positive number" in annotate.status_label.text()
