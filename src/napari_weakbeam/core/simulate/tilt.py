"""The 3D crystal: mosaic tilt field, sub-grain walls and dislocation lines, and the local tilt they
give each pixel of a layer (geometrical optics: the lattice rotation shifts the local Bragg peak).

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

import numpy as np
from scipy import ndimage

from .params import SimulationParams

_TWO_PI = 2.0 * math.pi


@dataclass
class SmoothField:
    """A Gaussian random field of unit std sampled on a coarse 3D grid (z, y, x), in um."""

    grid: np.ndarray
    origin: np.ndarray
    step: float

    @classmethod
    def make(cls, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, length: float) -> "SmoothField":
        step = length / 3.0
        shape = np.maximum(np.ceil((hi - lo) / step).astype(int) + 7, 8)
        noise = rng.standard_normal(tuple(shape))
        field = ndimage.gaussian_filter(noise, sigma=length / step, mode="wrap")
        field = (field - field.mean()) / (field.std() or 1.0)
        coeffs = ndimage.spline_filter(field, order=3, mode="mirror")
        return cls(coeffs, lo - 3 * step, step)

    def sample(self, z: float, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Values at height z over the pixel grid y (rows,) x (cols,) -> (rows, cols) float32."""
        yy, xx = np.meshgrid(y, x, indexing="ij")
        coords = np.stack(
            [np.full(yy.shape, z), yy, xx]
        ).reshape(3, -1) - self.origin[:, None]
        vals = ndimage.map_coordinates(self.grid, coords / self.step, order=3, mode="mirror", prefilter=False)
        return vals.reshape(yy.shape).astype(np.float32)


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
    return Structure(p, box_lo, box_hi, walls, lines, mosaic, width, thickness, wedge)


@dataclass
class LayerFields:
    """Everything the optics needs for one layer (S = depth sub-slices)."""

    tilt: np.ndarray  # (S, rows, cols) local tilt, mrad, dislocations included
    fwhm: np.ndarray  # (S, rows, cols) local rocking FWHM (broadened near cores), mrad
    amplitude: np.ndarray  # (S, rows, cols) peak height (integrated intensity kept under broadening)
    peak0: np.ndarray  # (rows, cols) peak of the undislocated lattice (depth mean), mrad
    fwhm0: np.ndarray  # (rows, cols) FWHM of the undislocated lattice, mrad
    phase: np.ndarray  # (rows, cols) thickness-fringe phase, rad
    core_mask: np.ndarray  # (rows, cols) bool, pixels within core_mask_radius of a line
    distance: np.ndarray  # (rows, cols) smallest 3D distance to a line over the slab, um (inf if > ~2 um)


def pixel_coords(params: SimulationParams) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates (um) of pixel centres: y = row * pixel_size (rows,), x = col * x_pixel (cols,)."""
    y = np.arange(params.rows) * params.pixel_size_um
    x = np.arange(params.cols) * params.x_pixel_um
    return y, x


def slice_depths(params: SimulationParams, z: float) -> np.ndarray:
    """Heights of the depth sub-slices of the illuminated slab centred at z."""
    s = params.depth_slices
    return z + ((np.arange(s) + 0.5) / s - 0.5) * params.layer_thickness_um


#: Near/far split of a free line's field: the near part (x exp(-r^2 / R^2)) is computed per sub-slice at
#: full resolution inside the line's bounding box, the smooth rest once per layer on a coarse grid.
_NEAR_RADIUS_UM = 0.6
_COARSE_STRIDE = (4, 2)


def _interp_index(n: int, stride: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Linear interpolation from coarse samples at indices 0, stride, ... to 0..n-1:
    (number of coarse samples, left sample index (n,), weight of the right sample (n,))."""
    m = (n - 1) // stride + 2
    pos = np.arange(n) / stride
    i0 = np.minimum(np.floor(pos).astype(int), m - 2)
    return m, i0, (pos - i0).astype(np.float32)


