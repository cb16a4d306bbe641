"""What a patch's own rocking curve and its layer say about each frame: the scan context.

Weak beam and strong beam are places on a region's own rocking curve: how bright the region is in
this frame relative to its own peak over the scan, and how far the frame is from that peak in units
of the curve's width. :class:`LayerContext` holds one layer's patch-mean curves and the layer's
intensity levels (a dark floor and a bright level taken from the whole layer, never per frame), and
turns them into per-patch, per-frame features for the scan-aware classifier, into the measured
offsets of the rocking-curve aid, and into the physics self-check.

Everything is invariant to a uniform change of exposure, gain or dark level of the whole layer
(up to photon noise), and works on partial curves (the frames acquired so far).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import WeakbeamError, check_finite
from ..patches import grid_shape, patch_means

#: Percentiles of the layer's pixels taken as its dark floor and its bright level.
DARK_PERCENTILE = 1.0
BRIGHT_PERCENTILE = 99.9
#: A patch's curve must rise this many noise widths (of a patch mean) above its own lowest value to
#: have a measurable peak (a flat curve off the grain rises ~4.5 widths by noise alone).
MIN_SNR = 8.0
#: Number of scan features per patch and frame (see :meth:`LayerContext.features`).
N_FEATURES = 9
FEATURE_NAMES = (
    "context available", "intensity / own curve peak", "intensity / layer bright level",
    "own curve peak / layer bright level", "signed offset u / 4", "|u| / 4", "u measurable",
    "own peak at the scan edge", "own curve minimum / own peak",
)


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of ``values``, sorted ascending (all of them when fewer)."""
    if values.size > k:
        values = np.partition(values, values.size - k)[values.size - k :]
    return np.sort(values)


def _pixel_sample(frame: np.ndarray, step: int = 4) -> np.ndarray:
    f = np.asarray(frame)
    return f[::step, ::step].ravel() if min(f.shape) >= 16 * step else f.ravel()


