"""How the patch layers look, so each reads at a glance where they overlap.

* annotations (what the user painted): filled squares, the Labels layer itself;
* predictions: square outlines in the class colour (a Points layer of the frame in view);
* suggestions: small filled diamonds at the patch centres (idem);
* P(weak beam): its own colour map with a colour bar on the canvas.

The Labels layers of predictions and suggestions stay the data (read by every widget) but are
hidden; the mark layers follow the frame in view. :class:`FrameContrast` rescales the scan's
contrast to each frame (tail frames, where the dislocations are, are far darker than the peak).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer

from ..core.patches import CLASS_COLOURS
from ._layers import as4d

if TYPE_CHECKING:
    from ._session import Session

#: kind -> (mark layer name suffix, napari symbol, size as a fraction of the patch, filled)
STYLES = {
    "predictions": ("predicted (outlines)", "square", 0.84, False),
    "suggestions": ("suggested (diamonds)", "diamond", 0.38, True),
}
CONTRAST_PERCENTILES = (0.5, 99.8)
CONTRAST_DELAY_MS = 120


def mark_name(scan_name: str, kind: str) -> str:
    return f"{scan_name} {STYLES[kind][0]}"


def frame_marks(labels: np.ndarray, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (N, 2) in pixels, class (N,)) of the labelled patches of one frame (gr, gc)."""
    rows, cols = np.nonzero(labels)
    centres = np.stack([rows, cols], axis=1).astype(float) * patch_size + (patch_size - 1) / 2
    return centres, np.asarray(labels[rows, cols], dtype=np.uint8)


def _colours(classes: np.ndarray) -> np.ndarray:
    from napari.utils.colormaps.standardize_color import transform_color

    table = {k: transform_color(v)[0] for k, v in CLASS_COLOURS.items()}
    out = np.zeros((len(classes), 4), dtype=np.float32)
    for k, rgba in table.items():
        out[classes == k] = rgba
    return out


class PatchMarks:
    """Keeps the outline / diamond layers of one session in step with the frame in view."""

    def __init__(self, session: Session):
        self.session = session
        viewer = session.viewer
        viewer.dims.events.current_step.connect(self.update)
        session.predictions_changed.connect(self.update)
        session.suggestions_changed.connect(self.update)
        session.scan_changed.connect(self.update)
        viewer.layers.events.removed.connect(self._on_removed)

    def _on_removed(self, event: Any = None) -> None:
        """Discarding the suggestions (or deleting a store layer) removes its marks too."""
        if self.session.scan_layer is None:
            return
        for kind in STYLES:
            if getattr(self.session, kind) is None:
                name = mark_name(self.session.scan_layer.name, kind)
                if name in self.session.viewer.layers:
                    self.session.viewer.layers.remove(name)

    def update(self, *args: Any) -> None:
        session = self.session
        if session.scan is None or session.scan_layer is None or session.scan_layer not in session.viewer.layers:
            return
        try:
            layer, frame = session.current_index()
        except Exception:  # noqa: BLE001 - a redraw must never raise in the viewer
            return
        for kind in STYLES:
            store = getattr(session, kind)
            if store is not None:
                labels = as4d(np.asarray(store.data))[layer, frame]
                self._draw(kind, *frame_marks(labels, session.patch_size))

    def _draw(self, kind: str, centres: np.ndarray, classes: np.ndarray) -> None:
        session = self.session
        image = session.scan_layer
        assert image is not None
        _suffix, symbol, size, filled = STYLES[kind]
        name = mark_name(image.name, kind)
        colours = _colours(classes)
        viewer = session.viewer
        p = session.patch_size
        if name not in viewer.layers:
            with session.keep_selection():
                marks = viewer.add_points(
                    centres, name=name, symbol=symbol, size=size * p,
                    face_color=colours if filled else "transparent", border_color=colours,
                    border_width=0.0 if filled else 0.12, border_width_is_relative=True,
                    scale=tuple(image.scale[-2:]), translate=tuple(image.translate[-2:]),
                    axis_labels=tuple(image.axis_labels[-2:]), units=tuple(image.units[-2:]),
                    opacity=0.95, blending="translucent_no_depth",
                )
            marks.editable = False
            _below_annotations(session, marks)
            return
        marks = viewer.layers[name]
        marks.data = centres
        marks.size = size * p
        marks.border_color = colours
        marks.face_color = colours if filled else "transparent"


def _below_annotations(session: Session, layer: Any) -> None:
    """Keep the painted annotations on top: what the user did reads first."""
    ann = session.annotations
    if ann is None:
        return
    layers = session.viewer.layers
    layers.move(layers.index(ann), len(layers))


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
