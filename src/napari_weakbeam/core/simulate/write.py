"""Write a simulation as an ESRF Bliss master file with ``/ground_truth`` beside the scans."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from ..bliss_writer import write_bliss
from ..errors import WeakbeamError
from .simulation import Simulation
from .truth import write_truth


def write_simulation(
    path: str | os.PathLike,
    sim: Simulation,
    *,
    external: bool = False,
    compression: str | None = None,
    zigzag: bool = False,
) -> list[str]:
    """Write the frames (Bliss layout, via ``write_bliss``) and the ground truth; return scan names.

    The ground truth keeps frames sorted by angle (the readers' order) even when ``zigzag`` writes
    every other layer in reverse acquisition order.
    """
    path = Path(path)
    if path.is_dir():
        raise WeakbeamError(f"{path}: is a folder, expected an output .h5 file")
    p = sim.params
    names = write_bliss(
        path,
        list(sim.frames),
        list(sim.angles),
        sim.layer_positions,
        pixel_size=p.pixel_size_um,
        two_theta=p.two_theta_deg,
        external=external,
        compression=compression,
        zigzag=zigzag,
    )
    try:
        with h5py.File(path, "a") as f:
            write_truth(f, sim.truth)
            f.attrs["creator"] = "napari-weakbeam simulate (Bliss layout + /ground_truth)"
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return names
