"""Networks and the Classifier: shapes, patch-size independence, train/inference consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.classification.device import resolve_device
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.models import WBNet, count_parameters
from test_models_synth import synth_frames


def test_wbnet_is_small_and_patch_size_independent():
    sizes = {p: build_classifier("wbnet", p).n_parameters for p in (32, 64, 74, 128)}
    assert len(set(sizes.values())) == 1
    assert 2000 <= sizes[64] <= 5000


def test_paper_network_matches_the_published_layout():
    c = build_classifier("paper", 64)
    convs = [m for m in c.net.features if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.groups) for m in convs] == [
        (1, 1, (5, 5), 1), (1, 16, (1, 1), 1), (16, 16, (5, 5), 16), (16, 32, (1, 1), 1),
        (32, 32, (5, 5), 32), (32, 64, (1, 1), 1)]
    assert all(m.bias is None for m in convs[::2])  # depthwise convs have no bias
    lin = [m for m in c.net.classifier if isinstance(m, torch.nn.Linear)]
    assert (lin[0].in_features, lin[0].out_features, lin[1].out_features) == (64 * 32 * 32, 10, 2)
    assert count_parameters(c.net) > 100 * build_classifier("wbnet", 64).n_parameters


@pytest.mark.parametrize("arch", ["wbnet", "paper"])
def test_predict_frame_on_a_frame_that_is_not_a_multiple_of_the_patch_size(arch):
    c = build_classifier(arch, 32)
    frame, _, _ = synth_frames(1, (100, 70), 32, seed=3)
    label, prob = c.predict_frame(frame[0])
    assert label.shape == prob.shape == (math.ceil(100 / 32), math.ceil(70 / 32))
    assert label.dtype == np.uint8 and prob.dtype == np.float32
    assert set(np.unique(label)) <= {1, 2}
    np.testing.assert_array_equal(label == 1, prob >= 0.5)
    labels, probs = c.predict_frames(np.stack([frame[0], frame[0][::-1]]))
    assert labels.shape == (2,) + label.shape
    np.testing.assert_allclose(probs[0], prob, atol=1e-6)


def test_fully_convolutional_inference_equals_the_training_crops():
    """Pooling the frame's logit map per patch gives what the network gives a crop of one tile
    with its context: training and inference see the same pixels around each patch."""
    torch.manual_seed(0)
    c = build_classifier("wbnet", 48).eval()
    for m in c.net.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
    frame, _, _ = synth_frames(1, (200, 230), 48, seed=4)
    prepared = c.prepare_frame(frame[0])
    with torch.inference_mode():
        full = c.net.frame_logits(torch.from_numpy(prepared)[None, None], 48)
        p, m, s, t = 48, c.context, WBNet.stride, 2
        L = math.ceil((t * p + 2 * m + s - 1) / s) * s
        big = np.pad(prepared, ((0, L), (0, L)))
        for ti, tj in [(0, 0), (1, 1), (2, 0)]:  # interior and border tiles
            r0, c0 = (ti * t * p // s) * s, (tj * t * p // s) * s
            crop = torch.from_numpy(big[r0 : r0 + L, c0 : c0 + L].copy())[None, None]
            off = torch.tensor([[m + ti * t * p - r0, m + tj * t * p - c0]])
            tile = c.net.tile_logits(crop, off, p, t)[0]
            ref = full[ti * t : ti * t + t, tj * t : tj * t + t]
            # patches whose context lies inside the frame agree exactly
            assert torch.allclose(tile[: ref.shape[0], : ref.shape[1]], ref, atol=1e-4)


def test_bad_frames_raise_one_line_errors():
    c = build_classifier("wbnet", 32)
    frame = np.ones((64, 64), np.float32)
    frame[3, 4] = np.nan
    with pytest.raises(WeakbeamError, match="NaN"):
        c.predict_frame(frame)
    with pytest.raises(WeakbeamError, match="frame 1 holds"):
        c.predict_frames(np.stack([np.ones((64, 64), np.float32), frame]))
    with pytest.raises(WeakbeamError, match="one frame"):
        c.predict_frame(np.ones((2, 64, 64)))
    with pytest.raises(WeakbeamError, match="unknown architecture"):
        build_classifier("resnet", 64)
    with pytest.raises(WeakbeamError, match="too small"):
        build_classifier("wbnet", 2)


def test_patch_size_change_only_for_the_patch_size_independent_network():
    w = build_classifier("wbnet", 64).with_patch_size(32)
    assert w.patch_size == 32 and w.predict_frame(np.ones((64, 64)))[0].shape == (2, 2)
    with pytest.raises(WeakbeamError, match="trained for 64-pixel patches"):
        build_classifier("paper", 64).with_patch_size(32)


def test_device_choice(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setenv("WEAKBEAM_DEVICE", "cpu")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(WeakbeamError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(WeakbeamError, match="no CUDA GPU"):
            resolve_device("cuda")
    c = build_classifier("wbnet", 32).to("cpu")
    assert c.device.type == "cpu"
