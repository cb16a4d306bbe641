"""Parameters of the DFXM simulator: one dataclass, validated, serialisable to JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from ..errors import WeakbeamError


@dataclass
class SimulationParams:
    """Everything that defines a simulated rocking-scan dataset (angles in mrad unless noted).

    The defaults give a 256 x 256, 1-layer, 31-frame scan of an aluminium-like grain at 17 keV
    whose rocking range covers the tails (weak beam), the peak (strong beam) and the frames between.
    """

    rows: int = 256
    cols: int = 256
    layers: int = 1
    frames: int = 31
    seed: int = 0
    # rocking curve
    center_deg: float = 10.37
    """Rocking angle (degrees) of the mean Bragg peak of the grain."""
    fwhm_mrad: float = 0.15
    """Local rocking-curve FWHM of the perfect lattice (0.09-0.3 mrad in practice)."""
    fwhm_variation: float = 0.1
    """Relative spread (std) of the local FWHM over the grain (smooth field)."""
    lorentz_fraction: float = 0.1
    """Pseudo-Voigt mixing: 0 = Gaussian curve, 1 = Lorentzian."""
    rocking_half_range_mrad: float | None = None
    """Half range of the scan around ``center_deg``; None: 4 FWHM + 2 mosaicity (covers the tails)."""
    rocking_offset_mrad: float = 0.0
    """Centre of the scan relative to ``center_deg`` (a scan that stops before one tail)."""
    # crystal
    mosaicity_mrad: float = 0.06
    """Std of the smooth mosaic tilt field (a Gaussian random field)."""
    mosaic_length_um: float = 4.0
    """Correlation length of the mosaic tilt field."""
    walls: int = 2
    """Number of sub-grain boundaries (planar walls of dislocations) crossing the volume."""
    wall_misorientation_mrad: float = 0.12
    """Tilt step across each wall (sets the spacing of its dislocations, h = b / step)."""
    density_um2: float = 0.015
    """Free dislocation lines crossing each layer per um^2 of layer area."""
    burgers_nm: float = 0.286
    """Burgers vector length (aluminium a/2<110>)."""
    core_radius_um: float = 0.025
    """Regularisation radius of the elastic field at the core."""
    screening_um: float = 2.0
    """Screening length of a free dislocation's rotation field (exp(-r / L))."""
    core_broadening: float = 0.5
    """Local rocking-curve broadening near cores, as a fraction of the local rotation scale."""
    min_inclination_deg: float = 8.0
    """Smallest angle between a free dislocation line and the layer plane (largest: 70 deg)."""
    wall_line_fraction: float = 0.0
    """Share of the free lines gathered in the sub-grain walls, lying in their planes (tangled cell
    walls of fatigued metals: bright, speckled walls around quieter cells); 0 = spread uniformly."""
    wall_tangle_um: float = 0.3
    """Half thickness of the tangle around a wall plane where those lines sit."""
    # grain and beam
    grain_coverage: float = 1.0
    """Share of the field of view covered by the diffracting grain (a smooth blob); outside it there
    is no diffraction, only the detector's dark level and noise. 1 = the grain fills the field."""
    marker_radius_um: float = 0.0
    """Radius of a fiducial marker: a non-diffracting column (a milled hole, a pore) through every
    layer at one place of the field, static while the crystal's structure changes from layer to
    layer (the reference for registering the drift with its trend); 0 = none."""
    illumination_falloff: float = 0.0
    """Beam-profile fall-off across the field: a smooth multiplicative illumination profile from 1
    down to ``1 - illumination_falloff`` (0 = uniform, 0.85 = the dimmest corner gets 15 %)."""
    # geometry
    pixel_size_um: float = 0.05
    """Effective pixel size at the sample along rows (y)."""
    two_theta_deg: float = 20.73
    """Scattering angle; columns are stretched by 1 / sin(2theta) at the sample (x)."""
    layer_spacing_um: float = 2.0
    layer_thickness_um: float = 0.5
    """Height of the illuminated slab (line-beam height)."""
    depth_slices: int = 4
    """Sub-slices integrated over the illuminated slab."""
    # strong-beam effects and optics
    saturation: float = 0.8
    """Soft clip level (relative to the perfect-lattice peak) mimicking extinction; 0 = off."""
    fringe_contrast: float = 0.2
    """Amplitude of thickness (Pendelloesung-like) fringes near the peak; 0 = off."""
    fringe_count: float = 4.0
    """Number of thickness fringes across the field of view."""
    psf_px: float = 0.8
    """Gaussian PSF sigma of the objective, in detector pixels; 0 = off."""
    # detector
    exposure: float = 2000.0
    """Photons per pixel at the peak of the perfect-lattice rocking curve."""
    dark_adu: float = 100.0
    gain_adu: float = 2.14
    """ADU per photon."""
    read_noise_adu: float = 3.0
    noise: bool = True
    """Poisson and read noise (False: the noise-free expectation, rounded)."""

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- derived quantities
    @property
    def half_range_mrad(self) -> float:
        if self.rocking_half_range_mrad is not None:
            return float(self.rocking_half_range_mrad)
        return 4.0 * self.fwhm_mrad + 2.0 * self.mosaicity_mrad

    @property
    def x_pixel_um(self) -> float:
        """Pixel size along columns at the sample (stretched by 1 / sin(2theta))."""
        return self.pixel_size_um / math.sin(math.radians(self.two_theta_deg))

    def angles_deg(self) -> "list[float]":
        """Rocking angles of one layer in degrees, increasing (one frame: ``center + rocking_offset``,
        a fixed-angle layer scan)."""
        import numpy as np

        if self.frames == 1:
            off = np.array([self.rocking_offset_mrad], float)
        else:
            off = np.linspace(-self.half_range_mrad, self.half_range_mrad, self.frames) + self.rocking_offset_mrad
        return list(self.center_deg + np.degrees(off * 1e-3))

    def layer_positions_um(self) -> "list[float]":
        return [i * self.layer_spacing_um for i in range(self.layers)]

    # ----------------------------------------------------------------- validation / JSON
    def validate(self) -> None:
        """Raise WeakbeamError (one line naming the parameter) for impossible values."""
        positive_int = ("rows", "cols", "layers", "frames", "depth_slices")
        for name in positive_int:
            v = getattr(self, name)
            if not isinstance(v, (int,)) or isinstance(v, bool) or v < 1:
                raise WeakbeamError(f"simulation parameter {name}={v!r}: must be a positive integer")
        if self.rows < 8 or self.cols < 8:
            raise WeakbeamError(f"simulation size {self.rows}x{self.cols}: must be at least 8x8 pixels")
        positive = (
            "fwhm_mrad", "pixel_size_um", "layer_spacing_um", "layer_thickness_um", "burgers_nm",
            "core_radius_um", "screening_um", "mosaic_length_um", "exposure", "gain_adu",
        )
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise WeakbeamError(f"simulation parameter {name}={v!r}: must be a finite number > 0")
        non_negative = (
            "fwhm_variation", "lorentz_fraction", "mosaicity_mrad", "wall_misorientation_mrad",
            "density_um2", "core_broadening", "saturation", "fringe_contrast", "fringe_count",
            "psf_px", "dark_adu", "read_noise_adu", "wall_line_fraction", "wall_tangle_um",
            "illumination_falloff", "marker_radius_um",
        )
        for name in non_negative:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise WeakbeamError(f"simulation parameter {name}={v!r}: must be a finite number >= 0")
        if not isinstance(self.walls, int) or self.walls < 0:
            raise WeakbeamError(f"simulation parameter walls={self.walls!r}: must be an integer >= 0")
        if self.lorentz_fraction > 1:
            raise WeakbeamError(f"simulation parameter lorentz_fraction={self.lorentz_fraction}: must be in [0, 1]")
        if not 0 < self.two_theta_deg < 180:
            raise WeakbeamError(f"simulation parameter two_theta_deg={self.two_theta_deg}: must be in (0, 180)")
        if not 0 <= self.min_inclination_deg < 90:
            raise WeakbeamError(
                f"simulation parameter min_inclination_deg={self.min_inclination_deg}: must be in [0, 90)"
            )
        if self.rocking_half_range_mrad is not None and not self.rocking_half_range_mrad > 0:
            raise WeakbeamError(
                f"simulation parameter rocking_half_range_mrad={self.rocking_half_range_mrad}: must be > 0"
            )
        if not (isinstance(self.rocking_offset_mrad, (int, float)) and math.isfinite(self.rocking_offset_mrad)):
            raise WeakbeamError(
                f"simulation parameter rocking_offset_mrad={self.rocking_offset_mrad!r}: must be a finite number"
            )
        if self.wall_line_fraction > 1:
            raise WeakbeamError(
                f"simulation parameter wall_line_fraction={self.wall_line_fraction}: must be in [0, 1]"
            )
        if not (isinstance(self.grain_coverage, (int, float)) and 0 < self.grain_coverage <= 1):
            raise WeakbeamError(f"simulation parameter grain_coverage={self.grain_coverage!r}: must be in (0, 1]")
        if not self.illumination_falloff < 1:
            raise WeakbeamError(
                f"simulation parameter illumination_falloff={self.illumination_falloff}: must be in [0, 1)"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise WeakbeamError(f"simulation parameter seed={self.seed!r}: must be an integer >= 0")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SimulationParams":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
