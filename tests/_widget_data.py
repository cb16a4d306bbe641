"""A small synthetic rocking scan for the widget tests (no dependency on the simulator).

Every patch has a Gaussian rocking curve whose peak moves across the columns (lattice rotation), so
a frame is weak beam in some patches and strong beam in others, plus bright dislocation lines that
stay visible in the weak-beam tails.
"""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.patches import STRONG_BEAM, WEAK_BEAM, patch_means

WIDTH_DEG = 0.01


def rocking_scan(layers: int = 1, frames: int = 13, size: int = 128, seed: int = 0):
    """(data uint16 (layers, frames, size, size), angles (layers, frames), truth uint8 per patch 32)."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(-0.06, 0.06, frames)
    cols = np.arange(size)
    rows = np.arange(size)[:, None]
    phi0 = -0.03 + 0.06 * cols / size  # peak position moves across the field of view
    lines = (np.abs((rows - 0.6 * cols[None, :]) % 40 - 20) < 1.5).astype(float)
    data = np.empty((layers, frames, size, size), dtype=np.uint16)
    for lay in range(layers):
        for i, phi in enumerate(angles):
            peak = np.exp(-0.5 * ((phi - phi0) / WIDTH_DEG) ** 2)[None, :]
            clean = 100 + 3000 * peak * (1 - 0.3 * lines) + 600 * lines * (1 - peak) + 20 * lay
            data[lay, i] = rng.poisson(np.broadcast_to(clean, (size, size))).astype(np.uint16)
    u = np.abs(angles[:, None] - phi0[None, :]) / (WIDTH_DEG * 1.1774)
    u_patch = patch_means(u[:, None, :].repeat(size, axis=1), 32)
    truth = np.where(u_patch <= 1, STRONG_BEAM, np.where(u_patch >= 2, WEAK_BEAM, 0)).astype(np.uint8)
    return data, np.tile(angles, (layers, 1)), truth
