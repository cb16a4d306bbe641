"""The per-layer dislocation map: rocking frames and their WB/SB labels -> map and mask.

One layer (one rocking scan at one height z): :func:`reconstruct_layer` turns the frames and their
per-patch labels into a dislocation map (float32) and a binary mask. All methods but ``manual``
start from the paper's normalised WB sum (Benhadjira et al. 2025, public code DL-WBDF):
dark/background subtraction; SB regions replaced by the frame's WB mean, with per-pixel WB weights
blended bilinearly over the patch centres (no seams at patch borders); per frame subtract
(mean + std), clip at 0, divide by the 98th percentile; sum the frames. Then ``adaptive``
(hysteresis from a noise level measured where there are no lines, :func:`noise_level`, the same
for every layer of a scan), ``paper`` (divide by the 99th percentile, the published fixed
threshold) or ``ridge`` (a line filter and the same noise-based hysteresis), and a morphological
clean-up.
:func:`manual_layer` is the paper's manual method on one WB frame, :func:`pick_manual_frame` its
default frame rule. :class:`.params.ReconstructionParams` documents every parameter.

Pure module-level functions of arrays and a frozen dataclass, so they pickle to Dask workers.
Segmenting the map (thresholds, noise levels): :mod:`.segmentation`; per-pixel WB weights:
:mod:`.wb_weights`.
Scans, volumes and point clouds: :mod:`.reconstruct`. See docs/reconstruction.md.
"""

from __future__ import annotations

import numpy as np

from ..errors import WeakbeamError, check_finite
from .segmentation import (  # noqa: F401 (re-exported with the per-layer pipeline)
    LINE_FILTERS,
    LOWER_CAP,
    _percentile,
    adaptive_mask,
    clean_mask,
    data_threshold,
    line_filter,
    noise_level,
    remove_background,
    scan_noise_level,
    segment_map,
    uses_scan_noise,
)
from ..patches import grid_shape
from .band_frames import is_probability, local_curve_bounds, map_weights, non_diffracting
from .few_frames import FrameCount
from .params import METHODS, THRESHOLD_RULES, ReconstructionParams  # noqa: F401 (re-exported)
from .wb_weights import blend_patches, centre_interp, infer_patch_size, patch_weights, wb_weights  # noqa: F401 (re-exported)

# ----------------------------------------------------------------------------------------------
# Per-layer building blocks (pure functions of arrays)


def _check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise WeakbeamError(f"{what} must be (frames, rows, cols), got shape {frames.shape}")
    if frames.shape[0] == 0:
        raise WeakbeamError(f"{what}: no frames to reconstruct from")
    if not (np.issubdtype(frames.dtype, np.integer) or np.issubdtype(frames.dtype, np.floating)):
        raise WeakbeamError(f"{what} must be numbers, got dtype {frames.dtype}")
    check_finite(frames, what)
    return frames


def normalise_frames(frames: np.ndarray, dark_level: float | None = None, background: str = "min") -> np.ndarray:
    """Dark-level and background subtraction: float32 (n, rows, cols), >= 0.

    ``dark_level`` None: the median of the darkest frame. ``background="min"``: each pixel's minimum
    over the frames (after the dark level) is subtracted too.
    """
    frames = _check_frames(frames)
    out = frames.astype(np.float32, copy=True)
    if background == "min":
        out -= out.min(axis=0, keepdims=True)
    else:
        if dark_level is None:
            sub = out[:, ::4, ::4].reshape(out.shape[0], -1)
            dark_level = float(np.median(sub, axis=1).min())
        out -= np.float32(dark_level)
    np.maximum(out, 0, out=out)
    return out


#: Sampled pixels (every 3rd row and column) a frame's noise needs inside the crystal: a frame
#: with fewer weak-beam pixels there adds nothing (it holds no weak-beam information), and a
#: crystal with fewer pixels in all has its frames measured over the whole field.
MIN_NOISE_PIXELS = 50


