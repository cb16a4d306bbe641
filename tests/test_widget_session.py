"""The widgets' session with real viewers (Xvfb): layers held by reference (renaming keeps them
connected, removing drops them), plain layer metadata, one session per viewer without unwrapping
napari's proxy, one method per change of state; and thin widget files."""

from __future__ import annotations

import ast
import gc
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

import napari_weakbeam
from napari_weakbeam._napari._session import get_session

pytestmark = pytest.mark.gui
PLUGIN = "napari-weakbeam"
P = 32
SRC = Path(napari_weakbeam.__file__).parent
NAPARI_DIR = SRC / "_napari"


def _dock(viewer, name):
    return viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]


def _sample_viewer(make_napari_viewer):
    """The bundled Bliss sample opened through the reader, annotating at P."""
    from napari_weakbeam._napari.sample_data import sample_path

    viewer = make_napari_viewer()
    [image] = viewer.open(str(sample_path("one_layer.h5")), plugin=PLUGIN)
    annotate = _dock(viewer, "Annotate")
    labels = annotate.start_annotating(image.name, P)
    return viewer, image, annotate, labels


def _untrained():
    from napari_weakbeam.core.classification.classifier import build_classifier

    return build_classifier("wbnet", P)


def test_renamed_layers_stay_connected(make_napari_viewer, qtbot, tmp_path):
    from napari_weakbeam.core.classification.annotations import load_annotations

    viewer, image, annotate, labels = _sample_viewer(make_napari_viewer)
    predict = _dock(viewer, "Predictions")
    session = get_session(viewer)
    session.set_classifier(_untrained(), "untrained")
    qtbot.waitUntil(lambda: predict.frame_worker is None and predict.n_frame_predictions >= 1, timeout=30_000)
    pred, prob = session.predictions, session.probability
    image.name, labels.name, pred.name, prob.name = "my grain", "my labels", "my predictions", "my P(WB)"
    n_layers = len(viewer.layers)

    # paint (a brush dab and a whole frame) on the renamed annotation layer
    viewer.dims.set_current_step(1, 4)
    labels.paint((0, 4, 1, 2), 2, refresh=False)
    qtbot.waitUntil(lambda: "<b>1</b> strong beam" in annotate.counts_label.text(), timeout=2000)
    viewer.dims.set_current_step(1, 3)
    annotate.label_frame(1)
    assert (labels.data[0, 3] == 1).all() and labels.data[0, 4, 1, 2] == 2
    assert session.annotations is labels and session.scan_layer is image

    # predict into the renamed prediction layers, no new ones
    n_before = predict.n_frame_predictions
    predict.predict_current()
    qtbot.waitUntil(lambda: predict.frame_worker is None and predict.n_frame_predictions > n_before, timeout=30_000)
    assert session.predictions is pred and session.probability is prob and len(viewer.layers) == n_layers
    assert pred.data[0, 3].all() and predict.promote_frame() == pred.data[0, 3].size

    # save and load through the renamed layer; the combo names the scan by its new name
    path = annotate.save_annotations(tmp_path / "ann.h5")
    np.testing.assert_array_equal(load_annotations(path).label, labels.data)
    annotate.load_annotations(path)
    assert annotate.scan_combo.currentText() == "my grain" and len(viewer.layers) == n_layers

    # starting again on the renamed scan finds its renamed layers by their metadata, not their names
    assert annotate.start_annotating("my grain", P) is labels
    assert session.predictions is pred and len(viewer.layers) == n_layers


def test_removed_layers_are_dropped(make_napari_viewer, qtbot):
    viewer, image, annotate, labels = _sample_viewer(make_napari_viewer)
    session = get_session(viewer)
    pred, _ = session.ensure_predictions()
    seen: list[str] = []
    session.predictions_changed.connect(lambda: seen.append("predictions"))
    session.scan_changed.connect(lambda: seen.append("scan"))
    viewer.layers.remove(pred)
    assert session.predictions is None and seen == ["predictions"]
    new, _ = session.ensure_predictions()
    assert new is not pred and new in viewer.layers
    viewer.layers.remove(image)
    assert session.scan is None and session.scan_layer is None and session.annotations is None
    assert seen[-1] == "scan"
    assert not annotate.wb_button.isEnabled()


