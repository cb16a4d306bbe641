"""NeXus around the project's HDF5 groups, so silx view, h5web and NeXus readers plot them.

Every file keeps its own group (``/predictions``, ``/reconstruction``, ``/annotations``,
``/ground_truth``) where the readers find the data. That group is made an ``NXentry`` and gets
``NXdata`` groups beside its datasets: their signals are soft links to those datasets (no copy),
their axes 1D datasets in physical units (``units``, and a ``long_name`` with the unit, which is
what silx prints on the plot), ``@AXISNAME_indices`` and ``@interpretation``. The file's
``@default`` names the entry and the entry's ``@default`` its most useful plot, so a viewer opens
that plot first. Nothing is moved: files of earlier versions, without these groups, read the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import h5py
import numpy as np

from ..patches import grid_shape


@dataclass(frozen=True)
class Axis:
    """One axis of an NXdata group: its name, values (1D) and unit."""

    name: str
    values: np.ndarray
    units: str = ""
    long_name: str = ""


def make_entry(entry: h5py.Group, default: str, *, root_default: bool = True) -> None:
    """Make ``entry`` an NXentry whose ``@default`` is its NXdata ``default``; with ``root_default``
    the file's ``@default`` names this entry (the plot a viewer opens first)."""
    from ... import __version__

    f = entry.file
    f.attrs["NX_class"] = "NXroot"
    f.attrs.setdefault("creator", f"napari-weakbeam {__version__}")
    if root_default:
        f.attrs["default"] = entry.name.lstrip("/")
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["default"] = default


def write_nxdata(
    parent: h5py.Group,
    name: str,
    signal: str | np.ndarray,
    axes: Sequence[Axis],
    *,
    signal_name: str = "",
    long_name: str = "",
    units: str = "",
    interpretation: str | None = None,
    auxiliary: Sequence[str] = (),
    title: str = "",
    indices: Sequence[int] | None = None,
) -> h5py.Group:
    """(Re)write the NXdata group ``parent/name``.

    ``signal`` is the path of a dataset in the file (linked, not copied) or an array written into
    the group as ``signal_name``; ``auxiliary`` are paths of more datasets of the signal's shape
    (linked; silx offers them as other signals). Axis ``i`` spans dimension ``indices[i]``
    (default: ``i``; a scatter has every axis on dimension 0). ``long_name``, ``units`` and
    ``interpretation`` are stored on the signal dataset.
    """
    if name in parent:
        del parent[name]
    g = parent.create_group(name)
    g.attrs["NX_class"] = "NXdata"
    if isinstance(signal, str):
        signal_name = signal_name or signal.rsplit("/", 1)[-1]
        g[signal_name] = h5py.SoftLink(signal)
    else:
        _create(g, signal_name, signal)
    ds = g[signal_name]
    for key, value in (("long_name", long_name), ("units", units), ("interpretation", interpretation)):
        if value:
            ds.attrs[key] = value
    g.attrs["signal"] = signal_name
    aux_names = []
    for path in auxiliary:
        aux = path.rsplit("/", 1)[-1]
        g[aux] = h5py.SoftLink(path)
        aux_names.append(aux)
    if aux_names:
        g.attrs["auxiliary_signals"] = aux_names
    for i, axis in enumerate(axes):
        a = _create(g, axis.name, axis.values)
        if axis.units:
            a.attrs["units"] = axis.units
        a.attrs["long_name"] = axis.long_name or (f"{axis.name} ({axis.units})" if axis.units else axis.name)
        g.attrs[f"{axis.name}_indices"] = int(indices[i] if indices is not None else i)
    g.attrs["axes"] = [a.name for a in axes]
    if title:
        g.attrs["title"] = title
    return g


