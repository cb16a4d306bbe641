"""Where is weak beam: recommended ranges checked against the simulator's truth, and the file group."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam._napari.sample_data import sample_path
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.classification.rocking_aid import suggest_from_context
from napari_weakbeam.core.classification.scan_context import LayerContext
from napari_weakbeam.core.simulate import load_truth
from napari_weakbeam.core.classification.weak_range import grain_patches, layer_weak_beam

P = 32


@pytest.mark.parametrize("name", ["one_layer.h5", "multi_layer.h5"])
def test_recommended_ranges_are_weak_beam_by_the_truth(name):
    path = sample_path(name)
    scan, truth = open_scan(str(path)), load_truth(path)
    classes = truth.classes(P)
    for layer in range(scan.n_layers):
        ctx = LayerContext.from_frames(np.asarray(scan.layer(layer)), scan.angles[layer], P)
        result = layer_weak_beam(ctx, suggest_from_context(ctx), layer)  # labels measured, not the truth
        assert {r.side for r in result.ranges} == {"low", "high"}, result.summary()
        grain = grain_patches(ctx)
        assert 0.5 < result.grain_share <= 1.0
        for r in result.ranges:
            assert (r.stop < result.peak) if r.side == "low" else (r.start > result.peak)
            frames = (scan.angles[layer] >= r.start) & (scan.angles[layer] <= r.stop)
            assert frames.sum() == r.n_frames >= 2
            wb = (classes[layer][frames][:, grain] == 1).mean()
            assert wb >= 0.95, f"{name} layer {layer} {r.describe()}: truth WB {wb:.3f}"
            assert r.wb_share >= 0.9 and r.snr >= 3


def test_partial_and_empty_curves():
    path = sample_path("one_layer.h5")
    scan = open_scan(str(path))
    frames = np.asarray(scan.layer(0))
    angles = scan.angles[0].copy()
    angles[12:] = np.nan  # only the low tail and the rise acquired so far
    ctx = LayerContext.from_frames(frames, angles, P)
    result = layer_weak_beam(ctx, suggest_from_context(ctx))
    assert all(r.stop <= angles[11] for r in result.ranges)
    assert np.isnan(result.wb_share[12:]).all() and not result.usable[12:].any()
    # a field without grain: nothing recommended, said in one line
    flat = LayerContext.from_frames(np.full((5, 64, 64), 100, np.uint16), np.arange(5.0), P)
    empty = layer_weak_beam(flat, np.ones((5, 2, 2), np.uint8))
    assert empty.ranges == [] and "no grain" in empty.summary()


def test_classify_prints_and_stores_where_weak_beam_is(tmp_path, capsys):
    import torch

    from napari_weakbeam.cli import main
    from napari_weakbeam.core.classification.classifier import build_classifier
    from napari_weakbeam.core.classification.modelfile import save_model
    from napari_weakbeam.core.classification.weak_range import load_weak_beam

    torch.manual_seed(0)
    save_model(tmp_path / "m.pt", build_classifier("scanwb", P))
    out = tmp_path / "pred.h5"
    assert main(["classify", str(sample_path("one_layer.h5")), "--out", str(out), "--model", str(tmp_path / "m.pt"),
                 "-q"]) == 0
    assert "layer 1: weak beam" in capsys.readouterr().out
    stored = load_weak_beam(out)
    assert stored["ranges"].shape == (1, 2, 2) and stored["grain_share"][0] > 0.5
