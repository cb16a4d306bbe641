"""Whole-scan inference, streamed layer by layer, and the predictions file it writes.

File layout (HDF5, documented in docs/file-formats.md)::

    /predictions/label                  uint8 (layers, frames, grid_rows, grid_cols): 0 = not
                                        classified (padding frame / layer not done), 1 = WB, 2 = SB
    /predictions/probability_weak_beam  float32, same shape (NaN where not classified)
    /predictions/angles                 float64 (layers, frames), degrees (NaN = padding frame)
    /predictions/layer_positions        float64 (layers,), micrometres
    /predictions/layer_done             bool (layers,): layers whose results are complete
    /predictions attrs: format, format_version, patch_size, frame_shape, source, scan_names,
                        detector, model, software
    /predictions is a NeXus NXentry; /predictions/probability and /labels are NXdata groups
    linking the datasets above, over axes z (um), rocking angle (deg), y and x (um) (core.scanfiles.nexus)

Memory stays bounded by one block of frames of one layer, whatever the size of the scan: a layer
is read a few frames at a time, classified, and its results written and flushed before the next
layer is read. The file is built beside the target (``.NAME.partial``) and renamed over it only
when every layer is done, so an interrupted run never destroys an earlier predictions file, and
``resume=True`` continues from the layers already finished.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import h5py
import numpy as np

from ..errors import WeakbeamError, check_finite
from ..scanfiles.layer_file import LayerFileWriter
from ..scanfiles.nexus import CLASS_NAME, make_entry, patch_grid_axes, pixel_um, write_nxdata
from ..patches import grid_shape
from ..scanfiles.scan import Scan

FORMAT = "napari-weakbeam predictions"
FORMAT_VERSION = 1
#: Frames of one layer read and classified together; bounded further by BLOCK_BYTES.
BLOCK_FRAMES = 8
#: Upper bound on the raw bytes of one block of frames held in memory at once.
BLOCK_BYTES = 128 * 2**20

log = logging.getLogger(__name__)


class FrameClassifier(Protocol):
    """What inference needs from a classifier (core.classification.classifier.Classifier provides it)."""

    patch_size: int

    def predict_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class Predictions:
    """Per-patch predictions for a whole scan, as read from a predictions file."""

    label: np.ndarray  # uint8 (layers, frames, grid_rows, grid_cols), 0/1/2
    prob: np.ndarray  # float32 probability of weak beam, same shape, NaN where not classified
    patch_size: int
    angles: np.ndarray  # float64 (layers, frames), degrees
    layer_positions: np.ndarray  # float64 (layers,), micrometres
    source: str = ""
    frame_shape: tuple[int, int] = (0, 0)
    scan_names: list[str] = field(default_factory=list)
    layer_done: np.ndarray | None = None  # bool (layers,)
    model: str = ""
    curves: np.ndarray | None = None  # float32 patch mean intensities, same shape as label (None: older file)
    levels: np.ndarray | None = None  # float64 (layers, 3): dark, bright, noise of a patch mean

    def layer_context(self, layer: int):
        """The rocking-curve context of ``layer`` (core.classification.scan_context.LayerContext), or None when
        the file does not hold the patch curves."""
        if self.curves is None or self.levels is None or not np.isfinite(self.levels[layer]).all():
            return None
        from .scan_context import LayerContext

        dark, bright, noise = (float(v) for v in self.levels[layer])
        return LayerContext(np.nan_to_num(self.curves[layer].astype(np.float64)), self.angles[layer], self.patch_size,
                            dark, bright, noise)

    @property
    def complete(self) -> bool:
        """True when every layer has been classified."""
        return self.layer_done is None or bool(np.all(self.layer_done))

    def check_matches(self, scan: Scan, what: str = "predictions") -> None:
        """Raise a one-line error unless these predictions fit ``scan``."""
        expected = (scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, self.patch_size)
        if tuple(self.label.shape) != expected:
            raise WeakbeamError(
                f"{what} do not match the scan {scan.source}: labels {self.label.shape} at patch size "
                f"{self.patch_size}, but the scan gives {expected}"
            )
        if not _same_angles(self.angles, scan.angles):
            raise WeakbeamError(f"{what} were made on other rocking angles than the scan {scan.source}")


def _same_angles(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return False
    both = np.isfinite(a)
    return bool(np.allclose(a[both], b[both], atol=1e-6))


class PredictionWriter(LayerFileWriter):
    """Writes a predictions file layer by layer, flushed after each layer.

    The file is built at a hidden ``.NAME.partial`` beside ``path`` and moved to ``path`` by
    :meth:`close` once every layer is written; until then an existing ``path`` is untouched. With
    ``resume=True`` an earlier partial file (or an existing, matching predictions file at ``path``)
    is continued: :meth:`done_layers` tells which layers can be skipped. Use as a context manager.
    """

    group = "predictions"
    what = "predictions"

    def __init__(
        self,
        path: str | os.PathLike,
        scan: Scan,
        patch_size: int,
        resume: bool = False,
        model: str = "",
    ):
        self.scan = scan
        self.model = str(model)
        self.patch_size = int(patch_size)
        if self.patch_size < 1:
            raise WeakbeamError(f"patch size must be a positive number of pixels, got {patch_size}")
        self.shape = (scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, self.patch_size)
        self._open(path, scan.input_files(), scan.n_layers, resume)

    # -- opening ----------------------------------------------------------------------------
    def _create(self) -> h5py.File:
        scan = self.scan
        f = h5py.File(self.partial, "w")
        g = f.create_group("predictions")
        chunks = (1, 1) + self.shape[2:]
        g.create_dataset("label", shape=self.shape, dtype=np.uint8, chunks=chunks, fillvalue=0,
                         compression="gzip", compression_opts=4)
        g.create_dataset("probability_weak_beam", shape=self.shape, dtype=np.float32, chunks=chunks,
                         fillvalue=np.nan, compression="gzip", compression_opts=4)
        g.create_dataset("angles", data=scan.angles.astype(np.float64))
        g.create_dataset("layer_positions", data=scan.layer_positions.astype(np.float64))
        g.create_dataset("layer_done", data=np.zeros(scan.n_layers, dtype=bool))
        g.create_dataset("patch_intensity", shape=self.shape, dtype=np.float32, chunks=chunks,
                         fillvalue=np.nan, compression="gzip", compression_opts=4)
        g["patch_intensity"].attrs["description"] = "mean raw intensity of each patch in each frame (the patches' rocking curves)"
        g.create_dataset("layer_levels", data=np.full((scan.n_layers, 3), np.nan))
        g["layer_levels"].attrs["columns"] = "dark, bright, noise of a patch mean (raw counts)"
        from ... import __version__

        g.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            patch_size=self.patch_size,
            frame_shape=np.asarray(scan.frame_shape, dtype=np.int64),
            source=str(scan.source),
            scan_names=",".join(scan.scan_names),
            detector=str(scan.detector or ""),
            model=self.model,
            software=f"napari-weakbeam {__version__}",
        )
        f.flush()
        return f

    def _finish(self, g: h5py.Group) -> None:
        scan = self.scan
        write_nexus(g, patch_grid_axes(scan.angles, scan.layer_positions, scan.frame_shape, self.patch_size,
                                       pixel_um(scan)))

    def _check_finished(self, path: Path) -> None:
        self._check_existing(path)  # a finished file of another scan is an error, not overwritten

    def _reopen(self) -> h5py.File | None:
        """Open the earlier partial file to continue it, if it matches this scan and model."""
        try:
            self._check_existing(self.partial)
        except WeakbeamError as exc:
            log.warning("starting over: the earlier partial run cannot be continued (%s)", exc)
            self.partial.unlink()
            return None
        f = h5py.File(self.partial, "a")
        earlier = str(f["predictions"].attrs.get("model", ""))
        if self.model and earlier and earlier != self.model:
            f.close()
            raise WeakbeamError(
                f"{self.path}: cannot resume with model {self.model!r}: the earlier run used {earlier!r}; "
                f"start again without resume"
            )
        return f

    def _check_existing(self, path: Path) -> None:
        pred = load_predictions(path)
        if pred.patch_size != self.patch_size:
            raise WeakbeamError(
                f"{path}: earlier predictions use patch size {pred.patch_size}, not {self.patch_size}"
            )
        pred.check_matches(self.scan, what=f"earlier predictions in {path}")

    # -- writing ----------------------------------------------------------------------------
    def write_layer(self, i: int, label: np.ndarray, prob: np.ndarray, curves: np.ndarray | None = None,
                    levels: np.ndarray | None = None) -> None:
        """Store the results of layer ``i`` ((frames, grid_rows, grid_cols) each; ``curves`` the
        patches' mean intensities, ``levels`` the layer's dark, bright and noise) and flush."""
        want = self.shape[1:]
        label, prob = np.asarray(label), np.asarray(prob)
        if label.shape != want or prob.shape != want:
            raise ValueError(f"layer {i}: expected label and prob of shape {want}, got {label.shape}, {prob.shape}")
        g = self._group
        g["label"][i] = label.astype(np.uint8, copy=False)
        g["probability_weak_beam"][i] = prob.astype(np.float32, copy=False)
        if curves is not None and "patch_intensity" in g:
            g["patch_intensity"][i] = np.asarray(curves, np.float32)
            g["layer_levels"][i] = np.asarray(levels, np.float64)
        self._mark_done(i)


def write_nexus(g: h5py.Group, axes: list) -> None:
    """The NeXus view of a predictions group: an NXentry opening on the WB probability maps
    (``probability``, with the labels and patch intensities as other signals) and ``labels``."""
    others = [f"{g.name}/{name}" for name in ("label", "patch_intensity") if name in g]
    write_nxdata(g, "probability", g.name + "/probability_weak_beam", axes, long_name="probability of weak beam",
                 interpretation="image", auxiliary=others, title="weak-beam probability per patch")
    write_nxdata(g, "labels", g.name + "/label", axes, long_name=CLASS_NAME, interpretation="image",
                 title="weak beam (1) / strong beam (2) per patch")
    make_entry(g, "probability")


def load_predictions(path: str | os.PathLike) -> Predictions:
    """Read and check a predictions file; a missing, foreign or corrupt file raises WeakbeamError."""
    p = Path(path)
    if not p.exists():
        raise WeakbeamError(f"{p}: predictions file not found")
    if p.is_dir():
        raise WeakbeamError(f"{p}: is a folder, not a predictions file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise WeakbeamError(f"{p}: not a readable HDF5 predictions file ({exc})") from None
    try:
        with f:
            g = f.get("predictions")
            if not isinstance(g, h5py.Group) or g.attrs.get("format") != FORMAT:
                raise WeakbeamError(f"{p}: not a napari-weakbeam predictions file (no /predictions group)")
            version = int(g.attrs.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise WeakbeamError(
                    f"{p}: predictions format version {version} is newer than this napari-weakbeam "
                    f"reads ({FORMAT_VERSION})"
                )
            for name in ("label", "probability_weak_beam", "angles", "layer_positions"):
                if name not in g:
                    raise WeakbeamError(f"{p}: predictions file is missing /predictions/{name}")
            label = np.asarray(g["label"][()], dtype=np.uint8)
            prob = np.asarray(g["probability_weak_beam"][()], dtype=np.float32)
            angles = np.asarray(g["angles"][()], dtype=np.float64)
            positions = np.asarray(g["layer_positions"][()], dtype=np.float64)
            done = np.asarray(g["layer_done"][()], dtype=bool) if "layer_done" in g else None
            curves = np.asarray(g["patch_intensity"][()], np.float32) if "patch_intensity" in g else None
            levels = np.asarray(g["layer_levels"][()], np.float64) if "layer_levels" in g else None
            attrs = dict(g.attrs)
    except WeakbeamError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise WeakbeamError(f"{p}: corrupt or truncated predictions file ({exc})") from None
    patch_size = int(attrs.get("patch_size", 0))
    if label.ndim != 4 or prob.shape != label.shape:
        raise WeakbeamError(f"{p}: predictions must be (layers, frames, grid_rows, grid_cols), got {label.shape}")
    if angles.shape != label.shape[:2] or positions.shape != label.shape[:1]:
        raise WeakbeamError(f"{p}: angles {angles.shape} or layer positions {positions.shape} do not fit labels {label.shape}")
    if patch_size < 1:
        raise WeakbeamError(f"{p}: invalid patch size {patch_size} in predictions file")
    if label.size and int(label.max()) > 2:
        raise WeakbeamError(f"{p}: labels must be 0, 1 (weak beam) or 2 (strong beam), found {int(label.max())}")
    names = str(attrs.get("scan_names", ""))
    return Predictions(
        label=label,
        prob=prob,
        patch_size=patch_size,
        angles=angles,
        layer_positions=positions,
        source=str(attrs.get("source", "")),
        frame_shape=tuple(int(v) for v in attrs.get("frame_shape", (0, 0))),
        scan_names=[s for s in names.split(",") if s],
        layer_done=done,
        model=str(attrs.get("model", "")),
        curves=curves if curves is not None and curves.shape == label.shape else None,
        levels=levels if levels is not None and levels.shape == (label.shape[0], 3) else None,
    )


def block_frames(scan: Scan, max_frames: int = BLOCK_FRAMES, max_bytes: int = BLOCK_BYTES) -> int:
    """How many frames of ``scan`` to read at once so a block stays under ``max_bytes``."""
    rows, cols = scan.frame_shape
    frame_bytes = rows * cols * max(np.dtype(scan.frames.dtype).itemsize, 4)  # float32 after normalising
    return int(max(1, min(max_frames, max_bytes // max(frame_bytes, 1))))


def iter_classify_layer(
    scan: Scan, layer: int, classifier: FrameClassifier, block: int | None = None,
    context_out: dict | None = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Classify one layer a block of frames at a time, yielding ``(frames_done, label, prob)``.

    ``label``/``prob`` are the layer's full (frames, grid_rows, grid_cols) arrays, filled up to
    ``frames_done``. Padding frames (NaN angle) stay 0 / NaN and are never read. When given,
    ``context_out["context"]`` receives the layer's LayerContext (its patch curves and levels, for
    the predictions file and the self-check), measured in the same reads.
    """
    from .scan_context import ContextAccumulator

    if not 0 <= layer < scan.n_layers:
        raise WeakbeamError(f"{scan.source}: layer {layer} does not exist (the scan has {scan.n_layers})")
    p = int(classifier.patch_size)
    gshape = grid_shape(scan.frame_shape, p)
    label = np.zeros((scan.n_frames,) + gshape, dtype=np.uint8)
    prob = np.full((scan.n_frames,) + gshape, np.nan, dtype=np.float32)
    valid = np.flatnonzero(scan.valid_frames(layer))
    step = block or block_frames(scan)
    context = None
    kept: list[np.ndarray] | None = None
    if getattr(classifier, "scan_aware", False) and 0 < len(valid) < MIN_CONTEXT_FRAMES:
        warn_no_context(scan, layer, len(valid))
    elif getattr(classifier, "scan_aware", False) and len(valid):
        # one extra read of the layer for its rocking-curve context; blocks are kept for the
        # second pass when the layer fits in memory comfortably
        context, kept = layer_context(scan, layer, p, step)
    acc = ContextAccumulator(scan.n_frames, scan.frame_shape, p) if context is None else None
    done = 0
    for n_block, start in enumerate(range(0, len(valid), step)):
        idx = valid[start : start + step]
        frames = kept[n_block] if kept is not None else _read_block(scan, layer, idx)
        if context is None:
            _check_finite(frames, scan, layer, idx)
            for j, i in enumerate(idx):
                acc.add(int(i), frames[j], float(scan.angles[layer, i]))
            lab, pr = classifier.predict_frames(frames)
        else:
            lab, pr = classifier.predict_frames(frames, context, idx)
        label[idx] = lab
        prob[idx] = pr
        done = int(idx[-1]) + 1
        del frames
        if kept is not None:
            kept[n_block] = None  # type: ignore[call-overload]
        if context_out is not None and done == int(valid[-1]) + 1:
            context_out["context"] = context if context is not None else acc.context()
        yield done, label, prob
    if not len(valid):
        yield scan.n_frames, label, prob


