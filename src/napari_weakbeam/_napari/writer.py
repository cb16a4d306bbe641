"""napari writer: an annotation Labels layer -> an annotation file (core.classification.annotations, atomic)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ..core.classification.annotations import Annotations, save_annotations
from ..core.errors import WeakbeamError
from ..core.scanfiles.nexus import pixel_um
from ._layers import PATCH_KEY, as4d
from ._scan_layer import SCAN_KEY


def layer_to_annotations(data: Any, metadata: dict) -> Annotations:
    """Build :class:`Annotations` from a patch-resolution Labels layer's data and metadata (the
    patch size and the scan's plain description the session writes there)."""
    patch_size = metadata.get(PATCH_KEY)
    scan = metadata.get(SCAN_KEY)
    if patch_size is None or not isinstance(scan, dict):
        raise WeakbeamError(
            "this Labels layer is not a weak-beam annotation layer (make one with the Annotate widget)"
        )
    label = as4d(np.asarray(data))
    described = SimpleNamespace(pixel_size=scan.get("pixel_size"), layer_positions=scan["layer_positions"],
                                metadata=scan.get("metadata") or {})
    return Annotations(
        label=label.astype(np.uint8),
        patch_size=int(patch_size),
        frame_shape=tuple(scan["frame_shape"]),
        angles=np.asarray(scan["angles"], dtype=float),
        layer_positions=np.asarray(scan["layer_positions"], dtype=float),
        source=scan.get("source", ""),
        scan_names=list(scan.get("scan_names") or []),
        pixel_um=pixel_um(described),
    )


def write_annotations(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer: save the annotation layer to ``path`` (HDF5, atomic)."""
    ann = layer_to_annotations(data, meta.get("metadata", {}))
    save_annotations(path, ann)
    return [path]
