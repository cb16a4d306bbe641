"""3D reconstruction of dislocations from the weak-beam (WB) data of a layer scan.

Per layer, :mod:`.dislocation_map` turns the rocking frames and their per-patch WB/SB labels into a
dislocation map and a mask (methods ``adaptive``, ``paper``, ``ridge``, ``manual``; parameters in
:class:`ReconstructionParams`). Here one layer (:func:`process_layer`) and the finish of the whole
scan (:func:`assemble`; the workflow napari_weakbeam.workflows.reconstruct streams the layers one at
a time, memory bounded by one layer of frames): the noise-based methods
segment every layer with the scan's noise level (one decision for all layers), the drift between
layers is registered, the mask (or skeleton) voxels become a drift-corrected point cloud in
micrometres (z, y, x) and the masks are traced into 3D dislocation lines (:mod:`.lines`). The
``manual`` method is the reference the paper compares with: one WB frame per layer, an intensity
floor (110 ADU), a line filter and a threshold. See docs/reconstruction.md.

The per-layer unit of work (:func:`process_layer`, :func:`reconstruct_one`) pickles to Dask workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from skimage import morphology

from .dislocation_map import (  # noqa: F401 (re-exported: the public reconstruction API)
    LINE_FILTERS,
    METHODS,
    THRESHOLD_RULES,
    ReconstructionParams,
    adaptive_mask,
    clean_mask,
    data_threshold,
    infer_patch_size,
    layer_map,
    line_filter,
    manual_layer,
    normalise_frames,
    noise_level,
    normalised_sum,
    pick_manual_frame,
    reconstruct_layer,
    rocking_curve,
    scan_noise_level,
    segment_map,
    uses_scan_noise,
    wb_weights,
)
from ..errors import WeakbeamError
from ..scanfiles.scan import layer_spacing
from .drift import drift_and_lines, registration_image
from .drift_reference import check_box, reference_drift
from .segmentation import segment_points
from .few_frames import FrameCount, drop_few_frame_lines, peel_few_frame_ends
from .detector_defects import remove_defects
from .lobe_dots import keep_lobe_dot_centres
from .tail_ends import drop_one_tail_lines, peel_one_tail_ends
from .tails import tail_images
from .lines import Lines
from ..patches import grid_shape

@dataclass
class Reconstruction:
    """A reconstructed volume and its point cloud in physical units.

    ``volume`` is the float32 dislocation map (layers, rows, cols), ``mask`` the binary
    segmentation, ``skeleton`` its per-layer skeleton; ``points_um`` (N, 3) holds z, y, x in
    micrometres of the mask (or skeleton, ``params["points"]``) voxels; ``voxel_size_um`` is
    (dz, dy, dx) with dx stretched by 1/sin(2theta) when 2theta is known.
    """

    volume: np.ndarray
    mask: np.ndarray
    skeleton: np.ndarray
    points_um: np.ndarray
    voxel_size_um: tuple[float, float, float]
    layer_positions: np.ndarray
    method: str = "adaptive"
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    frames_used: np.ndarray | None = None  # manual: the picked frame per layer
    lines: Lines | None = None  # traced 3D dislocation lines (um, z y x)
    drift_px: np.ndarray | None = None  # (layers, 2) registered drift (dy, dx) of each layer, pixels
    drift_source: str = ""  # how the drift was measured (drift.DRIFT_SOURCES; "" not known)
    noise: tuple[float, float] | None = None  # the scan's noise level (centre, spread) of the maps
    defects: np.ndarray | None = None  # (layers, 2) detector defects repaired: hot pixels, zinger values

    @property
    def origin_um(self) -> tuple[float, float, float]:
        """Physical position (z, y, x) of voxel (0, 0, 0)."""
        z0 = float(self.layer_positions[0]) if len(self.layer_positions) else 0.0
        return (z0, 0.0, 0.0)


# ----------------------------------------------------------------------------------------------
# Whole scans


def voxel_size(scan: Any) -> tuple[float, float, float]:
    """(dz, dy, dx) in micrometres: layer spacing, pixel size, pixel size / sin(2theta)."""
    dz = layer_spacing(scan.layer_positions)
    py = float(scan.pixel_size) if scan.pixel_size else 1.0
    px = py
    tth = (scan.metadata or {}).get("two_theta")
    if tth is not None and np.isfinite(tth) and 0 < abs(float(tth)) < 180:
        px = py / abs(math.sin(math.radians(float(tth))))
    return (dz, py, px)


def skeleton_2d(mask: np.ndarray) -> np.ndarray:
    """Centre lines of one layer's mask (bool)."""
    return morphology.skeletonize(np.asarray(mask, dtype=bool))


