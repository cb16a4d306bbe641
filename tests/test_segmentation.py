"""Segmenting dislocation maps so that it holds across data (issue 10): local noise, field edges,
anisotropic pixels, and the truth scoring the benchmark uses."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams, prepare_params, reconstruct_layer
from napari_weakbeam.core.reconstruction.segmentation import adaptive_mask, local_spread, noise_level, object_peaks, remove_background
from napari_weakbeam.core.simulate import SimulationParams, simulate
from napari_weakbeam.core.simulate.scoring import score_points

from recon_synth import synth_layer


def _lines_map(rng, shape=(128, 128), noise=(1.0, 1.0)):
    """A map of unit Gaussian noise (left / right halves scaled by ``noise``) with three thin
    bright vertical lines in the left half."""
    img = rng.normal(0, 1, shape).astype(np.float32)
    img[:, : shape[1] // 2] *= noise[0]
    img[:, shape[1] // 2:] *= noise[1]
    img = np.maximum(img, 0)
    for c in (15, 30, 45):
        img[10:110, c] += 40
    return img


def test_noisier_region_gives_no_false_objects():
    """Thresholds follow the local noise: a region of 4x noise (brighter background left in the
    weak-beam frames) stays empty, while lines in the quiet region are found."""
    rng = np.random.default_rng(0)
    img = _lines_map(rng, noise=(1.0, 4.0))
    params = ReconstructionParams(object_fraction=0.0)
    centre, spread = noise_level(img[:, :64])  # the scan's level, measured where it is quiet
    mask = adaptive_mask(img, params, (centre, spread))
    assert mask[:, 64:].sum() == 0
    for c in (15, 30, 45):
        assert mask[10:110, c].mean() > 0.95
    # the local spread is ~4x higher on the noisy side; a single global level would not be
    ls = local_spread(img)
    assert np.median(ls[:, 80:]) > 3 * np.median(ls[:, :48])
    flat = img > centre + params.hysteresis_low * spread
    assert flat[:, 64:].sum() > 100  # what the global threshold alone would have let through


def test_hill_cut_by_the_field_edge_is_not_a_line():
    """A smooth hill that rises towards the field's edge leaves no bright edge after the top-hat;
    a thin line survives it."""
    x = np.linspace(0, 1, 96, dtype=np.float32)
    img = np.tile(50 * x**2, (96, 1))  # rising to the right edge
    img[:, 40] += 30
    out = remove_background(img, 15)
    assert out[:, -3:].max() < 0.1 * 50
    assert out[:, 40].min() > 25


def test_one_column_lines_survive_anisotropic_pixels(tmp_path):
    """With DFXM's wide columns (x = pixel / sin 2theta), a line one column wide is real: the
    reconstruction keeps it, and the top-hat is square in micrometres (the aspect comes from the
    scan's 2theta)."""
    frames, angles, labels, core = synth_layer(3, shape=(96, 96), patch=16, n_lines=1)
    frames = frames.astype(np.float64)
    wb = np.abs(np.arange(len(frames)) - len(frames) / 2) > 4  # tail frames
    frames[wb, 10:86, 48] += 600  # one column wide, weak beam only
    frames = frames.astype(np.uint16)
    path = tmp_path / "aniso.h5"
    write_bliss(path, [frames], [angles], np.zeros(1), pixel_size=0.04, two_theta=18.0)
    params = prepare_params(open_scan(str(path)), None, ReconstructionParams())
    assert params.pixel_aspect == pytest.approx(1 / np.sin(np.radians(18.0)))
    _, mask = reconstruct_layer(frames, angles, None, params)
    assert mask[10:86, 47:50].any(axis=1).mean() > 0.9


def test_score_points_against_the_truth():
    sim = simulate(SimulationParams(rows=96, cols=96, layers=1, frames=5, seed=4))
    truth = sim.truth
    pts = truth.points_um
    assert len(pts) > 20
    s = score_points(pts, truth)
    # on the lines: the median is at most half the scoring's sampling step of the lines (px / 4)
    assert s.recall == 1.0 and s.precision == 1.0 and s.median_px <= 0.25
    shifted = pts + np.array([0.0, 6 * truth.params.pixel_size_um, 0.0])  # 6 px off in y
    s = score_points(shifted, truth)
    assert s.recall < 0.5 and s.precision < 0.5 and s.median_px > 3
    # half the points found: recall ~0.5, precision 1
    s = score_points(pts[::2], truth)
    assert 0.45 < s.recall <= 1.0 and s.precision == 1.0
    # nothing found: recall 0
    assert score_points(np.zeros((0, 3)), truth).recall == 0.0


def test_faint_blob_beside_bright_lines_is_dropped():
    """A blob far above the noise but fainter than 5 % of the layer's lines (a strain lobe) is
    dropped (``min_peak_fraction``); kept without that rule; a layer of faint lines alone keeps
    them (the fraction is relative to the layer's own lines)."""
    rng = np.random.default_rng(1)
    img = _lines_map(rng)
    img[:, 15:46:15] += 2000  # bright lines: ~2,000 noise units
    img[60:70, 90:100] += 60  # blob: ~60 noise units, below 5 % of the lines
    level = noise_level(img[:, 64:80])
    mask = adaptive_mask(img, ReconstructionParams(), level)
    assert mask[60:70, 90:100].sum() == 0
    assert all(mask[20:100, c].all() for c in (15, 30, 45))
    kept = adaptive_mask(img, ReconstructionParams(min_peak_fraction=0.0), level)
    assert kept[60:70, 90:100].sum() > 50
    faint = _lines_map(rng)  # lines of ~40 noise units only
    faint_mask = adaptive_mask(faint, ReconstructionParams(), noise_level(faint[:, 64:]))
    assert all(faint_mask[20:100, c].mean() > 0.9 for c in (15, 30, 45))


def test_object_peaks_match_ndimage_maximum():
    """The fast per-object maximum gives what ``ndi.maximum`` with labels gives."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, (64, 64)).astype(np.float32)
    lab, n = ndi.label(values > 1.0, structure=np.ones((3, 3)))
    assert n > 5
    np.testing.assert_allclose(object_peaks(values, lab, n), ndi.maximum(values, lab, np.arange(1, n + 1)))


@pytest.mark.parametrize("seed", range(6))
def test_block_spreads_equal_the_noise_level_of_each_block(seed):
    """local_spread's vectorised block spreads are noise_level's, block by block, bit for bit:
    noise, lines over it, clipped (zero) areas, a constant block and NaNs."""
    from napari_weakbeam.core.reconstruction.segmentation import block_spreads

    rng = np.random.default_rng(seed)
    img = rng.gamma(2.0, 1.0 + seed, (256, 320)).astype(np.float32)
    img[rng.integers(0, 256, 12), :] += 40  # lines
    img[:40, :64] = 0  # clipped frames
    img[100:132, 64:96] = 7.0  # a constant block
    img[rng.random(img.shape) < 0.001] = np.nan
    blocks = img.reshape(8, 32, 10, 32).transpose(0, 2, 1, 3).reshape(80, 1024)
    loop = np.array([noise_level(b, lower_cap=True)[1] for b in blocks])
    assert np.array_equal(block_spreads(blocks), loop)


def _faint_scene(shape=(120, 120)):
    """A contrast map (noise units) of unit Gaussian noise with a bright line (20 units), a faint
    line (8), a faint line along the field's edge (8) and a faint blob (8, 5 x 5 px), and the
    per-pixel weak-beam frame counts: the lines persist over 5 frames, the blob lit one frame."""
    contrast = np.random.default_rng(3).normal(0, 1, shape).astype(np.float32)
    counts = np.zeros(shape, np.uint8)
    contrast[10:110, 20] += 20
    contrast[10:110, 60] += 8
    contrast[10:110, 1] += 8
    contrast[50:55, 95:100] += 8
    counts[10:110, 19:22] = counts[10:110, 59:62] = counts[10:110, 0:3] = 5
    counts[49:56, 94:101] = 1
    return contrast, counts


def test_faint_objects_seen_over_frames_seed_the_hysteresis():
    """Low exposure (issue 10, wall stacks at 100 ADU): faint lines peak at 7-12 noise units,
    under ``hysteresis_high``; with the frame counts a faint object bright in >= 2 weak-beam
    frames seeds an object, a one-frame blob as bright does not, nor a faint object at the
    field's edge; without counts (or with ``hysteresis_faint`` at the high threshold) the plain
    hysteresis."""
    from skimage.filters import apply_hysteresis_threshold

    from napari_weakbeam.core.reconstruction.segmentation import hysteresis

    contrast, counts = _faint_scene()
    params = ReconstructionParams()
    plain = apply_hysteresis_threshold(contrast, params.hysteresis_low, params.hysteresis_high)
    assert np.array_equal(hysteresis(contrast, params), plain)
    assert np.array_equal(hysteresis(contrast, ReconstructionParams(hysteresis_faint=12.0), counts), plain)
    assert plain[10:110, 20].all() and not plain[:, 55:].any() and not plain[:, :5].any()
    seeded = hysteresis(contrast, params, counts)
    assert seeded[10:110, 60].all() and seeded[10:110, 20].all()
    assert not seeded[:, 90:].any() and not seeded[:, :5].any()  # the one-frame blob, the edge line
    with pytest.raises(Exception, match="hysteresis_faint"):
        ReconstructionParams(hysteresis_faint=0.0)


def test_finish_segmentation_keeps_a_faint_line_seen_over_frames():
    """Through the scan's finish: a line at ~9 noise units is in ``adaptive``'s points when the
    layer's frame counts are given, and not without them; the stored mask (the drift's and the
    lines' input) is :func:`segment_map`'s, without the counts: the faint line is not in it."""
    from recon_synth import finish_one_layer

    image = np.zeros((120, 120), np.float32)
    image[10:110, 60] = 8.5
    image[10:110, 20] = 30.0
    counts = np.zeros((120, 120), np.uint8)
    counts[10:110, 59:62] = counts[10:110, 19:22] = 5
    rows, mask = finish_one_layer(image, ReconstructionParams(), counts=[counts])
    assert len(rows) > 170  # both lines' points
    assert mask[10:110, 20].all() and not mask[:, 50:].any()
    rows, mask = finish_one_layer(image, ReconstructionParams(), counts=None)
    assert 80 < len(rows) < 110 and not mask[:, 50:].any()
