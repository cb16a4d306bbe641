"""``--scheduler`` / ``--workers`` / ``--resume``: run a command's layers on Dask (docs/cluster.md).

Kept free of heavy imports so ``weakbeam --help`` stays fast; Dask is imported only when used.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Iterator


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler ADDRESS``, ``--workers N`` and (if absent) ``--resume`` to a parser."""
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
        type=_positive_int,
        metavar="N",
        help="start N worker processes on this machine, one layer each at a time "
        "(without --scheduler or --workers everything runs in this process)",
    )
    if "--resume" in parser._option_string_actions:
        return
    group.add_argument(
        "--resume",
        action="store_true",
        help="keep the layers already finished in --out and compute only the others",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: need at least 1 worker")
    return value


def wants_cluster(args: argparse.Namespace) -> bool:
    """True when ``--scheduler`` or ``--workers`` was given."""
    return bool(getattr(args, "scheduler", None)) or getattr(args, "workers", None) is not None


@contextlib.contextmanager
def cluster_from_args(args: argparse.Namespace) -> Iterator[Any]:
    """The ``distributed.Client`` that ``--scheduler`` / ``--workers`` ask for (None: this process)."""
    from ..core.distributed import open_client
    from ..core.errors import WeakbeamError

    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise WeakbeamError(f"--workers {workers}: need at least 1 worker")
    with open_client(scheduler=getattr(args, "scheduler", None), workers=workers) as client:
        yield client


def _layer_bar(total: int, desc: str, quiet: bool) -> Any:
    import sys

    from ._progress import tqdm

    return tqdm(total=total, desc=desc, unit="layer", disable=quiet, file=sys.stderr)


def classify_on_cluster(args: argparse.Namespace, scan: Any, classifier: Any, out: Any, *, model: str = "") -> None:
    """`weakbeam classify --scheduler/--workers`: the layers on Dask, a bar as layers complete."""
    from ..core.distributed_tasks import iter_predict_scan_distributed

    device = getattr(args, "device", "auto")
    with cluster_from_args(args) as client:
        with _layer_bar(scan.n_layers, "layers", getattr(args, "quiet", False)) as bar:
            for ev in iter_predict_scan_distributed(
                scan, classifier, out, client=client, resume=args.resume, device=device, model=model
            ):
                bar.update(ev.layers_done - bar.n)


def reconstruct_on_cluster(
    args: argparse.Namespace, scan: Any, source: Any, params: Any, out: Any, *, frames: list[int] | None = None
) -> Any:
    """`weakbeam reconstruct --scheduler/--workers`: the layers on Dask; returns the Reconstruction
    with its points (volumes stay in the file)."""
    from ..core.distributed_tasks import iter_reconstruct_scan_distributed
    from ..core.reconstruction_io import load_reconstruction

    device = getattr(args, "device", "auto")
    with cluster_from_args(args) as client:
        with _layer_bar(scan.n_layers, "reconstruct", getattr(args, "quiet", False)) as bar:
            for done, _ in iter_reconstruct_scan_distributed(
                scan, source, params, out, client=client, resume=args.resume, device=device, frames=frames
            ):
                bar.update(done - bar.n)
    return load_reconstruction(out, volumes=False)
