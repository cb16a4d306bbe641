"""ESRF Bliss HDF5 master files: every ``N.1`` rocking scan is one layer.

How the pieces are found (documented in docs/file-formats.md):

* detector: a group of ``instrument`` with NX_class NXdetector holding a 3D ``data``/``image``, or a
  3D ``measurement/<name>``; the named one, else the one with the largest frames;
* rocking motor: ``instrument/fscan_parameters/motor`` (``fast_motor`` for fscan2d), else the
  ``title``, else the positioner array that varies frame by frame;
* angles: ``instrument/positioners/<motor>`` (frames,), else ``instrument/<motor>/value|data``,
  else ``measurement/<motor>``, else ``start_pos + step_size * i``;
* layer motor: the scalar positioner whose value changes between scans (``difftz`` preferred),
  converted to um from its ``units`` attribute (no units: um, as at ID06).

Only metadata is read here; frames stay in the file (through external links too) until used.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import h5py
import numpy as np

from ...errors import WeakbeamError
from ..scan import H5FrameSource, Scan, lazy_frames, stack_layers
from ._common import check_dtype, check_scan_shape
from .h5path import open_h5_file

_SCAN_RE = re.compile(r"^(\d+)\.(\d+)$")
_LAYER_MOTORS = ("difftz", "samz", "samtz", "diffz", "obpitch", "tz", "z")
_SCAN_COMMANDS = ("fscan", "ascan", "dscan", "ascan2", "amesh", "fscan3d", "loopscan")
_LENGTH_TO_UM = {"um": 1.0, "µm": 1.0, "micron": 1.0, "microns": 1.0, "mm": 1e3, "nm": 1e-3, "m": 1e6}


@dataclass
class _ScanInfo:
    name: str
    dataset: str
    frame_file: str
    frame_dataset: str
    shape: tuple[int, ...]
    dtype: np.dtype
    angles: np.ndarray
    motor: str | None
    npoints: int | None
    title: str
    scalars: dict[str, tuple[float, str]] = field(default_factory=dict)
    detectors: list[str] = field(default_factory=list)
    detector: str = ""
    pixel_size: float | None = None
    magnification: float | None = None
    start_time: str = ""
    ended: bool = True  # end_time written (False: Bliss is still acquiring it)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _text(value.reshape(-1)[0]) if value.size else ""
    return str(value)


def _attr(obj: Any, key: str) -> str:
    return _text(obj.attrs.get(key, ""))


def _read_text(group: h5py.Group, key: str) -> str:
    obj = group.get(key)
    return _text(obj[()]) if isinstance(obj, h5py.Dataset) else ""


def _to_um(value: float, units: str) -> float:
    return value * _LENGTH_TO_UM.get(units.strip().lower(), 1.0)


def is_bliss(path: str) -> bool:
    """Whether ``path`` is a Bliss-like master file (top-level ``N.M`` scan groups)."""
    with open_h5_file(path) as f:
        for key in f:
            if _SCAN_RE.match(key) and isinstance(f.get(key, getlink=False), h5py.Group):
                return True
    return False


def _external_target(path: str, link: h5py.ExternalLink) -> str:
    """The file an external link of the master ``path`` points to: relative to the master's folder
    (where Bliss writes the camera files), as the frames are read later (see ``_link_target``)."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), link.filename)


def _resolve(path: str, group: h5py.Group, key: str) -> Any:
    """``group[key]``, or a WeakbeamError naming the file a broken external link points to.

    HDF5 also looks for an external file relative to the working directory; a file of the same
    name there must not hide a missing file beside the master, so the target is checked first."""
    link = group.get(key, getlink=True)
    if isinstance(link, h5py.ExternalLink) and not os.path.exists(_external_target(path, link)):
        raise WeakbeamError(
            f"{path}: broken external link {group.name}/{key} -> {_external_target(path, link)} (missing file)"
        )
    try:
        return group[key]
    except (KeyError, OSError) as exc:
        if isinstance(link, h5py.ExternalLink):
            raise WeakbeamError(
                f"{path}: broken external link {group.name}/{key} -> {_external_target(path, link)} (unreadable file)"
            ) from None
        if isinstance(link, h5py.SoftLink):
            return None  # dangling soft link: not a detector
        raise WeakbeamError(f"{path}: cannot read {group.name}/{key} ({str(exc).splitlines()[0]})") from None


