"""Scan-aware classification: the rocking-curve context, its invariances, partial curves, fixed-angle
layer scans, the physics self-check and adapting to a new scan. Real Bliss files, the shipped model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.classification.modelfile import load_default_model, load_model
from napari_weakbeam.core.classification.predictions import classify_layer, layer_context
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.classification.rocking_aid import suggest_from_context
from napari_weakbeam.core.classification.scan_context import LayerContext
from napari_weakbeam.core.classification.self_check import check_layer
from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate_to_file

P = 32


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A 128 x 128, 25-frame simulated scan with a high detector floor, and its truth."""
    path = tmp_path_factory.mktemp("scanaware") / "scan.h5"
    simulate_to_file(path, SimulationParams(rows=128, cols=128, frames=25, seed=7, dark_adu=800.0, exposure=1500.0))
    return str(path), load_truth(path)


def _balanced(label: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([np.mean(label[truth == k] == k) for k in (1, 2) if (truth == k).any()]))


def _rewrite(src: str, dst, transform) -> str:
    """The scan of ``src`` with ``transform`` applied to every frame, as a new Bliss file."""
    scan = open_scan(src)
    layers = [transform(np.asarray(scan.layer(i), np.float64)).astype(np.float32) for i in range(scan.n_layers)]
    write_bliss(dst, layers, [scan.angles[i] for i in range(scan.n_layers)], list(scan.layer_positions),
                pixel_size=scan.pixel_size)
    return str(dst)


def test_context_features_do_not_change_with_exposure_gain_or_dark(sim):
    scan = open_scan(sim[0])
    frames = np.asarray(scan.layer(0), np.float64)
    base = LayerContext.from_frames(frames, scan.angles[0], P).features()
    for scale, shift in ((0.25, 0.0), (4.0, 0.0), (1.0, 50.0), (1.0, -50.0), (3.0, 1000.0)):
        other = LayerContext.from_frames(frames * scale + shift, scan.angles[0], P).features()
        assert np.abs(other - base).max() < 0.02, (scale, shift)


def test_features_are_not_invariant_to_the_frame_to_frame_changes(sim):
    """Stretching each frame to its own levels (the 0.1 failure) must change the features."""
    scan = open_scan(sim[0])
    frames = np.asarray(scan.layer(0), np.float64)
    lo = np.percentile(frames, 1, axis=(1, 2), keepdims=True)
    hi = np.percentile(frames, 99.9, axis=(1, 2), keepdims=True)
    stretched = (frames - lo) / (hi - lo) * 1000
    a = LayerContext.from_frames(frames, scan.angles[0], P).features()
    b = LayerContext.from_frames(stretched, scan.angles[0], P).features()
    assert np.abs(a[..., 1] - b[..., 1]).max() > 0.1  # tail frames: 0.005 of their peak, stretched 0.13


@pytest.mark.parametrize("scale,shift", [(0.25, 0.0), (4.0, 0.0), (1.0, 50.0), (1.0, -50.0)])
def test_exposure_and_dark_level_leave_labels_unchanged(sim, tmp_path, scale, shift):
    clf = load_default_model().with_patch_size(P)
    ref, _ = classify_layer(open_scan(sim[0]), 0, clf)
    dark = 800.0
    path = _rewrite(sim[0], tmp_path / "t.h5", lambda x: np.clip((x - dark) * scale + dark + shift, 0, None))
    lab, _ = classify_layer(open_scan(path), 0, clf)
    assert np.mean(lab == ref) >= 0.98


def test_shipped_model_is_accurate_and_a_patch_at_its_own_peak_is_strong_beam(sim):
    path, truth = sim
    scan = open_scan(path)
    clf = load_default_model().with_patch_size(P)
    label, prob = classify_layer(scan, 0, clf)
    assert _balanced(label, truth.classes(P)[0]) >= 0.95
    ctx, _ = layer_context(scan, 0, P)
    shape = ctx.curve_shape()
    checked = shape["significant"] & ~shape["edge"]
    at_peak = np.take_along_axis(label, shape["peak_frame"][None], axis=0)[0]
    assert checked.sum() > 5
    assert np.mean(at_peak[checked] == 2) >= 0.98
    assert check_layer(ctx, prob).consistent >= 0.95