def normalised_sum(
    frames: np.ndarray,
    labels: np.ndarray | None,
    params: ReconstructionParams,
    count: FrameCount | None = None,
    outside: np.ndarray | None = None,
    local_bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The paper's normalised WB sum (before the final percentile division): float32 (rows, cols).

    ``labels`` (n, gr, gc): classes (uint8) or WB probabilities (float). Each pixel is blended
    towards the frame's weighted WB mean by its WB weight (:func:`wb_weights`: 1 keeps the pixel,
    0 replaces it as the paper replaces SB patches, smoothly between patch centres); each frame
    then has (mean + std) subtracted, is clipped at 0 and divided by its ``frame_percentile``
    (``frame_norm="percentile"``, and always for ``paper``), or is put in units of its own noise
    (``frame_norm="noise"``: minus (centre + spread), / spread, clipped at 0); frames are summed.
    ``count``: given each frame's contrast (``frame_norm="noise"``; :class:`.few_frames.FrameCount`).
    ``outside`` (rows, cols) bool: pixels that do not diffract (off the grain,
    :func:`.band_frames.non_diffracting`); a frame's noise is measured without them. Counted, the
    camera's quiet noise off the grain set the units of the frames near the peak: where a grain
    covers part of the field, its edge, blended towards the weight of the patches beyond it, then
    read 15-40 units per frame and became false lines (held-out grain scans: precision 0.33-0.57,
    docs/benchmarks.md step 20).
    ``local_bounds``: each block's most and least WB weight per frame (each (n, block rows, block
    cols), :func:`.band_frames.local_curve_bounds`, blocks of ``params.local_curve_px``), blended
    between block centres: the most multiplies the pixels' weights, the least is a floor under
    them with ``params.tail_floor`` (neither off the grain).
    """
    frames = _check_frames(frames)
    n, rows, cols = frames.shape
    norm = normalise_frames(frames, params.dark_level, params.background)
    wp = ri = ci = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 3 or labels.shape[0] != n:
            raise WeakbeamError(f"labels must be (frames, grid_rows, grid_cols) for {n} frames, got shape {labels.shape}")
        p = params.patch_size or infer_patch_size((rows, cols), labels.shape[1:])
        if grid_shape((rows, cols), p) != tuple(labels.shape[1:]):
            raise WeakbeamError(
                f"labels grid {labels.shape[1:]} does not match frames {rows}x{cols} at patch size {p}"
            )
        wp = patch_weights(labels, params.use_ambiguous)
        ri = centre_interp(rows, wp.shape[-2], p)
        ci = centre_interp(cols, wp.shape[-1], p)
    lri = lci = local_caps = lifted = None
    if local_bounds is not None:
        local_caps, local_least = local_bounds
        if params.tail_floor:
            lifted = local_least.reshape(n, -1).any(axis=1)  # frames with a block in its own tail
        b = params.local_curve_px
        lri, lci = centre_interp(rows, local_caps.shape[-2], b), centre_interp(cols, local_caps.shape[-1], b)
    inside = None
    if outside is not None and np.any(outside):
        inside = ~np.asarray(outside, dtype=bool)[::3, ::3]
        if np.count_nonzero(inside) < MIN_NOISE_PIXELS:
            inside = None  # a crystal too small to measure a noise on its own: the whole field
    total = np.zeros((rows, cols), dtype=np.float32)
    for i in range(n):
        img = norm[i]
        k = None
        if wp is not None:
            if float(wp[i].max()) <= 0 and (lifted is None or not lifted[i]):
                continue  # an all-SB frame holds no weak-beam information
            k = blend_patches(wp[i], ri, ci)  # this frame's per-pixel weights (:func:`wb_weights`)
        if local_caps is not None:
            cap = blend_patches(local_caps[i], lri, lci)
            if outside is not None:
                cap[outside] = 1.0
            k = cap if k is None else k * cap
            # the floor (never above the cap) can raise only where the patches' weight is below 1
            if lifted is not None and lifted[i] and (wp is None or float(wp[i].min()) < 1):
                least = blend_patches(local_least[i], lri, lci)
                np.minimum(least, cap, out=least)
                if outside is not None:
                    least[outside] = 0.0
                np.maximum(k, least, out=k)
        if k is not None:
            w_sum = float(k.sum())
            if w_sum < 0.5:
                continue
            if local_caps is not None or float(wp[i].min()) < 1:
                mean = np.float32(float((k * img).sum(dtype=np.float64)) / w_sum)
                img = k * (img - mean) + mean
        if params.method != "paper" and params.frame_norm == "noise":
            keep = np.ones(img[::3, ::3].shape, bool) if k is None else k[::3, ::3] >= 0.5
            if inside is not None:
                keep &= inside
                if np.count_nonzero(keep) < MIN_NOISE_PIXELS:
                    continue  # (almost) no weak-beam pixel in the crystal: no weak-beam information
            sel = img[::3, ::3][keep]
            centre, spread = noise_level(sel, iterations=1, lower_cap=False)
            if spread > 0:
                img = (img - np.float32(centre + spread)) / np.float32(spread)
                np.maximum(img, 0, out=img)
                total += img
                if count is not None:
                    count.add(img)
            continue
        img -= img.mean() + img.std()
        np.maximum(img, 0, out=img)
        scale = _percentile(img, params.frame_percentile)
        if scale <= 0:
            scale = float(img.max())
        if scale > 0:
            total += img / np.float32(scale)
    return total


def _valid_frames(frames: np.ndarray, angles: np.ndarray | None,
                  labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``frames``, ``angles`` and ``labels`` less the frames without an angle (NaN: padding of an
    aborted scan)."""
    frames = _check_frames(frames)
    if angles is not None:
        angles = np.asarray(angles, dtype=np.float64)
        if angles.shape != (frames.shape[0],):
            raise WeakbeamError(f"{angles.size} angles for {frames.shape[0]} frames")
        valid = np.isfinite(angles)
        if not valid.any():
            raise WeakbeamError("every frame of this layer is missing (all angles NaN)")
        if not valid.all():
            frames, angles = frames[valid], angles[valid]
            labels = None if labels is None else np.asarray(labels)[valid]
    return frames, angles, labels


