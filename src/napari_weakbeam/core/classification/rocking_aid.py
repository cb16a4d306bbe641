"""A labelling aid that needs no hand labels: WB/SB per patch from the patch's own rocking curve.

For each patch the integrated intensity (patch mean) is followed through the rocking scan
(core.classification.scan_context.LayerContext). The floor is the layer's dark level, estimated from its darkest
pixels (outside the grain and in the tails), not from the curve itself, so a curve that never
returns to the floor inside the scan is still measured against the true floor. The peak is
located and its half width at half maximum ``w`` measured on each side from the half-maximum
crossings; when the curve leaves the scan range on one side, the other side's width stands in.
Each frame then gets the offset ``u = |phi - phi0| / w`` and its intensity relative to the
patch's own peak ``r``:

* ``u <= 1`` (at least half the peak): strong beam (2);
* ``u >= 2`` (a few per cent of the peak for a Gaussian-like curve), or ``r <= 0.25`` outside the
  half maximum (a curve already well down): weak beam (1);
* in between, or for a patch whose curve has no significant peak (outside the grain, pure noise):
  0, no suggestion.

This is the same rule as the simulator's ground truth, but measured on the data, so it is a
baseline the learned classifier must beat, and the source of the confident labels that adapt a
model to a new scan with no painting (``weakbeam train --adapt``).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from ..errors import WeakbeamError
from ..patches import SB_MAX_U, UNLABELLED, WEAK_BEAM, classes_from_u, grid_shape, patch_means
from .scan_context import ContextAccumulator, LayerContext

#: Intensity above the floor, relative to the patch's own peak, at or below which a frame outside
#: the half maximum is weak beam.
WB_MAX_RELATIVE = 0.25
MIN_FRAMES = 5


def patch_curves(frames: np.ndarray, patch_size: int) -> np.ndarray:
    """Patch-mean intensity of every frame: (n, grid_rows, grid_cols) float64, one frame at a time."""
    frames = np.asarray(frames) if not hasattr(frames, "compute") else frames
    if frames.ndim != 3:
        raise WeakbeamError(f"frames must be (frames, rows, cols), got shape {tuple(frames.shape)}")
    out = np.empty((frames.shape[0],) + grid_shape(frames.shape[1:], patch_size), dtype=np.float64)
    for i in range(frames.shape[0]):
        out[i] = patch_means(np.asarray(frames[i]), patch_size)
    return out


def _check_frames(angles: np.ndarray, n: int) -> None:
    valid = int(np.count_nonzero(np.isfinite(angles)))
    if valid < MIN_FRAMES:
        raise WeakbeamError(f"the rocking curve has {valid} frames; the labelling aid needs at least {MIN_FRAMES}")


def curve_offsets(curves: np.ndarray, angles: np.ndarray, signed: bool = False) -> np.ndarray:
    """Offset u = |phi - phi0| / w of each frame from the patch's own rocking curve, from patch
    curves alone (n, grid_rows, grid_cols) and angles (n,) (NaN: padding frame). The floor is the
    lowest patch values of the layer and the noise their frame-to-frame scatter. Returns float64
    (n, gr, gc), NaN where it cannot be measured; with ``signed``, (phi - phi0) / w (negative on
    the low-angle side)."""
    curves = np.asarray(curves, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    if curves.ndim != 3 or angles.shape != curves.shape[:1]:
        raise WeakbeamError(f"{angles.shape[0] if angles.ndim else 0} angles for {curves.shape[0]} frames")
    _check_frames(angles, len(angles))
    valid = np.isfinite(angles)
    if not np.isfinite(curves[valid]).all():
        raise WeakbeamError("frames contain NaN or infinite values; the labelling aid cannot use them")
    c = curves[valid]
    dark = float(np.percentile(c, 1.0))
    low = c[c <= np.percentile(c, 10)]
    diffs = np.abs(np.diff(np.sort(c.reshape(len(c), -1), axis=0)[: max(2, len(c) // 3)], axis=0))
    noise = max(float(np.median(diffs)) if diffs.size else 0.0, float(np.std(low)), 1e-9 * max(abs(c.max()), 1.0))
    ctx = LayerContext(curves, angles, 1, dark, float(c.max()), noise)
    u = ctx.offsets()
    return u if signed else np.abs(u)


def suggest_from_context(ctx: LayerContext) -> np.ndarray:
    """Suggested labels uint8 (n, gr, gc) from one layer's rocking-curve context."""
    _check_frames(ctx.angles, len(ctx.angles))
    shape = ctx.curve_shape()
    u = np.abs(ctx.offsets(shape))
    own = np.maximum(shape["peak"] - ctx.dark, 1e-12)[None]
    r = (ctx.curves - ctx.dark) / own
    lab = classes_from_u(u)
    with np.errstate(invalid="ignore"):
        lab[(r <= WB_MAX_RELATIVE) & (u > SB_MAX_U) & shape["significant"][None]] = WEAK_BEAM
    lab[~ctx.valid] = UNLABELLED
    return lab


def suggest_labels(frames: np.ndarray, angles: np.ndarray, patch_size: int) -> np.ndarray:
    """Suggest WB/SB labels for one layer from each patch's own rocking curve.

    ``frames`` is (n, rows, cols) (numpy or dask, read one frame at a time), ``angles`` (n,) in
    degrees (NaN marks a padding frame). Returns uint8 (n, grid_rows, grid_cols): 1 = WB, 2 = SB,
    0 = no suggestion.
    """
    if int(patch_size) < 1:
        raise WeakbeamError(f"patch size must be a positive number of pixels, got {patch_size}")
    if getattr(frames, "ndim", 0) != 3:
        raise WeakbeamError(f"frames must be (frames, rows, cols), got shape {tuple(np.shape(frames))}")
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 1 or angles.shape[0] != frames.shape[0]:
        raise WeakbeamError(f"{angles.size} angles for {frames.shape[0]} frames")
    _check_frames(angles, len(angles))
    return suggest_from_context(LayerContext.from_frames(frames, angles, int(patch_size)))


def iter_suggest_scan(scan, patch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Suggest labels for every layer of a :class:`~.scan.Scan`, reading frame by frame.

    Yields ``(layer, labels (frames, grid_rows, grid_cols))``.
    """
    for i in range(scan.n_layers):
        try:
            _check_frames(scan.angles[i], scan.n_frames)
            acc = ContextAccumulator(scan.n_frames, scan.frame_shape, patch_size)
            for j in np.flatnonzero(scan.valid_frames(i)):
                acc.add(int(j), np.asarray(scan.frames[i, j].compute()), float(scan.angles[i, j]))
            yield i, suggest_from_context(acc.context())
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
