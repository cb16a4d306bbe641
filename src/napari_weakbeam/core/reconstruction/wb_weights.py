"""Per-pixel weak-beam weights from per-patch labels or probabilities.

The weights are blended bilinearly between patch centres, so a map made from them has no seams at
patch borders (:func:`wb_weights`).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import WeakbeamError
from ..patches import STRONG_BEAM, WEAK_BEAM, grid_shape


def infer_patch_size(frame_shape: tuple[int, int], grid: tuple[int, int]) -> int:
    """The patch size P whose grid over ``frame_shape`` is ``grid`` (the smallest such P)."""
    rows, cols = frame_shape
    gr, gc = grid
    if gr < 1 or gc < 1:
        raise WeakbeamError(f"label grid {grid} is empty")
    for p in range(max(1, math.ceil(rows / gr)), max(rows, cols) + 1):
        if grid_shape(frame_shape, p) == (gr, gc):
            return p
        if math.ceil(rows / p) < gr:
            break
    raise WeakbeamError(f"labels of grid {gr}x{gc} fit no patch size for frames of {rows}x{cols}")


def patch_weights(labels: np.ndarray, use_ambiguous: bool = True) -> np.ndarray:
    """Per-patch WB weights in [0, 1]: float arrays are WB probabilities (NaN -> the class rule is
    not available, so 1 if ``use_ambiguous`` else 0); integer arrays are classes (WB 1, SB 0,
    unclassified 1 if ``use_ambiguous`` else 0)."""
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.floating):
        w = np.clip(labels.astype(np.float32), 0, 1)
        return np.where(np.isfinite(w), w, np.float32(1.0 if use_ambiguous else 0.0)).astype(np.float32)
    keep = (labels == WEAK_BEAM) | ((labels != STRONG_BEAM) if use_ambiguous else False)
    return keep.astype(np.float32)


def centre_interp(n_px: int, n_patch: int, patch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation from patch centres to pixels (flat beyond the outer centres): for each
    pixel the two patch indices and the weight of the second."""
    pos = (np.arange(n_px) - (patch_size - 1) / 2) / patch_size
    pos = np.clip(pos, 0, n_patch - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_patch - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def blend_patches(w: np.ndarray, rows_i: tuple, cols_i: tuple) -> np.ndarray:
    """Bilinear interpolation of one patch grid ``w`` (gr, gc) to pixels (no BLAS: no spinning
    threads on a busy machine)."""
    r0, r1, fr = rows_i
    c0, c1, fc = cols_i
    wr = w[r0] * (1 - fr)[:, None] + w[r1] * fr[:, None]  # (rows, gc)
    return wr[:, c0] * (1 - fc) + wr[:, c1] * fc


def wb_weights(labels: np.ndarray, patch_size: int, frame_shape: tuple[int, int], use_ambiguous: bool = True) -> np.ndarray:
    """Per-pixel WB weights (..., rows, cols) float32: the per-patch weights (:func:`patch_weights`)
    blended bilinearly between patch centres, so the weight changes smoothly across patch borders."""
    w = patch_weights(labels, use_ambiguous)
    ri = centre_interp(frame_shape[0], w.shape[-2], patch_size)
    ci = centre_interp(frame_shape[1], w.shape[-1], patch_size)
    flat = w.reshape((-1,) + w.shape[-2:])
    out = np.stack([blend_patches(g, ri, ci) for g in flat]) if len(flat) else np.zeros((0,) + tuple(frame_shape), np.float32)
    return out.reshape(w.shape[:-2] + tuple(frame_shape)).astype(np.float32, copy=False)
