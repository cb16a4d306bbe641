"""The dfxm-geo generator (issue 9, item 4): labelled scans from the field's forward model, in our
file layout, so open_scan and load_truth read them like our simulator's."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip(
    "dfxm_geo", reason="dfxm-geo is not installed (pip install 'napari-weakbeam[dfxmgeo]'; it is in the test extra)"
)

from napari_weakbeam.core.errors import WeakbeamError  # noqa: E402
from napari_weakbeam.core.patches import STRONG_BEAM, UNLABELLED, WEAK_BEAM  # noqa: E402
from napari_weakbeam.core.scanfiles.readers import open_scan  # noqa: E402
from napari_weakbeam.core.simulate import BENCHMARK_CASES, benchmark_set, load_truth, write_labelled_scan  # noqa: E402
from napari_weakbeam.core.simulate import dfxmgeo  # noqa: E402
from napari_weakbeam.core.simulate.truth import grain_fraction  # noqa: E402

P = 16


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    params = dfxmgeo.DfxmGeoParams(rows=96, frames=17, seed=2, dislocations=4, walls=1, wall_spacing_um=0.3,
                                   mosaicity_mrad=0.25, mosaic_length_um=1.5, photons=5000.0, dark_adu=600.0,
                                   grain_coverage=0.7)
    path = tmp_path_factory.mktemp("dfxmgeo") / "dg.h5"
    write_labelled_scan(path, params)
    return path, params


def test_perfect_crystal_curve():
    off, vals, peak, fwhm = dfxmgeo.perfect_curve()
    assert abs(peak) < 1e-9 and 0.2 < fwhm < 0.35  # mrad: set by the beam divergence and optics
    np.testing.assert_allclose(vals, vals[::-1], atol=1e-3)  # symmetric
    assert vals[0] < 1e-3 and vals[-1] < 1e-3 and vals.max() == 1.0  # no tails (geometrical optics)
    prof = dfxmgeo.curve_profile()
    assert np.interp(1.0, prof[0], prof[1]) == pytest.approx(0.5, abs=0.02)  # half maximum at 1 HWHM


def test_scan_opens_like_ours(scan):
    path, params = scan
    s = open_scan(path)
    truth = load_truth(path)
    assert s.frames.shape == (1, 17, 96, 32)
    assert s.pixel_size == pytest.approx(dfxmgeo.PIXEL_UM)
    np.testing.assert_allclose(s.angles, truth.angles)
    assert truth.generator == "dfxm-geo" and truth.curve_profile.shape[0] == 2
    frames = np.asarray(s.frames[0])
    # the detector: dfxm-geo's PCO model, floor at dark_adu
    outside = ~truth.grain_mask[0]
    assert outside.mean() > 0.15
    assert abs(np.median(frames[:, outside]) - params.dark_adu) < 5
    assert frames.max() > params.dark_adu + 0.5 * params.photons * 2.14
    assert len(truth.points_um) >= 1 and truth.core_mask.any()


def test_truth_has_both_classes_and_follows_the_data(scan):
    path, params = scan
    truth = load_truth(path)
    cls = truth.classes(P)[0]
    counts = np.bincount(cls.ravel(), minlength=3)
    assert counts[WEAK_BEAM] > 0 and counts[STRONG_BEAM] > 0
    frac = grain_fraction(truth.grain_mask[0], P)
    assert (cls[:, frac < 0.25] == UNLABELLED).all()
    # labels against the scan itself: a labelled patch is SB at the frame where its measured curve
    # peaks, and its measured intensity is high where labelled SB, low where labelled WB
    data = np.asarray(open_scan(path).frames[0], float) - params.dark_adu
    gr, gc = cls.shape[1:]
    sb_rel, wb_rel, peaks_sb = [], [], []
    for i in range(gr):
        for j in range(gc):
            if frac[i, j] < 0.25:
                continue
            c = data[:, i * P:(i + 1) * P, j * P:(j + 1) * P].mean(axis=(1, 2))
            peaks_sb.append(cls[int(c.argmax()), i, j] == STRONG_BEAM)
            sb_rel += list(c[cls[:, i, j] == STRONG_BEAM] / c.max())
            wb_rel += list(c[cls[:, i, j] == WEAK_BEAM] / c.max())
    assert len(peaks_sb) >= 6 and np.mean(peaks_sb) >= 0.9
    assert np.mean(np.array(sb_rel) > 0.3) > 0.9 and np.mean(np.array(wb_rel) < 0.3) > 0.9


def test_tilt_moves_the_labels_across_the_field(scan):
    path, _ = scan
    truth = load_truth(path)
    cls = truth.classes(P)[0]
    mixed = [f for f in range(cls.shape[0]) if {WEAK_BEAM, STRONG_BEAM} <= set(np.unique(cls[f]))]
    assert mixed  # some frame is WB in one region and SB in another
    assert np.ptp(truth.peak_mrad) > 0.1


def test_params_benchmark_and_random():
    with pytest.raises(WeakbeamError, match="dark_adu"):
        dfxmgeo.DfxmGeoParams(dark_adu=50.0)
    with pytest.raises(WeakbeamError, match="rows"):
        dfxmgeo.DfxmGeoParams(rows=8)
    p = dfxmgeo.DfxmGeoParams(rows=96, walls=2)
    assert dfxmgeo.DfxmGeoParams.from_json(p.to_json()) == p and p.cols == 32
    sets = benchmark_set("dfxmgeo")
    assert tuple(sets) == BENCHMARK_CASES
    assert sets["dark_2500"].dark_adu == 2500 and sets["low_exposure_100"].photons == 100
    assert sets["falloff_85"].illumination_falloff == 0.85 and sets["grain_40"].grain_coverage == 0.4
    rng = np.random.default_rng(0)
    ps = [dfxmgeo.random_dfxmgeo_params(rng) for _ in range(200)]
    rows = np.array([q.rows for q in ps])
    assert rows.min() == 192 and rows.max() == 384
    frames = np.array([q.frames for q in ps])
    assert frames.min() == 15 and frames.max() == 41
    photons = np.array([q.photons for q in ps])
    assert photons.min() < 80 and photons.max() > 10000
    assert {q.walls > 0 for q in ps} == {True, False} and max(q.dislocations for q in ps) >= 60
    with pytest.raises(WeakbeamError, match="unknown dfxm-geo parameter"):
        dfxmgeo.random_dfxmgeo_params(1, bogus=2)


def test_missing_package_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dfxm_geo.direct_space.forward_model", None)
    with pytest.raises(WeakbeamError, match=r"needs the optional package dfxm-geo: pip install 'napari-weakbeam\[dfxmgeo\]'"):
        write_labelled_scan(tmp_path / "x.h5", dfxmgeo.DfxmGeoParams(rows=48, frames=3))
    assert not (tmp_path / "x.h5").exists()
    assert json.loads(dfxmgeo.DfxmGeoParams().to_json())["rows"] == 192


def test_truth_lines_follow_the_imaged_streaks(scan):
    """The truth is each dislocation's line, not one point: where a line runs in the imaged slab it
    is a streak in the weak-beam frames, and the truth points lie on it."""
    path, params = scan
    truth = load_truth(path)
    sp = truth.params
    assert sp.layer_thickness_um == pytest.approx(dfxmgeo.beam_fwhm_um()) and 0.1 < sp.layer_thickness_um < 0.2
    assert len(truth.lines_um) == len(truth.line_kinds) >= params.dislocations
    for v in truth.lines_um:  # straight lines through the layer
        d = np.diff(v, axis=0)
        np.testing.assert_allclose(d / np.linalg.norm(d, axis=1)[:, None], np.broadcast_to(d[0] / np.linalg.norm(d[0]), d.shape), atol=1e-3)  # float32 in the file
    pts = truth.points_um
    assert len(pts) > 20 and np.all(np.abs(pts[:, 0]) < 1e-9)  # snapped to the layer
    # the truth points sit on the weak-beam signal: the dislocation map (weak-beam sum with the
    # true labels) is brighter there than over the rest of the grain
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.workflows import reconstruct_scan, run

    class Labels:
        label, patch_size = truth.classes(P), P

    vol = run(reconstruct_scan(open_scan(path), Labels(), ReconstructionParams(trace=False))).volume[0]
    r = np.clip(np.rint(pts[:, 1] / sp.pixel_size_um).astype(int), 0, params.rows - 1)
    c = np.clip(np.rint(pts[:, 2] / sp.x_pixel_um).astype(int), 0, params.cols - 1)
    grain = truth.grain_mask[0]
    on = grain[r, c]
    # (4x: the map is in units of the crystal's own noise, measured without the field off the grain)
    assert np.median(vol[r[on], c[on]]) > 4 * max(np.median(vol[grain]), 1e-3)


def test_layers_move_the_beam_up_through_the_same_dislocations():
    """A dfxm-geo stack (the rays shifted in height per layer): its first layer is the single-layer
    scan's, and an inclined dislocation's weak-beam image follows its true line up the stack."""
    from scipy import ndimage as ndi

    one = dfxmgeo.DfxmGeoParams(rows=96, frames=15, seed=22, dislocations=1, mosaicity_mrad=0.0, photons=20000.0,
                                spread_um=0.3)
    frames1, _ = dfxmgeo.simulate_dfxmgeo(one)
    stack = dfxmgeo.DfxmGeoParams(**{**json.loads(one.to_json()), "layers": 3, "layer_spacing_um": 0.5})
    frames, truth = dfxmgeo.simulate_dfxmgeo(stack)
    assert frames.shape == (3, 15, 96, 32) and np.array_equal(frames[0], frames1[0])
    np.testing.assert_allclose(truth.layer_positions, [0.0, 0.5, 1.0])
    line, sp = truth.lines_um[0], truth.params
    moved = []
    for k, z in enumerate(truth.layer_positions):
        i = np.argmin(np.abs(line[:, 0] - z))
        true_rc = np.array([line[i, 1] / sp.pixel_size_um, line[i, 2] / sp.x_pixel_um])
        f = frames[k].astype(float) - np.median(frames[k])
        wb = ndi.uniform_filter(f[:3].sum(0) + f[-3:].sum(0), 3)  # the tails of the rocking scan
        found = np.array(np.unravel_index(np.argmax(wb), wb.shape), dtype=float)
        assert abs(found[0] - true_rc[0]) <= 5 and abs(found[1] - true_rc[1]) <= 2, (k, found, true_rc)
        moved.append(true_rc)
    assert np.hypot(*(moved[-1] - moved[0])) > 10  # the line moves across the field between layers
    with pytest.raises(WeakbeamError, match="layers"):
        dfxmgeo.DfxmGeoParams(layers=0)
