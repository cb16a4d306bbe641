"""The simulator's physics and ground truth, checked against its own noise-free rocking curves."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.patches import STRONG_BEAM, WEAK_BEAM, patch_means
from napari_weakbeam.core.simulate import SimulationParams, simulate
from napari_weakbeam.core.simulate.optics import pseudo_voigt

P = 32


@pytest.fixture(scope="module")
def sim():
    return simulate(SimulationParams(rows=128, cols=160, layers=2, frames=31, seed=1))


def test_deterministic_for_a_seed():
    p = dict(rows=48, cols=64, layers=2, frames=9)
    a, b = simulate(SimulationParams(seed=5, **p)), simulate(SimulationParams(seed=5, **p))
    c = simulate(SimulationParams(seed=6, **p))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.truth.peak_mrad, b.truth.peak_mrad)
    np.testing.assert_array_equal(a.truth.points_um, b.truth.points_um)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(a.truth.peak_mrad, c.truth.peak_mrad)


def test_scan_covers_weak_strong_and_mixed_frames(sim):
    cls = sim.truth.classes(P)
    assert cls.shape == (2, 31, 4, 5)
    counts = np.bincount(cls.ravel(), minlength=3)
    assert counts[WEAK_BEAM] > counts[STRONG_BEAM] > 0 and counts[0] > 0
    # the first and last frames are weak beam everywhere; some frame is WB in one place, SB in another
    assert (cls[:, [0, -1]] == WEAK_BEAM).all()
    per_frame = [(set(np.unique(cls[l, f])) >= {WEAK_BEAM, STRONG_BEAM}) for l in range(2) for f in range(31)]
    assert any(per_frame)


@pytest.mark.parametrize("patch, cells", [(32, [(0, 0), (1, 3), (3, 4), (2, 2)]), (48, [(2, 3), (0, 3), (1, 1)])])
def test_truth_u_matches_direct_sum_of_undislocated_curves(sim, patch, cells):
    """The fast (binned) u equals a direct sum of the patch's pixel curves on a fine angle grid
    (48-px patches: the last row and column of the grid are partial tiles, real pixels only)."""
    f = sim.fields[1]
    off = sim.offsets_mrad()[1]
    eta = sim.params.lorentz_fraction
    grid = np.linspace(off.min() - 0.5, off.max() + 0.5, 4001)
    u = sim.truth.u(patch)[1]
    assert u.shape == (31, -(-128 // patch), -(-160 // patch))
    for gi, gj in cells:
        pk = f.peak0[gi * patch:(gi + 1) * patch, gj * patch:(gj + 1) * patch].ravel()
        hw = f.fwhm0[gi * patch:(gi + 1) * patch, gj * patch:(gj + 1) * patch].ravel() / 2
        curve = pseudo_voigt((grid[:, None] - pk[None]) / hw[None], eta).sum(axis=1)
        i = int(curve.argmax())
        half = curve[i] / 2
        right = grid[i + int(np.argmax(curve[i:] < half))]
        left = grid[i - int(np.argmax(curve[: i + 1][::-1] < half))]
        phi0 = grid[i]
        direct = np.where(off >= phi0, (off - phi0) / (right - phi0), (phi0 - off) / (phi0 - left))
        np.testing.assert_allclose(u[:, gi, gj], direct, rtol=0.02, atol=0.03)


@pytest.mark.parametrize("dislocated", [False, True])
def test_classes_agree_with_noise_free_rocking_curves(sim, dislocated):
    """WB patches sit in the tail of their noise-free curve, SB patches near its peak."""
    cls = sim.truth.classes(P)
    for layer in range(sim.params.layers):
        curve = patch_means(sim.noise_free(layer, dislocated=dislocated), P)  # (frames, gr, gc)
        rel = curve / curve.max(axis=0, keepdims=True)
        wb, sb = rel[cls[layer] == WEAK_BEAM], rel[cls[layer] == STRONG_BEAM]
        assert np.quantile(wb, 0.98) < 0.10 and np.median(wb) < 0.02
        if dislocated:
            assert np.quantile(sb, 0.02) > 0.45
        else:  # exact: u <= 1 lies within the half maximum of the undislocated curve
            assert sb.min() >= 0.5 - 1e-3


def test_contrast_weak_beam_bright_lines_strong_beam_deficits(sim):
    """At the cores: brighter than the background in WB, darker in SB (per-pixel local u)."""
    for layer in range(sim.params.layers):
        f = sim.fields[layer]
        core = f.core_mask
        background = f.distance > 1.0
        assert core.sum() > 20 and background.sum() > 1000
        off = sim.offsets_mrad()[layer]
        u_pix = np.abs(off[:, None, None] - f.peak0[None]) / (f.fwhm0[None] / 2)
        frames = sim.frames[layer].astype(np.float64)
        wb_core = frames[(u_pix >= 3) & core[None]].mean()
        wb_bg = frames[(u_pix >= 3) & background[None]].mean()
        sb_core = frames[(u_pix <= 0.5) & core[None]].mean()
        sb_bg = frames[(u_pix <= 0.5) & background[None]].mean()
        assert wb_core > 3 * (wb_bg - sim.params.dark_adu) + sim.params.dark_adu
        assert sb_core < 0.8 * sb_bg


def test_detector_dark_level_and_noise():
    p = SimulationParams(rows=64, cols=64, frames=5, exposure=1e-9, seed=2)
    frames = simulate(p).frames
    assert frames.dtype == np.uint16
    assert abs(frames.mean() - 100) < 0.2
    assert abs(frames.std() - 3.0) < 0.3


def test_detector_gain_and_poisson_statistics(sim):
    """ADU - dark = gain * photons: mean and variance against the noise-free expectation."""
    p = sim.params
    expected = sim.noise_free(0, effects=True) * p.exposure  # photons
    adu = sim.frames[0].astype(np.float64)
    bright = expected > 200
    resid = adu[bright] - (p.dark_adu + p.gain_adu * expected[bright])
    assert abs(resid.mean()) < 0.5
    var_ratio = resid.var() / (p.gain_adu**2 * expected[bright] + p.read_noise_adu**2).mean()
    assert 0.9 < var_ratio < 1.1


def test_saturation_clips_strong_beam():
    base = dict(rows=64, cols=64, frames=15, seed=3, noise=False, fringe_contrast=0.0, psf_px=0.0)
    free = simulate(SimulationParams(saturation=0.0, **base)).frames.astype(float) - 100
    sat = simulate(SimulationParams(saturation=0.6, **base)).frames.astype(float) - 100
    assert free.max() > 0.9 * 2.14 * 2000 and sat.max() <= 0.6 * 2.14 * 2000 + 1


def test_points_and_core_mask_from_one_3d_structure():
    p = SimulationParams(rows=96, cols=96, layers=4, frames=5, seed=4, density_um2=0.03)
    s = simulate(p)
    t = s.truth
    assert t.core_mask.shape == (4, 96, 96) and t.core_mask.any(axis=(1, 2)).all()
    z = t.points_um[:, 0]
    assert set(np.unique(z)) <= set(p.layer_positions_um()) and len(np.unique(z)) == 4
    # pixel (r, c) is centred at y = r * pixel_size, x = c * pixel_size / sin(2theta)
    rows = np.rint(t.points_um[:, 1] / p.pixel_size_um).astype(int)
    cols = np.rint(t.points_um[:, 2] / p.x_pixel_um).astype(int)
    assert rows.min() >= 0 and cols.min() >= 0 and rows.max() <= 95 and cols.max() <= 95
    layer = np.rint(z / p.layer_spacing_um).astype(int)
    from scipy.ndimage import binary_dilation

    near = np.stack([binary_dilation(m, iterations=2) for m in t.core_mask])
    assert near[layer, rows, cols].mean() > 0.95
    on = t.core_mask[layer, rows, cols].mean()
    assert on > 0.97  # and not half a pixel off (that gives ~0.85)
    # lines are shared between layers: some line crosses at least two layers inside the field
    spans = [np.sum((seg[:, 0].min() <= np.array(p.layer_positions_um())) &
                    (np.array(p.layer_positions_um()) <= seg[:, 0].max())) for seg in t.lines_um]
    assert (t.line_kinds == 0).any() and max(spans) >= 2


@pytest.mark.parametrize(
    "kwargs, word",
    [({"rows": 0}, "rows"), ({"frames": -1}, "frames"), ({"fwhm_mrad": float("nan")}, "fwhm_mrad"),
     ({"exposure": 0}, "exposure"), ({"lorentz_fraction": 2}, "lorentz_fraction")],
)
def test_bad_parameters_one_line_error(kwargs, word):
    with pytest.raises(WeakbeamError) as err:
        SimulationParams(**kwargs)
    assert word in str(err.value) and "\n" not in str(err.value)
