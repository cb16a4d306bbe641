"""Checks the commands make before any work: sizes, memory, outputs (one-line WeakbeamErrors).

Kept apart from the command modules so that each command calls one line of it.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import WeakbeamError


def add_overwrite_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``: replace an existing file given as an output (never an input)."""
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} if it already exists (an input of the command is never replaced)")


def check_job(scan: Any, patch_size: int | None, what: str, *, option: str = "--patch-size",
              per_layer: bool = False) -> None:
    """Before classifying / training / reconstructing ``scan``: the patch fits in the frames and
    the memory the job needs (a block of frames; with ``per_layer``, a whole layer) is there."""
    from ..core.limits import check_memory, check_patch_size, classify_bytes, layer_bytes

    if patch_size is not None:
        check_patch_size(patch_size, scan.frame_shape, option=option)
        check_memory(classify_bytes(scan.frame_shape, patch_size), f"{what} of {scan.frame_shape[0]} x "
                     f"{scan.frame_shape[1]} frames in {patch_size}-pixel patches")
    if per_layer:
        check_memory(layer_bytes(scan.n_frames, scan.frame_shape),
                     f"{what} of a layer of {scan.n_frames} frames of {scan.frame_shape[0]} x {scan.frame_shape[1]}")


def check_output(out: Path, scan: Any, what: str = "predictions", group: str = "predictions") -> None:
    """--out: not an input of the command, not an existing file of another kind (before any work)."""
    from ..core.atomic import check_replaceable

    check_replaceable(out, what, group=group, inputs=scan.input_files())


def check_model_out(out: Path, args: argparse.Namespace, scan: Any) -> list[str]:
    """`train --out`: refuse, before training, an input (scan, annotations, --from model) or an
    existing file that is not a model; return the inputs (``save_model`` checks them again)."""
    from ..core.classification.modelfile import check_model_output

    inputs = list(scan.input_files())
    if getattr(args, "annotations", None):
        inputs.append(str(args.annotations))
    start = getattr(args, "start", None)
    if start and start not in ("default", "scratch"):
        inputs.append(str(start))
    check_model_output(out, inputs)
    return inputs


def check_finite(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """Number options given as NaN or infinity (argparse's float() accepts both) are refused."""
    import math

    for name in names:
        value = getattr(args, name, None)
        if isinstance(value, float) and not math.isfinite(value):
            raise WeakbeamError(f"--{name.replace('_', '-')} {value}: must be a finite number")


def check_distinct_outputs(paths: list[str | Path]) -> None:
    """Two outputs of one command naming the same file would overwrite each other."""
    seen: dict[Path, str] = {}
    for p in paths:
        key = Path(p).expanduser().resolve()
        if key in seen:
            raise WeakbeamError(f"{p}: named twice as an output (also as {seen[key]}); give each output its own file")
        seen[key] = str(p)


def check_training_memory(n_frames: int, frame_shape: tuple[int, int]) -> None:
    """Training holds its labelled frames in memory (float32, plus patches and augmentation)."""
    from ..core.limits import check_memory, layer_bytes

    check_memory(layer_bytes(n_frames, frame_shape, per_voxel=12.0),
                 f"training on {n_frames} labelled frames of {frame_shape[0]} x {frame_shape[1]}",
                 "label fewer frames, or lower --max-suggested")


def patch_option(args: argparse.Namespace) -> str:
    """How the patch size was chosen, for messages."""
    return "--patch-size" if getattr(args, "patch_size", None) is not None else "the model's patch size"


@contextlib.contextmanager
def resumable(out: Path) -> Iterator[None]:
    """A failed layer-by-layer run: say what is kept for ``--resume`` (the partial file holds
    finished layers) or that nothing was (the writer removes a partial file with no layer)."""
    partial = Path(out).with_name(f".{Path(out).name}.partial")
    try:
        yield
    except WeakbeamError as exc:
        if partial.exists():
            raise WeakbeamError(
                f"{exc} (the layers finished so far are kept in {partial}: run the same command with --resume "
                "to continue)"
            ) from None
        raise
