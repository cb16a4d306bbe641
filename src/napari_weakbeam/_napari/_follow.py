"""Follow mode: show a Bliss scan while it is acquired, frame by frame, with its predictions.

A worker thread runs core.classification.live.watch (the same code as ``weakbeam watch``, without an output
file) on the master file of the scan open in the viewer; every frame it yields is shown on the
GUI thread in two layers of their own, ``live <scan>`` (the frames, in acquisition order) and
``live <scan> predictions`` (WB/SB per patch), the viewer moves to the new frame, and the weak-beam
ranges of the layer so far go to the Rocking curve widget (:func:`live_weak_beam`). When the scan
ends, its final labels (equal to an offline classify) replace the live ones; the Rocking curve
widget plots a picked patch's curve from the frames acquired so far (:func:`live_layer`). Layers
are numbered as in the scan open in the viewer (the followed scan is its last one; the scans after
it come next). Widgets never touch layers from the worker thread.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from napari.qt.threading import create_worker

from ._jobs import follow_job
from ._layers import class_colormap, patch_geometry


def shade_weak_beam(ax: Any, wb: Any, height: float | None = None) -> None:
    """Shade the recommended weak-beam ranges of a layer (core.classification.weak_range.LayerWeakBeam) on a
    rocking-curve plot, with the whole layer's curve (dashed, scaled to ``height``)."""
    from ..core.patches import CLASS_COLOURS, WEAK_BEAM

    if wb is None:
        return
    for r in wb.ranges:
        ax.axvspan(r.start, r.stop, color=CLASS_COLOURS[WEAK_BEAM], alpha=0.18, lw=0, zorder=0)
    ok = np.isfinite(wb.angles) & np.isfinite(wb.curve) if wb.curve is not None else None
    if ok is not None and ok.any() and height:
        order = np.argsort(wb.angles[ok])
        c = wb.curve[ok][order]
        ax.plot(wb.angles[ok][order], c * height / max(float(np.nanmax(c)), 1e-12), ls="--", lw=0.8,
                color="#8a8f98", zorder=1, label="whole layer (scaled)")


def live_weak_beam(session: Any, layer: int) -> Any:
    """The latest weak-beam ranges (core.classification.weak_range.LayerWeakBeam) of ``layer`` followed in this
    session's viewer, or None."""
    return session.live_weak_beam.get(layer)


def live_layer(session: Any, layer: int) -> Any:
    """The layer (core.classification.live.LiveLayer: frames, patch curves, labels in acquisition order) followed
    as ``layer`` of this session's scan, or None when it was not followed."""
    return session.live.get(layer)


