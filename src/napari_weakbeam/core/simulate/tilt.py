"""The local tilt each pixel of a layer sees (geometrical optics: lattice rotation shifts the local
Bragg peak), from the 3D structure of :mod:`.structure`, plus the per-layer truth maps.

Free lines are split into a near part (per depth sub-slice, full resolution, inside the line's
bounding box) and a smooth far part (once per layer on a coarse grid); walls are resolved in a band
around their plane and are a tilt step elsewhere. Pixel (r, c) sits at y = r * pixel_size,
x = c * pixel_size / sin(2theta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .params import SimulationParams
from .fields import SmoothField
from .grain import marker_mask
from .structure import Structure, distance_to_line

_TWO_PI = 2.0 * math.pi


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
    grain: np.ndarray | None = None  # (rows, cols) bool, pixels inside the diffracting grain
    beam: np.ndarray | None = None  # (rows, cols) float32 illumination x grain mask; None: 1 everywhere


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
    active = [i for i in range(len(L)) if distance_to_line(centre, L.point[i], L.direction[i]) < far_reach + half_diag]
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
    grain = structure.grain.mask(p, z) if structure.grain is not None else np.ones(shape, bool)
    if p.marker_radius_um > 0:  # the fiducial marker does not diffract
        grain = grain & ~marker_mask(p)
    beam = None
    if structure.illumination is not None or not grain.all():
        beam = grain.astype(np.float32)
        if structure.illumination is not None:
            beam *= structure.illumination
    return LayerFields(
        tilt, fwhm, amplitude, peak0, fwhm0.astype(np.float32), phase.astype(np.float32),
        dist < core_mask_radius_um, dist, grain, beam,
    )
