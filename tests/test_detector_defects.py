"""The camera's hot pixels and cosmic-ray zingers are repaired before the map (``detector_defects``,
issue 10: a reconstruction that holds on real data); a dislocation's image is not taken for one."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_weakbeam.cli import main
from napari_weakbeam.core.reconstruction.detector_defects import MIN_FRAMES, find_defects, repair
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation
from napari_weakbeam.core.simulate.camera_defects import add_camera_defects
from napari_weakbeam.core.simulate.scoring import score_points
from napari_weakbeam.workflows import reconstruct_scan, run


class _Labels:
    def __init__(self, label: np.ndarray, patch: int):
        self.label, self.patch_size = label, patch


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """A clean simulated layer (isolated lines, 300 ADU) and the same with detector defects."""
    d = tmp_path_factory.mktemp("defects")
    clean = d / "clean.h5"
    sim = simulate(SimulationParams(rows=128, cols=128, layers=1, frames=21, seed=4, walls=0, exposure=300.0))
    write_simulation(clean, sim)
    frames, hot, zing = add_camera_defects(np.asarray(sim.frames[0]))
    dirty = d / "dirty.h5"
    write_bliss(dirty, [frames], list(sim.angles), sim.layer_positions, pixel_size=sim.params.pixel_size_um,
                two_theta=sim.params.two_theta_deg)
    return clean, dirty, hot, zing


def _points(path, truth, **kw):
    rec = run(reconstruct_scan(open_scan(str(path)), _Labels(truth.classes(16), 16), ReconstructionParams(trace=False, **kw)))
    return score_points(rec.points_um, truth), rec


def test_defects_are_found_and_the_clean_scan_is_left_alone(scans):
    clean, dirty, hot, zing = scans
    h, z = find_defects(np.asarray(open_scan(str(dirty)).layer(0)))
    assert h[hot[:, 0], hot[:, 1]].all() and h[hot[::2, 0], hot[::2, 1] + 1].all()
    inner = (zing[:, 0] > 0) & (zing[:, 0] < z.shape[0] - 1)
    assert z[zing[:, 0], zing[:, 1], zing[:, 2]].mean() >= 0.9 and z[zing[inner, 0], zing[inner, 1], zing[inner, 2]].all()
    h0, z0 = find_defects(np.asarray(open_scan(str(clean)).layer(0)))
    assert h0.sum() == 0 and z0.sum() <= 2  # the simulated camera has no defects


def test_points_hold_with_defects_and_collapse_without_the_repair(scans):
    """With the repair the defects cost the points almost nothing; without it they wreck them
    (hot pixels outshine the lines, zingers add points)."""
    clean, dirty, _, _ = scans
    truth = load_truth(clean)
    base, _ = _points(clean, truth)
    fixed, rec = _points(dirty, truth)
    broken, _ = _points(dirty, truth, detector_defects=False)
    assert base.recall >= 0.95 and base.precision >= 0.9
    assert fixed.recall >= base.recall - 0.02 and fixed.precision >= base.precision - 0.02
    assert broken.recall < base.recall - 0.1 or broken.precision < base.precision - 0.1
    assert rec.defects is not None and rec.defects[0, 0] > 0 and rec.defects[0, 1] > 0


def test_a_line_through_a_hot_pixel_stays_whole():
    """A hot pixel on a line's path loses its offset, not the line's signal there; a dot bright
    over several frames is no zinger."""
    n, rows, cols = 15, 40, 40
    rng = np.random.default_rng(0)
    f = rng.normal(100, 3, (n, rows, cols))
    f[5:10, 20, 5:35] += 1000.0  # a line, bright in frames 5-9
    f[:, 20, 20] += 800.0  # a hot pixel on it
    f[6:9, 10, 10] += 2000.0  # a dot over three frames
    frames = np.clip(f, 0, None).astype(np.uint16)
    h, z = find_defects(frames)
    assert h.sum() == 1 and h[20, 20] and not z.any()
    out = repair(frames, h, z)
    assert abs(float(out[7, 20, 20]) - float(np.median(out[7, 20, 15:25]))) < 30  # the line goes on
    assert abs(float(out[0, 20, 20]) - 100.0) < 15  # the offset is gone
    assert np.array_equal(out[:, 10, 10], frames[:, 10, 10])
    assert not find_defects(frames[:MIN_FRAMES - 1])[0].any()


def test_file_and_command_line_report_the_repair(scans, tmp_path, capsys):
    _, dirty, _, _ = scans
    out = tmp_path / "vol.h5"
    assert main(["reconstruct", str(dirty), "--out", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "camera defects repaired: up to" in text and "zinger values" in text
    with h5py.File(out) as f:
        d = f["reconstruction/detector_defects"][()]
        n = len(f["reconstruction/points"])
    assert d.shape == (1, 2) and d[0, 0] > 0 and d[0, 1] > 0
    kept = tmp_path / "kept.h5"
    assert main(["reconstruct", str(dirty), "--out", str(kept), "-q", "--keep-detector-defects"]) == 0
    assert "camera defects repaired" not in capsys.readouterr().out
    with h5py.File(kept) as f:
        assert not f["reconstruction/detector_defects"][()].any() and len(f["reconstruction/points"]) != n


def test_repaired_text_says_what_was_repaired():
    from napari_weakbeam.core.reconstruction.detector_defects import repaired_text

    assert repaired_text(None) == "" and repaired_text(np.zeros((3, 2))) == ""
    assert repaired_text(np.array([[2, 5], [4, 0]])) == "camera defects repaired: up to 4 hot pixels per layer, 5 zinger values"
