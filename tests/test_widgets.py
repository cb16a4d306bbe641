"""The napari widgets with real viewers under Xvfb: annotate, train, predict, rocking curve, files."""

from __future__ import annotations

import time

import numpy as np
import pytest

from _widget_data import rocking_scan
from napari_weakbeam._napari._session import get_session
from napari_weakbeam.core.patches import CLASS_COLOURS

pytestmark = pytest.mark.gui
PLUGIN = "napari-weakbeam"
P = 32


@pytest.fixture
def scan_viewer(make_napari_viewer):
    """A viewer holding a 1-layer, 13-frame 128x128 rocking scan as an Image layer."""
    data, angles, truth = rocking_scan()
    viewer = make_napari_viewer()
    viewer.add_image(data, name="scan", metadata={"angles": angles}, scale=(1, 1, 0.5, 0.5))
    return viewer, truth


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def _annotate(viewer):
    widget = _dock(viewer, "Annotate")
    labels = widget.start_annotating("scan", P)
    return widget, labels


def _label_truth(session, truth, frames=(0, 1, 6, 11, 12)):
    """Label a few frames from the synthetic truth (what a scientist would paint)."""
    ann = session.annotation_array()
    for f in frames:
        ann[0, f] = truth[f]
    session.require_annotations().refresh()
    session.labels_changed.emit()


def _wait_worker(qtbot, widget_attr_owner, attr, timeout=60_000):
    qtbot.waitUntil(lambda: getattr(widget_attr_owner, attr) is None, timeout=timeout)


def _predicting_untrained(viewer, qtbot):
    """Annotation layer, Predictions dock and an untrained network whose first frame prediction is done."""
    from napari_weakbeam.core.classification.classifier import build_classifier

    _annotate(viewer)
    predict = _dock(viewer, "Predictions")
    session = get_session(viewer)
    session.set_classifier(build_classifier("wbnet", P), "untrained")
    qtbot.waitUntil(lambda: predict.n_frame_predictions >= 1, timeout=30_000)
    _wait_worker(qtbot, predict, "frame_worker")
    return predict, session


def test_annotation_layer_geometry_palette_and_painting(scan_viewer, qtbot):
    viewer, _ = scan_viewer
    widget, labels = _annotate(viewer)
    image = viewer.layers["scan"]
    assert labels.data.shape == (1, 13, 4, 4)
    np.testing.assert_allclose(labels.scale, (1, 1, 16, 16))
    # Label pixel (0, 0) covers image pixels 0..31: its centre sits at image pixel 15.5.
    np.testing.assert_allclose(labels.translate[-2:], (15.5 * 0.5, 15.5 * 0.5))
    np.testing.assert_allclose(labels.data_to_world((0, 0, 0, 0))[-2:], image.data_to_world((0, 0, 15.5, 15.5))[-2:])
    for code, colour in CLASS_COLOURS.items():
        expected = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        np.testing.assert_allclose(labels.colormap.map(np.array([code]))[0, :3], expected, atol=1e-3)
    assert labels.colormap.map(np.array([0]))[0, 3] == 0  # unlabelled is transparent
    assert labels.brush_size == 1 and labels.mode == "paint"

    viewer.dims.set_current_step(1, 3)
    labels.paint((0, 3, 1, 2), labels.selected_label)  # one dab = one patch
    widget.brush_sb.setChecked(True)
    assert labels.selected_label == 2 and labels.brush_size == 1
    labels.paint((0, 3, 2, 2), labels.selected_label)
    labels.selected_label = 1  # napari's own label control keeps the radio buttons in step
    assert widget.brush_wb.isChecked()
    assert np.count_nonzero(labels.data) == 2
    assert labels.data[0, 3, 1, 2] == 1 and labels.data[0, 3, 2, 2] == 2
    qtbot.waitUntil(lambda: "<b>1</b> weak beam, <b>1</b> strong beam" in widget.counts_label.text(), timeout=2000)


