"""The one data model for a DFXM rocking scan, produced by every reader.

A scan is ``layers x frames x rows x cols``: each layer is one rocking scan (one height z of the
sample), each frame one rocking angle. Frames are a lazy dask array, so a 50 GB dataset opens in
seconds and is read frame by frame or layer by layer where it is used (also on Dask workers: the
chunk readers below are picklable and open the file themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import h5py
import numpy as np

from ..errors import WeakbeamError, check_finite


@dataclass
class Scan:
    """A rocking-curve dataset of one or more layers.

    Attributes
    ----------
    frames : dask.array.Array
        Detector frames, shape (layers, frames, rows, cols), lazy. Frames are sorted by increasing
        rocking angle within each layer. A layer with fewer frames than the others (aborted scan)
        is padded with zero frames whose angle is NaN.
    angles : np.ndarray
        Rocking angle in degrees, shape (layers, frames); NaN marks a missing (padded) frame.
    layer_positions : np.ndarray
        Position of each layer in micrometres, shape (layers,) (layer indices when unknown).
    pixel_size : float | None
        Effective pixel size at the sample in micrometres, when known.
    rocking_motor, layer_motor : str | None
        Motor names, when known (e.g. ``diffry``, ``difftz``).
    source : str
        Where the data came from (a path, ``FILE.h5::/dataset``, a glob).
    scan_names : list[str]
        The scans in the source file that make up the layers (e.g. ``["1.1", "2.1"]``), if any.
    detector : str | None
        Detector name, when known.
    metadata : dict
        Anything else a reader found worth keeping (titles, scan commands, ...).
    """

    frames: da.Array
    angles: np.ndarray
    layer_positions: np.ndarray
    pixel_size: float | None = None
    rocking_motor: str | None = None
    layer_motor: str | None = None
    source: str = ""
    scan_names: list[str] = field(default_factory=list)
    detector: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Per-layer frame sources (sorted like ``frames``) for direct reads; see attach_sources.
    _sources: list[Any] | None = field(default=None, init=False, repr=False, compare=False)
    _sources_for: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.angles = np.asarray(self.angles, dtype=np.float64)
        self.layer_positions = np.asarray(self.layer_positions, dtype=np.float64)
        if self.frames.ndim != 4:
            raise WeakbeamError(
                f"{self.source}: expected frames of shape (layers, frames, rows, cols), got {self.frames.shape}"
            )
        n_layers, n_frames = self.frames.shape[:2]
        if n_layers == 0 or n_frames == 0 or self.frames.shape[2] == 0 or self.frames.shape[3] == 0:
            raise WeakbeamError(f"{self.source}: the scan is empty (shape {self.frames.shape})")
        if self.angles.shape != (n_layers, n_frames):
            raise WeakbeamError(
                f"{self.source}: {self.angles.shape[-1] if self.angles.ndim else 0} angles for "
                f"{n_frames} frames (angles and frames must have the same length)"
            )
        if self.layer_positions.shape != (n_layers,):
            raise WeakbeamError(
                f"{self.source}: {self.layer_positions.size} layer positions for {n_layers} layers"
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(int(s) for s in self.frames.shape)  # type: ignore[return-value]

    @property
    def n_layers(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[1])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    def valid_frames(self, layer: int) -> np.ndarray:
        """Boolean mask of the frames of ``layer`` that hold data (not padding)."""
        return np.isfinite(self.angles[layer])

    def attach_sources(self, sources: list[Any]) -> None:
        """Let layer()/frame() read from the readers' per-layer frame sources (frames sorted as in
        ``frames``; None for a layer without frames) in one go instead of chunk by chunk. Ignored
        once ``frames`` is replaced (e.g. by ``dataclasses.replace``)."""
        if len(sources) != self.n_layers:
            raise ValueError(f"{len(sources)} frame sources for {self.n_layers} layers")
        self._sources, self._sources_for = list(sources), self.frames.name

    def input_files(self) -> list[str]:
        """The files this scan reads: the source file (without ``::/dataset``) and, when known,
        the files holding the frames (e.g. the camera files behind a Bliss master's links)."""
        files = [str(self.source).split("::")[0]] if self.source else []
        paths = [getattr(src, "path", None) for src in self._sources or ()]
        for path in paths + list(self.metadata.get("frame_files", [])):  # readers without sources
            if path and str(path) not in files:
                files.append(str(path))
        return files

    def _direct(self, layer: int, frames: slice | int) -> np.ndarray | None:
        """Frames of one layer read straight from its source (padding as zeros), or None."""
        if self._sources is None or self._sources_for != self.frames.name:
            return None
        src = self._sources[layer]
        n_have = 0 if src is None else int(src.shape[0])
        if isinstance(frames, int):
            if frames < 0:
                frames += self.n_frames
            if 0 <= frames < n_have:
                return np.asarray(src[frames], dtype=self.frames.dtype)
            return np.zeros(self.frame_shape, dtype=self.frames.dtype)
        if n_have == self.n_frames:
            return np.asarray(src[0:n_have], dtype=self.frames.dtype)
        data = np.zeros((self.n_frames,) + self.frame_shape, dtype=self.frames.dtype)
        if n_have:
            data[:n_have] = src[0:n_have]
        return data

    def layer(self, index: int) -> np.ndarray:
        """Read one layer into memory: (frames, rows, cols), the detector dtype.

        Raises WeakbeamError when the data hold NaN or infinite values.
        """
        index = range(self.n_layers)[index]
        data = self._direct(index, slice(None))
        if data is None:
            data = np.asarray(self.frames[index].compute())
        return check_frame(data, f"{self.source} layer {index}")

    def frame(self, layer: int, frame: int) -> np.ndarray:
        """Read one frame into memory: (rows, cols); WeakbeamError on NaN or infinite values."""
        layer, frame = range(self.n_layers)[layer], range(self.n_frames)[frame]
        data = self._direct(layer, frame)
        if data is None:
            # one chunk: the synchronous scheduler avoids the thread pool's overhead
            data = np.asarray(self.frames[layer, frame].compute(scheduler="synchronous"))
        return check_frame(data, f"{self.source} layer {layer} frame {frame}")


def layer_spacing(layer_positions: Any) -> float:
    """The spacing of the layers in micrometres: the median step between their positions; 1 when
    unknown or for a single layer (the one rule for voxel sizes, napari scales and line linking)."""
    pos = np.asarray(layer_positions, dtype=np.float64).ravel()
    step = float(np.median(np.abs(np.diff(pos)))) if pos.size > 1 else 1.0
    return step if np.isfinite(step) and step > 0 else 1.0


def check_frame(frame: np.ndarray, where: str) -> np.ndarray:
    """Return ``frame`` unchanged, or raise WeakbeamError naming ``where`` if it holds NaN/inf."""
    check_finite(frame, where)
    if frame.dtype.kind not in "biuf":
        raise WeakbeamError(f"{where}: detector data of type {frame.dtype} (expected numbers)")
    return frame


class H5FrameSource:
    """Picklable, lazily opened view of a 3D HDF5 dataset (frames, rows, cols).

    ``order`` re-orders frames (e.g. to sort a zigzag scan by angle); ``n_frames`` may be smaller
    than the dataset (aborted scan). The file is opened on each read, so instances can travel to
    Dask workers and files are never held open between reads.
    """

    def __init__(
        self,
        path: str,
        dataset: str,
        order: np.ndarray | None = None,
        *,
        shape: tuple[int, ...] | None = None,
        dtype: Any = None,
        lead: tuple[int, ...] = (),
    ):
        """``shape``/``dtype`` of the full dataset skip opening the file here (a reader that has
        them already); ``lead`` indexes leading axes first (layer ``i`` of a 4D dataset: ``(i,)``).
        """
        self.path = str(path)
        self.dataset = dataset
        self.lead = tuple(int(i) for i in lead)
        if shape is None or dtype is None:
            with _open_h5(self.path) as f:
                d = f[dataset]
                shape, dtype = d.shape, d.dtype
        full_shape = tuple(shape)[len(self.lead) :]
        self.dtype = np.dtype(dtype)
        self.order = np.arange(full_shape[0]) if order is None else np.asarray(order, dtype=np.int64)
        self.shape = (len(self.order),) + tuple(full_shape[1:])
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        idx = self.order[key[0]]
        scalar = np.ndim(idx) == 0
        idx = np.atleast_1d(idx)
        # h5py needs increasing indices: read sorted, then put back in the requested order.
        uniq, inverse = np.unique(idx, return_inverse=True)
        if len(uniq) and np.all(np.diff(uniq) == 1):
            first: Any = slice(int(uniq[0]), int(uniq[-1]) + 1)
        else:
            first = uniq
        try:
            with _open_h5(self.path) as f:
                data = f[self.dataset][self.lead + (first, key[1], key[2])]
        except (OSError, KeyError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WeakbeamError(f"{self.path}::{self.dataset}: cannot read frames ({msg})") from None
        if not np.array_equal(inverse, np.arange(len(inverse))):
            data = data[inverse]  # a copy (contiguous, as torch.from_numpy needs)
        return data[0] if scalar else data


def _open_h5(path: str) -> h5py.File:
    import hdf5plugin  # noqa: F401  (registers bitshuffle/LZ4 and friends)

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "lock" not in str(exc).lower():
            raise
        return h5py.File(path, "r", locking=False)  # a file still being written


def lazy_frames(source: Any, chunk_frames: int = 1) -> da.Array:
    """Wrap a 3D frame source (H5FrameSource, memmap, ...) as a dask array chunked by frame."""
    rows, cols = source.shape[1], source.shape[2]
    meta = np.empty((0, 0, 0), dtype=source.dtype)  # so dask does not open the file to learn it
    return da.from_array(source, chunks=(chunk_frames, rows, cols), asarray=True, fancy=False, meta=meta)


def stack_layers(layers: list[da.Array], fill_frames: int | None = None) -> da.Array:
    """Stack per-layer (frames, rows, cols) arrays into (layers, frames, rows, cols).

    Layers with fewer frames than ``fill_frames`` (default: the longest) are padded with zero frames.
    """
    n = fill_frames or max(a.shape[0] for a in layers)
    padded = []
    for a in layers:
        if a.shape[0] < n:
            pad = da.zeros((n - a.shape[0],) + a.shape[1:], dtype=a.dtype, chunks=(1,) + a.shape[1:])
            a = da.concatenate([a, pad], axis=0)
        padded.append(a)
    return da.stack(padded, axis=0)
