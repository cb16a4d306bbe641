"""The 3D crystal: mosaic tilt field, sub-grain walls and dislocation lines (drawn from one seed).

Coordinates are sample micrometres ``(z, y, x)``: z = layer height, y = row * pixel_size,
x = col * pixel_size / sin(2theta). Tilts are in mrad, relative to the grain's mean peak.

- Mosaic: a smooth Gaussian random field (3D, so neighbouring layers are correlated).
- Wall: a plane of parallel edge dislocations spaced h = b / theta; its exact rotation field
  (a sum over the infinite row of dislocations) is a tilt step theta across the plane with the
  individual dislocations resolved within ~h of it.
- Free dislocation: an infinite straight line; rotation s * b / (2 pi) * (r . m) / (r_perp^2 + rc^2)
  (signed lobes around the core), screened by exp(-r_perp / L).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .fields import SmoothField
from .params import SimulationParams

if TYPE_CHECKING:
    from .grain import Grain


@dataclass
class Walls:
    """Planar sub-grain boundaries: point, unit normal n, line direction t, e2 = n x t (all (k, 3))."""

    point: np.ndarray
    normal: np.ndarray
    direction: np.ndarray
    across: np.ndarray
    spacing: np.ndarray
    sign: np.ndarray
    misorientation: float

    def __len__(self) -> int:
        return len(self.spacing)


@dataclass
class Lines:
    """Free straight dislocation lines: point, unit direction t, unit lobe vector m (k, 3), strength."""

    point: np.ndarray
    direction: np.ndarray
    lobe: np.ndarray
    strength: np.ndarray

    def __len__(self) -> int:
        return len(self.strength)


@dataclass
class Structure:
    """The whole 3D dislocation structure of the simulated grain and its smooth fields."""

    params: SimulationParams
    box_lo: np.ndarray
    box_hi: np.ndarray
    walls: Walls
    lines: Lines
    mosaic: SmoothField
    width: SmoothField
    thickness: SmoothField
    wedge: np.ndarray
    grain: "Grain | None" = None
    """The grain's outline (:mod:`.grain`); None: the grain fills the field."""
    illumination: np.ndarray | None = None
    """Beam profile (rows, cols) float32 multiplying the diffracted intensity; None: uniform."""

    def polylines(self) -> tuple[list[np.ndarray], np.ndarray]:
        """All dislocation lines (free ones, then the walls' ones) clipped to the box.

        Returns the list of (n_vertices, 3) z, y, x um arrays and a kind per line (0 free, 1 wall).
        """
        out: list[np.ndarray] = []
        kinds: list[int] = []
        for p, t in zip(self.lines.point, self.lines.direction):
            seg = clip_line(p, t, self.box_lo, self.box_hi)
            if seg is not None:
                out.append(seg)
                kinds.append(0)
        for w in range(len(self.walls)):
            for p, t in wall_lines(self.walls, w, self.box_lo, self.box_hi):
                seg = clip_line(p, t, self.box_lo, self.box_hi)
                if seg is not None:
                    out.append(seg)
                    kinds.append(1)
        return out, np.asarray(kinds, dtype=np.int8)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def clip_line(p: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """The segment of the infinite line p + s t inside the box [lo, hi] (Liang-Barsky), or None."""
    s0, s1 = -np.inf, np.inf
    for k in range(3):
        if abs(t[k]) < 1e-12:
            if p[k] < lo[k] or p[k] > hi[k]:
                return None
            continue
        a, b = (lo[k] - p[k]) / t[k], (hi[k] - p[k]) / t[k]
        s0, s1 = max(s0, min(a, b)), min(s1, max(a, b))
    if s1 <= s0:
        return None
    return np.stack([p + s0 * t, p + s1 * t])


def wall_lines(walls: Walls, w: int, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Points and directions of the dislocation lines of wall ``w`` that may cross the box."""
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    proj = (corners - walls.point[w]) @ walls.across[w]
    h = walls.spacing[w]
    ks = np.arange(math.floor(proj.min() / h), math.ceil(proj.max() / h) + 1)
    return [(walls.point[w] + k * h * walls.across[w], walls.direction[w]) for k in ks]


def make_structure(params: SimulationParams, rng: np.random.Generator) -> Structure:
    """Draw the grain: mosaic, walls and free lines, deterministically from ``rng``."""
    p = params
    ly, lx = p.rows * p.pixel_size_um, p.cols * p.x_pixel_um
    z_top = (p.layers - 1) * p.layer_spacing_um
    half_t = p.layer_thickness_um / 2
    # pixel (r, c) is centred at y = r * pixel_size, x = c * x_pixel (the project's convention)
    box_lo = np.array([-half_t, -0.5 * p.pixel_size_um, -0.5 * p.x_pixel_um])
    box_hi = box_lo + np.array([z_top + 2 * half_t, ly, lx])

    # smooth fields over the volume
    lo = box_lo - p.mosaic_length_um
    hi = box_hi + p.mosaic_length_um
    mosaic = SmoothField.make(rng, lo, hi, p.mosaic_length_um)
    width = SmoothField.make(rng, lo, hi, p.mosaic_length_um * 1.5)
    thickness = SmoothField.make(rng, lo, hi, p.mosaic_length_um * 2.0)
    wedge = _unit(rng.standard_normal(2))

    b_um = p.burgers_nm * 1e-3
    # walls: nearly vertical planes through the field of view
    nw = p.walls
    centre = (box_lo + box_hi) / 2
    w_point = centre + rng.uniform(-0.35, 0.35, (nw, 3)) * (box_hi - box_lo)
    az = rng.uniform(0, math.pi, nw)
    tilt = np.radians(rng.uniform(-25, 25, nw))
    normal = np.stack([np.sin(tilt), np.cos(tilt) * np.sin(az), np.cos(tilt) * np.cos(az)], axis=1)
    # in-plane vertical-ish direction, then incline the lines within the plane
    up = _unit(np.array([1.0, 0.0, 0.0]) - normal[:, :1] * normal)
    horiz = _unit(np.cross(normal, up))
    incl = np.radians(rng.uniform(-45, 45, nw))
    direction = _unit(np.cos(incl)[:, None] * up + np.sin(incl)[:, None] * horiz)
    across = _unit(np.cross(normal, direction))
    theta = max(p.wall_misorientation_mrad, 1e-6) * 1e-3
    spacing = np.full(nw, b_um / theta)
    sign = rng.choice([-1.0, 1.0], nw)
    walls = Walls(w_point, normal, direction, across, spacing, sign, p.wall_misorientation_mrad)

    # free lines: uniform crossing points at mid height over a region padded by the lateral drift
    psi_min = math.radians(max(p.min_inclination_deg, 1.0))
    drift = (z_top / 2 + half_t) / math.tan(psi_min) + 1.0
    area_lo = np.array([-drift, -drift]) + box_lo[1:]
    area_hi = np.array([drift, drift]) + box_hi[1:]
    n = rng.poisson(p.density_um2 * float(np.prod(area_hi - area_lo)))
    pts = np.column_stack([np.full(n, z_top / 2), rng.uniform(area_lo, area_hi, (n, 2))])
    psi = rng.uniform(psi_min, max(psi_min, math.radians(70.0)), n)
    phi = rng.uniform(0, 2 * math.pi, n)
    t = np.column_stack([np.sin(psi), np.cos(psi) * np.sin(phi), np.cos(psi) * np.cos(phi)])
    ref = np.where(np.abs(t[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    e1 = _unit(np.cross(t, ref))
    e2 = np.cross(t, e1)
    rot = rng.uniform(0, 2 * math.pi, n)[:, None]
    m = np.cos(rot) * e1 + np.sin(rot) * e2
    strength = rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n)
    lines = Lines(pts, t, m, strength)
    if p.wall_line_fraction > 0 and nw > 0 and n > 0:
        _tangle_in_walls(lines, walls, p, psi_min)
    from .grain import illumination, make_grain

    return Structure(
        p, box_lo, box_hi, walls, lines, mosaic, width, thickness, wedge, make_grain(p), illumination(p)
    )


def _tangle_in_walls(lines: Lines, walls: Walls, params: SimulationParams, psi_min: float) -> None:
    """Move a share ``wall_line_fraction`` of the free lines into the walls (in place): each lies in
    its wall's plane, within ``wall_tangle_um`` of it, at a random in-plane direction (cell walls).

    Uses its own random stream, so the rest of the structure is the same as without tangles.
    """
    from .grain import TANGLE_STREAM, extra_rng

    rng = extra_rng(params, TANGLE_STREAM)
    n = len(lines)
    chosen = np.nonzero(rng.random(n) < params.wall_line_fraction)[0]
    min_z = math.sin(psi_min)
    for i in chosen:
        w = int(rng.integers(len(walls)))
        nrm, d, a = walls.normal[w], walls.direction[w], walls.across[w]
        t = d
        for _ in range(20):  # an in-plane direction steep enough to cross the layer
            ang = rng.uniform(0, 2 * math.pi)
            cand = math.cos(ang) * d + math.sin(ang) * a
            if abs(cand[0]) >= min_z:
                t = cand
                break
        q = lines.point[i].copy()
        q -= ((q - walls.point[w]) @ nrm) * nrm
        q += rng.uniform(-params.wall_tangle_um, params.wall_tangle_um) * nrm
        ref = np.array([1.0, 0, 0]) if abs(t[0]) < 0.9 else np.array([0, 1.0, 0])
        e1 = _unit(np.cross(t, ref))
        e2 = np.cross(t, e1)
        rot = rng.uniform(0, 2 * math.pi)
        lines.point[i], lines.direction[i] = q, t
        lines.lobe[i] = math.cos(rot) * e1 + math.sin(rot) * e2


def distance_to_line(q: np.ndarray, p: np.ndarray, t: np.ndarray) -> float:
    """Distance from point q to the infinite line p + s t (t a unit vector)."""
    r = q - p
    return float(np.linalg.norm(r - (r @ t) * t))
