"""napari "Predict all" on a Dask scheduler: a real viewer, a real LocalCluster, a real Bliss file."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam._napari._session import get_session
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.predictions import load_predictions
from napari_weakbeam.workflows import classify_scan, reconstruct_scan, run
from napari_weakbeam.core.scanfiles.readers import open_scan

from _distributed_data import P, calibrated_classifier, write_scan

pytestmark = pytest.mark.gui
PLUGIN = "napari-weakbeam"


def test_predict_all_on_a_scheduler_shows_every_layer(make_napari_viewer, qtbot, tmp_path, dask_client):
    path = write_scan(tmp_path / "scan.h5", 3)
    clf = calibrated_classifier(path)
    run(classify_scan(open_scan(path), clf, tmp_path / "ref.h5"))
    reference = load_predictions(tmp_path / "ref.h5")

    viewer = make_napari_viewer()
    viewer.open(path, plugin=PLUGIN)
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN, "Annotate")
    annotate.start_annotating(viewer.layers[0].name, P)
    session = get_session(viewer)
    session.classifier, session.classifier_source = clf, "test"
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predictions")
    predict.auto_check.setChecked(False)
    predict.scheduler_edit.setText(dask_client.scheduler.address)
    seen = []
    predict.predict_all()
    predict.all_worker.yielded.connect(lambda ev: seen.append(ev.payload.layer))
    qtbot.waitUntil(lambda: predict.all_worker is None, timeout=120_000)
    assert sorted(seen) == [0, 1, 2]  # every layer arrived (in the order the workers finished)
    np.testing.assert_array_equal(np.asarray(session.predictions.data), reference.label)
    assert predict.progress.value() == predict.progress.maximum()


def test_an_unreachable_scheduler_is_a_notification(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari.utils.notifications import notification_manager

    from napari_weakbeam.core.distribution import distributed

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 2.0)
    path = write_scan(tmp_path / "scan.h5", 1)
    viewer = make_napari_viewer()
    viewer.open(path, plugin=PLUGIN)
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN, "Annotate")
    annotate.start_annotating(viewer.layers[0].name, P)
    get_session(viewer).classifier = calibrated_classifier(path)
    _, predict = viewer.window.add_plugin_dock_widget(PLUGIN, "Predictions")
    predict.auto_check.setChecked(False)
    messages: list[str] = []
    notification_manager.notification_ready.connect(lambda n: messages.append(str(n.message)))
    predict.scheduler_edit.setText("tcp://127.0.0.1:9")
    with qtbot.capture_exceptions() as raised:  # napari also re-raises worker errors under pytest
        predict.predict_all()
        qtbot.waitUntil(lambda: predict.all_worker is None, timeout=30_000)
    assert any("tcp://127.0.0.1:9" in m and "not reachable" in m and "\n" not in m for m in messages)
    assert all(isinstance(e[1], WeakbeamError) for e in raised)


def test_reconstruct_widget_on_a_scheduler_matches_one_process(make_napari_viewer, qtbot, tmp_path, dask_client):
    from dataclasses import replace

    path = write_scan(tmp_path / "scan.h5", 3)
    clf = calibrated_classifier(path)
    viewer = make_napari_viewer()
    viewer.open(path, plugin=PLUGIN)
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN, "Annotate")
    annotate.start_annotating(viewer.layers[0].name, P)
    session = get_session(viewer)
    session.classifier = clf
    _, rec = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct")
    rec.source_combo.setCurrentIndex(1)  # classify on the fly: the model goes to the workers
    rec.method_combo.setCurrentText("ridge")
    rec.manual_check.setChecked(True)  # the manual reference runs on the cluster too
    rec.scheduler_edit.setText(dask_client.scheduler.address)
    rec.run()
    qtbot.waitUntil(lambda: rec.worker is None, timeout=120_000)
    assert rec.result is not None and rec.progress.value() == 2 * 3
    expected = run(reconstruct_scan(session.scan, clf, rec.params()))
    assert expected.volume.std() > 0
    np.testing.assert_array_equal(rec.result.auto.volume, expected.volume)
    np.testing.assert_array_equal(rec.result.auto.mask, expected.mask)
    manual = run(reconstruct_scan(session.scan, None, replace(rec.params(), method="manual")))
    np.testing.assert_array_equal(rec.result.manual.volume, manual.volume)
