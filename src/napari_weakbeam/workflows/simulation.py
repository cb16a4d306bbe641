"""Simulate a DFXM layer scan with ground truth into a Bliss file."""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

from ..core.atomic import check_replaceable
from ..core.simulate import SimulationParams, simulate_to_file
from .progress import Progress, Workflow


class _Cancelled(Exception):
    pass


def simulate(out: str | os.PathLike, params: SimulationParams, *, external: bool = False,
             compression: str | None = None, zigzag: bool = False, overwrite: bool | None = None) -> Workflow[Any]:
    """Simulate ``params`` into ``out`` layer by layer (memory: one layer); returns the GroundTruth.

    ``out`` may replace an earlier simulation (``overwrite=False``: no existing file at all),
    never a file of another kind (core.atomic.check_replaceable), checked before any work.

    Yields a "frames" :class:`Progress` as frames are made. The writer streams frames it pulls
    itself, so it runs in a helper thread; closing the generator cancels it at the next frame
    (the partial file is removed, as on any failure).
    """
    check_replaceable(out, "simulation", group="ground_truth", overwrite=overwrite)
    events: queue.Queue = queue.Queue()
    cancelled = threading.Event()
    total = params.layers * params.frames

    def progress(done: int, n: int) -> None:
        if cancelled.is_set():
            raise _Cancelled
        events.put(Progress("frames", done, n, f"{done}/{n} frames"))

    def work() -> None:
        try:
            events.put(("done", simulate_to_file(out, params, progress=progress, external=external,
                                                 compression=compression, zigzag=zigzag)))
        except BaseException as exc:  # handed to the caller's thread
            events.put(("error", exc))

    thread = threading.Thread(target=work, name="weakbeam-simulate", daemon=True)
    thread.start()
    try:
        yield Progress("frames", 0, total, f"0/{total} frames")
        while True:
            item = events.get()
            if isinstance(item, Progress):
                yield item
                continue
            kind, value = item
            if kind == "error":
                raise value
            return value
    finally:
        cancelled.set()
        thread.join()
