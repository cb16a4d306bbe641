"""Rocking-curve dock widget: click a patch to plot its integrated intensity against the rocking
angle, each frame coloured by its predicted class (filled) and its label (ring), with the frame in
view marked: the picture scientists draw by hand today."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.patches import CLASS_COLOURS, STRONG_BEAM, WEAK_BEAM
from ._follow import live_weak_beam, shade_weak_beam
from ._layers import as4d, class_legend
from ._notify import report_errors
from ._plot import FOREGROUND, PlotCanvas
from ._session import get_session

if TYPE_CHECKING:
    import napari

UNKNOWN_COLOUR = "#8a8f98"
REDRAW_MS = 250
MARKER_COLOUR = "#e5c07b"


def patch_curve(scan: Any, layer: int, grid_row: int, grid_col: int, patch_size: int) -> np.ndarray:
    """Integrated intensity (sum) of one patch in every frame of ``layer``: float64 (frames,)."""
    p = patch_size
    block = scan.frames[layer, :, grid_row * p : (grid_row + 1) * p, grid_col * p : (grid_col + 1) * p]
    return np.asarray(block.sum(axis=(-2, -1), dtype=np.float64).compute())


class RockingCurveWidget(QWidget):
    """Plot of the rocking curve of the patch last clicked in the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        viewer = self.viewer = self.session.viewer
        self.patch: tuple[int, int, int] | None = None
        self.curve: np.ndarray | None = None
        self.info_label = QLabel("Click a patch of the scan to see its rocking curve.")
        self.info_label.setWordWrap(True)
        self.legend_label = QLabel(
            class_legend() + "<br>filled: prediction, ring: your label, line: frame in view"
        )
        self.canvas = PlotCanvas(height=2.6)
        layout = QVBoxLayout(self)
        layout.addWidget(self.info_label)
        layout.addWidget(self.canvas)
        layout.addWidget(self.legend_label)
        layout.addStretch(1)

        # Redraws are coalesced: predictions change after every training epoch.
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self._redraw)
        viewer.mouse_drag_callbacks.append(self._on_click)
        viewer.dims.events.current_step.connect(self._schedule)
        self.session.predictions_changed.connect(self._schedule)
        self.session.labels_changed.connect(self._schedule)
        self.destroyed.connect(lambda *a, cb=self._on_click, v=viewer: _remove_callback(v, cb))
        self._redraw()

    def _schedule(self, *args: Any) -> None:
        if self.patch is not None and not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _on_click(self, viewer: Any, event: Any) -> None:
        """Viewer mouse callback: pick the patch under the cursor (any layer selected)."""
        if self.session.scan is None or "Shift" in {str(m) for m in event.modifiers}:
            return
        try:
            hit = self.session.patch_at(tuple(event.position))
        except Exception:  # a click must never raise in the viewer
            return
        if hit is not None:
            self.show_patch(*hit)

    @report_errors
    def show_patch(self, layer: int, grid_row: int, grid_col: int) -> np.ndarray:
        """Plot the rocking curve of patch (grid_row, grid_col) of ``layer``; returns the curve."""
        scan = self.session.require_scan()
        self.patch = (layer, grid_row, grid_col)
        self.curve = patch_curve(scan, layer, grid_row, grid_col, self.session.patch_size)
        self._mark_patch(grid_row, grid_col)
        self.session.patch_picked.emit(layer, grid_row, grid_col)
        self._redraw()
        return self.curve

    def _mark_patch(self, grid_row: int, grid_col: int) -> None:
        """Outline the picked patch in the viewer (a 2D Shapes layer, shown on every frame)."""
        image = self.session.scan_layer
        if image is None:
            return
        p = self.session.patch_size
        r0, c0 = grid_row * p - 0.5, grid_col * p - 0.5
        box = np.array([[r0, c0], [r0, c0 + p], [r0 + p, c0 + p], [r0 + p, c0]])
        name = f"{image.name} picked patch"
        if name in self.viewer.layers:
            marker = self.viewer.layers[name]
            marker.data = [box]
            return
        active = self.viewer.layers.selection.active
        self.viewer.add_shapes(
            [box], shape_type="rectangle", name=name, edge_color=MARKER_COLOUR, face_color="transparent",
            edge_width=max(1.0, p / 16), scale=tuple(image.scale[-2:]), translate=tuple(image.translate[-2:]),
        )
        if active is not None:
            self.viewer.layers.selection.active = active  # keep painting where the user was

    def classes(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, labelled) class per frame of the picked patch (0 where none)."""
        assert self.patch is not None
        layer, r, c = self.patch
        n = len(self.curve) if self.curve is not None else 0
        out = []
        for source in (self.session.predictions, self.session.annotations):
            if source is None:
                out.append(np.zeros(n, np.uint8))
            else:
                out.append(np.asarray(as4d(source.data)[layer, :, r, c]))
        return out[0], out[1]

    def _redraw(self, *args: Any) -> None:
        ax = self.canvas.axes
        ax.clear()
        if self.patch is None or self.curve is None or self.session.scan is None:
            ax.set_xlabel("rocking angle (deg)")
            ax.set_ylabel("integrated intensity")
            self.canvas.style()
            self.canvas.draw_idle()
            return
        layer, r, c = self.patch
        scan = self.session.scan
        angles = scan.angles[layer]
        ok = np.isfinite(angles)
        predicted, labelled = self.classes()
        ax.plot(angles[ok], self.curve[ok], color=FOREGROUND, lw=1, zorder=1)
        colours = {WEAK_BEAM: CLASS_COLOURS[WEAK_BEAM], STRONG_BEAM: CLASS_COLOURS[STRONG_BEAM]}
        face = [colours.get(int(v), UNKNOWN_COLOUR) for v in predicted[ok]]
        edge = [colours.get(int(v), "none") for v in labelled[ok]]
        ax.scatter(angles[ok], self.curve[ok], s=22, c=face, zorder=2)
        ax.scatter(angles[ok], self.curve[ok], s=70, facecolors="none", edgecolors=edge, linewidths=1.4, zorder=3)
        if ok.any():  # where weak beam is in the whole layer (Follow mode): shaded ranges
            shade_weak_beam(ax, live_weak_beam(self.session, layer), float(self.curve[ok].max()))
        try:
            cur_layer, frame = self.session.current_index()
        except Exception:
            cur_layer, frame = -1, -1
        if cur_layer == layer and np.isfinite(angles[frame]):
            ax.axvline(angles[frame], color="#e5c07b", lw=1, ls="--", zorder=0)
        motor = scan.rocking_motor or "rocking angle"
        ax.set_xlabel(f"{motor} (deg)")
        ax.set_ylabel("integrated intensity")
        ax.set_title(f"layer {layer}, patch row {r}, column {c}")
        self.canvas.style()
        self.info_label.setText(
            f"Patch ({r}, {c}) of layer {layer}: peak at {angles[ok][np.argmax(self.curve[ok])]:.4f} deg"
            if ok.any() else f"Patch ({r}, {c}) of layer {layer}"
        )
        self.canvas.draw_idle()


def _remove_callback(viewer: Any, callback: Any) -> None:
    try:
        viewer.mouse_drag_callbacks.remove(callback)
    except (ValueError, RuntimeError):
        pass
