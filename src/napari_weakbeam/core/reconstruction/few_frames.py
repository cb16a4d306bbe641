"""Line ends seen in few rocking frames: the image of a line outside the slab, or noise on it.

A dislocation's weak-beam image moves slowly with the rocking angle, so where its core lies in
the slab its contrast persists over several consecutive weak-beam frames of both tails; the image
of the line just outside the slab shows in one tail (:mod:`.tail_ends`), and a Poisson-noise
speck in one frame. The map sums the frames' contrasts (each in its own noise units), so at low
exposure such ends lengthen a line's image by a few pixels over no core, and noise balances
their two tails. :class:`FrameCount` counts, per pixel, the weak-beam frames in which its 3 x 3
neighbourhood is brighter than the low hysteresis threshold; :func:`peel_few_frame_ends` takes
the ends of a centre line seen in fewer than ``fraction`` of the frames of its typical point off
the points (not off the mask; issue 10, precision; docs/reconstruction.md, step 8).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .segmentation import object_medians
from .tail_ends import peel_ends

_BITS = 8  # frames packed per byte (bytes are the cheapest to shift, OR and count)


def _dilate_or(bits: np.ndarray) -> np.ndarray:
    """The bitwise OR of each pixel's 3 x 3 neighbourhood (zero past the edges)."""
    out = bits.copy()
    out[1:] |= bits[:-1]
    out[:-1] |= bits[1:]
    rows = out.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


class FrameCount:
    """Per pixel, the number of frames (given one by one, :meth:`add`) in which its 3 x 3
    neighbourhood exceeds ``level`` (uint8 from :meth:`counts`). The frames' exceedances are
    packed as bits, 8 frames a byte, so a frame costs one comparison, one shift and one OR.
    Counts above 255 frames wrap (no scan has that many weak-beam frames)."""

    def __init__(self, shape: tuple[int, int], level: float) -> None:
        self.level = np.float32(level)
        self.bits = np.zeros(shape, np.uint8)
        self.count = np.zeros(shape, np.uint8)
        self.n = 0

    def add(self, contrast: np.ndarray) -> None:
        """One frame's contrast (rows, cols), in the units of ``level``."""
        bit = (np.asarray(contrast) > self.level).view(np.uint8)
        self.bits |= bit << np.uint8(self.n % _BITS) if self.n % _BITS else bit
        self.n += 1
        if self.n % _BITS == 0:
            self._flush()

    def _flush(self) -> None:
        self.count += np.bitwise_count(_dilate_or(self.bits))
        self.bits[...] = 0

    def counts(self) -> np.ndarray:
        if self.n % _BITS:
            self._flush()
        return self.count


def peel_few_frame_ends(skeleton: np.ndarray, counts: np.ndarray | None, fraction: float,
                        image: np.ndarray) -> np.ndarray:
    """``skeleton`` less its ends seen in few frames: each centre line is peeled from its ends
    inward while its :class:`FrameCount` is below ``fraction`` of its line's median (the line's
    typical point: against its highest, a long line with one many-frame spot lost true ends on
    the stacks), never near the field's edge nor where the map (``image``) is bright
    (:func:`.tail_ends.peel_ends`).
    ``counts`` None (not kept) or ``fraction`` 0: ``skeleton`` unchanged."""
    if counts is None or fraction <= 0 or not skeleton.any():
        return skeleton
    lab, n = ndi.label(skeleton, structure=np.ones((3, 3)))
    rr, cc = np.nonzero(lab)
    k = lab[rr, cc]
    v = np.asarray(counts)[rr, cc].astype(np.float32)
    typical = object_medians(counts, lab, n)
    score = np.zeros(skeleton.shape, np.float32)
    score[rr, cc] = np.where(typical[k] > 0, np.minimum(v / np.maximum(typical[k], 1), 1), np.float32(1))
    return peel_ends(skeleton, score, fraction, image)


def drop_few_frame_lines(skeleton: np.ndarray, counts: np.ndarray | None, wb_frames: int,
                         share: float) -> np.ndarray:
    """``skeleton`` less its centre lines (8-connected) whose median :class:`FrameCount` is at
    least 1 and at most ``share`` (``few_frames_share``) of ``wb_frames``, the layer's
    weak-beam frames.

    A core in the slab holds every tilt near it, so it is bright over a range of angles (5-20 of
    ~30 weak-beam frames on both generators); the contour where a distant line's rotation field
    turns the lattice to the frame's angle sweeps across the field as the angle turns, so each of
    its pixels is bright in 1-2 frames (3 x 3), as is a blob of noise. On dfxm-geo's 4-layer
    stacks, lines of median 1-2 frames (of 29-31) held 196 of the upper layers' 341 false points
    and none of their true ones; on the 16 benchmark scans 4 false and 2 true points (dfxm-geo)
    and 23 false ones (ours). A line bright in no frame alone (a faint line seen only in the sum)
    is kept: the rule cannot tell it. Where ``share`` x ``wb_frames`` < 1 (too few frames to
    tell), ``counts`` None or ``share`` 0: ``skeleton`` unchanged."""
    limit = share * wb_frames
    if counts is None or limit < 1 or not skeleton.any():
        return skeleton
    lab, n = ndi.label(skeleton, structure=np.ones((3, 3)))
    med = object_medians(counts, lab, n)
    few = (med >= 1) & (med <= limit)  # the background's 0 is not a line
    return skeleton & ~few[lab]