def test_frame_buttons_and_keyboard_shortcuts(scan_viewer, qtbot):
    viewer, _ = scan_viewer
    widget, labels = _annotate(viewer)
    viewer.dims.set_current_step(1, 2)
    widget.label_frame(1)
    assert (labels.data[0, 2] == 1).all() and not labels.data[0, 3].any()

    canvas = viewer.window._qt_viewer.canvas.native  # the real key path of the viewer
    viewer.layers.selection.active = labels
    viewer.dims.set_current_step(1, 5)
    qtbot.keyClick(canvas, "s")
    assert (labels.data[0, 5] == 2).all()
    qtbot.keyClick(canvas, "w")
    assert (labels.data[0, 5] == 1).all()
    qtbot.keyClick(canvas, "c")
    assert not labels.data[0, 5].any()
    assert (labels.data[0, 2] == 1).all()  # other frames untouched
    assert widget.session.counts() == {1: 16, 2: 0}
    labels.undo()  # whole-frame labels go through napari's history: Ctrl+Z undoes them
    assert (labels.data[0, 5] == 1).all()
    labels.undo()
    assert (labels.data[0, 5] == 2).all()


def test_suggest_accept_fills_only_unlabelled(scan_viewer, qtbot):
    viewer, truth = scan_viewer
    widget, labels = _annotate(viewer)
    labels.data[0, 0, 0, 0] = 2  # the user's own label must survive accepting
    widget.suggest()
    qtbot.waitUntil(lambda: widget._suggest_worker is None, timeout=30_000)
    suggestions = widget.session.suggestions
    assert suggestions is not None and np.any(suggestions.data == 1) and np.any(suggestions.data == 2)
    sure = truth > 0
    agree = (suggestions.data[0] == truth)[sure].mean()
    assert agree > 0.8
    n = widget.accept_suggestions()
    assert n > 0 and widget.session.suggestions is None
    assert labels.data[0, 0, 0, 0] == 2
    assert np.count_nonzero(labels.data) == n + 1
    labels.undo()  # accepting is one undo step
    assert np.count_nonzero(labels.data) == 1


def test_train_updates_the_overlay(scan_viewer, qtbot, messages):
    from napari_weakbeam.core.classification.classifier import build_classifier

    viewer, truth = scan_viewer
    _, labels = _annotate(viewer)
    train = _dock(viewer, "Train")
    predict = _dock(viewer, "Predictions")
    session = get_session(viewer)

    # Before training: an untrained network gives the overlay we must move away from.
    session.set_classifier(build_classifier("wbnet", P), "untrained")
    viewer.dims.set_current_step(1, 8)
    qtbot.waitUntil(lambda: predict.n_frame_predictions >= 1, timeout=30_000)
    _wait_worker(qtbot, predict, "frame_worker")
    before = np.array(session.probability.data[0, 8])

    _label_truth(session, truth, frames=tuple(range(13)))
    # From scratch (a training item is a tile of patches, so an epoch is a few steps; the scan-aware
    # network's per-patch head needs ~20 such epochs on 13 frames).
    train.epochs_spin.setValue(20)
    train.start_combo.setCurrentText("scratch")
    train.batch_spin.setValue(16)
    train.lr_spin.setValue(0.01)
    n_before = predict.n_frame_predictions
    train.start()
    assert train.running and train.start_button.text() == "Stop"
    _wait_worker(qtbot, train, "worker", timeout=90_000)
    qtbot.waitUntil(lambda: predict.n_frame_predictions >= n_before + 2, timeout=30_000)  # after epochs
    _wait_worker(qtbot, predict, "frame_worker")

    pred = session.predictions
    assert pred is not None and pred.opacity < 1
    shown = pred.data[0, 8]
    assert set(np.unique(shown)) <= {1, 2} and session.classifier_source == "trained here"
    after = np.array(session.probability.data[0, 8])
    assert np.abs(after - before).max() > 0.3  # the overlay changed with training
    sure = truth[8] > 0
    assert (shown == truth[8])[sure].mean() > 0.85  # and it learnt the classes
    assert train.history["step"] and train.progress.value() == 100
    assert train.start_button.text() == "Start training"

    # Correct, then continue from the current model (the human-in-the-loop cycle).
    trained = session.classifier
    train.start_combo.setCurrentText("current model")
    train.epochs_spin.setValue(1)
    train.start()
    _wait_worker(qtbot, train, "worker", timeout=60_000)
    assert session.classifier is not trained
    assert session.classifier.provenance["fine_tuned_from"] == "the model in use"  # sent as it is, no file

    predict.predict_all()
    _wait_worker(qtbot, predict, "all_worker")
    every = pred.data[0]
    assert set(np.unique(every)) == {1, 2}  # both classes over the scan
    assert predict._predicted.all()


