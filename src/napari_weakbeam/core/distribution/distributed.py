"""Per-layer work mapped over Dask: one process, a LocalCluster, or any ``dask.distributed`` scheduler.

The unit of work is one layer. A task receives a :class:`ScanSpec` (path, scans, detector), reopens
the scan lazily where it runs and reads only its layer, so a worker's memory is bounded by a layer,
never by the dataset. :func:`iter_layer_results` yields each result as soon as it arrives
(``as_completed``); the workflows write it at once, so an interrupted run loses at most the layers
in flight and a rerun with ``resume=True`` skips the layers already written.

A large read-only resource (the classifier) is sent once per worker through a ``WorkerPlugin``, not
once per task; CPU workers limit torch to ``torch_threads`` intra-op threads so that N workers on N
cores do not oversubscribe them; GPU workers load the resource on their GPU (``device="auto"``).
A worker that dies mid-run is replaced (nanny) and its layers are rescheduled by Dask, up to
``distributed.scheduler.allowed-failures`` times per layer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import dask
import numpy as np

from ..errors import WeakbeamError
from ..scanfiles.scan import Scan

#: Seconds to wait for a ``--scheduler`` address before giving up with a one-line error.
CONNECT_TIMEOUT_S = 10.0
#: How often a layer may be on a worker that dies before the run fails (Dask's default is 3).
ALLOWED_FAILURES = 3


@dataclass(frozen=True)
class ScanSpec:
    """How to reopen a scan anywhere: the arguments of ``open_scan``, small and picklable."""

    source: str
    scans: tuple[str, ...] | None = None
    detector: str | None = None
    pixel_size: float | None = None
    angles: tuple[tuple[float, ...], ...] | None = None
    layer_positions: tuple[float, ...] | None = None

    @classmethod
    def from_scan(cls, scan: Scan) -> "ScanSpec":
        """The spec that reopens ``scan`` (same source, scans, detector, pixel size, and the angles
        and layer positions of formats that take them from the user, such as TIFF stacks)."""
        if not scan.source:
            raise WeakbeamError("the scan has no source file, so workers cannot reopen it")
        user_given = "angles_are_frame_indices" in scan.metadata
        return cls(
            source=str(scan.source),
            scans=tuple(scan.scan_names) or None,
            detector=scan.detector,
            pixel_size=scan.pixel_size,
            angles=tuple(map(tuple, scan.angles.tolist())) if user_given else None,
            layer_positions=tuple(scan.layer_positions.tolist()) if user_given else None,
        )

    def open(self) -> Scan:
        """Open the scan (lazily: frames are read only when a layer is computed).

        Cached per process (a worker opens each scan once), keyed also by the file's size and
        modification time, so a rewritten file is opened again.
        """
        return _open_cached(self, _file_stamp(self.source))


def _file_stamp(source: str) -> tuple[int, int] | None:
    path = source.split("::", 1)[0]
    try:
        st = os.stat(path)
    except OSError:
        return None  # a glob or a missing file: open_scan says what is wrong
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4)
def _open_cached(spec: ScanSpec, stamp: tuple[int, int] | None) -> Scan:
    from ..scanfiles.readers import open_scan

    return open_scan(
        spec.source,
        scans=list(spec.scans) if spec.scans else None,
        detector=spec.detector,
        pixel_size=spec.pixel_size,
        angles=np.asarray(spec.angles) if spec.angles is not None else None,
        layer_positions=np.asarray(spec.layer_positions) if spec.layer_positions is not None else None,
    )


@dataclass(frozen=True)
class LayerTask:
    """The work for one layer: ``func(scan, layer, resource, **layer_kwargs(layer)) -> result``.

    ``func`` and ``load_resource`` must be module-level functions (or partials of them).
    ``resource`` (bytes, e.g. a serialised model) is turned into an object by
    ``load_resource(resource, device)`` once per worker process (or once in-process).
    ``layer_kwargs(layer)`` (evaluated by the client) gives small per-layer inputs, e.g. labels.
    """

    func: Callable[..., Any]
    resource: bytes | None = None
    load_resource: Callable[[bytes, str], Any] | None = None
    device: str = "auto"
    layer_kwargs: Callable[[int], dict[str, Any]] | None = None

    def kwargs(self, layer: int) -> dict[str, Any]:
        return self.layer_kwargs(layer) if self.layer_kwargs is not None else {}

    @property
    def resource_key(self) -> str | None:
        if self.resource is None:
            return None
        digest = hashlib.sha256(self.resource).hexdigest()[:16]
        return f"weakbeam-resource-{digest}-{self.device}"


# Resources loaded in this process (a worker, or the client in one-process runs), by key.
_RESOURCES: dict[str, Any] = {}
#: How many times this process has loaded a resource (checked by tests: once per worker).
RESOURCE_LOADS: dict[str, int] = {}


def _load_resource(key: str, payload: bytes, loader: Callable[[bytes, str], Any], device: str) -> Any:
    if key not in _RESOURCES:
        _RESOURCES[key] = loader(payload, device)
        RESOURCE_LOADS[key] = RESOURCE_LOADS.get(key, 0) + 1
    return _RESOURCES[key]


#: Torch threads "as the worker's environment says": $WEAKBEAM_TORCH_THREADS there, else 1.
WORKER_DEFAULT = -1


def limit_torch_threads(n: int | None) -> None:
    """Limit torch intra-op threads in this thread (OpenMP counts are per calling thread).

    ``None`` leaves them alone; :data:`WORKER_DEFAULT` reads ``$WEAKBEAM_TORCH_THREADS`` here (1
    when unset), so workers started by hand or by SLURM choose their own.
    """
    if n is None:
        return
    if n == WORKER_DEFAULT:
        n = _default_torch_threads()
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _setup_resource(key: str, payload: bytes, loader: Callable, device: str, torch_threads: int | None) -> None:
    """On a worker as it starts (the resource plugin): its torch threads, then the resource."""
    limit_torch_threads(torch_threads)
    _load_resource(key, payload, loader, device)


def _drop_resource(key: str) -> None:
    _RESOURCES.pop(key, None)


def _compute(func: Callable, scan: Scan | ScanSpec, layer: int, resource: Any, kwargs: dict[str, Any]) -> Any:
    """One layer: reopen the scan if given as a spec, read the layer here, never via a cluster."""
    with dask.config.set(scheduler="sync"):
        return func(scan.open() if isinstance(scan, ScanSpec) else scan, layer, resource, **kwargs)


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Let glibc serve frame-sized arrays from the heap again in this worker process (once).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also turns off glibc's
    adaptive mmap threshold: every array above 128 KiB then comes from fresh mmap pages, and a layer
    took 3.4x longer to classify (docs/benchmarks.md). Arrays up to 32 MiB (a 2160x2560 float32
    frame is 22 MB) come from the heap again; freed memory is returned to the OS above 256 MiB.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to undo
        pass


def _run_layer(
    func: Callable,
    spec: ScanSpec,
    layer: int,
    key: str | None,
    torch_threads: int | None,
    kwargs: dict[str, Any],
) -> Any:
    """Executed on a worker: limit torch threads, fetch the resource its plugin loaded, compute."""
    _check_visible(spec)
    _tune_malloc()
    limit_torch_threads(torch_threads)
    resource = None
    if key is not None:
        if key not in _RESOURCES:
            raise RuntimeError(f"resource {key} was not loaded on this worker")
        resource = _RESOURCES[key]
    return _compute(func, spec, layer, resource, kwargs)


def _check_visible(spec: ScanSpec) -> None:
    """A one-line error if this worker does not see the input file (no shared file system)."""
    path = spec.source.split("::", 1)[0]
    if not any(c in path for c in "*?[") and not os.path.exists(path):
        import socket

        raise WeakbeamError(
            f"{path}: not found on worker host {socket.gethostname()}: every worker must see the input "
            "at the same path as the command (a shared file system, docs/cluster.md)"
        )


def _default_torch_threads() -> int:
    """Torch threads per task on a worker started elsewhere: $WEAKBEAM_TORCH_THREADS or 1."""
    try:
        return max(1, int(os.environ.get("WEAKBEAM_TORCH_THREADS", "1")))
    except ValueError:
        return 1


#: Torch threads per task for the clients of clusters started here (cores / workers per job).
_TORCH_THREADS: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()


def set_torch_threads(client: Any, n: int | None) -> None:
    """Run the tasks sent through ``client`` with ``n`` torch threads (for clusters started here,
    whose cores per worker are known); None: each worker's own default."""
    if n is None:
        _TORCH_THREADS.pop(client, None)
    else:
        _TORCH_THREADS[client] = max(1, int(n))


