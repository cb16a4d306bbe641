"""Whole-scan classification and reconstruction mapped over layers with :mod:`.distributed`.

The same per-layer functions as the one-process paths (``classify_layer``, ``reconstruct_layer``)
run where each layer is read; the client writes the results per layer, so progress is reported as
layers complete and ``resume`` continues an interrupted run.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any, Callable, Iterator


from .distributed import LayerTask, ScanSpec, iter_layer_results, map_layers, open_client
from ..classification.predictions import PredictionWriter, PredictProgress, classify_layer
from ..reconstruction.reconstruct import ReconstructionParams, layer_labels, prepare_params, process_layer, reconstruct_one
from ..scanfiles.scan import Scan


def _load_classifier(payload: bytes, device: str) -> Any:
    """Worker side: the classifier from its bytes, on this worker's device (GPU when ``auto``)."""
    from ..classification.modelfile import classifier_from_bytes

    return classifier_from_bytes(payload).to(device)


def _classify(scan: Scan, layer: int, classifier: Any) -> tuple[Any, ...]:
    return classify_layer(scan, layer, classifier, with_context=True)


def classify_task(classifier: Any, device: str = "auto") -> LayerTask:
    """The per-layer classification task; the model travels once per worker as bytes."""
    from ..classification.modelfile import classifier_to_bytes

    return LayerTask(_classify, classifier_to_bytes(classifier), _load_classifier, device)


def iter_classify_layers(
    scan: Scan,
    classifier: Any,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    layers: Any = None,
    device: str = "auto",
) -> Iterator[tuple[int, Any, Any]]:
    """Yield ``(layer, label, prob)`` for each layer as it completes, on a cluster or in-process.

    No file is written: for the napari "Predict all", which shows layers as they arrive.
    ``scheduler`` connects (one-line error if unreachable); closing the generator cancels the rest.
    """
    task = classify_task(classifier, device)
    todo = range(scan.n_layers) if layers is None else layers
    with open_client(scheduler=scheduler, workers=workers, client=client) as c:
        source: Scan | ScanSpec = scan if c is None else ScanSpec.from_scan(scan)
        with contextlib.closing(iter_layer_results(task, source, todo, client=c)) as results:
            for layer, (label, prob, *_) in results:
                yield layer, label, prob


def iter_predict_scan_distributed(
    scan: Scan,
    classifier: Any,
    out_path: str | os.PathLike,
    *,
    client: Any = None,
    resume: bool = False,
    device: str = "auto",
    model: str = "",
) -> Iterator[PredictProgress]:
    """Classify every layer on ``client``'s workers (this process if None) into ``out_path``.

    Yields a :class:`PredictProgress` (``layer_finished=True``) each time a layer is written;
    closing the generator cancels the layers in flight and keeps the finished ones for
    ``resume=True``. The file is the same as :func:`predict_scan` writes, bit for bit in labels.
    """
    task = classify_task(classifier, device)
    spec_or_scan: Scan | ScanSpec = scan if client is None else ScanSpec.from_scan(scan)
    with PredictionWriter(out_path, scan, classifier.patch_size, resume=resume, model=model) as writer:
        n_before = len(writer.done_layers()) if resume else 0
        for layer, done, _ in map_layers(
            task, spec_or_scan, range(scan.n_layers), writer, client=client, resume=resume
        ):
            yield PredictProgress(
                layer, scan.n_frames, scan.n_frames, n_before + done, scan.n_layers, layer_finished=True
            )


def predict_scan_distributed(
    scan: Scan,
    classifier: Any,
    out_path: str | os.PathLike,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    progress: Callable[[PredictProgress], Any] | None = None,
    device: str = "auto",
    model: str = "",
) -> Path:
    """Like :func:`predict_scan`, with the layers on a Dask cluster.

    ``client`` (an open ``distributed.Client``), or ``scheduler`` (an address such as
    ``tcp://host:8786``), or ``workers`` (a LocalCluster of N processes started and stopped here);
    none of them: one process. ``progress(PredictProgress)`` is called as each layer completes.
    """
    with open_client(scheduler=scheduler, workers=workers, client=client) as c:
        for event in iter_predict_scan_distributed(
            scan, classifier, out_path, client=c, resume=resume, device=device, model=model
        ):
            if progress is not None:
                progress(event)
    return Path(out_path)


# -- reconstruction -----------------------------------------------------------------------------


