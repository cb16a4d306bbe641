"""Real files as facilities write them: EDF frames with bytes after the data block, fixed-angle
layer scans (an fscan of the layer motor), HDF5 tables that are not scans, and the objective
magnification (camera pixel size vs pixel size at the sample)."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from napari_weakbeam.cli import main
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.scanfiles.readers.edf import write_edf_series

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("tail", [b"\0" * 4096, bytes(range(256)) * 12])
def test_edf_with_trailing_bytes_opens(tmp_path, tail):
    """Some legacy ID06 files carry a few kB after the image data: the data block is complete,
    so the frame reads exactly; a short data block is still refused as truncated."""
    frames = RNG.integers(100, 4000, (1, 3, 32, 40)).astype(np.uint16)
    names = write_edf_series(tmp_path, frames, [np.array([0.1, 0.2, 0.3])], [5.0])
    with open(names[1], "ab") as f:
        f.write(tail)
    scan = open_scan(tmp_path)
    np.testing.assert_array_equal(scan.layer(0), frames[0])
    data = open(names[2], "rb").read()
    with open(names[2], "wb") as f:
        f.write(data[:-100])
    with pytest.raises(WeakbeamError, match="truncated EDF file") as exc:
        open_scan(tmp_path)
    assert "\n" not in str(exc.value) and names[2] in str(exc.value)


def _fixed_angle_file(path, n=6, angles=(10.5,), units="um"):
    """As Bliss writes `fscan difftz START STEP N T` at a fixed diffry, one scan per angle."""
    layers = [(np.arange(n)[:, None, None] * 10 + k + np.full((n, 24, 32), 100)).astype(np.uint16)
              for k in range(len(angles))]
    z = np.linspace(12.0, 2.0, n)  # moved downwards
    write_bliss(path, layers, [z] * len(angles), list(angles), rocking_motor="difftz", layer_motor="diffry",
                pixel_size=0.6)
    with h5py.File(path, "a") as f:
        for k in range(len(angles)):
            inst = f[f"{k + 1}.1/instrument"]
            inst["positioners/difftz"].attrs["units"] = units
            inst["difftz/value"].attrs["units"] = units
            inst["positioners/diffry"].attrs["units"] = "deg"
    return layers, z


def test_fixed_angle_layer_scan_reads_as_layers_of_one_frame(tmp_path):
    path = tmp_path / "layers.h5"
    layers, z = _fixed_angle_file(path)
    with h5py.File(path) as f:
        assert f["1.1/title"][()].decode().startswith("fscan difftz")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        scan = open_scan(path)
    assert scan.shape == (6, 1, 24, 32)
    assert scan.layer_motor == "difftz" and scan.rocking_motor == "diffry"
    np.testing.assert_allclose(scan.angles, 10.5)
    np.testing.assert_allclose(scan.layer_positions, np.sort(z))  # layers by increasing height
    # layer k is the frame taken at the k-th lowest difftz
    for k, i in enumerate(np.argsort(z)):
        np.testing.assert_array_equal(scan.frame(k, 0), layers[0][i])
    text = " ".join(str(w.message) for w in seen)
    assert "fixed diffry = 10.5" in text and "6 layers of 1 frame" in text


def test_fixed_angle_scans_at_several_angles_become_frames(tmp_path):
    path = tmp_path / "layers3.h5"
    _fixed_angle_file(path, n=4, angles=(10.52, 10.48, 10.50), units="mm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan = open_scan(path)
    assert scan.shape == (4, 3, 24, 32)
    np.testing.assert_allclose(scan.angles[0], [10.48, 10.50, 10.52])  # frames sorted by angle
    np.testing.assert_allclose(scan.layer_positions, np.linspace(2000.0, 12000.0, 4))  # mm -> um
    assert int(scan.frame(0, 0)[0, 0]) == 100 + 30 + 1  # lowest z (4th frame) of the 10.48 scan


def test_small_table_is_not_a_scan(tmp_path, capsys):
    path = tmp_path / "table.h5"
    with h5py.File(path, "w") as f:
        f["results/fit"] = np.arange(30.0).reshape(5, 3, 2)
    for source in (str(path), f"{path}::/results/fit"):
        with pytest.raises(WeakbeamError, match=r"results/fit: a dataset of shape \(5, 3, 2\) holds no detector frames"):
            open_scan(source)
    assert main(["classify", str(path), "--out", str(tmp_path / "p.h5")]) == 2
    assert "holds no detector frames" in capsys.readouterr().err


def test_magnification_from_the_file_or_the_user(tmp_path, capsys):
    path = tmp_path / "camera.h5"
    frames = RNG.integers(100, 200, (5, 32, 32)).astype(np.uint16)
    write_bliss(path, [frames], [np.linspace(-0.1, 0.1, 5)], [0.0], pixel_size=6.5)  # a pco camera pixel
    with pytest.warns(UserWarning, match="6.5 um is the camera's"):
        assert open_scan(path).pixel_size == 6.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning once the scale is known
        assert open_scan(path, magnification=17.0).pixel_size == pytest.approx(6.5 / 17)
        assert open_scan(path, pixel_size=0.3).pixel_size == 0.3
        with h5py.File(path, "a") as f:
            f["1.1/instrument/pco_ff/optics/magnification"] = 10.0
        scan = open_scan(path)
    assert scan.pixel_size == pytest.approx(0.65) and scan.metadata["magnification"] == 10.0
    assert scan.metadata["detector_pixel_size"] == 6.5
    with pytest.raises(WeakbeamError, match="magnification -2"):
        open_scan(path, magnification=-2)
