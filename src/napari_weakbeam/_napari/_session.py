"""Per-viewer state shared by the weak-beam widgets: the scan layer, the patch size, the annotation,
suggestion and prediction layers, and the current classifier.

One :class:`Session` per viewer window (:func:`get_session`), so two viewers in one process never
mix their labels. The session holds its layers by reference (renaming one changes nothing; removing
one from the viewer drops it) and finds them again after a restart of annotating through plain
ids in their metadata, never by name. Every change of state goes through one method that emits
the state's signal; widgets talk to each other only through these signals.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from psygnal import Signal
from qtpy.QtCore import QObject, QTimer

from ..core.errors import WeakbeamError
from ..core.patches import grid_shape
from ..core.scanfiles.scan import Scan
from ._layers import ID_KEY, OF_KEY, PATCH_KEY, ROLE_KEY, add_patch_image, add_patch_labels, as4d, same
from ._scan_layer import SCAN_KEY, describe_scan, scan_from_layer

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

NO_SCAN = (
    "no scan layer: open a scan (File > Open, or File > Open Sample > Weak beam DFXM) and pick it "
    "in the Annotate widget"
)
DEFAULT_PATCH_SIZE = 64
#: role -> (layer name suffix, opacity) of the patch layers over a scan
PATCH_LAYERS = {
    "annotations": ("annotations", 0.5),
    "suggestions": ("suggested labels", 0.35),
    "predictions": ("predictions", 0.45),
    "probability": ("P(weak beam)", 0.6),
}
PAINT_SETTLE_MS = 30  # napari's paint event comes before the stroke is stored


class Session:
    """What the widgets of one viewer share."""

    scan_changed = Signal()
    labels_changed = Signal()
    classifier_changed = Signal(object)  # the new classifier (after an epoch, a load, a training)
    predictions_changed = Signal()
    suggestions_changed = Signal()
    patch_picked = Signal(int, int, int)  # layer, grid row, grid col (for the rocking curve)

    def __init__(self, viewer: "napari.Viewer", parent: QObject | None = None):
        self.viewer = viewer
        self._layers: dict[str, Any] = {}  # "scan" and the PATCH_LAYERS roles -> the layer
        self._scan: Scan | None = None
        self._patch_size = DEFAULT_PATCH_SIZE
        self._classifier: Any | None = None
        self._classifier_source = ""
        self.live: dict[int, Any] = {}  # scan layer index -> core.classification.live.LiveLayer (Follow)
        self.live_weak_beam: dict[int, Any] = {}  # scan layer index -> LayerWeakBeam of the layer followed
        self.follower: Any = None  # _follow.Follower, made on first use
        self._painted = QTimer(parent)  # deleted with the window
        self._painted.setSingleShot(True)
        self._painted.setInterval(PAINT_SETTLE_MS)
        self._painted.timeout.connect(self.labels_changed.emit)
        viewer.layers.events.removed.connect(self._on_removed)
        from ._overlays import FrameContrast, PatchMarks

        self.marks = PatchMarks(self)  # outlines / dots of predictions / suggestions
        self.contrast = FrameContrast(self)  # per-frame auto contrast of the scan

    # -- state (read-only: changed through the methods below) ---------------------------------
    @property
    def scan_layer(self) -> "Image | None":
        return self._layers.get("scan")

    @property
    def scan(self) -> Scan | None:
        return self._scan

    @property
    def patch_size(self) -> int:
        return self._patch_size

    @property
    def annotations(self) -> "Labels | None":
        return self._layers.get("annotations")

    @property
    def suggestions(self) -> "Labels | None":
        return self._layers.get("suggestions")

    @property
    def predictions(self) -> "Labels | None":
        return self._layers.get("predictions")

    @property
    def probability(self) -> "Image | None":
        return self._layers.get("probability")

    @property
    def classifier(self) -> Any | None:
        return self._classifier

    @classifier.setter
    def classifier(self, classifier: Any) -> None:  # (assignments go through set_classifier too)
        self.set_classifier(classifier, self._classifier_source or "set here")

    @property
    def classifier_source(self) -> str:
        return self._classifier_source

    @classifier_source.setter
    def classifier_source(self, source: str) -> None:
        self.set_classifier(self._classifier, source)

    def set_classifier(self, classifier: Any, source: str) -> None:
        """The one way to change the classifier: every change emits ``classifier_changed``."""
        self._classifier, self._classifier_source = classifier, source
        self.classifier_changed.emit(classifier)

    def pick_patch(self, layer: int, grid_row: int, grid_col: int) -> None:
        self.patch_picked.emit(layer, grid_row, grid_col)

    # -- layers -------------------------------------------------------------------------------
    def _on_removed(self, event: Any) -> None:
        """A layer left the viewer: drop it (the scan: everything over it too)."""
        gone = [kind for kind, held in self._layers.items() if same(event.value, held)]
        if "scan" in gone:
            self._layers.clear()
            self._scan = None
            self.live.clear()
            self.live_weak_beam.clear()
            self.scan_changed.emit()
            return
        for kind in gone:
            del self._layers[kind]
        if "suggestions" in gone:
            self.suggestions_changed.emit()
        if "predictions" in gone or "probability" in gone:
            self.predictions_changed.emit()
        if "annotations" in gone:
            self.labels_changed.emit()

    def require_scan(self) -> Scan:
        """The scan, or a one-line error saying how to get one (open one, or start annotating the
        scan already open)."""
        if self._scan is None or self.scan_layer is None:
            from napari.layers import Image

            open_scans = [layer.name for layer in self.viewer.layers
                          if isinstance(layer, Image) and layer.ndim in (3, 4) and ROLE_KEY not in layer.metadata]
            if open_scans:
                raise WeakbeamError(
                    f"scan {open_scans[0]!r} is open but not in use yet: press 'Start annotating' in the "
                    f"Annotate tab to choose it and its patch size"
                )
            raise WeakbeamError(NO_SCAN)
        return self._scan

    @contextmanager
    def keep_selection(self) -> Iterator[None]:
        """Adding a layer selects it in napari: keep the user's selection (painting, W/S/C keys)."""
        selection = self.viewer.layers.selection
        active = selection.active
        try:
            yield
        finally:
            if active is not None and active in self.viewer.layers and not same(selection.active, active):
                selection.active = active

    def _linked(self, scan_layer: Any, role: str) -> Any | None:
        """The layer of ``role`` made for ``scan_layer`` earlier (linked by plain ids, not names)."""
        sid = scan_layer.metadata.get(ID_KEY)
        for layer in self.viewer.layers:
            if sid is not None and layer.metadata.get(ROLE_KEY) == role and layer.metadata.get(OF_KEY) == sid:
                return layer
        return None

    def _add(self, role: str) -> Any:
        """Add the patch layer ``role`` over the scan, linked to it in its metadata."""
        image = self.scan_layer
        assert image is not None and self._scan is not None
        suffix, opacity = PATCH_LAYERS[role]
        name = f"{image.name} {suffix}"
        if role == "probability":
            layer = add_patch_image(self.viewer, image, self._patch_size, name, np.zeros(self.label_shape(), np.float32))
        else:
            layer = add_patch_labels(self.viewer, image, self._patch_size, name, opacity=opacity)
        layer.metadata.update({ROLE_KEY: role, OF_KEY: image.metadata[ID_KEY]})
        self._layers[role] = layer
        return layer

    def set_scan_layer(self, layer: "Image", patch_size: int) -> "Labels":
        """Use ``layer`` as the scan at ``patch_size``; return its annotation layer (added if new).

        The one way to change the scan and the patch size (emits ``scan_changed``)."""
        scan = self._scan if same(layer, self.scan_layer) and self._scan is not None else scan_from_layer(layer)
        existing = self._linked(layer, "annotations")
        if existing is not None and existing.metadata.get(PATCH_KEY) != patch_size and np.any(existing.data):
            raise WeakbeamError(
                f"layer {existing.name!r} holds labels at patch size {existing.metadata.get(PATCH_KEY)}; "
                f"save them and delete the layer before switching to patch size {patch_size}"
            )
        layer.metadata.setdefault(ID_KEY, uuid.uuid4().hex)
        self._layers = {"scan": layer}
        self._scan, self._patch_size = scan, int(patch_size)
        self.live.clear()
        self.live_weak_beam.clear()
        for role in PATCH_LAYERS:
            old = self._linked(layer, role)
            if old is not None and old.metadata.get(PATCH_KEY, patch_size) != patch_size:
                self.viewer.layers.remove(old)
            elif old is not None:
                self._layers[role] = old
        labels = self.annotations if self.annotations is not None else self._add("annotations")
        labels.metadata[SCAN_KEY] = describe_scan(scan)  # what the annotation writer saves with
        labels.events.paint.connect(self._on_paint)
        labels.events.data.connect(self._on_paint)
        labels.brush_size = 1
        labels.mode = "paint"
        labels.selected_label = 1
        self.viewer.layers.selection.active = labels
        self.scan_changed.emit()
        self.labels_changed.emit()
        return labels

    def _on_paint(self, event: Any = None) -> None:
        """A brush stroke: ``labels_changed`` once it is stored (napari says "paint" before)."""
        self._painted.start()

    def require_annotations(self) -> "Labels":
        self.require_scan()
        labels = self.annotations
        if labels is None:
            raise WeakbeamError("no annotation layer: press 'Start annotating' in the Annotate widget")
        return labels

    def ensure_predictions(self) -> tuple["Labels", "Image"]:
        """The predictions Labels layer and the P(weak beam) image (added, empty, if missing)."""
        self.require_scan()
        with self.keep_selection():
            pred = self.predictions
            if pred is None:
                pred = self._add("predictions")
                pred.editable = False  # read-only: "Promote" copies a frame into the annotations to correct it
                pred.visible = False  # the data; drawn as outlines by PatchMarks (tell it from the labels)
            prob = self.probability if self.probability is not None else self._add("probability")
            self.marks.update()  # the outline layer now, not mid-training (adding a layer costs ~0.2 s)
            self.annotations_on_top()  # painting stays visible over the predictions
        return pred, prob

    def annotations_on_top(self) -> None:
        ann = self.annotations
        if ann is not None:
            layers = self.viewer.layers
            layers.move(layers.index(ann), len(layers))

    def ensure_suggestions(self) -> "Labels":
        self.require_scan()
        layer = self.suggestions
        if layer is None:
            with self.keep_selection():
                layer = self._add("suggestions")
            layer.editable = False
            layer.visible = False  # the data; drawn as dots by PatchMarks
        return layer

    # -- predictions and suggestions --------------------------------------------------------------
    def set_predictions(self, layer_index: int, frames: slice | int, label: np.ndarray, prob: np.ndarray) -> None:
        """Show predictions of ``frames`` of one layer (emits ``predictions_changed``)."""
        pred, probability = self.ensure_predictions()
        as4d(pred.data)[layer_index, frames] = label
        as4d(probability.data)[layer_index, frames] = np.nan_to_num(prob, nan=0.0)
        pred.refresh()
        probability.refresh()
        self.predictions_changed.emit()

    def set_live(self, index: int, live: Any, weak_beam: Any = None) -> None:
        """The layer ``index`` followed live (Follow): its frames and labels so far (emits
        ``predictions_changed``: the rocking curve shows them)."""
        self.live[index] = live
        if weak_beam is not None:
            self.live_weak_beam[index] = weak_beam
        self.predictions_changed.emit()

    def set_suggestions(self, layer_index: int, labels: np.ndarray) -> None:
        """Show suggested labels of one layer (emits ``suggestions_changed``)."""
        suggestions = self.ensure_suggestions()
        as4d(suggestions.data)[layer_index] = labels
        suggestions.refresh()
        self.suggestions_changed.emit()

    def clear_suggestions(self) -> None:
        """Remove the suggestions layer (``suggestions_changed`` comes with its removal)."""
        if self.suggestions is not None:
            self.viewer.layers.remove(self.suggestions)

    # -- geometry -----------------------------------------------------------------------------
    def label_shape(self) -> tuple[int, int, int, int]:
        """(layers, frames, grid_rows, grid_cols) of the patch grid of the scan."""
        scan = self.require_scan()
        return (scan.n_layers, scan.n_frames) + grid_shape(scan.frame_shape, self._patch_size)

    def current_index(self) -> tuple[int, int]:
        """(layer, frame) of the scan shown in the viewer now."""
        scan = self.require_scan()
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
        layer = self.scan_layer
        data = np.asarray(layer.world_to_data(tuple(world_position)[-layer.ndim :]), dtype=float)
        row, col = np.round(data[-2:]).astype(int)
        rows, cols = scan.frame_shape
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        lay = 0 if layer.ndim == 3 else int(np.clip(round(data[0]), 0, scan.n_layers - 1))
        return lay, int(row) // self._patch_size, int(col) // self._patch_size

    # -- labels -------------------------------------------------------------------------------
    def annotation_array(self) -> np.ndarray:
        """The annotation labels as a 4D view (layers, frames, gr, gc)."""
        return as4d(self.require_annotations().data)

    def set_labels(self, labels: np.ndarray) -> None:
        """Replace every annotation label (e.g. loaded from a file; emits ``labels_changed``)."""
        layer = self.require_annotations()
        layer.data = np.asarray(labels, dtype=layer.data.dtype).reshape(layer.data.shape)
        self.labels_changed.emit()

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


ANCHOR = "napari_weakbeam_session"


class _Anchor(QObject):
    """Holds the session of one viewer window; Qt deletes it, and the session, with the window."""

    def __init__(self, parent: QObject, viewer: "napari.Viewer"):
        super().__init__(parent)
        self.setObjectName(ANCHOR)
        self.session = Session(viewer, self)


def get_session(viewer: "napari.Viewer") -> Session:
    """The session of ``viewer`` (created on first use, deleted with the viewer's window).

    napari hands plugin widgets a public proxy of the viewer and tests the viewer itself: both
    lead to the same Qt main window (through the public ``window.main_menu``), which keeps the
    session as a child object."""
    window = viewer.window.main_menu.window()
    anchor = window.findChild(QObject, ANCHOR)
    if anchor is None:
        anchor = _Anchor(window, viewer)
    return anchor.session
