"""Simulated files: Bliss layout round trip through open_scan, /ground_truth, `weakbeam simulate`."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from napari_weakbeam.cli import main
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation


@pytest.fixture(scope="module")
def small_sim():
    return simulate(SimulationParams(rows=64, cols=80, layers=3, frames=11, seed=7))


@pytest.mark.parametrize(
    "options",
    [{}, {"external": True, "compression": "bitshuffle", "zigzag": True}, {"compression": "gzip"}],
)
def test_write_then_open_scan_round_trip(tmp_path, small_sim, options):
    path = tmp_path / "sim.h5"
    names = write_simulation(path, small_sim, **options)
    assert names == ["1.1", "2.1", "3.1"]
    scan = open_scan(path)
    assert scan.shape == (3, 11, 64, 80)
    np.testing.assert_array_equal(np.asarray(scan.frames), small_sim.frames)  # sorted by angle
    np.testing.assert_allclose(scan.angles, small_sim.angles)
    np.testing.assert_allclose(scan.layer_positions, [0, 2, 4])
    assert scan.pixel_size == pytest.approx(small_sim.params.pixel_size_um)
    assert scan.metadata["two_theta"] == pytest.approx(small_sim.params.two_theta_deg)
    assert scan.rocking_motor == "diffry" and scan.detector == "pco_ff"
    if options.get("external"):
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "sim.h5")  # camera files beside it


def test_ground_truth_in_file(tmp_path, small_sim):
    path = tmp_path / "sim.h5"
    write_simulation(path, small_sim, zigzag=True)
    truth = load_truth(path)
    mem = small_sim.truth
    np.testing.assert_allclose(truth.angles, open_scan(path).angles)
    np.testing.assert_array_equal(truth.core_mask, mem.core_mask)
    np.testing.assert_allclose(truth.points_um, mem.points_um, atol=1e-4)
    assert truth.params == small_sim.params
    with h5py.File(path, "r") as f:
        g = f["ground_truth"]
        assert g["u_P32"].shape == (3, 11, 2, 3) and g["class_P64"].shape == (3, 11, 1, 2)
        stored_u32 = g["u_P32"][()]
        assert "params" in g.attrs and g.attrs["two_theta_deg"] == pytest.approx(20.73)
    np.testing.assert_allclose(truth.u(32), mem.u(32), rtol=1e-5)  # precomputed, as written
    # any other patch size is computed from the stored (lossless to 1e-4 mrad) maps
    fresh = load_truth(path)
    fresh._cache.clear()
    np.testing.assert_allclose(fresh.u(32), stored_u32, rtol=0.01, atol=0.01)
    assert fresh.classes(16).shape == (3, 11, 4, 5)
    assert (fresh.classes(16) == mem.classes(16)).mean() > 0.99


def test_load_truth_errors(tmp_path):
    plain = tmp_path / "plain.h5"
    write_bliss(plain, [np.zeros((3, 8, 8), np.uint16)], [np.arange(3.0)], [0.0])
    with pytest.raises(WeakbeamError, match="no /ground_truth"):
        load_truth(plain)
    with pytest.raises(WeakbeamError, match="no such file"):
        load_truth(tmp_path / "missing.h5")
    sim = simulate(SimulationParams(rows=32, cols=32, frames=5))
    full = tmp_path / "full.h5"
    write_simulation(full, sim)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    with pytest.raises(WeakbeamError) as err:
        load_truth(truncated)
    assert "truncated.h5" in str(err.value) and "\n" not in str(err.value)


def test_cli_simulate_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    args = ["simulate", str(out), "--layers", "2", "--frames", "9", "--size", "48", "64", "--seed", "3"]
    assert main(args) == 0
    scan = open_scan(out)
    assert scan.shape == (2, 9, 48, 64)
    truth = load_truth(out)
    assert truth.params.seed == 3 and truth.classes(32).shape == (2, 9, 2, 2)
    first = np.asarray(scan.frames)
    # no overwrite without --overwrite: one line, exit 2, file untouched
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "cli.h5" in err and "--overwrite" in err and "\n" not in err
    assert main(args + ["--overwrite", "--external"]) == 0
    np.testing.assert_array_equal(np.asarray(open_scan(out).frames), first)  # same seed, same data


@pytest.mark.parametrize(
    "extra, word",
    [(["--size", "4", "4"], "4x4"), (["--frames", "0"], "frames"), (["--exposure", "-1"], "exposure")],
)
def test_cli_simulate_bad_arguments(tmp_path, capsys, extra, word):
    out = tmp_path / "bad.h5"
    assert main(["simulate", str(out)] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and word in err and "\n" not in err
    assert not out.exists()


def test_cli_simulate_to_a_folder_fails_before_simulating(tmp_path, capsys):
    """OUT is a folder: one line at once (no progress bar, nothing simulated), with or without --overwrite."""
    for extra in ([], ["--overwrite"]):
        assert main(["simulate", str(tmp_path), "--size", "32", "32", "--frames", "5"] + extra) == 2
        cap = capsys.readouterr()
        assert cap.err.strip() == f"error: {tmp_path}: is a folder, expected an output .h5 file"
        assert "simulate:" not in cap.err  # the progress bar never started


def test_cli_entry_point_subprocess(tmp_path):
    """The installed `weakbeam` script (a real process): success, then a one-line error."""
    out = tmp_path / "proc.h5"
    cmd = [sys.executable, "-m", "napari_weakbeam.cli", "simulate", str(out), "--size", "32", "32", "--frames", "5"]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("error:") and "Traceback" not in again.stderr


def test_streaming_writer_matches_in_memory(tmp_path, small_sim):
    """simulate_to_file (one layer in memory at a time) writes what simulate + write_simulation do."""
    from napari_weakbeam.core.simulate import simulate_to_file

    done = []
    simulate_to_file(tmp_path / "stream.h5", small_sim.params, progress=lambda d, t: done.append((d, t)))
    assert done == [(i, 33) for i in range(1, 34)]
    np.testing.assert_array_equal(np.asarray(open_scan(tmp_path / "stream.h5").frames), small_sim.frames)
    streamed = load_truth(tmp_path / "stream.h5")
    np.testing.assert_array_equal(streamed.classes(32), small_sim.truth.classes(32))
    np.testing.assert_allclose(streamed.points_um, small_sim.truth.points_um, atol=1e-4)


def test_bundled_sample_data_is_what_the_simulator_makes():
    """sample_data/one_layer.h5 matches a fresh simulation from its own stored parameters
    (if this fails after a physics change, remake it: python scripts/make_sample_data.py)."""
    from napari_weakbeam._napari.sample_data import sample_path

    path = sample_path("one_layer.h5")
    truth = load_truth(path)
    assert (truth.params.layers, truth.params.frames, truth.params.rows) == (1, 31, 256)
    fresh = simulate(truth.params)
    np.testing.assert_array_equal(np.asarray(open_scan(path).frames), fresh.frames)
    np.testing.assert_array_equal(load_truth(path).classes(64), fresh.truth.classes(64))
    with h5py.File(sample_path("multi_layer.h5"), "r") as f:
        assert len([k for k in f if k.endswith(".1")]) == 6 and "ground_truth" in f


def test_cli_simulate_set_any_parameter(tmp_path, capsys):
    out = tmp_path / "set.h5"
    args = ["simulate", str(out), "--size", "32", "40", "--frames", "7",
            "--set", "fringe_contrast=0", "--set", "two_theta_deg=17.5", "--set", "noise=false"]
    assert main(args) == 0
    truth = load_truth(out)
    assert truth.params.fringe_contrast == 0.0 and truth.params.two_theta_deg == 17.5
    assert truth.params.noise is False
    assert open_scan(out).metadata["two_theta"] == pytest.approx(17.5)
    capsys.readouterr()
    assert main(["simulate", str(tmp_path / "x.h5"), "--set", "colour=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --set 'colour=3'") and "\n" not in err
    assert main(["simulate", str(tmp_path / "y.h5"), "--set", "psf_px=wide"]) == 2
    assert "not a number" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "y.h5"), "--set", "noise=maybe"]) == 2
    assert "'maybe' is not true or false" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, words",
    [
        ("simulate", ["OUT.h5", "/ground_truth", "mrad", "um", "--seed", "docs/simulator.md"]),
        ("reconstruct", ["VOL.h5", "micrometres", "weak-beam", "--predictions", "examples:", "docs/reconstruction.md"]),
        ("compare", ["micrometres", "median", "90th percentile", "--tolerance", "examples:"]),
    ],
)
def test_help_speaks_to_a_scientist(command, words, capsys):
    """`weakbeam COMMAND --help`: exits 0 and says what it makes, in physical units, with examples
    or a pointer to the docs."""
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    missing = [w for w in words if w not in text]
    assert not missing, missing
