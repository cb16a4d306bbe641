"""The patch grid: a frame is tiled from the top-left corner by P x P patches.

A partial tile at the right or bottom edge is padded (edge values), so the grid is
ceil(rows/P) x ceil(cols/P) and every pixel belongs to one patch. Labels and predictions live at
patch resolution: 0 = unlabelled / not classified, 1 = weak beam (WB), 2 = strong beam (SB).
"""

from __future__ import annotations

import math

import numpy as np

UNLABELLED = 0
WEAK_BEAM = 1
STRONG_BEAM = 2
CLASS_NAMES = {UNLABELLED: "unlabelled", WEAK_BEAM: "weak beam", STRONG_BEAM: "strong beam"}
# The same palette everywhere (napari layers, plots, screenshots).
CLASS_COLOURS = {WEAK_BEAM: "#f5a623", STRONG_BEAM: "#2d7ff9"}
#: The class of a frame from its offset u from the local peak in half widths (HWHM): at or below
#: SB_MAX_U (at least half the peak) strong beam, at or above WB_MIN_U weak beam, 0 between. The
#: simulator's truth and the rocking-curve aid use this one rule.
SB_MAX_U = 1.0
WB_MIN_U = 2.0


def cut_before_a_tail(u: np.ndarray) -> np.ndarray:
    """Per patch (gr, gc) bool: whether the scan stops before one tail of its rocking curve, given
    the signed offsets ``u`` (n, gr, gc) of its frames from the patch's own peak in half widths: no
    frame at u <= -WB_MIN_U, or none at u >= WB_MIN_U. False where u is not measurable (NaN)."""
    u = np.asarray(u, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        reach = (u <= -WB_MIN_U).any(axis=0) & (u >= WB_MIN_U).any(axis=0)
    return ~reach & np.isfinite(u).any(axis=0)


def classes_from_u(u: np.ndarray) -> np.ndarray:
    """u -> class codes (uint8): WB where u >= WB_MIN_U, SB where u <= SB_MAX_U, 0 between (and
    where u is NaN)."""
    out = np.full(np.shape(u), UNLABELLED, np.uint8)
    with np.errstate(invalid="ignore"):
        out[u >= WB_MIN_U] = WEAK_BEAM
        out[u <= SB_MAX_U] = STRONG_BEAM
    return out


def grid_shape(frame_shape: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """Number of patch rows and columns that cover a frame of ``frame_shape``."""
    if patch_size < 1:
        raise ValueError(f"patch size must be >= 1, got {patch_size}")
    return math.ceil(frame_shape[0] / patch_size), math.ceil(frame_shape[1] / patch_size)


def pad_to_grid(image: np.ndarray, patch_size: int) -> np.ndarray:
    """Pad the last two axes (edge mode) up to a multiple of ``patch_size``."""
    rows, cols = image.shape[-2:]
    gr, gc = grid_shape((rows, cols), patch_size)
    pr, pc = gr * patch_size - rows, gc * patch_size - cols
    if pr == 0 and pc == 0:
        return image
    pad = [(0, 0)] * (image.ndim - 2) + [(0, pr), (0, pc)]
    return np.pad(image, pad, mode="edge")


def extract_patches(image: np.ndarray, patch_size: int) -> np.ndarray:
    """Cut a frame (rows, cols) into patches: (grid_rows, grid_cols, P, P), a view where possible."""
    p = patch_size
    padded = pad_to_grid(image, p)
    gr, gc = padded.shape[0] // p, padded.shape[1] // p
    return padded.reshape(gr, p, gc, p).swapaxes(1, 2)


def patch_means(image: np.ndarray, patch_size: int) -> np.ndarray:
    """Mean of each patch over the last two axes: (..., grid_rows, grid_cols), float64."""
    p = patch_size
    image = np.asarray(image)
    if image.dtype.kind in "ui" and int(np.iinfo(image.dtype).max) * p * p < 2**53:
        # integer counts: the float64 sums are exact in any order, so summing without a float64
        # copy of the frame gives the same means, about twice as fast
        padded = pad_to_grid(image, p)
        *lead, rows, cols = padded.shape
        return padded.reshape(*lead, rows // p, p, cols // p, p).sum(axis=(-3, -1), dtype=np.float64) / (p * p)
    padded = pad_to_grid(np.asarray(image, dtype=np.float64), p)
    *lead, rows, cols = padded.shape
    return padded.reshape(*lead, rows // p, p, cols // p, p).mean(axis=(-3, -1))


def upsample_labels(grid: np.ndarray, patch_size: int, frame_shape: tuple[int, int]) -> np.ndarray:
    """Patch-resolution array (..., gr, gc) -> pixel resolution (..., rows, cols)."""
    up = np.repeat(np.repeat(grid, patch_size, axis=-2), patch_size, axis=-1)
    return up[..., : frame_shape[0], : frame_shape[1]]