def _link_target(path: str, f: h5py.File, dataset: str) -> tuple[str, str]:
    """(file, dataset) where the frames really are: soft and external links followed, so that
    reads open the camera file alone rather than the master and then the camera file."""
    file, name = str(path), dataset
    for _ in range(8):
        parent, _, leaf = name.rpartition("/")
        link = f.get(name, getlink=True) if file == str(path) else None
        if isinstance(link, h5py.SoftLink):
            name = link.path if link.path.startswith("/") else f"{parent}/{link.path}"
        elif isinstance(link, h5py.ExternalLink):
            return _external_target(path, link), link.path
        else:
            break
    return file, name


def _find_detectors(path: str, scan: h5py.Group) -> dict[str, str]:
    """Detector name -> dataset path of every 3D detector dataset of one scan."""
    found: dict[str, str] = {}
    inst = scan.get("instrument")
    if isinstance(inst, h5py.Group):
        for name in inst:
            grp = inst.get(name)
            if not isinstance(grp, h5py.Group):
                continue
            if _attr(grp, "NX_class") not in ("NXdetector", "") and name not in ("pco_ff", "basler_ff"):
                continue
            for key in ("data", "image"):
                if key in grp:
                    d = _resolve(path, grp, key)
                    if isinstance(d, h5py.Dataset) and d.ndim == 3:
                        found[name] = f"{grp.name}/{key}"
                        break
    meas = scan.get("measurement")
    if isinstance(meas, h5py.Group):
        for name in meas:
            if name in found:
                continue
            d = _resolve(path, meas, name)
            if isinstance(d, h5py.Dataset) and d.ndim == 3:
                found[name] = f"{meas.name}/{name}"
    return found


def _positioners(scan: h5py.Group) -> h5py.Group | None:
    """``instrument/positioners`` (or ``positioners_start``, as some Bliss versions name it)."""
    for key in ("instrument/positioners", "instrument/positioners_start"):
        pos = scan.get(key)
        if isinstance(pos, h5py.Group):
            return pos
    return None


def _rocking_motor(scan: h5py.Group, title: str, n_frames: int) -> tuple[str | None, int | None]:
    """(rocking motor, planned number of frames) from fscan_parameters, the title or positioners."""
    fp = scan.get("instrument/fscan_parameters")
    motor: str | None = None
    npoints: int | None = None
    tokens = title.split()
    if isinstance(fp, h5py.Group):
        motor = _read_text(fp, "motor") or _read_text(fp, "fast_motor") or None
        for key in ("npoints", "fast_npoints"):
            if isinstance(fp.get(key), h5py.Dataset):
                npoints = int(np.asarray(fp[key][()]).reshape(-1)[0])
                break
        if npoints is not None and isinstance(fp.get("slow_npoints"), h5py.Dataset):
            npoints *= int(np.asarray(fp["slow_npoints"][()]).reshape(-1)[0])
    if motor is None and len(tokens) >= 2:
        if tokens[0] == "fscan2d" and len(tokens) >= 6:
            motor = tokens[5]
        elif tokens[0] in _SCAN_COMMANDS:
            motor = tokens[1]
    if npoints is None and len(tokens) >= 5 and tokens[0] in ("fscan", "ascan", "dscan"):
        try:
            npoints = int(tokens[4]) + (1 if tokens[0] != "fscan" else 0)
        except ValueError:
            npoints = None
    if motor is None:
        pos = _positioners(scan)
        if pos is not None:
            for name in pos:
                d = pos.get(name)
                if isinstance(d, h5py.Dataset) and d.ndim == 1 and d.shape[0] == n_frames > 1:
                    if np.ptp(d[()]) > 0:
                        motor = name
                        break
    return motor, npoints


