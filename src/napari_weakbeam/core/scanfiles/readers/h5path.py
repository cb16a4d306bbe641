"""Any HDF5 dataset as a scan: ``FILE.h5::/path/to/data``, 3D (frames, rows, cols) or 4D
(layers, frames, rows, cols). Angles and layer positions come from the caller (or indices)."""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np

from ...errors import WeakbeamError
from ..scan import H5FrameSource, Scan, lazy_frames, stack_layers
from ._common import MIN_FRAME_PIXELS, angles_table, check_dtype, check_scan_shape, positions_table, sort_by_angle


def split_h5path(text: str) -> tuple[str, str] | None:
    """``"FILE.h5::/a/b"`` -> ``("FILE.h5", "/a/b")``; None when ``text`` has no ``::``."""
    if "::" not in text:
        return None
    path, _, dataset = text.partition("::")
    return path, "/" + dataset.lstrip("/")


def open_h5_file(path: str) -> h5py.File:
    """Open an HDF5 file for reading; one-line WeakbeamError for missing, non-HDF5 or truncated files."""
    import hdf5plugin  # noqa: F401  (compression filters)

    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise WeakbeamError(f"{path}: file not found") from None
    except OSError as exc:
        text = str(exc).lower()
        if "lock" in text:  # a file still being written (Bliss acquiring): read without the lock
            try:
                return h5py.File(path, "r", locking=False)
            except OSError:
                pass
        if "truncated" in text or "eof" in text:
            raise WeakbeamError(f"{path}: truncated HDF5 file (was it copied completely?)") from None
        if not h5py.is_hdf5(path):
            raise WeakbeamError(f"{path}: not an HDF5 file") from None
        raise WeakbeamError(f"{path}: cannot open as HDF5 ({str(exc).splitlines()[0]})") from None


def list_datasets(f: h5py.File, min_ndim: int = 0, limit: int = 8) -> list[str]:
    """Paths of datasets with at least ``min_ndim`` dimensions (external links not followed)."""
    found: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim >= min_ndim and len(found) < limit:
            found.append("/" + name)

    f.visititems(visit)
    return found


def _scan_from_dataset(
    path: str,
    dataset: str,
    d: h5py.Dataset,
    angles: Sequence[float] | np.ndarray | None,
    layer_positions: Sequence[float] | np.ndarray | None,
) -> Scan:
    where = f"{path}::{dataset}"
    check_dtype(d.dtype, where)
    if d.ndim not in (3, 4):
        raise WeakbeamError(
            f"{where}: a {d.ndim}D dataset of shape {d.shape} (expected 3D frames x rows x cols or 4D layers x frames x rows x cols)"
        )
    check_scan_shape(d.shape, where)
    n_layers = 1 if d.ndim == 3 else d.shape[0]
    leads = [()] if d.ndim == 3 else [(i,) for i in range(n_layers)]
    sources = [H5FrameSource(path, dataset, shape=d.shape, dtype=d.dtype, lead=lead) for lead in leads]
    layers = [lazy_frames(src) for src in sources]
    frames = unsorted = stack_layers(layers)
    table, real = angles_table(angles, n_layers, frames.shape[1], where)
    frames, table = sort_by_angle(frames, table)
    scan = Scan(
        frames=frames,
        angles=table,
        layer_positions=positions_table(layer_positions, n_layers, where),
        source=where,
        metadata={"format": "hdf5 dataset", "angles_are_frame_indices": not real},
    )
    if frames is unsorted:  # frame i of each layer is frame i of its source
        scan.attach_sources(sources)
    return scan


def open_h5path(
    text: str,
    *,
    angles: Sequence[float] | np.ndarray | None = None,
    layer_positions: Sequence[float] | np.ndarray | None = None,
) -> Scan:
    """Open ``FILE.h5::/path/to/data`` lazily."""
    parts = split_h5path(text)
    if parts is None:
        raise WeakbeamError(f"{text}: expected FILE.h5::/path/to/dataset")
    path, dataset = parts
    with open_h5_file(path) as f:
        try:
            d = f[dataset]
        except KeyError:
            there = ", ".join(list_datasets(f, 3)) or ", ".join(list(f.keys())[:8]) or "nothing"
            raise WeakbeamError(f"{path}: no dataset {dataset} (3D+ datasets there: {there})") from None
        except OSError as exc:
            raise WeakbeamError(f"{path}: cannot open {dataset} ({str(exc).splitlines()[0]})") from None
        if not isinstance(d, h5py.Dataset):
            there = ", ".join(list_datasets(f[dataset], 3)) or "none"
            raise WeakbeamError(f"{path}: {dataset} is a group, not a dataset (3D+ datasets in it: {there})")
        return _scan_from_dataset(path, dataset, d, angles, layer_positions)


def open_single_dataset(
    path: str,
    *,
    angles: Sequence[float] | np.ndarray | None = None,
    layer_positions: Sequence[float] | np.ndarray | None = None,
) -> Scan:
    """An HDF5 file that is not a Bliss master: open its one 3D/4D dataset, or say which to choose."""
    with open_h5_file(path) as f:
        candidates = [p for p in list_datasets(f, 3, limit=50) if f[p].ndim in (3, 4)]
        found = [p for p in candidates if min(f[p].shape[-2:]) >= MIN_FRAME_PIXELS]
    if len(found) == 1:
        return open_h5path(f"{path}::{found[0]}", angles=angles, layer_positions=layer_positions)
    if not found and candidates:
        return open_h5path(f"{path}::{candidates[0]}", angles=angles, layer_positions=layer_positions)  # says why not
    if not found:
        raise WeakbeamError(f"{path}: no 3D detector dataset (not a Bliss master file and no 3D/4D dataset)")
    raise WeakbeamError(
        f"{path}: not a Bliss master file and several 3D datasets ({', '.join(found[:5])}); "
        f"name one as {path}::/path/to/data"
    )
