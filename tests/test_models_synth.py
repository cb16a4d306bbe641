"""Small synthetic DFXM-like frames with known per-patch classes, for the classifier tests.

The physics-based simulator (core.simulate) is used where it matters (benchmarks, default model);
these few-millisecond frames keep the unit tests fast: a local rocking peak that drifts across the
field (mosaicity), so one frame mixes weak-beam and strong-beam regions, bright dislocation lines in
weak beam and deficits in strong beam, dark level, gain and photon noise.
"""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.patches import patch_means


def synth_frames(n: int, shape: tuple[int, int] = (128, 128), patch_size: int = 32, seed: int = 0,
                 exposure: float = 1.0, dark: float = 100.0, gain: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames uint16 (n, rows, cols), classes uint8 (n, gr, gc) 1/2/0, u (n, gr, gc))."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    frames, classes, us = [], [], []
    for k in range(n):
        # local peak position (in rocking widths) drifting across the field of view
        g = rng.normal(0, 1.5, 3)
        phi0 = g[0] + g[1] * (yy / rows - 0.5) * 3 + g[2] * (xx / cols - 0.5) * 3
        phi = rng.uniform(-4, 4)
        u = np.abs(phi - phi0)
        field = np.exp(-np.log(2) * u**2)
        lines = np.zeros(shape)
        for _ in range(rng.integers(2, 6)):
            a, c0 = rng.uniform(0, np.pi), rng.uniform(0, cols)
            d = np.abs((xx - c0) * np.cos(a) + (yy - rows / 2) * np.sin(a))
            lines += np.exp(-0.5 * (d / 1.5) ** 2)
        lines = np.clip(lines, 0, 1)
        inten = 2000.0 * (field * (1 - 0.4 * lines) + 0.25 * lines * (1 - field))
        photons = rng.poisson(np.clip(inten * exposure / gain, 0, None))
        frame = dark + gain * photons + rng.normal(0, 2.5, shape)
        frames.append(np.clip(frame, 0, 65535).astype(np.uint16))
        um = patch_means(u, patch_size)
        cls = np.where(um <= 1, 2, np.where(um >= 2, 1, 0)).astype(np.uint8)
        classes.append(cls)
        us.append(um)
    return np.stack(frames), np.stack(classes), np.stack(us)
