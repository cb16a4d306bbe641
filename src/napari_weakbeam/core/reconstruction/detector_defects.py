"""Detector defects in a layer's frames: hot pixels and zingers, found and repaired before the map.

A camera's **hot pixel** reads above its neighbours in every frame. Summed over the weak-beam frames,
each in units of its own noise, hot pixels became the brightest objects of a layer: on our
simulator's isolated-lines scan, pairs of hot pixels at 0.05 % of the field took points recall
1.00 -> 0.25 (precision 0.15), and on dfxm-geo's, single ones took recall to 0.30 (they set the
scale that the lines were judged against). A **zinger** (a cosmic ray) is a small spot far brighter
in one frame only: spots of 3 pixels in 0.01 % of each frame's pixels took our isolated-lines scan
to 0.88 / 0.95 and our low-exposure scan from 0.98 / 0.91 to 0.81 / 0.81 (docs/benchmarks.md,
step 18).

A defect is told from a dislocation by two things at once:
- **time**: a hot pixel stands out in the layer's darkest reading (each pixel's minimum over the
  frames: a dislocation is as dark as its surroundings in the far tails, or darker near the peak);
  a zinger stands out from the same pixel in the frames before and after it, by ``RATIO`` times
  their level above the dark floor, while a dislocation, which holds a range of tilts, changes
  smoothly from frame to frame (the first and last frames are judged on their one side);
- **size**: a hot pixel (or a pair) has the background as its second-brightest neighbour, while a
  line's image goes on on both sides; a zinger is a spot of at most ``ZINGER_PIXELS`` pixels whose
  ring reads at most 1 / ``RATIO`` of its peak above the dark floor.
Each stands ``SIGMAS`` noise units above its reference too. A hot pixel loses its excess (it adds
to whatever the crystal sends, so a line through it stays whole); a zinger's value is replaced by
the mean of its unflagged 3 x 3 neighbours in that frame. Our simulator's camera has no defects:
on its benchmark scans this flags 0-4 bright one-pixel dots per scan and the points stay as they
were. dfxm-geo's camera model has warm and hot pixels (measured on a PCO camera), which this
repairs: its benchmark scans' points move by at most 0.007.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Noise units (the robust spread of the layer's darkest reading from pixel to pixel) a defect
#: stands above its reference.
SIGMAS = 10.0
#: A defect's level above the dark floor is at least this times its reference's.
RATIO = 2.0
#: A zinger covers at most this many pixels (a cosmic ray's spot or short track).
ZINGER_PIXELS = 6
#: Layers of fewer frames are left alone: the minimum and the frame neighbours need a curve.
MIN_FRAMES = 5

_RING = np.ones((3, 3), dtype=bool)
_RING[1, 1] = False


def _second_neighbour(img: np.ndarray) -> np.ndarray:
    """The second-largest of each pixel's 8 neighbours (edges mirrored), float32."""
    return ndi.rank_filter(np.asarray(img, dtype=np.float32), rank=6, footprint=_RING, mode="mirror")


