"""Write a simulation as an ESRF Bliss master file with ``/ground_truth`` beside the scans."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import h5py
import numpy as np

from ..scanfiles.bliss_writer import write_bliss
from ..errors import WeakbeamError
from .params import SimulationParams
from .simulation import Progress, Simulation, build_truth, iter_layers, scan_angles
from .structure import make_structure
from .tilt import LayerFields
from .truth import GroundTruth, write_truth


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
    names: list[str] = []
    write_frames_and_truth(
        path, sim.params, list(sim.frames), lambda: sim.truth, external=external,
        compression=compression, zigzag=zigzag, names=names,
    )
    return names


def write_frames_and_truth(
    path: str | os.PathLike,
    params: SimulationParams,
    layers: Iterable[np.ndarray],
    truth: Callable[[], GroundTruth],
    *,
    external: bool = False,
    compression: str | None = None,
    zigzag: bool = False,
    names: list[str] | None = None,
) -> GroundTruth:
    """Write ``layers`` (any iterable, e.g. a generator) with ``write_bliss``, then ``truth()``."""
    path = Path(path)
    if path.is_dir():
        raise WeakbeamError(f"{path}: is a folder, expected an output .h5 file")
    written = write_bliss(
        path,
        layers,
        list(scan_angles(params)),
        params.layer_positions_um(),
        pixel_size=params.pixel_size_um,
        two_theta=params.two_theta_deg,
        external=external,
        compression=compression,
        zigzag=zigzag,
    )
    if names is not None:
        names.extend(written)
    try:
        gt = truth()
        with h5py.File(path, "a") as f:
            write_truth(f, gt)
            f.attrs["creator"] = "napari-weakbeam simulate (Bliss layout + /ground_truth)"
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return gt


class _Light:
    """Per-layer truth maps only (the fields' big arrays dropped while streaming)."""

    def __init__(self, f: LayerFields):
        self.peak0, self.fwhm0, self.core_mask, self.grain = f.peak0, f.fwhm0, f.core_mask, f.grain


def simulate_to_file(
    path,
    params: SimulationParams,
    *,
    progress: Progress | None = None,
    external: bool = False,
    compression: str | None = None,
    zigzag: bool = False,
) -> GroundTruth:
    """Simulate and write layer by layer (memory: one layer), then add ``/ground_truth``."""
    p = params
    p.validate()
    structure = make_structure(p, np.random.default_rng(p.seed))
    kept: list = []

    def frames_only():
        for frames, f in iter_layers(p, structure, progress):
            kept.append(_Light(f))
            yield frames

    def truth():
        return build_truth(p, structure, kept)  # type: ignore[arg-type]

    return write_frames_and_truth(
        path, p, frames_only(), truth, external=external, compression=compression, zigzag=zigzag
    )