class Follower:
    """Runs one follow worker for a session and shows what it yields."""

    def __init__(self, session: Any):
        self.session = session
        self.worker = None
        self.stop_event = threading.Event()
        self.frames_shown = 0
        self.last_event: Any = None
        self.first_layer = 0  # the session scan's layer index of the first scan followed
        self.layers: dict[str, tuple[Any, Any]] = {}  # scan name -> its live (image, labels) layers

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, master: str, classifier: Any, scan: str | None = None, idle_timeout: float | None = None,
              on_event: Any = None, on_finished: Any = None, on_error: Any = None, first_layer: int = 0) -> None:
        self.stop_event.clear()
        self.first_layer = first_layer
        self.worker = create_worker(follow_job, master, classifier, scan, self.stop_event, idle_timeout)
        self.worker.yielded.connect(lambda ev: self.show(ev.payload))  # the WatchEvent
        if on_event is not None:
            self.worker.yielded.connect(lambda ev: on_event(ev.payload))
        if on_error is not None:
            self.worker.errored.connect(on_error)
        self.worker.finished.connect(self._finished)
        if on_finished is not None:
            self.worker.finished.connect(on_finished)
        self.worker.start()

    def stop(self) -> None:
        """Ask the worker to stop after the frame in hand."""
        self.stop_event.set()

    def _finished(self) -> None:
        self.worker = None

    def _layers(self, ev: Any) -> tuple[Any, Any]:
        viewer = self.session.viewer
        live = ev.layer
        n = len(live.label)
        shown = self.layers.get(ev.scan)
        if shown is not None and (any(layer not in viewer.layers for layer in shown) or shown[0].data.shape[0] < n):
            for layer in shown:
                if layer in viewer.layers:
                    viewer.layers.remove(layer)
            shown = None
        if shown is None:
            name = f"live {ev.scan}"
            image = viewer.add_image(np.zeros((n,) + live.frame_shape, live.frames[0].dtype), name=name,
                                     metadata={"weakbeam_live": ev.scan})
            scale, translate = patch_geometry(image, live.p)
            labels = viewer.add_labels(np.zeros(live.label.shape, np.uint8), name=f"{name} predictions", opacity=0.4,
                                       colormap=class_colormap(), scale=scale, translate=translate)
            shown = self.layers[ev.scan] = (image, labels)
        return shown

    def show(self, ev: Any) -> None:
        """GUI thread: show one watch event."""
        self.last_event = ev
        if ev.kind not in ("frame", "scan_done") or ev.layer is None:
            return
        image, labels = self._layers(ev)
        live = ev.layer
        index = self.first_layer + live.layer_index
        if ev.kind == "frame":
            frame = live.frames[ev.index]
            image.data[ev.index] = frame
            top = float(frame.max())
            if top > image.contrast_limits[1] or self.frames_shown == 0:  # grows with the brightest frame so far
                image.contrast_limits_range = (0.0, max(top, 1.0))
                image.contrast_limits = (float(frame.min()), max(top, 1.0))
            n = min(live.n, len(labels.data))
            labels.data[:n] = live.label[:n]  # in place: moving to the new frame below slices it once
            self.frames_shown += 1
            viewer = self.session.viewer  # the frame axis: third from the end (a 4D scan may be open too)
            axis = viewer.dims.ndim - 3
            if viewer.dims.current_step[axis] != ev.index:
                viewer.dims.set_current_step(axis, ev.index)  # re-slices every layer, the two live ones too
            else:
                image.refresh()
                labels.refresh()
        else:
            final = live.label.copy()
            if ev.final is not None:  # the final labels (equal to an offline classify), in acquisition order
                final[: live.n] = layer_label_final(ev.final.label[: live.n], live.acc.angles[: live.n])
            labels.data = final
            live.label[: live.n] = final[: live.n]
            image.refresh()
        self.session.set_live(index, live, ev.weak_beam)


def layer_label_final(results_label: np.ndarray, angles_acq: np.ndarray) -> np.ndarray:
    """Labels of a finished layer (frames sorted by angle) in acquisition order."""
    rank = np.empty(len(angles_acq), int)
    rank[np.argsort(angles_acq, kind="stable")] = np.arange(len(angles_acq))
    return results_label[rank]


def follower_for(session: Any) -> Follower:
    """The session's one Follower."""
    if session.follower is None:
        session.follower = Follower(session)
    return session.follower


def toggle_follow(session: Any, on: bool, status: Any = None, idle_timeout: float | None = None) -> Follower:
    """The Follow toggle of the Predictions widget: follow the last scan of the Bliss file open in the
    viewer (and the scans after it) while it is acquired, or stop. ``status`` is a QLabel."""
    from ..core.errors import WeakbeamError

    f = follower_for(session)
    if not on:
        f.stop()
        return f
    if f.running:
        return f
    scan = session.require_scan()
    if (scan.metadata or {}).get("format") != "bliss":
        raise WeakbeamError(f"{scan.source}: Follow reads Bliss master files being written; this scan is not one")
    clf = session.classifier
    if clf is None:
        from ..core.classification.modelfile import load_default_model

        clf = load_default_model()
    clf = clf.with_patch_size(session.patch_size)

    def said(ev: Any) -> None:
        if status is None:
            return
        if ev.kind == "frame":
            wb = ev.weak_beam
            status.setText(f"Following scan {ev.scan}: frame {ev.index + 1}"
                           + (f" - {wb.summary()}" if wb is not None else ""))
        elif ev.kind == "scan_done":
            status.setText(f"Scan {ev.scan} ended; final labels shown. Waiting for the next scan...")

    def ended() -> None:
        if status is not None:
            status.setText("Follow stopped")

    from ._notify import show_worker_error

    f.start(str(scan.source), clf, scan.scan_names[-1], idle_timeout, on_event=said, on_finished=ended,
            on_error=show_worker_error, first_layer=scan.n_layers - 1)
    return f
