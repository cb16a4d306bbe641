"""Where a scan stops before one tail of a patch's rocking curve, the frames between the patch's
half maximum and its weak-beam border on the other side count for the map.

The classifier learns the clear cases: strong beam within the half maximum of the patch's own
rocking curve (u <= 1), weak beam beyond twice it (u >= 2). Between them it is unsure (P(WB)
0.05-0.6). Where the scan reaches both tails, the map needs none of those frames. Where it stops
before one tail (no frame at u <= -2, or none at u >= 2), a line's core is bright mostly in the
in-between frames of the side that has its tail (on that far tail the strain lobe beside the core
is brighter): dfxm-geo short range reads recall 0.28 without them and 0.88 with them
(docs/benchmarks.md). So where the labels are a classifier's probabilities,
:func:`with_band_frames` counts as weak beam, in each patch whose measured curve the scan cuts
before one tail, the frames beyond the half maximum on the side that has its tail. Counted in
every patch they cost recall at low exposure (the wall stacks at 100 ADU: 0.95 -> 0.84); counted
on the cut side too, recall on our short-range scan (0.995 -> 0.979). Patches that hold
non-diffracting pixels are left to the classifier: there the in-between frames image the grain's
outline, a step the map takes for a line.

Before that, :func:`map_weights` caps a classifier's WB weight by the patch's own curve
(:func:`curve_cap`: 0 at the half maximum, 1 at the weak-beam border): its 64 px patches give
P(WB) 0.3-0.99 to frames at u 1.1-1.6, which brought strain lobes seen near the peak into the map
(ours short range precision 0.875 -> 0.900, dfxm-geo isolated lines recall 0.957 -> 1.000,
docs/benchmarks.md step 11).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..classification.rocking_aid import MIN_FRAMES, curve_offsets, patch_curves
from ..errors import WeakbeamError
from ..patches import SB_MAX_U, WB_MIN_U, cut_before_a_tail, grid_shape
from .wb_weights import infer_patch_size

BAND_U = SB_MAX_U  # the half maximum: u = |phi - phi0| / half width (0.75-1.1 measured alike, 1.25 not)
OUTSIDE_CONTRAST = 10.0  # the diffracting part of a layer holds this many times more rocking contrast than the rest (measured ~900 against <= 2.3 where all diffracts)


def non_diffracting(frames: np.ndarray) -> np.ndarray:
    """Pixels (rows, cols) bool that do not diffract in this layer (outside the grain): the
    range of each pixel's rocking curve (3 x 3 mean, every 2nd pixel) falls in two classes
    (Otsu on its log) at least ``OUTSIDE_CONTRAST`` apart (:func:`low_range_class`); all False
    where it does not."""
    f = np.asarray(frames)
    rows, cols = f.shape[1:]
    smooth = [ndi.uniform_filter(np.asarray(fr[::2, ::2], dtype=np.float32), size=3) for fr in f]
    stack = np.stack(smooth)
    coarse = low_range_class(stack.max(axis=0) - stack.min(axis=0))
    if coarse is None:
        return np.zeros((rows, cols), bool)
    return np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[:rows, :cols]


def low_range_class(span: np.ndarray) -> np.ndarray | None:
    """The pixels (bool) of the lower of two classes of rocking-curve ranges ``span`` (Otsu on its
    log), or None where the classes are not ``OUTSIDE_CONTRAST`` apart (or there is one): the
    pixels that do not diffract."""
    from skimage.filters import threshold_otsu

    log_span = np.log(np.maximum(span, 1e-3))
    if log_span.max() - log_span.min() < 1e-6:
        return None
    t = threshold_otsu(log_span)
    low, high = log_span[log_span < t], log_span[log_span >= t]
    if not len(low) or not len(high) or float(high.mean() - low.mean()) < np.log(OUTSIDE_CONTRAST):
        return None
    return log_span < t


def _curve_and_clean(frames: np.ndarray, angles: np.ndarray | None, patch_size: int,
                     outside: np.ndarray | None = None):
    """Signed offsets u (n, gr, gc) of each patch-frame from its patch's own rocking-curve peak,
    in half widths (NaN: not measurable), and per patch (gr, gc) whether it holds no
    non-diffracting pixel (``outside``: :func:`non_diffracting`, computed here when None); None
    with fewer than the aid's ``MIN_FRAMES`` frames."""
    f = np.asarray(frames)
    n = f.shape[0]
    x = np.arange(n, dtype=np.float64) if angles is None else np.asarray(angles, dtype=np.float64)
    if n < MIN_FRAMES or int(np.count_nonzero(np.isfinite(x))) < MIN_FRAMES:
        return None
    u = curve_offsets(patch_curves(f, patch_size), x, signed=True)  # NaN: not measurable
    gr, gc = grid_shape(f.shape[1:], patch_size)
    outside = non_diffracting(f) if outside is None else np.asarray(outside, dtype=bool)
    padded = np.zeros((gr * patch_size, gc * patch_size), bool)
    padded[: outside.shape[0], : outside.shape[1]] = outside
    clean = ~padded.reshape(gr, patch_size, gc, patch_size).any(axis=(1, 3))
    return u, clean


