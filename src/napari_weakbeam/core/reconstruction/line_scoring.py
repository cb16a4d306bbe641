"""Traced lines scored against true ones: the share of the true line length found within a
tolerance, and the traced length that follows no true line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.spatial import cKDTree

from ..errors import WeakbeamError
from .lines import Lines, sample_polyline

EDGE_MARGIN_PX = 5  # a line crossing a layer plane this near the field's edge is not observable there


@dataclass
class LineScore:
    """Traced lines against true ones (micrometres).

    ``recall``: share of the observable true line length with a traced line within the tolerance;
    ``false_length_um``: traced length farther than the tolerance from every true line;
    ``precision``: share of the traced length within the tolerance of a true line.
    """

    true_length_um: float
    traced_length_um: float
    found_length_um: float
    false_length_um: float
    recall: float
    precision: float
    tolerance_um: float
    z_tolerance_um: float
    n_true: int
    n_traced: int

    def summary(self) -> str:
        return (
            f"lines: {self.n_traced} traced ({self.traced_length_um:.4g} um), {self.n_true} true "
            f"({self.true_length_um:.4g} um observable); {100 * self.recall:.1f} % of the true length "
            f"found within {self.tolerance_um:.4g} um; false length {self.false_length_um:.4g} um "
            f"({100 * (1 - self.precision):.1f} % of the traced length)"
        )

    def to_dict(self) -> dict[str, float]:
        from dataclasses import asdict

        return asdict(self)


def observable_truth(true_lines: Sequence[np.ndarray], layer_positions: np.ndarray, thickness_um: float,
                     fov_lo: np.ndarray, fov_hi: np.ndarray, step: float, margin: float = 0.0) -> list[np.ndarray]:
    """Points (every ``step`` um) of the true lines a layer scan can show: inside the field of
    view (y, x between ``fov_lo`` and ``fov_hi``) and either inside an imaged slab (|z - z_k| <=
    thickness / 2) or between two consecutive layers whose planes (z_k) the line crosses inside
    the field, at least ``margin`` um from its edges (a crossing at the edge is imaged cut)."""
    pos = np.sort(np.asarray(layer_positions, dtype=np.float64))
    half = thickness_um / 2
    out = []
    for v in true_lines:
        pts = sample_polyline(np.asarray(v, dtype=np.float64), step)
        inside = np.all((pts[:, 1:] >= fov_lo) & (pts[:, 1:] < fov_hi), axis=1)
        pts = pts[inside]
        if not len(pts):
            continue
        slab = np.abs(pts[:, 0][:, None] - pos[None]) <= half  # (n, layers)
        inner = np.all((pts[:, 1:] >= fov_lo + margin) & (pts[:, 1:] < fov_hi - margin), axis=1)
        crossed = ((np.abs(pts[:, 0][:, None] - pos[None]) <= step) & inner[:, None]).any(axis=0)
        keep = slab.any(axis=1)
        gap = np.searchsorted(pos, pts[:, 0]) - 1  # layer below each point
        ok = (gap >= 0) & (gap < len(pos) - 1)
        g = np.clip(gap, 0, max(len(pos) - 2, 0))
        if len(pos) > 1:
            keep |= ok & crossed[g] & crossed[np.minimum(g + 1, len(pos) - 1)]
        if keep.any():
            out.append(pts[keep])
    return out


def truth_line_points(truth: Any, step: float | None = None) -> tuple[list[np.ndarray], np.ndarray, float, float]:
    """A simulation's true lines to score against: the observable points (:func:`observable_truth`
    with a margin of ``EDGE_MARGIN_PX`` pixels, inside the grain as the points' scoring has it, for
    recall), every point of the lines (for the false length), the sampling step and the z
    tolerance (half the slab thickness)."""
    p = truth.params
    step = step or p.pixel_size_um / 2
    lo = np.array([-0.5 * p.pixel_size_um, -0.5 * p.x_pixel_um])
    hi = lo + np.array([p.rows * p.pixel_size_um, p.cols * p.x_pixel_um])
    pts = observable_truth(truth.lines_um, truth.layer_positions, p.layer_thickness_um, lo, hi, step,
                           margin=EDGE_MARGIN_PX * p.pixel_size_um)
    from ..simulate.scoring import in_grain  # the points' rule (simulate imports this package)

    pts = [q for q in (in_grain(q, truth) for q in pts) if len(q)]
    every = Lines.from_list(truth.lines_um).sample(step) if len(truth.lines_um) else np.zeros((0, 3))
    return pts, every, step, p.layer_thickness_um / 2


def score_lines(traced: Lines, true_points: Sequence[np.ndarray] | np.ndarray, tolerance_um: float,
                z_tolerance_um: float, step: float | None = None, reference: np.ndarray | None = None,
                x_tolerance_um: float | None = None) -> LineScore:
    """Score ``traced`` against true line points (from :func:`observable_truth`, ``step`` apart).

    A true point is found when a point of a traced line lies within ``tolerance_um`` in y,
    ``x_tolerance_um`` in x (default: the same; give each axis its pixels, e.g. 3 y and 3 x
    pixels, where the x pixel is larger) and ``z_tolerance_um`` in height (an ellipsoid: depth
    resolution is the slab, not the pixel). A traced point is true when a point of ``reference``
    (default: the true points; give every point of the true lines so that a line traced where the
    truth is not counted observable is not false) lies as near.
    """
    x_tol = tolerance_um if x_tolerance_um is None else x_tolerance_um
    if tolerance_um <= 0 or z_tolerance_um <= 0 or x_tol <= 0:
        raise WeakbeamError("line tolerances must be > 0 micrometres")
    groups = [np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in (true_points if isinstance(true_points, (list, tuple)) else [true_points])]
    truth = np.concatenate(groups) if groups else np.zeros((0, 3))
    step = step or tolerance_um / 3
    found_pts = traced.sample(step)
    scale = np.array([tolerance_um / z_tolerance_um, 1.0, tolerance_um / x_tol])
    t_len = len(truth) * step
    tr_len = float(traced.lengths().sum())
    if len(truth) and len(found_pts):
        d_t = cKDTree(found_pts * scale).query(truth * scale, k=1)[0]
        rec = float(np.mean(d_t <= tolerance_um))
        ref = truth if reference is None or not len(reference) else np.asarray(reference, dtype=np.float64).reshape(-1, 3)
        d_f = cKDTree(ref * scale).query(found_pts * scale, k=1)[0]
        # traced length near the truth: each sample stands for the length around it
        prec = float(np.mean(d_f <= tolerance_um))  # samples are evenly spaced along the lines
    else:
        rec, prec = 0.0, (0.0 if len(found_pts) else float("nan"))
    prec_v = float(prec) if np.isfinite(prec) else float("nan")
    false_len = tr_len * (1 - prec_v) if np.isfinite(prec_v) else 0.0
    return LineScore(t_len, tr_len, rec * t_len, false_len, rec, prec_v, float(tolerance_um), float(z_tolerance_um),
                     len(groups), len(traced))
