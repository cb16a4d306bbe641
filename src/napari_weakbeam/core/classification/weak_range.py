"""Where is weak beam, per layer: the rocking angles at which to record weak-beam images.

From a layer's patch rocking curves (core.classification.scan_context.LayerContext) and the per-patch labels,
each acquired frame is scored over the *grain* (the patches whose own rocking curve has a
significant peak reaching 10 % of the brightest patch's): the share of grain patches labelled weak beam, and the median intensity of the
grain patches above the layer's dark floor in units of the noise of a patch mean. A frame is
*usable weak beam* when at least ``min_share`` (90 %) of the grain is WB and that median is at
least ``min_snr`` (3) noise widths: most of the grain is in weak beam and the signal is still
above the noise. On each side of the layer's peak (the angle where the mean grain curve is
highest) the run of usable frames nearest the peak is the recommended range.

Stored in the predictions file as ``/predictions/weak_beam`` (docs/file-formats.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..patches import WEAK_BEAM

#: Share of the grain's patches that must be weak beam in a recommended frame. 0.8 (the first
#: proposal) let frames at the inner edge through where only 73-94 % of the grain is WB by the
#: simulator's truth; 0.9 keeps the recommended ranges >= 97 % WB by the truth (docs/benchmarks.md).
MIN_WB_SHARE = 0.9
#: Median grain intensity above the floor, in noise widths of a patch mean, of a recommended frame.
MIN_SNR = 3.0
#: A patch belongs to the grain when its curve's peak reaches this share of the brightest patch's.
GRAIN_MIN_PEAK = 0.1
GROUP = "weak_beam"
SIDES = ("low", "high")


@dataclass
class WeakBeamRange:
    """One recommended range on one side of the peak."""

    side: str  # "low" (below the peak angle) or "high"
    start: float  # degrees, start <= stop
    stop: float
    n_frames: int
    wb_share: float  # mean share of the grain labelled WB over the range's frames
    snr: float  # lowest median grain signal over the range, in noise widths

    def describe(self) -> str:
        return (f"{self.side} side {self.start:+.4f} to {self.stop:+.4f} deg ({self.n_frames} frames, "
                f"{100 * self.wb_share:.0f} % of the grain WB, signal >= {self.snr:.1f}x noise)")


@dataclass
class LayerWeakBeam:
    """Where weak beam is in one layer, with the per-frame scores it was read from."""

    layer: int
    peak: float  # degrees, NaN when no frame was acquired
    grain_share: float  # share of the field of view (patches) covered by the grain
    ranges: list[WeakBeamRange] = field(default_factory=list)
    angles: np.ndarray | None = None  # (n,) degrees of the frames (NaN: not acquired)
    wb_share: np.ndarray | None = None  # (n,) share of grain patches WB per frame
    snr: np.ndarray | None = None  # (n,) median grain signal per frame, in noise widths
    usable: np.ndarray | None = None  # (n,) bool, frame meets both criteria
    curve: np.ndarray | None = None  # (n,) mean grain intensity above the floor: the layer's rocking curve

    def range(self, side: str) -> WeakBeamRange | None:
        return next((r for r in self.ranges if r.side == side), None)

    def summary(self) -> str:
        """One line for the CLI."""
        head = f"layer {self.layer + 1}: weak beam"
        if not np.isfinite(self.peak) or self.grain_share == 0:
            return f"{head}: no grain found (no patch with a significant rocking curve)"
        where = "; ".join(r.describe() for r in self.ranges) or (
            f"no angle with >= {100 * MIN_WB_SHARE:.0f} % of the grain WB above {MIN_SNR:g}x noise")
        return f"{head} (peak {self.peak:+.4f} deg, grain {100 * self.grain_share:.0f} % of the field): {where}"


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True in a 1D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def grain_patches(ctx) -> np.ndarray:
    """Patches of the grain: a significant rocking-curve peak reaching at least GRAIN_MIN_PEAK of
    the brightest patch's peak (above the floor); bool (grid_rows, grid_cols)."""
    shape = ctx.curve_shape()
    height = np.nan_to_num(shape["peak"] - ctx.dark, nan=0.0)
    top = float(height.max()) if height.size else 0.0
    return shape["significant"] & (height >= GRAIN_MIN_PEAK * top)


