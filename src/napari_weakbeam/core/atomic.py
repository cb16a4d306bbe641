"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash or an error half-way never leaves a truncated file where the user's earlier work was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

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
    path: str | os.PathLike,
    what: str,
    *,
    group: str | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    same_kind: Callable[[Path], bool] | None = None,
    overwrite: bool | None = None,
) -> None:
    """The one guard of every file the project writes: refuse (a one-line WeakbeamError) before
    any work what a slip of the output name would destroy.

    - ``path`` must be a file name in an existing folder (a folder or a missing folder is refused);
    - it must not be one of ``inputs`` (the files the command reads), even with ``overwrite``;
    - an existing file must be of the same kind: with ``group``, an HDF5 file holding ``/group``;
      with ``same_kind``, a file for which ``same_kind(path)`` is true (e.g. a model file);
    - ``overwrite=False`` (a command with an ``--overwrite`` option not given) refuses any existing
      file; ``True`` allows replacing one of the same kind; None (no such option): a file of the
      same kind is replaced (atomically, by the writers) without asking.
    """
    target = Path(path)
    if target.is_dir():
        raise WeakbeamError(f"{target}: is a folder; give a file name for the {what}")
    parent = target.parent
    if not parent.is_dir():
        raise WeakbeamError(f"{parent}: no such folder for the {what} file {target.name} (create it first)")
    if not target.exists() and not target.is_symlink():
        return
    for src in inputs:
        try:
            same = os.path.samefile(target, Path(str(src).split("::")[0]))
        except OSError:
            same = False
        if same:
            raise WeakbeamError(f"{target}: is the input being read; choose another file for the {what}")
    if not target.is_file():
        raise WeakbeamError(f"{target}: exists and is not a regular file; refusing to replace it with the {what}")
    kind_known = group is not None or same_kind is not None
    if group is not None:
        ours = _holds_group(target, group)
    elif same_kind is not None:
        try:
            ours = bool(same_kind(target))
        except Exception:  # an unreadable file is not ours
            ours = False
    else:
        ours = True
    if kind_known and not ours:
        found = describe_file(target)
        raise WeakbeamError(
            f"{target}: exists and is not {_article(what)} {what} file ({found}); refusing to replace it "
            "(choose another name, or delete the file first)"
        )
    if overwrite is False:
        raise WeakbeamError(f"{target}: already exists (use --overwrite to replace it, or choose another name)")


def _holds_group(path: Path, group: str) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return group in f
    except (OSError, ValueError):
        return False


#: HDF5 groups that tell what a file holds, in the order they are looked for.
_KINDS = (
    ("annotations", "an annotation file"),
    ("predictions", "a predictions file"),
    ("reconstruction", "a reconstruction file"),
    ("ground_truth", "a simulated scan"),
)


def describe_file(path: str | os.PathLike) -> str:
    """A few words on what an existing file is (for the guard's messages): "a predictions file",
    "a scan or other HDF5 file", "a napari-weakbeam model file", "a TIFF file", "a text file" ..."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return "unreadable"
    if not head:
        return "an empty file"
    if h5py.is_hdf5(p):
        try:
            with h5py.File(p, "r") as f:
                for group, words in _KINDS:
                    if group in f:
                        return words
        except (OSError, ValueError):
            return "a damaged HDF5 file"
        return "a scan or other HDF5 file"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "a TIFF file"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive such as a PyTorch file"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"{") and (b"EDF_" in head or b"HeaderID" in head):
        return "an EDF frame"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a binary file"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