def test_stop_takes_effect_within_one_batch(scan_viewer, qtbot):
    viewer, truth = scan_viewer
    _annotate(viewer)
    train = _dock(viewer, "Train")
    session = get_session(viewer)
    _label_truth(session, truth, frames=tuple(range(13)))
    train.epochs_spin.setValue(500)
    train.batch_spin.setValue(4)
    train.start_combo.setCurrentText("default model")  # fine-tuning the shipped model
    seen: list = []
    train.start()
    train.worker.yielded.connect(lambda ev: seen.append(ev.payload) if ev.what == "batches" else None)
    qtbot.waitUntil(lambda: sum(hasattr(s, "n_batches") for s in seen) >= 3, timeout=60_000)
    train.stop()
    at_stop = sum(hasattr(s, "n_batches") and not s.done for s in seen)
    _wait_worker(qtbot, train, "worker", timeout=30_000)
    batches = [s for s in seen if hasattr(s, "n_batches") and not s.done]
    assert len(batches) - at_stop <= 1  # at most the batch running when Stop was pressed
    assert batches[-1].epoch < 500
    assert seen[-1].done and "stopped" in seen[-1].message
    assert session.classifier is not None and train.start_button.isEnabled()
    assert session.classifier.provenance["fine_tuned_from"] == "default"


def test_training_errors_are_notifications(scan_viewer, messages):
    viewer, _ = scan_viewer
    train = _dock(viewer, "Train")
    train.start()
    # a scan is open but not picked yet: say so (not "open a scan"), in the toast and the status line
    assert not train.running and "'scan' is open" in messages[-1] and "Start annotating" in messages[-1]
    assert "Start annotating" in train.status_label.text()
    _, labels = _annotate(viewer)
    labels.data[0, 0] = 1  # one class only
    train.start()
    assert not train.running and "both classes" in messages[-1] and "16 weak-beam and 0" in messages[-1]
    assert "both classes" in train.status_label.text()
    labels.data[0, 1] = 2
    train.device_combo.setCurrentText("cuda")
    train.start()
    assert not train.running and "cuda" in messages[-1] and "available" in messages[-1]
    assert "not available" in train.device_label.text()
    assert all("\n" not in m for m in messages)


def test_gui_stays_responsive_while_training(scan_viewer, qtbot):
    """A QTimer ticking every 20 ms in the GUI thread must never wait 200 ms during training."""
    from qtpy.QtCore import QTimer

    viewer, truth = scan_viewer
    _annotate(viewer)
    train = _dock(viewer, "Train")
    _dock(viewer, "Predictions")
    session = get_session(viewer)
    _label_truth(session, truth, frames=tuple(range(13)))
    train.epochs_spin.setValue(25)
    train.batch_spin.setValue(16)
    train.start_combo.setCurrentText("scratch")
    # One-off imports (torch.optim pulls in torch._dynamo) happen in a worker when the widget opens.
    qtbot.waitUntil(lambda: train.warmup_worker is None, timeout=60_000)
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    train.start()  # adds the (empty) overlay layers: a one-off redraw at the click
    qtbot.wait(100)
    timer.start(20)
    _wait_worker(qtbot, train, "worker", timeout=90_000)
    timer.stop()
    gaps = np.diff(ticks)
    assert len(train.history["step"]) >= 3  # it did train, batch after batch
    assert len(gaps) > 20
    assert gaps.max() < 0.2, f"the event loop stalled for {gaps.max() * 1000:.0f} ms"


