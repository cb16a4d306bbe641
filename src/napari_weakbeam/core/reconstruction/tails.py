"""Where a line's core lies in a layer: between its images in the two tails of the rocking curve.

A dislocation's weak-beam image in one tail of the rocking curve sits on one side of its core
(the side whose lattice rotation brings it into that tail), and in the other tail on the other
side; in a sub-grain wall, whose tilt step favours one tail, the mask's centroid leans to one
side (measured on our simulator's walls: 0.07-0.18 um median, each tail alone 0.16-0.27 um).
:func:`tail_images` keeps, around a layer's mask, the intensity of each tail (frames more than
``TAIL_GAP`` frames below / above the local rocking-curve centre); :func:`tail_centre` puts a
piece (a steep line's dot or a shallow line's streak) at the mean of the two tails' centroids
(0.03-0.10 um from the cores there). See docs/reconstruction.md.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

TAIL_GAP = 1.5  # frames from the local rocking-curve centre where a tail starts (0.5-3 measured alike)
TAIL_GROW_PX = 2  # a piece's tail centroids are taken this far around it
TAIL_KEEP_PX = 6  # the tails are kept this far around the layer's own mask (the scan-wide mask may reach further)
CENTRE_SMOOTH_PX = 15  # the local rocking-curve centre: the registration image (binned) smoothed over this
TAIL_FLOOR_PERCENTILE = 60  # a tail's centroid weighs its intensity above this percentile over the piece (30-70 measured alike)


def tail_images(frames: np.ndarray, angles: np.ndarray | None, mask: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """(2, rows, cols) float16: the low and high tails' intensity (dark level removed, each scaled
    to its maximum) within ``TAIL_KEEP_PX`` of ``mask``, 0 elsewhere.

    ``frames`` (n, rows, cols) and their ``angles`` (None: in angle order; frames without an
    angle are left out); ``reg``: the layer's registration image (the per-pixel rocking-curve
    centre in frame-rank units on every REG_BIN-th pixel, :func:`.drift.registration_image`),
    smoothed into the local centre that the tails are counted from."""
    f = np.asarray(frames)
    n, rows, cols = f.shape
    x = np.arange(n, dtype=np.float32)
    if angles is not None:  # as the registration image counts them
        a = np.asarray(angles, dtype=np.float64)
        x = np.argsort(np.argsort(a)).astype(np.float32)
        f, x, n = f[np.isfinite(a)], x[np.isfinite(a)], int(np.isfinite(a).sum())
    out = np.zeros((2, rows, cols), np.float16)
    if n < 3:
        return out
    near = ndi.binary_dilation(np.asarray(mask, dtype=bool), iterations=TAIL_KEEP_PX)
    r, c = np.nonzero(near)
    if not len(r):
        return out
    centre = ndi.uniform_filter(np.asarray(reg, dtype=np.float32), CENTRE_SMOOTH_PX)
    step = max(rows // centre.shape[0], 1), max(cols // centre.shape[1], 1)
    mid = centre[np.minimum(r // step[0], centre.shape[0] - 1), np.minimum(c // step[1], centre.shape[1] - 1)]
    b = f[:, r, c].astype(np.float32)
    b -= b.min(axis=0, keepdims=True)
    idx = x[:, None]
    for k, side in enumerate((idx < mid[None] - TAIL_GAP, idx > mid[None] + TAIL_GAP)):
        w = (b * side).sum(axis=0)
        out[k, r, c] = (w / max(float(w.max()), 1e-12)).astype(np.float16)
    return out


def tail_centre(rows: np.ndarray, cols: np.ndarray, tails: np.ndarray) -> np.ndarray | None:
    """The mean of the two tails' centroids (row, col, in pixels) over the pixels ``rows``,
    ``cols`` (a piece grown by ``TAIL_GROW_PX``), each tail weighted by its intensity above its
    ``TAIL_FLOOR_PERCENTILE`` (60th) percentile there: the image's core (with the 20th, the noise
    of a low-exposure scan, spread over the whole grown piece, pulled each centroid towards the
    piece's middle, which leans to the brighter tail's side); None where a tail holds nothing
    there or the tails were not kept over all of it."""
    t = np.asarray(tails[:, rows, cols], dtype=np.float64)
    if not np.all(t.any(axis=0)):
        return None
    both = _centroids(t, rows, cols)
    return None if both is None else 0.5 * both.sum(axis=0)


def tail_centroids(rows: np.ndarray, cols: np.ndarray, tails: np.ndarray) -> np.ndarray | None:
    """(2, 2): the low and the high tail's centroid (row, col, in pixels) over the pixels
    ``rows``, ``cols``, each tail weighted by its intensity above its ``TAIL_FLOOR_PERCENTILE``
    percentile there; None where a tail holds nothing above it."""
    return _centroids(np.asarray(tails[:, rows, cols], dtype=np.float64), rows, cols)


def _centroids(t: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
    """:func:`tail_centroids` of the tails' values ``t`` (2, n) at ``rows``, ``cols``."""
    if not t.shape[1]:
        return None
    # np.percentile's linear rule on the sorted rows (the same values; np.percentile's overhead
    # was a third of the time on a layer of small objects)
    srt = np.sort(t, axis=1)
    at = (t.shape[1] - 1) * TAIL_FLOOR_PERCENTILE / 100.0
    lo = int(np.floor(at))
    hi = min(lo + 1, t.shape[1] - 1)
    floor = srt[:, lo] + (srt[:, hi] - srt[:, lo]) * (at - lo)
    w = np.maximum(t - floor[:, None], 0.0)
    total = w.sum(axis=1)
    if np.any(total <= 0):
        return None
    return (w @ np.column_stack([rows, cols]).astype(np.float64)) / total[:, None]
