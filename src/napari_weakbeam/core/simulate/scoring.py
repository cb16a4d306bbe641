"""Score a reconstruction's point cloud against a simulation's true dislocation lines.

Recall is measured on what a scan can show: the true line points inside an imaged slab, inside
the field of view and inside the diffracting grain (``GroundTruth.points_um`` less the points
outside the grain, where no image is). Precision accepts a found point when a true line passes
within the tolerance of it in-plane at a height within the slab widened by the same tolerance
(a line just above the slab or just outside the field still bends the lattice the slab images,
so the images show it; the truth that recall uses leaves it out). Distances are measured in
pixels of each image axis (y: the pixel size, x: pixel size / sin 2theta), so "within 3 px" means
three pixels along either axis however anisotropic the pixels are. The lines are whole
(:func:`lines_around_slabs`): our simulator stores them clipped to the box of its slabs, so they
are drawn again from its seed; before this, on a single-layer scan of ours the widening accepted no
line beyond the slab's faces (dfxm-geo's stored lines were always whole).

:func:`false_point_heights` says what the false points are: over a true line just outside the
slab (its strain is imaged), or over none (noise, an outline, a lobe). A diagnostic.
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
    return in_grain(np.asarray(truth.points_um, dtype=np.float64).reshape(-1, 3), truth)


def in_grain(pts: np.ndarray, truth: GroundTruth) -> np.ndarray:
    """``pts`` (z, y, x um) over the grain of their nearest layer (outside it nothing diffracts,
    so no line can show there); all of them where the truth has no grain mask."""
    if truth.grain_mask is None or not len(pts):
        return pts
    p = truth.params
    k = np.abs(pts[:, 0][:, None] - np.asarray(truth.layer_positions)[None]).argmin(axis=1)
    r = np.clip(np.rint(pts[:, 1] / p.pixel_size_um).astype(int), 0, p.rows - 1)
    c = np.clip(np.rint(pts[:, 2] / p.x_pixel_um).astype(int), 0, p.cols - 1)
    return pts[truth.grain_mask[k, r, c]]


#: How far above and below the slab :func:`false_point_heights` looks for a true line, um (the
#: simulator's screening length: farther lines bend the slab's lattice too little to image).
LINE_REACH_UM = 2.0


def _in_pixels(found_um: np.ndarray, truth: GroundTruth,
               reach_um: float = LINE_REACH_UM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(found, every true line sample (the whole lines, ``reach_um`` beyond the slabs), the
    observable true points), each (N, 3) with z in um and y, x in pixels of each image axis."""
    p = truth.params
    px = float(p.pixel_size_um)
    to_px = np.array([1.0, 1 / px, 1 / float(p.x_pixel_um)])  # z stays um
    found = np.asarray(found_um, dtype=np.float64).reshape(-1, 3) * to_px
    visible = observable_points(truth)
    lines = lines_around_slabs(truth, reach_um)
    every = Lines.from_list(lines).sample(px / 2) if len(lines) else visible
    return found, every * to_px, visible * to_px


def _found_distances(found: np.ndarray, every: np.ndarray, layers: np.ndarray, half: float) -> np.ndarray:
    """In-plane distance (px) of each found point (pixel units, :func:`_in_pixels`) to the nearest
    true line sample within ``half`` um in height of its layer; inf where there is none, NaN for
    a point at no layer position (not scored)."""
    out = np.full(len(found), np.nan)
    for z in np.asarray(layers, dtype=np.float64):
        at = np.isclose(found[:, 0], z)
        ref = every[np.abs(every[:, 0] - z) <= half][:, 1:]
        if at.any():
            out[at] = cKDTree(ref).query(found[at, 1:], k=1)[0] if len(ref) else np.inf
    return out


