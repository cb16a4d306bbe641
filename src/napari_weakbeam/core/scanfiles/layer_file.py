"""The base of the writers that store results layer by layer (predictions, reconstructions).

The file is built at a hidden ``.NAME.partial`` beside the target, flushed after every layer, and
``layer_done`` marks the finished layers (data first, then the mark, so a crash never marks a
half-written layer). Only when every layer is done is it moved onto the target, so an interrupted
run never destroys an earlier file, and ``resume`` continues the partial file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from ..atomic import check_replaceable, fsync_path
from ..errors import WeakbeamError


class LayerFileWriter:
    """Subclasses set ``group`` and ``what`` and implement :meth:`_create` and :meth:`_reopen`."""

    group = ""  #: the HDF5 group holding the results and ``layer_done``
    what = ""  #: what the file holds, for messages ("predictions", "reconstruction")

    def _open(self, path: str | os.PathLike, inputs: Iterable[str], n_layers: int, resume: bool) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise WeakbeamError(f"{self.path}: is a folder; give a file name for the {self.what}")
        check_replaceable(self.path, self.what, group=self.group, inputs=inputs)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n_layers = int(n_layers)
        self._file: h5py.File | None = None
        if resume:
            self._file = self._resume()
        if self._file is None:
            self._file = self._create()

    # -- hooks ------------------------------------------------------------------------------
    def _create(self) -> h5py.File:
        """Create the partial file with its empty datasets and ``layer_done``."""
        raise NotImplementedError

    def _reopen(self) -> h5py.File | None:
        """Open the partial file to continue it, or delete it and return None if it does not fit."""
        raise NotImplementedError

    def _check_finished(self, path: Path) -> None:
        """Raise if a finished file at the target cannot be continued (default: anything goes)."""

    def _finish(self, group: h5py.Group) -> None:
        """Last additions once every layer is done, before the file is moved into place."""

    # -- shared -----------------------------------------------------------------------------
    def _resume(self) -> h5py.File | None:
        if not self.partial.exists() and self.path.exists():
            self._check_finished(self.path)
            shutil.copyfile(self.path, self.partial)  # continue a finished file: nothing is lost
        return self._reopen() if self.partial.exists() else None

    @property
    def _group(self) -> h5py.Group:
        if self._file is None:
            raise RuntimeError(f"the {self.what} writer is closed")
        return self._file[self.group]

    def done_layers(self) -> set[int]:
        """Indices of the layers already written (skipped on resume)."""
        return {int(i) for i in np.flatnonzero(self._group["layer_done"][()])}

    def _mark_done(self, i: int) -> None:
        assert self._file is not None
        self._file.flush()  # data first, then the mark
        self._group["layer_done"][i] = True
        self._file.flush()

    def close(self) -> Path | None:
        """Close; when every layer is done, move the file to the target path and return it.

        An incomplete run keeps its partial file for ``resume`` (removed when no layer is done)
        and returns None.
        """
        if self._file is None:
            return self.path if self.path.exists() and not self.partial.exists() else None
        n_done = len(self.done_layers())
        complete = n_done == self.n_layers
        if complete:
            self._finish(self._group)
        self._file.close()
        self._file = None
        if complete:
            fsync_path(self.partial)  # on disk before the rename: a power cut leaves old or new
            os.replace(self.partial, self.path)
            return self.path
        if n_done == 0:  # nothing a resume could use: leave nothing behind
            self.partial.unlink(missing_ok=True)
        return None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
