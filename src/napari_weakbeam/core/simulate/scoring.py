"""Score a reconstruction's point cloud against a simulation's true dislocation lines.

Recall is measured on what a scan can show: the true line points inside an imaged slab, inside
the field of view and inside the diffracting grain (``GroundTruth.points_um`` less the points
outside the grain, where no image is). Precision accepts a found point when a true line passes
within the tolerance of it in-plane at a height within the slab widened by the same tolerance
(a line just above the slab or just outside the field still bends the lattice the slab images,
so the images show it; the truth that recall uses leaves it out). Distances are measured in
pixels of each image axis (y: the pixel size, x: pixel size / sin 2theta), so "within 3 px" means
three pixels along either axis however anisotropic the pixels are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..reconstruction.lines import Lines
from .truth import GroundTruth


@dataclass(frozen=True)
class PointScore:
    """Recall and precision within the tolerance, and the median symmetric nearest distance."""

    recall: float
    precision: float
    median_px: float
    n_found: int
    n_truth: int

    def as_dict(self) -> dict:
        return asdict(self)


def observable_points(truth: GroundTruth) -> np.ndarray:
    """The true line points a scan can show (N, 3) z, y, x um: in a slab, the field and the grain."""
    pts = np.asarray(truth.points_um, dtype=np.float64).reshape(-1, 3)
    if truth.grain_mask is None or not len(pts):
        return pts
    p = truth.params
    k = np.abs(pts[:, 0][:, None] - np.asarray(truth.layer_positions)[None]).argmin(axis=1)
    r = np.clip(np.rint(pts[:, 1] / p.pixel_size_um).astype(int), 0, p.rows - 1)
    c = np.clip(np.rint(pts[:, 2] / p.x_pixel_um).astype(int), 0, p.cols - 1)
    return pts[truth.grain_mask[k, r, c]]


def score_points(found_um: np.ndarray, truth: GroundTruth, tolerance_px: float = 3.0) -> PointScore:
    """Score found points (N, 3) z, y, x um (z = a layer position) against ``truth``."""
    p = truth.params
    px = float(p.pixel_size_um)
    to_px = np.array([1.0, 1 / px, 1 / float(p.x_pixel_um)])  # z stays um
    found = np.asarray(found_um, dtype=np.float64).reshape(-1, 3) * to_px
    visible = observable_points(truth) * to_px
    every = (Lines.from_list(truth.lines_um).sample(px / 2) if len(truth.lines_um) else observable_points(truth)) * to_px
    tol = float(tolerance_px)
    half = p.layer_thickness_um / 2 + tol * px
    d_found, d_truth = [], []
    for z in np.asarray(truth.layer_positions, dtype=np.float64):
        f = found[np.isclose(found[:, 0], z)][:, 1:]
        t = visible[np.isclose(visible[:, 0], z)][:, 1:]
        ref = every[np.abs(every[:, 0] - z) <= half][:, 1:]
        if len(f):
            d_found.append(cKDTree(ref).query(f, k=1)[0] if len(ref) else np.full(len(f), np.inf))
        if len(t):
            d_truth.append(cKDTree(f).query(t, k=1)[0] if len(f) else np.full(len(t), np.inf))
    df = np.concatenate(d_found) if d_found else np.zeros(0)
    dt = np.concatenate(d_truth) if d_truth else np.zeros(0)
    both = np.concatenate([df, dt])  # inf where a layer has nothing to compare with
    return PointScore(
        recall=float(np.mean(dt <= tol)) if len(dt) else float("nan"),
        precision=float(np.mean(df <= tol)) if len(df) else float("nan"),
        median_px=float(np.median(both)) if len(both) else float("nan"),
        n_found=len(found),
        n_truth=len(visible),
    )