def _angles(scan: h5py.Group, motor: str | None) -> np.ndarray | None:
    if motor is None:
        return None
    for key in (
        f"instrument/positioners/{motor}",
        f"instrument/positioners_start/{motor}",
        f"instrument/{motor}/value",
        f"instrument/{motor}/data",
        f"measurement/{motor}",
    ):
        d = scan.get(key)
        if isinstance(d, h5py.Dataset) and d.ndim == 1 and d.shape[0] > 1:
            return np.asarray(d[()], dtype=np.float64)
    fp = scan.get("instrument/fscan_parameters")
    if isinstance(fp, h5py.Group) and all(k in fp for k in ("start_pos", "step_size", "npoints")):
        start, step, npoints = (float(np.asarray(fp[k][()]).reshape(-1)[0]) for k in ("start_pos", "step_size", "npoints"))
        return start + step * np.arange(int(npoints))
    return None


def _scalars(scan: h5py.Group) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}
    pos = _positioners(scan)
    if pos is not None:
        for name in pos:
            d = pos.get(name)
            if isinstance(d, h5py.Dataset) and d.size == 1 and d.dtype.kind in "iuf":
                out[name] = (float(np.asarray(d[()]).reshape(-1)[0]), _attr(d, "units"))
    return out


def _pixel_size(path: str, scan: h5py.Group, det: str) -> float | None:
    """The detector's pixel size in um, as the file gives it (the camera's, unless the file
    stores the effective one); see :func:`_magnification`."""
    grp = scan.get(f"instrument/{det}")
    if not isinstance(grp, h5py.Group):
        return None
    for key in ("x_pixel_size", "y_pixel_size", "pixel_size"):
        d = grp.get(key)
        if isinstance(d, h5py.Dataset) and d.size >= 1 and d.dtype.kind in "iuf":
            value = _to_um(float(np.asarray(d[()]).reshape(-1)[0]), _attr(d, "units") or "um")
            if np.isfinite(value) and value > 0:
                return value
    return None


#: Where an objective magnification is looked for, relative to the scan's ``instrument`` group.
MAGNIFICATION_KEYS = (
    "{det}/magnification", "{det}/optics/magnification", "{det}/objective/magnification",
    "objective/magnification", "optics/magnification", "positioners/magnification",
)


def _magnification(scan: h5py.Group, det: str) -> float | None:
    """The X-ray objective's magnification when the file stores it (a number > 0), else None."""
    inst = scan.get("instrument")
    if not isinstance(inst, h5py.Group):
        return None
    for key in MAGNIFICATION_KEYS:
        d = inst.get(key.format(det=det))
        if isinstance(d, h5py.Dataset) and d.size >= 1 and d.dtype.kind in "iuf":
            value = float(np.asarray(d[()]).reshape(-1)[0])
            if np.isfinite(value) and value > 0:
                return value
    return None


