"""A second, independent generator of labelled scans: dfxm-geo (DTU's geometrical-optics forward
model of DFXM, Poulsen et al. 2021; PyPI ``dfxm-geo``, optional extra ``napari-weakbeam[dfxmgeo]``).

dfxm-geo computes each ray's scattering vector from the displacement gradient of straight
dislocations (isotropic elasticity) and weighs it with the reciprocal-space resolution function
(its analytic backend), then projects the illuminated layer on the detector. We use it in process:

- dislocations: dfxm-geo's own random population (2D Gaussian placement, random FCC slip systems)
  for isolated lines and dense networks, plus walls: rows of dislocations sharing one slip system
  (as dfxm-geo's wall mode) with alternating signs (dipolar cell walls, no net tilt), several at
  random angles;
- a smooth lattice tilt about the rocking axis (``mosaicity_mrad``; dfxm-geo models none) enters
  dfxm-geo's own scattering vector (the same term as the rocking angle), so regions of one frame
  can sit at different places on their curves;
- the grain outline and beam profile (:mod:`.grain`) multiply the ideal intensity;
- the detector is dfxm-geo's measured PCO edge model (gain 2.14 ADU/photon, offset ~110 ADU,
  fixed-pattern and read noise), plus ``dark_adu - 110`` ADU of extra floor.

Labels: the undislocated lattice is dfxm-geo's perfect crystal (Hg = 0), whose rocking curve is the
same at every pixel; shifted by the tilt field, it gives each pixel's undislocated peak, and its
tabulated shape (flat-topped, no tails) is stored as ``/ground_truth/curve_profile`` so that
``load_truth(path).u(P)`` sums the true curve shape per patch (same u rule as our simulator).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np

from ..errors import WeakbeamError
from .params import SimulationParams

#: dfxm-geo's object-plane pixel (its default detector geometry), um.
PIXEL_UM = 0.04
#: Mean dark level of dfxm-geo's PCO edge detector model at 1 s exposure (102.5 + 7.5 ADU).
MODEL_DARK_ADU = 110.0
STRUCTURES = ("random", "walls")
_INSTALL_HINT = "pip install 'napari-weakbeam[dfxmgeo]' (or pip install dfxm-geo)"


def require_dfxm_geo():
    """Import dfxm_geo or raise a one-line WeakbeamError naming the extra."""
    try:
        import dfxm_geo.direct_space.forward_model as fm  # noqa: F401
    except ImportError:
        raise WeakbeamError(f"the dfxm-geo generator needs the optional package dfxm-geo: {_INSTALL_HINT}") from None
    return fm


@dataclass
class DfxmGeoParams:
    """One dfxm-geo scan (Al 111 at 17 keV, dfxm-geo's defaults). Angles in mrad.

    Frames are ``rows x rows // 3`` pixels (dfxm-geo's ray grid: the along-beam axis has a third of
    the pixels, each ~0.12 um at the sample, the other 0.04 um).
    """

    rows: int = 192
    frames: int = 31
    seed: int = 0
    dislocations: int = 6
    """Free dislocations placed by dfxm-geo's random population (2D Gaussian of std ``spread_um``)."""
    spread_um: float | None = None
    """Std of their placement; None: a quarter of the field of view (dfxm-geo's default)."""
    walls: int = 0
    """Dipolar dislocation walls (the cell walls of fatigued metals): rows of dislocations of one slip
    system and alternating sign, across the field at random angles; no net misorientation, so the
    labels' undislocated lattice stays the perfect crystal."""
    wall_spacing_um: float = 0.25
    mosaicity_mrad: float = 0.08
    """Std of a smooth lattice tilt about the rocking axis (not dfxm-geo's; 0 = perfect lattice)."""
    mosaic_length_um: float = 2.0
    rocking_half_range_mrad: float | None = None
    """Half range of the scan; None: 2.5 x the perfect-crystal FWHM + 2 x mosaicity (covers the tails)."""
    rocking_offset_mrad: float = 0.0
    photons: float = 2000.0
    """Photons per pixel at the perfect-crystal peak."""
    dark_adu: float = MODEL_DARK_ADU
    """Mean dark floor (>= 110 ADU, the detector model's own offset; the rest is added)."""
    grain_coverage: float = 1.0
    illumination_falloff: float = 0.0
    layers: int = 1
    """Layers of the scan: the line beam moved up by ``layer_spacing_um`` between them (its rays
    shifted in height, as dfxm-geo's own z-scan does), the same dislocations seen at each height."""
    layer_spacing_um: float = 2.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("rows", "frames", "layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (24 if name == "rows" else 1):
                raise WeakbeamError(f"dfxm-geo parameter {name}={v!r}: must be an integer >= {24 if name == 'rows' else 1}")
        for name in ("seed", "dislocations", "walls"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise WeakbeamError(f"dfxm-geo parameter {name}={v!r}: must be an integer >= 0")
        for name in ("wall_spacing_um", "mosaic_length_um", "photons", "layer_spacing_um"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise WeakbeamError(f"dfxm-geo parameter {name}={v!r}: must be a finite number > 0")
        if self.spread_um is not None and not self.spread_um > 0:
            raise WeakbeamError(f"dfxm-geo parameter spread_um={self.spread_um!r}: must be > 0")
        if self.rocking_half_range_mrad is not None and not self.rocking_half_range_mrad > 0:
            raise WeakbeamError(f"dfxm-geo parameter rocking_half_range_mrad={self.rocking_half_range_mrad!r}: must be > 0")
        if not (math.isfinite(self.mosaicity_mrad) and self.mosaicity_mrad >= 0):
            raise WeakbeamError(f"dfxm-geo parameter mosaicity_mrad={self.mosaicity_mrad!r}: must be >= 0")
        if not math.isfinite(self.rocking_offset_mrad):
            raise WeakbeamError(f"dfxm-geo parameter rocking_offset_mrad={self.rocking_offset_mrad!r}: must be finite")
        if not (math.isfinite(self.dark_adu) and MODEL_DARK_ADU <= self.dark_adu <= 60000):
            raise WeakbeamError(f"dfxm-geo parameter dark_adu={self.dark_adu!r}: must be in [110, 60000]")
        if not 0 < self.grain_coverage <= 1:
            raise WeakbeamError(f"dfxm-geo parameter grain_coverage={self.grain_coverage!r}: must be in (0, 1]")
        if not 0 <= self.illumination_falloff < 1:
            raise WeakbeamError(f"dfxm-geo parameter illumination_falloff={self.illumination_falloff!r}: must be in [0, 1)")

    @property
    def cols(self) -> int:
        return self.rows // 3

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DfxmGeoParams":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ----------------------------------------------------------------------------- dfxm-geo context
@lru_cache(maxsize=4)
def _context(rows: int):
    """dfxm-geo's forward context for an image of ``rows`` pixels (analytic resolution, no beamstop)."""
    fm = require_dfxm_geo()
    from dfxm_geo.config import DetectorGeometryConfig, ReciprocalConfig, SimulationConfig, run_theta
    from dfxm_geo.pipeline import _load_resolution

    cfg = SimulationConfig(
        reciprocal=ReciprocalConfig(beamstop=False, backend="analytic"),
        detector_geometry=DetectorGeometryConfig(Npixels=rows),
    )
    res = _load_resolution(cfg.reciprocal, cfg.geometry)
    instr = fm.build_instrument_context_from_config(
        psize=PIXEL_UM * 1e-6, zl_rms=fm.zl_rms, Npixels=rows, Nsub=1
    )
    theta = float(run_theta(cfg))
    ctx = fm.build_forward_context(theta, res, cfg.reciprocal.hkl, instrument=instr, cell=None)
    return cfg, ctx, theta


@lru_cache(maxsize=1)
def perfect_curve() -> tuple[np.ndarray, np.ndarray, float, float]:
    """dfxm-geo's perfect-crystal rocking curve (the same at every pixel), finely sampled:
    (offsets mrad, values peak-normalised, peak mrad, FWHM mrad)."""
    fm = require_dfxm_geo()
    cfg, ctx, _ = _context(48)
    n = ctx.instrument.NN1 * ctx.instrument.NN2 * ctx.instrument.NN3
    static = fm.precompute_forward_static(np.zeros((n, 3, 3)), ctx)
    off = np.linspace(-0.3, 0.3, 121)
    vals = np.array([fm.forward_from_static(static, ctx, phi=o * 1e-3).mean() for o in off])
    vals = vals / vals.max()
    i = int(vals.argmax())
    above = np.nonzero(vals >= 0.5)[0]
    lo, hi = above.min(), above.max()  # half-maximum crossings, interpolated linearly
    x_lo = off[lo - 1] + (0.5 - vals[lo - 1]) / (vals[lo] - vals[lo - 1]) * (off[lo] - off[lo - 1])
    x_hi = off[hi] + (vals[hi] - 0.5) / (vals[hi] - vals[hi + 1]) * (off[hi + 1] - off[hi])
    return off, vals, float(off[i]), float(x_hi - x_lo)


def curve_profile() -> np.ndarray:
    """The perfect-crystal curve as (offset in HWHM, value): ``GroundTruth.curve_profile``."""
    off, vals, peak, fwhm = perfect_curve()
    return np.stack([(off - peak) / (fwhm / 2), vals])


def scan_params(p: DfxmGeoParams) -> SimulationParams:
    """The scan's geometry and detector in our parameter form (angles, sizes, grain, beam): what
    ``/ground_truth`` stores as ``params`` so ``load_truth`` reads dfxm-geo files unchanged."""
    _, _, peak, fwhm = perfect_curve()
    _, _, theta = _context(p.rows)
    half = p.rocking_half_range_mrad
    if half is None:
        half = 2.5 * fwhm + 2.0 * p.mosaicity_mrad
    return SimulationParams(
        rows=p.rows, cols=p.cols, layers=p.layers, layer_spacing_um=p.layer_spacing_um, frames=p.frames, seed=p.seed,
        center_deg=math.degrees(theta), fwhm_mrad=fwhm, fwhm_variation=0.0, lorentz_fraction=0.0,
        rocking_half_range_mrad=float(half), rocking_offset_mrad=float(p.rocking_offset_mrad),
        mosaicity_mrad=p.mosaicity_mrad, mosaic_length_um=p.mosaic_length_um, walls=0, density_um2=0.0,
        pixel_size_um=PIXEL_UM, two_theta_deg=2 * math.degrees(theta),
        saturation=0.0, fringe_contrast=0.0, psf_px=0.0, exposure=float(p.photons),
        dark_adu=float(p.dark_adu), gain_adu=2.14, read_noise_adu=0.0,
        grain_coverage=p.grain_coverage, illumination_falloff=p.illumination_falloff,
        layer_thickness_um=beam_fwhm_um(),
    )


# ----------------------------------------------------------------------------- the scan
def _population(p: DfxmGeoParams, rng: np.random.Generator, fov_um: float):
    """dfxm-geo DislocationPopulation: its random dislocations plus our walls (one slip system each)."""
    fm = require_dfxm_geo()
    from dfxm_geo.config import CrystalConfig, RandomDislocationsConfig

    def draw(n: int, spread: float | None):
        cfg = CrystalConfig(mode="random_dislocations",
                            random_dislocations=RandomDislocationsConfig(ndis=n, sigma=spread))
        return fm.build_dislocation_population(cfg, fov_lateral_um=fov_um, rng=rng)

    pos, ud, base = [], [], None
    if p.dislocations:
        base = draw(p.dislocations, p.spread_um)
        pos.append(base.positions_um)
        ud.append(base.Ud)
    if p.walls:
        systems = draw(p.walls, None)
        base = base or systems
        half = 0.75 * fov_um
        for w in range(p.walls):
            centre = rng.uniform(-0.3, 0.3, 2) * fov_um
            ang = rng.uniform(0, math.pi)
            s = np.arange(-half, half + 1e-9, p.wall_spacing_um)
            xy = centre + s[:, None] * np.array([math.cos(ang), math.sin(ang)])
            pos.append(np.column_stack([xy, np.zeros(len(s))]))
            # alternating signs (b -> -b: a half turn about the line), so the wall has no net tilt
            flip = np.where(np.arange(len(s)) % 2 == 0, 1.0, -1.0)
            signs = np.stack([flip, flip, np.ones(len(s))], axis=1)
            ud.append(systems.Ud[w][None] * signs[:, None, :])
    if base is None:
        return None
    return dataclasses.replace(base, positions_um=np.concatenate(pos), Ud=np.concatenate(ud), sidecar=None,
                               rotation_deg=None, b_um_per=None)


def _pixel_of(positions_um: np.ndarray, ctx) -> np.ndarray:
    """Image (row, col) of sample points (x, y, z) (z is not imaged): rows follow y (0.04 um),
    columns x."""
    instr = ctx.instrument
    col_um = 2 * ctx.geometry.xl_range * 1e6 / instr.NN1
    rows = instr.NN2 / 2 + positions_um[:, 1] / PIXEL_UM
    cols = instr.NN1 / 2 + positions_um[:, 0] / col_um
    return np.column_stack([rows, cols])


#: Half length (um, along the line) of each dislocation kept as a true line: several slabs above
#: and below the imaged layer, so line scoring sees where a line leaves the slab.
LINE_HALF_LENGTH_UM = 6.0


def beam_fwhm_um() -> float:
    """FWHM of dfxm-geo's Gaussian line beam in height: the imaged slab's thickness, um."""
    fm = require_dfxm_geo()
    return float(fm.zl_rms * 2 * math.sqrt(2 * math.log(2)) * 1e6)


def true_lines(pop, ctx, sp: SimulationParams, step_um: float | None = None, reach_um: float = 0.0) -> list[np.ndarray]:
    """dfxm-geo's dislocations as polylines (n, 3) z, y, x um in our image frame (as
    ``GroundTruth.lines_um``): each is straight, through its position, along its line direction
    t (the third column of its Ud) taken to the lab frame as dfxm-geo does (r_d = Ud^T Us^T
    Theta r_lab, so t_lab = Theta^T Us Ud e_z); z is the height above the first layer's centre.
    Each reaches ``LINE_HALF_LENGTH_UM`` + ``reach_um`` along itself both ways (a stack's height)."""
    step = step_um or sp.pixel_size_um / 2
    half = LINE_HALF_LENGTH_UM + reach_um
    s = np.arange(-half, half + step / 2, step)
    to_lab = ctx.geometry.Theta.T @ ctx.instrument.Us
    out = []
    for pos, ud in zip(pop.positions_um, pop.Ud):
        t = to_lab @ ud[:, 2]
        lab = pos[None] + s[:, None] * (t / np.linalg.norm(t))[None]
        rc = _pixel_of(lab, ctx)
        out.append(np.column_stack([lab[:, 2], rc[:, 0] * sp.pixel_size_um, rc[:, 1] * sp.x_pixel_um]))
    return out


def _tilt_field(p: DfxmGeoParams, sp: SimulationParams) -> np.ndarray:
    """Smooth lattice tilt (layers, rows, cols) mrad of std ``mosaicity_mrad`` (0 when it is 0),
    one smooth field in 3D sampled at each layer's height."""
    if p.mosaicity_mrad <= 0:
        return np.zeros((p.layers, p.rows, p.cols), np.float32)
    from .fields import SmoothField

    rng = np.random.default_rng([p.seed, 0, 4])
    ly, lx = p.rows * sp.pixel_size_um, p.cols * sp.x_pixel_um
    top = (p.layers - 1) * p.layer_spacing_um
    lo = np.array([-1.0, 0.0, 0.0]) - p.mosaic_length_um
    hi = np.array([1.0 + top, ly, lx]) + p.mosaic_length_um
    field = SmoothField.make(rng, lo, hi, p.mosaic_length_um)
    y = np.arange(p.rows) * sp.pixel_size_um
    x = np.arange(p.cols) * sp.x_pixel_um
    return np.stack([p.mosaicity_mrad * field.sample(float(z), y, x) for z in sp.layer_positions_um()]).astype(np.float32)


def simulate_dfxmgeo(p: DfxmGeoParams):
    """Make one labelled dfxm-geo scan in memory: (frames uint16 (layers, frames, rows, cols), GroundTruth)."""
    fm = require_dfxm_geo()
    from dfxm_geo.detector import PCO_EDGE_4P2_ID03 as model

    from .grain import illumination, make_grain
    from .simulation import layer_points, scan_angles
    from .truth import GroundTruth

    p.validate()
    sp = scan_params(p)
    _, ctx, _ = _context(p.rows)
    instr = ctx.instrument
    rng = np.random.default_rng([p.seed, 0, 5])
    fov_um = p.rows * PIXEL_UM
    pop = _population(p, rng, fov_um)
    n_rays = instr.NN1 * instr.NN2 * instr.NN3
    tilt = _tilt_field(p, sp)
    offsets = np.radians(scan_angles(sp)[0] - sp.center_deg) * 1e3
    grain_obj = make_grain(sp)
    ill = illumination(sp)
    noise_rng = np.random.default_rng([p.seed, 0, 6])
    frames, grains = [], []
    for k, z in enumerate(sp.layer_positions_um()):
        if pop is None:
            hg = np.zeros((n_rays, 3, 3))
        elif k == 0:
            hg, _ = fm.Find_Hg_from_population(pop, ctx=ctx)
        else:  # the beam z um higher: its rays (lab metres) shifted up, as dfxm-geo's own z-scan does
            rl = np.array(ctx.geometry.rl, dtype=np.float64, copy=True)
            rl[2] += float(z) * 1e-6
            hg, _ = fm.Find_Hg_from_population(pop, ctx=ctx, rl=rl)
        static = fm.precompute_forward_static(hg, ctx)
        static[0] -= tilt[k].astype(np.float64).ravel()[instr.flat_indices] * 1e-3  # the pixel's peak moves by +tilt
        ideal = np.stack([fm.forward_from_static(static, ctx, phi=o * 1e-3) for o in offsets])
        grain = grain_obj.mask(sp, float(z))
        beam = grain.astype(np.float64)
        if ill is not None:
            beam = beam * ill
        ideal *= beam[None]
        # dfxm-geo's detector model: photons x gain above its offset, Poisson, fixed pattern, read noise
        if k == 0:
            sensor = model.make_sensor_map(ideal.shape[1:], noise_rng)
        adu = model.apply(ideal * (p.photons * model.gain), 1.0, noise_rng, sensor).astype(np.float64)
        adu += p.dark_adu - model.offset(1.0)
        frames.append(np.clip(np.rint(adu), 0, 65535).astype(np.uint16))
        grains.append(grain)
    frames = np.stack(frames)

    _, _, peak, fwhm = perfect_curve()
    reach = (p.layers - 1) * p.layer_spacing_um
    lines = [] if pop is None else true_lines(pop, ctx, sp, reach_um=reach)
    points = layer_points(lines, sp) if lines else np.zeros((0, 3))
    positions = sp.layer_positions_um()
    core = np.zeros((p.layers, p.rows, p.cols), bool)
    if len(points):  # pixels within 0.1 um of a line inside the slab (as our simulator's core mask)
        from scipy.spatial import cKDTree

        yy, xx = np.mgrid[: p.rows, : p.cols]
        pix = np.column_stack([yy.ravel() * sp.pixel_size_um, xx.ravel() * sp.x_pixel_um])
        for k, z in enumerate(positions):
            at = points[np.isclose(points[:, 0], z)][:, 1:]
            if len(at):
                core[k] = (cKDTree(at).query(pix, k=1)[0] < 0.1).reshape(p.rows, p.cols)
    truth = GroundTruth(
        params=sp,
        angles=scan_angles(sp),
        layer_positions=np.asarray(positions, dtype=np.float64),
        peak_mrad=(peak + tilt).astype(np.float32),
        fwhm_mrad=np.full((p.layers, p.rows, p.cols), fwhm, np.float32),
        core_mask=core,
        points_um=points,
        lines_um=lines,
        line_kinds=np.zeros(len(lines), np.int8),
        grain_mask=np.stack(grains),
        generator="dfxm-geo",
        curve_profile=curve_profile(),
    )
    return frames, truth


def simulate_dfxmgeo_to_file(
    path: str | os.PathLike, params: DfxmGeoParams, *, compression: str | None = "gzip"
):
    """Write one labelled dfxm-geo scan (Bliss layout + ``/ground_truth``); return its GroundTruth."""
    import h5py

    from .write import write_frames_and_truth

    frames, truth = simulate_dfxmgeo(params)
    gt = write_frames_and_truth(path, truth.params, list(frames), lambda: truth, compression=compression)
    with h5py.File(path, "a") as f:
        f["ground_truth"].attrs["dfxmgeo_params"] = params.to_json()
        f["ground_truth"].attrs["dfxmgeo_version"] = _version()
        f.attrs["creator"] = "napari-weakbeam dfxm-geo generator (Bliss layout + /ground_truth)"
    return gt


def _version() -> str:
    from importlib.metadata import version

    return version("dfxm-geo")


# ----------------------------------------------------------------------------- random + benchmark
REGIMES = ("isolated", "network", "walls")


def random_dfxmgeo_params(rng: np.random.Generator | int, *, regime: str | None = None, **overrides) -> DfxmGeoParams:
    """One random dfxm-geo scan setting (same ranges as ``random_params`` where they apply).

    192-384 px rows (64-128 columns), 15-41 frames, regimes: isolated (1-6 dislocations), network
    (20-80 spread over the field), walls (2-5 walls 0.1-0.5 um spacing, plus 0-10 free); tilt
    0-0.3 mrad (none in a fifth), 50-50,000 photons (log-uniform), dark floor 110-3,000 ADU, grain
    30-100 % (100 % in a quarter), fall-off 0-85 % (none in 30 %), half the scans on a short range.
    """
    from .randomise import start_draw

    rng, regime = start_draw(rng, DfxmGeoParams, "dfxm-geo", REGIMES, regime, overrides, "random_dfxmgeo_params")
    d: dict = {"seed": int(rng.integers(0, 2**31 - 1)), "rows": 48 * int(rng.integers(4, 9)),
               "frames": int(rng.integers(15, 42))}
    u_n, u_w, u_s, u_f = rng.random(4)
    fov = d["rows"] * PIXEL_UM
    if regime == "isolated":
        d.update(dislocations=1 + int(u_n * 6), walls=0)
    elif regime == "network":
        d.update(dislocations=20 + int(u_n * 61), walls=0, spread_um=fov / 2)
    else:
        d.update(dislocations=int(u_f * 11), walls=2 + int(u_w * 4), wall_spacing_um=0.1 + 0.4 * u_s)
    u_m, u_mv = rng.random(2)
    d["mosaicity_mrad"] = 0.0 if u_m < 0.2 else float(0.02 * (0.3 / 0.02) ** u_mv)
    d["mosaic_length_um"] = float(rng.uniform(1.0, 4.0))
    d["photons"] = float(math.exp(rng.uniform(math.log(50), math.log(50000))))
    d["dark_adu"] = float(rng.uniform(MODEL_DARK_ADU, 3000))
    d["photons"] = min(d["photons"], (60000 - d["dark_adu"]) / (1.3 * 2.14))
    u_g, u_c, u_b, u_fall = rng.random(4)
    d["grain_coverage"] = 1.0 if u_g < 0.25 else float(0.3 + 0.7 * u_c)
    d["illumination_falloff"] = 0.0 if u_b < 0.3 else float(0.85 * u_fall)
    u_r, u_h, u_o = rng.random(3)
    if u_r < 0.5:
        fwhm = 0.27  # dfxm-geo's perfect-crystal FWHM (Al 111, 17 keV, default optics), mrad
        half = fwhm * (0.5 + 3.5 * u_h) / 2 + d["mosaicity_mrad"]
        d["rocking_half_range_mrad"] = float(half)
        d["rocking_offset_mrad"] = float(1.25 * half * (2 * u_o - 1))
    d.update(overrides)
    return DfxmGeoParams(**d)
