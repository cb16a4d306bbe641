"""Training in a separate process, so the training loop never holds the viewer's interpreter lock.

:class:`TrainingProcess` keeps one worker process (``spawn``: safe beside Qt's threads), started on
first use and reused, so torch is imported there once. :meth:`TrainingProcess.run` sends it the
training inputs and yields what the :class:`~.training.Trainer` reports (at most ~20
:class:`~.training.TrainProgress` a second, plus every epoch's end), an :class:`EpochSnapshot`
after every epoch, and returns the trained classifier. :meth:`TrainingProcess.stop` ends the
training after the current batch, as :meth:`Trainer.stop` does. No Qt here.
"""

from __future__ import annotations

import copy
import multiprocessing
import queue
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .errors import WeakbeamError

MIN_PROGRESS_S = 0.05  # at most ~20 progress reports a second (and every epoch's end)
_END = "end of training"  # the last item a training puts on the queue

_channel: tuple[Any, Any] | None = None  # (queue, stop event), in the worker process


@dataclass
class EpochSnapshot:
    """Sent after each epoch: a copy of the classifier as it is then, to predict with."""

    epoch: int
    classifier: Any


def _connect(reports: Any, stop: Any) -> None:
    global _channel
    _channel = (reports, stop)


def warm_up() -> None:
    """Import what a training step imports (torch.optim pulls in torch._dynamo: seconds) and run one
    step, so the first training does not wait for it."""
    import torch
    import torch._dynamo  # noqa: F401
    import torch.optim  # noqa: F401

    from . import classifier, modelfile, training  # noqa: F401

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.zeros(1, 2)).sum().backward()
    opt.step()


def _train(frames: np.ndarray, labels: np.ndarray, config: Any, features: Any, levels: Any) -> Any:
    """Worker body: train, putting reports on the queue; returns the trained classifier."""
    from .training import Trainer

    assert _channel is not None
    reports, stop = _channel
    try:
        trainer = Trainer(frames, labels, config, features, levels)
        last = 0.0
        for progress in trainer.run():
            if stop.is_set():
                trainer.stop()  # run() ends after this batch and restores the best checkpoint
            now = time.monotonic()
            epoch_end = progress.batch == progress.n_batches or progress.done
            if epoch_end or now - last >= MIN_PROGRESS_S:
                last = now
                reports.put(progress)
            if progress.batch == progress.n_batches and not progress.done:
                # a copy: the queue pickles in a background thread while training goes on
                reports.put(EpochSnapshot(progress.epoch, copy.deepcopy(trainer.classifier).eval()))
        return trainer.classifier
    finally:
        reports.put(_END)


class TrainingProcess:
    """One worker process for trainings, one at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._reports: Any = None
        self._stop: Any = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._reports, self._stop = self._context.Queue(), self._context.Event()
            self._pool = ProcessPoolExecutor(1, mp_context=self._context, initializer=_connect,
                                             initargs=(self._reports, self._stop))
        return self._pool

    def warm_up(self) -> Future:
        """Start the process and its imports now (returns when it is ready: ``.done()``)."""
        return self._ensure_pool().submit(warm_up)

    def stop(self) -> None:
        """End the running training after its current batch (the best epoch's model is kept)."""
        if self._stop is not None:
            self._stop.set()

    def run(self, frames: Any, labels: np.ndarray, config: Any, features: Any = None, levels: Any = None,
            poll_s: float = 0.05) -> Iterator[Any]:
        """Train in the process; yields TrainProgress and EpochSnapshot, returns the classifier.
        The inputs are those of :class:`~.training.Trainer` (lazy frames are read here first)."""
        pool = self._ensure_pool()
        self._stop.clear()
        while True:  # nothing left over from an earlier training
            try:
                self._reports.get_nowait()
            except queue.Empty:
                break
        try:
            future = pool.submit(_train, np.asarray(frames), np.asarray(labels), config, features, levels)
            while True:
                try:
                    item = self._reports.get(timeout=poll_s)
                except queue.Empty:
                    if future.done() and future.exception() is not None:
                        return future.result()  # died before its last report: raises why
                    continue
                if isinstance(item, str) and item == _END:
                    return future.result()  # raises the training's error, if any
                yield item
        except BrokenProcessPool as exc:
            self.close()  # a fresh process next time
            raise WeakbeamError(f"the training process ended unexpectedly ({exc}): try again, with a smaller "
                                f"batch size if it ran out of memory") from None

    def close(self) -> None:
        """Stop any training and let the process exit (a later run starts a new one)."""
        self.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