def layer_points_um(voxels: np.ndarray, z_um: float, voxel: tuple[float, float, float],
                    drift_px: np.ndarray | None = None) -> np.ndarray:
    """The set voxels of one layer's mask or skeleton as (N, 3) z, y, x micrometres, corrected
    for the layer's drift (dy, dx) in pixels when given."""
    r, c = np.nonzero(voxels)
    dy, dx = (0.0, 0.0) if drift_px is None else (float(drift_px[0]), float(drift_px[1]))
    return np.column_stack([np.full(r.shape, z_um, dtype=np.float64), (r - dy) * voxel[1], (c - dx) * voxel[2]])


@dataclass
class LayerResult:
    """What one layer gives: map, mask (provisional for the noise-based methods until the scan's
    noise level is known, see :func:`assemble`), skeleton, the manual frame used (if any), the
    map's noise level (centre, spread), the drift-registration image and the rocking curve's
    tails around the mask."""

    index: int
    map: np.ndarray
    mask: np.ndarray
    skeleton: np.ndarray
    frame_used: int = -1
    noise: tuple[float, float] = (float("nan"), float("nan"))
    reg: np.ndarray | None = None
    tails: np.ndarray | None = None
    """(2, rows, cols) float16: the rocking curve's two tails around the mask (:func:`.tails.tail_images`)."""
    counts: np.ndarray | None = None
    """(rows, cols) uint8: the weak-beam frames in which each pixel is bright (:mod:`.few_frames`)."""
    wb_frames: int = 0
    """The weak-beam frames ``counts`` counted over (the frames the map sums)."""
    defects: tuple[int, int] = (0, 0)
    """The detector defects repaired before the map: hot pixels, zinger values (:mod:`.detector_defects`)."""

    def point_voxels(self, params: ReconstructionParams) -> np.ndarray:
        """The voxels that make the point cloud: the mask or the skeleton (``params.points``)."""
        return self.skeleton if params.points == "skeleton" else self.mask


def layer_labels(source: Any, scan: Any, layer: int, frames: np.ndarray | None = None) -> tuple[np.ndarray | None, int | None]:
    """Labels (frames, gr, gc) and patch size of ``layer`` from a Predictions or a Classifier."""
    if source is None:
        return None, None
    if hasattr(source, "label"):
        lab = np.asarray(source.label[layer])
        prob = getattr(source, "prob", None)
        if prob is not None:
            return _prob_or_label(np.asarray(prob[layer]), lab), int(source.patch_size)
        return lab, int(source.patch_size)
    if hasattr(source, "predict_frames"):
        if frames is None:
            frames = scan.layer(layer)
        label, prob = source.predict_frames(frames)
        return _prob_or_label(np.asarray(prob), np.asarray(label)), int(source.patch_size)
    raise TypeError(f"cannot get labels from {type(source).__name__}")


def _prob_or_label(prob: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per-patch WB probabilities (float32) where classified, else the label's weight (WB 1, SB 0,
    unclassified NaN, i.e. the ``use_ambiguous`` rule)."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.shape != label.shape:
        return label
    fallback = np.where(label == 1, 1.0, np.where(label == 2, 0.0, np.nan)).astype(np.float32)
    return np.where(np.isfinite(prob), prob, fallback)


