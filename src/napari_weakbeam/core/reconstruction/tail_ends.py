"""Line ends imaged in one tail of the rocking curve only: the image of a line just outside the slab.

Around a dislocation core the lattice turns one way on one side and the other way on the other
(b / (2 pi r), signed lobes), so where the core lies inside the illuminated slab its image shows
in both tails of the rocking curve (:mod:`.tails`). Where the line has left the slab (above or
below it, 0.1-0.3 um), the slab only sees the near side of its strain field, and mostly one sign
of rotation: the end of its image shows in one tail. On the benchmark scans the false skeleton
points over a line within 0.5 um of the slab read a tail balance (median per scan) of 0.08-0.33
on our simulator's and 0.01-0.03 on four dfxm-geo scans (0.8-0.9 on two more, 3-4 such points
each), against 0.30-0.53 and 0.20-0.77 for the true points. :func:`peel_one_tail_ends` takes such ends off the centre lines (the
points), not off the mask (issue 10, precision; docs/reconstruction.md, step 8). The balance is
read along the centre line (:func:`along_line_median`): a line's tip, where the mask ends and the
weaker tail is at its noise, reads one point's chance balance that alone had stopped the peel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .segmentation import _NEIGHBOURS, dim_skeleton_ends, object_medians
from .tails import TAIL_GROW_PX


def tail_balance(tails: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per pixel of ``mask``: the weaker of the two tails over the stronger (their 3 x 3 means,
    zero past the field's edge, each scaled to its maximum over the pixel's object), float32 in
    [0, 1]; 1 where neither tail was kept (no evidence), 0 outside the mask. ``tails``: (2, rows,
    cols), the low and high tails (:func:`.tails.tail_images`). Only the mask's pixels are read."""
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