def _reconstruct(
    scan: Scan,
    layer: int,
    classifier: Any,
    *,
    params: ReconstructionParams,
    labels: Any = None,
    frame: int | None = None,
) -> Any:
    """One layer's LayerResult: labels given, or classified here by ``classifier``, or none."""
    if params.method == "manual":
        return process_layer(scan, layer, params, frame=frame)
    if classifier is not None:
        return reconstruct_one(scan, layer, classifier, params)
    return process_layer(scan, layer, params, labels)


def reconstruct_task(
    scan: Scan,
    predictions: Any,
    params: ReconstructionParams,
    device: str = "auto",
    frames: list[int] | None = None,
) -> LayerTask:
    """The per-layer reconstruction task for labels from ``predictions``.

    ``predictions``: a Predictions object (each layer's labels travel with its task), a Classifier
    (sent once per worker, layers classified where they are read) or None (every pixel is WB).
    ``frames``: the manual method's frame per layer (-1 or None: the default rule).
    """
    params = prepare_params(scan, predictions, params)
    func = functools.partial(_reconstruct, params=params)
    if params.method == "manual":
        picks = list(frames) if frames is not None else None
        return LayerTask(func, layer_kwargs=lambda i: {"frame": _pick(picks, i)})
    if predictions is None:
        return LayerTask(func)
    if hasattr(predictions, "label"):  # the same labels as in one process: WB probabilities where known
        return LayerTask(func, layer_kwargs=lambda i: {"labels": layer_labels(predictions, scan, i)[0]})
    from ..classification.modelfile import classifier_to_bytes

    return LayerTask(func, classifier_to_bytes(predictions), _load_classifier, device)


def _pick(frames: list[int] | None, layer: int) -> int | None:
    if frames is None or frames[layer] is None or frames[layer] < 0:
        return None
    return int(frames[layer])


def iter_reconstruct_layers(
    scan: Scan,
    predictions: Any,
    params: ReconstructionParams,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    device: str = "auto",
    frames: list[int] | None = None,
) -> Iterator[Any]:
    """Yield each layer's ``LayerResult`` as it completes (any order; ``.index`` says which).

    A drop-in for ``reconstruct.iter_reconstruct_scan`` that runs on a cluster (for the napari
    "Reconstruct"); no file is written. Closing the generator cancels the rest.
    """
    task = reconstruct_task(scan, predictions, params, device, frames)
    with open_client(scheduler=scheduler, workers=workers, client=client) as c:
        source: Scan | ScanSpec = scan if c is None else ScanSpec.from_scan(scan)
        with contextlib.closing(iter_layer_results(task, source, range(scan.n_layers), client=c)) as results:
            for _, result in results:
                yield result


def iter_reconstruct_scan_distributed(
    scan: Scan,
    predictions: Any,
    params: ReconstructionParams,
    out_path: str | os.PathLike,
    *,
    client: Any = None,
    resume: bool = False,
    device: str = "auto",
    frames: list[int] | None = None,
) -> Iterator[tuple[int, int]]:
    """Reconstruct every layer on ``client``'s workers (this process if None) into ``out_path``.

    Yields ``(layers_done, n_layers)`` as each layer is written; the file (volume, mask, skeleton,
    points in micrometres) is finished when the generator ends. Closing it early keeps the
    finished layers for ``resume=True``.
    """
    from ..reconstruction.reconstruction_io import ReconstructionWriter

    task = reconstruct_task(scan, predictions, params, device, frames)
    spec_or_scan: Scan | ScanSpec = scan if client is None else ScanSpec.from_scan(scan)
    with ReconstructionWriter(out_path, scan, params, resume=resume) as writer:
        n_before = len(writer.done_layers()) if resume else 0
        for _, done, _ in map_layers(
            task, spec_or_scan, range(scan.n_layers), writer, client=client, resume=resume
        ):
            yield n_before + done, scan.n_layers


def reconstruct_scan_distributed(
    scan: Scan,
    predictions: Any,
    params: ReconstructionParams,
    out_path: str | os.PathLike,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    progress: Callable[[int, int], Any] | None = None,
    device: str = "auto",
    frames: list[int] | None = None,
) -> Path:
    """Like :func:`reconstruct_scan` written to ``out_path``, with the layers on a Dask cluster.

    ``client``, ``scheduler`` or ``workers`` as in :func:`predict_scan_distributed`;
    ``progress(done, total)`` is called as each layer completes. Returns the finished file
    (read it with ``reconstruction_io.load_reconstruction``).
    """
    with open_client(scheduler=scheduler, workers=workers, client=client) as c:
        for done, total in iter_reconstruct_scan_distributed(
            scan, predictions, params, out_path, client=c, resume=resume, device=device, frames=frames
        ):
            if progress is not None:
                progress(done, total)
    return Path(out_path)
