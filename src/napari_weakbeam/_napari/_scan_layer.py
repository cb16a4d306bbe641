"""The Scan behind an Image layer, and what layer metadata says about it: plain values only.

A layer's metadata travels with it (napari copies it, saves it, shows it), so it holds no live
object: the reader stores a plain description of the scan (:func:`describe_scan`: where it was
opened from, angles, layer positions, pixel size, motors) under ``weakbeam_scan``. The widgets'
session turns a layer back into a :class:`Scan` with :func:`scan_from_layer` (the file reopened
when it still matches the layer, else the layer's own array with the description) and keeps it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from ..core.errors import WeakbeamError
from ..core.scanfiles.scan import Scan

if TYPE_CHECKING:
    from napari.layers import Image

#: Layer metadata: the plain description of the scan (on the scan layer and its annotation layer).
SCAN_KEY = "weakbeam_scan"


def plain(value: Any) -> Any:
    """``value`` as plain Python values (str, int, float, bool, None, lists and dicts of them)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def open_paths(paths: list[str]) -> Scan:
    """Open what the reader opened: one path (any format) or several EDF files (one series)."""
    if len(paths) > 1:
        from ..core.scanfiles.readers.edf import open_edf

        return open_edf(list(paths))
    from ..core.scanfiles.readers import open_scan

    return open_scan(paths[0])


def describe_scan(scan: Scan, paths: list[str] | None = None) -> dict[str, Any]:
    """A plain description of ``scan``; ``paths``: what to reopen it from (None: not a file)."""
    return plain({
        "open": list(paths) if paths else None,
        "source": str(scan.source),
        "frame_shape": scan.frame_shape,
        "angles": scan.angles,
        "layer_positions": scan.layer_positions,
        "pixel_size": scan.pixel_size,
        "rocking_motor": scan.rocking_motor,
        "layer_motor": scan.layer_motor,
        "scan_names": scan.scan_names,
        "detector": scan.detector,
        "metadata": scan.metadata or {},
    })


def scan_from_layer(layer: "Image") -> Scan:
    """The Scan behind an Image layer: the file it was read from, reopened when it still holds what
    the layer shows (per-layer direct reads), else the layer's own array (frames, rows, cols) or
    (layers, frames, rows, cols) with the description or the ``angles`` of its metadata."""
    if getattr(layer, "multiscale", False):
        raise WeakbeamError(f"layer {layer.name!r}: multiscale images are not supported as a scan")
    data = layer.data
    if data.ndim not in (3, 4):
        raise WeakbeamError(
            f"layer {layer.name!r}: a scan needs (frames, rows, cols) or (layers, frames, rows, cols), "
            f"got shape {tuple(data.shape)}"
        )
    desc = layer.metadata.get(SCAN_KEY)
    frames = da.asarray(data)
    if frames.ndim == 3:
        frames = frames[None]
    if isinstance(desc, dict):
        return _described(desc, frames)
    n_layers, n_frames = frames.shape[:2]
    angles = layer.metadata.get("angles")
    if angles is None:
        angles = np.tile(np.arange(n_frames, dtype=float), (n_layers, 1))
    angles = np.asarray(angles, dtype=float)
    if angles.ndim == 1 and angles.size == n_frames:
        angles = np.tile(angles, (n_layers, 1))
    positions = layer.metadata.get("layer_positions", np.arange(n_layers, dtype=float))
    return Scan(
        frames=frames,
        angles=angles,
        layer_positions=np.asarray(positions, dtype=float).reshape(-1)[:n_layers],
        source=str(layer.metadata.get("source", layer.name)),
    )


def _described(desc: dict[str, Any], frames: da.Array) -> Scan:
    """The described scan: reopened from its file when that matches ``frames`` (a file still being
    written has grown since), else ``frames`` with the description."""
    scan = None
    if desc.get("open"):
        try:
            scan = open_paths(desc["open"])
        except WeakbeamError:
            scan = None  # moved or changed meanwhile: the layer's own array still shows it
    if scan is None or scan.shape != tuple(int(s) for s in frames.shape):
        scan = Scan(
            frames=frames,
            angles=np.asarray(desc["angles"], dtype=float),
            layer_positions=np.asarray(desc["layer_positions"], dtype=float),
            rocking_motor=desc.get("rocking_motor"),
            layer_motor=desc.get("layer_motor"),
            source=str(desc.get("source", "")),
            scan_names=list(desc.get("scan_names") or []),
            detector=desc.get("detector"),
            metadata=dict(desc.get("metadata") or {}),
        )
    meta = desc.get("metadata") or {}
    if meta.get("pixel_size_source") == "user" or scan.pixel_size is None:
        scan.pixel_size = desc.get("pixel_size")
        if meta.get("pixel_size_source") == "user":
            scan.metadata = {**(scan.metadata or {}), "pixel_size_source": "user"}
    return scan

