"""What the Train widget shows of a training: the labels check before it, and its progress (history,
curves, status line). The settings handed to the worker are _jobs.TrainSettings."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import WeakbeamError

START_FROM = ("default model", "current model", "model file", "scratch")


def check_both_classes(label: np.ndarray) -> tuple[int, int]:
    """(weak-beam, strong-beam) patches labelled; a one-line error unless both are there."""
    counts = np.bincount(np.asarray(label).ravel(), minlength=3)
    if counts[1] == 0 or counts[2] == 0:
        raise WeakbeamError(
            f"training needs labels of both classes: {counts[1]} weak-beam and {counts[2]} "
            f"strong-beam patches are labelled (paint some of each)"
        )
    return int(counts[1]), int(counts[2])


class TrainingView:
    """The progress of one training as the widget shows it: ``history`` (batches and validations),
    the live ``curves`` (_curves.LiveCurves), a percentage and a status line."""

    def __init__(self, curves: Any):
        self.curves = curves
        self.history: dict[str, list[float]] = {}
        self.batches_done = 0

    def start(self, epochs: int) -> None:
        self.batches_done = 0
        self.history = {"step": [], "loss": [], "accuracy": [], "val_step": [], "val_loss": [], "val_accuracy": []}
        self.curves.clear()
        self.curves.epochs = epochs

    def add(self, p: Any) -> tuple[int, str]:
        """One TrainProgress -> (percent done, status line)."""
        if p.done:
            return 100, p.message or "training finished"
        epochs = max(1, p.epochs)
        done = self.batches_done = (p.epoch - 1) * p.n_batches + p.batch
        step = p.epoch - 1 + p.batch / max(1, p.n_batches)
        for key, value in (("step", step), ("loss", float(p.loss)), ("accuracy", float(p.accuracy))):
            self.history[key].append(value)
        self.curves.add(step, float(p.loss), float(p.accuracy))
        if p.val_loss is not None and p.batch == p.n_batches:
            for key, value in (("val_step", step), ("val_loss", float(p.val_loss)), ("val_accuracy", float(p.val_accuracy))):
                self.history[key].append(value)
            self.curves.add_validation(step, float(p.val_loss), float(p.val_accuracy))
        text = f"epoch {p.epoch}/{epochs}, batch {p.batch}/{p.n_batches}: loss {p.loss:.3f}, accuracy {p.accuracy:.1%}"
        if p.val_accuracy is not None:
            text += f", validation {p.val_accuracy:.1%}"
        return int(100 * done / (epochs * max(1, p.n_batches))), text