class _Grid:
    """Full-resolution pixel coordinates and a coarse grid (every few pixels) with its upsampler."""

    def __init__(self, params: SimulationParams):
        p = params
        self.y, self.x = pixel_coords(p)
        sy, sx = _COARSE_STRIDE
        my, self.iy, self.fy = _interp_index(p.rows, sy)
        mx, self.ix, self.fx = _interp_index(p.cols, sx)
        self.yc = np.arange(my) * sy * p.pixel_size_um
        self.xc = np.arange(mx) * sx * p.x_pixel_um

    def upsample(self, coarse: np.ndarray) -> np.ndarray:
        c = coarse.astype(np.float32)
        fy = self.fy[:, None]
        rows = c[self.iy] * (1 - fy) + c[self.iy + 1] * fy
        return rows[:, self.ix] * (1 - self.fx) + rows[:, self.ix + 1] * self.fx

    def smooth(self, field: SmoothField, z: float) -> np.ndarray:
        """A smooth random field at height z, sampled coarsely then interpolated (rows, cols)."""
        return self.upsample(field.sample(z, self.yc, self.xc))


def _line_field(
    P: np.ndarray, T: np.ndarray, M: np.ndarray, rz: float | np.ndarray, ry: np.ndarray, rx: np.ndarray,
    dz_half: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(r . m, r_perp^2) of pixels at offsets (rz, ry, rx) from a point of the line, taking the
    closest approach within +-dz_half in depth (an inclined line shows one continuous segment)."""
    rt0 = T[0] * rz + T[1] * ry + T[2] * rx
    if dz_half > 0:
        dz = np.clip((rt0 * T[0] - rz) / max(1.0 - T[0] ** 2, 1e-6), -dz_half, dz_half)
        rz = rz + dz
        rt = rt0 + T[0] * dz
    else:
        rt = rt0
    rm = M[0] * rz + M[1] * ry + M[2] * rx
    rp2 = np.maximum(rz * rz + ry * ry + rx * rx - rt * rt, 0)
    return rm, rp2


def _near_box(P, T, zs: float, reach: float, params: SimulationParams) -> tuple[slice, slice] | None:
    """Pixel rows/cols within ``reach`` (um, 3D) of the line at depth zs, or None if none."""
    p = params
    if abs(T[0]) > 1e-9:
        s = np.array([zs - reach - P[0], zs + reach - P[0]]) / T[0]
        ys, xs = P[1] + T[1] * s, P[2] + T[2] * s
    else:
        if abs(zs - P[0]) > reach:
            return None
        big = 1e6
        ys = np.array([P[1] - big * T[1], P[1] + big * T[1]])
        xs = np.array([P[2] - big * T[2], P[2] + big * T[2]])
    r0 = max(int(math.floor((ys.min() - reach) / p.pixel_size_um)), 0)
    r1 = min(int(math.ceil((ys.max() + reach) / p.pixel_size_um)) + 1, p.rows)
    c0 = max(int(math.floor((xs.min() - reach) / p.x_pixel_um)), 0)
    c1 = min(int(math.ceil((xs.max() + reach) / p.x_pixel_um)) + 1, p.cols)
    if r1 <= r0 or c1 <= c0:
        return None
    return slice(r0, r1), slice(c0, c1)


def layer_fields(structure: Structure, layer: int, core_mask_radius_um: float = 0.1) -> LayerFields:
    """Local tilt, width and the truth maps of one layer."""
    p = structure.params
    z = layer * p.layer_spacing_um
    grid = _Grid(p)
    yy = grid.y[:, None].astype(np.float32)
    xx = grid.x[None, :].astype(np.float32)
    yc = grid.yc[:, None].astype(np.float32)
    xc = grid.xc[None, :].astype(np.float32)
    depths = slice_depths(p, z)
    S = len(depths)
    shape = (p.rows, p.cols)
    b = p.burgers_nm * 1e-3 / _TWO_PI * 1e3  # b / 2pi in um * 1e3 -> rotation in mrad for r in um
    rc2 = p.core_radius_um**2
    # a pixel integrates over its footprint: the rotation gradient across it broadens its rocking
    # curve (FWHM ~ 0.68 x footprint x |grad omega|), which keeps sub-pixel lines from aliasing
    footprint = 0.68 * math.sqrt((p.pixel_size_um**2 + p.x_pixel_um**2) / 2)
    r_near = _NEAR_RADIUS_UM
    near_reach = 2.5 * r_near
    far_reach = 6.0 * p.screening_um
    ly, lx = p.rows * p.pixel_size_um, p.cols * p.x_pixel_um
    dz_half = p.layer_thickness_um / (2 * S)

    mosaic = p.mosaicity_mrad * grid.smooth(structure.mosaic, z)
    fwhm0 = p.fwhm_mrad * np.clip(1.0 + p.fwhm_variation * grid.smooth(structure.width, z), 0.3, None)
    wedge = structure.wedge
    phase = _TWO_PI * (
        p.fringe_count * (wedge[0] * yy / ly + wedge[1] * xx / lx) + 0.5 * grid.smooth(structure.thickness, z)
    )

    # free lines: the smooth far part once per layer on the coarse grid
    L = structure.lines
    centre = np.array([z, ly / 2, lx / 2])
    half_diag = math.hypot(ly, lx) / 2
    active = [i for i in range(len(L)) if _dist_point_line(centre, L.point[i], L.direction[i]) < far_reach + half_diag]
    far = np.zeros(grid.yc.shape + grid.xc.shape, np.float32)
    for i in active:
        P, T, M = L.point[i], L.direction[i], L.lobe[i]
        rm, rp2 = _line_field(P, T, M, z - P[0], yc - P[1], xc - P[2], 0.0)
        screen = np.exp(-np.sqrt(rp2) / p.screening_um) * (1 - np.exp(-rp2 / r_near**2))
        far += (L.strength[i] * b) * rm / (rp2 + rc2) * screen
    far = grid.upsample(far)

    tilt = np.empty((S,) + shape, np.float32)
    envelope = np.zeros((S,) + shape, np.float32)
    dist = np.full(shape, np.inf, np.float32)
    step_mean = np.zeros(shape, np.float32)
    W = structure.walls
    for s, zs in enumerate(depths):
        t_s = mosaic + far
        env = envelope[s]
        for w in range(len(W)):
            # far from the plane the field is the tilt step +-theta/2; the dislocations are resolved
            # (closed form) only in a band |x_w| < max(h, 2 um) around it
            rz = zs - W.point[w, 0]
            xw = W.normal[w, 0] * rz + W.normal[w, 1] * (yy - W.point[w, 1]) + W.normal[w, 2] * (xx - W.point[w, 2])
            half = np.float32(0.5 * W.misorientation * W.sign[w])
            step = half * np.sign(xw)
            t_s += step
            step_mean += step / S
            band = np.nonzero(np.abs(xw) < max(W.spacing[w], 2.0))
            if not band[0].size:
                continue
            xb = xw[band]
            yw = (W.across[w, 0] * rz + W.across[w, 1] * (grid.y[band[0]] - W.point[w, 1])
                  + W.across[w, 2] * (grid.x[band[1]] - W.point[w, 2])).astype(np.float32)
            k = _TWO_PI / W.spacing[w]
            kx = (k * xb).astype(np.float32)
            e = np.exp(-np.abs(kx))
            sech = 2 * e / (1 + e * e)
            eps = 0.5 * k * k * rc2
            t_s[band] += half * np.tanh(kx) / (1 - np.cos(k * yw) * sech + eps * sech) - step[band]
            yw_wrapped = (yw / W.spacing[w] + 0.5) % 1.0 - 0.5
            dw2 = xb * xb + (yw_wrapped * W.spacing[w]) ** 2
            env[band] += b * (p.core_broadening / np.sqrt(dw2 + rc2) + footprint / (dw2 + rc2))
            dist[band] = np.minimum(dist[band], np.sqrt(dw2))
        for i in active:
            P, T, M = L.point[i], L.direction[i], L.lobe[i]
            box = _near_box(P, T, zs, near_reach + dz_half, p)
            if box is None:
                continue
            by, bx = box
            rm, rp2 = _line_field(P, T, M, zs - P[0], yy[by] - P[1], xx[:, bx] - P[2], dz_half)
            rp = np.sqrt(rp2)
            screen = np.exp(-rp / p.screening_um)
            t_s[by, bx] += (L.strength[i] * b) * rm / (rp2 + rc2) * (screen * np.exp(-rp2 / r_near**2))
            env[by, bx] += (b * screen) * (p.core_broadening / np.sqrt(rp2 + rc2) + footprint / (rp2 + rc2))
            np.minimum(dist[by, bx], rp, out=dist[by, bx])
        tilt[s] = t_s

    fwhm = np.sqrt(fwhm0[None] ** 2 + envelope**2).astype(np.float32)
    amplitude = (fwhm0[None] / fwhm).astype(np.float32)
    peak0 = (mosaic + step_mean).astype(np.float32)
    return LayerFields(
        tilt, fwhm, amplitude, peak0, fwhm0.astype(np.float32), phase.astype(np.float32),
        dist < core_mask_radius_um, dist,
    )


def _dist_point_line(q: np.ndarray, p: np.ndarray, t: np.ndarray) -> float:
    r = q - p
    return float(np.linalg.norm(r - (r @ t) * t))
