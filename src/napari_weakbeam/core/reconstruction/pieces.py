"""The pieces of a layer's mask that the tracing links into lines (:mod:`.lines`).

A :class:`Piece` is one connected component of a layer's mask: its centroid (between the rocking
curve's two tails where they show it, :mod:`.tails`), its in-plane axis and half length, whether
it is elongated (in micrometres, and drawn: in pixels too), whether the field's edge cuts it and,
where lines cross in it, their straight arms (:mod:`.crossings`).
:func:`all_pieces` gives every layer's, one mask in memory at a time; :func:`corrected` moves them
by the drift between layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi

from .crossings import ARM_UM, Segment, piece_arms
from .tails import TAIL_GROW_PX, tail_centre


@dataclass
class Piece:
    """One connected component of a layer's mask: centroid (y, x) um, in-plane unit axis (y, x)
    in um, half length along it (um), the layer index."""

    layer: int
    centre: np.ndarray
    axis: np.ndarray
    half_length: float
    elongated: bool
    edge: bool = False
    """The piece touches the field's edge (cut there)."""
    drawn: bool = True
    """Elongated in pixels too, where the blur is round: a segment drawn across the slab, not a
    steep line's dot that is longer along x only because the x pixels are (~3x in um)."""
    arms: tuple[Segment, ...] = ()
    """Where lines cross in the piece: their segments (centre, axis, half length) um
    (:func:`.crossings.piece_arms`); () where it holds one line."""
    span: tuple[float, float] | None = None
    """Where the layer's centre-line points (the point cloud's) lie along the axis, from ``centre``
    (um); None where they were not given (:func:`layer_pieces`)."""


#: Smallest mask object (pixels) that is a line piece. The segmentation keeps smaller dots (2-4
#: pixels: a steep line's crossing, for the points' recall), but linked into lines they added false
#: lines (wall stacks, drift's trend given: line precision 0.53-0.88 against 0.54-0.93 at 5) and no
#: true length (recall within 0.005 on the 24 benchmark stacks).
MIN_PIECE_PIXELS = 5
MIN_ARMS_PIXELS = 20  # smaller pieces are not searched for crossing lines


def layer_pieces(mask: np.ndarray, layer: int, voxel: tuple[float, float, float], drift_px: np.ndarray | None = None,
                 min_pixels: int = MIN_PIECE_PIXELS, tails: np.ndarray | None = None,
                 skeleton: np.ndarray | None = None) -> list[Piece]:
    """The pieces of one layer's mask in drift-corrected micrometres; with the layer's ``tails``
    (:func:`.tails.tail_images`), each piece is centred between its images in the two tails of
    the rocking curve (:func:`.tails.tail_centre`): a steep line's dot and a shallow line's
    streak alike (the streak's core lies between its two tails' images across it). With the
    layer's ``skeleton`` (the point cloud's centre lines), each piece gets the span of its points
    and a piece holding none is no piece: its points were all judged no core in the slab."""
    lab, n = ndi.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3)))
    if n == 0:
        return []
    dy, dx = (0.0, 0.0) if drift_px is None else (float(drift_px[0]), float(drift_px[1]))
    out = []
    for k, sl in enumerate(ndi.find_objects(lab), start=1):
        r, c = np.nonzero(lab[sl] == k)
        if len(r) < min_pixels:
            continue
        y = (r + sl[0].start - dy) * voxel[1]
        x = (c + sl[1].start - dx) * voxel[2]
        pts = np.column_stack([y, x])
        centre = pts.mean(axis=0)
        cov = np.cov(pts.T) if len(pts) > 2 else np.eye(2) * 1e-12
        evals, evecs = np.linalg.eigh(cov)
        axis = evecs[:, 1]
        proj = (pts - centre) @ axis
        half = float(max(proj.max(), -proj.min()))
        across = float(np.abs((pts - centre) @ evecs[:, 0]).max())
        elongated = bool(evals[1] > 4 * max(evals[0], 1e-12))
        drawn = elongated and _elongated_in_pixels(cov, voxel)
        if tails is not None:
            centre = _tail_centre(lab, k, sl, tails, (dy, dx), voxel, centre)
        arms = ()
        # a piece whose pixels all lie near its axis holds no arm across it (most pieces: skip the skeleton)
        if len(r) >= MIN_ARMS_PIXELS and across >= ARM_UM / 2:
            arms = tuple(piece_arms(lab[sl] == k, (sl[0].start - dy, sl[1].start - dx), voxel))
        span = None
        if skeleton is not None:
            core = _core_span(np.asarray(skeleton[sl], dtype=bool) & (lab[sl] == k), sl, (dy, dx), voxel,
                              centre, axis, arms)
            if core is None:
                continue
            span, arms = core
        edge = sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == lab.shape[0] or sl[1].stop == lab.shape[1]
        out.append(Piece(layer, centre, axis, half, elongated, bool(edge), drawn, arms, span))
    return out