def _read_scan(path: str, f: h5py.File, name: str, detector: str | None) -> _ScanInfo | None:
    scan = f[name]
    dets = _find_detectors(path, scan)
    if not dets:
        return None
    if detector is not None:
        if detector not in dets:
            raise WeakbeamError(
                f"{path}: scan {name} has no 3D detector {detector!r} (detectors there: {', '.join(sorted(dets))})"
            )
        chosen = detector
    else:
        chosen = max(sorted(dets), key=lambda k: int(np.prod(f[dets[k]].shape[1:])))
    d = f[dets[chosen]]
    where = f"{path}::{dets[chosen]}"
    check_dtype(d.dtype, where)
    if d.shape[0]:
        check_scan_shape(d.shape, where)
    n = int(d.shape[0])
    frame_file, frame_dataset = _link_target(path, f, dets[chosen])
    title = _read_text(scan, "title")
    motor, npoints = _rocking_motor(scan, title, n)
    ang = _angles(scan, motor)
    if ang is None:
        warnings.warn(f"{path}: scan {name} has no rocking motor positions; using frame indices", stacklevel=3)
        ang = np.arange(n, dtype=np.float64)
    if ang.shape[0] > n and (npoints is None or ang.shape[0] == npoints):
        ang = ang[:n]  # aborted scan whose positions were written as planned
    if ang.shape[0] != n:
        raise WeakbeamError(
            f"{path}: scan {name} has {ang.shape[0]} {motor} angles for {n} frames "
            "(angles and frames must have the same length)"
        )
    if not np.all(np.isfinite(ang)):
        raise WeakbeamError(f"{path}: scan {name}: the {motor} angles hold NaN or infinite values")
    return _ScanInfo(
        name=name,
        dataset=dets[chosen],
        frame_file=frame_file,
        frame_dataset=frame_dataset,
        shape=tuple(int(s) for s in d.shape),
        dtype=d.dtype,
        angles=ang,
        motor=motor,
        npoints=npoints,
        title=title,
        scalars=_scalars(scan),
        detectors=sorted(dets),
        detector=chosen,
        pixel_size=_pixel_size(path, scan, chosen),
        magnification=_magnification(scan, chosen),
        start_time=_read_text(scan, "start_time"),
        ended="end_time" in scan,
    )


def _scan_names(path: str, f: h5py.File, scans: Sequence[str] | None) -> tuple[list[str], bool]:
    """Sorted ``N.1`` scan names, or the user's (checked); and whether they were named."""
    available = sorted(
        (k for k in f if _SCAN_RE.match(k) and k.endswith(".1")),
        key=lambda k: tuple(int(p) for p in k.split(".")),
    )
    if scans is None:
        if not available:
            raise WeakbeamError(f"{path}: no N.1 scan groups (not a Bliss master file?)")
        return available, False
    names = []
    for s in scans:
        s = str(s).strip()
        s = s if "." in s else f"{s}.1"
        if s not in f or not isinstance(f[s], h5py.Group):
            raise WeakbeamError(f"{path}: no scan {s} (scans there: {', '.join(available[:12]) or 'none'})")
        names.append(s)
    if not names:
        raise WeakbeamError(f"{path}: the list of scans to read is empty")
    return names, True


def _layer_motor(infos: list[_ScanInfo], rocking: str | None) -> tuple[str | None, np.ndarray]:
    common = set.intersection(*(set(i.scalars) for i in infos)) - {rocking}
    varying = [m for m in sorted(common) if len({i.scalars[m][0] for i in infos}) > 1]
    preferred = [m for m in _LAYER_MOTORS if m in varying] or varying
    if not preferred and len(infos) == 1:
        preferred = [m for m in _LAYER_MOTORS if m in common]
    if not preferred:
        return None, np.arange(len(infos), dtype=np.float64)
    motor = preferred[0]
    return motor, np.array([_to_um(*i.scalars[motor]) for i in infos], dtype=np.float64)