def _promoted(prob: np.ndarray, u: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``prob`` with 1 for the frames beyond the half maximum on the tail side of the clean
    patches that the scan cuts before one tail (:func:`with_band_frames`)."""
    cut = cut_before_a_tail(u)
    if not cut.any():
        return prob
    with np.errstate(invalid="ignore"):
        low_tail, high_tail = (u <= -WB_MIN_U).any(axis=0), (u >= WB_MIN_U).any(axis=0)
        tail_side = ((u < 0) & low_tail[None]) | ((u > 0) & high_tail[None])
        beyond = np.abs(u) > BAND_U
    return np.where(beyond & tail_side & (cut & clean)[None], np.float32(1.0), prob).astype(np.float32)


def with_band_frames(prob: np.ndarray, frames: np.ndarray, angles: np.ndarray | None, patch_size: int) -> np.ndarray:
    """Per-patch WB weights (n, gr, gc) float32: the classifier's probabilities ``prob``, and 1
    for the frames beyond the half maximum (|u| > ``BAND_U``) on the side that has its tail, in
    each patch whose measured rocking curve the scan cuts before the other tail
    (:func:`~..patches.cut_before_a_tail`) and that holds no non-diffracting pixel. ``frames``
    (n, rows, cols), ``angles`` (n,) (None: frame indices). Left as they are with fewer than the
    aid's ``MIN_FRAMES`` frames."""
    prob = np.asarray(prob, dtype=np.float32)
    got = _curve_and_clean(frames, angles, patch_size)
    return prob if got is None else _promoted(prob, *got)


def curve_cap(u: np.ndarray) -> np.ndarray:
    """The most WB weight (n, gr, gc) float32 a patch-frame's own curve allows: 0 within the half
    maximum (|u| <= ``SB_MAX_U``), 1 from the weak-beam border (``WB_MIN_U``), linear between;
    1 where u is not measurable (NaN)."""
    with np.errstate(invalid="ignore"):
        cap = np.clip((np.abs(u) - SB_MAX_U) / (WB_MIN_U - SB_MAX_U), 0.0, 1.0)
    return np.where(np.isfinite(u), cap, 1.0).astype(np.float32)


def is_probability(labels: np.ndarray | None) -> bool:
    """Whether ``labels`` are a classifier's WB probabilities (float), which the curve caps and the
    band frames adjust; class labels (hand labels, the truth) are used as they are."""
    return labels is not None and np.issubdtype(np.asarray(labels).dtype, np.floating)


def local_curve_bounds(frames: np.ndarray, angles: np.ndarray | None, block: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The most and the least WB weight (each (n, gr, gc) float32) that each ``block`` x ``block``
    block's own rocking curve allows each frame, or None with fewer than the aid's ``MIN_FRAMES``
    frames or where the curves cannot be measured.

    The most: :func:`curve_cap` of the frame's offset u from the block's peak, 1 in the blocks the
    scan cuts before one tail (there the frames beyond the half maximum hold a line's image,
    :func:`with_band_frames`). A patch's label says where its curve's tails are; within it, a
    sub-grain, a rotation field or the grain's edge moves the local curve, and a pixel still at
    its own peak in a frame its patch calls weak beam is strong beam there (the grain's edge then
    made false lines: held-out grain scans, docs/benchmarks.md step 20).

    The least: 1 where the frame lies in the block's own tail (|u| >= ``WB_MIN_U``, in a block the
    scan does not cut before a tail), 0 elsewhere. The converse: a patch holding sub-grains that
    peak in different frames is called strong beam by its brightest part, while a sub-grain deep
    in its own tail shows its lines in weak beam (dfxm-geo's held-out walls and dense network:
    recall 0.55 / 0.74 end to end, docs/benchmarks.md step 21)."""
    f = np.asarray(frames)
    x = np.arange(f.shape[0], dtype=np.float64) if angles is None else np.asarray(angles, dtype=np.float64)
    if f.shape[0] < MIN_FRAMES or int(np.count_nonzero(np.isfinite(x))) < MIN_FRAMES:
        return None
    try:
        u = curve_offsets(patch_curves(f, block), x, signed=True)
    except WeakbeamError:
        return None
    cut = cut_before_a_tail(u)[None]
    with np.errstate(invalid="ignore"):
        tail = (np.abs(u) >= WB_MIN_U) & ~cut
    most = np.where(cut, np.float32(1.0), curve_cap(u)).astype(np.float32)
    return most, tail.astype(np.float32)


def map_weights(labels: np.ndarray, frames: np.ndarray, angles: np.ndarray | None, patch_size: int | None,
                band: bool = True, cap: bool = True, outside: np.ndarray | None = None) -> np.ndarray:
    """Per-patch WB weights (n, gr, gc) for the map. A classifier's probabilities (float ``labels``,
    one grid per frame): with ``cap``, in patches without non-diffracting pixels, no higher than
    :func:`curve_cap` of the patch's measured curve (the classifier's WB call on a frame near the
    patch's own peak is weighed by how far beyond the half maximum the data put it); then, with
    ``band``, the band frames of :func:`with_band_frames`. Class labels, labels that do not match
    the frames (left to the map's own checks) and layers of fewer than ``MIN_FRAMES`` frames are
    returned as they are. ``patch_size`` None: inferred from the grid; ``outside``: the layer's
    :func:`non_diffracting` pixels, if already known."""
    if not (band or cap) or not is_probability(labels) or np.ndim(labels) != 3 or len(labels) != len(frames):
        return labels
    prob = np.asarray(labels, dtype=np.float32)
    p = patch_size or infer_patch_size(np.shape(frames)[1:], prob.shape[1:])
    got = _curve_and_clean(frames, angles, p, outside)
    if got is None:
        return prob
    u, clean = got
    if cap:
        prob = np.where(clean[None], np.minimum(prob, curve_cap(u)), prob).astype(np.float32)
    return _promoted(prob, u, clean) if band else prob
