"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash or an error half-way never leaves a truncated file where the user's earlier work was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import h5py

from .errors import WeakbeamError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file private (0600); give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        fsync_path(tmp_path)  # the data on disk before the rename: a power cut leaves old or new, never empty
        os.replace(tmp_path, target)
        fsync_path(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's: the rename) data to disk; best effort where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at ``path`` only once it is complete."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


def check_replaceable(
    path: str | os.PathLike, what: str, *, group: str | None = None, inputs: Iterable[str | os.PathLike] = ()
) -> None:
    """Refuse to write ``path`` over data a slip of the output name would destroy.

    ``path`` must not be one of ``inputs`` (the files being read, e.g. the scan), and, with
    ``group``, an existing file there must be an HDF5 file holding ``/group`` (an earlier result of
    the same kind, fine to replace), not a scan, a predictions file or anything else.
    """
    target = Path(path)
    if not target.is_file():
        return
    for src in inputs:
        try:
            same = os.path.samefile(target, Path(str(src).split("::")[0]))
        except OSError:
            same = False
        if same:
            raise WeakbeamError(f"{target}: is the input being read; choose another file for the {what}")
    if group is None:
        return
    try:
        with h5py.File(target, "r") as f:
            ours = group in f
    except OSError:
        ours = False
    if not ours:
        raise WeakbeamError(
            f"{target}: exists and is not {_article(what)} {what} file (no /{group}); refusing to replace it "
            "(choose another name, or delete the file first)"
        )


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
