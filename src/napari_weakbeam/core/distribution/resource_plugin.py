"""The Dask worker plugin that loads a task's resource once per worker (imported only when a
cluster is used, so one-process runs never import ``distributed``)."""

from __future__ import annotations

from typing import Any, Callable

from distributed.diagnostics.plugin import WorkerPlugin


class ResourcePlugin(WorkerPlugin):
    """Runs ``on_setup()`` on every worker (present and future) and ``on_teardown()`` when it is
    removed; both are picklable callables (partials of module-level functions)."""

    def __init__(self, on_setup: Callable[[], Any], on_teardown: Callable[[], Any]):
        self.on_setup, self.on_teardown = on_setup, on_teardown

    def setup(self, worker: Any) -> None:
        self.on_setup()

    def teardown(self, worker: Any) -> None:
        self.on_teardown()
