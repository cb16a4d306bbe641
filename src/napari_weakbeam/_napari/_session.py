"""Per-viewer state shared by the weak-beam widgets: the scan layer, the patch size, the annotation,
suggestion and prediction layers, and the current classifier.

One :class:`Session` per viewer (keyed by the viewer object's identity and dropped when the viewer
is garbage collected), so two viewers in one process never mix their labels. Widgets talk to each
other through the session's signals, never directly.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from psygnal import Signal

from ..core.errors import WeakbeamError
from ..core.patches import grid_shape
from ..core.scanfiles.scan import Scan
from ._layers import PATCH_KEY, SCAN_KEY, add_patch_image, add_patch_labels, as4d, scan_from_layer

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

NO_SCAN = (
    "no scan layer: open a scan (File > Open, or File > Open Sample > Weak beam DFXM) and pick it "
    "in the Annotate widget"
)
DEFAULT_PATCH_SIZE = 64


class Session:
    """What the widgets of one viewer share."""

    scan_changed = Signal()
    labels_changed = Signal()
    classifier_changed = Signal(object)  # the new classifier (after an epoch, a load, a training)
    predictions_changed = Signal()
    suggestions_changed = Signal()
    patch_picked = Signal(int, int, int)  # layer, grid row, grid col (for the rocking curve)

    def __init__(self, viewer: "napari.Viewer"):
        self._viewer = weakref.ref(viewer)
        self.scan_layer: Image | None = None
        self.scan: Scan | None = None
        self.patch_size: int = DEFAULT_PATCH_SIZE
        self.classifier: Any | None = None
        self.classifier_source: str = ""
        from ._overlays import FrameContrast, PatchMarks

        self.marks = PatchMarks(self)  # outlines / diamonds of predictions / suggestions
        self.contrast = FrameContrast(self)  # per-frame auto contrast of the scan

    # -- layers -------------------------------------------------------------------------------
    @property
    def viewer(self) -> "napari.Viewer":
        viewer = self._viewer()
        if viewer is None:  # pragma: no cover - widgets die with their viewer
            raise RuntimeError("the viewer of this session was closed")
        return viewer

    def _names(self) -> dict[str, str]:
        base = self.scan_layer.name if self.scan_layer is not None else "scan"
        return {
            "annotations": f"{base} annotations",
            "suggestions": f"{base} suggested labels",
            "predictions": f"{base} predictions",
            "probability": f"{base} P(weak beam)",
        }

    def _layer(self, kind: str) -> Any | None:
        if self.scan_layer is None:
            return None
        name = self._names()[kind]
        return self.viewer.layers[name] if name in self.viewer.layers else None

    @property
    def annotations(self) -> "Labels | None":
        return self._layer("annotations")

    @property
    def suggestions(self) -> "Labels | None":
        return self._layer("suggestions")

    @property
    def predictions(self) -> "Labels | None":
        return self._layer("predictions")

    @property
    def probability(self) -> "Image | None":
        return self._layer("probability")

    def require_scan(self) -> Scan:
        """The scan, or a one-line error saying how to get one (open one, or start annotating the
        scan already open)."""
        if self.scan is None or self.scan_layer is None or self.scan_layer not in self.viewer.layers:
            from napari.layers import Image

            open_scans = [layer.name for layer in self.viewer.layers
                          if isinstance(layer, Image) and layer.ndim in (3, 4)
                          and not layer.name.endswith("P(weak beam)")]
            if open_scans:
                raise WeakbeamError(
                    f"scan {open_scans[0]!r} is open but not in use yet: press 'Start annotating' in the "
                    f"Annotate tab to choose it and its patch size"
                )
            raise WeakbeamError(NO_SCAN)
        return self.scan

    @contextmanager
    def keep_selection(self) -> Iterator[None]:
        """Adding a layer selects it in napari: keep the user's selection (painting, W/S/C keys)."""
        selection = self.viewer.layers.selection
        active = selection.active
        try:
            yield
        finally:
            if active is not None and active in self.viewer.layers and selection.active is not active:
                selection.active = active

    def set_scan_layer(self, layer: "Image", patch_size: int) -> "Labels":
        """Use ``layer`` as the scan at ``patch_size``; return its annotation layer (added if new)."""
        scan = scan_from_layer(layer)
        existing = self._existing_annotations(layer)
        if existing is not None and existing.metadata.get(PATCH_KEY) != patch_size:
            if np.any(existing.data):
                raise WeakbeamError(
                    f"layer {existing.name!r} holds labels at patch size {existing.metadata.get(PATCH_KEY)}; "
                    f"save them and delete the layer before switching to patch size {patch_size}"
                )
        self.scan_layer, self.scan, self.patch_size = layer, scan, int(patch_size)
        if existing is not None and existing.metadata.get(PATCH_KEY) == patch_size:
            labels = existing
        else:
            labels = add_patch_labels(self.viewer, layer, patch_size, self._names()["annotations"])
        labels.metadata[SCAN_KEY] = scan
        labels.brush_size = 1
        labels.mode = "paint"
        labels.selected_label = 1
        for kind in ("predictions", "probability", "suggestions"):
            old = self._layer(kind)
            if old is not None and old.metadata.get(PATCH_KEY, patch_size) != patch_size:
                self.viewer.layers.remove(old)
        self.viewer.layers.selection.active = labels
        self.scan_changed.emit()
        self.labels_changed.emit()
        return labels

    def _existing_annotations(self, layer: "Image") -> "Labels | None":
        name = f"{layer.name} annotations"
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def require_annotations(self) -> "Labels":
        self.require_scan()
        labels = self.annotations
        if labels is None:
            raise WeakbeamError("no annotation layer: press 'Start annotating' in the Annotate widget")
        return labels

    def ensure_predictions(self) -> tuple["Labels", "Image"]:
        """The predictions Labels layer and the P(weak beam) image (added, empty, if missing)."""
        self.require_scan()
        assert self.scan_layer is not None
        with self.keep_selection():
            return self._ensure_predictions()

    def _ensure_predictions(self) -> tuple["Labels", "Image"]:
        assert self.scan_layer is not None
        pred = self.predictions
        if pred is None:
            pred = add_patch_labels(
                self.viewer, self.scan_layer, self.patch_size, self._names()["predictions"], opacity=0.45
            )
            pred.editable = False  # read-only: "Promote" copies a frame into the annotations to correct it
            pred.visible = False  # the data; drawn as outlines by PatchMarks (tell it from the labels)
        prob = self.probability
        if prob is None:
            shape = self.label_shape()
            empty = np.zeros(shape, dtype=np.float32)
            prob = add_patch_image(self.viewer, self.scan_layer, self.patch_size, self._names()["probability"], empty)
            prob.metadata[PATCH_KEY] = self.patch_size
        self.marks.update()  # the outline layer now, not mid-training (adding a layer costs ~0.2 s)
        # Keep the annotation layer on top so painting stays visible over the predictions.
        ann = self.annotations
        if ann is not None:
            layers = self.viewer.layers
            layers.move(layers.index(ann), len(layers))
        return pred, prob

    def ensure_suggestions(self) -> "Labels":
        self.require_scan()
        assert self.scan_layer is not None
        layer = self.suggestions
        if layer is None:
            with self.keep_selection():
                layer = add_patch_labels(
                    self.viewer, self.scan_layer, self.patch_size, self._names()["suggestions"], opacity=0.35
                )
            layer.editable = False
            layer.visible = False  # the data; drawn as diamonds by PatchMarks
        return layer

    # -- geometry -----------------------------------------------------------------------------
    def label_shape(self) -> tuple[int, int, int, int]:
        """(layers, frames, grid_rows, grid_cols) of the patch grid of the scan."""
        scan = self.require_scan()
        return (scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, self.patch_size)

    def current_index(self) -> tuple[int, int]:
        """(layer, frame) of the scan shown in the viewer now."""
        scan = self.require_scan()
        assert self.scan_layer is not None
        layer = self.scan_layer
        point = self.viewer.dims.point[-layer.ndim :]
        idx = np.round(np.asarray(layer.world_to_data(point), dtype=float)).astype(int)
        if layer.ndim == 3:
            lay, frame = 0, int(idx[0])
        else:
            lay, frame = int(idx[0]), int(idx[1])
        return int(np.clip(lay, 0, scan.n_layers - 1)), int(np.clip(frame, 0, scan.n_frames - 1))

    def patch_at(self, world_position: tuple[float, ...]) -> tuple[int, int, int] | None:
        """(layer, grid row, grid col) under a world position, or None outside the scan."""
        scan = self.require_scan()
        assert self.scan_layer is not None
        layer = self.scan_layer
        data = np.asarray(layer.world_to_data(tuple(world_position)[-layer.ndim :]), dtype=float)
        row, col = np.round(data[-2:]).astype(int)
        rows, cols = scan.frame_shape
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        lay = 0 if layer.ndim == 3 else int(np.clip(round(data[0]), 0, scan.n_layers - 1))
        return lay, int(row) // self.patch_size, int(col) // self.patch_size

    # -- labels -------------------------------------------------------------------------------
    def annotation_array(self) -> np.ndarray:
        """The annotation labels as a 4D view (layers, frames, gr, gc)."""
        return as4d(self.require_annotations().data)

    def set_frame_labels(
        self, layer_index: int, frame: int, values: np.ndarray | int, where: np.ndarray | None = None
    ) -> int:
        """Write labels into one frame (only the patches in ``where``, default all) through napari's
        edit history, so Ctrl+Z undoes it like a brush stroke; returns the patches changed."""
        labels = self.require_annotations()
        grid = as4d(labels.data).shape[-2:]
        mask = np.ones(grid, bool) if where is None else np.asarray(where, bool)
        rows, cols = np.nonzero(mask)
        lead = (layer_index, frame) if labels.data.ndim == 4 else (frame,)
        index = tuple(np.full(rows.size, i) for i in lead) + (rows, cols)
        new = np.broadcast_to(np.asarray(values, dtype=labels.data.dtype), grid)[rows, cols]
        changed = int(np.count_nonzero(labels.data[index] != new))
        if labels.visible:
            labels.data_setitem(index, new)
        else:
            # napari skips slicing hidden layers, so data_setitem would write into the slice of
            # another frame (an IndexError, labels half written): slice the frame in view first.
            with labels.events.visible.blocker():
                labels.visible = True
                try:
                    labels.data_setitem(index, new)
                finally:
                    labels.visible = False
        self.labels_changed.emit()
        return changed

    def counts(self) -> dict[int, int]:
        """Labelled patches per class (1 = WB, 2 = SB) over the whole scan."""
        labels = self.annotations
        if labels is None:
            return {1: 0, 2: 0}
        counts = np.bincount(np.asarray(labels.data).ravel(), minlength=3)
        return {1: int(counts[1]), 2: int(counts[2])}

    def set_classifier(self, classifier: Any, source: str) -> None:
        self.classifier, self.classifier_source = classifier, source
        self.classifier_changed.emit(classifier)


_SESSIONS: dict[int, Session] = {}


def get_session(viewer: "napari.Viewer") -> Session:
    """The session of ``viewer`` (created on first use, dropped with the viewer).

    napari hands widgets a proxy of the viewer; the session is keyed by the viewer behind it.
    """
    viewer = getattr(viewer, "__wrapped__", viewer)
    key = id(viewer)
    session = _SESSIONS.get(key)
    if session is None or session._viewer() is not viewer:
        session = Session(viewer)
        _SESSIONS[key] = session
        weakref.finalize(viewer, _SESSIONS.pop, key, None)
    return session
