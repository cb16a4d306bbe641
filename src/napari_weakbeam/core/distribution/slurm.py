"""Dask workers as SLURM jobs (``dask_jobqueue.SLURMCluster``), started and stopped around a run.

:func:`slurm_cluster` submits the jobs, waits until the first worker connects (a one-line
:class:`WeakbeamError` if SLURM refuses the jobs, if none starts within ``wait`` seconds, or if they
end without a worker), yields a ``distributed.Client`` and cancels every job on exit, Ctrl-C
included. The scheduler runs in this process; the jobs run ``sys.executable -m distributed.cli.
dask_worker`` (dask-jobqueue's default ``python``), so they need the same Python at the same path.

Settings come from dask-jobqueue's own configuration (``jobqueue: slurm:`` in
``~/.config/dask/jobqueue.yaml``, or a file given as ``config``); :class:`SlurmOptions` fields that
are set override it. Unless the configuration says otherwise each job runs one single-threaded
worker per CPU (``processes = cores``), so a job of N CPUs computes N layers at a time.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import dask

from .distributed import ALLOWED_FAILURES, INTERRUPTED, interrupt, set_torch_threads
from ..errors import WeakbeamError

#: Seconds to wait for the first job to start (``--slurm-wait``).
DEFAULT_WAIT_S = 600.0
#: What a job gets when neither the command line nor the configuration says.
DEFAULTS = {"cores": 1, "memory": "4GB"}  # walltime: dask-jobqueue's (30 min)
_LIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED"}


@dataclass(frozen=True)
class SlurmOptions:
    """What ``--slurm-*`` / ``--cluster`` ask for; ``None``: from dask-jobqueue's configuration."""

    queue: str | None = None
    cores: int | None = None
    memory: str | None = None
    walltime: str | None = None
    jobs: int = 1
    config: str | None = None
    wait: float = DEFAULT_WAIT_S


