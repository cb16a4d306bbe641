"""Line ends imaged in one tail of the rocking curve only: the image of a line just outside the slab.

Around a dislocation core the lattice turns one way on one side and the other way on the other
(b / (2 pi r), signed lobes), so where the core lies inside the illuminated slab its image shows
in both tails of the rocking curve (:mod:`.tails`). Where the line has left the slab (above or
below it, 0.1-0.3 um), the slab only sees the near side of its strain field, and mostly one sign
of rotation: the end of its image shows in one tail. On the benchmark scans the false skeleton
points on lines just outside the slab read a tail balance of 0.01-0.27 (median per scan) against
0.20-0.77 for the true ones. :func:`trim_one_tail_ends` peels such ends (issue 10, precision;
docs/reconstruction.md, step 7).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology

from .segmentation import dim_skeleton_ends, drop_peeled, object_peaks


def tail_balance(tails: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per pixel of ``mask``: the weaker of the two tails over the stronger (their 3 x 3 means,
    each scaled to its maximum over the pixel's object), float32 in [0, 1]; 1 where neither
    tail was kept (no evidence), 0 outside the mask. ``tails``: (2, rows, cols), the low and high
    tails (:func:`.tails.tail_images`)."""
    t = np.asarray(tails, dtype=np.float32)
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    out = np.zeros(lab.shape, np.float32)
    if not n:
        return out
    inside = lab > 0
    k = lab[inside]
    scaled = []
    for side in t:
        v = ndi.uniform_filter(side, 3)
        top = object_peaks(v, lab, n)
        scaled.append(v[inside] / np.maximum(top[k - 1], 1e-12).astype(np.float32))
    lo, hi = scaled
    most = np.maximum(lo, hi)
    out[inside] = np.where(most > 0, np.minimum(lo, hi) / np.maximum(most, 1e-12), 1.0)
    return out


def trim_one_tail_ends(mask: np.ndarray, tails: np.ndarray | None, fraction: float) -> np.ndarray:
    """``mask`` less the ends of its objects' centre lines imaged in one tail only: each skeleton
    is peeled from its ends inward while :func:`tail_balance` is below ``fraction`` of its best
    point's (:func:`.segmentation.dim_skeleton_ends`), with the mask pixels nearest the peeled
    points. ``tails`` None (not kept) or ``fraction`` 0: ``mask`` unchanged."""
    if tails is None or fraction <= 0 or not mask.any():
        return mask
    skel = morphology.skeletonize(mask)
    value = np.where(skel, tail_balance(tails, mask), np.float32(0))
    return drop_peeled(mask, skel, dim_skeleton_ends(skel, value, fraction))
