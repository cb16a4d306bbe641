"""Train dock widget: fine-tune the WB/SB classifier on the painted labels in a separate process.

A worker reads the labelled frames for a core TrainingProcess (the training never holds the viewer's
interpreter lock) and relays its progress (~4 a second; Stop within one batch) and the classifier
after every epoch, which the Predictions widget shows. The settings handed over are plain values."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QLabel, QLineEdit, QProgressBar, QWidget

from ..core.classification.train_process import TrainingProcess
from ..core.errors import WeakbeamError
from ._controls import button, column, combo, float_spin, form, label, row, spin, start_worker
from ._curves import LiveCurves
from ._dock import tabify_when_docked
from ._files import ask_open_path, ask_save_path
from ._notify import report_errors, show_info
from ._session import get_session
from ._jobs import TrainSettings, start_value, train_job
from ._training_view import START_FROM, TrainingView, check_both_classes
from .writer import layer_to_annotations

if TYPE_CHECKING:
    import napari

DEVICES = ("auto", "cpu", "cuda", "mps")
MODEL_FILTER = "Model (*.pt)"


class TrainWidget(QWidget):
    """Epochs, learning rate, batch size, start model, device; Start/Stop; progress and curves."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.session = get_session(viewer)
        tabify_when_docked(self)
        self.viewer = self.session.viewer
        self.worker = None
        self.process = TrainingProcess()
        self.training = False  # the training process has the inputs (Stop goes to it)
        self.destroyed.connect(self.process.close)  # (the process's method: no reference to the widget)

        self.epochs_spin = spin(1, 10000, TrainSettings.epochs)
        self.lr_spin = float_spin(1e-5, 1.0, TrainSettings.lr, decimals=5, step=1e-4)
        self.batch_spin = spin(1, 4096, TrainSettings.batch_size)
        self.start_combo = combo(START_FROM)
        self.model_path_edit = QLineEdit()
        self.model_path_edit.setPlaceholderText("model file (.pt)")
        self.browse_button = button("Browse...", "", lambda: self._browse())
        self.device_combo = combo(DEVICES)
        self.device_label = QLabel()
        self.start_button = button("Start training", "", lambda: self.toggle())
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        self.status_label = label("Paint labels of both classes, then Start.")
        self.canvas = LiveCurves()
        self.view = TrainingView(self.canvas)  # history and curves of the training shown
        self.save_button = button("Save model...", "", lambda: self.save_model())
        self.load_button = button("Load model...", "", lambda: self.load_model())
        column(self, form(("Epochs", self.epochs_spin), ("Learning rate", self.lr_spin), ("Batch size", self.batch_spin),
                          ("Start from", self.start_combo), ("", row(self.model_path_edit, self.browse_button)),
                          ("Device", row(self.device_combo, self.device_label, stretch=1))),
               self.start_button, self.progress, self.status_label, self.canvas, row(self.save_button, self.load_button))

        self.start_combo.currentTextChanged.connect(self._update_path_enabled)
        self.device_combo.currentTextChanged.connect(self._update_device_label)
        self._update_path_enabled()
        self._update_device_label()
        self.canvas.update()  # a QPainter repaint: a few ms

    @property
    def history(self) -> dict[str, list[float]]:
        """The progress shown (at most ~4 updates a second)."""
        return self.view.history

    @property
    def batches_done(self) -> int:
        return self.view.batches_done

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
            epochs=self.epochs_spin.value(), lr=self.lr_spin.value(), batch_size=self.batch_spin.value(),
            start_from=self.start_combo.currentText(), model_path=self.model_path_edit.text().strip(),
            device=self.device_combo.currentText(), patch_size=self.session.patch_size,
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
        n_wb, n_sb = check_both_classes(annotations.label)
        settings = self.settings()
        if settings.start_from == "current model":
            if self.session.classifier is None:
                raise WeakbeamError("there is no current model yet: train or load one, or start from the default model")
            settings.start_model = self.session.classifier  # sent to the training process as it is
        start_value(settings)
        device = resolve_device(settings.device)
        self.device_label.setText(f"in use: <b>{device}</b>")
        self.view.start(settings.epochs)
        self.progress.setValue(0)
        self.status_label.setText(f"Training on {device} ({n_wb} WB, {n_sb} SB patches)...")
        self.session.ensure_predictions()  # add the overlay layers now, not mid-training
        self.canvas.update()  # a QPainter repaint: a few ms
        self.start_button.setText("Stop")
        self.worker = start_worker(self, train_job, self.process, scan, annotations, settings,
                                   yielded=self._on_yielded, returned=self._on_returned, finished=self._on_finished)

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
        else:
            percent, text = self.view.add(ev.payload)
            self.progress.setValue(percent)
            self.status_label.setText(text)
            self.canvas.update()  # a QPainter repaint: a few ms

    def _on_returned(self, classifier: Any) -> None:
        if classifier is not None:
            self.session.set_classifier(classifier, "trained here")
            show_info(f"training finished: {classifier.describe()}")

    def _on_finished(self) -> None:
        self.worker = None
        self.training = False
        self.start_button.setText("Start training")
        self.start_button.setEnabled(True)
        self.canvas.update()  # a QPainter repaint: a few ms

    # -- model files ----------------------------------------------------------------------------
    @report_errors
    def save_model(self, path: str | Path | None = None) -> Path | None:
        """Save the current classifier (weights + settings) to a model file."""
        from ..core.classification.modelfile import save_model

        classifier = self.session.classifier
        if classifier is None:
            raise WeakbeamError("no trained model to save yet: train one or load one first")
        path = path or ask_save_path(self, "Save model", "weakbeam_model.pt", MODEL_FILTER)
        if not path:
            return None
        out = save_model(path, classifier)
        show_info(f"saved {classifier.describe()} to {out}")
        return Path(out)

    @report_errors
    def load_model(self, path: str | Path | None = None) -> Any:
        """Load a model file; it becomes the classifier for predictions and further training."""
        from ..core.classification.modelfile import load_model

        path = path or ask_open_path(self, "Load model", MODEL_FILTER)
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
