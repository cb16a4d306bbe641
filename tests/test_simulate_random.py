"""Randomised simulator settings, the grain mask, beam fall-off, cell walls, short rocking ranges,
labelled data sets and the benchmark set (issue 9, item 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.patches import STRONG_BEAM, UNLABELLED, WEAK_BEAM
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.simulate import (
    BENCHMARK_CASES, REGIMES, SimulationParams, benchmark_set, load_truth, make_dataset, random_params,
    simulate, write_labelled_scan,
)
from napari_weakbeam.core.simulate.truth import grain_fraction

ROOT = Path(__file__).resolve().parents[1]
P = 32


def test_random_draws_cover_the_ranges():
    rng = np.random.default_rng(123)
    ps = [random_params(rng) for _ in range(400)]
    arr = lambda name: np.array([getattr(p, name) for p in ps], float)  # noqa: E731
    dark, expo, gain = arr("dark_adu"), arr("exposure"), arr("gain_adu")
    assert 0 <= dark.min() < 150 and 2850 < dark.max() <= 3000
    assert 50 <= expo.min() < 80 and 30000 < expo.max() <= 50000
    assert 0.5 <= gain.min() < 0.6 and 4.0 < gain.max() <= 5.0
    assert (dark + 1.3 * gain * expo <= 60000 + 1e-6).all()  # the peak stays below uint16 saturation
    cov, fall = arr("grain_coverage"), arr("illumination_falloff")
    assert 0.3 <= cov.min() < 0.35 and 0.15 < (cov == 1).mean() < 0.35
    assert fall.min() == 0 and 0.8 < fall.max() <= 0.85
    frames, rows, cols = arr("frames"), arr("rows"), arr("cols")
    assert frames.min() in (11, 12) and 140 <= frames.max() <= 150
    assert rows.min() == cols.min() == 128 and rows.max() == cols.max() == 384 and (rows % 32 == 0).all()
    psf = arr("psf_px")
    assert psf.min() < 0.4 and psf.max() > 2.3
    dens, walls, tangle = arr("density_um2"), arr("walls"), arr("wall_line_fraction")
    assert dens.min() < 0.003 and dens.max() > 0.12 and walls.max() >= 15 and (tangle > 0.6).any()
    # rocking ranges: half cover the tails, the others stop short, some even before the mean peak
    short = np.array([p.rocking_half_range_mrad is not None for p in ps])
    assert 0.4 < short.mean() < 0.6
    lo = np.array([p.rocking_offset_mrad - p.half_range_mrad for p in ps])[short]
    hi = np.array([p.rocking_offset_mrad + p.half_range_mrad for p in ps])[short]
    fwhm = arr("fwhm_mrad")[short]
    assert ((lo > -fwhm) & (hi < fwhm)).any()  # stops before both tails
    assert ((lo > 0) | (hi < 0)).any() and ((lo > 0) | (hi < 0)).mean() < 0.3  # some miss the mean peak
    assert (arr("mosaicity_mrad") > np.array([p.half_range_mrad for p in ps])).any()  # mosaic wider than the scan


def test_random_params_regimes_overrides_and_errors():
    a = random_params(np.random.default_rng(5), regime="isolated")
    b = random_params(np.random.default_rng(5), regime="cells", rows=128)
    assert a.seed == b.seed and a.exposure == b.exposure  # same stream whatever is chosen or overridden
    assert b.rows == 128 and b.walls >= 5 and b.wall_line_fraction >= 0.6 and a.walls <= 1
    assert random_params(7) == random_params(7)
    assert set(REGIMES) == {"isolated", "network", "cells"}
    with pytest.raises(WeakbeamError, match="unknown simulation parameter 'colour'"):
        random_params(1, colour=3)
    with pytest.raises(WeakbeamError, match="regime 'foam'"):
        random_params(1, regime="foam")
    for bad in (dict(grain_coverage=0.0), dict(grain_coverage=1.5), dict(illumination_falloff=1.0),
                dict(wall_line_fraction=2.0), dict(rocking_offset_mrad=float("nan"))):
        with pytest.raises(WeakbeamError, match=next(iter(bad))):
            SimulationParams(**bad)


def test_defaults_leave_the_bundled_sample_unchanged():
    """The new physics is off by default: seed 1 still makes the shipped one_layer.h5 bit for bit."""
    sim = simulate(SimulationParams(rows=256, cols=256, layers=1, frames=31, seed=1))
    with h5py.File(ROOT / "src/napari_weakbeam/sample_data/one_layer.h5", "r") as f:
        np.testing.assert_array_equal(f["1.1/instrument/pco_ff/data"][()], sim.frames[0])
    assert sim.truth.grain_mask.all()


@pytest.fixture(scope="module")
def grain_sim():
    p = SimulationParams(rows=128, cols=160, layers=2, frames=41, seed=3, grain_coverage=0.4,
                         illumination_falloff=0.6, noise=False, psf_px=0.8)
    return simulate(p)


def test_grain_mask_excludes_dark_patches(grain_sim, tmp_path):
    sim, p = grain_sim, grain_sim.params
    g = sim.truth.grain_mask
    assert g.shape == (2, 128, 160) and g.dtype == bool
    assert abs(g[0].mean() - 0.4) < 0.02  # coverage of the middle layer (of 2: the first)
    assert 0.3 < g[1].mean() < 0.5 and (g[0] != g[1]).any() and (g[0] == g[1]).mean() > 0.8  # 3D, smooth
    cls = sim.truth.classes(P)
    for layer in range(2):
        frac = grain_fraction(g[layer], P)
        assert (cls[layer][:, frac < 0.25] == UNLABELLED).all()
        assert (cls[layer][:, frac >= 0.25] != UNLABELLED).any()
        # far outside the grain (no grain pixel within 4 px) the detector sees only its dark level
        from scipy import ndimage

        far = ~ndimage.binary_dilation(g[layer], iterations=4)
        assert far.mean() > 0.3
        assert (sim.frames[layer][:, far] == round(p.dark_adu)).all()
        assert sim.frames[layer][:, g[layer]].max() > p.dark_adu + 0.5 * p.exposure * p.gain_adu
    path = tmp_path / "grain.h5"
    write_labelled_scan(path, p)
    t = load_truth(path)
    np.testing.assert_array_equal(t.grain_mask, g)
    np.testing.assert_array_equal(t.classes(P), cls)
    assert t.generator == "weakbeam"


def test_illumination_falls_off_smoothly(grain_sim):
    ill = grain_sim.structure.illumination
    assert ill.shape == (128, 160)
    assert ill.min() == pytest.approx(0.4, abs=1e-4) and ill.max() == pytest.approx(1.0, abs=1e-4)
    assert np.abs(np.diff(ill, axis=0)).max() < 0.05 and np.abs(np.diff(ill, axis=1)).max() < 0.05
    # the truth ignores the beam: the same grain without fall-off has the same classes
    flat = simulate(SimulationParams(**{**json.loads(grain_sim.params.to_json()), "illumination_falloff": 0.0}))
    np.testing.assert_array_equal(flat.truth.classes(P), grain_sim.truth.classes(P))


def test_truth_follows_the_u_rule_on_a_noise_free_scan(grain_sim):
    """A grain patch is SB at the frame where its own undislocated curve peaks, WB far in its tails."""
    sim = grain_sim
    cls, u = sim.truth.classes(P), sim.truth.u(P)
    for layer in range(2):
        g = sim.truth.grain_mask[layer]
        curves = sim.noise_free(layer, dislocated=False) * g  # (frames, rows, cols), grain pixels only
        gr, gc = cls.shape[2:]
        checked = 0
        for i in range(gr):
            for j in range(gc):
                if grain_fraction(g, P)[i, j] < 0.25:
                    continue
                c = curves[:, i * P:(i + 1) * P, j * P:(j + 1) * P].sum(axis=(1, 2))
                peak = int(c.argmax())
                assert cls[layer, peak, i, j] == STRONG_BEAM and u[layer, peak, i, j] <= 1
                # far tail (a patch straddling a wall has a wide two-peaked curve: its u grows slowly)
                tail = c < 0.005 * c.max()
                assert tail.sum() >= 4 and (cls[layer, tail, i, j] == WEAK_BEAM).all()
                lo = hi = peak  # the frames around the peak above half of it (a wall can add a 2nd peak)
                while lo > 0 and c[lo - 1] > 0.55 * c.max():
                    lo -= 1
                while hi < len(c) - 1 and c[hi + 1] > 0.55 * c.max():
                    hi += 1
                assert (cls[layer, lo:hi + 1, i, j] == STRONG_BEAM).all()
                checked += 1
        assert checked >= 6


def test_short_rocking_range_stops_before_a_tail():
    p = SimulationParams(rows=96, cols=96, frames=21, seed=2, rocking_half_range_mrad=0.2, rocking_offset_mrad=0.15)
    sim = simulate(p)
    off = sim.offsets_mrad()[0]
    assert off[0] == pytest.approx(-0.05) and off[-1] == pytest.approx(0.35)
    cls = sim.truth.classes(P)
    assert (cls[0, 0] != WEAK_BEAM).all()  # the scan starts inside the curve: no WB at the low end
    assert (cls[0, -1] == WEAK_BEAM).all() and (cls == STRONG_BEAM).any()


def test_fixed_angle_layer_scan():
    """One frame per layer: the angle is centre + offset (many layers at one rocking angle)."""
    p = SimulationParams(rows=64, cols=64, layers=3, frames=1, seed=1, rocking_offset_mrad=0.2)
    sim = simulate(p)
    np.testing.assert_allclose(sim.offsets_mrad(), 0.2)
    assert sim.frames.shape == (3, 1, 64, 64) and sim.truth.classes(P).shape == (3, 1, 2, 2)


def test_cell_walls_gather_lines_in_the_wall_planes():
    p = SimulationParams(rows=96, cols=96, frames=9, seed=4, walls=6, wall_line_fraction=1.0, density_um2=0.08)
    s = simulate(p).structure
    base = simulate(SimulationParams(**{**json.loads(p.to_json()), "wall_line_fraction": 0.0})).structure
    W, L = s.walls, s.lines
    assert len(L) == len(base.lines) > 5
    np.testing.assert_array_equal(W.point, base.walls.point)  # the rest of the structure is unchanged
    for q, t in zip(L.point, L.direction):
        d = np.abs(np.einsum("kj,kj->k", q - W.point, W.normal))
        k = int(d.argmin())
        assert d[k] <= p.wall_tangle_um + 1e-9 and abs(t @ W.normal[k]) < 1e-9  # in the plane
        assert abs(t[0]) >= np.sin(np.radians(p.min_inclination_deg)) - 1e-9


def test_make_dataset_and_script(tmp_path):
    paths = make_dataset(tmp_path / "ours", "ours", 2, seed=3)
    assert [x.name for x in paths] == ["ours_0000.h5", "ours_0001.h5"]
    index = json.loads((tmp_path / "ours" / "index.json").read_text())
    assert [e["file"] for e in index] == ["ours_0000.h5", "ours_0001.h5"]
    for path, entry in zip(paths, index):
        scan = open_scan(path)
        truth = load_truth(path)
        assert scan.frames.shape[1:] == (entry["params"]["frames"], entry["params"]["rows"], entry["params"]["cols"])
        counts = np.bincount(truth.classes(64).ravel(), minlength=3)
        assert counts.tolist() == [entry["class_counts_P64"][k] for k in ("ambiguous", "weak_beam", "strong_beam")]
    mtime = paths[0].stat().st_mtime_ns
    make_dataset(tmp_path / "ours", "ours", 2, seed=3)  # existing scans are kept
    assert paths[0].stat().st_mtime_ns == mtime
    # a user's file is never replaced: not without overwrite, and not if it is not a labelled scan
    user = tmp_path / "mine.h5"
    with h5py.File(user, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(WeakbeamError, match="exists"):
        write_labelled_scan(user, SimulationParams(rows=32, cols=32, frames=5))
    with pytest.raises(WeakbeamError, match="refusing to replace"):
        write_labelled_scan(user, SimulationParams(rows=32, cols=32, frames=5), overwrite=True)
    with h5py.File(user, "r") as f:
        assert f["data"][()].tolist() == [0, 1, 2]
    with pytest.raises(WeakbeamError, match="generator 'gan'"):
        make_dataset(tmp_path / "x", "gan", 1)
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_datasets.py"), "--generator", "ours", "--n", "1",
         "--out", str(tmp_path / "cli"), "--seed", "9"],
        capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cli" / "ours" / "ours_0000.h5").is_file()


def test_benchmark_set_definitions():
    sets = benchmark_set("ours")
    assert tuple(sets) == BENCHMARK_CASES == (
        "isolated_lines", "dense_network", "cell_walls", "falloff_85", "dark_2500", "low_exposure_100",
        "short_range", "grain_40",
    )
    assert sets["falloff_85"].illumination_falloff == 0.85 and sets["dark_2500"].dark_adu == 2500
    assert sets["low_exposure_100"].exposure == 100 and sets["grain_40"].grain_coverage == 0.4
    short = sets["short_range"]
    assert short.rocking_offset_mrad - short.half_range_mrad > -2 * short.fwhm_mrad  # stops before the low tail
    assert sets["dense_network"].density_um2 > 10 * sets["isolated_lines"].density_um2
    assert sets["cell_walls"].walls >= 8 and sets["cell_walls"].wall_line_fraction > 0.5
    with pytest.raises(WeakbeamError, match="generator 'x'"):
        benchmark_set("x")


def test_held_out_benchmark_scans_change_only_the_seeds():
    from dataclasses import asdict

    for gen in ("ours", "dfxmgeo"):
        fixed, held = benchmark_set(gen), benchmark_set(gen, seed_offset=1000)
        for name in BENCHMARK_CASES:
            a, b = asdict(fixed[name]), asdict(held[name])
            assert b.pop("seed") == a.pop("seed") + 1000 and a == b
    seeds = [p.seed for p in benchmark_set("ours", 1000).values()] + [p.seed for p in benchmark_set("dfxmgeo", 1000).values()]
    assert len(set(seeds)) == len(seeds)
