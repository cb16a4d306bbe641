"""EDF series, TIFF stacks and bare HDF5 datasets: round trips, laziness and bad input."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import tifffile

from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.scanfiles.readers import detect_format, open_scan
from napari_weakbeam.core.scanfiles.readers.edf import write_edf_series

RNG = np.random.default_rng(11)


def stack(n_layers=2, n_frames=5, shape=(10, 14), dtype=np.uint16):
    return RNG.integers(90, 4000, (n_layers, n_frames) + shape).astype(dtype)


def one_line(exc: pytest.ExceptionInfo, name: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and name in msg, msg
    return msg


# --- EDF ------------------------------------------------------------------------------------


def test_edf_series_layers_grouped_and_sorted(tmp_path):
    data = stack(3, 5)
    angles = np.linspace(-23.176, -23.146, 5)
    folder = tmp_path / "edf"
    # acquisition order: the middle layer rocked downwards (zigzag), files named in that order
    write_edf_series(
        folder, [data[0], data[1][::-1], data[2]], [angles, angles[::-1], angles], [100.0, 102.0, 104.0]
    )
    scan = open_scan(folder)
    assert scan.shape == (3, 5, 10, 14)
    assert scan.rocking_motor == "diffry" and scan.layer_motor == "difftz"
    assert scan.metadata["scan_command"].startswith("ascan diffry")
    np.testing.assert_allclose(scan.layer_positions, [100.0, 102.0, 104.0])
    np.testing.assert_allclose(scan.angles, np.tile(angles, (3, 1)), atol=1e-6)
    for i in range(3):
        np.testing.assert_array_equal(scan.layer(i), data[i])
    with pytest.raises(WeakbeamError, match="stores its own angles") as exc:
        open_scan(folder, angles=angles)
    one_line(exc, "edf")
    glob_scan = open_scan(str(folder / "frame_0000?.edf"))  # the first 10 files: two layers
    assert glob_scan.shape == (2, 5, 10, 14)
    assert detect_format(folder) == "edf"


def test_edf_reads_files_on_demand(tmp_path):
    data = stack(1, 6)
    files = write_edf_series(tmp_path, data, [np.arange(6.0)], [0.0])
    scan = open_scan(tmp_path)
    assert scan.frames.chunks[1] == (1,) * 6  # one chunk per file
    os.remove(files[4])
    np.testing.assert_array_equal(scan.frame(0, 2), data[0, 2])
    with pytest.raises(WeakbeamError, match="cannot read EDF frame") as exc:
        scan.frame(0, 4)
    one_line(exc, "frame_00004.edf")


def test_edf_bad_input(tmp_path):
    with pytest.raises(WeakbeamError, match="no EDF files") as exc:
        open_scan(tmp_path)
    one_line(exc, str(tmp_path))
    with pytest.raises(WeakbeamError, match="no files match") as exc:
        open_scan(str(tmp_path / "x_*.edf"))
    one_line(exc, "x_*.edf")
    bad = tmp_path / "broken.edf"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(WeakbeamError, match="not a readable EDF file") as exc:
        open_scan(bad)
    one_line(exc, "broken.edf")


def test_truncated_edf_frame_is_an_error_not_zeros(tmp_path, capfd):
    """fabio pads a short data block with zeros (and logs); the reader refuses the file instead."""
    data = stack(1, 4, (16, 20))
    write_edf_series(tmp_path / "edf", [data[0]], [np.linspace(1, 2, 4)], [0.0])
    files = sorted((tmp_path / "edf").iterdir())
    files[2].write_bytes(files[2].read_bytes()[:-100])
    with pytest.raises(WeakbeamError, match="truncated EDF file") as exc:
        open_scan(tmp_path / "edf")
    one_line(exc, files[2].name)
    # truncated after the scan was opened: the frame read fails, it is not read as zeros
    write_edf_series(tmp_path / "ok", [data[0]], [np.linspace(1, 2, 4)], [0.0])
    scan = open_scan(tmp_path / "ok")
    later = sorted((tmp_path / "ok").iterdir())[1]
    later.write_bytes(later.read_bytes()[:-100])
    with pytest.raises(WeakbeamError, match="truncated EDF file"):
        scan.layer(0)


def test_edf_nan_frames(tmp_path):
    data = RNG.normal(100, 5, (1, 3, 8, 8)).astype(np.float32)
    data[0, 1, 2, 2] = np.inf
    write_edf_series(tmp_path, data, [np.arange(3.0)], [0.0])
    scan = open_scan(tmp_path)
    with pytest.raises(WeakbeamError, match="NaN or infinite") as exc:
        scan.layer(0)
    one_line(exc, str(tmp_path))


# --- TIFF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [3, 4])
def test_tiff_round_trip(tmp_path, ndim):
    data = stack(2, 5)
    arr = data[0] if ndim == 3 else data
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, arr, compression="zlib", photometric="minisblack")
    scan = open_scan(path)
    assert scan.shape == (1 if ndim == 3 else 2, 5, 10, 14)
    assert scan.metadata["angles_are_frame_indices"]
    np.testing.assert_array_equal(scan.angles[0], np.arange(5))
    np.testing.assert_array_equal(scan.layer(scan.n_layers - 1), arr if ndim == 3 else arr[1])
    # angles given out of order: frames are sorted by angle
    angles = np.array([0.3, 0.1, 0.5, 0.2, 0.4])
    scan = open_scan(path, angles=angles, layer_positions=np.arange(scan.n_layers) * 2.0)
    order = np.argsort(angles)
    np.testing.assert_allclose(scan.angles[0], angles[order])
    np.testing.assert_array_equal(scan.layer(0), (arr if ndim == 3 else arr[0])[order])
    assert not scan.metadata["angles_are_frame_indices"]


def test_tiff_bad_input(tmp_path):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, stack(1, 1)[0, 0])
    with pytest.raises(WeakbeamError, match="a 2D image") as exc:
        open_scan(path)
    one_line(exc, "flat.tif")
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, stack(1, 5)[0], photometric="minisblack")
    with pytest.raises(WeakbeamError, match="3 angles for 5 frames") as exc:
        open_scan(path, angles=[1, 2, 3])
    one_line(exc, "s.tif")
    fake = tmp_path / "fake.tiff"
    fake.write_text("no tiff here")
    with pytest.raises(WeakbeamError, match="not a readable TIFF file") as exc:
        open_scan(fake)
    one_line(exc, "fake.tiff")


def test_truncated_tiff_one_line_without_library_noise(tmp_path, capfd):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, stack(1, 5, (64, 80))[0], photometric="minisblack")
    data = path.read_bytes()
    for cut in (3000, len(data) // 2):
        bad = tmp_path / f"cut{cut}.tif"
        bad.write_bytes(data[:cut])
        capfd.readouterr()
        with pytest.raises(WeakbeamError, match="truncated TIFF file") as exc:
            open_scan(bad)
        one_line(exc, bad.name)
        assert "invalid page offset" not in capfd.readouterr().err  # tifffile's log is not printed


# --- HDF5 dataset by path -------------------------------------------------------------------


def test_h5path_3d_and_4d(tmp_path):
    data = stack(3, 4)
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["entry/frames4d"] = data
        f["entry/frames3d"] = data[1]
        f["entry/meta"] = np.arange(3)
    scan = open_scan(f"{path}::/entry/frames4d", angles=[0.4, 0.3, 0.2, 0.1], layer_positions=[5, 7, 9])
    assert scan.shape == (3, 4, 10, 14) and scan.source.endswith("::/entry/frames4d")
    np.testing.assert_allclose(scan.angles[2], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(scan.layer(2), data[2][::-1])
    np.testing.assert_allclose(scan.layer_positions, [5, 7, 9])
    scan3 = open_scan(f"{path}::entry/frames3d")
    assert scan3.shape == (1, 4, 10, 14)
    np.testing.assert_array_equal(scan3.layer(0), data[1])
    with pytest.raises(WeakbeamError, match="several 3D datasets") as exc:
        open_scan(path)
    one_line(exc, "plain.h5")


def test_h5path_single_dataset_file_opens_directly(tmp_path):
    data = stack(1, 3)[0]
    path = tmp_path / "one.h5"
    with h5py.File(path, "w") as f:
        f["data"] = data
    scan = open_scan(path)
    np.testing.assert_array_equal(scan.layer(0), data)


def test_h5path_is_lazy(tmp_path):
    data = stack(2, 50, (32, 32))
    raw = tmp_path / "raw.bin"
    data.tofile(raw)
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", shape=data.shape, dtype=data.dtype, external=[(str(raw), 0, data.nbytes)])
    os.remove(raw)
    scan = open_scan(f"{path}::/d")  # no frame data needed to open
    assert scan.shape == data.shape
    with pytest.raises(WeakbeamError, match="cannot read frames") as exc:
        scan.layer(1)
    one_line(exc, "ext.h5")


def test_h5path_bad_input(tmp_path):
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f["entry/image"] = np.zeros((4, 8, 8), np.uint16)
        f["entry/flat"] = np.zeros((8, 8), np.uint16)
        f["entry/names"] = np.array([[[b"a"]]] * 2)
        f["entry/nanframes"] = np.full((2, 8, 8), np.nan, np.float32)
        f["entry/empty"] = np.zeros((0, 8, 8), np.uint16)
    with pytest.raises(WeakbeamError, match=r"no dataset /entry/data \(3D\+ datasets there: /entry/empty") as exc:
        open_scan(f"{path}::/entry/data")
    one_line(exc, "p.h5")
    with pytest.raises(WeakbeamError, match="a 2D dataset") as exc:
        open_scan(f"{path}::/entry/flat")
    one_line(exc, "p.h5")
    with pytest.raises(WeakbeamError, match="expected numeric") as exc:
        open_scan(f"{path}::/entry/names")
    one_line(exc, "p.h5")
    with pytest.raises(WeakbeamError, match="is a group") as exc:
        open_scan(f"{path}::/entry")
    one_line(exc, "p.h5")
    with pytest.raises(WeakbeamError, match="empty") as exc:
        open_scan(f"{path}::/entry/empty")
    one_line(exc, "p.h5")
    with pytest.raises(WeakbeamError, match="4 angles for 2 frames|2 angles for 4 frames") as exc:
        open_scan(f"{path}::/entry/image", angles=[1, 2])
    one_line(exc, "p.h5")
    scan = open_scan(f"{path}::/entry/nanframes")
    with pytest.raises(WeakbeamError, match="64 NaN or infinite") as exc:
        scan.frame(0, 1)
    one_line(exc, "p.h5")
    with pytest.raises(WeakbeamError, match="file not found") as exc:
        open_scan(f"{tmp_path / 'gone.h5'}::/entry/image")
    one_line(exc, "gone.h5")


def test_unsupported_and_pixel_size_override(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(WeakbeamError, match="unsupported file type .txt") as exc:
        open_scan(other)
    one_line(exc, "notes.txt")
    path = tmp_path / "s.tif"
    data = stack(1, 3)[0]
    tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate")  # 3 planes, one page
    scan = open_scan(path, pixel_size=0.05)
    assert scan.pixel_size == 0.05
    np.testing.assert_array_equal(scan.frame(0, 2), data[2])
    with pytest.raises(WeakbeamError, match="pixel size -1"):
        open_scan(path, pixel_size=-1)
