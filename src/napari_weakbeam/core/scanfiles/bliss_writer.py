"""Write rocking scans in the ESRF Bliss HDF5 layout, as the beamline does (ID03 / ID06-HXM).

One master file; one ``N.1`` NXentry per layer (a rocking ``fscan`` of the rocking motor at one
position of the layer motor) plus an ``N.2`` monitor sub-scan, as Bliss writes them::

    /1.1                      NXentry: title "fscan diffry <start> <step> <npoints> <exp>", start_time
      instrument/             NXinstrument
        pco_ff/               NXdetector: data (frames, rows, cols), x/y_pixel_size (um)
        diffry/value          encoder readings (frames,)
        positioners/          NXcollection: one scalar per motor, the rocking motor as (frames,)
        fscan_parameters/     motor, npoints (planned), start_pos, step_size
      measurement/            NXcollection: pco_ff -> soft link to the detector data, diffry
    /1.2                      NXentry: monitor counter (readers ignore it)

With ``external=True`` each scan's frames go to ``<stem>_scan0001_<det>.h5`` beside the master,
reached through an ``h5py.ExternalLink`` (the camera files of the beamline).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_h5
from ..errors import WeakbeamError

#: Snapshot motors written in every scan besides the rocking and layer motors (ID06-HXM-like).
_SNAPSHOT_MOTORS = {"diffrz": 0.0, "chi": 0.0, "obx": 265.0, "obpitch": 0.0, "ffz": 0.0}
_EXPOSURE_S = 0.5


def _compression_kwargs(compression: str | None) -> dict[str, Any]:
    if compression is None:
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression == "bitshuffle":
        import hdf5plugin

        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    raise WeakbeamError(f"compression {compression!r}: expected None, 'gzip' or 'bitshuffle'")


def _extra_detector_spec(item: Any) -> tuple[str, tuple[int, int]]:
    """``"basler_ff"`` or ``("basler_ff", (rows, cols))`` -> (name, (rows, cols))."""
    if isinstance(item, str):
        return item, (8, 8)
    name, shape = item
    return str(name), (int(shape[0]), int(shape[1]))


def _write_frames(
    group: h5py.Group, name: str, frames: np.ndarray, comp: dict[str, Any]
) -> h5py.Dataset:
    chunks = (1,) + frames.shape[1:] if frames.shape[0] else None
    return group.create_dataset(name, data=frames, chunks=chunks, **(comp if chunks else {}))


def _detector_group(
    instrument: h5py.Group,
    det: str,
    frames: np.ndarray,
    *,
    master: Path,
    scan_no: int,
    external: bool,
    comp: dict[str, Any],
    pixel_size: float | None,
) -> None:
    g = instrument.create_group(det)
    g.attrs["NX_class"] = "NXdetector"
    if external:
        ext_name = external_name(master, scan_no, det)
        with h5py.File(master.parent / ext_name, "w") as ef:
            entry = ef.create_group("entry_0000")
            entry.attrs["NX_class"] = "NXentry"
            meas = entry.create_group("measurement")
            meas.attrs["NX_class"] = "NXcollection"
            _write_frames(meas, "data", frames, comp)
        g["data"] = h5py.ExternalLink(ext_name, "/entry_0000/measurement/data")
    else:
        _write_frames(g, "data", frames, comp)
    if pixel_size is not None:
        for key in ("x_pixel_size", "y_pixel_size"):
            g[key] = float(pixel_size)
            g[key].attrs["units"] = "um"


def external_name(master: str | os.PathLike, scan_no: int, det: str) -> str:
    """The camera file of scan ``scan_no`` beside ``master`` (as the beamline names it)."""
    return f"{Path(master).stem}_scan{scan_no:04d}_{det}.h5"


@contextlib.contextmanager
def _no_camera_files_left_on_failure(master: Path, external: bool) -> Iterator[None]:
    """A failed write removes the camera files it created (the master is atomic already)."""
    pattern = f"{master.stem}_scan*.h5"
    before = set(master.parent.glob(pattern)) if external else set()
    try:
        yield
    except BaseException:
        if external:
            for p in set(master.parent.glob(pattern)) - before:
                p.unlink(missing_ok=True)
        raise


def write_bliss(
    path: str | os.PathLike,
    layers: Iterable[np.ndarray],
    angles: Sequence[np.ndarray],
    layer_positions: Sequence[float] | np.ndarray | None,
    *,
    rocking_motor: str = "diffry",
    layer_motor: str = "difftz",
    detector: str = "pco_ff",
    pixel_size: float | None = None,
    two_theta: float | None = None,
    external: bool = False,
    compression: str | None = None,
    zigzag: bool = False,
    planned_frames: int | None = None,
    extra_detectors: Sequence[Any] = (),
) -> list[str]:
    """Write one Bliss master file with one rocking scan per layer; return the scan names.

    Parameters
    ----------
    layers
        Per-layer frames (frames, rows, cols), uint16 usually (other dtypes are kept). Any iterable,
        e.g. a generator, so big files can be written one layer at a time.
    angles
        Per-layer rocking angles (frames,) in degrees, in the order of the frames given.
    layer_positions
        Layer motor position of each layer in um (None: 0, 2, 4, ...).
    zigzag
        Write every other layer (the 2nd, 4th, ...) in reversed frame order, as acquired by a
        zigzag scan; the angles are reversed with the frames.
    planned_frames
        ``npoints`` of the scan; a layer with fewer frames is an aborted scan.
    extra_detectors
        More 3D detectors written beside ``detector`` (names, or (name, (rows, cols))), filled with
        a dim pattern, e.g. the ``basler_ff`` far-field camera.
    external, compression
        Frames in separate linked files; ``"bitshuffle"`` (LZ4, hdf5plugin) or ``"gzip"``.
    """
    master = Path(path)
    comp = _compression_kwargs(compression)
    extras = [_extra_detector_spec(e) for e in extra_detectors]
    angles = list(angles)
    n = len(angles)
    positions = (
        np.arange(n, dtype=np.float64) * 2.0
        if layer_positions is None
        else np.asarray(layer_positions, dtype=np.float64).reshape(-1)
    )
    if positions.shape[0] != n:
        raise WeakbeamError(f"{master}: {positions.shape[0]} layer positions for {n} layers of angles")
    start = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)
    names: list[str] = []
    with _no_camera_files_left_on_failure(master, external), atomic_h5(master) as f:
        f.attrs["NX_class"] = "NXroot"
        f.attrs["creator"] = "napari-weakbeam write_bliss (Bliss layout)"
        for i, frames in enumerate(layers):
            if i >= n:
                raise WeakbeamError(f"{master}: more layers of frames than the {n} layers of angles")
            frames = np.asarray(frames)
            ang = np.asarray(angles[i], dtype=np.float64).reshape(-1)
            if frames.ndim != 3 or frames.shape[0] != ang.shape[0]:
                raise WeakbeamError(
                    f"{master}: layer {i} has frames {frames.shape} and {ang.shape[0]} angles "
                    "(need (frames, rows, cols) and one angle per frame)"
                )
            if zigzag and i % 2 == 1:
                frames, ang = frames[::-1], ang[::-1]
            n_acq = frames.shape[0]
            npoints = int(planned_frames) if planned_frames is not None else n_acq
            step = float(np.median(np.diff(ang))) if n_acq > 1 else 0.0
            start_pos = float(ang[0]) if n_acq else 0.0
            scan_no = i + 1
            name = f"{scan_no}.1"
            names.append(name)
            t0 = start + timedelta(minutes=3 * i)

            entry = f.create_group(name)
            entry.attrs["NX_class"] = "NXentry"
            entry["title"] = f"fscan {rocking_motor} {start_pos:.6g} {step:.6g} {npoints} {_EXPOSURE_S:g}"
            entry["start_time"] = t0.isoformat()
            entry["end_time"] = (t0 + timedelta(seconds=npoints * _EXPOSURE_S)).isoformat()

            inst = entry.create_group("instrument")
            inst.attrs["NX_class"] = "NXinstrument"
            _detector_group(
                inst, detector, frames, master=master, scan_no=scan_no, external=external,
                comp=comp, pixel_size=pixel_size,
            )
            for det_name, shape in extras:
                dim = np.full((n_acq,) + shape, 100, dtype=np.uint16)
                dim[:, : shape[0] // 2] += np.arange(n_acq, dtype=np.uint16)[:, None, None]
                _detector_group(
                    inst, det_name, dim, master=master, scan_no=scan_no, external=external,
                    comp=comp, pixel_size=None,
                )

            enc = inst.create_group(rocking_motor)
            enc.attrs["NX_class"] = "NXpositioner"
            enc["value"] = ang
            enc["value"].attrs["units"] = "deg"

            pos = inst.create_group("positioners")
            pos.attrs["NX_class"] = "NXcollection"
            pos[rocking_motor] = ang
            pos[rocking_motor].attrs["units"] = "deg"
            pos[layer_motor] = float(positions[i])
            pos[layer_motor].attrs["units"] = "um"
            for motor, value in _SNAPSHOT_MOTORS.items():
                if motor not in (rocking_motor, layer_motor):
                    pos[motor] = value
            if two_theta is not None:
                pos["tth"] = float(two_theta)
                pos["tth"].attrs["units"] = "deg"

            fp = inst.create_group("fscan_parameters")
            fp.attrs["NX_class"] = "NXcollection"
            fp["motor"] = rocking_motor
            fp["npoints"] = npoints
            fp["start_pos"] = start_pos
            fp["step_size"] = step
            fp["acq_time"] = _EXPOSURE_S

            meas = entry.create_group("measurement")
            meas.attrs["NX_class"] = "NXcollection"
            meas[detector] = h5py.SoftLink(f"/{name}/instrument/{detector}/data")
            for det_name, _ in extras:
                meas[det_name] = h5py.SoftLink(f"/{name}/instrument/{det_name}/data")
            meas[rocking_motor] = h5py.SoftLink(f"/{name}/instrument/{rocking_motor}/value")
            entry.attrs["default"] = "measurement"

            mon = f.create_group(f"{scan_no}.2")
            mon.attrs["NX_class"] = "NXentry"
            mon["title"] = f"fscan {rocking_motor} monitor"
            mon["start_time"] = t0.isoformat()
            mmeas = mon.create_group("measurement")
            mmeas.attrs["NX_class"] = "NXcollection"
            mmeas["mon"] = np.full(max(n_acq, 1) * 4, 12000, dtype=np.int32)
        if len(names) != n:
            raise WeakbeamError(f"{master}: {len(names)} layers of frames for {n} layers of angles")
    return names