def _plain(value) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def test_layer_metadata_holds_plain_values(make_napari_viewer, qtbot):
    viewer, image, annotate, labels = _sample_viewer(make_napari_viewer)
    predict = _dock(viewer, "Predictions")
    rocking = _dock(viewer, "Rocking curve")
    get_session(viewer).set_classifier(_untrained(), "untrained")
    qtbot.waitUntil(lambda: predict.frame_worker is None and predict.n_frame_predictions >= 1, timeout=30_000)
    annotate.suggest()
    qtbot.waitUntil(lambda: annotate._suggest_worker is None, timeout=30_000)
    rocking.show_patch(0, 1, 1)
    kinds = {type(layer).__name__ for layer in viewer.layers}
    assert len(viewer.layers) >= 7 and kinds >= {"Image", "Labels", "Shapes"}
    for layer in viewer.layers:
        bad = {k: type(v).__name__ for k, v in layer.metadata.items() if not _plain(v)}
        assert not bad, f"layer {layer.name!r}: metadata not plain: {bad}"


def test_one_session_per_viewer_through_napari_proxy(make_napari_viewer):
    from napari.utils._proxies import PublicOnlyProxy  # what napari hands plugin widgets

    first, second = make_napari_viewer(), make_napari_viewer()
    session = get_session(first)
    assert get_session(PublicOnlyProxy(first)) is session and get_session(first) is session
    predict = _dock(first, "Predictions")  # built from napari's proxy: the same session
    assert predict.session is session
    predict.self_check.adapt_button.click()  # no scan yet: said in the widget's status line
    assert "no scan layer" in predict.status_label.text() and predict.self_check.worker is None
    assert get_session(second) is not session
    alive = weakref.ref(get_session(second))
    second.close()
    for _ in range(3):
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        gc.collect()
    assert alive() is None  # the session goes with its viewer's window


def test_no_unwrapping_of_napari_proxies_in_src():
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "__wrapped__" in p.read_text()]
    assert not offenders


def test_every_classifier_change_emits(make_napari_viewer, qtbot, tmp_path):
    """The first frame prediction takes the shipped default; loading or setting a model: each change
    reaches classifier_changed (what the Predictions widget re-predicts on)."""
    from napari_weakbeam.core.classification.modelfile import save_model

    viewer, image, annotate, labels = _sample_viewer(make_napari_viewer)
    session = get_session(viewer)
    seen: list = []
    session.classifier_changed.connect(seen.append)
    predict = _dock(viewer, "Predictions")
    predict.predict_current()
    qtbot.waitUntil(lambda: predict.frame_worker is None and predict.n_frame_predictions >= 1, timeout=60_000)
    assert session.classifier is not None and session.classifier_source == "shipped default"
    assert seen == [session.classifier]
    assert predict.n_frame_predictions == 1  # taking the default does not predict the frame again
    model = save_model(tmp_path / "m.pt", _untrained())
    loaded = _dock(viewer, "Train").load_model(model)
    assert seen[-1] is loaded and session.classifier is loaded
    session.classifier = other = _untrained()
    assert seen[-1] is other and len(seen) == 3


def _emits_outside_session(path: Path) -> list[str]:
    """Session signals emitted, or session state assigned, by a module other than _session.py."""
    signals = {"scan_changed", "labels_changed", "classifier_changed", "predictions_changed",
               "suggestions_changed", "patch_picked"}
    state = {"classifier", "classifier_source", "scan", "scan_layer", "patch_size", "annotations",
             "predictions", "probability", "suggestions"}
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "emit" and getattr(node.value, "attr", "") in signals:
            bad.append(f"{path.name}:{node.lineno} emits {node.value.attr}")
        targets = node.targets if isinstance(node, ast.Assign) else []
        for t in [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]:
            owner = t.value if isinstance(t, ast.Attribute) else None
            if owner is not None and t.attr in state and "session" in ast.unparse(owner):
                bad.append(f"{path.name}:{node.lineno} sets session.{t.attr}")
    return bad


def test_session_state_changes_only_through_its_methods():
    bad = [b for p in sorted(NAPARI_DIR.glob("*.py")) if p.name != "_session.py" for b in _emits_outside_session(p)]
    assert not bad


def test_geometry_and_3d_layer_helpers_load_no_qt():
    """Camera fitting, marching cubes and the 3D layer building left the widget for Qt-free modules."""
    code = ("import sys, napari_weakbeam._napari._geometry, napari_weakbeam._napari._reconstruction_view\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
