"""Helpers shared by the readers: user-given angles and layer positions, sorting by angle."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import dask.array as da
import numpy as np

from ...errors import WeakbeamError


def check_dtype(dtype: np.dtype, where: str) -> None:
    """Detector data must be numbers (not strings, objects, compounds)."""
    if np.dtype(dtype).kind not in "biuf":
        raise WeakbeamError(f"{where}: data of type {np.dtype(dtype)} (expected numeric detector frames)")


#: Frames smaller than this (rows or cols) are not detector images (a table, a counter).
MIN_FRAME_PIXELS = 4


def check_scan_shape(shape: tuple[int, ...], where: str) -> None:
    """A 3D/4D dataset must hold frames: at least one, each at least 4 x 4 pixels."""
    if 0 in shape:
        raise WeakbeamError(f"{where}: the scan is empty (shape {tuple(shape)})")
    rows, cols = shape[-2:]
    if rows < MIN_FRAME_PIXELS or cols < MIN_FRAME_PIXELS:
        raise WeakbeamError(
            f"{where}: a dataset of shape {tuple(int(s) for s in shape)} holds no detector frames (its "
            f"{rows} x {cols} 'frames' are smaller than {MIN_FRAME_PIXELS} x {MIN_FRAME_PIXELS} pixels: a table?)"
        )


def angles_table(
    angles: Sequence[float] | np.ndarray | None, n_layers: int, n_frames: int, where: str
) -> tuple[np.ndarray, bool]:
    """(layers, frames) angles in degrees from a user's (frames,) or (layers, frames) list.

    Returns the table and whether it is real angles (False: frame indices were used).
    """
    if angles is None:
        return np.tile(np.arange(n_frames, dtype=np.float64), (n_layers, 1)), False
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim == 1:
        if a.shape[0] != n_frames:
            raise WeakbeamError(
                f"{where}: {a.shape[0]} angles for {n_frames} frames (angles and frames must have the same length)"
            )
        a = np.tile(a, (n_layers, 1))
    elif a.shape != (n_layers, n_frames):
        raise WeakbeamError(f"{where}: angles of shape {a.shape} for {n_layers} layers x {n_frames} frames")
    if not np.all(np.isfinite(a)):
        raise WeakbeamError(f"{where}: the angles hold NaN or infinite values")
    return a, True


def positions_table(
    layer_positions: Sequence[float] | np.ndarray | None, n_layers: int, where: str
) -> np.ndarray:
    """(layers,) positions in um, layer indices when not given."""
    if layer_positions is None:
        return np.arange(n_layers, dtype=np.float64)
    p = np.asarray(layer_positions, dtype=np.float64).reshape(-1)
    if p.shape[0] != n_layers:
        raise WeakbeamError(f"{where}: {p.shape[0]} layer positions for {n_layers} layers")
    return p


def sort_by_angle(frames: da.Array, angles: np.ndarray) -> tuple[da.Array, np.ndarray]:
    """Sort the frames of each layer of (layers, frames, ...) by increasing angle, lazily."""
    order = np.argsort(angles, axis=1, kind="stable")
    if np.all(order == np.arange(angles.shape[1])):
        return frames, angles
    layers = [frames[i][order[i]] for i in range(frames.shape[0])]
    return da.stack(layers, axis=0), np.take_along_axis(angles, order, axis=1)


@contextlib.contextmanager
def captured_log(name: str) -> Iterator[list[str]]:
    """Collect the warnings a library logs under ``name`` (e.g. ``tifffile``) instead of printing
    them: the reader turns them into its one-line error."""
    seen: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger(name)
    handler, propagate = _Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