def open_bliss(path: str, *, scans: Sequence[str] | None = None, detector: str | None = None) -> Scan:
    """Open a Bliss master file lazily: one layer per ``N.1`` rocking scan (or per named scan)."""
    with open_h5_file(path) as f:
        names, named = _scan_names(path, f, scans)
        infos: list[_ScanInfo] = []
        for name in names:
            info = _read_scan(path, f, name, detector)
            if info is None:
                if named:
                    raise WeakbeamError(f"{path}: scan {name} has no 3D detector dataset")
                continue
            infos.append(info)
        if not infos:
            raise WeakbeamError(f"{path}: no 3D detector dataset in any scan ({', '.join(names[:8])})")
        two_theta = None
        tth = infos[0].scalars.get("tth")
        if tth is not None:
            two_theta = float(np.degrees(tth[0])) if tth[1].lower().startswith("rad") else tth[0]
        moving_layer = [i for i in infos if i.motor in _LAYER_MOTORS]
        if moving_layer and len(moving_layer) != len(infos):
            raise WeakbeamError(
                f"{path}: rocking scans and layer scans (moving {moving_layer[0].motor}) in one selection; "
                f"choose one kind with --scans (layer scans: {', '.join(i.name for i in moving_layer[:8])})"
            )
        units = _motor_units(f, infos[0].name, infos[0].motor) if moving_layer else ""
    if moving_layer:
        return _open_fixed_angle(path, infos, units, two_theta)
    skipped = [n for n in names if n not in {i.name for i in infos}]
    if skipped:
        warnings.warn(f"{path}: scans without a 3D detector skipped: {', '.join(skipped[:8])}", stacklevel=2)
    first = infos[0]
    if len(first.detectors) > 1 and detector is None:
        warnings.warn(
            f"{path}: several detectors ({', '.join(first.detectors)}); using {first.detector}, the largest "
            "(name another with detector=... / --detector)",
            stacklevel=2,
        )
    if len({i.detector for i in infos}) > 1 or len({i.shape[1:] for i in infos}) > 1:
        shapes = ", ".join(f"{i.name}: {i.detector} {i.shape[1:]}" for i in infos[:6])
        raise WeakbeamError(f"{path}: the scans have different detectors or frame shapes ({shapes})")
    n_max = max(i.shape[0] for i in infos)
    if n_max == 0:
        raise WeakbeamError(f"{path}: the scan is empty (no frames in {', '.join(i.name for i in infos[:8])})")
    layers, sources = [], []
    angles = np.full((len(infos), n_max), np.nan)
    for k, info in enumerate(infos):
        n = info.shape[0]
        planned = max(info.npoints or n, n_max)
        if n < planned:
            what = "was aborted" if info.ended else "is still being acquired (no end_time yet)"
            warnings.warn(
                f"{path}: scan {info.name} {what}: {n} of {planned} frames; read as it is "
                "(missing frames padded, their angles NaN)",
                stacklevel=2,
            )
        order = np.argsort(info.angles, kind="stable")
        angles[k, :n] = info.angles[order]
        if n == 0:
            layers.append(da.zeros((0,) + info.shape[1:], dtype=info.dtype))
            sources.append(None)
            continue
        src = H5FrameSource(info.frame_file, info.frame_dataset, order, shape=info.shape, dtype=info.dtype)
        layers.append(lazy_frames(src))
        sources.append(src)
    layer_motor, positions = _layer_motor(infos, first.motor)
    scan = Scan(
        frames=stack_layers(layers, n_max),
        angles=angles,
        layer_positions=positions,
        pixel_size=_sample_pixel(first),
        rocking_motor=first.motor,
        layer_motor=layer_motor,
        source=str(path),
        scan_names=[i.name for i in infos],
        detector=first.detector,
        metadata={
            "format": "bliss",
            "titles": [i.title for i in infos],
            "start_times": [i.start_time for i in infos],
            "planned_frames": [i.npoints for i in infos],
            "detectors": first.detectors,
            **_pixel_metadata(first),
            **({"two_theta": two_theta} if two_theta is not None else {}),
        },
    )
    scan.attach_sources(sources)
    return scan


#: Motors that rock the sample, looked for (in this order) as the fixed angle of a layer scan.
_ROCKING_MOTORS = ("diffry", "diffrx", "mu", "chi", "phi", "diffrz")


def _sample_pixel(info: _ScanInfo) -> float | None:
    """Pixel size at the sample: the detector's divided by the objective magnification if stored."""
    if info.pixel_size is None:
        return None
    return info.pixel_size / info.magnification if info.magnification else info.pixel_size


