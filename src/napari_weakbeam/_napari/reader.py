"""napari reader contribution: a DFXM scan as one lazy Image layer (layers, frames, y, x), and a
``weakbeam reconstruct`` file as its 3D volume and point cloud.

``get_reader`` claims only what the core readers can open (Bliss masters, HDF5 files with a 3D/4D
dataset, EDF frames or folders of them, 3D/4D TIFF stacks) and returns None otherwise, so other
plugins can try. The layer's metadata carries the Scan (``weakbeam_scan``), the angles and the
source, for the widgets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.errors import WeakbeamError
from ..core.scanfiles.readers import open_scan
from ..core.scanfiles.scan import Scan, layer_spacing
from ._scan_layer import SCAN_KEY, describe_scan, plain

LayerData = tuple[Any, dict[str, Any], str]


def _claims(path: str) -> bool:
    """Cheap check (metadata only) that ``path`` is something the core readers open."""
    p = Path(path)
    if "::" in path:
        return True
    if p.is_dir():
        return any(c.suffix.lower() == ".edf" for c in p.iterdir())
    suffix = p.suffix.lower()
    if suffix == ".edf":
        return p.is_file()
    if suffix in (".tif", ".tiff"):
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return sum(s > 1 for s in tif.series[0].shape[:-2]) >= 1
        except Exception:
            return False
    if suffix in (".h5", ".hdf5", ".nxs"):
        return _claims_hdf5(path)
    return False


def _claims_hdf5(path: str) -> bool:
    import h5py

    if not os.path.isfile(path) or not h5py.is_hdf5(path):
        return False
    from ..core.scanfiles.readers.bliss import is_bliss
    from ..core.scanfiles.readers.h5path import list_datasets, open_h5_file

    try:
        if is_bliss(path) or own_file_kind(path):
            return True
        with open_h5_file(path) as f:
            list_datasets(f, 0, limit=1)
        # Any other HDF5 file: claimed, so that the reader says why it is not a scan (napari's
        # own "refused the file" gives no reason).
        return True
    except WeakbeamError:
        return True  # ours to report (e.g. truncated file): the reader raises the one-line error


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """napari hook: a reader function for ``path``, or None when this plugin cannot read it."""
    if isinstance(path, (list, tuple)):
        if len(path) > 1:
            edf = all(str(p).lower().endswith(".edf") and os.path.isfile(p) for p in path)
            return read_scan if edf else None
        path = path[0]
    path = os.fspath(path)
    return read_scan if _claims(path) else None


def read_scan(path: str | list[str]) -> list[LayerData]:
    """Open ``path`` with :func:`open_scan` (several EDF files: one series) as one lazy Image layer.

    A file that is not a scan raises a one-line :class:`WeakbeamError` saying why; the line is also
    shown as an error notification, since napari's reader dialog only says that the plugin failed."""
    try:
        return _read(path)
    except WeakbeamError as exc:
        from napari.utils.notifications import show_error

        show_error(str(exc))
        raise


def _read(path: str | list[str]) -> list[LayerData]:
    if isinstance(path, (list, tuple)) and len(path) > 1:
        from ..core.scanfiles.readers.edf import open_edf

        paths = [os.fspath(p) for p in path]
        return [scan_layer_data(open_edf(paths), Path(paths[0]).parent.name or "edf", paths)]
    if isinstance(path, (list, tuple)):
        path = path[0]
    path = os.fspath(path)
    kind = own_file_kind(path) if "::" not in path and path.lower().endswith((".h5", ".hdf5")) else None
    if kind == "reconstruction":
        return reconstruction_layer_data(path)
    if kind is not None:
        widget = {"annotations": "Annotate", "predictions": "Predictions"}[kind]
        raise WeakbeamError(
            f"{path}: a napari-weakbeam {kind} file, not a scan: open its scan, then use Load in the {widget} widget"
        )
    if "::" not in path and path.lower().endswith((".h5", ".hdf5", ".nxs")):
        _explain_non_scan_hdf5(path)
    scan = open_scan(path)
    check_frame_size(scan, path)
    name = Path(path.split("::")[0].rstrip("/\\")).stem or "scan"
    return [scan_layer_data(scan, name, [path])]


MIN_FRAME_PX = 8  # a frame smaller than this is a table, not a detector image


def check_frame_size(scan: Scan, path: str) -> None:
    """Refuse a "scan" whose frames are too small to be detector images (e.g. a 5 x 3 x 2 table)."""
    rows, cols = scan.frame_shape
    if min(rows, cols) < MIN_FRAME_PX:
        raise WeakbeamError(
            f"{path}: frames of {rows} x {cols} pixels (shape {tuple(scan.shape)}) are too small for a DFXM "
            f"scan (at least {MIN_FRAME_PX} x {MIN_FRAME_PX}): is this a table rather than detector images?"
        )


