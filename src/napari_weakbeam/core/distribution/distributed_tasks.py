"""The per-layer tasks of classification and reconstruction, for :mod:`.distributed`.

A :class:`~.distributed.LayerTask` runs in this process or on a worker, where the layer is read.
The workflows (napari_weakbeam.workflows) map them over the layers of a scan.
"""

from __future__ import annotations

import functools
from typing import Any

from .distributed import LayerTask
from ..classification.predictions import classify_layer
from ..reconstruction.reconstruct import (
    ReconstructionParams,
    layer_labels,
    manual_frame,
    prepare_params,
    process_layer,
    reconstruct_one,
)
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
        return LayerTask(func, layer_kwargs=lambda i: {"frame": manual_frame(picks, i)})
    if predictions is None:
        return LayerTask(func)
    if hasattr(predictions, "label"):  # the same labels as in one process: WB probabilities where known
        return LayerTask(func, layer_kwargs=lambda i: {"labels": layer_labels(predictions, scan, i)[0]})
    from ..classification.modelfile import classifier_to_bytes

    return LayerTask(func, classifier_to_bytes(predictions), _load_classifier, device)
