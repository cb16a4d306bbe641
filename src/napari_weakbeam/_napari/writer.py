"""napari writer: an annotation Labels layer -> an annotation file (core.classification.annotations, atomic)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.classification.annotations import Annotations, save_annotations
from ..core.errors import WeakbeamError
from ..core.scanfiles.nexus import pixel_um
from ._layers import PATCH_KEY, SCAN_KEY, as4d


def layer_to_annotations(data: Any, metadata: dict) -> Annotations:
    """Build :class:`Annotations` from a patch-resolution Labels layer's data and metadata."""
    patch_size = metadata.get(PATCH_KEY)
    scan = metadata.get(SCAN_KEY)
    if patch_size is None or scan is None:
        raise WeakbeamError(
            "this Labels layer is not a weak-beam annotation layer (make one with the Annotate widget)"
        )
    label = as4d(np.asarray(data))
    return Annotations(
        label=label.astype(np.uint8),
        patch_size=int(patch_size),
        frame_shape=tuple(scan.frame_shape),
        angles=scan.angles,
        layer_positions=scan.layer_positions,
        source=scan.source,
        scan_names=list(scan.scan_names),
        pixel_um=pixel_um(scan),
    )


def write_annotations(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer: save the annotation layer to ``path`` (HDF5, atomic)."""
    ann = layer_to_annotations(data, meta.get("metadata", {}))
    save_annotations(path, ann)
    return [path]