#: Fewer acquired frames than this in a layer: no rocking curve to read, classify from appearance.
MIN_CONTEXT_FRAMES = 3


def warn_no_context(scan: Scan, layer: int, n: int) -> None:
    """Say once per scan that a layer is classified from appearance alone."""
    key = (str(scan.source), n)
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(
        f"{scan.source}: layer {layer} has {n} frame(s), no rocking curve: classified from appearance only "
        f"(less reliable; a fixed-angle layer scan has no scan context)", stacklevel=3)


_WARNED: set = set()

#: Layers up to this many bytes are read once and kept for the second (classification) pass.
KEEP_LAYER_BYTES = 1 << 30


def _read_block(scan: Scan, layer: int, idx: np.ndarray) -> np.ndarray:
    # Consecutive runs read as one slice (the usual case). The synchronous scheduler reads chunk
    # by chunk in this thread: less memory than a thread pool, and inside a Dask worker it never
    # hands the read back to the cluster.
    block_arr = scan.frames[layer, int(idx[0]) : int(idx[-1]) + 1] if np.all(np.diff(idx) == 1) else scan.frames[layer][idx]
    return np.asarray(block_arr.compute(scheduler="synchronous"))


def layer_context(scan: Scan, layer: int, patch_size: int, block: int | None = None, keep: bool = True):
    """The rocking-curve context of one layer (core.classification.scan_context.LayerContext), read block by block.

    Returns ``(context, blocks)``: ``blocks`` holds the frames read, in blocks of ``block`` valid
    frames, when the layer fits in KEEP_LAYER_BYTES (else None, and the caller reads them again).
    """
    from .scan_context import ContextAccumulator

    valid = np.flatnonzero(scan.valid_frames(layer))
    step = block or block_frames(scan)
    itemsize = np.dtype(scan.frames.dtype).itemsize
    keep = keep and len(valid) * scan.frame_shape[0] * scan.frame_shape[1] * itemsize <= KEEP_LAYER_BYTES
    acc = ContextAccumulator(scan.n_frames, scan.frame_shape, patch_size)
    blocks: list[np.ndarray] = []
    for start in range(0, len(valid), step):
        idx = valid[start : start + step]
        frames = _read_block(scan, layer, idx)
        _check_finite(frames, scan, layer, idx)
        for j, i in enumerate(idx):
            acc.add(int(i), frames[j], float(scan.angles[layer, i]))
        if keep:
            blocks.append(frames)
    return acc.context(), (blocks if keep else None)