def test_partial_curves_classify(sim, tmp_path):
    """The frames acquired so far (the first 60 %) classify in the context of their partial curves."""
    path, truth = sim
    scan = open_scan(path)
    k = 15
    part = tmp_path / "partial.h5"
    write_bliss(part, [np.asarray(scan.layer(0))[:k]], [scan.angles[0][:k]], [0.0], pixel_size=scan.pixel_size)
    clf = load_default_model().with_patch_size(P)
    label, _ = classify_layer(open_scan(str(part)), 0, clf)
    assert _balanced(label, truth.classes(P)[0][:k]) >= 0.9


def test_fixed_angle_layer_scan_falls_back_to_appearance_with_a_warning(sim, tmp_path):
    scan = open_scan(sim[0])
    frames = np.asarray(scan.layer(0))
    path = tmp_path / "fixed.h5"
    write_bliss(path, [frames[i : i + 1] for i in (0, 12, 24)], [scan.angles[0][i : i + 1] for i in (0, 12, 24)],
                [0.0, 2.0, 4.0], pixel_size=scan.pixel_size)
    fixed = open_scan(str(path))
    clf = load_default_model().with_patch_size(P)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        label, prob = classify_layer(fixed, 1, clf)
    assert any("appearance only" in str(w.message) for w in caught)
    assert label.shape == (1, 4, 4) and set(np.unique(label)) <= {1, 2} and np.isfinite(prob).all()


def test_self_check_flags_predictions_that_break_the_physics(sim):
    path, truth = sim
    scan = open_scan(path)
    ctx, _ = layer_context(scan, 0, P)
    u = truth.u(P)[0]
    good = np.clip((np.nan_to_num(u, nan=3.0) - 1.0), 0, 1).astype(np.float32)  # P(WB) from the truth
    assert check_layer(ctx, good).consistent >= 0.95
    bad = check_layer(ctx, 1 - good)
    assert bad.share_broken > 0.5 and bad.warning() is not None and "adapt" in bad.warning()


def test_rocking_aid_labels_a_high_floor_scan_whose_curves_do_not_return_to_the_floor(tmp_path):
    path = tmp_path / "short.h5"
    simulate_to_file(path, SimulationParams(rows=128, cols=128, frames=21, seed=3, dark_adu=2500.0,
                                            rocking_half_range_mrad=0.25))
    scan = open_scan(str(path))
    lab = suggest_from_context(layer_context(scan, 0, P)[0])
    truth = load_truth(path).classes(P)[0]
    labelled = (lab > 0) & (truth > 0)
    assert (lab == 1).sum() > 10 and (lab == 2).sum() > 10
    assert np.mean(lab[labelled] == truth[labelled]) >= 0.95


def test_adapt_improves_a_mismatched_model(tmp_path):
    """The single-frame model of 0.1 (per-frame levels) is mismatched to a scan whose beam falls off
    by 85 % across the field and that is dense in dislocations; adapting it on the scan's own
    confident rocking-curve labels brings it closer to the truth."""
    from napari_weakbeam.cli import main

    path = str(tmp_path / "falloff.h5")
    simulate_to_file(path, SimulationParams(rows=128, cols=128, frames=25, seed=11, illumination_falloff=0.85,
                                            density_um2=0.1))
    truth = load_truth(path)
    scan = open_scan(path)
    before = load_model("single-frame").with_patch_size(P)
    lab0, _ = classify_layer(scan, 0, before)
    out = tmp_path / "adapted.pt"
    assert main(["train", "--adapt", path, "--from", "single-frame", "--out", str(out), "--patch-size", str(P),
                 "--epochs", "6", "--quiet"]) == 0
    lab1, _ = classify_layer(scan, 0, load_model(out).with_patch_size(P))
    t = truth.classes(P)[0]
    assert _balanced(lab1, t) > _balanced(lab0, t) + 0.02
