"""Open any supported rocking-scan source as a lazy :class:`~napari_weakbeam.core.scanfiles.scan.Scan`.

``open_scan`` looks at the source and hands it to one format module:

* ``FILE.h5::/path/to/data`` -> :mod:`.h5path` (any 3D or 4D HDF5 dataset)
* an ESRF Bliss master HDF5 file -> :mod:`.bliss` (every ``N.1`` rocking scan, one layer each)
* another HDF5 file holding exactly one 3D/4D dataset -> :mod:`.h5path`
* a folder, a glob or a file of EDF frames -> :mod:`.edf` (legacy ID06 series)
* a TIFF file -> :mod:`.tiff`

Every failure is a one-line :class:`~napari_weakbeam.core.errors.WeakbeamError` naming the file.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import WeakbeamError
from ..scan import Scan
from .h5path import split_h5path

__all__ = ["open_scan", "detect_format"]

_TIFF = (".tif", ".tiff")
#: A pixel size read from a file at or above this (um) is a camera pixel, not the sample's: DFXM
#: images the sample at ~0.03-0.5 um per pixel through an objective of magnification ~10-20.
CAMERA_PIXEL_UM = 1.0
_HDF5 = (".h5", ".hdf5", ".nxs", ".hdf", ".nx")


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def detect_format(source: str | os.PathLike) -> str:
    """The reader a source goes to: ``"h5path"``, ``"hdf5"``, ``"edf"`` or ``"tiff"``.

    Raises WeakbeamError for a missing path or a format no reader handles.
    """
    text = os.fspath(source)
    if split_h5path(text) is not None:
        return "h5path"
    path = Path(text)
    if path.is_dir():
        return "edf"
    if _is_glob(text) and not path.exists():
        matches = glob.glob(text)
        if not matches:
            raise WeakbeamError(f"{text}: no files match this pattern")
        if all(m.lower().endswith(".edf") for m in matches):
            return "edf"
        raise WeakbeamError(f"{text}: a pattern must match EDF files (*.edf), got e.g. {Path(matches[0]).name}")
    if not path.exists():
        raise WeakbeamError(f"{text}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".edf":
        return "edf"
    if suffix in _TIFF:
        return "tiff"
    import h5py

    if h5py.is_hdf5(text):
        return "hdf5"
    if suffix in _HDF5:
        raise WeakbeamError(f"{text}: not an HDF5 file")
    raise WeakbeamError(
        f"{text}: unsupported file type {suffix or '(no extension)'} "
        "(expected a Bliss .h5 master, FILE.h5::/dataset, EDF frames or a TIFF stack)"
    )


def _no_user_angles(source: str, kind: str, angles: object, layer_positions: object) -> None:
    if angles is not None or layer_positions is not None:
        raise WeakbeamError(
            f"{source}: {kind} stores its own angles and layer positions (angles=/layer_positions= "
            "are for TIFF stacks and HDF5 datasets)"
        )


def open_scan(
    source: str | os.PathLike,
    *,
    scans: Sequence[str] | None = None,
    detector: str | None = None,
    pixel_size: float | None = None,
    angles: Sequence[float] | np.ndarray | None = None,
    layer_positions: Sequence[float] | np.ndarray | None = None,
    magnification: float | None = None,
) -> Scan:
    """Open a rocking scan lazily (no frame data is read here).

    Parameters
    ----------
    source
        A Bliss master file, ``FILE.h5::/path/to/dataset``, a folder or glob of EDF frames, or a
        TIFF stack.
    scans
        Bliss scans to use as layers (e.g. ``["1.1", "3.1"]``); default every ``N.1`` rocking scan.
    detector
        Detector name (Bliss); default the largest 3D detector.
    pixel_size
        Pixel size at the sample in um; overrides what the file says.
    magnification
        Objective magnification: the file's detector pixel size is divided by it (overrides a
        magnification stored in the file). Without either, a pixel size of 1 um or more read from
        the file is taken for the camera's and a warning says the scale is not the sample's.
    angles, layer_positions
        For formats that do not store them (TIFF, bare HDF5 datasets): rocking angles in degrees,
        (frames,) or (layers, frames), and layer positions in um (layers,).
    """
    kind = detect_format(source)
    text = os.fspath(source)
    if kind == "hdf5":
        from . import bliss

        if bliss.is_bliss(text):
            _no_user_angles(text, "a Bliss master file", angles, layer_positions)
            scan = bliss.open_bliss(text, scans=scans, detector=detector)
        else:
            from . import h5path

            scan = h5path.open_single_dataset(text, angles=angles, layer_positions=layer_positions)
    elif kind == "h5path":
        from . import h5path

        scan = h5path.open_h5path(text, angles=angles, layer_positions=layer_positions)
    elif kind == "edf":
        from . import edf

        _no_user_angles(text, "an EDF series", angles, layer_positions)
        scan = edf.open_edf(text)
    else:
        from . import tiff

        scan = tiff.open_tiff(text, angles=angles, layer_positions=layer_positions)
    if magnification is not None and pixel_size is None:
        if not np.isfinite(magnification) or magnification <= 0:
            raise WeakbeamError(f"magnification {magnification}: must be a positive number")
        camera = scan.metadata.get("detector_pixel_size") or scan.pixel_size
        if camera is None:
            raise WeakbeamError(f"{text}: no detector pixel size in the file to divide by the magnification; give the pixel size at the sample instead")
        scan.pixel_size = float(camera) / float(magnification)
        scan.metadata["magnification"] = float(magnification)
    if pixel_size is not None:
        if not np.isfinite(pixel_size) or pixel_size <= 0:
            raise WeakbeamError(f"pixel size {pixel_size}: must be a positive number of micrometres")
        scan.pixel_size = float(pixel_size)
    elif scan.pixel_size is not None and scan.pixel_size >= CAMERA_PIXEL_UM and not scan.metadata.get("magnification"):
        import warnings

        warnings.warn(
            f"{text}: pixel size {scan.pixel_size:g} um is the camera's (the file stores no objective "
            "magnification): give the magnification (--magnification) or the pixel size at the sample "
            "(--pixel-size) for a true scale",
            stacklevel=2,
        )
    return scan
