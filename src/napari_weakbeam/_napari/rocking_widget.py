"""Rocking-curve dock widget: pick a patch to plot its intensity against the rocking angle, each
frame coloured by its predicted class (filled) and its label (ring), with the frame in view marked:
the picture scientists draw by hand today.

A click picks a patch only when it cannot paint: in "Pick patch" mode (which pauses painting), or
while the selected layer is in pan/zoom mode; a drag never picks. The curve is drawn above the
background floor of the layer (a low percentile of all its frames: the detector offset outside the
grain) and normalised to the patch's own peak, so a flat background patch stays flat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.patches import CLASS_COLOURS, STRONG_BEAM, WEAK_BEAM
from ._follow import live_layer, live_weak_beam, shade_weak_beam
from ._layers import as4d, class_legend
from ._notify import report_errors
from ._plot import FOREGROUND, PlotCanvas
from ._dock import tabify_when_docked
from ._session import get_session

if TYPE_CHECKING:
    import napari

UNKNOWN_COLOUR = "#8a8f98"
CLICK_SLOP_PX = 5.0  # a press and release further apart on screen are a drag
FLOOR_PERCENTILE = 2.0  # of a layer's pixels over all frames: the background outside the grain
TOP_PERCENTILE = 99.9
LEVEL_FRAMES = 9  # frames sampled for the floor and top of a layer
MIN_CONTRAST = 0.05  # a patch whose peak is below 5 % of the layer's range is drawn near zero
DRAWING_MODES = {"paint", "fill", "erase", "polygon", "add", "add_points", "add_rectangle",
                 "add_ellipse", "add_line", "add_path", "add_polygon", "add_polyline", "direct", "select",
                 "vertex_insert", "vertex_remove", "transform"}
REDRAW_MS = 250
MARKER_COLOUR = "#e5c07b"


def patch_curve(scan: Any, layer: int, grid_row: int, grid_col: int, patch_size: int) -> np.ndarray:
    """Integrated intensity (sum) of one patch in every frame of ``layer``: float64 (frames,)."""
    p = patch_size
    block = scan.frames[layer, :, grid_row * p : (grid_row + 1) * p, grid_col * p : (grid_col + 1) * p]
    return np.asarray(block.sum(axis=(-2, -1), dtype=np.float64).compute())


def layer_levels(scan: Any, layer: int, stride: int = 8) -> tuple[float, float]:
    """(floor, top) of one layer: low and high percentiles of a strided sample of up to
    ``LEVEL_FRAMES`` frames spread over the rocking curve (tails and peak; a bounded read on the
    GUI thread even for a real scan)."""
    valid = np.flatnonzero(np.isfinite(scan.angles[layer]))
    if len(valid) > LEVEL_FRAMES:
        valid = valid[np.linspace(0, len(valid) - 1, LEVEL_FRAMES).round().astype(int)]
    sample = np.asarray(scan.frames[layer, valid, ::stride, ::stride], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    floor, top = (float(v) for v in np.percentile(sample, [FLOOR_PERCENTILE, TOP_PERCENTILE]))
    return floor, max(top, floor + 1e-9)


def normalised_curve(curve_sum: np.ndarray, n_pixels: int, floor: float, top: float) -> np.ndarray:
    """Patch mean above the floor, divided by the patch's own peak above the floor (at least
    ``MIN_CONTRAST`` of the layer's range, so noise on a flat patch is not blown up to 1)."""
    above = np.asarray(curve_sum, dtype=np.float64) / max(1, n_pixels) - floor
    finite = above[np.isfinite(above)]
    peak = float(finite.max()) if finite.size else 0.0
    return above / max(peak, MIN_CONTRAST * (top - floor), 1e-12)


