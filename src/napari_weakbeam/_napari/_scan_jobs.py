"""Predicting the frame in view with the scan-aware model, in its layer's rocking-curve context
(read once, then cached for a few layers). No Qt here: it runs in napari thread workers."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

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
