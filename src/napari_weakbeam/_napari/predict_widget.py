"""Predictions dock widget: the per-patch WB/SB overlay and the weak-beam probability image.

The frame in view is re-predicted whenever the classifier changes (after every training epoch, a
model load) and, debounced, when the user moves to another frame or layer. "Predict all" classifies
the whole scan layer by layer in a worker; "Promote" copies the prediction of the frame in view into
the annotations so the user can correct it (label, train, look, correct). Export writes the
``weakbeam classify`` predictions file; Load shows one made by ``weakbeam classify``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.atomic import check_replaceable
from ..core.errors import WeakbeamError
from ..core.patches import grid_shape
from ._files import ask_open_path, ask_save_path
from ._follow import follower_for, toggle_follow
from ._layers import as4d
from ._notify import report_errors, show_info, worker_error_to
from ._dock import tabify_when_docked
from ._scan_jobs import adapt_job, layer_self_check, predict_in_context
from ._session import get_session
from ._threads import gui_friendly_threads

if TYPE_CHECKING:
    import napari

H5_FILTER = "Predictions (*.h5 *.hdf5)"
DEBOUNCE_MS = 150


def _classifier_for(classifier: Any, patch_size: int) -> Any:
    """The given classifier (or the shipped default) at ``patch_size``."""
    if classifier is None:
        from ..core.classification.modelfile import load_default_model

        classifier = load_default_model()
    return classifier.with_patch_size(patch_size)


def predict_frame_job(scan: Any, layer: int, frame: int, classifier: Any, patch_size: int) -> tuple:
    """Worker body: classify one frame -> (layer, frame, label, prob, classifier used).

    It may run beside a training worker: it leaves one core to the GUI thread too."""
    import torch

    torch.set_num_threads(gui_friendly_threads())
    classifier = _classifier_for(classifier, patch_size)
    if not np.isfinite(scan.angles[layer, frame]):  # a padding frame of an aborted layer
        gshape = grid_shape(scan.frame_shape, patch_size)
        return layer, frame, np.zeros(gshape, np.uint8), np.full(gshape, np.nan, np.float32), classifier
    label, prob = predict_in_context(scan, layer, frame, classifier)
    return layer, frame, label, prob, classifier


def predict_all_job(scan: Any, classifier: Any, patch_size: int, scheduler: str = "") -> Iterator[tuple]:
    """Worker body: yields (layer, frames_done, label, prob, self_check) per block of frames, layer
    by layer; ``self_check`` (core.classification.self_check.SelfCheck) comes with a layer's last block, else None.

    With a Dask ``scheduler`` address the layers run on its workers and arrive whole, as they finish.
    """
    from ..core.classification.predictions import iter_classify_layer

    classifier = _classifier_for(classifier, patch_size)
    if scheduler:
        from ..core.distribution.distributed_tasks import iter_classify_layers

        for layer, label, prob in iter_classify_layers(scan, classifier, scheduler=scheduler):
            yield layer, scan.n_frames, label, prob, None
        return
    for layer in range(scan.n_layers):
        out: dict = {}
        for frames_done, label, prob in iter_classify_layer(scan, layer, classifier, context_out=out):
            check = layer_self_check(out.get("context"), prob) if "context" in out else None
            yield layer, frames_done, label.copy(), prob.copy(), check


def export_job(scan: Any, classifier: Any, patch_size: int, path: str, label: np.ndarray,
               prob: np.ndarray, done: np.ndarray, model: str) -> Iterator[int]:
    """Worker body: write the predictions file, classifying the layers not fully predicted yet."""
    from ..core.classification.predictions import PredictionWriter, classify_layer

    classifier = _classifier_for(classifier, patch_size)
    with PredictionWriter(path, scan, patch_size, model=model) as writer:
        for layer in range(scan.n_layers):
            valid = scan.valid_frames(layer)
            if done[layer][valid].all():
                writer.write_layer(layer, label[layer], prob[layer])
            else:
                writer.write_layer(layer, *classify_layer(scan, layer, classifier))
            yield layer
    return path


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
        self.n_frame_predictions = 0
        self._default_used: Any = None  # the shipped default, once a frame was predicted with it

        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.auto_check = QCheckBox("Auto-update the frame in view")
        self.auto_check.setToolTip("Re-predict the frame in view after every epoch, model load and frame change")
        self.auto_check.setChecked(True)
        self.follow_check = QCheckBox("Follow the scan being acquired")  # logic: _follow.py
        self.follow_check.toggled.connect(report_errors(lambda on: toggle_follow(self.session, on, self.status_label)))
        self.frame_button = QPushButton("Predict this frame")
        self.all_button = QPushButton("Predict all")
        self.promote_button = QPushButton("Promote frame to labels")
        self.promote_button.setToolTip("Copy this frame's prediction into the annotations, to correct it")
        self.adapt_button = QPushButton("Adapt to this scan")
        self.adapt_button.setToolTip("Fine-tune the model on this scan's own rocking curves (their confident "
                                     "labels, no painting), then correct what is left by hand")
        self.check_label = QLabel("Self-check: press 'Predict all' to check the model against the rocking curves")
        self.check_label.setWordWrap(True)
        self.adapt_worker = None
        self._checks: dict[int, Any] = {}
        self.export_button = QPushButton("Export...")
        self.export_button.setToolTip("Write the predictions file of 'weakbeam classify'")
        self.load_button = QPushButton("Load...")
        self.load_button.setToolTip("Show a predictions file made by 'weakbeam classify' for this scan")
        self.scheduler_edit = QLineEdit()
        self.scheduler_edit.setPlaceholderText("Scheduler address (optional), e.g. tcp://host:8786")
        self.scheduler_edit.setToolTip("Run 'Predict all' on a Dask cluster (docs/cluster.md); empty: here")
        self._all_done: dict[int, int] = {}
        self.progress = QProgressBar()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)

        grid = QGridLayout()
        grid.addWidget(self.frame_button, 0, 0)
        grid.addWidget(self.all_button, 0, 1)
        grid.addWidget(self.promote_button, 1, 0, 1, 2)
        grid.addWidget(self.export_button, 2, 0)
        grid.addWidget(self.load_button, 2, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.model_label)
        layout.addWidget(self.auto_check)
        layout.addWidget(self.follow_check)
        layout.addLayout(grid)
        layout.addWidget(self.scheduler_edit)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.check_label)
        layout.addWidget(self.adapt_button)
        layout.addStretch(1)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self._auto_predict)

        self.frame_button.clicked.connect(lambda: self.predict_current())
        self.all_button.clicked.connect(lambda: self.toggle_predict_all())
        self.promote_button.clicked.connect(lambda: self.promote_frame())
        self.export_button.clicked.connect(lambda: self.export_predictions())
        self.load_button.clicked.connect(lambda: self.load_predictions())
        self.adapt_button.clicked.connect(lambda: self.adapt())
        viewer.dims.events.current_step.connect(self._on_dims)
        self.session.classifier_changed.connect(self._on_classifier)
        self.session.scan_changed.connect(self._on_scan)
        self._on_scan()

    # -- state ------------------------------------------------------------------------------------
    def _update_model_label(self) -> None:
        c = self.session.classifier
        if c is None:
            self.model_label.setText("Model: the shipped default (train or load one to change it)")
        else:
            self.model_label.setText(f"Model: {self.session.classifier_source} ({c.describe()})")

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
        try:
            layer, frame = self.session.current_index()
        except WeakbeamError:
            return
        pred = self.session.predictions
        if pred is None or self._predicted is None or not self._predicted[layer, frame]:
            self.status_label.setText(f"layer {layer}, frame {frame}: not predicted yet")
            return
        n = np.bincount(np.asarray(as4d(pred.data)[layer, frame]).ravel(), minlength=3)
        self.status_label.setText(f"layer {layer}, frame {frame}: {n[1]} weak-beam, {n[2]} strong-beam patches")

    def _auto_predict(self) -> None:
        try:
            layer, frame = self.session.current_index()
        except WeakbeamError:
            return
        if self._predicted is not None and self._predicted[layer, frame]:
            return
        if self.session.classifier is None and self.session.predictions is None:
            return  # nothing shown yet: wait for a click, a training or a model
        self.predict_current()

    def _mark(self, layer: int, frames: slice | int) -> None:
        scan = self.session.require_scan()
        if self._predicted is None or self._predicted.shape != (scan.n_layers, scan.n_frames):
            self._predicted = np.zeros((scan.n_layers, scan.n_frames), dtype=bool)
        self._predicted[layer, frames] = True

    def _store(self, layer: int, frames: slice | int, label: np.ndarray, prob: np.ndarray) -> None:
        self._mark(layer, frames)
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
        worker = create_worker(
            predict_frame_job, scan, layer, frame, self.session.classifier, self.session.patch_size
        )
        worker.returned.connect(self._on_frame_predicted)
        worker.errored.connect(worker_error_to(self))
        worker.finished.connect(self._on_frame_finished)
        self.frame_worker = worker
        worker.start()

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
        worker = create_worker(predict_all_job, scan, self.session.classifier, self.session.patch_size,
                               self.scheduler_edit.text().strip())
        worker.yielded.connect(self._on_block)
        self._all_done = {}
        worker.errored.connect(worker_error_to(self))
        worker.finished.connect(self._on_all_finished)
        self.progress.setRange(0, scan.n_layers * scan.n_frames)
        self.progress.setValue(0)
        self.all_worker = worker
        self._checks = {}
        self.all_button.setText("Stop")
        worker.start()

    def _on_block(self, item: tuple) -> None:
        layer, frames_done, label, prob, check = item
        if check is not None:
            self._checks[layer] = check
            self._show_check()
        scan = self.session.require_scan()
        self._store(layer, slice(0, frames_done), label[:frames_done], prob[:frames_done])
        self._all_done[layer] = frames_done  # layers may finish in any order on a cluster
        self.progress.setValue(sum(self._all_done.values()))
        self.status_label.setText(f"predicting: layer {layer + 1}/{scan.n_layers}, frame {frames_done}/{scan.n_frames}")

    def _on_all_finished(self) -> None:
        self.all_worker = None
        self.all_button.setText("Predict all")
        if self._predicted is not None and self._predicted.all():
            pred = self.session.predictions
            n = np.bincount(np.asarray(pred.data).ravel(), minlength=3) if pred is not None else [0, 0, 0]
            self.status_label.setText(f"whole scan predicted: {n[1]} weak-beam, {n[2]} strong-beam patches")

    # -- physics self-check and adapting ------------------------------------------------------------
    def _show_check(self) -> None:
        from ..core.classification.self_check import SelfCheck

        total = sum(self._checks.values(), SelfCheck())
        warning = total.warning()
        text = total.summary().replace("self-check:", "Self-check:", 1)
        self.check_label.setText(f"{text}. {warning}" if warning else text)
        self.check_label.setStyleSheet("color: #f5a623" if warning else "")

    @report_errors
    def adapt(self) -> Any:
        """Fine-tune the model in use on this scan's confident rocking-curve labels, in a worker."""
        scan = self.session.require_scan()
        if self.adapt_worker is not None:
            return self.adapt_worker
        worker = create_worker(adapt_job, scan, self.session.classifier, self.session.patch_size)
        worker.yielded.connect(self._on_adapt_progress)
        worker.returned.connect(self._on_adapted)
        worker.errored.connect(worker_error_to(self))
        worker.finished.connect(self._on_adapt_finished)
        self.adapt_button.setEnabled(False)
        self.status_label.setText("adapting: reading the rocking curves of this scan ...")
        self.adapt_worker = worker
        worker.start()
        return worker

    def _on_adapt_progress(self, ev: Any) -> None:
        if ev.batch == ev.n_batches:
            self.status_label.setText(f"adapting: epoch {ev.epoch}/{ev.epochs}, loss {ev.loss:.3f}")

    def _on_adapted(self, classifier: Any) -> None:
        self.session.set_classifier(classifier, "adapted to this scan")
        self.status_label.setText("adapted to this scan: press 'Predict all' to see and check the result")

    def _on_adapt_finished(self) -> None:
        self.adapt_worker = None
        self.adapt_button.setEnabled(True)

    # -- correcting -------------------------------------------------------------------------------
    @report_errors
    def promote_frame(self) -> int:
        """Copy the prediction of the frame in view into the annotations; returns patches copied."""
        layer, frame = self.session.current_index()
        pred = self.session.predictions
        if pred is None or self._predicted is None or not self._predicted[layer, frame]:
            raise WeakbeamError(f"layer {layer}, frame {frame} has no prediction yet: press 'Predict this frame'")
        values = np.array(as4d(pred.data)[layer, frame])
        self.session.set_frame_labels(layer, frame, values)
        self.viewer.layers.selection.active = self.session.require_annotations()
        show_info(f"prediction of layer {layer}, frame {frame} copied to the annotations: paint to correct it")
        return int(np.count_nonzero(values))

    # -- files ------------------------------------------------------------------------------------
    @report_errors
    def export_predictions(self, path: str | Path | None = None) -> Any:
        """Write the predictions file of ``weakbeam classify`` (layers not yet predicted are run)."""
        scan = self.session.require_scan()
        if path is None:
            path = ask_save_path(self, "Export predictions", "predictions.h5", H5_FILTER)
            if not path:
                return None
        check_replaceable(path, "predictions", group="predictions", inputs=scan.input_files())
        shape = self.session.label_shape()
        pred, prob = self.session.predictions, self.session.probability
        label = np.array(as4d(pred.data)) if pred is not None else np.zeros(shape, np.uint8)
        probability = np.array(as4d(prob.data)) if prob is not None else np.zeros(shape, np.float32)
        done = self._predicted if self._predicted is not None else np.zeros(shape[:2], bool)
        worker = create_worker(export_job, scan, self.session.classifier, self.session.patch_size, str(path),
                               label, probability, done.copy(), self.session.classifier_source)
        worker.yielded.connect(lambda layer: self.progress.setValue(layer + 1))
        worker.returned.connect(lambda out: show_info(f"predictions written to {out}"))
        worker.errored.connect(worker_error_to(self))
        worker.finished.connect(self._on_export_finished)
        self.progress.setRange(0, scan.n_layers)
        self.progress.setValue(0)
        self.export_button.setEnabled(False)
        self.export_worker = worker
        worker.start()
        return worker

    def _on_export_finished(self) -> None:
        self.export_worker = None
        self.export_button.setEnabled(True)

    @report_errors
    def load_predictions(self, path: str | Path | None = None) -> None:
        """Show a predictions file (from ``weakbeam classify``) made for this scan."""
        from ..core.classification.predictions import load_predictions

        scan = self.session.require_scan()
        if path is None:
            path = ask_open_path(self, "Load predictions", H5_FILTER)
            if not path:
                return
        loaded = load_predictions(path)
        loaded.check_matches(scan, what=f"predictions {Path(path).name}")
        if loaded.patch_size != self.session.patch_size:
            raise WeakbeamError(
                f"{Path(path).name}: predictions at patch size {loaded.patch_size}, but the annotations use "
                f"{self.session.patch_size}; start annotating at patch size {loaded.patch_size} first"
            )
        for layer in range(scan.n_layers):
            self._store(layer, slice(None), loaded.label[layer], loaded.prob[layer])
        show_info(f"loaded predictions from {path}")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt)
        for worker in (self.frame_worker, self.all_worker, self.export_worker, self.adapt_worker):
            if worker is not None:
                worker.quit()
        super().closeEvent(event)
