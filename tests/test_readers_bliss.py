"""Bliss master files: write_bliss -> open_scan round trips, beamline quirks, bad input."""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest

from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.scanfiles.readers import open_scan

RNG = np.random.default_rng(7)


def make_layers(n_layers: int = 3, n_frames: int = 6, shape=(12, 20)):
    layers = [RNG.integers(90, 4000, (n_frames,) + shape).astype(np.uint16) for _ in range(n_layers)]
    angles = [np.linspace(-0.06, 0.06, n_frames) + 0.001 * i for i in range(n_layers)]
    return layers, angles


def open_quiet(source, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_scan(source, **kw)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"external": True, "compression": "bitshuffle"},
        {"compression": "gzip", "zigzag": True},
        {"external": True, "zigzag": True},
    ],
    ids=["plain", "external-bitshuffle", "gzip-zigzag", "external-zigzag"],
)
def test_round_trip(tmp_path, options):
    layers, angles = make_layers()
    path = tmp_path / "master.h5"
    names = write_bliss(path, layers, angles, [10.0, 12.0, 14.0], pixel_size=0.044, two_theta=20.5, **options)
    assert names == ["1.1", "2.1", "3.1"]
    scan = open_scan(path)
    assert scan.shape == (3, 6, 12, 20)
    assert scan.scan_names == names
    assert scan.rocking_motor == "diffry" and scan.layer_motor == "difftz" and scan.detector == "pco_ff"
    np.testing.assert_allclose(scan.layer_positions, [10.0, 12.0, 14.0])
    assert scan.pixel_size == pytest.approx(0.044)
    assert scan.metadata["two_theta"] == pytest.approx(20.5)
    for i in range(3):
        np.testing.assert_allclose(scan.angles[i], angles[i])
        np.testing.assert_array_equal(scan.layer(i), layers[i])
    np.testing.assert_array_equal(scan.frame(1, 4), layers[1][4])
    assert scan.frames.dtype == np.uint16


def test_external_files_and_compression_are_real(tmp_path):
    layers, angles = make_layers(2, 4)
    path = tmp_path / "m.h5"
    write_bliss(path, layers, angles, [0, 2], external=True, compression="bitshuffle")
    ext = tmp_path / "m_scan0002_pco_ff.h5"
    assert ext.exists()
    with h5py.File(path) as f:
        link = f["2.1/instrument/pco_ff"].get("data", getlink=True)
        assert isinstance(link, h5py.ExternalLink) and link.filename == ext.name
    with h5py.File(ext) as f:
        assert "32008" in f["entry_0000/measurement/data"]._filters  # bitshuffle filter id


def test_zigzag_is_written_descending_and_read_sorted(tmp_path):
    layers, angles = make_layers(2, 5)
    path = tmp_path / "z.h5"
    write_bliss(path, layers, angles, [0, 2], zigzag=True)
    with h5py.File(path) as f:
        stored = f["2.1/instrument/positioners/diffry"][()]
        assert np.all(np.diff(stored) < 0)
        np.testing.assert_array_equal(f["2.1/measurement/pco_ff"][0], layers[1][-1])
    scan = open_scan(path)
    assert np.all(np.diff(scan.angles, axis=1) > 0)
    np.testing.assert_array_equal(scan.layer(1), layers[1])


def test_aborted_scan_is_padded_with_a_warning(tmp_path):
    layers, angles = make_layers(3, 6)
    layers[1], angles[1] = layers[1][:4], angles[1][:4]
    path = tmp_path / "aborted.h5"
    write_bliss(path, layers, angles, [0, 2, 4], planned_frames=6)
    with pytest.warns(UserWarning, match=r"scan 2\.1 was aborted: 4 of 6 frames"):
        scan = open_scan(path)
    assert scan.shape == (3, 6, 12, 20)
    assert np.isnan(scan.angles[1, 4:]).all() and np.isfinite(scan.angles[1, :4]).all()
    np.testing.assert_array_equal(scan.valid_frames(1), [True] * 4 + [False] * 2)
    np.testing.assert_array_equal(scan.layer(1)[:4], layers[1])
    assert scan.layer(1)[4:].max() == 0


def test_several_detectors_largest_or_named(tmp_path):
    layers, angles = make_layers(2, 4, shape=(16, 24))
    path = tmp_path / "dets.h5"
    write_bliss(path, layers, angles, [0, 2], extra_detectors=[("basler_ff", (8, 10))])
    with pytest.warns(UserWarning, match="several detectors.*using pco_ff"):
        scan = open_scan(path)
    assert scan.detector == "pco_ff" and scan.frame_shape == (16, 24)
    ff = open_scan(path, detector="basler_ff")
    assert ff.detector == "basler_ff" and ff.frame_shape == (8, 10)
    with pytest.raises(WeakbeamError, match=r"dets\.h5.*no 3D detector 'eiger'.*basler_ff, pco_ff"):
        open_scan(path, detector="eiger")


