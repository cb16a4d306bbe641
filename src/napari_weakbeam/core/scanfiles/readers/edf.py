"""Legacy ID06 EDF series (before Bliss): one EDF file per frame, read with fabio.

Each header holds the motors (``motor_mne``: names, ``motor_pos``: positions, space separated) and
the scan command (``ascan diffry -23.176 -23.146 30 5``, in ``title`` or any header value). The
rocking angle of a frame is the position of the scan command's motor in its header; frames are
grouped into layers by the layer motor (``difftz`` ..., um) when it takes several values. Only the
headers are read when opening; each file is one dask chunk, read on demand.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import WeakbeamError
from ..scan import Scan, lazy_frames, stack_layers
from ._common import check_dtype, check_scan_shape

_COMMAND_RE = re.compile(r"^\s*(ascan|dscan|a2scan|d2scan|fscan|mesh|dmesh)\s+(\S+)\s")
_LAYER_MOTORS = ("difftz", "samz", "samtz", "diffz", "obpitch")


class EdfFrameSource:
    """Picklable (frames, rows, cols) view of a list of single-frame EDF files."""

    def __init__(self, files: Sequence[str], frame_shape: tuple[int, int], dtype: Any):
        self.files = list(files)
        self.dtype = np.dtype(dtype)
        self.shape = (len(self.files),) + tuple(frame_shape)
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        import fabio

        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        picked = np.asarray(self.files, dtype=object)[key[0]]
        scalar = isinstance(picked, str)
        out = []
        for name in [picked] if scalar else list(picked):
            try:
                img = fabio.open(name)
            except Exception as exc:  # fabio raises many types for a bad file
                raise WeakbeamError(f"{name}: cannot read EDF frame ({exc})") from None
            if data_is_short(img):  # fabio pads a short data block with zeros
                raise WeakbeamError(f"{name}: truncated EDF file (its data is shorter than the header says)")
            data = img.data
            if data.shape != self.shape[1:]:
                raise WeakbeamError(f"{name}: frame of shape {data.shape}, the series has {self.shape[1:]}")
            out.append(np.asarray(data, dtype=self.dtype)[key[1], key[2]])
        if scalar:
            return out[0]
        if not out:
            return np.zeros((0,) + self.shape[1:], dtype=self.dtype)[:, key[1], key[2]]
        return np.stack(out)


def data_is_short(img: Any) -> bool:
    """Whether the first frame's data block is shorter than its header says (a truncated copy).

    fabio's ``incomplete_file`` is also set for a file *longer* than its frame (some legacy ID06
    files carry a few kB after the image data); those read fine, so only the data block counts."""
    frames = getattr(img, "_frames", None)
    if frames:
        return bool(getattr(frames[0], "incomplete_data", img.incomplete_file))
    return bool(img.incomplete_file)


def list_edf_files(source: str | Sequence[str]) -> list[str]:
    """The EDF files of a folder, a glob, a single file or a list of files, sorted by name."""
    if not isinstance(source, (str, os.PathLike)):
        files = sorted(os.fspath(f) for f in source)
        missing = next((f for f in files if not os.path.isfile(f)), None)
        if missing is not None or not files:
            raise WeakbeamError(f"{missing or 'EDF file list'}: file not found" if missing else "no EDF files given")
        return files
    path = Path(source)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() == ".edf")
        if not files:
            raise WeakbeamError(f"{source}: no EDF files (*.edf) in this folder")
        return files
    if path.is_file():
        return [str(path)]
    files = sorted(glob.glob(source))
    if not files:
        raise WeakbeamError(f"{source}: no files match this pattern")
    return files


def _header(name: str) -> tuple[dict[str, str], tuple[int, int], np.dtype]:
    import fabio

    try:
        img = fabio.openheader(name)
    except Exception as exc:
        raise WeakbeamError(f"{name}: not a readable EDF file ({exc})") from None
    if data_is_short(img):
        raise WeakbeamError(f"{name}: truncated EDF file (its data is shorter than the header says; was it copied completely?)")
    shape = tuple(int(s) for s in (img.shape or ()))
    if len(shape) != 2:
        raise WeakbeamError(f"{name}: an EDF frame of shape {shape} (expected 2D rows x cols)")
    check_scan_shape((1,) + shape, name)
    return dict(img.header), (shape[0], shape[1]), np.dtype(img.dtype)


def _motors(name: str, header: dict[str, str]) -> dict[str, float]:
    names = header.get("motor_mne", "").split()
    values = header.get("motor_pos", "").split()
    if len(names) != len(values):
        raise WeakbeamError(f"{name}: {len(names)} motor names but {len(values)} motor positions in the header")
    try:
        return {n: float(v) for n, v in zip(names, values)}
    except ValueError:
        raise WeakbeamError(f"{name}: motor positions that are not numbers in the header") from None


def _command(header: dict[str, str]) -> str:
    for key in ("title", "scan_command", "command"):
        if _COMMAND_RE.match(header.get(key, "") + " "):
            return header[key].strip()
    for value in header.values():
        if _COMMAND_RE.match(str(value) + " "):
            return str(value).strip()
    return ""


def open_edf(source: str | Sequence[str]) -> Scan:
    """Open an EDF series (folder, glob, one file or a list of files) lazily."""
    files = list_edf_files(source)
    if not isinstance(source, (str, os.PathLike)):
        source = f"{os.path.dirname(files[0])}/[{len(files)} EDF files]"
    headers = [_header(f) for f in files]
    shapes = {h[1] for h in headers}
    if len(shapes) > 1:
        odd = next(f for f, h in zip(files, headers) if h[1] != headers[0][1])
        raise WeakbeamError(f"{odd}: frame of shape {_header(odd)[1]}, the series starts with {headers[0][1]}")
    for f, h in zip(files, headers):
        check_dtype(h[2], f)
    frame_shape, dtype = headers[0][1], headers[0][2]
    motors = [_motors(f, h[0]) for f, h in zip(files, headers)]
    command = next((c for c in (_command(h[0]) for h in headers) if c), "")
    match = _COMMAND_RE.match(command + " ")
    rocking = match.group(2) if match else None
    common = set.intersection(*(set(m) for m in motors)) if motors else set()
    varying = [m for m in sorted(common) if len({mm[m] for mm in motors}) > 1]
    if rocking is None:
        rocking = next((m for m in varying if m not in _LAYER_MOTORS), None)
    if rocking is not None:
        missing = next((f for f, m in zip(files, motors) if rocking not in m), None)
        if missing:
            raise WeakbeamError(f"{missing}: no position of the rocking motor {rocking} in the header")
        angles_all = np.array([m[rocking] for m in motors])
    else:
        angles_all = None
    layer_motor = next((m for m in _LAYER_MOTORS if m in varying and m != rocking), None)
    if layer_motor is None:
        layer_motor = next((m for m in _LAYER_MOTORS if m in common and m != rocking), None)
    if layer_motor is not None:
        keys = np.round([m[layer_motor] for m in motors], 6)
    else:
        keys = np.zeros(len(files))
    positions = np.unique(keys)
    groups = [np.flatnonzero(keys == p) for p in positions]
    n_max = max(len(g) for g in groups)
    angles = np.full((len(groups), n_max), np.nan)
    layers, sources = [], []
    for k, idx in enumerate(groups):
        if angles_all is None:
            a = np.arange(len(idx), dtype=np.float64)
            order = np.arange(len(idx))
        else:
            a = angles_all[idx]
            order = np.argsort(a, kind="stable")
        angles[k, : len(idx)] = a[order]
        src = EdfFrameSource([files[i] for i in idx[order]], frame_shape, dtype)
        layers.append(lazy_frames(src))
        sources.append(src)
    scan = Scan(
        frames=stack_layers(layers, n_max),
        angles=angles,
        layer_positions=positions.astype(np.float64) if layer_motor else np.arange(len(groups), dtype=float),
        rocking_motor=rocking,
        layer_motor=layer_motor,
        source=str(source),
        metadata={
            "format": "edf",
            "scan_command": command,
            "n_files": len(files),
            "angles_are_frame_indices": angles_all is None,
        },
    )
    scan.attach_sources(sources)
    return scan


def write_edf_series(
    folder: str | os.PathLike,
    layers: Sequence[np.ndarray],
    angles: Sequence[np.ndarray],
    layer_positions: Sequence[float],
    *,
    rocking_motor: str = "diffry",
    layer_motor: str = "difftz",
    prefix: str = "frame",
) -> list[str]:
    """Write frames as a legacy ID06 EDF series (one file per frame); return the file names.

    For tests and benchmarks: the headers carry ``motor_mne``/``motor_pos`` and the scan command.
    """
    import fabio.edfimage

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    count = 0
    for frames, ang, z in zip(layers, angles, layer_positions):
        ang = np.asarray(ang, dtype=np.float64)
        cmd = f"ascan {rocking_motor} {ang[0]:.6g} {ang[-1]:.6g} {len(ang) - 1} 5"
        for frame, a in zip(frames, ang):
            header = {
                "title": cmd,
                "motor_mne": f"{rocking_motor} {layer_motor} obx diffrz",
                "motor_pos": f"{a:.8g} {float(z):.8g} 265.0 0.0",
                "count_time": "5",
            }
            name = out / f"{prefix}_{count:05d}.edf"
            fabio.edfimage.EdfImage(data=np.asarray(frame), header=header).write(str(name))
            names.append(str(name))
            count += 1
    return names