def _worker_torch_threads(client: Any) -> int:
    """Torch threads per task: set for clusters started here, else each worker's own default."""
    return _TORCH_THREADS.get(client, WORKER_DEFAULT)


def iter_layer_results(
    task: LayerTask, scan: Scan | ScanSpec, layers: Iterable[int], *, client: Any = None
) -> Iterator[tuple[int, Any]]:
    """Run ``task`` on every layer; yield ``(layer, result)`` as each layer completes.

    With ``client=None`` the layers run one after the other in this process (on ``scan`` itself);
    with a ``distributed.Client`` they run on its workers, which reopen the scan from its
    :class:`ScanSpec`, and arrive in the order they finish. Closing the generator cancels the
    layers still queued or running.
    """
    layers = [int(i) for i in layers]
    if not layers:
        return
    if client is None:
        resource = None if task.resource is None else task.load_resource(task.resource, task.device)
        for layer in layers:
            yield layer, _compute(task.func, scan, layer, resource, task.kwargs(layer))
        return
    spec = scan if isinstance(scan, ScanSpec) else ScanSpec.from_scan(scan)
    yield from _results_on_client(task, spec, layers, client)


def _results_on_client(
    task: LayerTask, spec: ScanSpec, layers: list[int], client: Any
) -> Iterator[tuple[int, Any]]:
    from distributed import as_completed

    threads = _worker_torch_threads(client)
    key = task.resource_key
    if key is not None:
        from .resource_plugin import ResourcePlugin

        plugin = ResourcePlugin(functools.partial(_setup_resource, key, task.resource, task.load_resource, task.device,
                                                  threads), functools.partial(_drop_resource, key))
        client.register_plugin(plugin, name=key)
    futures = {
        client.submit(
            _run_layer, task.func, spec, layer, key, threads, task.kwargs(layer),
            key=f"weakbeam-layer-{layer}-{os.urandom(4).hex()}",
        ): layer
        for layer in layers
    }
    try:
        for future in as_completed(futures, loop=client.loop):
            layer = futures[future]
            result = _result(future, layer)
            future.release()
            if INTERRUPTED.is_set():
                raise KeyboardInterrupt
            yield layer, result
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        if key is not None:
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(key)


