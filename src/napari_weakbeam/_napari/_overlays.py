"""How the patch layers look, so each reads at a glance where they overlap.

* annotations (what the user painted): filled squares, the Labels layer itself;
* predictions: square outlines in the class colour (a 2D layer of the frame in view);
* suggestions: small filled dots at the patch centres (idem);
* P(weak beam): its own colour map with a colour bar on the canvas.

The Labels layers of predictions and suggestions stay the data (read by every widget) but are
hidden; the mark layers follow the frame in view. :class:`FrameContrast` rescales the scan's
contrast to each frame (tail frames, where the dislocations are, are far darker than the peak).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer

from ._layers import ID_KEY, OF_KEY, ROLE_KEY, add_own, as4d, class_colormap, same

if TYPE_CHECKING:
    from ._session import Session

#: kind -> (mark layer name suffix, style): rings for predictions, centre dots for suggestions
STYLES = {
    "predictions": ("predicted (outlines)", "ring"),
    "suggestions": ("suggested (dots)", "dot"),
}
SUB = 16  # mark pixels per patch side: a ring is 1/16 of a patch wide, inset so neighbours stay apart
CONTRAST_PERCENTILES = (0.5, 99.8)
CONTRAST_DELAY_MS = 120


def mark_name(scan_name: str, kind: str) -> str:
    return f"{scan_name} {STYLES[kind][0]}"


def _stencil(style: str) -> np.ndarray:
    """(SUB, SUB) bool: which pixels of a patch's block are drawn."""
    block = np.zeros((SUB, SUB), bool)
    if style == "ring":
        block[1, 1:-1] = block[-2, 1:-1] = block[1:-1, 1] = block[1:-1, -2] = True
    else:  # a centre dot, a quarter of the patch wide
        lo = SUB // 2 - SUB // 8
        block[lo : SUB - lo, lo : SUB - lo] = True
    return block


def frame_marks(labels: np.ndarray, style: str) -> np.ndarray:
    """One frame's patch labels (gr, gc) drawn as rings or dots: uint8 (gr * SUB, gc * SUB)."""
    labels = np.asarray(labels, dtype=np.uint8)
    up = np.repeat(np.repeat(labels, SUB, axis=0), SUB, axis=1)
    return up * np.tile(_stencil(style), labels.shape)


class PatchMarks:
    """Keeps the ring / dot layers of one session in step with the frame in view (one 2D Labels
    layer each at SUB pixels per patch: one array write per frame change), held by reference."""

    def __init__(self, session: Session):
        self.session = session
        self._shown: dict[str, bytes] = {}
        self.layers: dict[str, Any] = {}  # kind -> its mark layer
        viewer = session.viewer
        viewer.dims.events.current_step.connect(self.update)
        session.predictions_changed.connect(self.update)
        session.suggestions_changed.connect(self.update)
        session.scan_changed.connect(self.update)
        viewer.layers.events.removed.connect(self._on_removed)

    def _on_removed(self, event: Any = None) -> None:
        """A mark layer deleted by the user: drawn again (as a new layer) at the next change."""
        for kind, layer in list(self.layers.items()):
            if same(layer, event.value):
                del self.layers[kind]
                self._shown.pop(kind, None)

    def _drop(self, kind: str) -> None:
        """The store of ``kind`` went (suggestions discarded, scan changed): remove its marks."""
        layer = self.layers.pop(kind, None)
        self._shown.pop(kind, None)
        if layer is not None and layer in self.session.viewer.layers:
            self.session.viewer.layers.remove(layer)

    def update(self, *args: Any) -> None:
        session = self.session
        for kind in STYLES:
            if session.scan is None or getattr(session, kind) is None:
                self._drop(kind)
        if session.scan is None:
            return
        try:
            layer, frame = session.current_index()
        except Exception:  # noqa: BLE001 - a redraw must never raise in the viewer
            return
        for kind in STYLES:
            store = getattr(session, kind)
            if store is None:
                continue
            labels = np.asarray(as4d(store.data)[layer, frame])
            key = labels.tobytes() + bytes(str((layer, frame, session.patch_size)), "ascii")
            if self._shown.get(kind) == key and kind in self.layers:
                continue  # unchanged (every epoch re-predicts; most frames stay the same)
            self._shown[kind] = key
            self._draw(kind, frame_marks(labels, STYLES[kind][1]))

    def _draw(self, kind: str, marks: np.ndarray) -> None:
        session = self.session
        image = session.scan_layer
        assert image is not None
        layer = self.layers.get(kind)
        if layer is not None:
            if layer.data.shape == marks.shape and layer.data.dtype == marks.dtype:
                layer.data[...] = marks  # in place: napari rebuilds a labels colormap texture on every
                layer.refresh()  # data event (tens of ms of GUI time after every epoch)
            else:
                layer.data = marks
            return
        sub = session.patch_size / SUB
        scale = np.asarray(image.scale[-2:], dtype=float)
        translate = np.asarray(image.translate[-2:], dtype=float) + (sub - 1) / 2 * scale
        with session.keep_selection():
            layer = add_own(session.viewer, Labels(
                marks, name=mark_name(image.name, kind), scale=tuple(scale * sub), translate=tuple(translate),
                opacity=0.95, axis_labels=tuple(image.axis_labels[-2:]), units=tuple(image.units[-2:]),
                metadata={ROLE_KEY: f"{kind} marks", OF_KEY: image.metadata.get(ID_KEY)},
            ))
        layer.colormap = class_colormap()
        layer.editable = False
        self.layers[kind] = layer
        session.annotations_on_top()  # what the user painted reads first


class FrameContrast:
    """Optional per-frame auto contrast of the scan layer (percentiles of the frame in view)."""

    def __init__(self, session: Session, enabled: bool = True):
        self.session = session
        self.enabled = enabled
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(CONTRAST_DELAY_MS)
        self._timer.timeout.connect(self.apply)
        session.viewer.dims.events.current_step.connect(self.schedule)
        session.scan_changed.connect(self.schedule)

    def set_enabled(self, on: bool) -> None:
        self.enabled = bool(on)
        if self.enabled:
            self.apply()

    def schedule(self, *args: Any) -> None:
        if self.enabled:
            self._timer.start()

    def apply(self) -> tuple[float, float] | None:
        """Set the scan layer's contrast to the frame in view; returns the limits (None if none)."""
        session = self.session
        if not self.enabled or session.scan is None or session.scan_layer is None:
            return None
        try:
            layer, frame = session.current_index()
            data = np.asarray(session.scan.frames[layer, frame, ::2, ::2], dtype=np.float64)
        except Exception:  # noqa: BLE001 - display only: never raise in the viewer
            return None
        data = data[np.isfinite(data)]
        if data.size == 0:
            return None
        lo, hi = (float(v) for v in np.percentile(data, CONTRAST_PERCENTILES))
        if hi <= lo:
            hi = lo + 1.0
        session.scan_layer.contrast_limits = (lo, hi)
        return lo, hi
