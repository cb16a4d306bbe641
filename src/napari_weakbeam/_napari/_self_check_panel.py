"""The self-check line and "Adapt to this scan" of the Predictions widget: the physics self-check of
the layers predicted by "Predict all", and fine-tuning the model on the scan's own rocking curves."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QWidget

from ._controls import button, label, start_worker
from ._notify import report_errors, set_status
from ._jobs import adapt_job


class SelfCheckPanel:
    """Self-check of the predicted layers; Adapt fine-tunes the session's model. The line and the
    button (``check_label``, ``adapt_button``) go in the ``owner`` widget's layout, its status line
    says what Adapt does."""

    def __init__(self, session: Any, owner: QWidget):
        self.session, self.owner = session, owner
        self.worker = None
        self.checks: dict[int, Any] = {}  # layer -> core.classification.self_check.SelfCheck
        self.check_label = label("Self-check: press 'Predict all' to check the model against the rocking curves")
        self.adapt_button = button("Adapt to this scan", "Fine-tune the model on this scan's own rocking curves (their "
                                   "confident labels, no painting), then correct what is left by hand", self.adapt)

    def clear(self) -> None:
        self.checks = {}

    def add(self, layer: int, check: Any) -> None:
        """The self-check of one more layer: the line says the total."""
        from ..core.classification.self_check import SelfCheck

        self.checks[layer] = check
        total = sum(self.checks.values(), SelfCheck())
        warning = total.warning()
        text = total.summary().replace("self-check:", "Self-check:", 1)
        self.check_label.setText(f"{text}. {warning}" if warning else text)
        self.check_label.setStyleSheet("color: #f5a623" if warning else "")

    @report_errors
    def adapt(self) -> Any:
        """Fine-tune the model in use on this scan's confident rocking-curve labels, in a worker."""
        scan = self.session.require_scan()
        if self.worker is None:
            self.adapt_button.setEnabled(False)
            set_status(self.owner, "adapting: reading the rocking curves of this scan ...")
            self.worker = start_worker(self.owner, adapt_job, scan, self.session.classifier, self.session.patch_size,
                                       yielded=self._on_progress, returned=self._on_adapted, finished=self._finished)
        return self.worker

    def _on_progress(self, ev: Any) -> None:
        p = ev.payload  # the TrainProgress of a batch (a dict of the set's sizes at the start)
        if hasattr(p, "n_batches") and p.batch == p.n_batches:
            set_status(self.owner, f"adapting: {ev.message}")

    def _on_adapted(self, classifier: Any) -> None:
        self.session.set_classifier(classifier, "adapted to this scan")
        set_status(self.owner, "adapted to this scan: press 'Predict all' to see and check the result")

    def _finished(self) -> None:
        self.worker = None
        self.adapt_button.setEnabled(True)

    @property
    def status_label(self) -> Any:
        return self.owner.status_label
