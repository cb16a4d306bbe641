"""Compare two reconstructions, or one with a simulation's ground truth: points and lines."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import WeakbeamError
from ..core.reconstruction.compare import DistanceStats, compare_points, default_tolerance
from ..core.reconstruction.line_scoring import score_lines, truth_line_points
from ..core.reconstruction.reconstruction_io import GROUP, load_point_cloud, load_reconstruction
from ..core.scanfiles.readers.h5path import open_h5_file
from ..core.scanfiles.scan import layer_spacing
from .progress import Progress, Workflow


@dataclass
class Comparison:
    """Distances from A's points to B's and back, their statistics, and A's lines scored on B's."""

    stats: DistanceStats
    d_ab: np.ndarray
    d_ba: np.ndarray
    tolerance: float  # um
    names: tuple[str, str]  # as given (default: the descriptions)
    descriptions: tuple[str, str]  # what A and B are (file name and method, or "ground truth")
    pixel_um: float | None = None
    lines: Any = None  # core.reconstruction.lines LineScore, or None without lines on both sides


def compare(a: Any, b: Any, tolerance: float | None = None, z_tolerance: float | None = None,
            names: tuple[str, str] | None = None) -> Workflow[Comparison]:
    """Compare A with B, each a reconstruction or simulation file, or a Reconstruction in memory.

    ``tolerance`` (um; default 3 pixels, core.reconstruction.compare.default_tolerance) decides
    which points count as found; ``z_tolerance`` (um) the lines' height tolerance (default: half a
    layer spacing, or half the truth's slab). One "steps" :class:`Progress` per side read.
    """
    pa, name_a, pix_a = _points(a)
    yield Progress("steps", 1, 3, f"read {name_a}")
    pb, name_b, pix_b = _points(b)
    yield Progress("steps", 2, 3, f"read {name_b}")
    pixel = pix_a or pix_b
    tol = default_tolerance(pixel) if tolerance is None else float(tolerance)
    if not tol >= 0:
        raise WeakbeamError(f"tolerance {tol} um: must be a distance >= 0 in micrometres")
    if z_tolerance is not None and not z_tolerance > 0:
        raise WeakbeamError(f"z tolerance {z_tolerance} um: must be a distance > 0 micrometres")
    names = names or (name_a, name_b)
    stats, d_ab, d_ba = compare_points(pa, pb, tol, names=names)
    result = Comparison(stats, d_ab, d_ba, tol, names, (name_a, name_b), pixel, _score_lines(a, b, tol, z_tolerance))
    yield Progress("steps", 3, 3, "compared")
    return result


def _points(x: Any) -> tuple[np.ndarray, str, float | None]:
    if isinstance(x, (str, os.PathLike)):
        return load_point_cloud(x)
    return np.asarray(x.points_um, dtype=np.float64), str(getattr(x, "method", "reconstruction")), x.voxel_size_um[1]


def _lines_of(x: Any) -> tuple[str, Any]:
    """("reconstruction", its Reconstruction), ("ground_truth", the file) or ("", None)."""
    if not isinstance(x, (str, os.PathLike)):
        return "reconstruction", x
    with open_h5_file(str(x)) as f:
        kind = "reconstruction" if GROUP in f else "ground_truth" if "ground_truth" in f else ""
    if kind == "reconstruction":
        return kind, load_reconstruction(x, volumes=False)
    return kind, x


def _score_lines(a: Any, b: Any, tolerance: float, z_tolerance: float | None) -> Any:
    """A's traced lines scored against B's (truth or reconstruction), or None when either has none."""
    kind_a, rec_a = _lines_of(a)
    if kind_a != "reconstruction" or rec_a.lines is None:
        return None
    kind_b, rec_b = _lines_of(b)
    if kind_b == "ground_truth":
        from ..core.simulate import load_truth

        pts, every, step, zt = truth_line_points(load_truth(rec_b))
        return score_lines(rec_a.lines, pts, tolerance, z_tolerance or zt, step, reference=every)
    if kind_b != "reconstruction" or rec_b.lines is None:
        return None
    zt = z_tolerance or 0.5 * layer_spacing(rec_b.layer_positions)
    step = tolerance / 3
    return score_lines(rec_a.lines, [rec_b.lines.sample(step)], tolerance, zt, step)
