"""The grain's outline and the beam's illumination profile over the field of view.

Both are drawn from their own random streams (``default_rng([seed, 0, k])``), so the default
parameters (``grain_coverage=1``, ``illumination_falloff=0``) leave every other draw, and today's
output, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import SimulationParams
from .fields import SmoothField

#: Random streams of the optional features (distinct from the structure's and the detector's).
TANGLE_STREAM, GRAIN_STREAM, BEAM_STREAM, MARKER_STREAM = 1, 2, 3, 4


def extra_rng(params: SimulationParams, stream: int) -> np.random.Generator:
    """The random stream of one optional feature of the simulation."""
    return np.random.default_rng([params.seed, 0, stream])


def _norm_coords(params: SimulationParams) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in units of the field of view: y' (rows, 1), x' (1, cols), both in [0, 1)."""
    y = (np.arange(params.rows, dtype=np.float32) + 0.5) / params.rows
    x = (np.arange(params.cols, dtype=np.float32) + 0.5) / params.cols
    return y[:, None], x[None, :]


@dataclass
class Grain:
    """A smooth blob covering ``coverage`` of the field (None field: the grain fills the field)."""

    field: SmoothField | None
    centre: np.ndarray
    threshold: float
    z_scale: float

    def value(self, params: SimulationParams, z: float) -> np.ndarray:
        y, x = _norm_coords(params)
        rough = self.field.sample(z / self.z_scale, y[:, 0], x[0])
        r2 = (y - self.centre[0]) ** 2 + (x - self.centre[1]) ** 2
        return 0.5 * rough - r2 / 0.1

    def mask(self, params: SimulationParams, z: float) -> np.ndarray:
        """(rows, cols) bool: pixels of the layer at height z (um) inside the grain."""
        if self.field is None:
            return np.ones((params.rows, params.cols), bool)
        return self.value(params, z) >= self.threshold


def make_grain(params: SimulationParams) -> Grain:
    """Draw the grain outline; its threshold gives ``grain_coverage`` in the middle layer."""
    p = params
    if p.grain_coverage >= 1:
        return Grain(None, np.zeros(2), 0.0, 1.0)
    rng = extra_rng(p, GRAIN_STREAM)
    z_scale = float(np.sqrt(p.rows * p.pixel_size_um * p.cols * p.x_pixel_um))
    z_top = (p.layers - 1) * p.layer_spacing_um / z_scale
    field = SmoothField.make(rng, np.array([-0.1, 0.0, 0.0]), np.array([z_top + 0.1, 1.0, 1.0]), 0.25)
    centre = rng.uniform(0.35, 0.65, 2)
    grain = Grain(field, centre, 0.0, z_scale)
    z_mid = (p.layers - 1) // 2 * p.layer_spacing_um
    grain.threshold = float(np.quantile(grain.value(p, z_mid), 1.0 - p.grain_coverage))
    return grain


def illumination(params: SimulationParams) -> np.ndarray | None:
    """Smooth multiplicative beam profile (rows, cols) float32 from 1 down to 1 - falloff; None if flat.

    A Gaussian beam centred somewhere in the field, its range over the field remapped linearly to
    [1 - falloff, 1] (the same for every layer: the beam does not move with the sample).
    """
    p = params
    if p.illumination_falloff <= 0:
        return None
    rng = extra_rng(p, BEAM_STREAM)
    centre = rng.uniform(0.0, 1.0, 2)
    sigma = rng.uniform(0.3, 0.7, 2)
    y, x = _norm_coords(p)
    g = np.exp(-0.5 * (((y - centre[0]) / sigma[0]) ** 2 + ((x - centre[1]) / sigma[1]) ** 2))
    g = (g - g.min()) / max(float(g.max() - g.min()), 1e-12)
    return (1.0 - p.illumination_falloff + p.illumination_falloff * g).astype(np.float32)


def marker_centre(params: SimulationParams) -> np.ndarray | None:
    """The fiducial marker's centre (row, col) in pixels, drawn from its own stream in the middle
    60 % of the field; None without a marker (``marker_radius_um`` 0)."""
    if params.marker_radius_um <= 0:
        return None
    return extra_rng(params, MARKER_STREAM).uniform(0.2, 0.8, 2) * np.array([params.rows, params.cols])


def marker_mask(params: SimulationParams) -> np.ndarray | None:
    """(rows, cols) bool: the pixels inside the fiducial marker (a disc in micrometres at the
    sample; columns are ``x_pixel_um`` wide), the same in every layer; None without one."""
    centre = marker_centre(params)
    if centre is None:
        return None
    y = (np.arange(params.rows) - centre[0]) * params.pixel_size_um
    x = (np.arange(params.cols) - centre[1]) * params.x_pixel_um
    return y[:, None] ** 2 + x[None, :] ** 2 <= params.marker_radius_um ** 2


def marker_box(params: SimulationParams, reach_px: float) -> tuple[int, int, int, int]:
    """A drift-reference box (row0, row1, col0, col1) around the fiducial marker, wider by
    ``reach_px`` + 4 pixels each way (as far as the stack's drift reaches), within the field."""
    centre = marker_centre(params)
    if centre is None:
        raise ValueError("no fiducial marker: marker_radius_um is 0")
    hr = params.marker_radius_um / params.pixel_size_um + reach_px + 4
    hc = params.marker_radius_um / params.x_pixel_um + reach_px + 4
    return (max(int(centre[0] - hr), 0), min(int(centre[0] + hr) + 1, params.rows),
            max(int(centre[1] - hc), 0), min(int(centre[1] + hc) + 1, params.cols))
