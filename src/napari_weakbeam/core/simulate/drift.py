"""Layer-to-layer drift applied to a simulated stack (the sample moving against the detector
between layers), for the drift benchmark and tests."""

from __future__ import annotations

import numpy as np


def drift_stack(frames: np.ndarray, classes: np.ndarray, step_px: float, seed: int, patch: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift layer k of a simulated stack (layers, frames, rows, cols) by a random walk of
    ``step_px``-long integer steps in random directions (``np.roll``: what leaves one edge comes
    back at the other) and resample the patch classes (layers, frames, gr, gc) at the shifted
    patch centres; returns the drifted frames, classes and the applied drift (layers, 2) (dy, dx)
    of each layer's content relative to the first."""
    rng = np.random.default_rng(seed)
    n, _, rows, cols = frames.shape
    steps = np.zeros((n, 2), int)
    for k in range(1, n):
        a = rng.uniform(0, 2 * np.pi)
        steps[k] = np.round(step_px * np.array([np.sin(a), np.cos(a)]))
    drift = np.cumsum(steps, axis=0)
    out, lab = np.empty_like(frames), np.empty_like(classes)
    r = np.minimum(np.arange(classes.shape[-2]) * patch + patch // 2, rows - 1)
    c = np.minimum(np.arange(classes.shape[-1]) * patch + patch // 2, cols - 1)
    for k in range(n):
        out[k] = np.roll(frames[k], tuple(drift[k]), axis=(-2, -1))
        up = np.repeat(np.repeat(classes[k], patch, -2), patch, -1)[..., :rows, :cols]
        lab[k] = np.roll(up, tuple(drift[k]), axis=(-2, -1))[:, r][:, :, c]
    return out, lab, drift


def drift_errors(found: np.ndarray, applied: np.ndarray) -> tuple[float, float, np.ndarray]:
    """How far a registered drift is from the applied one (pixels): the largest error over the
    layers and axes; the largest once the straight line that best fits the errors (layer index ->
    error) is removed (the part that the lines' continuity measures: a linear trend of the drift
    is the same as inclining every line); the per-layer trend itself (layers, 2)."""
    e = np.asarray(found, dtype=np.float64) - np.asarray(applied, dtype=np.float64)
    k = np.arange(len(e), dtype=np.float64)
    coef = np.polyfit(k, e, 1) if len(e) > 1 else np.zeros((2, 2))
    trend = np.outer(k, coef[0]) + coef[1]
    return float(np.abs(e).max()), float(np.abs(e - trend).max()), trend