#: Set by :func:`interrupt` (a signal handler): the run stops at the next finished layer even when
#: the KeyboardInterrupt the handler raised was swallowed (raised inside a finalizer, e.g. a Dask
#: future's ``__del__``, Python prints it and goes on).
INTERRUPTED = threading.Event()


def interrupt(signum: int, frame: Any) -> None:
    """Signal handler: record the interruption, then raise KeyboardInterrupt where the main thread is."""
    INTERRUPTED.set()
    raise KeyboardInterrupt


def _result(future: Any, layer: int) -> Any:
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        raise WeakbeamError(
            f"layer {layer}: its worker died {ALLOWED_FAILURES + 1} times (out of memory?); "
            f"give workers more memory (docs/cluster.md) ({exc})"
        ) from None


@contextlib.contextmanager
def open_client(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    client: Any = None,
    timeout: float | None = None,
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for a scheduler address or a new LocalCluster, or None.

    ``scheduler``: an address such as ``tcp://10.0.0.5:8786`` (an unreachable address raises a
    one-line :class:`WeakbeamError` after ``timeout`` seconds, default :data:`CONNECT_TIMEOUT_S`).
    ``workers``: start a LocalCluster
    of that many single-threaded worker processes on loopback, closed on exit.
    """
    if client is not None:
        yield client
        return
    if scheduler and workers:
        raise WeakbeamError("give either --scheduler or --workers, not both")
    if scheduler:
        with connect(scheduler, timeout=timeout) as c:
            yield c
    elif workers:
        with local_cluster(workers) as c:
            yield c
    else:
        yield None


@contextlib.contextmanager
def connect(address: str, *, timeout: float | None = None) -> Iterator[Any]:
    """Connect to an existing scheduler; a one-line :class:`WeakbeamError` if it cannot be reached."""
    from distributed import Client

    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise WeakbeamError(
            f"scheduler {address}: not reachable within {timeout:g} s ({reason[:160]})"
        ) from None
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def local_cluster(workers: int, *, memory_limit: str | float = "auto") -> Iterator[Any]:
    """A LocalCluster of ``workers`` single-threaded processes on 127.0.0.1 and its client.

    Each worker runs one layer at a time with ``cores // workers`` torch threads, so N workers on
    N cores never oversubscribe them. Closed (workers stopped) on exit.
    """
    from distributed import Client, LocalCluster

    if workers < 1:
        raise WeakbeamError(f"--workers {workers}: need at least 1 worker")
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # Dask's HTTP endpoints on loopback, random ports,
            scheduler_kwargs={"dashboard": False},  # without the Bokeh dashboard
            worker_dashboard_address="127.0.0.1:0",
            memory_limit=memory_limit,
            silence_logs=logging.ERROR,  # no nanny chatter on the user's terminal; errors still show
        )
    try:
        client = Client(cluster, set_as_default=False)
        set_torch_threads(client, _cpu_count() // workers)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