def _core_span(core: np.ndarray, sl: tuple[slice, slice], drift: tuple[float, float], voxel: tuple[float, float, float],
               centre: np.ndarray, axis: np.ndarray, arms: tuple) -> tuple[tuple[float, float], tuple] | None:
    """The span along ``axis`` from ``centre`` of a piece's centre-line points ``core`` (its window
    of the layer's skeleton, bool), and its ``arms`` cut to the span of the points nearest each
    (an arm with none goes); None where the piece holds no point."""
    r, c = np.nonzero(core)
    if not len(r):
        return None
    pts = np.column_stack([(r + sl[0].start - drift[0]) * voxel[1], (c + sl[1].start - drift[1]) * voxel[2]])
    proj = (pts - centre) @ axis
    span = (float(proj.min()), float(proj.max()))
    if not arms:
        return span, arms
    off = np.stack([np.abs((pts - ac) @ np.array([-au[1], au[0]])) + np.maximum(np.abs((pts - ac) @ au) - ah, 0)
                    for ac, au, ah in arms])
    owner = off.argmin(axis=0)
    cut = []
    for g, (ac, au, _) in enumerate(arms):
        t = (pts[owner == g] - ac) @ au
        if len(t):
            cut.append((ac + 0.5 * (t.max() + t.min()) * au, au, 0.5 * float(t.max() - t.min())))
    return span, tuple(cut)


def _elongated_in_pixels(cov: np.ndarray, voxel: tuple[float, float, float]) -> bool:
    """Whether a piece of covariance ``cov`` (y, x um) is elongated (eigenvalues 4:1) in pixels,
    where the blur is round."""
    px = cov / np.outer(voxel[1:], voxel[1:])
    tr, gap = px[0, 0] + px[1, 1], math.hypot(px[0, 0] - px[1, 1], 2 * px[0, 1])
    return bool(tr + gap > 4 * max(tr - gap, 1e-12))


def _tail_centre(lab: np.ndarray, k: int, sl: tuple[slice, slice], tails: np.ndarray, drift: tuple[float, float],
                 voxel: tuple[float, float, float], centre: np.ndarray) -> np.ndarray:
    """Piece ``k``'s centre (y, x um) between its two tails' images, or ``centre`` where they do
    not show it."""
    g = TAIL_GROW_PX
    r0, c0 = max(sl[0].start - g, 0), max(sl[1].start - g, 0)
    win = lab[r0:sl[0].stop + g, c0:sl[1].stop + g] == k
    r, c = np.nonzero(ndi.binary_dilation(win, iterations=g))
    rc = tail_centre(r + r0, c + c0, tails)
    return centre if rc is None else np.array([(rc[0] - drift[0]) * voxel[1], (rc[1] - drift[1]) * voxel[2]])


def corrected(pieces: list[list[Piece]], field: np.ndarray, drift_px: np.ndarray | None,
              voxel: tuple[float, float, float]) -> tuple[list[list[Piece]], np.ndarray]:
    """The pieces with their centres corrected for each layer's drift (dy, dx) in pixels (None:
    as they are), and each layer's field of view (``field``: its (y, x) extent, um) in the same
    coordinates: (layers, 2, 2), the (lo, hi) corners (y, x) um."""
    shift = np.zeros((len(pieces), 2))
    if drift_px is not None:
        shift = np.asarray(drift_px, dtype=np.float64)[:len(pieces)] * np.array(voxel[1:], dtype=np.float64)
        pieces = [[replace(q, centre=q.centre - shift[k], arms=tuple((c - shift[k], u, h) for c, u, h in q.arms))
                   for q in layer] for k, layer in enumerate(pieces)]
    return pieces, np.stack([-shift, np.asarray(field, dtype=np.float64) - shift], axis=1)


def all_pieces(masks: Sequence[np.ndarray] | Any, n: int, voxel: tuple[float, float, float],
               tails: Sequence[np.ndarray | None] | Any = None,
               skeletons: Sequence[np.ndarray] | Any = None) -> tuple[list[list[Piece]], np.ndarray]:
    """Every layer's pieces (one mask in memory at a time), centred between the rocking curve's
    tails where ``tails`` (per layer, :func:`.tails.tail_images`, or None) are given, with the
    span of the layer's centre-line points where ``skeletons`` (per layer) are (a piece without
    points is none), and the field's (y, x) extent, um."""
    pieces, field = [], np.zeros(2)
    for k in range(n):
        m = np.asarray(masks[k])
        field = np.array(m.shape, dtype=np.float64) * np.array(voxel[1:])
        t = None if tails is None else tails[k]
        pieces.append(layer_pieces(m, k, voxel, tails=None if t is None or not np.any(t) else np.asarray(t),
                                   skeleton=None if skeletons is None else np.asarray(skeletons[k])))
    return pieces, field
