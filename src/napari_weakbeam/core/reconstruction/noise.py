"""The noise level of a dislocation map, measured where there are no lines.

:func:`noise_level` gives a map's (centre, spread), :func:`local_spread` the spread per block of
it, :func:`scan_noise_level` the one level of a scan's layers (the same decision for every
layer), :func:`noise_contrast` the map in those noise units. Pure functions of arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


LOWER_CAP = 2.5  # noise spread at most this many lower-side spreads (see noise_level)


def noise_level(image: np.ndarray, iterations: int = 2, lower_cap: bool = True) -> tuple[float, float]:
    """(centre, spread) of the map where there are no lines: its median and its 84th minus 50th
    percentile (one standard deviation for Gaussian noise), recomputed ``iterations`` times
    without the pixels above centre + 4 spreads (the lines).

    Dislocations cover a few per cent of a layer, so the percentiles fall in the line-free
    background whatever the number or brightness of the lines; the clipping keeps them there when
    lines cover more (tested up to ~15 %). The one-sided spread also works when the map is zero
    over much of the field (clipped frames). With ``lower_cap``, the spread is at most
    ``LOWER_CAP`` times the lower-side spread (median minus 16th percentile of the positive
    pixels), which lines cannot inflate: on crowded fields (dense networks, walls, the streaks of
    dfxm-geo scans) the upper spread alone set thresholds above every line.
    """
    r = np.asarray(image, dtype=np.float32).ravel()
    if r.size > 1_000_000:
        r = r[:: r.size // 500_000]
    r = r[np.isfinite(r)]
    centre, spread = 0.0, 0.0
    for it in range(iterations + 1):
        if not r.size:
            break
        p50, p84 = np.percentile(r, [50.0, 84.13])
        centre, spread = float(p50), float(p84 - p50)
        if spread <= 0:  # a map that is constant over most of the field: the spread of its non-zero part
            nz = r[r > p50]
            spread = float(np.percentile(nz, 50) - p50) if nz.size else 0.0
        if it < iterations and spread > 0:
            r = r[r <= centre + 4 * spread]
    if lower_cap and spread > 0 and r.size:
        # a crowded field (lines over more than ~15 % of it) inflates the upper spread: cap it by
        # the lower side, which lines do not reach (median minus 16th percentile of the positive
        # pixels; zeros are clipped frames or no grain)
        pos = r[r > 0]
        if pos.size > 10:
            q16, q50 = np.percentile(pos, [15.87, 50.0])
            if q50 > q16:
                spread = min(spread, LOWER_CAP * float(q50 - q16))
    return centre, spread


NOISE_BLOCK = 32  # pixels: side of the blocks in which local_spread measures the noise


def local_spread(image: np.ndarray, block: int = NOISE_BLOCK) -> np.ndarray:
    """Noise spread of the map around each pixel (float32, the map's shape): :func:`noise_level`
    of each ``block`` x ``block`` block (lines clipped as there), the median of each block's 3 x 3
    neighbourhood (a block full of lines does not raise it), interpolated bilinearly between block
    centres. Where the noise is higher than the scan's (brighter background left in weak-beam
    frames, e.g. near the peak in a short scan), thresholds follow it."""
    from .wb_weights import blend_patches, centre_interp

    image = np.asarray(image, dtype=np.float32)
    rows, cols = image.shape
    gr, gc = max(rows // block, 1), max(cols // block, 1)
    br, bc = rows // gr, cols // gc
    blocks = image[:gr * br, :gc * bc].reshape(gr, br, gc, bc).transpose(0, 2, 1, 3).reshape(gr * gc, br * bc)
    spreads = block_spreads(blocks).astype(np.float32).reshape(gr, gc)
    spreads = ndi.median_filter(spreads, size=3, mode="nearest")
    return blend_patches(spreads, centre_interp(rows, gr, br), centre_interp(cols, gc, bc))


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's linear percentile interpolation, operation for operation (bit-identical results)."""
    diff = b - a
    out = a + diff * t
    upper = t >= 0.5
    out[upper] = (b - diff * (1 - t))[upper]
    return out


