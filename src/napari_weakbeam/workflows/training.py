"""Train or fine-tune the classifier from patch labels, or adapt it to a scan with no painting."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.classification.adapt import adapt_trainer
from ..core.classification.training import TrainConfig, TrainProgress, Trainer, training_inputs
from ..core.errors import WeakbeamError
from .progress import Progress, Workflow


def train(scan: Any, labels: Any, config: TrainConfig, *, process: Any = None,
          source: str = "") -> Workflow[Any]:
    """Train from ``labels`` (layers, frames, grid_rows, grid_cols; 0 = unlabelled, 1 = WB, 2 = SB)
    painted on ``scan``, or from Annotations (their patch size wins); returns the trained
    classifier (the best validation epoch's weights).

    Only the frames holding labels are read. ``process``: a
    :class:`~napari_weakbeam.core.classification.train_process.TrainingProcess` to train in (the
    viewer's interpreter stays free), else this process. Yields "batches" :class:`Progress` events
    (payload: the TrainProgress) and, from a process, an "epochs" event after each epoch (payload:
    an EpochSnapshot with the classifier as it is then). The first event (0 batches done) carries
    the training set's sizes as a dict payload when training here. ``source`` names the labels in
    error messages. Closing the generator stops the training.
    """
    try:
        frames, frame_labels, config, features, levels = training_inputs(scan, labels, config)
        if process is not None:
            return (yield from _in_process(process, frames, frame_labels, config, features, levels))
        trainer = Trainer(frames, frame_labels, config, features, levels)
    except WeakbeamError as exc:
        raise WeakbeamError(f"{source}: {exc}" if source else str(exc)) from None
    return (yield from run_trainer(trainer))


def adapt(scan: Any, config: TrainConfig, layers: list[int] | None = None) -> Workflow[Any]:
    """Fine-tune ``config.start`` (default: the shipped model) on the rocking-curve aid's confident
    labels of up to 4 layers of ``scan`` (or ``layers``), with no painting; events as :func:`train`."""
    return (yield from run_trainer(adapt_trainer(scan, config, layers)))


def run_trainer(trainer: Trainer) -> Workflow[Any]:
    """Run a Trainer in this process, yielding "batches" events; returns its classifier."""
    n_wb, n_sb = trainer.counts[1], trainer.counts[2]
    sizes = {"train": len(trainer.train_idx), "validation": len(trainer.val_idx), "weak_beam": n_wb,
             "strong_beam": n_sb, "device": str(trainer.device)}
    yield Progress("batches", 0, 0, f"training on {sizes['train']} patches, validating on {sizes['validation']} "
                   f"({n_wb} weak beam, {n_sb} strong beam; device {trainer.device})", sizes)
    run = trainer.run()
    try:
        for ev in run:
            yield _batch_event(ev)
            if ev.done:
                break
    finally:
        run.close()  # (early: the best epoch so far is kept)
    return trainer.classifier


def _batch_event(ev: TrainProgress) -> Progress:
    total = ev.epochs * ev.n_batches
    done = total if ev.done else (ev.epoch - 1) * ev.n_batches + ev.batch
    text = ev.message or f"epoch {ev.epoch}/{ev.epochs}, loss {ev.loss:.3f}"
    return Progress("batches", done, total, text, ev)


def _in_process(process: Any, frames: Any, labels: np.ndarray, config: TrainConfig, features: Any,
                levels: Any) -> Workflow[Any]:
    run = process.run(frames, labels, config, features, levels)
    finished = False
    try:
        while True:
            try:
                item = next(run)
            except StopIteration as stop:
                finished = True
                return stop.value
            if isinstance(item, TrainProgress):
                yield _batch_event(item)
            else:  # an EpochSnapshot
                yield Progress("epochs", item.epoch, config.epochs, f"epoch {item.epoch} done", item)
    finally:
        if not finished:
            process.close()  # closed early: a fresh process next time, no stale reports
