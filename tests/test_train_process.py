"""Training in a separate process (core.classification.train_process): the reports and the model come back, Stop
ends it within a batch, the child's errors and its death become one-line errors, and a later
training starts a fresh process."""

from __future__ import annotations

import os

import numpy as np
import pytest

from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.train_process import EpochSnapshot, TrainingProcess
from napari_weakbeam.core.classification.training import TrainConfig, TrainProgress
from test_models_synth import synth_frames

P = 32


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"arch": "wbnet", "patch_size": P, "epochs": 2, "seed": 0, "device": "cpu",
                          "num_threads": 1, **kw})


def _drain(gen):
    items = []
    try:
        while True:
            items.append(next(gen))
    except StopIteration as stop:
        return items, stop.value


def test_training_process_reports_stops_fails_and_restarts():
    frames, classes, _ = synth_frames(8, (128, 128), P, seed=3)
    process = TrainingProcess()
    try:
        process.warm_up()
        child = process._process.pid
        assert child != os.getpid()

        # A whole training: progress per batch, a snapshot per epoch, the trained model returned.
        items, model = _drain(process.run(frames, classes, cfg(epochs=2)))
        progress = [i for i in items if isinstance(i, TrainProgress)]
        snapshots = [i for i in items if isinstance(i, EpochSnapshot)]
        assert [s.epoch for s in snapshots] == [1, 2]
        assert progress[-1].done and "finished 2 epochs" in progress[-1].message
        assert model.provenance["trained_epochs"] == 2 and model.patch_size == P
        assert process._process.pid == child  # the same warm process, reused

        # Stop: the training ends after the batch in progress, keeping the best epoch's model.
        gen = process.run(frames, classes, cfg(epochs=500, batch_size=2))
        first = next(gen)
        assert isinstance(first, TrainProgress)
        process.stop()
        items, model = _drain(gen)
        done = [i for i in items if isinstance(i, TrainProgress)][-1]
        assert done.done and "stopped by the user" in done.message and done.epoch < 500
        assert model is not None

        # An error in the child comes back as one line (bad labels: one class only).
        with pytest.raises(WeakbeamError, match="only weak beam"):
            _drain(process.run(frames, np.where(classes == 2, 0, classes), cfg()))

        # The child dies mid-training: a one-line error, then a fresh process for the next run.
        gen = process.run(frames, classes, cfg(epochs=500, batch_size=2))
        next(gen)
        process._process.kill()
        with pytest.raises(WeakbeamError, match="training process ended unexpectedly"):
            _drain(gen)
        items, model = _drain(process.run(frames, classes, cfg(epochs=1)))
        assert model.provenance["trained_epochs"] == 1 and process._process.pid != child
    finally:
        process.close()
    assert process._process is None
