"""Classify a whole scan: every patch of every frame as weak beam or strong beam."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.classification.predictions import Predictions, PredictionWriter, context_arrays, iter_classify_layer
from ..core.patches import grid_shape
from ..core.classification.self_check import check_layer
from ..core.distribution.distributed import ScanSpec, iter_layer_results
from ..core.distribution.distributed_tasks import classify_task
from .progress import Progress, Workflow


@dataclass(frozen=True)
class LayerLabels:
    """The payload of classification events: one layer's labels so far.

    ``label`` (uint8) and ``prob`` (float32 P(WB)) are (frames, grid_rows, grid_cols); during a
    layer ("frames" events) they are filled in place as blocks are classified: copy to keep.
    ``check`` is the layer's physics self-check (core.classification.self_check.SelfCheck), on the
    "layers" event of a layer classified in this process with its rocking-curve context, else None.
    """

    layer: int
    label: np.ndarray
    prob: np.ndarray
    check: Any = None


def classify_scan(
    scan: Any,
    classifier: Any,
    out: str | os.PathLike | None = None,
    *,
    client: Any = None,
    resume: bool = False,
    model: str = "",
    layers: list[int] | None = None,
    known: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    device: str = "auto",
    self_check: bool = False,
) -> Workflow[Any]:
    """Classify ``layers`` of ``scan`` (default all) with ``classifier``; write ``out`` if given.

    Yields a "frames" :class:`Progress` per block of frames (in this process only) and a "layers"
    one per finished layer, each with a :class:`LayerLabels` payload. ``client``: a Dask client
    whose workers classify whole layers (they reopen the scan from its file). ``resume``: keep the
    layers an interrupted run finished in ``out``. ``known``: labels already computed (layer ->
    (label, prob)), written as they are. ``self_check``: each layer classified here with its
    rocking-curve context carries its physics self-check. Closing the generator cancels; ``out`` appears only when
    every layer is done (the finished ones stay for ``resume``). Returns ``out`` once complete (else
    None); without ``out``, the Predictions in memory (layers not asked for are 0 / NaN).
    """
    writer = PredictionWriter(out, scan, classifier.patch_size, resume=resume, model=model) if out is not None else None
    with writer if writer is not None else contextlib.nullcontext():
        finished = set(writer.done_layers()) if writer is not None else set()
        todo = [int(i) for i in (range(scan.n_layers) if layers is None else layers) if int(i) not in finished]
        total = len(finished) + len(todo)
        memory = _InMemory(scan, classifier.patch_size, model) if writer is None else None
        results = (_in_process(scan, classifier, todo, known or {}, self_check) if client is None
                   else _on_client(scan, classifier, todo, client, device))
        with contextlib.closing(results):
            for item in results:
                if isinstance(item, Progress):
                    yield item
                    continue
                layer, result, check = item
                if writer is not None:
                    writer.write_layer(layer, *result)
                else:
                    memory.add(layer, result)
                finished.add(layer)
                yield Progress("layers", len(finished), total, _layer_name(scan, layer),
                               LayerLabels(layer, result[0], result[1], check))
    if writer is None:
        return memory.predictions
    return Path(out) if len(finished) == scan.n_layers else None


class _InMemory:
    """The Predictions of a classification without a file, filled layer by layer."""

    def __init__(self, scan: Any, patch_size: int, model: str):
        shape = (scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, patch_size)
        self.predictions = Predictions(
            np.zeros(shape, np.uint8), np.full(shape, np.nan, np.float32), int(patch_size),
            np.asarray(scan.angles, np.float64), np.asarray(scan.layer_positions, np.float64), str(scan.source),
            tuple(scan.frame_shape), list(scan.scan_names), np.zeros(scan.n_layers, bool), model,
            np.full(shape, np.nan, np.float32), np.full((scan.n_layers, 3), np.nan))

    def add(self, layer: int, result: tuple) -> None:
        pred = self.predictions
        pred.label[layer], pred.prob[layer] = result[0], result[1]
        if len(result) > 2 and result[2] is not None:
            pred.curves[layer], pred.levels[layer] = result[2], result[3]
        pred.layer_done[layer] = True


def _layer_name(scan: Any, layer: int) -> str:
    return f"layer {layer + 1}/{scan.n_layers}"


def _in_process(scan: Any, classifier: Any, todo: list[int], known: dict, self_check: bool):
    """Per block: Progress; per layer: (layer, (label, prob, curves, levels), self-check)."""
    for layer in todo:
        if layer in known:
            yield layer, tuple(known[layer]), None
            continue
        ctx: dict = {}
        label = prob = None
        for frames_done, label, prob in iter_classify_layer(scan, layer, classifier, context_out=ctx):
            yield Progress("frames", frames_done, scan.n_frames, _layer_name(scan, layer), LayerLabels(layer, label, prob))
        context = ctx.get("context")
        check = check_layer(context, prob) if self_check and context is not None else None
        yield layer, (label, prob) + context_arrays(context), check


def _on_client(scan: Any, classifier: Any, todo: list[int], client: Any, device: str):
    """Whole layers from the cluster's workers, in the order they finish."""
    with contextlib.closing(iter_layer_results(classify_task(classifier, device), ScanSpec.from_scan(scan), todo,
                                               client=client)) as results:
        for layer, result in results:
            yield layer, tuple(result), None