def test_promote_prediction_to_annotation(scan_viewer, qtbot):
    from napari_weakbeam.core.classification.classifier import build_classifier

    viewer, _ = scan_viewer
    _, labels = _annotate(viewer)
    predict = _dock(viewer, "Predictions")
    session = get_session(viewer)
    viewer.dims.set_current_step(1, 6)
    session.set_classifier(build_classifier("wbnet", P), "untrained")
    qtbot.waitUntil(lambda: predict.n_frame_predictions >= 1, timeout=30_000)
    n = predict.promote_frame()
    assert n == 16
    np.testing.assert_array_equal(labels.data[0, 6], session.predictions.data[0, 6])
    assert viewer.layers.selection.active is labels


def test_dims_change_predicts_that_frame_debounced(scan_viewer, qtbot):
    viewer, _ = scan_viewer
    predict, session = _predicting_untrained(viewer, qtbot)
    first = predict.n_frame_predictions
    for f in (1, 2, 3, 4):  # a quick scroll: only where the user stops is predicted
        viewer.dims.set_current_step(1, f)
    qtbot.waitUntil(lambda: predict._predicted is not None and predict._predicted[0, 4], timeout=30_000)
    _wait_worker(qtbot, predict, "frame_worker")
    assert predict.n_frame_predictions == first + 1
    assert not predict._predicted[0, 1:4].any()


def test_rocking_curve_of_a_clicked_patch(scan_viewer, qtbot):
    viewer, truth = scan_viewer
    _, labels = _annotate(viewer)
    rocking = _dock(viewer, "Rocking curve")
    session = get_session(viewer)
    data = viewer.layers["scan"].data
    # The world position of image pixel (40, 100) -> patch (1, 3).
    world = viewer.layers["scan"].data_to_world((0, 0, 40, 100))
    assert session.patch_at(world) == (0, 1, 3)
    labels.data[0, 0, 1, 3] = 1
    curve = rocking.show_patch(0, 1, 3)
    marker = viewer.layers["scan picked patch"]  # the patch is outlined in the viewer
    corners = marker.data_to_world(marker.data[0][0])
    np.testing.assert_allclose(corners, viewer.layers["scan"].data_to_world((0, 0, 31.5, 95.5))[-2:])
    assert viewer.layers.selection.active is labels  # the user keeps painting where they were
    expected = data[0, :, 32:64, 96:128].sum(axis=(-2, -1))
    np.testing.assert_allclose(curve, expected)
    assert int(np.argmax(curve)) == int(np.argmax(expected))
    ax = rocking.canvas.axes
    assert len(ax.collections) == 2  # prediction fill + label rings
    rings = ax.collections[1].get_edgecolors()
    assert len(rings) == 13  # one per frame
    assert "patch row 1, column 3" in ax.get_title()
    assert len(ax.lines) == 3  # the curve, the zero line and the current-frame marker
    # drawn above the layer's floor, normalised to the patch's own peak
    assert np.nanmax(rocking.shown) == pytest.approx(1.0)
    assert int(np.nanargmax(rocking.shown)) == int(np.argmax(expected))