def score_points(found_um: np.ndarray, truth: GroundTruth, tolerance_px: float = 3.0) -> PointScore:
    """Score found points (N, 3) z, y, x um (z = a layer position) against ``truth``."""
    p = truth.params
    px = float(p.pixel_size_um)
    found, every, visible = _in_pixels(found_um, truth)
    tol = float(tolerance_px)
    df = _found_distances(found, every, truth.layer_positions, p.layer_thickness_um / 2 + tol * px)
    df = df[~np.isnan(df)]
    d_truth = []
    for z in np.asarray(truth.layer_positions, dtype=np.float64):
        f = found[np.isclose(found[:, 0], z)][:, 1:]
        t = visible[np.isclose(visible[:, 0], z)][:, 1:]
        if len(t):
            d_truth.append(cKDTree(f).query(t, k=1)[0] if len(f) else np.full(len(t), np.inf))
    dt = np.concatenate(d_truth) if d_truth else np.zeros(0)
    both = np.concatenate([df, dt])  # inf where a layer has nothing to compare with
    return PointScore(
        recall=float(np.mean(dt <= tol)) if len(dt) else float("nan"),
        precision=float(np.mean(df <= tol)) if len(df) else float("nan"),
        median_px=float(np.median(both)) if len(both) else float("nan"),
        n_found=len(found),
        n_truth=len(visible),
    )


def lines_around_slabs(truth: GroundTruth, reach_um: float = LINE_REACH_UM) -> list[np.ndarray]:
    """The true lines (polylines z, y, x um) reaching ``reach_um`` above and below the imaged
    slabs. Our simulator stores its lines clipped to the slabs' box, so they are drawn again from
    its structure (made from the seed, as :func:`.simulation.simulate` makes it) and clipped to
    the box widened by ``reach_um`` in height; dfxm-geo's stored lines are already whole."""
    if truth.generator != "weakbeam":
        return list(truth.lines_um)
    from dataclasses import replace

    from .structure import make_structure

    st = make_structure(truth.params, np.random.default_rng(truth.params.seed))
    widen = np.array([reach_um, 0.0, 0.0])
    return replace(st, box_lo=st.box_lo - widen, box_hi=st.box_hi + widen).polylines()[0]


def false_point_heights(found_um: np.ndarray, truth: GroundTruth, tolerance_px: float = 3.0,
                        reach_um: float = LINE_REACH_UM) -> np.ndarray:
    """For each false point of :func:`score_points` (no true line within ``tolerance_px`` in-plane
    at a height within the slab widened by the tolerance, as scored), the height (um) beyond the
    slab's face of the nearest true line (:func:`lines_around_slabs`) that passes within
    ``tolerance_px`` of it in-plane; ``inf`` where none does within ``reach_um`` of the slab (noise,
    an outline, a lobe). Float64, one per false point, in the order of ``found_um``. A diagnostic of
    what the false points are (the image of a line just outside the slab, whose strain the slab
    images, or something else); the precision is not changed by it. ``reach_um`` at least the
    widening (3 px), so that the false points are those :func:`score_points` counts."""
    p = truth.params
    px = float(p.pixel_size_um)
    found, near, _ = _in_pixels(found_um, truth, reach_um)
    tol = float(tolerance_px)
    half_slab = p.layer_thickness_um / 2
    half = half_slab + tol * px
    idx = np.flatnonzero(_found_distances(found, near, truth.layer_positions, half) > tol)  # as scored
    out = np.full(len(idx), np.inf)
    if not len(idx) or not len(near):
        return out
    for k, hits in enumerate(cKDTree(near[:, 1:]).query_ball_point(found[idx, 1:], r=tol)):
        if hits:
            h = float(np.abs(near[hits, 0] - found[idx[k], 0]).min()) - half_slab
            out[k] = h if h <= reach_um else np.inf
    return out


#: Heights (um beyond the slab's face) of the bins :func:`false_point_summary` reports.
HEIGHT_BINS_UM = (0.25, 0.5, 1.0)


def false_point_summary(heights: np.ndarray, widening_um: float, bins: tuple[float, ...] = HEIGHT_BINS_UM) -> dict:
    """Shares of the false points (:func:`false_point_heights`) whose nearest line is within
    ``widening_um`` of the slab (the tolerance the scoring widens the slab by: a point counted
    false only because the stored truth stops at the slab's face, as our simulator's single-layer
    scans store it), within each of ``bins`` um, and with no line near at all; their median height."""
    h = np.asarray(heights, dtype=np.float64)
    n = len(h)
    out: dict = {"n_false": n}
    for name, b in [("widening", widening_um)] + [(f"{b:g}um", b) for b in bins]:
        out[f"within_{name}"] = float(np.mean(h <= b)) if n else float("nan")
    out["no_line"] = float(np.mean(~np.isfinite(h))) if n else float("nan")
    out["median_height_um"] = float(np.median(h[np.isfinite(h)])) if np.isfinite(h).any() else float("nan")
    return out
