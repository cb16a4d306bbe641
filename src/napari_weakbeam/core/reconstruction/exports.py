"""Exports of a reconstruction for other programs: ParaView (VTK, XDMF), Fiji (TIFF), CSV.

Meshes are written by meshio: the point cloud as ``vertex`` cells, the 3D lines as chains of
2-point ``line`` cells (meshio has no poly-line cell) sharing their vertices. Coordinates are x,
y, z in micrometres (ParaView's order; our arrays are z, y, x). Per-point attributes: ``layer``
(index) and ``map_value`` (the dislocation map at the point's voxel, when the volume is loaded)
for points; ``line_id`` and ``layer`` for line vertices, with ``line_id``, ``length_um`` and
``direction`` (unit x, y, z) per cell. Neither VTK nor XDMF has a place for units that meshio
keeps, so they are in the names (``length_um``), in the XDMF grid's name and, for XDMF, as
``units`` attributes of the datasets in its HDF5 data file.

``.xdmf`` writes two files: ``NAME.xdmf`` (XML) and its data ``NAME.xdmf.h5`` (:func:`data_file`),
both atomically; ``.vtk`` one legacy binary VTK file. TIFF stacks carry ImageJ metadata (axes ZYX,
z spacing and pixel size in um), so Fiji opens them at scale.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path, check_replaceable
from ..errors import WeakbeamError
from .lines import Lines
from ..scanfiles.nexus import nearest_layer

MESH_FORMATS = (".vtk", ".xdmf")
POINT_FORMATS = MESH_FORMATS + (".csv",)  #: point clouds and lines
STACK_FORMATS = (".tif", ".tiff")  #: the mask stack


def data_file(path: str | os.PathLike) -> Path | None:
    """The second file an export writes (``NAME.xdmf.h5`` beside ``NAME.xdmf``), or None."""
    p = Path(path)
    return p.with_name(p.name + ".h5") if p.suffix.lower() == ".xdmf" else None


def output_files(path: str | os.PathLike) -> list[Path]:
    """Every file an export to ``path`` writes (what must be free to write)."""
    extra = data_file(path)
    return [Path(path)] + ([extra] if extra else [])


# ----------------------------------------------------------------------------------------------
# Meshes


def points_mesh(points_um: np.ndarray, attributes: dict[str, np.ndarray] | None = None) -> Any:
    """A meshio Mesh of the points (z, y, x um) as vertex cells, with per-point ``attributes``."""
    import meshio

    pts = np.asarray(points_um, dtype=np.float64).reshape(-1, 3)
    cells = [("vertex", np.arange(len(pts), dtype=np.int64).reshape(-1, 1))]
    return meshio.Mesh(pts[:, ::-1].copy(), cells, point_data=dict(attributes or {}))


def point_attributes(rec: Any, volume: Any = None) -> dict[str, np.ndarray]:
    """Per-point ``layer`` and ``map_value`` (the dislocation map at the point's voxel) of a
    Reconstruction. ``volume``: the map, indexable per layer (e.g. the file's HDF5 dataset, read one
    layer at a time); default ``rec.volume``; without a volume there is no ``map_value``."""
    pts = np.asarray(rec.points_um, dtype=np.float64).reshape(-1, 3)
    layer = nearest_layer(pts[:, 0], rec.layer_positions)
    out = {"layer": layer}
    vol = rec.volume if volume is None else volume
    n_layers = len(rec.layer_positions)
    if len(vol.shape) != 3 or vol.shape[0] != n_layers or not n_layers:
        return out
    _, dy, dx = rec.voxel_size_um
    rows, cols = pts[:, 1] / dy, pts[:, 2] / dx
    if rec.drift_px is not None and rec.params.get("correct_drift"):  # the points were moved by the drift
        rows, cols = rows + rec.drift_px[layer, 0], cols + rec.drift_px[layer, 1]
    r = np.clip(np.rint(rows).astype(np.int64), 0, vol.shape[1] - 1)
    c = np.clip(np.rint(cols).astype(np.int64), 0, vol.shape[2] - 1)
    value = np.full(len(pts), np.nan, np.float32)
    for i in np.unique(layer):
        on = layer == i
        value[on] = np.asarray(vol[int(i)])[r[on], c[on]]
    out["map_value"] = value
    return out


def lines_mesh(lines: Lines, layer_positions: np.ndarray | None = None) -> Any:
    """A meshio Mesh of the lines: each a chain of 2-point ``line`` cells over its vertices, with
    cell data ``line_id``, ``length_um``, ``direction`` (x, y, z) and point data ``line_id`` (and
    ``layer`` when the layer positions are given). Lines of one vertex have no cell."""
    import meshio

    segs, ids = [], []
    for k in range(len(lines)):
        s0, s1 = int(lines.offsets[k]), int(lines.offsets[k + 1])
        if s1 - s0 >= 2:
            idx = np.arange(s0, s1)
            segs.append(np.column_stack([idx[:-1], idx[1:]]))
            ids.append(np.full(s1 - s0 - 1, k))
    seg = np.concatenate(segs).astype(np.int64) if segs else np.zeros((0, 2), np.int64)
    line_id = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    length = lines.lengths()[line_id] if len(line_id) else np.zeros(0)
    direction = np.nan_to_num(lines.directions()[line_id][:, ::-1]) if len(line_id) else np.zeros((0, 3))
    point_data = {"line_id": np.repeat(np.arange(len(lines)), np.diff(lines.offsets)).astype(np.int32)}
    if layer_positions is not None:
        point_data["layer"] = nearest_layer(lines.vertices[:, 0], layer_positions)
    return meshio.Mesh(lines.vertices[:, ::-1].copy(), [("line", seg)],  # z, y, x -> x, y, z
                       point_data=point_data,
                       cell_data={"line_id": [line_id.astype(np.int32)], "length_um": [length],
                                  "direction": [direction]})


def write_mesh(path: str | os.PathLike, mesh: Any, title: str) -> Path:
    """Write ``mesh`` by extension: .vtk (legacy, binary) or .xdmf (+ its HDF5 data file)."""
    import meshio

    ext = Path(path).suffix.lower()
    if ext == ".vtk":
        with atomic_path(path) as tmp:
            meshio.write(str(tmp), mesh, file_format="vtk", binary=True)
    elif ext == ".xdmf":
        _write_xdmf(Path(path), mesh, title)
    else:
        raise WeakbeamError(f"{path}: unknown mesh format {ext or '(none)'} (use {', '.join(MESH_FORMATS)})")
    return Path(path)


def _write_xdmf(path: Path, mesh: Any, title: str) -> None:
    """meshio's XDMF (heavy data in HDF5), its data file renamed to NAME.xdmf.h5 (meshio would use
    NAME.h5: often the reconstruction itself), the title and units added; both files atomic."""
    import meshio

    data = data_file(path)
    assert data is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmpdir:
        tmp = Path(tmpdir) / "mesh.xdmf"
        meshio.write(str(tmp), mesh, file_format="xdmf")
        tree = ET.parse(tmp)
        grid = tree.getroot().find("Domain/Grid")
        assert grid is not None
        grid.set("Name", f"{title} (x, y, z in um)")
        units: dict[str, tuple[str, str]] = {}  # dataset in the data file -> (name, units)
        for parent in grid:
            item = parent.find("DataItem")
            if item is None or item.get("Format") != "HDF" or not item.text:
                continue
            dataset = item.text.strip().split(":", 1)[1]
            item.text = f"{data.name}:{dataset}"
            name = "x, y, z" if parent.tag == "Geometry" else parent.get("Name", parent.tag)
            units[dataset] = (name, "um" if parent.tag == "Geometry" or name.endswith("_um") else "")
        tree.write(tmp, xml_declaration=True, encoding="utf-8")
        with h5py.File(tmp.with_suffix(".h5"), "a") as f:
            for dataset, (name, unit) in units.items():
                f[dataset].attrs["name"] = name
                if unit:
                    f[dataset].attrs["units"] = unit
        with atomic_path(data) as tmp_data:
            os.replace(tmp.with_suffix(".h5"), tmp_data)
        with atomic_path(path) as tmp_path:
            os.replace(tmp, tmp_path)


def read_mesh(path: str | os.PathLike) -> Any:
    """Read a mesh file back through meshio (format by extension); a one-line error if unreadable."""
    import meshio

    try:
        return meshio.read(str(path))
    except Exception as exc:  # noqa: BLE001 - meshio raises many kinds
        raise WeakbeamError(f"{path}: cannot read the mesh ({exc})") from None


def read_lines(path: str | os.PathLike) -> Lines:
    """Lines written by :func:`export_lines_mesh` (.vtk or .xdmf), read back through meshio: the
    ``line`` cells grouped by ``line_id`` (each cell its own line when there is none), in order."""
    mesh = read_mesh(path)
    pts = np.asarray(mesh.points, dtype=np.float64)[:, ::-1]
    out = []
    for bi, block in enumerate(mesh.cells):
        if block.type != "line":
            continue
        data = np.asarray(block.data)
        ids = np.asarray(mesh.cell_data["line_id"][bi]).ravel() if "line_id" in mesh.cell_data else np.arange(len(data))
        for k in np.unique(ids):
            cells = data[ids == k]
            out.append(pts[np.concatenate([cells[:, 0], cells[-1:, 1]])])
    return Lines.from_list(out)


def export_lines_mesh(path: str | os.PathLike, lines: Lines, layer_positions: np.ndarray | None = None) -> Path:
    """The lines as VTK or XDMF (by extension) for ParaView; :func:`read_lines` reads them back."""
    if not np.any(np.diff(lines.offsets) >= 2):
        raise WeakbeamError(f"{path}: no traced line has two vertices or more: no polyline to write (.csv lists the points)")
    return write_mesh(path, lines_mesh(lines, layer_positions), "napari-weakbeam dislocation lines")


def export_points(path: str | os.PathLike, points_um: np.ndarray, attributes: dict[str, np.ndarray] | None = None) -> Path:
    """The point cloud as VTK or XDMF (by extension), with per-point ``attributes``."""
    if not len(np.asarray(points_um).reshape(-1, 3)):
        raise WeakbeamError(f"{path}: no points to export (no dislocation was found); nothing written")
    return write_mesh(path, points_mesh(points_um, attributes), "napari-weakbeam dislocation points")


# ----------------------------------------------------------------------------------------------
# CSV and TIFF


def export_csv(path: str | os.PathLike, points_um: np.ndarray) -> Path:
    """CSV point cloud with a header ``z_um,y_um,x_um``."""
    pts = np.asarray(points_um, dtype=np.float64).reshape(-1, 3)
    with atomic_path(path) as tmp:
        np.savetxt(tmp, pts, delimiter=",", header="z_um,y_um,x_um", comments="", fmt="%.6f")
    return Path(path)


def export_lines_csv(path: str | os.PathLike, lines: Lines) -> Path:
    """CSV of the vertices: ``line,z_um,y_um,x_um`` (one row per vertex, lines numbered from 0)."""
    idx = np.repeat(np.arange(len(lines)), np.diff(lines.offsets))
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("line,z_um,y_um,x_um\n")
            for k, (z, y, x) in zip(idx, lines.vertices):
                fh.write(f"{k},{z:.6f},{y:.6f},{x:.6f}\n")
    return Path(path)


def export_lines_table_csv(path: str | os.PathLike, lines: Lines) -> Path:
    """CSV with one row per line: ``line,n_vertices,length_um,dir_z,dir_y,dir_x``."""
    tab = lines.table()
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("line,n_vertices,length_um,dir_z,dir_y,dir_x\n")
            for k, row in enumerate(tab):
                fh.write(f"{k},{lines.offsets[k + 1] - lines.offsets[k]}," + ",".join(f"{v:.6f}" for v in row) + "\n")
    return Path(path)


def export_tiff(path: str | os.PathLike, rec: Any, what: str = "mask") -> Path:
    """Write the ``mask`` (uint8 0/255), ``skeleton`` or ``volume`` (float32) as an ImageJ TIFF
    stack: axes ZYX, ``spacing`` = dz and resolution = 1/dy, 1/dx pixels per um, unit ``um``."""
    import tifffile

    data = {"mask": rec.mask, "skeleton": rec.skeleton, "volume": rec.volume}.get(what)
    if data is None:
        raise WeakbeamError(f"cannot export {what!r} to TIFF (choose mask, skeleton or volume)")
    arr = np.asarray(data, dtype=np.float32) if what == "volume" else np.asarray(data, dtype=np.uint8) * 255
    dz, dy, dx = rec.voxel_size_um
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, arr, imagej=True, resolution=(1.0 / dx, 1.0 / dy),
                         metadata={"spacing": dz, "unit": "um", "axes": "ZYX"})
    return Path(path)


# ----------------------------------------------------------------------------------------------
# Reconstruction exports by extension


def _check_outputs(path: str | os.PathLike, rec: Any) -> None:
    for p in output_files(path):
        check_replaceable(p, "export", inputs=[rec.source] if rec.source else [])


def export_lines(path: str | os.PathLike, rec: Any) -> Path:
    """Export the 3D lines by extension: .vtk or .xdmf (through meshio, for ParaView) or .csv (one
    row per vertex: ``line,z_um,y_um,x_um``). The scan is never overwritten."""
    ext = Path(path).suffix.lower()
    if ext not in POINT_FORMATS:
        raise WeakbeamError(f"{path}: unknown format {ext or '(none)'} for lines (use .vtk, .xdmf or .csv)")
    if rec.lines is None:
        raise WeakbeamError(f"{path}: this reconstruction holds no traced lines (made without tracing, or by an older version)")
    _check_outputs(path, rec)
    if ext == ".csv":
        return export_lines_csv(path, rec.lines)
    return export_lines_mesh(path, rec.lines, rec.layer_positions)


def export(path: str | os.PathLike, rec: Any, volume: Any = None) -> Path:
    """Export by extension: .h5/.hdf5 (full file), .tif/.tiff (mask stack), .vtk and .xdmf (point
    cloud with per-point attributes; ``volume`` as in :func:`point_attributes`), .csv (points).
    The scan is never overwritten."""
    ext = Path(path).suffix.lower()
    if ext in (".h5", ".hdf5"):
        from .reconstruction_io import save_reconstruction

        return save_reconstruction(path, rec)
    if ext not in STACK_FORMATS + POINT_FORMATS:
        raise WeakbeamError(f"{path}: unknown export format {ext or '(none)'} (use .h5, .tif, .vtk, .xdmf or .csv)")
    _check_outputs(path, rec)
    if ext in STACK_FORMATS:
        return export_tiff(path, rec)
    if ext == ".csv":
        return export_csv(path, rec.points_um)
    return export_points(path, rec.points_um, point_attributes(rec, volume))