def test_annotation_and_model_files_round_trip(scan_viewer, qtbot, tmp_path, messages):
    from napari_weakbeam.core.classification.annotations import load_annotations
    from napari_weakbeam.core.classification.classifier import build_classifier

    viewer, truth = scan_viewer
    widget, labels = _annotate(viewer)
    train = _dock(viewer, "Train")
    session = get_session(viewer)
    _label_truth(session, truth)
    saved = np.array(labels.data)
    path = widget.save_annotations(tmp_path / "ann.h5")
    ann = load_annotations(path)
    np.testing.assert_array_equal(ann.label, saved)
    assert ann.patch_size == P and ann.frame_shape == (128, 128)

    labels.data = np.zeros_like(labels.data)
    widget.load_annotations(path)
    np.testing.assert_array_equal(session.require_annotations().data, saved)

    # The napari writer contribution (File > Save Selected Layers) writes the same format.
    viewer.layers.selection = {labels}
    out = viewer.layers.save(str(tmp_path / "via_writer.h5"), selected=True, plugin=PLUGIN)
    np.testing.assert_array_equal(load_annotations(out[0]).label, saved)

    # Annotations of another scan (other frame size) are refused with one clear line.
    other_data, other_angles, _ = rocking_scan(frames=5, size=96)
    viewer2_layer = viewer.add_image(other_data, name="other", metadata={"angles": other_angles})
    widget.start_annotating("other", P)
    widget.load_annotations(path)
    assert "do not match the scan" in messages[-1]
    assert not get_session(viewer).require_annotations().data.any()
    del viewer2_layer

    session.set_classifier(build_classifier("wbnet", P), "test")
    model_path = train.save_model(tmp_path / "model.pt")
    loaded = train.load_model(model_path)
    assert loaded is session.classifier and loaded.patch_size == P
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:200])
    widget.load_annotations(truncated)
    assert "truncated.h5" in messages[-1] and "\n" not in messages[-1]

    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a model")
    train.load_model(bad)
    assert "corrupt.pt" in messages[-1] and "not a napari-weakbeam model file" in messages[-1]


def test_loading_over_unsaved_labels_asks_first(scan_viewer, tmp_path, monkeypatch):
    """Labels painted since the last save are replaced by Load only when the user says Yes."""
    from qtpy.QtWidgets import QMessageBox

    viewer, truth = scan_viewer
    widget, labels = _annotate(viewer)
    session = get_session(viewer)
    _label_truth(session, truth, frames=(0,))
    path = widget.save_annotations(tmp_path / "ann.h5")
    asked: list[str] = []
    answer = {"value": QMessageBox.No}
    monkeypatch.setattr(QMessageBox, "question",
                        staticmethod(lambda parent, title, text, *a: (asked.append(text), answer["value"])[1]))
    widget.load_annotations(path)  # nothing painted since the save: no question
    assert asked == []
    _label_truth(session, truth, frames=(6, 12))  # an afternoon of work, not saved
    painted = np.array(labels.data)
    widget.load_annotations(path)
    assert len(asked) == 1 and "ann.h5" in asked[0] and "not saved" in asked[0]
    np.testing.assert_array_equal(labels.data, painted)  # No: the painted labels stay
    answer["value"] = QMessageBox.Yes
    widget.load_annotations(path)
    assert len(asked) == 2 and not np.array_equal(labels.data, painted)
    assert not labels.data[0, 6].any()  # Yes: the file's labels


