"""From local tilt to detector counts: rocking curves integrated over depth, the strong-beam effects
geometrical optics misses (extinction-like saturation, thickness fringes, blur), and the detector.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from .params import SimulationParams
from .tilt import LayerFields


def pseudo_voigt(d: np.ndarray, eta: float) -> np.ndarray:
    """Peak-normalised pseudo-Voigt of the offset ``d`` in half widths (HWHM): 1 at 0, 1/2 at 1."""
    d2 = d * d
    out = (1.0 - eta) * np.exp(np.float32(-np.log(2.0)) * d2)
    if eta:
        out += eta / (1.0 + d2)
    return out


def geometric_frame(fields: LayerFields, offset_mrad: float, eta: float) -> np.ndarray:
    """Noise-free geometrical-optics intensity of one frame (rows, cols), float32 (1 = perfect peak)."""
    S = fields.tilt.shape[0]
    out = np.zeros(fields.tilt.shape[1:], np.float32)
    for s in range(S):
        d = (np.float32(offset_mrad) - fields.tilt[s]) * (2.0 / fields.fwhm[s])
        out += fields.amplitude[s] * pseudo_voigt(d, eta)
    out /= S
    return out


def undislocated_frame(fields: LayerFields, offset_mrad: float, eta: float) -> np.ndarray:
    """Noise-free intensity of the undislocated lattice (the ground truth's model), float32."""
    d = (np.float32(offset_mrad) - fields.peak0) * (2.0 / fields.fwhm0)
    return pseudo_voigt(d, eta).astype(np.float32)


def strong_beam_effects(image: np.ndarray, fields: LayerFields, offset_mrad: float, params: SimulationParams) -> np.ndarray:
    """Thickness fringes near the local peak, soft saturation (extinction), the grain's outline and the
    beam profile (``fields.beam``), and the objective's PSF."""
    p = params
    out = image
    if p.fringe_contrast > 0:
        u = (np.float32(offset_mrad) - fields.peak0) * (2.0 / fields.fwhm0)
        u2 = u * u
        out = out * (1.0 + p.fringe_contrast * np.exp(-0.5 * u2) * np.cos(fields.phase * np.sqrt(1.0 + u2)))
    if p.saturation > 0:
        sat = np.float32(p.saturation)
        out = sat * np.tanh(out / sat)
    if fields.beam is not None:  # the grain's outline and the beam profile (before the objective's blur)
        out = out * fields.beam
    if p.psf_px > 0:
        out = ndimage.gaussian_filter(out, sigma=p.psf_px, mode="nearest", truncate=3.0)
    return out.astype(np.float32, copy=False)


#: Above this mean photon count the Poisson draw uses its normal limit (mean lam, variance lam).
_NORMAL_LIMIT = 20.0


def poisson_photons(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts of mean ``lam`` (float32 array): exact below 20 photons, the normal limit above
    (mean and variance lam, skewness < 0.23, hidden by the read noise and gain steps; ~3x faster)."""
    flat = lam.ravel()
    out = np.empty(flat.shape, np.float32)
    big = flat >= _NORMAL_LIMIT
    n_big = int(np.count_nonzero(big))
    if n_big:
        lb = flat[big]
        out[big] = np.rint(lb + np.sqrt(lb) * rng.standard_normal(n_big, dtype=np.float32))
    if n_big < flat.size:
        small = ~big
        out[small] = rng.poisson(flat[small])
    return out.reshape(lam.shape)


def detector(image: np.ndarray, params: SimulationParams, rng: np.random.Generator) -> np.ndarray:
    """Expected intensity (1 = perfect peak) -> uint16 ADU: exposure, Poisson, gain, dark, read noise."""
    p = params
    photons = np.clip(image, 0, None) * np.float32(p.exposure)
    if p.noise:
        photons = poisson_photons(photons, rng)
        adu = p.dark_adu + p.gain_adu * photons
        if p.read_noise_adu > 0:
            adu += np.float32(p.read_noise_adu) * rng.standard_normal(image.shape, dtype=np.float32)
    else:
        adu = p.dark_adu + p.gain_adu * photons
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)


def render_layer(
    fields: LayerFields,
    offsets_mrad: np.ndarray,
    params: SimulationParams,
    rng: np.random.Generator,
    on_frame: Callable[[int], None] | None = None,
) -> np.ndarray:
    """All frames of one layer: (frames, rows, cols) uint16; ``on_frame(i)`` after each frame."""
    out = np.empty((len(offsets_mrad),) + fields.tilt.shape[1:], np.uint16)
    for i, off in enumerate(offsets_mrad):
        img = geometric_frame(fields, float(off), params.lorentz_fraction)
        img = strong_beam_effects(img, fields, float(off), params)
        out[i] = detector(img, params, rng)
        if on_frame is not None:
            on_frame(i)
    return out
