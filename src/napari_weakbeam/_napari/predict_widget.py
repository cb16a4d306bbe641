"""Predictions dock widget: the per-patch WB/SB overlay and the weak-beam probability image.

The frame in view is re-predicted when the classifier changes (every epoch, a load) and, debounced,
when the user moves; "Predict all" classifies the whole scan in a worker; "Promote" copies the frame
in view into the annotations to correct it; Export / Load: the ``weakbeam classify`` file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QProgressBar, QWidget

from ..core.errors import WeakbeamError
from ._controls import button, check, column, grid, label, line_edit, on, single_shot, start_worker
from ._dock import tabify_when_docked
from ._files import ask_open_path, ask_save_path
from ._follow import follower_for, toggle_follow
from ._layers import as4d
from ._jobs import export_job, predict_all_job, predict_frame_job
from ._notify import report_errors, show_info
from ._prediction_files import export_inputs, read_predictions
from ._prediction_text import frame_text, mark_predicted, model_text, scan_text, shown_frame
from ._self_check_panel import SelfCheckPanel
from ._session import get_session

if TYPE_CHECKING:
    import napari

H5_FILTER = "Predictions (*.h5 *.hdf5)"
DEBOUNCE_MS = 150


class PredictWidget(QWidget):
    """Live prediction overlay, predict all, promote to annotations, export/load predictions."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        tabify_when_docked(self)
        viewer = self.viewer = self.session.viewer
        self.frame_worker = None
        self.all_worker = None
        self.export_worker = None
        self._pending = False
        self._predicted: np.ndarray | None = None  # bool (layers, frames): shown with this model
        self._all_done: dict[int, int] = {}
        self.n_frame_predictions = 0
        self._default_used: Any = None  # the shipped default, once a frame was predicted with it

        self.model_label = label()
        self.auto_check = check("Auto-update the frame in view", True,
                                "Re-predict the frame in view after every epoch, model load and frame change")
        self.follow_check = check("Follow the scan being acquired")  # logic: _follow.py
        self.follow_check.toggled.connect(report_errors(lambda on_: toggle_follow(self.session, on_, self.status_label)))
        self.frame_button = button("Predict this frame", "", lambda: self.predict_current())
        self.all_button = button("Predict all", "", lambda: self.toggle_predict_all())
        self.promote_button = button("Promote frame to labels", "Copy this frame's prediction into the annotations, "
                                     "to correct it", lambda: self.promote_frame())
        self.export_button = button("Export...", "Write the predictions file of 'weakbeam classify'",
                                    lambda: self.export_predictions())
        self.load_button = button("Load...", "Show a predictions file made by 'weakbeam classify' for this scan",
                                  lambda: self.load_predictions())
        self.scheduler_edit = line_edit("Scheduler address (optional), e.g. tcp://host:8786",
                                        "Run 'Predict all' on a Dask cluster (docs/cluster.md); empty: here")
        self.progress = QProgressBar()
        self.status_label = label()
        self.self_check = SelfCheckPanel(self.session, self)
        column(self, self.model_label, self.auto_check, self.follow_check,
               grid((self.frame_button, 0, 0), (self.all_button, 0, 1), (self.promote_button, 1, 0, 1, 2),
                    (self.export_button, 2, 0), (self.load_button, 2, 1)),
               self.scheduler_edit, self.progress, self.status_label, self.self_check.check_label,
               self.self_check.adapt_button)

        self.timer = single_shot(self, DEBOUNCE_MS, self._auto_predict)
        viewer.dims.events.current_step.connect(self._on_dims)
        on(self, self.session.classifier_changed, self._on_classifier)
        on(self, self.session.scan_changed, self._on_scan)
        self._on_scan()

    # -- state ------------------------------------------------------------------------------------
    def _update_model_label(self) -> None:
        self.model_label.setText(model_text(self.session))

    def _on_scan(self) -> None:
        self._predicted = None
        self._update_model_label()

    def _on_classifier(self, classifier: Any) -> None:
        if classifier is self._default_used:
            self._update_model_label()  # the shipped default this widget just predicted with
            return
        self._predicted = None
        self._update_model_label()
        if self.auto_check.isChecked() and self.session.scan is not None:
            self.predict_current()

    def _on_dims(self, event: Any = None) -> None:
        if self.session.scan is None or follower_for(self.session).running:
            return  # Follow moves to each new frame: it shows its own labels and status
        if self.all_worker is None:
            self._describe_view()  # the status line always names the frame shown
        if self.auto_check.isChecked():
            self.timer.start()  # restarts: only the frame the user settles on is predicted

    def _describe_view(self) -> None:
        text = frame_text(self.session, self._predicted)
        if text is not None:
            self.status_label.setText(text)

    def _auto_predict(self) -> None:
        if self.session.scan is None or shown_frame(self.session, self._predicted) is not None:
            return
        if self.session.classifier is None and self.session.predictions is None:
            return  # nothing shown yet: wait for a click, a training or a model
        self.predict_current()

    def _store(self, layer: int, frames: slice | int, label: np.ndarray, prob: np.ndarray) -> None:
        scan = self.session.require_scan()
        self._predicted = mark_predicted(self._predicted, (scan.n_layers, scan.n_frames), layer, frames)
        self.session.set_predictions(layer, frames, label, prob)

    # -- the frame in view ------------------------------------------------------------------------
    @report_errors
    def predict_current(self) -> None:
        """Predict the frame in view in a worker (queued if one is running)."""
        scan = self.session.require_scan()
        if self.frame_worker is not None:
            self._pending = True
            return
        layer, frame = self.session.current_index()
        self.frame_worker = start_worker(self, predict_frame_job, scan, layer, frame, self.session.classifier,
                                         self.session.patch_size, returned=self._on_frame_predicted,
                                         finished=self._on_frame_finished)

    def _on_frame_predicted(self, result: tuple) -> None:
        layer, frame, label, prob, classifier = result
        if self.session.classifier is None:
            self._default_used = classifier
            self.session.set_classifier(classifier, "shipped default")
        self._store(layer, frame, label, prob)
        self.n_frame_predictions += 1
        if self.all_worker is None:
            self._describe_view()

    def _on_frame_finished(self) -> None:
        self.frame_worker = None
        if self._pending:
            self._pending = False
            self.predict_current()

    # -- the whole scan ---------------------------------------------------------------------------
    def toggle_predict_all(self) -> None:
        if self.all_worker is not None:
            self.all_worker.quit()
        else:
            self.predict_all()

    @report_errors
    def predict_all(self) -> None:
        """Classify every frame of every layer in a worker, updating the overlay as it goes."""
        scan = self.session.require_scan()
        self.session.ensure_predictions()
        self._all_done = {}
        self.self_check.clear()
        self.progress.setRange(0, scan.n_layers * scan.n_frames)
        self.progress.setValue(0)
        self.all_button.setText("Stop")
        self.all_worker = start_worker(self, predict_all_job, scan, self.session.classifier, self.session.patch_size,
                                       self.scheduler_edit.text().strip(), yielded=self._on_block,
                                       finished=self._on_all_finished)

    def _on_block(self, ev: Any) -> None:
        """A block of frames ("frames") or a whole layer ("layers", with its self-check) classified."""
        lab, scan = ev.payload, self.session.require_scan()
        layer = lab.layer
        if lab.check is not None:
            self.self_check.add(layer, lab.check)
        frames_done = ev.done if ev.what == "frames" else scan.n_frames
        if self._all_done.get(layer) != frames_done:  # (in this process its blocks are shown already)
            self._store(layer, slice(0, frames_done), lab.label[:frames_done], lab.prob[:frames_done])
        self._all_done[layer] = frames_done  # layers may finish in any order on a cluster
        self.progress.setValue(sum(self._all_done.values()))
        self.status_label.setText(f"predicting: layer {layer + 1}/{scan.n_layers}, frame {frames_done}/{scan.n_frames}")

    def _on_all_finished(self) -> None:
        self.all_worker = None
        self.all_button.setText("Predict all")
        if self._predicted is not None and self._predicted.all():
            self.status_label.setText(scan_text(self.session))

    # -- correcting -------------------------------------------------------------------------------
    @report_errors
    def promote_frame(self) -> int:
        """Copy the prediction of the frame in view into the annotations; returns patches copied."""
        layer, frame = self.session.current_index()
        if shown_frame(self.session, self._predicted) is None:
            raise WeakbeamError(f"layer {layer}, frame {frame} has no prediction yet: press 'Predict this frame'")
        values = np.array(as4d(self.session.predictions.data)[layer, frame])
        self.session.set_frame_labels(layer, frame, values)
        self.viewer.layers.selection.active = self.session.require_annotations()
        show_info(f"prediction of layer {layer}, frame {frame} copied to the annotations: paint to correct it")
        return int(np.count_nonzero(values))

    # -- files ------------------------------------------------------------------------------------
    @report_errors
    def export_predictions(self, path: str | Path | None = None) -> Any:
        """Write the predictions file of ``weakbeam classify`` (layers not yet predicted are run)."""
        scan = self.session.require_scan()
        path = path or ask_save_path(self, "Export predictions", "predictions.h5", H5_FILTER)
        if not path:
            return None
        label, probability, done = export_inputs(self.session, path, self._predicted)
        self.progress.setRange(0, scan.n_layers)
        self.progress.setValue(0)
        self.export_button.setEnabled(False)
        self.export_worker = start_worker(
            self, export_job, scan, self.session.classifier, self.session.patch_size, str(path), label, probability,
            done, self.session.classifier_source, yielded=lambda ev: self.progress.setValue(ev.done),
            returned=lambda out: show_info(f"predictions written to {out}"), finished=self._on_export_finished)
        return self.export_worker

    def _on_export_finished(self) -> None:
        self.export_worker = None
        self.export_button.setEnabled(True)

    @report_errors
    def load_predictions(self, path: str | Path | None = None) -> None:
        """Show a predictions file (from ``weakbeam classify``) made for this scan."""
        scan = self.session.require_scan()
        path = path or ask_open_path(self, "Load predictions", H5_FILTER)
        if not path:
            return
        loaded = read_predictions(self.session, path)
        for layer in range(scan.n_layers):
            self._store(layer, slice(None), loaded.label[layer], loaded.prob[layer])
        show_info(f"loaded predictions from {path}")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt)
        for worker in (self.frame_worker, self.all_worker, self.export_worker, self.self_check.worker):
            if worker is not None:
                worker.quit()
        super().closeEvent(event)
