"""Worker bodies that use a layer's rocking-curve context: predicting a frame in view with the
scan-aware model, the physics self-check, and "Adapt to this scan". No Qt here: these run in
napari thread workers and return plain results."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

#: Layers whose context is kept (the frame-in-view predictions read a layer once, then reuse it).
_CACHE: "OrderedDict[tuple, Any]" = OrderedDict()
CACHE_LAYERS = 4


def cached_layer_context(scan: Any, layer: int, patch_size: int) -> Any:
    """The LayerContext of ``layer`` (one read of the layer, then cached for a few layers)."""
    from ..core.classification.predictions import layer_context

    key = (id(scan), str(scan.source), int(layer), int(patch_size))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    ctx, _ = layer_context(scan, layer, patch_size, keep=False)
    _CACHE[key] = ctx
    while len(_CACHE) > CACHE_LAYERS:
        _CACHE.popitem(last=False)
    return ctx


def predict_in_context(scan: Any, layer: int, frame: int, classifier: Any) -> tuple[np.ndarray, np.ndarray]:
    """(label, prob) of one frame; a scan-aware model reads it in its layer's rocking-curve context."""
    from ..core.classification.predictions import MIN_CONTEXT_FRAMES

    image = scan.frame(layer, frame)
    if getattr(classifier, "scan_aware", False) and int(scan.valid_frames(layer).sum()) >= MIN_CONTEXT_FRAMES:
        ctx = cached_layer_context(scan, layer, classifier.patch_size)
        return classifier.predict_frame(image, ctx, frame)
    return classifier.predict_frame(image)


def layer_self_check(ctx: Any, prob: np.ndarray) -> Any:
    """The physics self-check of one layer (core.classification.self_check.SelfCheck), or None without a context."""
    if ctx is None:
        return None
    from ..core.classification.self_check import check_layer

    return check_layer(ctx, prob)


def adapt_job(scan: Any, classifier: Any, patch_size: int, epochs: int = 15) -> Iterator[Any]:
    """Fine-tune ``classifier`` (None: the shipped default) on the rocking-curve aid's confident
    labels of ``scan``; yields TrainProgress, returns the adapted classifier."""
    from ..core.classification.adapt import adapt_trainer
    from ..core.classification.training import TrainConfig

    start = classifier.with_patch_size(patch_size) if classifier is not None else "default"
    trainer = adapt_trainer(scan, TrainConfig(start=start, patch_size=patch_size, epochs=epochs, device="auto"))
    for event in trainer.run():
        yield event
    return trainer.classifier