def load_jobqueue_file(path: str | Path) -> dict[str, Any]:
    """The ``jobqueue: slurm:`` section of a dask-jobqueue YAML file, as dotted dask config keys."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WeakbeamError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise WeakbeamError(f"{path}: not valid YAML ({exc})") from None
    section = data.get("jobqueue", {}).get("slurm") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("jobqueue"), dict) or not isinstance(section, dict):
        raise WeakbeamError(
            f"{path}: no 'jobqueue: slurm:' section (dask-jobqueue's configuration format, docs/cluster.md)"
        )
    return {f"jobqueue.slurm.{key}": value for key, value in section.items()}


def cluster_kwargs(options: SlurmOptions) -> dict[str, Any]:
    """SLURMCluster arguments: the options that are set, else the configuration, else :data:`DEFAULTS`."""
    given = {"queue": options.queue, "cores": options.cores, "memory": options.memory,
             "walltime": options.walltime}
    kwargs: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            value = dask.config.get(f"jobqueue.slurm.{key}", None)
        if value is None:
            value = DEFAULTS.get(key)
        if value is not None:
            kwargs[key] = value
    if options.cores is not None or dask.config.get("jobqueue.slurm.processes", None) is None:
        kwargs["processes"] = kwargs["cores"]  # one single-threaded worker per CPU
    _check(kwargs)
    return kwargs


def _check(kwargs: dict[str, Any]) -> None:
    from dask.utils import parse_bytes

    cores = kwargs["cores"]
    if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
        raise WeakbeamError(f"SLURM cores per job: {cores!r}: need a whole number of at least 1")
    try:
        parse_bytes(str(kwargs["memory"]))
    except (ValueError, TypeError):
        raise WeakbeamError(f"SLURM memory per job: {kwargs['memory']!r}: not a size such as 4GB or 500MB") from None


@contextlib.contextmanager
def slurm_cluster(options: SlurmOptions, *, note: Callable[[str], Any] | None = None) -> Iterator[Any]:
    """Start ``options.jobs`` SLURM jobs of Dask workers; yield a Client once one worker is up.

    ``note(text)`` receives one-line status messages (jobs submitted). All jobs are cancelled
    (``scancel``) on exit, whether the run finished, failed or was interrupted.
    """
    if options.jobs < 1:
        raise WeakbeamError(f"--slurm-jobs {options.jobs}: need at least 1 job")
    with _ctrl_c_raises():  # dask_jobqueue.runner turns Ctrl-C into sys.exit() when imported
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise WeakbeamError("--slurm needs dask-jobqueue: pip install 'napari-weakbeam[cluster]'") from None
    if shutil.which("sbatch") is None:
        raise WeakbeamError("--slurm: sbatch is not on PATH; run the command on a SLURM login node")
    from distributed import Client

    settings = load_jobqueue_file(options.config) if options.config else {}
    settings["distributed.scheduler.allowed-failures"] = ALLOWED_FAILURES
    # Active for the cluster's whole life: dask-jobqueue reads it again for each job it submits.
    # SIGTERM too (kill, or scancel of a job running this command): cancel the jobs, then stop.
    with dask.config.set(settings), _ctrl_c_raises((signal.SIGINT, signal.SIGTERM)):
        kwargs = cluster_kwargs(options)
        try:
            cluster = SLURMCluster(**kwargs)
        except (ValueError, TypeError, OSError) as exc:
            raise WeakbeamError(f"SLURM cluster: {str(exc).splitlines()[0]}") from None
        try:
            client = Client(cluster, set_as_default=False)
            try:
                jobs = _submit(cluster, options.jobs, kwargs)
                if note is not None:
                    note(f"SLURM: submitted job{'s' * (len(jobs) > 1)} {' '.join(jobs)} ({_describe(kwargs)} "
                         "each); waiting for a worker")
                _wait_for_a_worker(client, jobs, options.wait, kwargs)
                set_torch_threads(client, _torch_threads(kwargs))
                watchdog = _Watchdog(client, jobs)
                watchdog.start()
                try:
                    yield client
                except KeyboardInterrupt:
                    if watchdog.reason:  # not Ctrl-C: the watchdog's way to stop a wait for no one
                        raise WeakbeamError(watchdog.reason) from None
                    raise
                finally:
                    watchdog.stop()
            finally:
                with _no_interrupts():
                    client.close()
        finally:
            with _no_interrupts():
                _close(cluster)


def _describe(kwargs: dict[str, Any]) -> str:
    queue = f"partition {kwargs['queue']}, " if kwargs.get("queue") else ""
    cpus = kwargs["cores"]
    return f"{queue}{cpus} CPU{'s' * (cpus > 1)}, {kwargs['memory']}, {kwargs.get('walltime', 'no time limit')}"


def _submit(cluster: Any, jobs: int, kwargs: dict[str, Any]) -> list[str]:
    """Submit the jobs (``sbatch``) and return their ids; a job SLURM would refuse is one line first."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
        script.write(cluster.job_script())
        script.flush()
        check = subprocess.run(["sbatch", "--test-only", script.name], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        lines = [re.sub(r"^(sbatch: error|allocation failure|error): *", "", ln.strip())
                 for ln in check.stderr.splitlines() if ln.strip()]
        reason = "; ".join(dict.fromkeys(lines)) or f"sbatch --test-only exited with {check.returncode}"
        raise WeakbeamError(f"SLURM refuses the worker job ({_describe(kwargs)}): {reason}")
    cluster.scale(jobs=jobs)
    cluster.sync(cluster._correct_state)  # wait until sbatch has returned for every job
    ids = _job_ids(cluster)
    if not ids:
        raise WeakbeamError(f"SLURM: sbatch did not submit the worker jobs ({_describe(kwargs)})")
    return ids


def _job_ids(cluster: Any) -> list[str]:
    return [str(job.job_id) for job in cluster.workers.values() if getattr(job, "job_id", None)]


def job_states(jobs: list[str]) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` from ``squeue`` for the jobs it still knows."""
    if not jobs:
        return {}
    proc = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ",".join(jobs), "-o", "%i|%T|%r"],
        capture_output=True, text=True, timeout=30,
    )
    states = {}
    for line in proc.stdout.splitlines():
        job, state, reason = (line.split("|") + ["", ""])[:3]
        states[job.strip()] = (state.strip(), reason.strip())
    return states


def _wait_for_a_worker(client: Any, jobs: list[str], wait: float, kwargs: dict[str, Any]) -> None:
    deadline = time.monotonic() + wait
    while True:
        if client.scheduler_info(n_workers=-1)["workers"]:
            return
        states = job_states(jobs)
        live = {j: s for j, s in states.items() if s[0] in _LIVE_STATES}
        if not live:
            ended = ", ".join(f"{j} {states[j][0]}" if j in states else f"{j} gone" for j in jobs)
            raise WeakbeamError(
                f"SLURM: the worker jobs ended before a worker connected ({ended}); see their output "
                "(slurm-JOBID.out, or log-directory in the dask-jobqueue configuration)"
            )
        if time.monotonic() >= deadline:
            status = ", ".join(f"{j} {s}" + (f" ({r})" if r and r != "None" else "") for j, (s, r) in live.items())
            raise WeakbeamError(
                f"SLURM: no worker job started within {wait:g} s ({status}): the queue is full or no "
                f"node fits {_describe(kwargs)}; wait longer (--slurm-wait) or ask for less"
            )
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


def _close(cluster: Any) -> None:
    """Close the cluster, which cancels its jobs; cancel them here if the close itself fails."""
    ids = _job_ids(cluster)
    try:
        cluster.close()
    except Exception:  # e.g. a job whose sbatch failed leaves SpecCluster unable to close
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60)


class _Watchdog(threading.Thread):
    """Stops the run (SIGINT to the main thread, turned into a :class:`WeakbeamError`) when every
    worker job has ended (walltime, scancel, node failure) while layers remain: Dask would
    otherwise wait for workers that SLURM will never start again."""

    def __init__(self, client: Any, jobs: list[str], interval: float = 2.0):
        super().__init__(name="weakbeam-slurm-watchdog", daemon=True)
        self.client, self.jobs, self.interval = client, jobs, interval
        self.reason = ""
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                if self.client.scheduler_info(n_workers=-1)["workers"]:
                    continue
                states = job_states(self.jobs)
            except Exception:  # the client is closing: nothing to watch any more
                return
            if any(state in _LIVE_STATES for state, _ in states.values()) or self._done.is_set():
                continue
            ended = ", ".join(f"{j} {states[j][0]}" if j in states else f"{j} gone" for j in self.jobs)
            self.reason = f"SLURM: every worker job has ended ({ended}) before the last layer"
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return

    def stop(self) -> None:
        self._done.set()


def _torch_threads(kwargs: dict[str, Any]) -> int | None:
    """Torch threads per layer when a job has more CPUs (``job-cpu``) than Dask threads (``cores``)."""
    job_cpu = dask.config.get("jobqueue.slurm.job-cpu", None)
    if job_cpu and int(job_cpu) > kwargs["cores"]:
        return int(job_cpu) // kwargs["cores"]
    return None


@contextlib.contextmanager
def _ctrl_c_raises(signals: tuple[int, ...] = (signal.SIGINT,)) -> Iterator[None]:
    """Ctrl-C (and ``signals``) raise KeyboardInterrupt here, so that the jobs are cancelled, and
    a swallowed one still stops the run at the next layer (:func:`.distributed.interrupt`); the
    previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    INTERRUPTED.clear()
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        INTERRUPTED.clear()  # a later run in this process (the viewer's, another command's) starts afresh
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Let a teardown (cancelling the jobs) finish even if Ctrl-C is pressed again (or SIGTERM comes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