def along_line_median(skeleton: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``score`` (float32) with each point of ``skeleton`` given the median of its own and its
    skeleton neighbours' scores (the lower of the two middle values where they are even: an end
    point takes the lower of its own and its neighbour's). One point's reading, e.g. a line's
    tip whose 3 x 3 tails hold mostly noise, neither stops a peel nor starts one; a stretch of
    two or more points reads as it is. Off the skeleton ``score`` is unchanged."""
    out = np.array(score, dtype=np.float32)
    rr, cc = np.nonzero(skeleton)
    if not len(rr):
        return out
    padded = np.full((skeleton.shape[0] + 2, skeleton.shape[1] + 2), np.inf, np.float32)
    padded[rr + 1, cc + 1] = out[rr, cc]
    near = np.sort(np.stack([padded[rr + 1, cc + 1]] + [padded[rr + 1 + dr, cc + 1 + dc] for dr, dc in _NEIGHBOURS],
                            axis=1), axis=1)  # off-skeleton neighbours (inf) sort last
    n = np.isfinite(near).sum(axis=1)
    out[rr, cc] = near[np.arange(len(rr)), (n - 1) // 2]
    return out


#: The peel stops at a point this bright (its 3 x 3 maximum on the map) against its line's peak:
#: the image of a line outside the slab is weaker than its core inside it (the false ends read
#: 0.45-0.78 of their object's peak, median per benchmark scan; a bright stretch seen in one tail
#: is a line lying in the slab whose other tail is weak, as on one dfxm-geo streak).
BRIGHT_FRACTION = 0.8
#: Skeleton points this close to the field's edge (pixels; a skeleton stops 1-2 px short of its
#: mask's edge) are never peeled: a line cut by the field has no end there.
EDGE_PX = 3


def peel_one_tail_ends(skeleton: np.ndarray, mask: np.ndarray, tails: np.ndarray | None, fraction: float,
                       image: np.ndarray) -> np.ndarray:
    """``skeleton`` (the centre lines of ``mask``) less its ends imaged in one tail only: each
    centre line is peeled from its ends inward while :func:`tail_balance`, read along the line
    (:func:`along_line_median`), is below ``fraction`` of its best point's (:func:`peel_ends`, which never peels a point near the field's edge or
    bright on ``image``, the map). The mask keeps the peeled ends: they are the image of the line
    just outside the slab, which the line tracing uses (a piece's extent and centre), but no core
    in the slab. ``tails`` None (not kept) or ``fraction`` 0: ``skeleton`` unchanged."""
    if tails is None or fraction <= 0 or not skeleton.any():
        return skeleton
    return peel_ends(skeleton, along_line_median(skeleton, tail_balance(tails, mask)), fraction, image)


def peel_ends(skeleton: np.ndarray, score: np.ndarray, fraction: float, image: np.ndarray) -> np.ndarray:
    """``skeleton`` peeled from its ends inward while ``score`` (per pixel, 1 the best it reads)
    is below ``fraction`` (:func:`.segmentation.dim_skeleton_ends`), stopping at a point within
    ``EDGE_PX`` of the field's edge (a line cut by the field has no end there) or as bright on
    ``image`` (its 3 x 3 maximum) as ``BRIGHT_FRACTION`` of its line's peak."""
    rr, cc = np.nonzero(skeleton)
    if not len(rr) or fraction <= 0:
        return skeleton
    padded = np.pad(np.asarray(image, dtype=np.float32), 1, mode="edge")
    bright = np.max([padded[rr + 1 + dr, cc + 1 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
    lab, n = ndi.label(skeleton, structure=np.ones((3, 3)))
    k = lab[rr, cc]
    peak = np.full(n + 1, -np.inf, np.float32)
    np.maximum.at(peak, k, bright)
    rows, cols = skeleton.shape
    keep = (bright >= BRIGHT_FRACTION * peak[k]) | (np.minimum(rr, rows - 1 - rr) < EDGE_PX) \
        | (np.minimum(cc, cols - 1 - cc) < EDGE_PX)
    value = np.zeros(skeleton.shape, np.float32)
    value[rr, cc] = np.where(keep, np.float32(1), np.asarray(score, np.float32)[rr, cc])
    return skeleton & ~dim_skeleton_ends(skeleton, value, fraction)


#: :func:`drop_one_tail_lines` reads no evidence in a layer whose weaker tail holds less than this
#: share of its stronger, over the whole layer (0.2-1.0 on the 36 layers of the benchmark scans and
#: dfxm-geo stacks, the short-range scans 0.79 and 0.97).
LAYER_TAILS_SHARE = 0.1
#: :func:`drop_one_tail_lines` keeps a line bright in more than this share of the layer's weak-beam
#: frames (its median point's :class:`.few_frames.FrameCount`): a core, seen in one tail only where
#: the frames sample the two sides of the curve at different distances from the peak (dfxm-geo's
#: dense network at 15 frames: 5 such lines of 3-6 points, 0.25-0.5 of the frames, recall 0.962 ->
#: 0.940 without this guard); the contours are bright in 0.03-0.1 of them.
ONE_TAIL_MAX_FRAMES = 0.2


def drop_one_tail_lines(skeleton: np.ndarray, tails: np.ndarray | None, share: float,
                        counts: np.ndarray | None = None, wb_frames: int = 0) -> np.ndarray:
    """``skeleton`` less its centre lines (8-connected objects) imaged in one tail of the rocking
    curve only: the weaker tail holds less than ``share`` of the stronger (``one_tail_share``),
    each summed over the pixels within ``TAIL_GROW_PX`` of the line (a pixel counts for its
    nearest line; the tails as :func:`.tails.tail_images` keeps them, each scaled to its layer
    maximum).

    A core inside the slab shows in both tails, one lobe on each side (:mod:`.tails`); a line
    outside the slab, or the contour where a distant line's rotation field turns the lattice
    to the frame's angle, shows in one. On dfxm-geo's 4-layer stacks, below 0.05 lay 176 of the
    upper layers' 502 false points (rotation contours 2-6 um from any core) and 9 of their 695
    true ones; on the 16 benchmark scans 24 false and 2 true points (dfxm-geo), none of ours
    (0.1: 179 / 11 and 26 / 9). Where the whole layer's weaker tail holds less than
    ``LAYER_TAILS_SHARE`` of its stronger (a scan of one side of the curve: every line there
    shows in one tail), ``tails`` is None (not kept) or ``share`` 0: ``skeleton`` unchanged. With
    the layer's frame ``counts`` and its ``wb_frames``, a line bright in more than
    ``ONE_TAIL_MAX_FRAMES`` of the frames stays (:data:`ONE_TAIL_MAX_FRAMES`)."""
    if tails is None or share <= 0 or not skeleton.any():
        return skeleton
    t = np.asarray(tails, dtype=np.float64)
    whole = t.reshape(2, -1).sum(axis=1)
    if whole.min() < LAYER_TAILS_SHARE * whole.max():
        return skeleton  # the layer shows one tail only (a scan of one side of the curve): no evidence
    lab, n = ndi.label(skeleton, structure=np.ones((3, 3)))
    dist, (ir, ic) = ndi.distance_transform_edt(~skeleton, return_indices=True)
    owner = np.where(dist <= TAIL_GROW_PX, lab[ir, ic], 0).ravel()
    low = np.bincount(owner, weights=t[0].ravel(), minlength=n + 1)
    high = np.bincount(owner, weights=t[1].ravel(), minlength=n + 1)
    one = np.minimum(low, high) < share * np.maximum(low, high)
    one[0] = False
    if counts is not None and wb_frames > 0 and one.any():
        one &= object_medians(counts, lab, n) <= ONE_TAIL_MAX_FRAMES * wb_frames
    return skeleton & ~one[lab]
