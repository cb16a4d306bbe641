"""TIFF stacks via tifffile: (frames, rows, cols) or (layers, frames, rows, cols).

Frames are read page by page on demand; angles come from the caller, else frame indices (and
``metadata["angles_are_frame_indices"]`` says so).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import WeakbeamError
from ..scan import Scan, lazy_frames, stack_layers
from ._common import angles_table, captured_log, check_dtype, check_scan_shape, positions_table, sort_by_angle


class TiffFrameSource:
    """Picklable (frames, rows, cols) view of pages ``first .. first + n`` of a TIFF series."""

    def __init__(
        self, path: str, first: int, n_frames: int, frame_shape: tuple[int, int], dtype: Any, paged: bool = True
    ):
        """``paged=False``: pages are not frames (e.g. a 3-frame stack saved as planar RGB), so the
        whole series is read and sliced (small files only)."""
        self.path = path
        self.paged = paged
        self.first = int(first)
        self.dtype = np.dtype(dtype)
        self.shape = (int(n_frames),) + tuple(frame_shape)
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        import tifffile

        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        idx = np.arange(self.shape[0])[key[0]]
        scalar = np.ndim(idx) == 0
        pages = (np.atleast_1d(idx) + self.first).tolist()
        if not pages:
            return np.zeros((0,) + self.shape[1:], dtype=self.dtype)[:, key[1], key[2]]
        try:
            with tifffile.TiffFile(self.path) as tif:
                if not self.paged:
                    data = tif.series[0].asarray().reshape((-1,) + self.shape[1:])[pages]
                elif len(pages) > 1:
                    data = tif.series[0].asarray(key=pages)
                else:
                    data = tif.series[0].asarray(key=pages[0])
        except Exception as exc:
            raise WeakbeamError(f"{self.path}: cannot read TIFF pages ({exc})") from None
        data = np.asarray(data).reshape((len(pages),) + self.shape[1:])[:, key[1], key[2]]
        return data[0] if scalar else data


def _data_end(page: Any) -> int:
    """Where the last data byte of a TIFF page lies in the file (0 when unknown)."""
    offsets, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
    return max((int(o) + int(c) for o, c in zip(offsets, counts)), default=0)


def open_tiff(
    path: str,
    *,
    angles: Sequence[float] | np.ndarray | None = None,
    layer_positions: Sequence[float] | np.ndarray | None = None,
) -> Scan:
    """Open a 3D or 4D TIFF stack lazily."""
    import tifffile

    try:
        with captured_log("tifffile") as problems, tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = tuple(int(s) for s in series.shape), series.dtype
            n_pages = len(series.pages)
            data_end = _data_end(series.pages[-1]) if n_pages else 0
    except Exception as exc:
        raise WeakbeamError(f"{path}: not a readable TIFF file ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    if data_end > os.path.getsize(path) or any("invalid page offset" in p for p in problems):
        raise WeakbeamError(f"{path}: truncated TIFF file (its pages point past the end; was it copied completely?)")
    check_dtype(dtype, path)
    shape = tuple(s for s in shape[:-2] if s != 1) + shape[-2:]  # drop singleton axes (ImageJ)
    if len(shape) not in (3, 4):
        raise WeakbeamError(
            f"{path}: a {len(shape)}D image of shape {shape} (expected 3D frames x rows x cols or 4D layers x frames x rows x cols)"
        )
    check_scan_shape(shape, path)
    n_layers, n_frames = (1, shape[0]) if len(shape) == 3 else shape[:2]
    paged = n_pages == n_layers * n_frames
    sources = [TiffFrameSource(path, i * n_frames, n_frames, shape[-2:], dtype, paged) for i in range(n_layers)]
    layers = [lazy_frames(src) for src in sources]
    frames = unsorted = stack_layers(layers)
    table, real = angles_table(angles, n_layers, n_frames, path)
    frames, table = sort_by_angle(frames, table)
    scan = Scan(
        frames=frames,
        angles=table,
        layer_positions=positions_table(layer_positions, n_layers, path),
        source=str(path),
        metadata={"format": "tiff", "angles_are_frame_indices": not real},
    )
    if frames is unsorted:  # frame i of each layer is frame i of its source
        scan.attach_sources(sources)
    return scan