class RockingCurveWidget(QWidget):
    """Plot of the rocking curve of the patch last clicked in the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        tabify_when_docked(self)
        viewer = self.viewer = self.session.viewer
        self.patch: tuple[int, int, int] | None = None
        self.curve: np.ndarray | None = None
        self.levels: dict[int, tuple[float, float]] = {}  # layer -> (floor, top)
        self.shown: np.ndarray | None = None  # the normalised curve drawn
        self._drawn: Any = None  # what the plot shows (a redraw costs 50-500 ms of GUI time)
        self._background: Any = None  # the plot without its moving artists, after the last full draw
        self.pick_button = QPushButton("Pick patch")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("Click patches to see their rocking curves; painting pauses until you "
                                    "choose a brush again. Without it, a click picks in pan/zoom mode only.")
        self.info_label = QLabel("Press 'Pick patch', then click a patch of the scan.")
        self.info_label.setWordWrap(True)
        self.status_label = self.info_label  # where errors of this widget are shown
        self.legend_label = QLabel(class_legend() + "; dot: prediction, ring: your label")
        self.legend_label.setWordWrap(True)
        self.canvas = PlotCanvas(height=2.2)
        self.canvas.mpl_connect("draw_event", self._on_draw)
        top = QHBoxLayout()
        top.addWidget(self.pick_button)
        top.addWidget(self.info_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)  # the plot takes the height the dock gives
        layout.addWidget(self.legend_label)
        self.pick_button.toggled.connect(self.set_pick_mode)
        self.session.scan_changed.connect(self._on_scan_changed)

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
        self._on_scan_changed()
        self._redraw()

    def _schedule(self, *args: Any) -> None:
        if self.patch is not None and not self._redraw_timer.isActive():
            self._redraw_timer.start()

    # -- picking ----------------------------------------------------------------------------------
    @property
    def pick_mode(self) -> bool:
        return self.pick_button.isChecked()

    def set_pick_mode(self, on: bool) -> None:
        """Pick mode: clicks pick patches and never paint (the annotation layer goes to pan/zoom)."""
        if self.pick_button.isChecked() != bool(on):
            self.pick_button.setChecked(bool(on))  # re-enters through toggled
            return
        labels = self.session.annotations
        if on and labels is not None and labels.mode != "pan_zoom":
            labels.mode = "pan_zoom"
        self.info_label.setText("Click a patch to see its rocking curve (painting paused)." if on
                                else "Painting: 'Pick patch' to see rocking curves.")

    def _on_scan_changed(self) -> None:
        self.levels.clear()
        labels = self.session.annotations
        if labels is not None:
            labels.events.mode.connect(self._on_mode)

    def _on_mode(self, event: Any = None) -> None:
        """Choosing a brush (paint, fill, erase) ends pick mode."""
        labels = self.session.annotations
        if self.pick_mode and labels is not None and str(labels.mode) in DRAWING_MODES:
            self.pick_button.setChecked(False)

    def _may_pick(self) -> bool:
        if self.pick_mode:
            return True
        active = self.viewer.layers.selection.active
        return active is None or str(getattr(active, "mode", "pan_zoom")) not in DRAWING_MODES

    def _on_click(self, viewer: Any, event: Any) -> Any:
        """Viewer mouse callback: a click (press and release, no drag) picks the patch under the
        cursor when it cannot paint (see the module docstring); Shift+click never picks."""
        if self.session.scan is None or "Shift" in {str(m) for m in event.modifiers} or not self._may_pick():
            return
        position = tuple(event.position)
        pressed_at = np.asarray(getattr(event, "pos", (0, 0)), dtype=float)
        yield
        while event.type == "mouse_move":
            yield
        released_at = np.asarray(getattr(event, "pos", pressed_at), dtype=float)
        if np.hypot(*(released_at - pressed_at)[:2]) > CLICK_SLOP_PX:  # a drag pans: not a pick
            return
        try:
            hit = self.session.patch_at(position)
        except Exception:  # noqa: BLE001 - a click must never raise in the viewer
            return
        if hit is not None:
            self.show_patch(*hit)

    @report_errors
    def show_patch(self, layer: int, grid_row: int, grid_col: int) -> np.ndarray:
        """Plot the rocking curve of patch (grid_row, grid_col) of ``layer``; returns the curve."""
        scan = self.session.require_scan()
        self.patch = (layer, grid_row, grid_col)
        if live_layer(self.session, layer) is None:
            self.curve = patch_curve(scan, layer, grid_row, grid_col, self.session.patch_size)
            if layer not in self.levels:
                self.levels[layer] = layer_levels(scan, layer)
        else:
            self.curve = self._live_series(layer)[1]
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
        with self.session.keep_selection():  # keep painting where the user was
            self.viewer.add_shapes(
                [box], shape_type="rectangle", name=name, edge_color=MARKER_COLOUR, face_color="transparent",
                edge_width=max(1.0, p / 16), scale=tuple(image.scale[-2:]), translate=tuple(image.translate[-2:]),
                axis_labels=tuple(image.axis_labels[-2:]), units=tuple(image.units[-2:]),
            )

    def _live_series(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
        """(angles, curve sum, predicted class, (floor, top)) of the picked patch in the layer
        followed live, frames in acquisition order (Follow mode: more than the file held when opened)."""
        live = live_layer(self.session, layer)
        _, r, c = self.patch
        n, p = live.n, self.session.patch_size
        ctx = live.ctx
        levels = (ctx.dark, ctx.bright) if ctx is not None else (0.0, 1.0)
        return live.acc.angles[:n].copy(), live.acc.curves[:n, r, c] * (p * p), live.label[:n, r, c].copy(), levels

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
        if self.patch is None or self.curve is None or self.session.scan is None:
            if self._drawn == "empty":
                return  # already empty: not drawn again at every new frame while following
            ax.clear()
            self._drawn = "empty"
            ax.set_xlabel("rocking angle (deg)")
            ax.set_ylabel("above background (1 = peak)")
            self.canvas.style()
            self.canvas.draw_idle()
            return
        layer, r, c = self.patch
        scan = self.session.scan
        try:
            in_view = self.session.current_index()
        except Exception:  # noqa: BLE001
            in_view = (-1, -1)
        if live_layer(self.session, layer) is not None:  # followed live: the frames so far
            angles, self.curve, predicted, (floor, top) = self._live_series(layer)
            labelled = np.zeros_like(predicted)
            newest = len(angles) - 1
        else:
            angles = scan.angles[layer]
            predicted, labelled = self.classes()
            floor, top = self.levels.get(layer) or layer_levels(scan, layer)
            newest = in_view[1] if in_view[0] == layer else -1
        ok = np.isfinite(angles)
        key = (self.patch, predicted.tobytes(), labelled.tobytes(), in_view, len(self.curve), self.curve.tobytes())
        if key == self._drawn:
            return  # nothing this plot shows changed (e.g. an epoch that changed other patches)
        same_curve = (isinstance(self._drawn, tuple) and self._drawn[0] == self.patch
                      and self._drawn[-2:] == key[-2:])  # the same patch and the same curve values
        self._drawn = key
        colours = {WEAK_BEAM: CLASS_COLOURS[WEAK_BEAM], STRONG_BEAM: CLASS_COLOURS[STRONG_BEAM]}
        face = [colours.get(int(v), UNKNOWN_COLOUR) for v in predicted[ok]]
        edge = [colours.get(int(v), "none") for v in labelled[ok]]
        frame_angle = angles[newest] if newest >= 0 and np.isfinite(angles[newest]) else None  # in view, or the newest live
        if same_curve:  # only the classes or the frame in view changed: recolour and blit those artists
            self._dots.set_facecolors(face)
            self._rings.set_edgecolors(edge)
            self._frame_line.set_xdata([frame_angle or 0.0] * 2)
            self._frame_line.set_visible(frame_angle is not None)
            if self._background is None:
                self.canvas.draw_idle()
            else:
                self.canvas.restore_region(self._background)
                self._draw_moving()
            return
        ax.clear()
        p = self.session.patch_size
        y = self.shown = normalised_curve(self.curve, p * p, floor, top)
        ax.plot(angles[ok], y[ok], color=FOREGROUND, lw=1, zorder=1)
        # animated: left out of full draws and blitted over the rest (see _on_draw)
        self._dots = ax.scatter(angles[ok], y[ok], s=22, c=face, zorder=2, animated=True)
        self._rings = ax.scatter(angles[ok], y[ok], s=70, facecolors="none", edgecolors=edge, linewidths=1.4,
                                 zorder=3, animated=True)
        ax.set_ylim(-0.08, 1.12)
        ax.axhline(0.0, color="#5a5f6a", lw=0.8, zorder=0)
        if ok.any():  # where weak beam is in the whole layer (Follow mode): shaded ranges
            shade_weak_beam(ax, live_weak_beam(self.session, layer), 1.0)
        self._frame_line = ax.axvline(frame_angle or 0.0, color="#e5c07b", lw=1, ls="--", zorder=0, animated=True)
        self._frame_line.set_visible(frame_angle is not None)
        motor = scan.rocking_motor or "rocking angle"
        ax.set_xlabel(f"{motor} (deg)")
        ax.set_ylabel("above background (1 = peak)")
        ax.set_title(f"layer {layer}, patch row {r}, column {c}")
        self.canvas.style()
        mean = self.curve / (p * p)
        self.info_label.setText(
            f"Patch ({r}, {c}), layer {layer}: peak {angles[ok][np.argmax(self.curve[ok])]:.4f} deg, "
            f"mean {np.nanmax(mean[ok]):.0f} over a floor of {floor:.0f}"
            if ok.any() else f"Patch ({r}, {c}) of layer {layer}"
        )
        self.canvas.draw_idle()


    def _on_draw(self, event: Any = None) -> None:
        """After a full draw: keep the picture without the moving artists, then draw them on it."""
        self._background = self.canvas.copy_from_bbox(self.canvas.figure.bbox)
        self._draw_moving(blit=False)  # the full draw's paint shows them

    def _draw_moving(self, blit: bool = True) -> None:
        """Draw the frame line and the class dots over the picture (a few ms, not a full redraw)."""
        if not isinstance(self._drawn, tuple):  # nothing plotted yet, or the empty plot: no moving artists
            return
        for artist in (self._frame_line, self._dots, self._rings):
            self.canvas.axes.draw_artist(artist)
        if blit:
            self.canvas.blit(self.canvas.figure.bbox)


def _remove_callback(viewer: Any, callback: Any) -> None:
    try:
        viewer.mouse_drag_callbacks.remove(callback)
    except (ValueError, RuntimeError):
        pass