def layer_map(
    frames: np.ndarray,
    angles: np.ndarray | None,
    labels: np.ndarray | None,
    params: ReconstructionParams = ReconstructionParams(),
    count: FrameCount | None = None,
) -> np.ndarray:
    """Dislocation map (float32, rows x cols) of one layer, for every method but ``manual``
    (arguments as :func:`reconstruct_layer`, which segments it); ``count`` as in
    :func:`normalised_sum`."""
    frames, angles, labels = _valid_frames(frames, angles, labels)
    outside = local = None
    if params.method != "paper" and params.frame_norm == "noise":
        outside = non_diffracting(frames)  # computed once: the map weights use it too
    if params.method in ("adaptive", "ridge") and params.local_curve_px and is_probability(labels):
        local = local_curve_bounds(frames, angles, params.local_curve_px)
    if labels is not None and params.method in ("adaptive", "ridge"):
        labels = map_weights(labels, frames, angles, params.patch_size, params.band_frames, params.curve_cap, outside)
    summed = normalised_sum(frames, labels, params, count, outside, local)
    if params.method == "paper":
        scale = _percentile(summed, params.sum_percentile)
        if scale <= 0:
            scale = float(summed.max())
        summed = summed / np.float32(scale) if scale > 0 else summed
        return summed.astype(np.float32)
    if params.method == "adaptive":
        image = remove_background(summed, params.background_size, params.pixel_aspect or 1.0)
    else:
        image = line_filter(summed, params.line_filter, params.sigmas)
    return image.astype(np.float32)


def reconstruct_layer(
    frames: np.ndarray,
    angles: np.ndarray | None,
    labels: np.ndarray | None,
    params: ReconstructionParams = ReconstructionParams(),
) -> tuple[np.ndarray, np.ndarray]:
    """Dislocation map (float32, rows x cols) and mask (bool) of one layer.

    ``frames`` (n, rows, cols) raw counts; ``angles`` (n,) degrees, NaN frames (padding of an
    aborted scan) are dropped; ``labels`` (n, gr, gc) per-patch classes (1 = WB, 2 = SB, 0 =
    unclassified) or None to use every pixel of every frame. ``method="manual"`` picks one frame
    (see :func:`pick_manual_frame`) and ignores ``labels``.
    """
    if params.method == "manual":
        frames, angles, _ = _valid_frames(frames, angles, None)
        idx = pick_manual_frame(frames, angles, params)
        return manual_layer(frames[idx], params)
    image = layer_map(frames, angles, labels, params)
    return image, segment_map(image, params)


# ----------------------------------------------------------------------------------------------
# The manual reference


def rocking_curve(frames: np.ndarray) -> np.ndarray:
    """Integrated intensity of each frame (float64, n)."""
    f = np.asarray(frames)
    return f[:, ::2, ::2].reshape(f.shape[0], -1).mean(axis=1, dtype=np.float64)


def pick_manual_frame(frames: np.ndarray, angles: np.ndarray | None, params: ReconstructionParams) -> int:
    """Default rule for the manual method's frame: the weak-beam frame nearest the peak.

    On the layer's rocking curve (mean intensity per frame), the frames whose intensity above the
    curve's minimum is at most ``manual_tail_fraction`` of the peak's are weak-beam dominated; of
    those, the one nearest the peak on each side is a candidate (most weak-beam signal), and the
    candidate with the stronger bright tail (99.9th percentile minus median) is picked.
    """
    curve = rocking_curve(frames)
    n = len(curve)
    x = np.asarray(angles, dtype=np.float64) if angles is not None else np.arange(n, dtype=np.float64)
    k0 = int(np.argmax(curve))
    base = float(curve.min())
    tail = curve - base <= params.manual_tail_fraction * (curve[k0] - base)
    cands = []
    for side in (-1, 1):
        idx = np.flatnonzero(tail & (np.sign(x - x[k0]) == side))
        if len(idx):
            cands.append(int(idx[np.argmin(np.abs(x[idx] - x[k0]))]))
    if not cands:
        return int(np.argmin(curve))

    def signal(j: int) -> float:
        f = frames[j, ::2, ::2]
        return float(np.percentile(f, 99.9) - np.median(f))

    return max(cands, key=signal)


def manual_layer(frame: np.ndarray, params: ReconstructionParams) -> tuple[np.ndarray, np.ndarray]:
    """The manual method on one WB frame: floor, line filter, normalise, threshold, clean-up."""
    frame = _check_frames(np.asarray(frame)[None], "frame")[0]
    img = np.maximum(frame.astype(np.float32) - np.float32(params.intensity_floor), 0)
    response = line_filter(img, params.line_filter, params.sigmas)
    scale = _percentile(response, 99.9)
    if scale <= 0:
        scale = float(response.max())
    if scale > 0:
        response = response / np.float32(scale)
    mask = response >= params.manual_threshold
    return np.minimum(response, 1).astype(np.float32), clean_mask(mask, params)
