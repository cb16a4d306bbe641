"""A camera's defects added to simulated frames: hot pixels and cosmic-ray zingers.

Our simulator's camera has none (docs/simulator.md); dfxm-geo's has warm and hot pixels (a measured
fixed-pattern tail) but no zingers. :func:`add_camera_defects` adds both at the rates of the
robustness benchmark (benchmarks/bench_detector_defects.py) and its tests, so the repair
(core/reconstruction/detector_defects.py) is measured against known positions.
"""

from __future__ import annotations

import numpy as np

HOT_FRACTION = 5e-4  # hot pixels per pixel of the field (every other one with a hot neighbour)
HOT_LEVEL = 0.3  # a hot pixel's offset, x the scan's brightest reading (99.99th percentile)
ZINGER_FRACTION = 1e-4  # zingers per pixel of each frame
ZINGER_LEVEL = 2.0  # a zinger's peak, x the scan's brightest reading (3-pixel L-shaped spots)


def add_camera_defects(frames: np.ndarray, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``frames`` (n, rows, cols) with hot pixels and zingers added (uint16, clipped); and where
    they were put: the hot pixels (k, 2) row, col (each even-indexed one has a hot right-hand
    neighbour too) and the zingers (m, 3) frame, row, col (the spot's corner; it also covers the
    pixel below and the one to the right)."""
    rng = np.random.default_rng(seed)
    f = np.asarray(frames, dtype=np.float64).copy()
    n, rows, cols = f.shape
    peak = float(np.percentile(f, 99.99))
    k = max(2, int(rows * cols * HOT_FRACTION))
    hot = np.column_stack([rng.integers(2, rows - 2, k), rng.integers(2, cols - 3, k)])
    f[:, hot[:, 0], hot[:, 1]] += HOT_LEVEL * peak
    f[:, hot[::2, 0], hot[::2, 1] + 1] += HOT_LEVEL * peak
    zing = []
    for j in range(n):
        for _ in range(max(1, int(rows * cols * ZINGER_FRACTION))):
            r, c = int(rng.integers(2, rows - 3)), int(rng.integers(2, cols - 3))
            for dr, dc, s in ((0, 0, 1.0), (1, 0, 1.0), (0, 1, 0.75)):
                f[j, r + dr, c + dc] += s * ZINGER_LEVEL * peak
            zing.append((j, r, c))
    return np.clip(f, 0, 65535).astype(np.uint16), hot, np.array(zing, dtype=np.int64).reshape(-1, 3)
