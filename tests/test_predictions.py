"""Streaming inference and the predictions file, on real Bliss HDF5 files and a real classifier."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.patches import grid_shape
from napari_weakbeam.core.classification.predictions import (
    FORMAT_VERSION,
    PredictionWriter,
    classify_layer,
    load_predictions,
)
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.workflows import classify_scan, run

P = 16
SHAPE = (40, 56)  # not a multiple of P: partial edge patches


def _frames(rng: np.random.Generator, n: int, peak: int) -> np.ndarray:
    """A rocking curve of uniform-ish frames with a bright peak in the middle frame."""
    phi = np.arange(n) - n // 2
    level = 100 + 3000 * np.exp(-0.5 * (phi / (1 + peak)) ** 2)
    base = rng.poisson(level[:, None, None] * np.ones((n,) + SHAPE))
    return base.astype(np.uint16)


@pytest.fixture(scope="module")
def bliss(tmp_path_factory) -> str:
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("pred") / "scan.h5"
    layers = [_frames(rng, 7, k) for k in range(3)]
    angles = [np.linspace(-0.03, 0.03, 7) + 0.001 * k for k in range(3)]
    write_bliss(path, layers, angles, [0.0, 2.0, 4.0], pixel_size=0.05)
    return str(path)


@pytest.fixture(scope="module")
def clf():
    torch.manual_seed(0)
    return build_classifier("wbnet", P).eval()


def test_predict_scan_writes_the_documented_file(bliss, clf, tmp_path):
    scan = open_scan(bliss)
    out = tmp_path / "pred.h5"
    events = []
    assert run(classify_scan(scan, clf, out), events.append) == out
    pred = load_predictions(out)
    gshape = grid_shape(SHAPE, P)
    assert pred.label.shape == (3, 7) + gshape and pred.label.dtype == np.uint8
    assert pred.prob.shape == pred.label.shape and pred.prob.dtype == np.float32
    assert pred.patch_size == P and pred.complete and pred.source == scan.source
    np.testing.assert_array_equal(pred.angles, scan.angles)
    np.testing.assert_array_equal(pred.layer_positions, scan.layer_positions)
    # Streaming layer by layer gives what the classifier says on the whole layer in memory.
    for i in range(scan.n_layers):
        lab, prob = clf.predict_frames(scan.layer(i))
        np.testing.assert_array_equal(pred.label[i], lab)
        np.testing.assert_allclose(pred.prob[i], prob, rtol=1e-6)
    assert set(np.unique(pred.label)) <= {1, 2}
    np.testing.assert_array_equal(pred.label == 1, pred.prob >= 0.5)
    # The raw file holds exactly the contract's datasets.
    with h5py.File(out, "r") as f:
        g = f["predictions"]
        assert g["label"].dtype == np.uint8 and g["probability_weak_beam"].dtype == np.float32
        assert int(g.attrs["patch_size"]) == P and int(g.attrs["format_version"]) == FORMAT_VERSION
        assert g["layer_done"][()].all()
    assert [e.payload.layer for e in events if e.what == "layers"] == [0, 1, 2]
    assert not list(tmp_path.glob(".*partial"))


def test_blocks_of_frames_give_the_same_result(bliss, clf):
    scan = open_scan(bliss)
    a = classify_layer(scan, 1, clf, block=2)
    b = classify_layer(scan, 1, clf, block=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_interrupted_run_keeps_old_file_and_resumes(bliss, clf, tmp_path):
    scan = open_scan(bliss)
    out = tmp_path / "pred.h5"
    run(classify_scan(scan, clf, out))  # an earlier result the user keeps
    earlier = out.read_bytes()

    class Stop(Exception):
        pass

    def stop_after_first_layer(ev):
        if ev.what == "layers" and ev.payload.layer == 0:
            raise Stop

    with pytest.raises(Stop):
        run(classify_scan(scan, clf, out), stop_after_first_layer)
    assert out.read_bytes() == earlier
    partial = tmp_path / ".pred.h5.partial"
    assert partial.exists()
    with PredictionWriter(out, scan, P, resume=True) as w:
        assert w.done_layers() == {0}
    seen = []
    run(classify_scan(scan, clf, out, resume=True), lambda ev: seen.append(ev.payload.layer))
    assert set(seen) == {1, 2}  # the finished layer is not classified again
    resumed = load_predictions(out)
    full = tmp_path / "full.h5"
    run(classify_scan(scan, clf, full))
    np.testing.assert_array_equal(resumed.label, load_predictions(full).label)
    np.testing.assert_array_equal(resumed.prob, load_predictions(full).prob)
    assert not partial.exists()


def test_resume_refuses_predictions_of_another_scan(bliss, clf, tmp_path):
    scan = open_scan(bliss)
    out = tmp_path / "pred.h5"
    run(classify_scan(scan, clf, out))
    other = clf.with_patch_size(8)
    with pytest.raises(WeakbeamError, match="patch size 16"):
        run(classify_scan(scan, other, out, resume=True))
    assert load_predictions(out).patch_size == P


def test_aborted_layer_padding_frames_are_not_classified(tmp_path, clf):
    rng = np.random.default_rng(5)
    path = tmp_path / "aborted.h5"
    layers = [_frames(rng, 7, 1), _frames(rng, 7, 1)[:5]]
    angles = [np.linspace(-0.03, 0.03, 7), np.linspace(-0.03, 0.03, 7)[:5]]
    write_bliss(path, layers, angles, [0.0, 2.0], planned_frames=7)
    scan = open_scan(str(path))
    assert scan.n_frames == 7 and np.isnan(scan.angles[1, 5:]).all()
    out = tmp_path / "pred.h5"
    run(classify_scan(scan, clf, out))
    pred = load_predictions(out)
    assert (pred.label[1, 5:] == 0).all() and np.isnan(pred.prob[1, 5:]).all()
    assert (pred.label[1, :5] > 0).all() and (pred.label[0] > 0).all()


def test_nan_frames_are_a_one_line_error(tmp_path, clf):
    data = np.full((1, 4) + SHAPE, 100.0, dtype=np.float32)
    data[0, 2, 5, 7] = np.nan
    path = tmp_path / "floats.h5"
    with h5py.File(path, "w") as f:
        f["entry/data"] = data
    scan = open_scan(f"{path}::/entry/data")
    with pytest.raises(WeakbeamError) as err:
        run(classify_scan(scan, clf, tmp_path / "pred.h5"))
    msg = str(err.value)
    assert "frame 2" in msg and "NaN" in msg and "\n" not in msg
    assert not (tmp_path / "pred.h5").exists()


def test_load_predictions_rejects_foreign_and_damaged_files(bliss, clf, tmp_path):
    with pytest.raises(WeakbeamError, match="not found"):
        load_predictions(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(WeakbeamError, match="not a readable HDF5"):
        load_predictions(text)
    with pytest.raises(WeakbeamError, match="not a napari-weakbeam predictions file"):
        load_predictions(bliss)  # a scan, not predictions
    good = tmp_path / "pred.h5"
    run(classify_scan(open_scan(bliss), clf, good))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeakbeamError, match=str(truncated.name)):
        load_predictions(truncated)
    with h5py.File(good, "a") as f:
        f["predictions"].attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(WeakbeamError, match="newer"):
        load_predictions(good)


def test_partial_file_of_another_run_is_replaced_on_resume(bliss, clf, tmp_path, caplog):
    scan = open_scan(bliss)
    out = tmp_path / "pred.h5"

    def stop(ev):
        if ev.what == "layers":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(classify_scan(scan, clf.with_patch_size(8), out), stop)
    assert (tmp_path / ".pred.h5.partial").exists() and not out.exists()
    with caplog.at_level("WARNING"):
        run(classify_scan(scan, clf, out, resume=True))
    assert "starting over" in caplog.text
    pred = load_predictions(out)
    assert pred.patch_size == P and pred.complete