def layer_weak_beam(ctx, label: np.ndarray, layer: int = 0, min_share: float = MIN_WB_SHARE,
                    min_snr: float = MIN_SNR) -> LayerWeakBeam:
    """Recommended weak-beam ranges of one layer from its context (LayerContext) and its labels
    (n, grid_rows, grid_cols; 1 = WB). Works on partial curves (frames not acquired: NaN angle)."""
    label = np.asarray(label)
    n = len(ctx.angles)
    valid = ctx.valid & (label.reshape(n, -1) > 0).any(axis=1)
    grain = grain_patches(ctx)
    share = np.full(n, np.nan)
    snr = np.full(n, np.nan)
    if not valid.any() or not grain.any():
        return LayerWeakBeam(layer, np.nan if not valid.any() else float(ctx.angles[valid][0]),
                             float(grain.mean()) if grain.size else 0.0, [], ctx.angles.copy(), share, snr,
                             np.zeros(n, bool))
    noise = max(float(ctx.noise), 1e-12)
    g_curves = ctx.curves[:, grain] - ctx.dark  # (n, n_grain)
    share[valid] = (label[:, grain][valid] == WEAK_BEAM).mean(axis=1)
    snr[valid] = np.median(g_curves[valid], axis=1) / noise
    usable = valid & (share >= min_share) & (snr >= min_snr)
    mean_curve = np.where(valid, g_curves.mean(axis=1), -np.inf)
    peak = float(ctx.angles[int(np.argmax(mean_curve))])
    order = np.flatnonzero(valid)[np.argsort(ctx.angles[valid], kind="stable")]
    phi = ctx.angles[order]
    ranges = []
    for side in SIDES:
        on_side = (phi < peak) if side == "low" else (phi > peak)
        runs = _runs(usable[order] & on_side)
        if not runs:
            continue
        a, b = max(runs, key=lambda r: r[1]) if side == "low" else min(runs, key=lambda r: r[0])
        idx = order[a : b + 1]
        ranges.append(WeakBeamRange(side, float(phi[a]), float(phi[b]), len(idx), float(share[idx].mean()),
                                    float(snr[idx].min())))
    curve = np.where(valid, g_curves.mean(axis=1), np.nan)
    return LayerWeakBeam(layer, peak, float(grain.mean()), ranges, ctx.angles.copy(), share, snr, usable, curve)


def predictions_weak_beam(predictions) -> list[LayerWeakBeam] | None:
    """Weak-beam ranges of every finished layer of a Predictions (None: the file holds no curves)."""
    out = []
    for layer in range(predictions.label.shape[0]):
        done = predictions.layer_done is None or bool(predictions.layer_done[layer])
        ctx = predictions.layer_context(layer) if done else None
        if ctx is not None:
            out.append(layer_weak_beam(ctx, predictions.label[layer], layer))
    return out or None


def store_weak_beam(path: str | os.PathLike, results: list[LayerWeakBeam], n_layers: int) -> None:
    """Write (or replace) the small ``/predictions/weak_beam`` group of a predictions file."""
    ranges = np.full((n_layers, 2, 2), np.nan)
    share = np.full((n_layers, 2), np.nan)
    snr = np.full((n_layers, 2), np.nan)
    peak = np.full(n_layers, np.nan)
    grain = np.full(n_layers, np.nan)
    for r in results:
        peak[r.layer], grain[r.layer] = r.peak, r.grain_share
        for s, side in enumerate(SIDES):
            rng = r.range(side)
            if rng is not None:
                ranges[r.layer, s] = rng.start, rng.stop
                share[r.layer, s], snr[r.layer, s] = rng.wb_share, rng.snr
    with h5py.File(path, "r+") as f:
        g = f["predictions"]
        if GROUP in g:
            del g[GROUP]
        w = g.create_group(GROUP)
        w["ranges"] = ranges
        w["ranges"].attrs["description"] = "(layers, side low/high, start/stop) degrees; NaN: no range"
        w["wb_share"] = share
        w["signal_to_noise"] = snr
        w["peak"] = peak
        w["grain_share"] = grain
        w.attrs.update(min_wb_share=MIN_WB_SHARE, min_snr=MIN_SNR, sides="low,high")


def load_weak_beam(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The stored ``/predictions/weak_beam`` arrays, or None when the file has none."""
    with h5py.File(path, "r") as f:
        g = f.get(f"predictions/{GROUP}")
        if not isinstance(g, h5py.Group):
            return None
        return {k: np.asarray(g[k][()]) for k in g}