def _explain_non_scan_hdf5(path: str) -> None:
    """A one-line reason when an HDF5 file holds neither a Bliss scan nor a 3D/4D image dataset."""
    from ..core.scanfiles.readers.bliss import is_bliss
    from ..core.scanfiles.readers.h5path import list_datasets, open_h5_file

    if is_bliss(path):
        return
    with open_h5_file(path) as f:
        if list_datasets(f, 3, limit=1):
            return
        found = list_datasets(f, 0, limit=4)
        shapes = ", ".join(f"{d} {tuple(f[d].shape)}" for d in found)
    raise WeakbeamError(
        f"{path}: not a DFXM scan: no Bliss scan entry and no 3D/4D image dataset"
        + (f" (it holds {shapes}{', ...' if len(found) == 4 else ''})" if found else " (it holds no dataset)")
    )


def own_file_kind(path: str) -> str | None:
    """``"reconstruction"``, ``"annotations"`` or ``"predictions"`` for the files this project
    writes (they are not scans), else None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for group in ("reconstruction", "annotations", "predictions"):
                g = f.get(group)
                if isinstance(g, h5py.Group) and str(g.attrs.get("format", "")) == f"napari-weakbeam {group}":
                    return group
    except OSError:
        return None
    return None


def reconstruction_layer_data(path: str) -> list[LayerData]:
    """A ``weakbeam reconstruct`` file as napari layers: the mask volume (mip), the point cloud and
    the 3D lines (paths), with the physical voxel size (micrometres), as the Reconstruct widget
    shows them."""
    from ..core.reconstruction.reconstruction_io import load_reconstruction
    from ._geometry import point_size
    from ._reconstruction_view import AUTO_COLOUR

    axes = {"axis_labels": ("z", "y", "x"), "units": ("um", "um", "um")}

    rec = load_reconstruction(path)
    name = Path(path).stem
    scale = tuple(float(v) for v in rec.voxel_size_um)
    layers: list[LayerData] = [(
        rec.mask.astype(np.float32),
        {"name": f"{name} volume", "scale": scale, "translate": rec.origin_um, "rendering": "mip",
         "contrast_limits": (0, 1), "colormap": "inferno", "metadata": {"source": rec.source}, **axes},
        "image",
    )]
    if len(rec.points_um):
        layers.append((
            rec.points_um,
            {"name": f"{name} points", "size": point_size(scale), "face_color": AUTO_COLOUR,
             "border_width": 0, **axes},
            "points",
        ))
    paths = [] if rec.lines is None else [v for v in rec.lines.to_list() if len(v) >= 2]
    if paths:
        layers.append((paths, {"name": f"{name} lines", "shape_type": "path", "edge_color": "#ffffff",
                               "edge_width": 2 * scale[1], **axes}, "shapes"))
    return layers


def _contrast(scan: Scan) -> tuple[float, float]:
    """Contrast limits from one frame (the middle valid frame of the middle layer)."""
    layer = scan.n_layers // 2
    valid = np.flatnonzero(scan.valid_frames(layer))
    frame = int(valid[len(valid) // 2]) if len(valid) else 0
    data = np.asarray(scan.frames[layer, frame].compute(), dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(data, [0.5, 99.8])
    if hi <= lo:
        lo, hi = float(data.min()), float(data.max())
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def scan_layer_data(scan: Scan, name: str, paths: list[str] | None = None) -> LayerData:
    """(data, kwargs, "image") for ``viewer.add_image``: the scan as one lazy 4D Image layer, its
    metadata plain values (``paths``: what the scan was opened from; default its source).

    Scale is (layer spacing, 1, pixel size, pixel size) in um (pixel size 1 when unknown).
    """
    px = float(scan.pixel_size) if scan.pixel_size else 1.0
    kwargs = {
        "name": name,
        "axis_labels": ("layer", "frame", "y", "x"),
        "scale": (layer_spacing(scan.layer_positions), 1.0, px, px),
        "units": ("um", "", "um", "um") if scan.pixel_size else None,
        "contrast_limits": _contrast(scan),
        "metadata": {
            SCAN_KEY: describe_scan(scan, paths or [str(scan.source)]),
            "angles": plain(scan.angles),
            "layer_positions": plain(scan.layer_positions),
            "pixel_size": scan.pixel_size,
            "source": str(scan.source),
        },
    }
    if kwargs["units"] is None:
        del kwargs["units"]
    return scan.frames, kwargs, "image"
