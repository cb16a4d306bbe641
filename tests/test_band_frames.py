"""The frames between a patch's half maximum and its weak-beam border, for the map
(core/reconstruction/band_frames.py)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line as draw_line

from napari_weakbeam.core.classification.rocking_aid import curve_offsets, patch_curves
from napari_weakbeam.core.reconstruction.band_frames import curve_cap, map_weights, non_diffracting, with_band_frames
from napari_weakbeam.core.reconstruction.dislocation_map import ReconstructionParams, reconstruct_layer

PATCH = 32


def _short_range_layer(seed: int = 0, shape: tuple[int, int] = (128, 128), outside_cols: int = 0, peak: float = 2.0):
    """A scan that stops before the low-angle tail: the peak sits at frame ``peak`` of 15 (half
    width 1.5 frames; 2: the first frame at u = 1.33), and the lines show only between the half
    maximum and twice it (1 < u < 2), as the inclined lines of dfxm-geo's short-range scan do. Returns (frames, angles, classifier-like
    probabilities (0.9 for u >= 2, 0.1 between, 0.02 within the half maximum), core mask).
    ``outside_cols``: that many columns on the right diffract nothing (outside the grain)."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    core = np.zeros(shape, bool)
    for r0, c0, r1, c1 in ((10, 10, 110, 40), (20, 80, 100, 60), (60, 15, 70, 90)):
        rr, cc = draw_line(r0, c0, r1, c1)
        core[rr, cc] = True
    lines = ndi.gaussian_filter(core.astype(np.float64), 1.0)
    lines /= lines.max()
    n = 15
    frames = []
    for k in range(n):
        u = abs(k - peak) / 1.5
        sb = 2500 * 2.0 ** (-u * u) * (1 - 0.5 * lines)  # half maximum at u = 1
        band = 1500 * lines * (1 < u < 2)
        level = 100 + sb + band
        if outside_cols:
            level[:, cols - outside_cols:] = 100
        frames.append(np.clip(rng.poisson(level) + rng.normal(0, 3, shape), 0, 65535).astype(np.uint16))
    u = np.abs(np.arange(n) - peak) / 1.5
    p = np.where(u >= 2, 0.9, np.where(u > 1, 0.1, 0.02)).astype(np.float32)
    gr, gc = -(-rows // PATCH), -(-cols // PATCH)
    prob = np.broadcast_to(p[:, None, None], (n, gr, gc)).copy()
    return np.asarray(frames), 10.0 + 0.002 * np.arange(n), prob, core


def _recall(mask: np.ndarray, core: np.ndarray) -> float:
    near = ndi.binary_dilation(mask, iterations=3)
    return float(near[core].mean())


def test_band_frames_count_on_the_tail_side_where_the_scan_stops_before_the_other_tail():
    frames, angles, prob, _ = _short_range_layer()
    u = curve_offsets(patch_curves(frames, PATCH), angles, signed=True)
    assert np.nanmin(u) > -2 and np.nanmax(u) > 2  # the scan stops before the low-angle tail
    w = with_band_frames(prob, frames, angles, PATCH)
    with np.errstate(invalid="ignore"):
        promoted = u > 1  # beyond the half maximum on the side that has its tail
    assert promoted.any() and (~promoted & np.isfinite(u)).any() and (u < -1).any()
    assert np.all(w[promoted] == 1.0)
    assert np.array_equal(w[~promoted], prob[~promoted])  # the cut side and the peak: the classifier's
    assert w.dtype == np.float32 and w.shape == prob.shape


def test_a_scan_that_reaches_both_tails_keeps_the_classifier_s_weights():
    frames, angles, prob, _ = _short_range_layer(peak=7.0)
    u = curve_offsets(patch_curves(frames, PATCH), angles, signed=True)
    assert np.nanmin(u) < -2 and np.nanmax(u) > 2
    assert np.array_equal(with_band_frames(prob, frames, angles, PATCH), prob)


def test_a_short_range_scan_keeps_the_lines_seen_only_between_half_maximum_and_weak_beam():
    frames, angles, prob, core = _short_range_layer()
    _, with_band = reconstruct_layer(frames, angles, prob, ReconstructionParams())
    _, without = reconstruct_layer(frames, angles, prob, ReconstructionParams(band_frames=False))
    assert _recall(with_band, core) >= 0.8
    assert _recall(without, core) < 0.5


def test_class_labels_are_used_as_they_are():
    frames, angles, prob, _ = _short_range_layer()
    labels = np.where(prob >= 0.5, 1, 2).astype(np.uint8)
    a = reconstruct_layer(frames, angles, labels, ReconstructionParams())
    b = reconstruct_layer(frames, angles, labels, ReconstructionParams(band_frames=False))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_non_diffracting_pixels_are_found_only_where_something_does_not_diffract():
    frames, angles, prob, _ = _short_range_layer(outside_cols=40)
    out = non_diffracting(frames)
    assert out[:, -36:].mean() > 0.95 and out[:, :84].mean() < 0.02
    # all of the field diffracts, with a strong fall-off of the beam: nothing is outside
    frames2, _, _, _ = _short_range_layer()
    falloff = np.linspace(1.0, 0.15, frames2.shape[2])[None, None, :]
    assert not non_diffracting((frames2 * falloff).astype(np.uint16)).any()


def test_patches_holding_non_diffracting_pixels_are_left_to_the_classifier():
    frames, angles, prob, _ = _short_range_layer(outside_cols=40)
    w = with_band_frames(prob, frames, angles, PATCH)
    # columns 88-127 diffract nothing: patch columns 2 (64-95) and 3 hold such pixels
    assert np.array_equal(w[:, :, 2:], prob[:, :, 2:])
    assert (w[:, :, :2] > prob[:, :, :2]).any()


def test_too_few_frames_leave_the_probabilities_alone():
    frames, angles, prob, _ = _short_range_layer()
    assert np.array_equal(with_band_frames(prob[:4], frames[:4], angles[:4], PATCH), prob[:4])


def test_the_self_check_counts_the_curves_the_scan_cuts_before_a_tail():
    from napari_weakbeam.core.classification.scan_context import LayerContext
    from napari_weakbeam.core.classification.self_check import check_layer

    for peak, cut in ((2.0, True), (7.0, False)):
        frames, angles, prob, _ = _short_range_layer(peak=peak)
        check = check_layer(LayerContext.from_frames(frames, angles, PATCH), prob)
        assert check.curves == prob.shape[1] * prob.shape[2]
        assert check.cut == (check.curves if cut else 0)
        assert ("stops before one tail of 100 % of the patches" in check.summary()) == cut


def test_the_curve_cap_runs_from_the_half_maximum_to_the_weak_beam_border():
    u = np.array([0.0, -1.0, 1.5, -1.75, 2.0, -3.0, np.nan])
    assert np.allclose(curve_cap(u), [0, 0, 0.5, 0.75, 1, 1, 1])
    assert curve_cap(u).dtype == np.float32


def _peak_lobe_layer(seed: int = 0, shape: tuple[int, int] = (128, 128)):
    """A scan reaching both tails (peak at frame 7 of 15, half width 1.5 frames) whose lines show
    in the tails (u >= 2), and a blob with no line (a strain lobe) that shows only within the
    half maximum; a classifier that calls every frame weak beam (P 0.9). Returns (frames, angles,
    prob, core mask, blob mask)."""
    rng = np.random.default_rng(seed)
    core = np.zeros(shape, bool)
    for r0, c0, r1, c1 in ((10, 10, 110, 40), (20, 80, 100, 60)):
        rr, cc = draw_line(r0, c0, r1, c1)
        core[rr, cc] = True
    lines = ndi.gaussian_filter(core.astype(np.float64), 1.0)
    lines /= lines.max()
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = ((yy - 100) / 6.0) ** 2 + ((xx - 105) / 6.0) ** 2 <= 1
    lobe = ndi.gaussian_filter(blob.astype(np.float64), 1.5)
    lobe /= lobe.max()
    frames = []
    for k in range(15):
        u = abs(k - 7.0) / 1.5
        level = 100 + 2500 * 2.0 ** (-u * u) + 300 * lines * (u >= 2) + 6000 * lobe * (u <= 1)
        frames.append(np.clip(rng.poisson(level) + rng.normal(0, 3, shape), 0, 65535).astype(np.uint16))
    gr, gc = -(-shape[0] // PATCH), -(-shape[1] // PATCH)
    prob = np.full((15, gr, gc), 0.9, np.float32)
    return np.asarray(frames), 10.0 + 0.002 * np.arange(15), prob, core, blob


def test_the_classifier_s_weight_is_capped_where_the_patch_s_own_curve_is_near_its_peak():
    frames, angles, prob, _, _ = _peak_lobe_layer()
    u = curve_offsets(patch_curves(frames, PATCH), angles, signed=True)
    w = map_weights(prob, frames, angles, PATCH)
    with np.errstate(invalid="ignore"):
        near, far = np.abs(u) <= 1, np.abs(u) >= 2
    assert near.any() and far.any()
    assert np.all(w[near] == 0) and np.all(w[far] == prob[far])
    assert np.array_equal(map_weights(prob, frames, angles, PATCH, cap=False), with_band_frames(prob, frames, angles, PATCH))


def test_a_strain_lobe_seen_only_near_the_peak_leaves_the_map_with_the_cap():
    frames, angles, prob, core, blob = _peak_lobe_layer()
    _, capped = reconstruct_layer(frames, angles, prob, ReconstructionParams())
    _, uncapped = reconstruct_layer(frames, angles, prob, ReconstructionParams(curve_cap=False, local_curve_px=0))
    assert uncapped[blob].mean() > 0.5  # an overconfident classifier puts the lobe in the map
    assert not capped[blob].any()
    assert _recall(capped, core) >= 0.9
    # either cap alone takes it out: the patch's curve, or each 8-pixel block's own (local_curve_px)
    for one in (dict(local_curve_px=0), dict(curve_cap=False)):
        _, m = reconstruct_layer(frames, angles, prob, ReconstructionParams(**one))
        assert not m[blob].any() and _recall(m, core) >= 0.9


def test_patches_holding_non_diffracting_pixels_keep_the_classifier_s_weights():
    frames, angles, prob, _ = _short_range_layer(peak=7.0, outside_cols=40)
    w = map_weights(prob, frames, angles, PATCH)
    assert np.array_equal(w[:, :, 2:], prob[:, :, 2:])
    assert (w[:, :, :2] < prob[:, :, :2]).any()