def process_layer(
    scan: Any,
    layer: int,
    params: ReconstructionParams,
    labels: np.ndarray | None = None,
    frame: int | None = None,
) -> LayerResult:
    """Read one layer of ``scan`` and reconstruct it (the unit of work for Dask).

    ``labels`` (frames, gr, gc) as in :func:`reconstruct_layer`; ``frame`` picks the frame for the
    manual method (None: the default rule). Errors name the scan's source and the layer.
    """
    try:
        return _process_layer(scan, layer, params, labels, frame)
    except WeakbeamError as exc:
        where = f"{getattr(scan, 'source', '')}: layer {layer}"
        msg = str(exc)
        raise WeakbeamError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def _process_layer(scan: Any, layer: int, params: ReconstructionParams, labels: np.ndarray | None,
                   frame: int | None) -> LayerResult:
    valid = scan.valid_frames(layer)
    if params.method == "manual" and frame is not None:
        if not 0 <= frame < scan.n_frames or not valid[frame]:
            raise WeakbeamError(f"frame {frame} is not in the scan ({scan.n_frames} frames)")
        img = np.asarray(scan.frame(layer, frame))
        m, k = manual_layer(img, params)
        return LayerResult(layer, m, k, skeleton_2d(k), frame, reg=registration_image(img[None]))
    frames = np.asarray(scan.layer(layer))
    angles = scan.angles[layer]
    used, counts, wb_frames, defects = -1, None, 0, (0, 0)
    if params.detector_defects and params.method in ("adaptive", "ridge"):
        frames, hot, zingers = remove_defects(frames)
        defects = (hot, zingers)
    if params.method == "manual":
        idx_valid = np.flatnonzero(valid)
        j = pick_manual_frame(frames[valid], angles[valid], params)
        used = int(idx_valid[j])
        m, k = manual_layer(frames[used], params)
        skel = skeleton_2d(k)
    else:
        count = FrameCount(frames.shape[1:], params.hysteresis_low) if params.method == "adaptive" else None
        m = layer_map(frames, angles, labels, params, count)
        counts = None if count is None else count.counts()
        wb_frames = 0 if count is None else count.n
        k, _, skel = segment_points(m, params, None, counts)
    noise = noise_level(m) if uses_scan_noise(params) else (float("nan"), float("nan"))
    reg = registration_image(frames, angles)
    tails = tail_images(frames, angles, k, reg) if params.method != "manual" else None
    return LayerResult(layer, m, k, skel, used, noise, reg, tails, counts, wb_frames, defects)


def prepare_params(scan: Any, predictions: Any, params: ReconstructionParams) -> ReconstructionParams:
    """Check ``predictions`` against ``scan`` and fill in the patch size and the pixel aspect of
    ``params``."""
    if predictions is not None and hasattr(predictions, "label"):
        lab = predictions.label
        expected = (scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, int(predictions.patch_size))
        if tuple(lab.shape) != expected:
            raise WeakbeamError(
                f"predictions {tuple(lab.shape)} do not match the scan {scan.source} "
                f"(expected {expected} at patch size {predictions.patch_size})"
            )
    if params.method != "manual" and predictions is not None and params.patch_size is None:
        params = replace(params, patch_size=int(predictions.patch_size))
    if params.drift_reference is not None:  # before any work, not after the last layer
        check_box(params.drift_reference, tuple(scan.frame_shape))
    return with_pixel_aspect(scan, params)


def with_pixel_aspect(scan: Any, params: ReconstructionParams) -> ReconstructionParams:
    """``params`` with the scan's pixel aspect (column / row pixel at the sample) filled in."""
    if params.pixel_aspect is not None:
        return params
    _, py, px = voxel_size(scan)
    return replace(params, pixel_aspect=px / py)


def reconstruct_one(scan: Any, layer: int, predictions: Any, params: ReconstructionParams) -> LayerResult:
    """Labels for ``layer`` (from predictions, or classified on the fly) and its reconstruction."""
    labels = None
    if params.method != "manual" and predictions is not None:
        frames = None if hasattr(predictions, "label") else np.asarray(scan.layer(layer))
        labels, _ = layer_labels(predictions, scan, layer, frames)
    return process_layer(scan, layer, params, labels)


def finish_segmentation(volume: Any, mask: Any, skeleton: Any, params: ReconstructionParams,
                        levels: np.ndarray, layers: list[int] | None = None,
                        tails: Any = None, counts: Any = None,
                        wb_frames: Any = None) -> tuple[float, float] | None:
    """Segment every layer with the scan's noise level (noise-based methods only; in place).

    ``volume``, ``mask``, ``skeleton``: arrays or HDF5 datasets indexed by layer (read and written
    one layer at a time); ``levels`` (layers, 2): each layer's (centre, spread); ``tails``: the
    per-layer rocking-curve tails (list or dataset; ``adaptive`` takes the line ends seen in
    one tail only off the skeleton, :func:`.tail_ends.peel_one_tail_ends`, and cuts the dots seen
    as two strain lobes to their centres, :func:`.lobe_dots.keep_lobe_dot_centres`); ``counts``: the
    per-layer frame counts (``adaptive`` seeds faint objects seen over frames,
    :func:`.segmentation.hysteresis`, and takes the line ends seen in few frames off the
    skeleton, :func:`.few_frames.peel_few_frame_ends`); with ``tails``, the centre lines seen in
    one tail only go (:func:`.tail_ends.drop_one_tail_lines`), and with ``counts`` and
    ``wb_frames`` (per layer, the weak-beam frames counted) those seen in few of them
    (:func:`.few_frames.drop_few_frame_lines`). Returns the scan's
    level, or None for the methods with their own thresholds.
    """
    if not uses_scan_noise(params):
        return None
    noise = scan_noise_level(levels)
    adaptive = params.method == "adaptive"
    for i in range(len(levels)) if layers is None else layers:
        if not np.all(np.isfinite(levels[i])):
            continue
        image = np.asarray(volume[i])
        c = None if counts is None else np.asarray(counts[i])
        m, full, skel = segment_points(image, params, noise, c)  # faint objects: points, not pieces
        if adaptive and tails is not None:
            skel = peel_one_tail_ends(skel, full, tails[i], params.tail_end_fraction, image)
        if adaptive and counts is not None:
            skel = peel_few_frame_ends(skel, c, params.few_frame_fraction, image)
        if adaptive and tails is not None and params.lobe_dots:
            skel = keep_lobe_dot_centres(skel, full, tails[i])
        if adaptive and tails is not None:
            known = counts is not None and wb_frames is not None
            skel = drop_one_tail_lines(skel, tails[i], params.one_tail_share, c if known else None,
                                       int(wb_frames[i]) if known else 0)
        if adaptive and counts is not None and wb_frames is not None:
            skel = drop_few_frame_lines(skel, c, int(wb_frames[i]), params.few_frames_share)
        mask[i] = m.astype(mask.dtype)
        skeleton[i] = skel.astype(skeleton.dtype)
    return noise