def _pixel_metadata(info: _ScanInfo) -> dict[str, Any]:
    if info.pixel_size is None:
        return {}
    return {"detector_pixel_size": info.pixel_size, "magnification": info.magnification}


def _motor_units(f: h5py.File, scan: str, motor: str | None) -> str:
    for key in (f"instrument/positioners/{motor}", f"instrument/{motor}/value", f"measurement/{motor}"):
        d = f[scan].get(key)
        if isinstance(d, h5py.Dataset):
            return _attr(d, "units")
    return ""


def _open_fixed_angle(path: str, infos: list[_ScanInfo], units: str, two_theta: float | None) -> Scan:
    """Scans whose moving motor is the layer motor (``fscan difftz ...`` at a fixed rocking
    angle): N layers of one frame each per scan; several such scans at different fixed angles
    are the frames of each layer, sorted by angle. The moving motor's positions are the layer
    positions (in um from its ``units``); the rocking angle is the scan's rocking-motor position."""
    first = infos[0]
    n = first.shape[0]
    if n == 0:
        raise WeakbeamError(f"{path}: the scan is empty (no frames in {first.name})")
    odd = next((i for i in infos if i.shape[0] != n or i.motor != first.motor or i.shape[1:] != first.shape[1:]), None)
    if odd is not None:
        raise WeakbeamError(
            f"{path}: layer scans {first.name} and {odd.name} differ ({first.shape[0]} vs {odd.shape[0]} frames of "
            f"{first.motor} vs {odd.motor}); read them one at a time with --scans"
        )
    positions = np.asarray(first.angles, dtype=np.float64) * _LENGTH_TO_UM.get(units.strip().lower(), 1.0)
    rock = next((m for m in _ROCKING_MOTORS if all(m in i.scalars for i in infos)), None)
    fixed = np.array([i.scalars[rock][0] if rock else 0.0 for i in infos], dtype=np.float64)
    by_angle = np.argsort(fixed, kind="stable")
    infos = [infos[k] for k in by_angle]
    fixed = fixed[by_angle]
    order = np.argsort(positions, kind="stable")  # layers by increasing position
    frames = da.stack(
        [lazy_frames(H5FrameSource(i.frame_file, i.frame_dataset, order, shape=i.shape, dtype=i.dtype)) for i in infos],
        axis=1,
    )
    angle_text = ", ".join(f"{a:.6g}" for a in fixed[:6]) + (" ..." if len(fixed) > 6 else "")
    warnings.warn(
        f"{path}: scan(s) {', '.join(i.name for i in infos[:6])} move the layer motor {first.motor} at a fixed "
        f"{rock or 'rocking angle (no rocking motor recorded: 0)'} = {angle_text}: read as {n} layers of "
        f"{len(infos)} frame(s) each, the {first.motor} positions as layer positions",
        stacklevel=3,
    )
    scan = Scan(
        frames=frames,
        angles=np.tile(fixed, (n, 1)),
        layer_positions=positions[order],
        pixel_size=_sample_pixel(first),
        rocking_motor=rock,
        layer_motor=first.motor,
        source=str(path),
        scan_names=[i.name for i in infos],
        detector=first.detector,
        metadata={
            "format": "bliss",
            "fixed_angle_layer_scan": True,
            "frame_files": sorted({i.frame_file for i in infos}),
            "titles": [i.title for i in infos],
            "start_times": [i.start_time for i in infos],
            "detectors": first.detectors,
            **_pixel_metadata(first),
            **({"two_theta": two_theta} if two_theta is not None else {}),
        },
    )
    if len(infos) == 1:
        scan.attach_sources([
            H5FrameSource(first.frame_file, first.frame_dataset, order[k : k + 1], shape=first.shape, dtype=first.dtype)
            for k in range(n)
        ])
    return scan
