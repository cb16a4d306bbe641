"""Adapt a model to a new scan with no painting: fine-tune on the rocking-curve aid's confident labels.

The aid (core.classification.rocking_aid) labels a patch-frame only where its own rocking curve is clearly at its
peak (strong beam) or clearly down in its tails (weak beam), and leaves the frames between
unlabelled. Those confident labels of the open scan, with the scan context they come from, fine-tune
the current model; the scientist then corrects what is left by hand.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..errors import WeakbeamError
from ..patches import STRONG_BEAM, WEAK_BEAM
from .predictions import layer_context
from .rocking_aid import MIN_FRAMES, suggest_from_context
from .training import TrainConfig, Trainer

#: Layers used for adapting (spread through the scan): enough variety, bounded time.
MAX_LAYERS = 4


def adaptation_layers(scan: Any, max_layers: int = MAX_LAYERS) -> list[int]:
    """Up to ``max_layers`` layers spread evenly through the scan, each with a rocking curve."""
    usable = [i for i in range(scan.n_layers) if int(scan.valid_frames(i).sum()) >= MIN_FRAMES]
    if not usable:
        raise WeakbeamError(
            f"{scan.source}: no layer has a rocking curve of at least {MIN_FRAMES} frames; "
            f"adapting needs rocking curves (label frames by hand instead)")
    pick = np.unique(np.linspace(0, len(usable) - 1, min(max_layers, len(usable))).round().astype(int))
    return [usable[i] for i in pick]


def adapt_trainer(scan: Any, config: TrainConfig | None = None, layers: list[int] | None = None) -> Trainer:
    """A :class:`Trainer` fine-tuning ``config.start`` (default: the shipped model) on the aid's
    confident labels of ``scan``'s ``layers`` (default: :func:`adaptation_layers`)."""
    config = copy.copy(config or TrainConfig(start="default", epochs=15))
    if str(config.start) == "scratch":
        config.start = "default"
    frames, labels, feats, levels = [], [], [], []
    for layer in layers if layers is not None else adaptation_layers(scan):
        ctx, blocks = layer_context(scan, layer, config.patch_size)
        lab = suggest_from_context(ctx)
        keep = np.flatnonzero(lab.reshape(len(lab), -1).any(axis=1))
        if not len(keep):
            continue
        stack = np.concatenate(blocks) if blocks is not None else np.asarray(scan.layer(layer))
        valid = np.flatnonzero(scan.valid_frames(layer))
        pos = {int(v): j for j, v in enumerate(valid)} if blocks is not None else {int(v): int(v) for v in valid}
        f = ctx.features()
        for i in keep:
            frames.append(stack[pos[int(i)]])
            labels.append(lab[i])
            feats.append(f[i])
            levels.append(ctx.levels)
    lab_all = np.asarray(labels) if labels else np.zeros((0,), np.uint8)
    n_wb, n_sb = int(np.count_nonzero(lab_all == WEAK_BEAM)), int(np.count_nonzero(lab_all == STRONG_BEAM))
    if n_wb == 0 or n_sb == 0:
        raise WeakbeamError(
            f"{scan.source}: the rocking curves give {n_wb} confident weak-beam and {n_sb} strong-beam patches; "
            f"adapting needs both (the scan may not reach the curves' tails or peaks): label some patches by hand")
    return Trainer(np.stack(frames), lab_all, config, np.stack(feats), np.asarray(levels, np.float64))