def _sorted_percentile(s: np.ndarray, start: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """The ``q``-th percentile of each row's sorted values ``s[k, start[k]:start[k] + n[k]]`` (n >= 1)."""
    idx = (q / 100.0) * (n - 1).astype(np.float64)
    i = np.floor(idx).astype(np.int64)
    rows, last = np.arange(len(s)), s.shape[1] - 1
    a = s[rows, np.minimum(start + i, last)].astype(np.float64)
    b = s[rows, np.minimum(start + np.minimum(i + 1, n - 1), last)].astype(np.float64)
    return _lerp(a, b, idx - i)


def block_spreads(blocks: np.ndarray, iterations: int = 2) -> np.ndarray:
    """``noise_level(block, iterations, lower_cap=True)[1]`` of every row of ``blocks`` (k, m) at
    once, with the same result bit for bit (tests/test_segmentation.py): each row is sorted once,
    and clipping the lines off a row keeps a prefix of it. ~20x faster than a loop over 256 blocks."""
    b = np.asarray(blocks, dtype=np.float32)
    s = np.sort(np.where(np.isfinite(b), b, np.float32(np.nan)), axis=1)  # non-finite (NaN, +-inf) last
    k = len(s)
    n = np.isfinite(s).sum(axis=1)
    first = np.zeros(k, np.int64)
    centre, spread = np.zeros(k), np.zeros(k)
    alive = n > 0
    for it in range(iterations + 1):
        m = np.maximum(n, 1)
        p50, p84 = _sorted_percentile(s, first, m, 50.0), _sorted_percentile(s, first, m, 84.13)
        sp = p84 - p50
        for j in np.flatnonzero(alive & (sp <= 0)):  # rare: a block constant over most of it
            row = s[j, :n[j]]
            nz = row[row > p50[j]]
            sp[j] = float(np.percentile(nz, 50) - p50[j]) if nz.size else 0.0
        centre, spread = np.where(alive, p50, centre), np.where(alive, sp, spread)
        if it < iterations:
            kept = (s <= (centre + 4 * spread).astype(np.float32)[:, None]).sum(axis=1)  # as r <= float
            n = np.where(alive & (spread > 0), np.minimum(kept, n), n)
            alive &= n > 0
    start = (s <= 0).sum(axis=1)  # the positive values of a row's kept prefix start here
    npos = n - start
    capped = (spread > 0) & (n > 0) & (npos > 10)
    if capped.any():
        m = np.maximum(npos, 1)
        q16, q50 = _sorted_percentile(s, start, m, 15.87), _sorted_percentile(s, start, m, 50.0)
        cap = capped & (q50 > q16)
        spread = np.where(cap, np.minimum(spread, LOWER_CAP * (q50 - q16)), spread)
    return spread


def scan_noise_level(levels: "list[tuple[float, float]] | np.ndarray") -> tuple[float, float]:
    """The scan's noise level: the median over layers of the per-layer (centre, spread) (NaN
    rows, e.g. layers not reconstructed, are ignored); one decision for every layer."""
    a = np.asarray(levels, dtype=np.float64).reshape(-1, 2)
    a = a[np.isfinite(a).all(axis=1)]
    if not len(a):
        return 0.0, 0.0
    return float(np.median(a[:, 0])), float(np.median(a[:, 1]))


def noise_contrast(image: np.ndarray, noise: tuple[float, float]) -> np.ndarray:
    """The map in noise units: (image - centre) / spread, the spread at least the local one
    (:func:`local_spread`)."""
    scale = np.maximum(local_spread(image, NOISE_BLOCK), np.float32(noise[1]))
    return (np.asarray(image, dtype=np.float32) - np.float32(noise[0])) / scale
