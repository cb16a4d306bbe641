"""Line ends imaged in one tail of the rocking curve only: the image of a line just outside the slab.

Around a dislocation core the lattice turns one way on one side and the other way on the other
(b / (2 pi r), signed lobes), so where the core lies inside the illuminated slab its image shows
in both tails of the rocking curve (:mod:`.tails`). Where the line has left the slab (above or
below it, 0.1-0.3 um), the slab only sees the near side of its strain field, and mostly one sign
of rotation: the end of its image shows in one tail. On the benchmark scans the false skeleton
points on lines just outside the slab read a tail balance of 0.01-0.27 (median per scan) against
0.20-0.77 for the true ones. :func:`peel_one_tail_ends` takes such ends off the centre lines (the
points), not off the mask (issue 10, precision; docs/reconstruction.md, step 8).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from .segmentation import dim_skeleton_ends


def tail_balance(tails: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per pixel of ``mask``: the weaker of the two tails over the stronger (their 3 x 3 means,
    zero past the field's edge, each scaled to its maximum over the pixel's object), float32 in
    [0, 1]; 1 where neither tail was kept (no evidence), 0 outside the mask. ``tails``: (2, rows,
    cols), the low and high tails (:func:`.tails.tail_images`). Only the mask's pixels are read
    (~1 ms per 512 x 512 layer)."""
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    out = np.zeros(lab.shape, np.float32)
    if not n:
        return out
    rr, cc = np.nonzero(lab)
    k = lab[rr, cc]
    scaled = []
    for side in np.asarray(tails):
        padded = np.pad(side, 1)
        v = np.zeros(len(rr), np.float32)
        for dr in (0, 1, 2):
            for dc in (0, 1, 2):
                v += padded[rr + dr, cc + dc]
        top = np.zeros(n + 1, np.float32)
        np.maximum.at(top, k, v)
        scaled.append(v / np.maximum(top[k], np.float32(1e-12)))
    lo, hi = scaled
    most = np.maximum(lo, hi)
    out[rr, cc] = np.where(most > 0, np.minimum(lo, hi) / np.maximum(most, np.float32(1e-12)), np.float32(1))
    return out


def peel_one_tail_ends(skeleton: np.ndarray, mask: np.ndarray, tails: np.ndarray | None, fraction: float) -> np.ndarray:
    """``skeleton`` (the centre lines of ``mask``) less its ends imaged in one tail only: each
    centre line is peeled from its ends inward while :func:`tail_balance` is below ``fraction``
    of its best point's (:func:`.segmentation.dim_skeleton_ends`). The mask keeps them: they are
    the image of the line just outside the slab, which the line tracing uses (a piece's extent
    and centre), but no core in the slab. ``tails`` None (not kept) or ``fraction`` 0:
    ``skeleton`` unchanged."""
    if tails is None or fraction <= 0 or not skeleton.any():
        return skeleton
    value = np.where(skeleton, tail_balance(tails, mask), np.float32(0))
    return skeleton & ~dim_skeleton_ends(skeleton, value, fraction)
