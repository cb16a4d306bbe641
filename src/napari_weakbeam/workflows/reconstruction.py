"""Reconstruct the dislocations of a whole scan in 3D, into a file or in memory."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

from ..core.errors import WeakbeamError
from ..core.distribution.distributed import ScanSpec, iter_layer_results
from ..core.distribution.distributed_tasks import reconstruct_task
from ..core.reconstruction.reconstruct import (
    Reconstruction,
    ReconstructionParams,
    assemble,
    layer_points_um,
    prepare_params,
    voxel_size,
)
from ..core.reconstruction.reconstruction_io import ReconstructionWriter, load_reconstruction
from .progress import Progress, Workflow


def reconstruct_scan(
    scan: Any,
    labels: Any = None,
    params: ReconstructionParams = ReconstructionParams(),
    out: str | os.PathLike | None = None,
    *,
    client: Any = None,
    resume: bool = False,
    frames: list[int] | None = None,
    layers: list[int] | None = None,
    keep_volume: bool = True,
    device: str | None = None,
) -> Workflow[Reconstruction]:
    """Reconstruct ``layers`` of ``scan`` (default all), one layer in memory at a time.

    ``labels``: a Predictions object (``.label``, ``.patch_size``), a Classifier (layers classified
    on the fly where they are read) or None (every pixel counts as WB). ``frames``: the manual
    method's frame per layer (negative: the default rule). ``client``: a Dask client whose workers
    reconstruct whole layers. Yields a "layers" :class:`Progress` per layer with its
    ``LayerResult`` as payload. ``device``: where a Classifier runs (default: its own device in
    this process, ``auto`` on workers).

    With ``out`` the layers are written to that reconstruction file as they finish (``resume``
    keeps those an interrupted run finished) and the result holds the points and lines, the
    volumes staying in the file. Without it the result holds everything (``keep_volume=False``:
    the points only, memory bounded by one layer). Closing the generator cancels.
    """
    asked, params = params, prepare_params(scan, labels, params)
    if frames is not None and len(frames) != scan.n_layers:
        raise WeakbeamError(f"{len(frames)} picked frames for {scan.n_layers} layers (one per layer)")
    if device is None:
        device = str(getattr(labels, "device", "auto")) if client is None else "auto"
    task = reconstruct_task(scan, labels, params, device, frames)
    todo = list(range(scan.n_layers)) if layers is None else [int(i) for i in layers]
    writer = ReconstructionWriter(out, scan, asked, resume=resume) if out is not None else None
    with writer if writer is not None else contextlib.nullcontext():
        finished = set(writer.done_layers()) if writer is not None else set()
        todo = [i for i in todo if i not in finished]
        total = len(finished) + len(todo)
        store = _LayerStore(scan, params, keep_volume and writer is None)
        source = scan if client is None else ScanSpec.from_scan(scan)
        with contextlib.closing(iter_layer_results(task, source, todo, client=client)) as results:
            for layer, res in results:
                if writer is not None:
                    writer.write_layer(layer, res)
                store.add(res)
                finished.add(layer)
                yield Progress("layers", len(finished), total, f"layer {layer + 1}/{scan.n_layers}", res)
    if writer is not None:  # None when some layers are still to do (``layers``, or cancelled)
        return load_reconstruction(out, volumes=False) if len(finished) == scan.n_layers else None
    return store.assemble(todo)


class _LayerStore:
    """The per-layer results of an in-memory reconstruction, assembled at the end."""

    def __init__(self, scan: Any, params: ReconstructionParams, keep_volume: bool):
        self.scan, self.params, self.keep = scan, params, keep_volume
        shape = ((scan.n_layers if keep_volume else 0),) + tuple(scan.frame_shape)
        self.volume = np.zeros(shape, dtype=np.float32)
        self.mask = np.zeros(shape, dtype=bool)
        self.skel = np.zeros(shape, dtype=bool)
        self.used = np.full(scan.n_layers, -1, dtype=np.int64)
        self.noise = np.full((scan.n_layers, 2), np.nan)
        self.reg: list[np.ndarray | None] = [None] * scan.n_layers
        self.tails: list[np.ndarray | None] = [None] * scan.n_layers
        self.counts: list[np.ndarray | None] = [None] * scan.n_layers
        self.wb_frames = np.zeros(scan.n_layers, dtype=np.int64)
        self.defects = np.zeros((scan.n_layers, 2), dtype=np.int64)
        self.points: list[np.ndarray] = []

    def add(self, res: Any) -> None:
        i = res.index
        if self.keep:
            self.volume[i], self.mask[i], self.skel[i], self.reg[i] = res.map, res.mask, res.skeleton, res.reg
            self.tails[i], self.counts[i], self.wb_frames[i] = res.tails, res.counts, res.wb_frames
        else:
            voxel = voxel_size(self.scan)
            self.points.append(layer_points_um(res.point_voxels(self.params), float(self.scan.layer_positions[i]), voxel))
        self.used[i] = res.frame_used
        self.noise[i] = res.noise
        self.defects[i] = res.defects

    def assemble(self, layers: list[int]) -> Reconstruction:
        if not self.keep:  # only the provisional points: no volumes to segment or trace
            rec = assemble(self.volume, self.mask, self.skel, self.scan, self.params, self.used, self.points)
        else:
            rec = assemble(self.volume, self.mask, self.skel, self.scan, self.params, self.used,
                           noise=self.noise, reg=self.reg, layers=layers, tails=self.tails, counts=self.counts,
                           wb_frames=self.wb_frames)
        rec.defects = self.defects.copy()
        return rec
