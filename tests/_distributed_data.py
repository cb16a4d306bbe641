"""Test data shared by the distributed tests: a multi-layer Bliss file and a classifier whose
decision threshold sits inside the data, so that both classes occur."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.scanfiles.readers import open_scan

P = 16
FRAMES, SHAPE = 5, (48, 64)


def _layer(rng: np.random.Generator, k: int) -> np.ndarray:
    """A rocking curve whose peak moves across the field of view: WB and SB regions in a frame."""
    phi = np.arange(FRAMES)[:, None, None] - 1.0 - 0.04 * np.arange(SHAPE[1])[None, None, :] - 0.3 * k
    level = 100 + 2500 * np.exp(-0.5 * phi**2) * np.ones((1,) + SHAPE)
    return rng.poisson(level).astype(np.uint16)


def write_scan(path: Path, layers: int, seed: int = 7) -> str:
    """A ``layers``-layer rocking scan in the ESRF Bliss layout."""
    rng = np.random.default_rng(seed)
    angles = [np.linspace(-0.02, 0.02, FRAMES) for _ in range(layers)]
    write_bliss(path, [_layer(rng, k) for k in range(layers)], angles, 2.0 * np.arange(layers), pixel_size=0.05)
    return str(path)


def calibrated_classifier(scan_path: str):
    """An untrained wbnet with its threshold at the median patch of layer 0."""
    torch.manual_seed(0)
    c = build_classifier("wbnet", P).eval()
    with torch.no_grad():
        prob = c.predict_frames(open_scan(scan_path).layer(0))[1]
        c.net.head.bias[0] -= float(np.median(np.log(prob / (1 - prob))))
    return c
