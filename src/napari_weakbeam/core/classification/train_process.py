"""Training in a separate process, so the training loop never holds the viewer's interpreter lock.

:class:`TrainingProcess` keeps one worker process (``python -m napari_weakbeam.core.classification.train_process``,
a fresh interpreter that never re-runs the user's script, as multiprocessing's spawn would), started
on first use and reused, so torch is imported there once. It talks over a loopback socket
(``multiprocessing.connection``, with a random key the process gets in its environment; the same on
Linux, macOS and Windows): :meth:`TrainingProcess.run` sends the training inputs and yields
what the :class:`~.training.Trainer` reports (at most ~4 :class:`~.training.TrainProgress` a
second, plus every epoch's end) and an :class:`EpochSnapshot` after every epoch, and returns the
trained classifier; :meth:`TrainingProcess.stop` ends the training after the current batch, as
:meth:`Trainer.stop` does. No Qt here.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import WeakbeamError

MIN_PROGRESS_S = 0.25  # at most ~4 progress reports a second (and every epoch's end): each one repaints
# the Train tab, and a repaint of a window holding napari's OpenGL canvas costs 30-60 ms of GUI time
# with software OpenGL (measured: 20 reports a second took half of the GUI thread's time)
READY, STOP = "ready", "stop"
NICE = 10  # the training process's priority below the viewer's (Unix nice increment)
KEY_ENV = "NAPARI_WEAKBEAM_TRAIN_KEY"  # the connection key, passed in the environment (not on the command line)
CONNECT_TIMEOUT_S = 120.0


@dataclass
class EpochSnapshot:
    """Sent after each epoch: a copy of the classifier as it is then, to predict with."""

    epoch: int
    classifier: Any


@dataclass
class _Done:
    classifier: Any


@dataclass
class _Failed:
    message: str
    user_error: bool  # a WeakbeamError (the user's input), else a bug or a crash in the training


def _send(conn: Connection, obj: Any) -> None:
    """Plain pickles (Connection.send would let torch pass tensors as shared memory between processes
    that are not multiprocessing's own)."""
    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


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


def _train(conn: Connection, frames: np.ndarray, labels: np.ndarray, config: Any, features: Any, levels: Any) -> None:
    """In the worker process: train, sending reports; a STOP message ends it after the batch."""
    from .training import Trainer

    trainer = Trainer(frames, labels, config, features, levels)
    last = 0.0
    for progress in trainer.run():
        while conn.poll():
            if _recv(conn) == STOP:
                trainer.stop()  # run() ends after this batch and restores the best checkpoint
        now = time.monotonic()
        epoch_end = progress.batch == progress.n_batches or progress.done
        if epoch_end or now - last >= MIN_PROGRESS_S:
            last = now
            _send(conn, progress)
        if progress.batch == progress.n_batches and not progress.done:
            _send(conn, EpochSnapshot(progress.epoch, copy.deepcopy(trainer.classifier).eval()))
    _send(conn, _Done(trainer.classifier))


def serve(conn: Connection) -> None:
    """The worker process's loop: warm up, then train each job received, until the socket closes.
    It runs at a lower priority (nice +NICE): when the viewer needs the CPU it gets it first."""
    if hasattr(os, "nice"):
        os.nice(NICE)
    warm_up()
    _send(conn, READY)
    while True:
        try:
            job = _recv(conn)
        except (EOFError, OSError):  # the viewer closed its end
            return
        if job == STOP:  # a stop that came after its training ended
            continue
        try:
            _train(conn, *job)
        except (EOFError, ConnectionError):  # the viewer closed its end mid-training
            return
        except Exception as exc:  # reported to the viewer, which shows it as one line
            _send(conn, _Failed(f"{exc}" if isinstance(exc, WeakbeamError) else f"{type(exc).__name__}: {exc}",
                              isinstance(exc, WeakbeamError)))


class TrainingProcess:
    """One worker process for trainings, one at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._listener: Listener | None = None
        self._accepted: dict[str, Any] = {}
        self._conn: Connection | None = None
        self._ready = False

    def warm_up(self) -> None:
        """Start the process (importing torch and taking one step there) if it is not running; never
        waits for it (it connects back in the background)."""
        if self._process is not None and self._process.poll() is None:
            return
        self.close()
        key = os.urandom(32)
        self._listener = listener = Listener(("127.0.0.1", 0), authkey=key)
        package_root = str(Path(__file__).resolve().parents[2])  # this copy of napari_weakbeam, first
        env = {**os.environ, KEY_ENV: key.hex(),
               "PYTHONPATH": os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        host, port = listener.address
        self._process = subprocess.Popen([sys.executable, "-m", "napari_weakbeam.core.classification.train_process", host, str(port)],
                                         env=env)
        accepted = self._accepted = {}

        def accept() -> None:
            try:
                accepted["conn"] = listener.accept()
            except Exception as exc:  # closed (the process died) or a bad key
                accepted["error"] = exc

        threading.Thread(target=accept, name="weakbeam-train-accept", daemon=True).start()

    def _link(self) -> Connection | None:
        """The connection once the process has connected back (never blocks)."""
        if self._conn is None and "conn" in self._accepted:
            self._conn = self._accepted.pop("conn")
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        return self._conn

    @property
    def ready(self) -> bool:
        """Whether the process has started and warmed up (never blocks)."""
        return self._poll_ready()

    def _poll_ready(self) -> bool:
        """Link the connection and read READY if it has come; whether the process is ready."""
        conn = self._link()
        if not self._ready and conn is not None:
            try:
                if conn.poll():
                    self._ready = _recv(conn) == READY
            except (EOFError, OSError):
                self.close()
        return self._ready

    @property
    def starting(self) -> bool:
        """Whether the process is started but not warmed up yet."""
        return self._process is not None and not self.ready

    def stop(self) -> None:
        """End the running training after its current batch (the best epoch's model is kept)."""
        if self._link() is not None:
            try:
                _send(self._conn, STOP)
            except OSError:
                pass

    def _receive(self, poll_s: float) -> Any:
        """The next message (waiting, never holding the interpreter lock); raises if the process died."""
        assert self._process is not None
        try:
            deadline = time.monotonic() + CONNECT_TIMEOUT_S
            while self._link() is None:  # the process connects back first thing
                if self._process.poll() is not None or "error" in self._accepted or time.monotonic() > deadline:
                    raise EOFError
                time.sleep(poll_s)
            assert self._conn is not None
            while not self._conn.poll(poll_s):
                if self._process.poll() is not None:
                    raise EOFError
            return _recv(self._conn)
        except (EOFError, OSError):
            code = self._process.poll() if self._process is not None else None
            self.close()  # a fresh process next time
            raise WeakbeamError(f"the training process ended unexpectedly (exit code {code}): try again, with a "
                                f"smaller batch size if it ran out of memory") from None

    def run(self, frames: Any, labels: np.ndarray, config: Any, features: Any = None, levels: Any = None,
            poll_s: float = 0.05) -> Iterator[Any]:
        """Train in the process; yields TrainProgress and EpochSnapshot, returns the classifier.
        The inputs are those of :class:`~.training.Trainer` (lazy frames are read here first)."""
        self.warm_up()
        self._poll_ready()
        while not self._ready:
            self._ready = self._receive(poll_s) == READY
        assert self._conn is not None
        _send(self._conn, (np.asarray(frames), np.asarray(labels), config, features, levels))
        while True:
            item = self._receive(poll_s)
            if isinstance(item, _Done):
                return item.classifier
            if isinstance(item, _Failed):
                raise WeakbeamError(item.message if item.user_error else f"training failed: {item.message}")
            yield item

    def close(self) -> None:
        """Let the process exit (closing its socket ends it; a later run starts a new one)."""
        if self._listener is not None:
            self._listener.close()
        self._link()
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and self._process.poll() is None:
            try:
                self._process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                self._process.terminate()  # busy training: no need to wait for its batch
        self._conn, self._process, self._listener, self._ready = None, None, None, False


if __name__ == "__main__":  # the worker process (by its package name, so what it sends unpickles in the viewer)
    from napari_weakbeam.core.classification.train_process import serve as _serve

    _serve(Client((sys.argv[1], int(sys.argv[2])), authkey=bytes.fromhex(os.environ.pop(KEY_ENV))))