def test_named_scans_and_monitor_subscans_ignored(tmp_path):
    layers, angles = make_layers(4, 4)
    path = tmp_path / "named.h5"
    write_bliss(path, layers, angles, [0, 2, 4, 6])
    with h5py.File(path) as f:
        assert "1.2" in f and "measurement/mon" in f["1.2"]
    scan = open_scan(path, scans=["1.1", "3"])
    assert scan.scan_names == ["1.1", "3.1"]
    np.testing.assert_allclose(scan.layer_positions, [0, 4])
    np.testing.assert_array_equal(scan.layer(1), layers[2])
    assert open_scan(path).n_layers == 4  # N.2 monitor groups are not layers
    with pytest.raises(WeakbeamError, match=r"named\.h5: no scan 9\.1 \(scans there: 1\.1, 2\.1, 3\.1, 4\.1\)"):
        open_scan(path, scans=["9.1"])


def test_motors_found_without_fscan_parameters(tmp_path):
    """Rocking motor from the title, else from the positioner that varies; mm converted to um."""
    layers, angles = make_layers(2, 5)
    path = tmp_path / "old.h5"
    write_bliss(path, layers, angles, [1.0, 3.0], rocking_motor="mu", layer_motor="samz")
    with h5py.File(path, "a") as f:
        for name in ("1.1", "2.1"):
            del f[f"{name}/instrument/fscan_parameters"]
            f[f"{name}/instrument/positioners/samz"][...] /= 1000.0
            f[f"{name}/instrument/positioners/samz"].attrs["units"] = "mm"
    scan = open_scan(path)
    assert scan.rocking_motor == "mu" and scan.layer_motor == "samz"
    np.testing.assert_allclose(scan.layer_positions, [1.0, 3.0])
    np.testing.assert_allclose(scan.angles[1], angles[1])
    with h5py.File(path, "a") as f:
        for name in ("1.1", "2.1"):
            del f[f"{name}/title"]
            f[f"{name}/title"] = "timescan 0.5"
    scan = open_scan(path)
    assert scan.rocking_motor == "mu"  # the positioner array that varies frame by frame
    np.testing.assert_allclose(scan.angles[0], angles[0])


def test_fscan2d_title_uses_fast_motor(tmp_path):
    layers, angles = make_layers(1, 6)
    path = tmp_path / "f2d.h5"
    write_bliss(path, layers, angles, [0.0], rocking_motor="diffry")
    with h5py.File(path, "a") as f:
        del f["1.1/instrument/fscan_parameters"], f["1.1/title"]
        f["1.1/title"] = "fscan2d chi -0.5 0.08 1 diffry -0.06 0.024 6 0.5"
    scan = open_scan(path)
    assert scan.rocking_motor == "diffry"
    np.testing.assert_allclose(scan.angles[0], angles[0])


def _external_raw_master(tmp_path, n_frames=400, shape=(64, 64)):
    """A Bliss master whose frames live in a raw HDF5 external-storage file (dataset metadata only
    in the master), so deleting the raw file proves whether frame data is read."""
    path = tmp_path / "big.h5"
    angles = [np.linspace(-0.1, 0.1, n_frames)]
    write_bliss(path, [np.zeros((n_frames,) + shape, np.uint16)], angles, [0.0])
    raw = tmp_path / "frames.raw"
    data = RNG.integers(0, 60000, (n_frames,) + shape).astype(np.uint16)
    data.tofile(raw)
    with h5py.File(path, "a") as f:
        g = f["1.1/instrument/pco_ff"]
        del g["data"]
        g.create_dataset("data", shape=data.shape, dtype=np.uint16, external=[(str(raw), 0, data.nbytes)])
    return path, raw, data


def test_opening_reads_no_frame_data(tmp_path):
    path, raw, data = _external_raw_master(tmp_path)
    scan = open_scan(path)
    np.testing.assert_array_equal(scan.frame(0, 123), data[123])
    os.remove(raw)
    scan = open_scan(path)  # only metadata: works without the frame data
    assert scan.shape == (1, 400, 64, 64)
    with pytest.raises(WeakbeamError, match=r"big\.h5::/1\.1/instrument/pco_ff/data: cannot read frames"):
        scan.frame(0, 5)


# --- bad input: one line, naming the file ---------------------------------------------------


