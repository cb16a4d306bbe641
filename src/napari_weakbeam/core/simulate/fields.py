"""Smooth random fields of the simulated crystal (mosaic tilt, wall width, thickness, the grain's
outline): Gaussian random fields sampled on a coarse 3D grid and interpolated by cubic splines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


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
