"""The one progress event every workflow yields, and how to run a workflow to its end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, TypeVar

R = TypeVar("R")

#: A workflow: a generator of :class:`Progress` events that returns its result.
Workflow = Generator["Progress", None, R]


@dataclass(frozen=True)
class Progress:
    """What a workflow has done so far.

    ``what`` names the unit counted (``"layers"``, ``"frames"``, ``"epochs"``, ``"batches"``,
    ``"frame"`` for a live frame); ``done`` of ``total`` (``total`` 0 when unknown); ``message`` is
    one human line; ``payload`` carries a partial result for a live display (each workflow
    documents its own), or None.
    """

    what: str
    done: int
    total: int
    message: str = ""
    payload: Any = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def run(workflow: Workflow[R], on_progress: Callable[[Progress], Any] | None = None) -> R:
    """Drive ``workflow`` to its end, calling ``on_progress`` on every event; return its result.

    An exception raised by ``on_progress`` (or a KeyboardInterrupt) closes the workflow, which
    cancels its remaining work and keeps what it has finished where it says so.
    """
    try:
        while True:
            event = next(workflow)
            if on_progress is not None:
                on_progress(event)
    except StopIteration as stop:
        return stop.value
    finally:
        workflow.close()