def assemble(
    volume: np.ndarray,
    mask: np.ndarray,
    skeleton: np.ndarray,
    scan: Any,
    params: ReconstructionParams,
    frames_used: np.ndarray | None = None,
    points: list[np.ndarray] | None = None,
    *,
    noise: np.ndarray | None = None,
    reg: list[np.ndarray | None] | None = None,
    layers: list[int] | None = None,
    tails: list[np.ndarray | None] | None = None,
    counts: list[np.ndarray | None] | None = None,
    wb_frames: Any = None,
) -> Reconstruction:
    """Finish a scan's per-layer results into a :class:`Reconstruction`.

    With ``noise`` (layers, 2), the per-layer noise levels, the noise-based methods re-segment
    every layer with the scan's level (:func:`finish_segmentation`; ``mask`` and ``skeleton`` are
    updated in place). With ``reg`` (per-layer registration images) the drift is registered
    and recorded. Then the points (given ``points`` are used as they are) and the 3D lines
    (``params.trace``; with ``tails``, the per-layer rocking-curve tails, the lines' pieces
    centred between them; with ``counts`` and ``wb_frames``, :func:`finish_segmentation`'s
    few-frame rules),
    both corrected for the drift when ``params.correct_drift``.
    """
    voxel = voxel_size(scan)
    pos = np.asarray(scan.layer_positions, dtype=np.float64)
    level = None
    if noise is not None and len(volume):
        level = finish_segmentation(volume, mask, skeleton, params, np.asarray(noise), layers, tails, counts, wb_frames)
    drift, lines, drift_source = None, None, ""
    if len(mask):
        regs = reg if reg is not None and any(r is not None for r in reg) else None
        reference = None if params.drift_reference is None else reference_drift(scan, params.drift_reference,
                                                                                 params.max_drift_px)
        drift, lines, drift_source = drift_and_lines(mask, pos, voxel, regs, max_shift_px=params.max_drift_px, correct=params.correct_drift,
                                       trace=params.trace, link_distance_um=params.link_distance_um, tails=tails,
                                       reference=reference, skeletons=skeleton if params.points == "skeleton" else None)
    shift = drift if params.correct_drift else None
    src = skeleton if params.points == "skeleton" else mask
    if points is None:
        points = [layer_points_um(src[i], pos[i], voxel, None if shift is None else shift[i]) for i in range(src.shape[0])]
    pts = np.concatenate(points) if points else np.zeros((0, 3))
    return Reconstruction(
        volume=volume,
        mask=mask,
        skeleton=skeleton,
        points_um=pts,
        voxel_size_um=voxel,
        layer_positions=pos,
        method=params.method,
        params=params.to_dict(),
        source=str(getattr(scan, "source", "")),
        frames_used=frames_used if params.method == "manual" else None,
        lines=lines,
        drift_px=drift,
        drift_source=drift_source,
        noise=level,
    )


def manual_frame(frames: Any, layer: int) -> int | None:
    """The manual method's frame for ``layer`` from a per-layer list (the CLI's ``--frames``, the
    widget's): None, the default rule (:func:`pick_manual_frame`), where no list is given or its
    entry is negative."""
    if frames is None or int(frames[layer]) < 0:
        return None
    return int(frames[layer])