def _second_neighbour_at(img: np.ndarray, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """:func:`_second_neighbour` at the pixels ``rr``, ``cc`` only."""
    r, c = img.shape
    mirror = lambda i, n: np.abs(i) - 2 * np.maximum(i - (n - 1), 0)  # noqa: E731 (as mode="mirror")
    around = np.stack([img[mirror(rr + dr, r), mirror(cc + dc, c)] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc])
    return np.sort(around, axis=0)[6] if len(rr) else np.zeros(0, np.float32)


def _spread(values: np.ndarray) -> float:
    """Robust spread of ``values``: 1.4826 x their median absolute deviation, at least 1e-6."""
    v = np.asarray(values, dtype=np.float32).ravel()
    return max(float(1.4826 * np.median(np.abs(v - np.median(v)))), 1e-6)


def _noise(img: np.ndarray) -> float:
    """Robust pixel-to-pixel noise of ``img``: the spread of neighbouring columns' differences,
    / sqrt 2."""
    return _spread(np.diff(np.asarray(img, dtype=np.float32), axis=1)) / np.sqrt(2.0)


def find_defects(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hot, zingers): the hot pixels (rows, cols) bool and the zingers (n, rows, cols) bool of a
    layer's ``frames`` (n, rows, cols), as the module describes; nothing with fewer than
    ``MIN_FRAMES`` frames."""
    f = np.asarray(frames)
    n = f.shape[0]
    hot = np.zeros(f.shape[1:], dtype=bool)
    zingers = np.zeros(f.shape, dtype=bool)
    if n < MIN_FRAMES:
        return hot, zingers
    floor = f.min(axis=0).astype(np.float32)
    dark = float(np.median(floor[::2, ::2]))
    sigma = _noise(floor[::2])
    step = SIGMAS * sigma
    rr, cc = np.nonzero(floor - dark > step)  # the only pixels that can be hot
    if len(rr) < floor.size // 10:
        ref = _second_neighbour_at(floor, rr, cc)
    else:
        ref = _second_neighbour(floor)[rr, cc]
    v = floor[rr, cc]
    is_hot = (v - ref > step) & (v - dark > RATIO * np.maximum(ref - dark, sigma))
    hot[rr[is_hot], cc[is_hot]] = True
    # a zinger is judged against the noise between frames (photon noise included), not the floor's
    sub = np.asarray(f[:, ::8, ::8], dtype=np.float32)
    sigma = max(_spread(np.diff(sub, axis=0)) / np.sqrt(2.0), sigma)
    step = SIGMAS * sigma
    for k in range(n):  # the first and last frames are judged on their one side
        near = f[k + 1] if k == 0 else f[k - 1] if k == n - 1 else np.maximum(f[k - 1], f[k + 1])
        over = f[k] - np.minimum(f[k], near)  # f[k] - near where above it, 0 elsewhere (no wrap-around)
        cand = (over > step) & ~hot
        if not cand.any():
            continue
        rr, cc = np.nonzero(cand)
        level = np.asarray(f[k, rr, cc], dtype=np.float32) - dark
        keep = level > RATIO * np.maximum(np.asarray(near[rr, cc], dtype=np.float32) - dark, sigma)
        cand[rr[~keep], cc[~keep]] = False
        if keep.any():
            zingers[k] = _lone_spots(f[k], cand, dark)
    return hot, zingers


def _lone_spots(frame: np.ndarray, cand: np.ndarray, dark: float) -> np.ndarray:
    """The 8-connected spots of ``cand`` of at most ``ZINGER_PIXELS`` pixels whose ring (the
    pixels touching them) in ``frame`` reads at most 1 / ``RATIO`` of their peak above ``dark``."""
    out = np.zeros(cand.shape, dtype=bool)
    lab, n = ndi.label(cand, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None or sizes[i] > ZINGER_PIXELS:
            continue
        r0, r1 = max(sl[0].start - 1, 0), min(sl[0].stop + 1, cand.shape[0])
        c0, c1 = max(sl[1].start - 1, 0), min(sl[1].stop + 1, cand.shape[1])
        own = lab[r0:r1, c0:c1] == i
        ring = ndi.binary_dilation(own, structure=np.ones((3, 3))) & ~own
        box = np.asarray(frame[r0:r1, c0:c1], dtype=np.float32)
        if ring.any() and box[ring].max() - dark <= (box[own].max() - dark) / RATIO:
            out[r0:r1, c0:c1] |= own
    return out


def _unflagged_neighbours(img: np.ndarray, bad: np.ndarray, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """The 8 neighbours (8, k) float64 of pixels ``rr``, ``cc`` of ``img`` (rows, cols; edges
    repeated), NaN where flagged (``bad``)."""
    r, c = bad.shape
    around = []
    for dr, dc in ((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc):
        r2, c2 = np.clip(rr + dr, 0, r - 1), np.clip(cc + dc, 0, c - 1)
        around.append(np.where(bad[r2, c2], np.nan, img[r2, c2]))
    return np.array(around, dtype=np.float64).reshape(8, len(rr))


def _reduce(values: np.ndarray, own: np.ndarray, how) -> np.ndarray:
    """``how`` (np.nanmean or np.nanmedian) of each column of ``values`` (8, k); ``own`` where a
    column is all NaN (every neighbour flagged)."""
    out = np.asarray(own, dtype=np.float64).copy()
    ok = np.isfinite(values).any(axis=0)
    if ok.any():
        out[ok] = how(values[:, ok], axis=0)
    return out


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` in ``dtype``: integers rounded and kept within the type's range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype)


def repair(frames: np.ndarray, hot: np.ndarray, zingers: np.ndarray) -> np.ndarray:
    """``frames`` repaired: the ``hot`` pixels less their excess over their neighbours in the darkest
    reading (each pixel's minimum over the frames), in every frame; the ``zingers`` replaced by
    the mean of their unflagged neighbours in their frame. A copy in the frames' own dtype
    (integers rounded), or ``frames`` itself where nothing is flagged."""
    if not hot.any() and not zingers.any():
        return frames
    out = np.array(frames, copy=True)
    if hot.any():
        # a hot pixel adds an offset to whatever the crystal sends: take off its excess over its
        # neighbours in the darkest reading, so a line through it stays whole
        rr, cc = np.nonzero(hot)
        floor = out.min(axis=0).astype(np.float64)
        excess = floor[rr, cc] - _reduce(_unflagged_neighbours(floor, hot, rr, cc), floor[rr, cc], np.nanmedian)
        out[:, rr, cc] = _cast(out[:, rr, cc] - np.maximum(excess, 0.0), out.dtype)
    for k in np.flatnonzero(zingers.reshape(len(out), -1).any(axis=1)):
        rr, cc = np.nonzero(zingers[k])
        around = _unflagged_neighbours(out[k], hot | zingers[k], rr, cc)
        out[k, rr, cc] = _cast(_reduce(around, out[k, rr, cc], np.nanmean), out.dtype)
    return out


def remove_defects(frames: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(frames repaired, hot pixels, zinger values) of a layer (:func:`find_defects`,
    :func:`repair`)."""
    hot, zingers = find_defects(frames)
    return repair(frames, hot, zingers), int(hot.sum()), int(zingers.sum())


def repaired_text(defects: np.ndarray | None) -> str:
    """What a reconstruction repaired (its ``defects``, (layers, 2) hot pixels, zinger values), for
    the command line and the widget; "" where nothing was."""
    if defects is None or not np.any(defects):
        return ""
    d = np.asarray(defects).reshape(-1, 2)
    return f"camera defects repaired: up to {int(d[:, 0].max())} hot pixels per layer, {int(d[:, 1].sum())} zinger values"