def _check_finite(frames: np.ndarray, scan: Scan, layer: int, idx: np.ndarray) -> None:
    for j in range(len(frames)) if frames.dtype.kind == "f" else ():
        check_finite(frames[j], f"{scan.source}: layer {layer} frame {int(idx[j])}")


def classify_layer(
    scan: Scan, layer: int, classifier: FrameClassifier, block: int | None = None, with_context: bool = False,
) -> tuple:
    """Classify every patch of every frame of one layer, reading it lazily a few frames at a time.

    Returns ``(label uint8, prob_wb float32)``, each (frames, grid_rows, grid_cols); padding frames
    (NaN angle) are 0 / NaN. ``with_context=True`` adds the layer's patch curves (frames, gr, gc)
    and levels (dark, bright, noise), as PredictionWriter.write_layer takes them.
    """
    label = prob = None
    out: dict = {}
    for _, label, prob in iter_classify_layer(scan, layer, classifier, block, out):
        pass
    assert label is not None and prob is not None
    if not with_context:
        return label, prob
    return (label, prob) + context_arrays(out.get("context"))


def context_arrays(ctx) -> tuple:
    """(curves float32, levels float64 (3,)) of a LayerContext, or (None, None)."""
    if ctx is None:
        return None, None
    return ctx.curves.astype(np.float32), np.array([ctx.dark, ctx.bright, ctx.noise], np.float64)