@dataclass
class LayerContext:
    """Patch curves of one layer and the layer's levels.

    ``curves`` (n, grid_rows, grid_cols) patch means, ``angles`` (n,) degrees (NaN: frame not
    acquired or padding, its curve values are ignored), ``dark`` and ``bright`` the layer's levels,
    ``noise`` the noise of one patch mean at the floor.
    """

    curves: np.ndarray
    angles: np.ndarray
    patch_size: int
    dark: float
    bright: float
    noise: float

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_frames(cls, frames, angles, patch_size: int) -> "LayerContext":
        """One pass over ``frames`` (n, rows, cols), numpy or dask, read one frame at a time."""
        acc = ContextAccumulator(frames.shape[0], tuple(frames.shape[1:]), patch_size)
        angles = np.asarray(angles, np.float64)
        for i in range(frames.shape[0]):
            if np.isfinite(angles[i]):
                acc.add(i, np.asarray(frames[i]), float(angles[i]))
        return acc.context()

    # -- levels --------------------------------------------------------------------------------
    @property
    def span(self) -> float:
        """bright - dark, never zero."""
        return max(self.bright - self.dark, 1e-6 * max(abs(self.bright), 1.0), 1e-12)

    @property
    def levels(self) -> tuple[float, float]:
        """(dark, span): the layer-level normalisation of frames."""
        return self.dark, self.span

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.angles)

    # -- per-patch curve shape ---------------------------------------------------------------------
    def curve_shape(self) -> dict[str, np.ndarray]:
        """Per patch: ``peak`` value, ``peak_frame``, ``centre`` angle, half widths ``w_lo``/``w_hi``
        (deg, NaN where the curve does not come down to half maximum on that side inside the scan),
        ``minimum``, ``significant`` (the peak stands clear of the noise), ``edge`` (peak at the
        first or last acquired frame). Computed once per context (read-only arrays)."""
        return self._shape

    @cached_property
    def _shape(self) -> dict[str, np.ndarray]:
        shape = self._measure_shape()
        for a in shape.values():
            a.setflags(write=False)
        return shape

    def _measure_shape(self) -> dict[str, np.ndarray]:
        valid = np.flatnonzero(self.valid)
        g = self.curves.shape[1:]
        if len(valid) == 0:
            nan = np.full(g, np.nan)
            return {"peak": nan, "peak_frame": np.zeros(g, int), "centre": nan, "w_lo": nan, "w_hi": nan,
                    "minimum": nan, "significant": np.zeros(g, bool), "edge": np.ones(g, bool)}
        order = valid[np.argsort(self.angles[valid], kind="stable")]
        phi = self.angles[order]
        c = self.curves[order].reshape(len(order), -1) - self.dark
        m, cols = len(order), np.arange(c.shape[1])
        k0 = np.argmax(c, axis=0)
        peak = c[k0, cols]
        half = peak / 2
        idx = np.arange(m)[:, None]
        below = c < half
        lo = np.where(below & (idx < k0), idx, -1).max(axis=0)
        hi = np.where(below & (idx > k0), idx, m).min(axis=0)

        def crossing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            a_c, b_c = np.clip(a, 0, m - 1), np.clip(b, 0, m - 1)
            ca, cb = c[a_c, cols], c[b_c, cols]
            t = np.clip((half - ca) / np.where(cb != ca, cb - ca, 1.0), 0.0, 1.0)
            return phi[a_c] + t * (phi[b_c] - phi[a_c])

        phi_peak = phi[k0]
        w_lo = np.where(lo >= 0, phi_peak - crossing(lo, lo + 1), np.nan)
        w_hi = np.where(hi < m, crossing(hi - 1, hi) - phi_peak, np.nan)
        # centre: middle of the half-maximum crossings when both exist, else the maximum
        both = np.isfinite(w_lo) & np.isfinite(w_hi)
        centre = np.where(both, phi_peak + (w_hi - w_lo) / 2, phi_peak)
        w = np.where(both, (w_lo + w_hi) / 2, np.nan)
        w_lo = np.where(both, w, w_lo)
        w_hi = np.where(both, w, w_hi)
        shape = self.curves.shape[1:]
        return {
            "peak": (peak + self.dark).reshape(shape),
            "peak_frame": order[k0].reshape(shape),
            "centre": centre.reshape(shape),
            "w_lo": w_lo.reshape(shape),
            "w_hi": w_hi.reshape(shape),
            "minimum": (c.min(axis=0) + self.dark).reshape(shape),
            "significant": ((peak - c.min(axis=0)) > MIN_SNR * self.noise).reshape(shape),
            "edge": ((k0 == 0) | (k0 == m - 1)).reshape(shape) if m > 2 else np.ones(shape, bool),
        }

    def offsets(self, shape: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Signed offset u = (phi - centre) / w of every frame from each patch's own curve, in units
        of its half width on that side: (n, gr, gc), NaN where not measurable."""
        s = shape or self.curve_shape()
        d = self.angles[:, None, None] - s["centre"][None]
        w = np.where(d >= 0, s["w_hi"][None], s["w_lo"][None])
        # one-sided curves: the width measured on the other side stands in for the missing one
        w = np.where(np.isfinite(w), w, np.fmax(s["w_lo"], s["w_hi"])[None])
        with np.errstate(invalid="ignore", divide="ignore"):
            u = d / w
        u[:, ~s["significant"]] = np.nan
        u[~self.valid] = np.nan
        return u

    # -- classifier features -----------------------------------------------------------------------
    def features(self) -> np.ndarray:
        """Scan features float32 (n, grid_rows, grid_cols, N_FEATURES), see FEATURE_NAMES; computed
        once per context (a read-only array: the classifier asks for it once per block of frames)."""
        return self._features

    @cached_property
    def _features(self) -> np.ndarray:
        s = self.curve_shape()
        u = self.offsets(s)
        span = self.span
        own = np.maximum(s["peak"] - self.dark, 3 * self.noise, )[None]
        c = self.curves - self.dark
        f = np.zeros(self.curves.shape + (N_FEATURES,), np.float32)
        f[..., 0] = 1.0
        f[..., 1] = np.clip(c / own, -0.5, 1.5)
        f[..., 2] = np.clip(c / span, -0.5, 1.5)
        f[..., 3] = np.clip((s["peak"] - self.dark) / span, -0.5, 1.5)[None]
        ok = np.isfinite(u)
        f[..., 4] = np.where(ok, np.clip(u, -8, 8) / 4, 0)
        f[..., 5] = np.where(ok, np.clip(np.abs(u), 0, 8) / 4, 0)
        f[..., 6] = ok
        f[..., 7] = s["edge"][None]
        f[..., 8] = np.clip((s["minimum"] - self.dark) / own[0], -0.5, 1.5)[None]
        f[~self.valid] = 0
        f.setflags(write=False)
        return f


class ContextAccumulator:
    """Builds a :class:`LayerContext` frame by frame (also as frames arrive during a scan)."""

    def __init__(self, n_frames: int, frame_shape: tuple[int, int], patch_size: int, max_samples: int = 4_000_000):
        if patch_size < 1:
            raise WeakbeamError(f"patch size must be a positive number of pixels, got {patch_size}")
        self.patch_size = int(patch_size)
        self.curves = np.zeros((n_frames,) + grid_shape(frame_shape, patch_size))
        self.angles = np.full(n_frames, np.nan)
        self.samples: list[np.ndarray] = []
        n_px = frame_shape[0] * frame_shape[1] / 16
        self.sample_every = max(1, int(np.ceil(n_frames * n_px / max_samples)))
        # The largest sampled values, kept exactly (the top `_keep` of all samples), so the bright
        # level is not a percentile of every sample again at each frame of a live scan.
        expected = min(n_frames * n_px, max_samples + 3 * n_px)
        self._keep = 2 * int(np.ceil((1 - BRIGHT_PERCENTILE / 100) * expected)) + 16
        self._top = np.empty(0, np.float32)
        self._n_sampled = 0

    def add(self, index: int, frame: np.ndarray, angle: float) -> None:
        """Add frame ``index`` at rocking ``angle`` (degrees)."""
        frame = np.asarray(frame)
        check_finite(frame, f"frame {index}")
        self.curves[index] = patch_means(frame, self.patch_size)
        self.angles[index] = angle
        if index % self.sample_every == 0 or len(self.samples) < 3:
            sample = _pixel_sample(frame).astype(np.float32)
            self.samples.append(sample)
            self._n_sampled += sample.size
            self._top = _largest(np.concatenate([self._top, sample]), self._keep)

    def _bright(self) -> float:
        """The BRIGHT_PERCENTILE of all pixel samples (linear interpolation, as np.percentile),
        from the largest samples kept; from all samples when more of them are needed."""
        n = self._n_sampled
        pos = BRIGHT_PERCENTILE / 100 * (n - 1)
        lo = int(np.floor(pos))
        if n - lo + 1 > len(self._top) and len(self._top) < n:  # more values needed than kept
            self._keep = 2 * (n - lo + 1)
            self._top = _largest(np.concatenate(self.samples), self._keep)
        first = n - len(self._top)  # rank of the smallest value kept
        a, b = self._top[lo - first], self._top[min(lo + 1, n - 1) - first]
        t, d = pos - lo, b - a  # numpy's interpolation, in the samples' float32
        return float(b - d * (1 - t) if t >= 0.5 else a + d * t)

    def context(self) -> LayerContext:
        if not self.samples:
            raise WeakbeamError("no acquired frame to take the scan context from")
        bright = self._bright()
        valid = np.isfinite(self.angles)
        # The floor from patch means, not pixels: a pixel percentile sits ~2 read-noise widths below
        # the mean floor, which would lift every flat curve off the grain into a "peak".
        means = self.curves[valid].ravel()
        px = None if means.size >= 50 else np.concatenate(self.samples)
        dark = float(np.percentile(means if px is None else px, DARK_PERCENTILE))
        noise = self._curve_noise()
        if not np.isfinite(noise):
            # too few frames for curve differences: the pixels' spread around their median over
            # the dark half of the field (MAD), averaged over a patch
            px = np.concatenate(self.samples) if px is None else px
            low = px[px <= np.median(px)]
            sigma_px = 1.4826 * float(np.median(np.abs(low - np.median(low)))) * 2 if low.size > 1 else 0.0
            noise = sigma_px / self.patch_size
        noise = max(noise, 1e-4 * max(bright - dark, 1e-12))
        return LayerContext(self.curves.copy(), self.angles.copy(), self.patch_size, dark, bright, noise)

    def _curve_noise(self) -> float:
        """Noise of one patch mean, from the second differences of the patch curves along the rocking
        angle where the curves are flat (their lowest quarter: the tails, off the grain), robustly."""
        valid = np.flatnonzero(np.isfinite(self.angles))
        if len(valid) < 5:
            return float("nan")
        c = self.curves[valid[np.argsort(self.angles[valid], kind="stable")]].reshape(len(valid), -1)
        lo, hi = c.min(axis=0), c.max(axis=0)
        low = (c - lo) <= 0.25 * (hi - lo)
        flat = low[2:] & low[1:-1] & low[:-2]
        d2 = np.abs(c[2:] - 2 * c[1:-1] + c[:-2])[flat]
        if d2.size < 8:
            return float("nan")
        return float(np.median(d2)) / 0.6745 / np.sqrt(6.0)