def _create(g: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    data = np.asarray(data)
    big = dict(compression="gzip", compression_opts=4) if data.size >= 4096 else {}
    return g.create_dataset(name, data=data, **big)


def write_scatter(parent: h5py.Group, name: str, points_zyx: np.ndarray, values: np.ndarray, value_name: str,
                  *, long_name: str = "", title: str = "") -> h5py.Group:
    """A 3D point cloud as NXdata: ``value_name`` (N,) over the axes x, y, z (um), each (N,)."""
    pts = np.asarray(points_zyx, dtype=np.float32).reshape(-1, 3)
    axes = [Axis(k, pts[:, j], "um") for k, j in (("x", 2), ("y", 1), ("z", 0))]  # silx: x, y, z
    return write_nxdata(parent, name, np.asarray(values), axes, signal_name=value_name, long_name=long_name,
                        title=title, indices=(0, 0, 0))


def nearest_layer(z_um: np.ndarray, layer_positions: np.ndarray) -> np.ndarray:
    """Index (int32) of the layer nearest to each z (um); memory O(points + layers)."""
    pos = np.asarray(layer_positions, dtype=np.float64).ravel()
    z = np.asarray(z_um, dtype=np.float64).ravel()
    if len(pos) < 2:
        return np.zeros(len(z), np.int32)
    order = np.argsort(pos, kind="stable")
    sorted_pos = pos[order]
    right = np.clip(np.searchsorted(sorted_pos, z), 1, len(pos) - 1)
    left = right - 1
    pick = np.where(np.abs(z - sorted_pos[left]) <= np.abs(z - sorted_pos[right]), left, right)
    return order[pick].astype(np.int32)


def layer_axis(layer_positions: np.ndarray) -> Axis:
    """The layer dimension in micrometres."""
    return Axis("z", np.asarray(layer_positions, dtype=np.float64), "um", "z, layer position (um)")


def frame_axis(angles: np.ndarray) -> Axis:
    """The frame dimension: the rocking angle (deg) when every layer has the same angles, else the
    frame number (a 1D axis cannot hold per-layer angles; those stay in the file's ``angles``)."""
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 2 and a.size and np.isfinite(a).all() and np.allclose(a, a[:1], atol=1e-6):
        return Axis("rocking_angle", a[0], "deg", "rocking angle (deg)")
    return Axis("frame", np.arange(a.shape[-1] if a.ndim else 0), "", "frame (sorted by rocking angle)")


def image_axes(shape: tuple[int, int], pixel_um: tuple[float, float] | None, step: int = 1) -> list[Axis]:
    """y and x of an image of ``shape`` whose pixels are ``step`` frame pixels (patches: their
    centres), in micrometres when ``pixel_um`` (dy, dx) is known, else in frame pixels."""
    centre = (step - 1) / 2
    unit = "um" if pixel_um else "pixel"
    dy, dx = pixel_um or (1.0, 1.0)
    return [Axis("y", (np.arange(shape[0]) * step + centre) * dy, unit),
            Axis("x", (np.arange(shape[1]) * step + centre) * dx, unit)]


def patch_grid_axes(angles: np.ndarray, layer_positions: np.ndarray, frame_shape: tuple[int, int],
                    patch_size: int, pixel_um: tuple[float, float] | None) -> list[Axis]:
    """Axes of a (layers, frames, grid_rows, grid_cols) patch array: z, rocking angle, y, x."""
    grid = grid_shape(tuple(frame_shape), patch_size)
    return [layer_axis(layer_positions), frame_axis(angles), *image_axes(grid, pixel_um, patch_size)]


def pixel_um(scan) -> tuple[float, float] | None:
    """(dy, dx) of a scan's pixels in um (x stretched by 1/sin(2theta), as the reconstruction), or
    None when the pixel size is unknown."""
    if not getattr(scan, "pixel_size", None):
        return None
    from ..reconstruction.reconstruct import voxel_size

    return voxel_size(scan)[1:]


CLASS_NAME = "class (1 = weak beam, 2 = strong beam, 0 = none)"
