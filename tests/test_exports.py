"""Exports round-trip through the libraries that read them (meshio for VTK/XDMF, tifffile for
ImageJ TIFF) with their units and per-point attributes; the command line writes them."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import meshio
import numpy as np
import pytest
import tifffile

from napari_weakbeam.cli import main
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.reconstruction.exports import data_file, export, export_lines, read_lines
from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction

PREVIOUS = Path(__file__).parent / "data" / "previous"


@pytest.fixture(scope="module")
def rec():
    return load_reconstruction(PREVIOUS / "reconstruction.h5")


def xdmf_units(path: Path) -> tuple[str, dict[str, str]]:
    """The grid's name and the units of the data file's datasets, by the name they carry."""
    grid = ET.parse(path).getroot().find("Domain/Grid")
    with h5py.File(data_file(path), "r") as f:
        units = {str(d.attrs["name"]): str(d.attrs.get("units", "")) for d in f.values()}
    return grid.get("Name"), units


@pytest.mark.parametrize("ext", [".vtk", ".xdmf"])
def test_point_cloud_round_trip(rec, tmp_path, ext):
    path = export(tmp_path / f"points{ext}", rec)
    mesh = meshio.read(path)
    assert mesh.cells[0].type == "vertex" and len(mesh.cells[0].data) == len(rec.points_um)
    np.testing.assert_allclose(mesh.points, rec.points_um[:, ::-1])  # x, y, z in um
    layer = np.asarray(mesh.point_data["layer"])
    np.testing.assert_allclose(rec.layer_positions[layer], rec.points_um[:, 0])
    # the map value at each point's voxel (z, row, col)
    _, dy, dx = rec.voxel_size_um
    r, c = np.rint(rec.points_um[:, 1] / dy).astype(int), np.rint(rec.points_um[:, 2] / dx).astype(int)
    np.testing.assert_allclose(mesh.point_data["map_value"], rec.volume[layer, r, c])
    assert (np.asarray(mesh.point_data["map_value"]) > 0).all()  # the points are on the dislocations
    if ext == ".xdmf":
        name, units = xdmf_units(path)
        assert "in um" in name and units["x, y, z"] == "um" and units["layer"] == ""


@pytest.mark.parametrize("ext", [".vtk", ".xdmf"])
def test_lines_round_trip(rec, tmp_path, ext):
    path = export_lines(tmp_path / f"lines{ext}", rec)
    back = read_lines(path)
    multi = np.diff(rec.lines.offsets) >= 2  # single-vertex lines have no cell
    np.testing.assert_allclose(back.vertices, rec.lines.vertices[np.repeat(multi, np.diff(rec.lines.offsets))])
    mesh = meshio.read(path)
    ids = np.repeat(np.arange(len(rec.lines)), np.diff(rec.lines.offsets))
    np.testing.assert_array_equal(mesh.point_data["line_id"], ids)
    np.testing.assert_allclose(rec.layer_positions[np.asarray(mesh.point_data["layer"])], rec.lines.vertices[:, 0])
    cell_ids = np.asarray(mesh.cell_data["line_id"][0])
    np.testing.assert_allclose(mesh.cell_data["length_um"][0], rec.lines.lengths()[cell_ids])
    if ext == ".xdmf":
        name, units = xdmf_units(path)
        assert "lines" in name and units["x, y, z"] == "um" and units["length_um"] == "um"


@pytest.mark.parametrize("what", ["mask", "volume"])
def test_tiff_opens_at_scale(rec, tmp_path, what):
    from napari_weakbeam.core.reconstruction.exports import export_tiff

    path = export_tiff(tmp_path / f"{what}.tif", rec, what)
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        page = tif.pages[0]
        data = tif.asarray()
        xres, yres = page.tags["XResolution"].value, page.tags["YResolution"].value
        axes = tif.series[0].axes
    dz, dy, dx = rec.voxel_size_um
    assert axes == "ZYX" and meta["slices"] == meta["images"] == rec.mask.shape[0]  # a z-stack in Fiji
    assert meta["unit"] == "um" and meta["spacing"] == pytest.approx(dz)
    assert xres[1] / xres[0] == pytest.approx(dx, rel=1e-6) and yres[1] / yres[0] == pytest.approx(dy, rel=1e-6)
    np.testing.assert_array_equal(data, rec.volume if what == "volume" else rec.mask.astype(np.uint8) * 255)


def test_xdmf_never_writes_over_another_file(rec, tmp_path):
    """meshio would put the data of vol.xdmf in vol.h5: ours goes to vol.xdmf.h5, guarded."""
    keep = tmp_path / "vol.h5"
    shutil.copyfile(PREVIOUS / "reconstruction.h5", keep)
    before = keep.read_bytes()
    export(tmp_path / "vol.xdmf", rec)
    assert keep.read_bytes() == before and (tmp_path / "vol.xdmf.h5").exists()
    rec.source = str(tmp_path / "scan.xdmf.h5")  # the data file would be the scan
    (tmp_path / "scan.xdmf.h5").write_bytes(before)
    with pytest.raises(WeakbeamError, match="input"):
        export(tmp_path / "scan.xdmf", rec)
    assert not (tmp_path / "scan.xdmf").exists()


def test_empty_results_are_refused_in_one_line(tmp_path):
    """meshio cannot write a mesh without cells: say so instead of a traceback."""
    from napari_weakbeam.core.reconstruction.lines import Lines

    empty = load_reconstruction(PREVIOUS / "reconstruction.h5", volumes=False)
    empty.points_um, empty.lines = np.zeros((0, 3)), Lines.from_list([np.zeros((1, 3))])
    for ext in (".vtk", ".xdmf"):
        with pytest.raises(WeakbeamError, match="no points"):
            export(tmp_path / f"p{ext}", empty)
        with pytest.raises(WeakbeamError, match="two vertices"):
            export_lines(tmp_path / f"l{ext}", empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert export(tmp_path / "p.csv", empty).read_text() == "z_um,y_um,x_um\n"


def test_cli_exports(tmp_path, capsys):
    sim, pred = PREVIOUS / "simulation.h5", PREVIOUS / "predictions.h5"
    out = tmp_path / "vol.h5"
    pts, lines, tif = tmp_path / "p.xdmf", tmp_path / "l.xdmf", tmp_path / "m.tif"
    args = ["reconstruct", str(sim), "-p", str(pred), "--out", str(out), "-q"]
    assert main(args + ["--export", str(pts), "--export", str(tif), "--export-lines", str(lines)]) == 0
    capsys.readouterr()
    rec = load_reconstruction(out)
    mesh = meshio.read(pts)
    np.testing.assert_allclose(mesh.points, rec.points_um[:, ::-1])
    assert (np.asarray(mesh.point_data["map_value"]) > 0).all()
    # the lines' z is the layers' height in um (a shallow line's end goes on into its end slab)
    np.testing.assert_allclose(read_lines(lines).vertices, rec.lines.vertices)
    z0, step = rec.layer_positions.min(), np.ptp(rec.layer_positions) / max(len(rec.layer_positions) - 1, 1)
    assert z0 - 0.25 * step <= read_lines(lines).vertices[:, 0].min() <= z0
    assert tifffile.imread(tif).shape == rec.mask.shape
    # the data file of an .xdmf is an output too: an existing one needs --overwrite
    out2 = tmp_path / "vol2.h5"
    assert main(["reconstruct", str(sim), "-p", str(pred), "--out", str(out2), "--export", str(pts), "-q"]) == 2
    assert "p.xdmf" in capsys.readouterr().err and not out2.exists()
    assert main(["reconstruct", str(sim), "-p", str(pred), "--out", str(out2), "--export", str(pts), "-q", "--overwrite"]) == 0
    assert main(args + ["--export", str(tmp_path / "x.ply")]) == 2
    assert ".xdmf" in capsys.readouterr().err