def assert_one_line(exc: pytest.ExceptionInfo, name: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and name in msg, msg


def test_missing_file(tmp_path):
    with pytest.raises(WeakbeamError, match="file not found") as exc:
        open_scan(tmp_path / "nope.h5")
    assert_one_line(exc, "nope.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5\n" * 100)
    with pytest.raises(WeakbeamError, match="not an HDF5 file") as exc:
        open_scan(path)
    assert_one_line(exc, "notes.h5")


def test_truncated_hdf5(tmp_path):
    layers, angles = make_layers(2, 4)
    path = tmp_path / "cut.h5"
    write_bliss(path, layers, angles, [0, 2])
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(WeakbeamError, match="truncated HDF5 file") as exc:
        open_scan(path)
    assert_one_line(exc, "cut.h5")


def test_broken_external_link_names_the_missing_file(tmp_path):
    layers, angles = make_layers(2, 4)
    path = tmp_path / "ext.h5"
    write_bliss(path, layers, angles, [0, 2], external=True)
    os.remove(tmp_path / "ext_scan0002_pco_ff.h5")
    with pytest.raises(WeakbeamError, match=r"broken external link .*ext_scan0002_pco_ff\.h5 \(missing file\)") as exc:
        open_scan(path)
    assert_one_line(exc, "ext.h5")


def test_broken_external_link_not_hidden_by_the_working_directory(tmp_path, monkeypatch):
    """HDF5 also resolves a relative external link from the working directory; a file of the same
    name there must not make the scan open and then fail on the first frame read."""
    layers, angles = make_layers(2, 4)
    path = tmp_path / "ext.h5"
    write_bliss(path, layers, angles, [0, 2], external=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.replace(tmp_path / "ext_scan0002_pco_ff.h5", elsewhere / "ext_scan0002_pco_ff.h5")
    monkeypatch.chdir(elsewhere)
    with pytest.raises(WeakbeamError, match=r"broken external link .*ext_scan0002_pco_ff\.h5 \(missing file\)") as exc:
        open_scan(path)
    assert_one_line(exc, "ext.h5")


def test_no_3d_detector(tmp_path):
    path = tmp_path / "counters.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("1.1")
        g.attrs["NX_class"] = "NXentry"
        g["title"] = "ascan diffry 0 1 10 0.1"
        g["measurement/diode"] = np.arange(11.0)
    with pytest.raises(WeakbeamError, match="no 3D detector dataset") as exc:
        open_scan(path)
    assert_one_line(exc, "counters.h5")


def test_angles_frames_mismatch(tmp_path):
    layers, angles = make_layers(1, 6)
    path = tmp_path / "mismatch.h5"
    write_bliss(path, layers, angles, [0.0])
    with h5py.File(path, "a") as f:
        del f["1.1/instrument/positioners/diffry"]
        f["1.1/instrument/positioners/diffry"] = np.linspace(0, 1, 9)
        f["1.1/instrument/fscan_parameters/npoints"][...] = 6
    with pytest.raises(WeakbeamError, match="9 diffry angles for 6 frames") as exc:
        open_scan(path)
    assert_one_line(exc, "mismatch.h5")


def test_nan_frames_raise_where_read(tmp_path):
    layers = [RNG.normal(1000, 10, (4, 8, 8)).astype(np.float32)]
    layers[0][2, 3, 3] = np.nan
    path = tmp_path / "nan.h5"
    write_bliss(path, layers, [np.arange(4.0)], [0.0])
    scan = open_scan(path)
    np.testing.assert_array_equal(scan.frame(0, 1), layers[0][1])
    with pytest.raises(WeakbeamError, match="1 NaN or infinite") as exc:
        scan.frame(0, 2)
    assert_one_line(exc, "nan.h5")
    with pytest.raises(WeakbeamError, match="layer 0"):
        scan.layer(0)


def test_empty_scan(tmp_path):
    path = tmp_path / "empty.h5"
    write_bliss(path, [np.zeros((0, 8, 8), np.uint16)], [np.zeros(0)], [0.0], planned_frames=10)
    with pytest.raises(WeakbeamError, match="the scan is empty") as exc:
        open_quiet(path)
    assert_one_line(exc, "empty.h5")


def test_string_data(tmp_path):
    path = tmp_path / "strings.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("1.1")
        det = g.create_group("instrument/pco_ff")
        det.attrs["NX_class"] = "NXdetector"
        det.create_dataset("data", data=np.array([[["a", "b"]] * 2] * 3, dtype="S1"))
    with pytest.raises(WeakbeamError, match=r"data of type \|S1") as exc:
        open_scan(path)
    assert_one_line(exc, "strings.h5")


def test_writer_streams_a_generator_of_layers(tmp_path):
    def gen():
        for i in range(3):
            yield np.full((5, 6, 7), i + 1, np.uint16)

    names = write_bliss(tmp_path / "gen.h5", gen(), [np.arange(5.0)] * 3, [0, 2, 4])
    scan = open_scan(tmp_path / "gen.h5")
    assert len(names) == 3 and [int(scan.layer(i).max()) for i in range(3)] == [1, 2, 3]


def test_angles_from_encoder_then_fscan_parameters(tmp_path):
    layers, angles = make_layers(1, 5)
    path = tmp_path / "enc.h5"
    write_bliss(path, layers, angles, [0.0])
    with h5py.File(path, "a") as f:
        del f["1.1/instrument/positioners/diffry"]
        f["1.1/instrument/diffry/value"][...] += 0.0005  # encoder readings differ from the plan
    np.testing.assert_allclose(open_scan(path).angles[0], angles[0] + 0.0005)
    with h5py.File(path, "a") as f:
        del f["1.1/instrument/diffry"], f["1.1/measurement/diffry"]
    scan = open_scan(path)
    np.testing.assert_allclose(scan.angles[0], angles[0], atol=1e-9)
    assert scan.rocking_motor == "diffry"


def test_detector_as_image_or_only_in_measurement(tmp_path):
    layers, angles = make_layers(2, 4)
    path = tmp_path / "image.h5"
    write_bliss(path, layers, angles, [0, 2], detector="pco_ff")
    with h5py.File(path, "a") as f:
        g = f["1.1/instrument/pco_ff"]
        g.move("data", "image")
        del f["1.1/measurement/pco_ff"]
        f["1.1/measurement/pco_ff"] = h5py.SoftLink("/1.1/instrument/pco_ff/image")
        # scan 2.1: frames only under measurement/, no NXdetector group
        f.move("2.1/instrument/pco_ff/data", "2.1/measurement/frames_tmp")
        del f["2.1/instrument/pco_ff"], f["2.1/measurement/pco_ff"]
        f.move("2.1/measurement/frames_tmp", "2.1/measurement/pco_ff")
    scan = open_scan(path)
    assert scan.detector == "pco_ff"
    for i in range(2):
        np.testing.assert_array_equal(scan.layer(i), layers[i])


def test_positioners_start_group(tmp_path):
    """Some Bliss versions write the motor snapshot as ``instrument/positioners_start``."""
    layers, angles = make_layers(2, 4)
    path = tmp_path / "pstart.h5"
    write_bliss(path, layers, angles, [3.0, 5.0])
    with h5py.File(path, "a") as f:
        for name in ("1.1", "2.1"):
            f.move(f"{name}/instrument/positioners", f"{name}/instrument/positioners_start")
            del f[f"{name}/instrument/diffry"], f[f"{name}/measurement/diffry"]
    scan = open_scan(path)
    assert scan.layer_motor == "difftz"
    np.testing.assert_allclose(scan.layer_positions, [3.0, 5.0])
    np.testing.assert_allclose(scan.angles[1], angles[1])


def test_direct_reads_match_the_dask_array(tmp_path):
    """layer()/frame() read the files directly; they must agree with ``frames`` (zigzag, aborted)."""
    import dataclasses

    layers, angles = make_layers(3, 6)
    layers[2], angles[2] = layers[2][:3], angles[2][:3]
    path = tmp_path / "direct.h5"
    write_bliss(path, layers, angles, [0, 2, 4], zigzag=True, external=True, planned_frames=6)
    scan = open_quiet(path)
    for i in range(3):
        np.testing.assert_array_equal(scan.layer(i), scan.frames[i].compute())
    np.testing.assert_array_equal(scan.frame(1, -1), layers[1][-1])
    np.testing.assert_array_equal(scan.frame(2, 4), np.zeros((12, 20), np.uint16))
    # a Scan whose frames were replaced reads its own frames, not the file
    brighter = dataclasses.replace(scan, frames=scan.frames + 1)
    np.testing.assert_array_equal(brighter.layer(0), layers[0] + 1)
    np.testing.assert_array_equal(brighter.frame(1, 2), layers[1][2] + 1)


def test_layers_are_contiguous_arrays(tmp_path):
    layers, angles = make_layers(2, 4)
    write_bliss(tmp_path / "c.h5", layers, angles, [0, 2], zigzag=True)
    scan = open_scan(tmp_path / "c.h5")
    assert all(scan.layer(i).flags.c_contiguous for i in range(2))
    assert scan.frame(1, 0).flags.c_contiguous


def test_file_held_open_for_writing_by_another_process(tmp_path):
    """At the beamline Bliss keeps the master open while acquiring: reading must still work."""
    import subprocess
    import sys

    layers, angles = make_layers(2, 4)
    path = tmp_path / "live.h5"
    write_bliss(path, layers, angles, [0, 2])
    code = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print('open', flush=True); time.sleep(60)"
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        scan = open_scan(path)
        np.testing.assert_array_equal(scan.layer(1), layers[1])
    finally:
        writer.kill()
        writer.wait()
