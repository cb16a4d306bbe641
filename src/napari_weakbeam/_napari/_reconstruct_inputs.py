"""What the Reconstruct widget reconstructs: the scan (the session's, or the selected image layer's)
and where its weak-beam labels come from (the predictions shown, or a classifier on the fly)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import WeakbeamError
from ._layers import as4d
from ._scan_layer import scan_from_layer

if TYPE_CHECKING:
    from ._session import Session

LABEL_SOURCES = ("predictions layer, else classify", "classify on the fly", "no labels (every frame)")


@dataclass
class LabelArray:
    """Predictions held in memory (e.g. a napari Labels layer): ``.label`` 4D and ``.patch_size``."""

    label: np.ndarray
    patch_size: int


def scan_layer(session: Session) -> Any:
    """The Image layer of the scan: the session's, else the selected (or the only) 3D/4D image."""
    if session.scan_layer is not None:
        return session.scan_layer
    from napari.layers import Image

    layers = session.viewer.layers
    images = [l for l in layers if isinstance(l, Image) and l.ndim in (3, 4) and not l.name.startswith("reconstruction")]
    active = layers.selection.active
    return active if active in images else (images[0] if len(images) == 1 else None)


def scan_to_reconstruct(session: Session) -> Any:
    """The session's scan, or the Scan of the selected / only image layer."""
    if session.scan is not None:
        return session.scan
    layer = scan_layer(session)
    if layer is None:
        raise WeakbeamError("no scan: open a scan (File > Open, or a sample) and select its image layer")
    return scan_from_layer(layer)


def label_source(session: Session, scan: Any, choice: int) -> Any:
    """The labels of ``LABEL_SOURCES[choice]``: the predictions shown (when they cover every frame),
    else the session's classifier (or the shipped default) at the patch size; None: every frame."""
    if choice == 2:
        return None
    pred = session.predictions if session.scan is scan else None
    if choice == 0 and pred is not None:
        label = np.asarray(as4d(pred.data))
        valid = np.isfinite(scan.angles)
        if label.shape[:2] == valid.shape and np.all(label[valid].reshape(int(valid.sum()), -1).any(axis=1)):
            return LabelArray(label.copy(), int(session.patch_size))
    clf = session.classifier
    if clf is None:
        from ..core.classification.modelfile import load_default_model

        clf = load_default_model()
    patch = session.patch_size if session.scan is scan else clf.patch_size
    return clf.with_patch_size(int(patch)) if hasattr(clf, "with_patch_size") else clf


DRIFT_FROM_LINES = "from the lines (up to a linear trend)"


def drift_reference_choices(viewer: Any) -> list[str]:
    """The Drift combo's items: the lines, then each Shapes layer (a rectangle drawn around a
    static non-diffracting feature: a marker, a pore, the sample's edge)."""
    from napari.layers import Shapes

    return [DRIFT_FROM_LINES] + [layer.name for layer in viewer.layers if isinstance(layer, Shapes)]


def drift_box(shapes: Any, image: Any) -> tuple[int, int, int, int]:
    """The box (row0, row1, col0, col1) in the scan's pixels around the first shape of the Shapes
    layer ``shapes``, through the world coordinates (um) that ``image`` (the scan's layer) is
    shown in; WeakbeamError where the layer holds no shape."""
    if not len(shapes.data):
        raise WeakbeamError(f"the Shapes layer {shapes.name!r} holds no shape: draw a rectangle around a static "
                            "non-diffracting feature (marker, pore, sample edge) seen in every layer")
    pts = np.asarray(shapes.data[0], dtype=np.float64)
    world = pts[:, -2:] * np.asarray(shapes.scale[-2:]) + np.asarray(shapes.translate[-2:])
    pix = (world - np.asarray(image.translate[-2:])) / np.asarray(image.scale[-2:])
    lo, hi = np.floor(pix.min(axis=0)), np.ceil(pix.max(axis=0)) + 1
    return int(max(lo[0], 0)), int(hi[0]), int(max(lo[1], 0)), int(hi[1])
