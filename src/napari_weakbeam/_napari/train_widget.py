"""Train dock widget: fine-tune the WB/SB classifier on the painted labels in a separate process.

The widget only collects plain settings. A napari generator worker reads the labelled frames and
hands them to a :class:`~napari_weakbeam.core.classification.train_process.TrainingProcess` (so the training loop
never holds the viewer's interpreter lock), then relays its reports: a ``TrainProgress`` at most
~4 times a second (Stop takes effect within one batch) and a snapshot of the classifier after
every epoch, which the Predictions widget uses to refresh the overlay.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import WeakbeamError
from ..core.classification.train_process import TrainingProcess
from ._curves import LiveCurves
from ._jobs import TrainSettings, start_value, train_job
from ._files import ask_open_path, ask_save_path
from ._notify import report_errors, show_info, worker_error_to
from ._dock import tabify_when_docked
from ._session import get_session
from .writer import layer_to_annotations

if TYPE_CHECKING:
    import napari

START_FROM = ("default model", "current model", "model file", "scratch")
DEVICES = ("auto", "cpu", "cuda", "mps")
MODEL_FILTER = "Model (*.pt)"


class TrainWidget(QWidget):
    """Epochs, learning rate, batch size, start model, device; Start/Stop; progress and curves."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        tabify_when_docked(self)
        viewer = self.viewer = self.session.viewer
        self.worker = None
        self.process = TrainingProcess()
        self.training = False  # the training process has started on the inputs
        self.destroyed.connect(self.process.close)  # (the process's method: no reference to the widget)
        self.history: dict[str, list[float]] = {}  # the progress shown (at most ~4 updates a second)
        self.batches_done = 0

        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10000)
        self.epochs_spin.setValue(TrainSettings.epochs)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(1e-5, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(TrainSettings.lr)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(TrainSettings.batch_size)
        self.start_combo = QComboBox()
        self.start_combo.addItems(START_FROM)
        self.model_path_edit = QLineEdit()
        self.model_path_edit.setPlaceholderText("model file (.pt)")
        self.browse_button = QPushButton("Browse...")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_label = QLabel()
        self.start_button = QPushButton("Start training")
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        self.status_label = QLabel("Paint labels of both classes, then Start.")
        self.status_label.setWordWrap(True)
        self.canvas = LiveCurves()
        self.save_button = QPushButton("Save model...")
        self.load_button = QPushButton("Load model...")

        form = QFormLayout()
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Learning rate", self.lr_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Start from", self.start_combo)
        path_row = QHBoxLayout()
        path_row.addWidget(self.model_path_edit)
        path_row.addWidget(self.browse_button)
        form.addRow("", path_row)
        device_row = QHBoxLayout()
        device_row.addWidget(self.device_combo)
        device_row.addWidget(self.device_label, 1)
        form.addRow("Device", device_row)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.start_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.canvas)
        layout.addLayout(files)
        layout.addStretch(1)

        self.start_button.clicked.connect(self.toggle)
        self.browse_button.clicked.connect(lambda: self._browse())
        self.start_combo.currentTextChanged.connect(self._update_path_enabled)
        self.device_combo.currentTextChanged.connect(self._update_device_label)
        self.save_button.clicked.connect(lambda: self.save_model())
        self.load_button.clicked.connect(lambda: self.load_model())
        self._update_path_enabled()
        self._update_device_label()
        self._draw_curves()

    def warm_up(self) -> None:
        """Start the training process and its imports (done when the widget is first shown)."""
        self.process.warm_up()

    @property
    def warmup_worker(self) -> TrainingProcess | None:
        """The training process while it starts up, else None (not started, or ready)."""
        return self.process if self.process.starting else None

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt)
        try:
            self.warm_up()
        except WeakbeamError:  # (not here: Start says why, in the status line)
            pass
        super().showEvent(event)

    # -- settings -----------------------------------------------------------------------------
    def settings(self) -> TrainSettings:
        return TrainSettings(
            epochs=self.epochs_spin.value(),
            lr=self.lr_spin.value(),
            batch_size=self.batch_spin.value(),
            start_from=self.start_combo.currentText(),
            model_path=self.model_path_edit.text().strip(),
            device=self.device_combo.currentText(),
            patch_size=self.session.patch_size,
        )

    def _update_path_enabled(self, *args: Any) -> None:
        enabled = self.start_combo.currentText() == "model file"
        self.model_path_edit.setEnabled(enabled)
        self.browse_button.setEnabled(enabled)

    @report_errors
    def _update_device_label(self, *args: Any) -> str:
        from ..core.classification.device import resolve_device

        try:
            device = str(resolve_device(self.device_combo.currentText()))
        except WeakbeamError:
            self.device_label.setText("<span style='color:#e06c75'>not available here</span>")
            raise
        self.device_label.setText(f"in use: <b>{device}</b>")
        return device

    def _browse(self) -> None:
        path = ask_open_path(self, "Start from model", MODEL_FILTER)
        if path:
            self.model_path_edit.setText(path)

    # -- start / stop -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def toggle(self) -> None:
        """The one Start/Stop button."""
        if self.running:
            self.stop()
        else:
            self.start()

    @report_errors
    def start(self) -> None:
        """Check the labels and the device, then train in a worker thread."""
        if self.running:
            return
        from ..core.classification.device import resolve_device

        scan = self.session.require_scan()
        layer = self.session.require_annotations()
        annotations = layer_to_annotations(np.array(layer.data, copy=True), layer.metadata)
        counts = np.bincount(annotations.label.ravel(), minlength=3)
        if counts[1] == 0 or counts[2] == 0:
            raise WeakbeamError(
                f"training needs labels of both classes: {counts[1]} weak-beam and {counts[2]} "
                f"strong-beam patches are labelled (paint some of each)"
            )
        settings = self.settings()
        if settings.start_from == "current model":
            if self.session.classifier is None:
                raise WeakbeamError("there is no current model yet: train or load one, or start from the default model")
            settings.start_model = self.session.classifier
        start_value(settings)
        device = resolve_device(settings.device)
        self.device_label.setText(f"in use: <b>{device}</b>")
        self.batches_done = 0
        self.history = {"step": [], "loss": [], "accuracy": [], "val_step": [], "val_loss": [], "val_accuracy": []}
        self.canvas.clear()
        self.canvas.epochs = settings.epochs
        self.progress.setValue(0)
        self.status_label.setText(f"Training on {device} ({counts[1]} WB, {counts[2]} SB patches)...")
        self.session.ensure_predictions()  # add the overlay layers now, not mid-training
        self._draw_curves()
        worker = create_worker(train_job, self.process, scan, annotations, settings)
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(worker_error_to(self))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.start_button.setText("Stop")
        worker.start()

    def stop(self) -> None:
        """Stop after the current batch (the last finished epoch's model is kept)."""
        if self.worker is None:
            return
        if self.training:
            self.process.stop()  # the training ends after this batch and keeps the best checkpoint
        else:
            self.worker.quit()  # still preparing: abandon at the next yield
        self.start_button.setText("Stopping...")
        self.start_button.setEnabled(False)

    # -- worker slots (GUI thread) --------------------------------------------------------------
    def _on_yielded(self, ev: Any) -> None:
        self.training = True  # the process has the inputs: Stop goes to it
        if ev.what == "epochs":  # payload: an EpochSnapshot
            self.session.set_classifier(ev.payload.classifier, f"training, epoch {ev.payload.epoch}")
            return
        p = ev.payload
        if p.done:
            self.status_label.setText(p.message or "training finished")
            self.progress.setValue(100)
            return
        epochs = max(1, p.epochs)
        total = epochs * max(1, p.n_batches)
        done = self.batches_done = (p.epoch - 1) * p.n_batches + p.batch
        self.progress.setValue(int(100 * done / total))
        step = p.epoch - 1 + p.batch / max(1, p.n_batches)
        self.history["step"].append(step)
        self.history["loss"].append(float(p.loss))
        self.history["accuracy"].append(float(p.accuracy))
        self.canvas.add(step, float(p.loss), float(p.accuracy))
        if p.val_loss is not None and p.batch == p.n_batches:
            self.history["val_step"].append(step)
            self.history["val_loss"].append(float(p.val_loss))
            self.history["val_accuracy"].append(float(p.val_accuracy))
            self.canvas.add_validation(step, float(p.val_loss), float(p.val_accuracy))
        text = f"epoch {p.epoch}/{epochs}, batch {p.batch}/{p.n_batches}: loss {p.loss:.3f}, accuracy {p.accuracy:.1%}"
        if p.val_accuracy is not None:
            text += f", validation {p.val_accuracy:.1%}"
        self.status_label.setText(text)
        self._draw_curves()

    def _on_returned(self, classifier: Any) -> None:
        if classifier is not None:
            self.session.set_classifier(classifier, "trained here")
            show_info(f"training finished: {classifier.describe()}")

    def _on_finished(self) -> None:
        self.worker = None
        self.training = False
        self.start_button.setText("Start training")
        self.start_button.setEnabled(True)
        self._draw_curves()

    def _draw_curves(self) -> None:
        self.canvas.update()  # a QPainter repaint: a few ms, fine after every batch

    # -- model files ----------------------------------------------------------------------------
    @report_errors
    def save_model(self, path: str | Path | None = None) -> Path | None:
        """Save the current classifier (weights + settings) to a model file."""
        from ..core.classification.modelfile import save_model

        classifier = self.session.classifier
        if classifier is None:
            raise WeakbeamError("no trained model to save yet: train one or load one first")
        if path is None:
            path = ask_save_path(self, "Save model", "weakbeam_model.pt", MODEL_FILTER)
            if not path:
                return None
        out = save_model(path, classifier)
        show_info(f"saved {classifier.describe()} to {out}")
        return Path(out)

    @report_errors
    def load_model(self, path: str | Path | None = None) -> Any:
        """Load a model file; it becomes the classifier for predictions and further training."""
        from ..core.classification.modelfile import load_model

        if path is None:
            path = ask_open_path(self, "Load model", MODEL_FILTER)
            if not path:
                return None
        classifier = load_model(path)
        self.session.set_classifier(classifier, str(path))
        self.model_path_edit.setText(str(path))
        self.start_combo.setCurrentText("model file")
        show_info(f"loaded {classifier.describe()} from {path}")
        return classifier

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt)
        self.stop()
        self.process.close()
        super().closeEvent(event)