def test_export_predictions_in_classify_format(scan_viewer, qtbot, tmp_path, messages, monkeypatch):
    from napari_weakbeam.core.classification.predictions import load_predictions

    viewer, _ = scan_viewer
    predict, session = _predicting_untrained(viewer, qtbot)
    predict.export_predictions(tmp_path / "pred.h5")
    _wait_worker(qtbot, predict, "export_worker")
    pred = load_predictions(tmp_path / "pred.h5")
    assert pred.label.shape == (1, 13, 4, 4) and pred.patch_size == P
    assert set(np.unique(pred.label)) <= {1, 2} and pred.label.all()
    frame = int(session.current_index()[1])
    np.testing.assert_array_equal(pred.label[0, frame], session.predictions.data[0, frame])
    np.testing.assert_allclose(pred.angles, viewer.layers["scan"].metadata["angles"])

    session.predictions.data = np.zeros_like(session.predictions.data)
    predict.load_predictions(tmp_path / "pred.h5")
    np.testing.assert_array_equal(session.predictions.data, pred.label)

    # Exporting over a file that is not a predictions file (here: annotations) is refused, file intact;
    # a name typed in the dialog without extension gets .h5.
    from qtpy.QtWidgets import QFileDialog

    from napari_weakbeam.core.classification.annotations import Annotations, load_annotations, save_annotations

    ann_path = tmp_path / "ann.h5"
    save_annotations(ann_path, Annotations(np.ones((1, 13, 4, 4), np.uint8), P, (128, 128)))
    assert predict.export_predictions(ann_path) is None
    assert "ann.h5" in messages[-1] and "not a predictions file" in messages[-1]
    assert load_annotations(ann_path).label.all()
    typed = str(tmp_path / "typed")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (typed, "Predictions (*.h5 *.hdf5)")))
    predict.export_predictions()
    _wait_worker(qtbot, predict, "export_worker")
    assert load_predictions(tmp_path / "typed.h5").label.shape == (1, 13, 4, 4)

    # The file of another scan is refused with one line, and nothing is shown from it.
    other_data, other_angles, _ = rocking_scan(frames=5, size=96)
    viewer.add_image(other_data, name="other", metadata={"angles": other_angles})
    _dock(viewer, "Annotate").start_annotating("other", P)
    predict.load_predictions(tmp_path / "pred.h5")
    assert "pred.h5" in messages[-1] and "match" in messages[-1] and "\n" not in messages[-1]
    assert session.predictions is None or not session.predictions.data.any()


def test_paint_then_two_epochs_from_the_default_model_change_the_overlay(scan_viewer, qtbot):
    """The issue's cycle as a user does it: paint patches with the brush, train two epochs, look."""
    from napari_weakbeam.core.classification.modelfile import load_default_model

    viewer, truth = scan_viewer
    _, labels = _annotate(viewer)
    train = _dock(viewer, "Train")
    predict = _dock(viewer, "Predictions")
    session = get_session(viewer)
    session.set_classifier(load_default_model().with_patch_size(P), "default")
    viewer.dims.set_current_step(1, 8)
    qtbot.waitUntil(lambda: predict.n_frame_predictions >= 1, timeout=30_000)
    _wait_worker(qtbot, predict, "frame_worker")
    before = np.array(session.probability.data[0, 8])

    # One paint event per patch, at patch resolution (what a brush dab does), on frames across
    # the rocking curve, with the class the simulated truth gives.
    painted = 0
    for f in (0, 1, 6, 11, 12):
        for r, c in zip(*np.nonzero(truth[f])):
            labels.paint((0, f, int(r), int(c)), int(truth[f, r, c]), refresh=False)
            painted += 1
    labels.refresh()
    counts = session.annotation_array()
    assert painted > 20 and {1, 2} <= set(np.unique(counts))

    train.epochs_spin.setValue(2)
    train.start_combo.setCurrentText("default model")
    n_before = predict.n_frame_predictions
    train.start()
    _wait_worker(qtbot, train, "worker", timeout=90_000)
    qtbot.waitUntil(lambda: predict.n_frame_predictions >= n_before + 1, timeout=30_000)
    _wait_worker(qtbot, predict, "frame_worker")
    assert session.classifier.provenance["trained_epochs"] == 2

    after = np.array(session.probability.data[0, 8])
    assert session.classifier_source == "trained here"
    assert np.abs(after - before).max() > 1e-3  # the overlay changed with training
    predict.predict_all()
    _wait_worker(qtbot, predict, "all_worker")
    assert set(np.unique(session.predictions.data[0])) == {1, 2}
