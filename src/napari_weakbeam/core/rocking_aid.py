"""A labelling aid that needs no hand labels: WB/SB per patch from the patch's own rocking curve.

For each patch the integrated intensity (patch mean) is followed through the rocking scan. The curve
is dark-subtracted (its lowest tenth of values is taken as the baseline), its peak is located and its
half width at half maximum ``w`` measured from the half-maximum crossings (linear interpolation; the
peak position ``phi0`` is the middle of the two crossings, or the maximum when the curve leaves the
scan range on one side, where the width is taken from the other side). Each frame then gets the
offset ``u = |phi - phi0| / w``:

* ``u <= 1`` (at least half the peak): strong beam (2);
* ``u >= 2`` (a few per cent of the peak for a Gaussian-like curve): weak beam (1);
* in between, or for a patch whose curve has no significant peak (outside the grain, pure noise):
  0, no suggestion.

This is the same rule as the simulator's ground truth, but measured on the data, so it is a
baseline the learned classifier must beat, and a way to bootstrap labels on a user's own data
(``weakbeam train --suggest``). Unlike the classifier it needs the whole rocking curve of a layer,
so it cannot classify a single frame live.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .errors import WeakbeamError
from .patches import STRONG_BEAM, UNLABELLED, WEAK_BEAM, grid_shape, patch_means

#: u at or below which a frame is strong beam, and at or above which it is weak beam.
SB_MAX_U = 1.0
WB_MIN_U = 2.0
#: A peak must stand this many noise standard deviations above the baseline to be trusted.
MIN_SNR = 8.0
MIN_FRAMES = 5


def patch_curves(frames: np.ndarray, patch_size: int) -> np.ndarray:
    """Patch-mean intensity of every frame: (n, grid_rows, grid_cols) float64, one frame at a time."""
    frames = np.asarray(frames) if not hasattr(frames, "compute") else frames
    if frames.ndim != 3:
        raise WeakbeamError(f"frames must be (frames, rows, cols), got shape {tuple(frames.shape)}")
    out = np.empty((frames.shape[0],) + grid_shape(frames.shape[1:], patch_size), dtype=np.float64)
    for i in range(frames.shape[0]):
        frame = np.asarray(frames[i])
        out[i] = patch_means(frame, patch_size)
    return out


def curve_offsets(curves: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Offset u = |phi - phi0| / w of each frame from the patch's own rocking curve.

    ``curves`` is (n, grid_rows, grid_cols) patch intensities, ``angles`` (n,) with NaN for padding
    frames. Returns float64 (n, grid_rows, grid_cols), NaN where it cannot be measured (padding
    frames, patches without a significant peak).
    """
    curves = np.asarray(curves, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    if curves.ndim != 3 or angles.shape != curves.shape[:1]:
        raise WeakbeamError(f"{angles.shape[0] if angles.ndim else 0} angles for {curves.shape[0]} frames")
    u_out = np.full(curves.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(angles))
    if len(valid) < MIN_FRAMES:
        raise WeakbeamError(
            f"the rocking curve has {len(valid)} frames; the labelling aid needs at least {MIN_FRAMES}"
        )
    if not np.isfinite(curves[valid]).all():
        raise WeakbeamError("frames contain NaN or infinite values; the labelling aid cannot use them")
    order = valid[np.argsort(angles[valid], kind="stable")]
    phi = angles[order]
    m = len(order)
    c = curves[order].reshape(m, -1)  # (m, K)

    low = np.sort(c, axis=0)[: max(1, m // 10)]
    base = low.mean(axis=0)
    k0 = np.argmax(c, axis=0)
    peak = c[k0, np.arange(c.shape[1])]
    amp = peak - base
    # Noise of the curve from the spread of its lower half (the tails of a real peak; a pure-noise
    # curve spreads over its whole range, so its "peak" stays within a few noise widths). The lower
    # half of a normal sample has 0.603 times its standard deviation.
    lower = c <= np.median(c, axis=0)[None, :]
    n_low = np.maximum(lower.sum(axis=0), 2)
    mean_low = np.sum(np.where(lower, c, 0.0), axis=0) / n_low
    var_low = np.sum(np.where(lower, (c - mean_low) ** 2, 0.0), axis=0) / (n_low - 1)
    sigma = np.sqrt(var_low) / 0.603
    scale = np.maximum(np.abs(peak), 1.0)
    significant = amp > np.maximum(MIN_SNR * sigma, 1e-6 * scale)

    half = base + amp / 2
    idx = np.arange(m)[:, None]
    below = c < half
    left_cand = np.where(below & (idx < k0), idx, -1)
    right_cand = np.where(below & (idx > k0), idx, m)
    lo = left_cand.max(axis=0)  # last frame below half max left of the peak
    hi = right_cand.min(axis=0)  # first frame below half max right of the peak
    cols = np.arange(c.shape[1])

    def crossing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a_c, b_c = np.clip(a, 0, m - 1), np.clip(b, 0, m - 1)
        ca, cb = c[a_c, cols], c[b_c, cols]
        denom = np.where(cb != ca, cb - ca, 1.0)
        t = np.clip((half - ca) / denom, 0.0, 1.0)
        return phi[a_c] + t * (phi[b_c] - phi[a_c])

    has_lo, has_hi = lo >= 0, hi < m
    phi_lo = crossing(lo, lo + 1)
    phi_hi = crossing(hi - 1, hi)
    phi_peak = phi[k0]
    phi0 = np.where(has_lo & has_hi, (phi_lo + phi_hi) / 2, phi_peak)
    w = np.where(
        has_lo & has_hi,
        (phi_hi - phi_lo) / 2,
        np.where(has_lo, phi_peak - phi_lo, phi_hi - phi_peak),
    )
    ok = significant & (has_lo | has_hi) & (w > 0)
    u = np.abs(phi[:, None] - phi0[None, :]) / np.where(ok, w, 1.0)[None, :]
    u[:, ~ok] = np.nan
    u_out[order] = u.reshape((m,) + curves.shape[1:])
    return u_out


def labels_from_offsets(u: np.ndarray) -> np.ndarray:
    """Class codes from offsets: 2 (SB) where u <= 1, 1 (WB) where u >= 2, else 0."""
    lab = np.full(u.shape, UNLABELLED, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        lab[u <= SB_MAX_U] = STRONG_BEAM
        lab[u >= WB_MIN_U] = WEAK_BEAM
    return lab


def suggest_labels(frames: np.ndarray, angles: np.ndarray, patch_size: int) -> np.ndarray:
    """Suggest WB/SB labels for one layer from each patch's own rocking curve.

    ``frames`` is (n, rows, cols) (numpy or dask, read one frame at a time), ``angles`` (n,) in
    degrees (NaN marks a padding frame). Returns uint8 (n, grid_rows, grid_cols): 1 = WB, 2 = SB,
    0 = no suggestion.
    """
    if int(patch_size) < 1:
        raise WeakbeamError(f"patch size must be a positive number of pixels, got {patch_size}")
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 1 or angles.shape[0] != frames.shape[0]:
        raise WeakbeamError(f"{angles.size} angles for {frames.shape[0]} frames")
    curves = patch_curves(frames, int(patch_size))
    return labels_from_offsets(curve_offsets(curves, angles))


def iter_suggest_scan(scan, patch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Suggest labels for every layer of a :class:`~.scan.Scan`, reading frame by frame.

    Yields ``(layer, labels (frames, grid_rows, grid_cols))``.
    """
    for i in range(scan.n_layers):
        valid = scan.valid_frames(i)
        curves = np.zeros((scan.n_frames,) + grid_shape(scan.frame_shape, patch_size))
        for j in np.flatnonzero(valid):
            curves[j] = patch_means(np.asarray(scan.frames[i, j].compute()), patch_size)
        try:
            yield i, labels_from_offsets(curve_offsets(curves, scan.angles[i]))
        except WeakbeamError as exc:
            raise WeakbeamError(f"{scan.source}: layer {i}: {exc}") from None


def suggest_scan_labels(
    scan, patch_size: int, progress: Callable[[int, int], object] | None = None
) -> np.ndarray:
    """Labels for the whole scan: uint8 (layers, frames, grid_rows, grid_cols).

    ``progress(layers_done, n_layers)`` is called after each layer.
    """
    out = np.zeros((scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, patch_size), np.uint8)
    for i, lab in iter_suggest_scan(scan, patch_size):
        out[i] = lab
        if progress is not None:
            progress(i + 1, scan.n_layers)
    return out
