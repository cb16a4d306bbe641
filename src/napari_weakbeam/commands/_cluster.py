"""``--scheduler`` / ``--workers`` / ``--slurm`` / ``--resume``: run a command's layers on Dask (docs/cluster.md).

Kept free of heavy imports so ``weakbeam --help`` stays fast; Dask is imported only when used.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Iterator


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler``, ``--workers``, the ``--slurm`` options and (if absent) ``--resume``."""
    group = parser.add_argument_group("parallel and cluster runs (docs/cluster.md)")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the layers on an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 "
        "(workers must see INPUT at the same path; the model and labels are sent to them)",
    )
    where.add_argument(
        "--workers",
        type=_at_least_one("worker"),
        metavar="N",
        help="start N worker processes on this machine, one layer each at a time "
        "(without --scheduler, --workers or --slurm everything runs in this process)",
    )
    add_slurm_arguments(group, where)
    if "--resume" in parser._option_string_actions:
        return
    group.add_argument(
        "--resume",
        action="store_true",
        help="keep the layers already finished in --out and compute only the others",
    )


def add_slurm_arguments(group: Any, where: Any) -> None:
    """``--slurm``, ``--cluster FILE`` (in ``where``, exclusive with ``--workers``/``--scheduler``)
    and ``--slurm-queue/-cores/-memory/-jobs/-walltime/-wait``."""
    where.add_argument(
        "--slurm",
        action="store_true",
        help="run the layers on Dask workers submitted as SLURM jobs (dask-jobqueue), cancelled at "
        "the end; settings from ~/.config/dask/jobqueue.yaml, --cluster and the --slurm-* options",
    )
    where.add_argument("--cluster", metavar="FILE", type=_jobqueue_file, help="a dask-jobqueue YAML file with a "
                       "'jobqueue: slurm:' section (implies --slurm; --slurm-* options override it)")
    group.add_argument("--slurm-queue", metavar="Q", help="SLURM partition (sbatch -p)")
    group.add_argument("--slurm-cores", type=_at_least_one("CPU"), metavar="N",
                       help="CPUs per job: N single-threaded workers, N layers at a time (default 1)")
    group.add_argument("--slurm-memory", metavar="M", type=_size, help="memory per job, e.g. 8GB (default 4GB)")
    group.add_argument("--slurm-jobs", type=_at_least_one("job"), metavar="J", help="number of jobs (default 1)")
    group.add_argument("--slurm-walltime", metavar="T", help="time limit per job, e.g. 02:00:00")
    group.add_argument("--slurm-wait", type=float, metavar="S",
                       help="give up if no job has started after S seconds (default 600)")


_SLURM_OPTIONS = ("cluster", "slurm_queue", "slurm_cores", "slurm_memory", "slurm_jobs", "slurm_walltime",
                  "slurm_wait")


def wants_slurm(args: argparse.Namespace) -> bool:
    """True when ``--slurm``, ``--cluster`` or any ``--slurm-*`` option was given."""
    return bool(getattr(args, "slurm", False)) or any(getattr(args, k, None) is not None for k in _SLURM_OPTIONS)


def _slurm_options(args: argparse.Namespace) -> Any:
    from ..core.distribution.slurm import DEFAULT_WAIT_S, SlurmOptions

    return SlurmOptions(
        queue=args.slurm_queue, cores=args.slurm_cores, memory=args.slurm_memory,
        walltime=args.slurm_walltime, jobs=args.slurm_jobs or 1, config=args.cluster,
        wait=DEFAULT_WAIT_S if args.slurm_wait is None else args.slurm_wait,
    )


def _at_least_one(what: str) -> Any:
    """An argparse type: a whole number of at least 1 ``what``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{value}: need at least 1 {what}")
        return value

    return parse


def _jobqueue_file(text: str) -> str:
    """An argparse type: a readable dask-jobqueue YAML file with a ``jobqueue: slurm:`` section."""
    from ..core.errors import WeakbeamError
    from ..core.distribution.slurm import load_jobqueue_file

    try:
        load_jobqueue_file(text)
    except WeakbeamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _size(text: str) -> str:
    """An argparse type: a memory size such as 8GB or 500MB."""
    from dask.utils import parse_bytes

    try:
        parse_bytes(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r}: not a size such as 8GB or 500MB") from None
    return text


def wants_cluster(args: argparse.Namespace) -> bool:
    """True when ``--scheduler``, ``--workers`` or a SLURM option was given."""
    return bool(getattr(args, "scheduler", None)) or getattr(args, "workers", None) is not None or wants_slurm(args)


@contextlib.contextmanager
def client_from_args(args: argparse.Namespace) -> Iterator[Any]:
    """The ``distributed.Client`` that ``--scheduler`` / ``--workers`` / ``--slurm`` ask for; None
    (this process) when none of them is given."""
    if not wants_cluster(args):
        yield None
        return
    from ..core.distribution.distributed import open_client
    from ..core.errors import WeakbeamError

    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise WeakbeamError(f"--workers {workers}: need at least 1 worker")
    if wants_slurm(args):
        if workers is not None or getattr(args, "scheduler", None):
            raise WeakbeamError("give one of --scheduler, --workers or --slurm, not several")
        import sys

        from ..core.distribution.slurm import slurm_cluster

        quiet = getattr(args, "quiet", False)
        with slurm_cluster(_slurm_options(args), note=None if quiet else lambda t: print(t, file=sys.stderr)) as c:
            yield c
        return
    with open_client(scheduler=getattr(args, "scheduler", None), workers=workers) as client:
        yield client
