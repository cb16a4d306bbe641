"""Random simulator settings that cover what beamtimes produce (training and test data).

``random_params(rng, **overrides)`` draws one scan's setting: detector floor, exposure and gain,
a grain filling part of the field, dislocation structures from isolated lines to dense networks and
tangled cell walls, beam-profile fall-off, blur, rocking ranges that stop before the tails and
mosaic spreads wider than the scan. The draws are always made in the same order, so a given
generator state gives the same setting whatever is overridden.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np

from ..errors import WeakbeamError
from .params import SimulationParams

#: Dislocation regimes: a few isolated lines, a dense network, tangled cell walls (fatigued metals).
REGIMES = ("isolated", "network", "cells")


def start_draw(rng: np.random.Generator | int, params_cls: type, kind: str, regimes: tuple[str, ...],
               regime: str | None, overrides: dict, what: str) -> tuple[np.random.Generator, str]:
    """The first steps of a random draw: the generator, unknown ``overrides`` refused, and the
    regime (one draw from ``rng`` even when ``regime`` is given, so later draws do not depend on it)."""
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(int(rng))
    unknown = sorted(set(overrides) - {f.name for f in fields(params_cls)})
    if unknown:
        raise WeakbeamError(f"{what}: unknown {kind} parameter {unknown[0]!r}")
    drawn = regimes[int(rng.integers(len(regimes)))]
    regime = drawn if regime is None else regime
    if regime not in regimes:
        raise WeakbeamError(f"{what}: regime {regime!r} is not one of {', '.join(regimes)}")
    return rng, regime

#: Highest mean ADU the draw lets the perfect-lattice peak reach (uint16 detector, with headroom).
_MAX_PEAK_ADU = 60000.0


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def random_params(
    rng: np.random.Generator | int, *, regime: str | None = None, **overrides
) -> SimulationParams:
    """One random, realistic scan setting (1 layer unless overridden).

    ``rng``: a numpy Generator or an int seed. ``regime``: one of :data:`REGIMES` (default: drawn).
    ``overrides``: any :class:`SimulationParams` field, applied after the draw (e.g. ``rows=128``).

    Ranges: 128-384 px frames (multiples of 32), 11-150 frames (log-uniform), rocking FWHM
    0.09-0.3 mrad, mosaicity 0.01-0.3 mrad (log-uniform; often wider than the scan), dark floor
    0-3,000 ADU, 50-50,000 photons at the peak (log-uniform), gain 0.5-5 ADU/photon (log-uniform,
    lowered where the peak would exceed 60,000 ADU), read noise 1-6 ADU, grain covering 30-100 % of
    the field (100 % in a quarter of the scans), beam fall-off 0-85 % (none in 30 %), PSF sigma
    0.3-2.5 px, half the scans with a rocking range of +-0.5-4 FWHM off-centre by up to 1.25 times its
    half range (stops before one or both tails; some miss the grain's mean peak), the others covering
    the tails (+-(4 FWHM + 2 mosaicity)).
    """
    rng, regime = start_draw(rng, SimulationParams, "simulation", REGIMES, regime, overrides, "random_params")
    d: dict = {}
    d["seed"] = int(rng.integers(0, 2**31 - 1))
    d["rows"] = 32 * int(rng.integers(4, 13))
    d["cols"] = 32 * int(rng.integers(4, 13))
    d["frames"] = int(round(_log_uniform(rng, 11, 150)))
    d["fwhm_mrad"] = float(rng.uniform(0.09, 0.3))
    d["fwhm_variation"] = float(rng.uniform(0.0, 0.2))
    d["lorentz_fraction"] = float(rng.uniform(0.0, 0.3))
    d["mosaicity_mrad"] = _log_uniform(rng, 0.01, 0.3)
    d["mosaic_length_um"] = float(rng.uniform(2.0, 8.0))
    d["pixel_size_um"] = float(rng.uniform(0.035, 0.075))
    d["two_theta_deg"] = float(rng.uniform(10.0, 30.0))
    # dislocation structure (every regime draws the same numbers, then uses its own)
    u_density, u_walls, u_frac, u_mis = rng.random(4)
    if regime == "isolated":
        d["density_um2"] = 0.002 * (0.01 / 0.002) ** u_density
        d["walls"] = int(u_walls * 2)  # 0-1
        d["wall_line_fraction"] = 0.0
    elif regime == "network":
        d["density_um2"] = 0.02 * (0.15 / 0.02) ** u_density
        d["walls"] = int(u_walls * 4)  # 0-3
        d["wall_line_fraction"] = 0.0
    else:
        d["density_um2"] = 0.03 * (0.12 / 0.03) ** u_density
        d["walls"] = 5 + int(u_walls * 12)  # 5-16
        d["wall_line_fraction"] = 0.6 + 0.35 * u_frac
    d["wall_misorientation_mrad"] = 0.05 + 0.25 * u_mis
    # detector and beam
    d["exposure"] = _log_uniform(rng, 50, 50000)
    d["dark_adu"] = float(rng.uniform(0, 3000))
    gain = _log_uniform(rng, 0.5, 5.0)
    d["gain_adu"] = float(min(gain, (_MAX_PEAK_ADU - d["dark_adu"]) / (1.3 * d["exposure"])))
    d["read_noise_adu"] = float(rng.uniform(1.0, 6.0))
    u_grain, u_cov = rng.random(2)
    d["grain_coverage"] = 1.0 if u_grain < 0.25 else float(0.3 + 0.7 * u_cov)
    u_beam, u_fall = rng.random(2)
    d["illumination_falloff"] = 0.0 if u_beam < 0.3 else float(0.85 * u_fall)
    d["psf_px"] = float(rng.uniform(0.3, 2.5))
    d["saturation"] = float(rng.uniform(0.5, 1.0))
    d["fringe_contrast"] = float(rng.uniform(0.0, 0.3))
    d["fringe_count"] = float(rng.uniform(2.0, 8.0))
    # rocking range: covers the tails, or stops before one or both of them
    u_range, u_half, u_off = rng.random(3)
    if u_range < 0.5:
        half = d["fwhm_mrad"] * (0.5 + 3.5 * u_half)
        d["rocking_half_range_mrad"] = float(half)
        d["rocking_offset_mrad"] = float(1.25 * half * (2.0 * u_off - 1.0))
    d.update(overrides)
    return SimulationParams(**d)
