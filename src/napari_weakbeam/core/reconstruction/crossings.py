"""Lines that cross inside one mask piece: a piece's straight arms, for drawing a line seen in one
layer only.

Two shallow lines (or an in-plane line and a steeper one) whose images cross in a layer make one
connected piece, whose single axis lies between them. :func:`piece_arms` cuts the piece's centre
line at its junctions, keeps the arms at least ``ARM_UM`` long, joins the arms that continue one
another across a junction (parallel within ``ARM_ANGLE_DEG`` and in line) and fits each group of
arms with a straight segment through the piece's pixels nearest to it. A piece with fewer than
two such groups (a straight streak, whatever short spurs its noise grows) gives none, and is drawn
as before. See docs/reconstruction.md.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage import morphology

ARM_UM = 0.5  # shortest arm of a crossing (shorter: a spur of the piece's outline, not a line)
ARM_ANGLE_DEG = 20.0  # arms within this angle, in line across their junction, are one line
ARM_OFFSET_UM = 0.25  # ... and no farther apart across their direction than this

Segment = tuple[np.ndarray, np.ndarray, float]  # centre (y, x) um, unit axis (y, x), half length um


def piece_arms(piece: np.ndarray, origin: tuple[float, float], voxel: tuple[float, float, float]) -> list[Segment]:
    """The straight lines crossing in one piece (``piece``: its bool window; ``origin``: the
    window's first pixel (row, col) in drift-corrected pixels), as segments in um; [] where the
    piece holds one line."""
    skel = morphology.skeletonize(piece)
    if skel.sum() < 2:
        return []
    scale = np.array(voxel[1:], dtype=np.float64)
    nb = ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    junction = skel & (nb >= 3)
    if not junction.any():
        return []
    arms_lab, n = ndi.label(skel & ~ndi.binary_dilation(junction, np.ones((3, 3))), np.ones((3, 3)))
    arms = []
    for k in range(1, n + 1):
        pts = np.argwhere(arms_lab == k) * scale
        seg = _fit(pts)
        if seg is not None and 2 * seg[2] >= ARM_UM:
            arms.append((seg, pts))
    groups = _join(arms)
    if len(groups) < 2:
        return []
    # each piece pixel goes to its nearest group's centre line; each group is fitted on its pixels
    pix = np.argwhere(piece) * scale
    owner = np.full(len(pix), -1)
    best = np.full(len(pix), np.inf)
    for g, pts in enumerate(groups):
        d = cKDTree(pts).query(pix)[0]
        owner[d < best], best = g, np.minimum(best, d)
    off = np.asarray(origin, dtype=np.float64) * scale
    out = []
    for g in range(len(groups)):
        seg = _fit(pix[owner == g])
        if seg is not None:
            out.append((seg[0] + off, seg[1], seg[2]))
    return out


def _fit(pts: np.ndarray) -> Segment | None:
    """The straight segment along the principal axis of ``pts`` (n, 2) um, spanning them."""
    if len(pts) < 2:
        return None
    centre = pts.mean(axis=0)
    axis = np.linalg.eigh(np.cov(pts.T))[1][:, 1]
    proj = (pts - centre) @ axis
    return centre + 0.5 * (proj.max() + proj.min()) * axis, axis, 0.5 * float(proj.max() - proj.min())


def _join(arms: list[tuple[Segment, np.ndarray]]) -> list[np.ndarray]:
    """Arms grouped into lines: two arms continue one another when parallel (``ARM_ANGLE_DEG``)
    and each lies on the other's axis line (within ``ARM_OFFSET_UM``); the centre-line points of
    each group."""
    parent = list(range(len(arms)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cos = math.cos(math.radians(ARM_ANGLE_DEG))
    for i, ((ci, ui, _), _) in enumerate(arms):
        for j in range(i + 1, len(arms)):
            cj, uj, _ = arms[j][0]
            d = cj - ci
            if abs(float(ui @ uj)) >= cos and max(abs(float(d[0] * u[1] - d[1] * u[0])) for u in (ui, uj)) <= ARM_OFFSET_UM:
                parent[root(j)] = root(i)
    groups: dict[int, list[np.ndarray]] = {}
    for i, (_, pts) in enumerate(arms):
        groups.setdefault(root(i), []).append(pts)
    return [np.concatenate(g) for g in groups.values()]
