"""Ground truth of a simulation: per-patch u and classes for any patch size, dislocation geometry.

The per-patch rule (docs/simulator.md, dfxm-domain notes): sum the noise-free rocking curves of the
patch's *undislocated* pixels (pseudo-Voigt of local peak ``peak_mrad`` and FWHM ``fwhm_mrad``), take
its peak phi0 and its half widths at half maximum on each side (w-, w+; equal for a symmetric curve);
a frame at angle phi has u = |phi - phi0| / w (w+ above the peak, w- below), and the patch is weak
beam (1) where u >= 2, strong beam (2) where u <= 1, ambiguous (0) in between. Only grain pixels
count (``grain_mask``); a patch with less than 25 % of them is class 0. One-sided widths keep
u <= 1 inside the half maximum even when a patch straddles a sub-grain wall (asymmetric curve).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
from scipy.signal import fftconvolve

from ..errors import WeakbeamError
from ..scanfiles.nexus import (
    CLASS_NAME,
    image_axes,
    layer_axis,
    make_entry,
    nearest_layer,
    patch_grid_axes,
    write_nxdata,
    write_scatter,
)
from ..patches import classes_from_u, grid_shape
from ..scanfiles.readers.h5path import open_h5_file
from .optics import pseudo_voigt
from .params import SimulationParams

#: Patch sizes whose u and classes are stored precomputed in the file.
STORED_PATCH_SIZES = (32, 64)
GROUP = "ground_truth"


#: A patch with less than this share of grain pixels is excluded (class 0, u NaN).
MIN_GRAIN_FRACTION = 0.25


def grain_fraction(grain: np.ndarray, patch_size: int) -> np.ndarray:
    """Share of each patch's real pixels inside the grain: (gr, gc) float (edge tiles: real pixels only)."""
    rows, cols = grain.shape
    gr, gc = grid_shape((rows, cols), patch_size)
    pid = ((np.arange(rows) // patch_size)[:, None] * gc + (np.arange(cols) // patch_size)[None, :]).ravel()
    n = np.bincount(pid, minlength=gr * gc)
    inside = np.bincount(pid, weights=np.asarray(grain, bool).ravel(), minlength=gr * gc)
    return (inside / np.maximum(n, 1)).reshape(gr, gc)


def patch_peak_halfwidth(
    peak: np.ndarray, fwhm: np.ndarray, patch_size: int, eta: float, grain: np.ndarray | None = None,
    profile: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak phi0 and the half widths at half maximum below/above it (mrad) of each patch's summed
    undislocated curve: three (gr, gc) arrays. ``grain`` (rows, cols) bool: sum only those pixels
    (a patch with none gets NaN). ``profile`` (2, n): the single-pixel curve tabulated as (offset in
    half widths, value), zero outside; None: the pseudo-Voigt of mixing ``eta``."""
    rows, cols = peak.shape
    gr, gc = grid_shape((rows, cols), patch_size)
    pid = ((np.arange(rows) // patch_size)[:, None] * gc + (np.arange(cols) // patch_size)[None, :]).ravel()
    peak = np.asarray(peak, np.float64).ravel()
    hw = np.asarray(fwhm, np.float64).ravel() / 2
    if grain is not None and not np.all(grain):
        keep = np.asarray(grain, bool).ravel()
        if not keep.any():
            nan = np.full((gr, gc), np.nan)
            return nan, nan.copy(), nan.copy()
        empty = np.bincount(pid[keep], minlength=gr * gc) == 0
        phi0, w_lo, w_hi = _patch_curves(pid[keep], peak[keep], hw[keep], gr, gc, eta, profile)
        for a in (phi0, w_lo, w_hi):
            a.ravel()[empty] = np.nan
        return phi0, w_lo, w_hi
    return _patch_curves(pid, peak, hw, gr, gc, eta, profile)


def _patch_curves(
    pid: np.ndarray, peak: np.ndarray, hw: np.ndarray, gr: int, gc: int, eta: float,
    profile: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summed pseudo-Voigt curves of the pixels (patch id, peak, HWHM) per patch -> phi0, w-, w+."""
    step = float(hw.min()) / 16
    lo = float(peak.min())
    pad = int(math.ceil(8 * float(hw.max()) / step))
    nb = int((float(peak.max()) - lo) / step) + 1 + 2 * pad
    grid = lo + (np.arange(nb) - pad) * step
    pos = (peak - lo) / step
    bins = np.floor(pos).astype(np.int64) + pad
    frac = pos - np.floor(pos)  # cloud-in-cell: split each pixel between its two nearest bins
    # group pixels by width (8 classes) so each group is one convolution of its peak histogram
    k_cls = 8 if hw.max() - hw.min() > 1e-3 * hw.mean() else 1
    edges = np.linspace(hw.min(), hw.max(), k_cls + 1)
    cls = np.clip(np.searchsorted(edges, hw, side="right") - 1, 0, k_cls - 1)
    n_patches = gr * gc
    curves = np.zeros((n_patches, nb))
    offsets = (np.arange(2 * nb - 1) - (nb - 1)) * step
    for k in range(k_cls):
        sel = cls == k
        if not sel.any():
            continue
        idx = pid[sel] * nb + bins[sel]
        hist = np.bincount(idx, weights=1 - frac[sel], minlength=n_patches * nb)
        hist += np.bincount(idx + 1, weights=frac[sel], minlength=n_patches * nb + 1)[: n_patches * nb]
        hist = hist.reshape(n_patches, nb)
        if profile is None:
            kernel = pseudo_voigt(offsets / hw[sel].mean(), eta)
        else:
            kernel = np.interp(offsets / hw[sel].mean(), profile[0], profile[1], left=0.0, right=0.0)
        curves += fftconvolve(hist, kernel[None], mode="same", axes=1)
    return _peak_and_halfwidth(curves, grid, step, (gr, gc))


def _peak_and_halfwidth(curves: np.ndarray, grid: np.ndarray, step: float, shape: tuple[int, int]):
    n_p, n = curves.shape
    rows = np.arange(n_p)
    idx = np.arange(n)
    imax = curves.argmax(axis=1)
    cmax = curves[rows, imax]
    # parabolic refinement of the peak position
    i0, i2 = np.clip(imax - 1, 0, n - 1), np.clip(imax + 1, 0, n - 1)
    a, b, c = curves[rows, i0], cmax, curves[rows, i2]
    den = a - 2 * b + c
    shift = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    phi0 = grid[imax] + np.clip(shift, -0.5, 0.5) * step
    half = cmax / 2
    below = curves < half[:, None]
    right = below & (idx[None] > imax[:, None])
    jr = np.where(right.any(axis=1), right.argmax(axis=1), n - 1)
    c0, c1 = curves[rows, jr - 1], curves[rows, jr]
    xr = grid[jr - 1] + np.clip((c0 - half) / np.maximum(c0 - c1, 1e-300), 0, 1) * step
    left = below & (idx[None] < imax[:, None])
    jl = np.where(left.any(axis=1), n - 1 - left[:, ::-1].argmax(axis=1), 0)
    c0, c1 = curves[rows, np.minimum(jl + 1, n - 1)], curves[rows, jl]
    xl = grid[np.minimum(jl + 1, n - 1)] - np.clip((c0 - half) / np.maximum(c0 - c1, 1e-300), 0, 1) * step
    return phi0.reshape(shape), (phi0 - xl).reshape(shape), (xr - phi0).reshape(shape)


@dataclass
class GroundTruth:
    """What the simulator knows: undislocated peak/width maps, angles, dislocation geometry.

    Frames are in the reader's order (sorted by angle); ``u``/``classes`` are (layers, frames,
    grid_rows, grid_cols). Coordinates are um: z = layer position, y = row * pixel_size,
    x = col * pixel_size / sin(2theta).
    """

    params: SimulationParams
    angles: np.ndarray  # (layers, frames) degrees, sorted
    layer_positions: np.ndarray  # (layers,) um
    peak_mrad: np.ndarray  # (layers, rows, cols) undislocated local peak, mrad from reference_angle_deg
    fwhm_mrad: np.ndarray  # (layers, rows, cols) undislocated local FWHM, mrad
    core_mask: np.ndarray  # (layers, rows, cols) bool
    points_um: np.ndarray  # (N, 3) z, y, x um of the lines inside the imaged layers
    lines_um: list[np.ndarray]  # polylines (n_vertices, 3) z, y, x um
    line_kinds: np.ndarray  # 0 free dislocation, 1 wall dislocation
    grain_mask: np.ndarray | None = None  # (layers, rows, cols) bool, pixels inside the grain; None: all
    generator: str = "weakbeam"  # what made the scan: "weakbeam" (core.simulate) or "dfxm-geo"
    curve_profile: np.ndarray | None = None  # (2, n) single-pixel curve (offset / HWHM, value); None: pseudo-Voigt
    _cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def reference_angle_deg(self) -> float:
        return float(self.params.center_deg)

    @property
    def pixel_size(self) -> float:
        return float(self.params.pixel_size_um)

    @property
    def two_theta(self) -> float:
        return float(self.params.two_theta_deg)

    def offsets_mrad(self) -> np.ndarray:
        """Rocking angles as offsets from the reference angle, mrad (layers, frames)."""
        return np.radians(self.angles - self.reference_angle_deg) * 1e3

    def u(self, patch_size: int) -> np.ndarray:
        """u = |phi - phi0| / w per patch and frame: float32 (layers, frames, gr, gc); NaN (class 0) for a
        patch with less than 25 % grain pixels (``MIN_GRAIN_FRACTION``)."""
        patch_size = int(patch_size)
        if patch_size < 1:
            raise WeakbeamError(f"patch size {patch_size}: must be >= 1")
        if patch_size not in self._cache:
            off = self.offsets_mrad()
            out = []
            for layer in range(self.peak_mrad.shape[0]):
                grain = None if self.grain_mask is None else self.grain_mask[layer]
                phi0, w_lo, w_hi = patch_peak_halfwidth(
                    self.peak_mrad[layer], self.fwhm_mrad[layer], patch_size, self.params.lorentz_fraction, grain,
                    self.curve_profile,
                )
                if grain is not None:
                    phi0 = np.where(grain_fraction(grain, patch_size) < MIN_GRAIN_FRACTION, np.nan, phi0)
                d = off[layer][:, None, None] - phi0[None]
                with np.errstate(invalid="ignore"):
                    out.append(np.where(d >= 0, d / w_hi[None], -d / w_lo[None]))
            self._cache[patch_size] = np.asarray(out, np.float32)
        return self._cache[patch_size]

    def classes(self, patch_size: int) -> np.ndarray:
        """Per-patch classes (1 WB, 2 SB, 0 ambiguous): uint8 (layers, frames, gr, gc)."""
        return classes_from_u(self.u(patch_size))


def write_truth(f: h5py.File, truth: GroundTruth, patch_sizes: tuple[int, ...] = STORED_PATCH_SIZES) -> None:
    """Store the ground truth as ``/ground_truth`` in an open HDF5 file."""
    if GROUP in f:
        del f[GROUP]
    g = f.create_group(GROUP)
    g.attrs["params"] = truth.params.to_json()
    g.attrs["reference_angle_deg"] = truth.reference_angle_deg
    g.attrs["two_theta_deg"] = truth.two_theta
    g.attrs["pixel_size_um"] = truth.pixel_size
    g.attrs["lorentz_fraction"] = truth.params.lorentz_fraction
    g.attrs["description"] = (
        "u = |phi - phi0| / w per patch of the summed undislocated curves; class 1 = WB (u >= 2), "
        "2 = SB (u <= 1), 0 = ambiguous; frames sorted by angle; z, y, x in um with "
        "x = col * pixel_size / sin(2theta)"
    )
    g["angles"] = truth.angles
    g["angles"].attrs["units"] = "deg"
    g["layer_positions"] = truth.layer_positions
    g["layer_positions"].attrs["units"] = "um"
    maps = dict(compression="gzip", compression_opts=4, shuffle=True, scaleoffset=4)
    g.create_dataset("peak_mrad", data=truth.peak_mrad, chunks=(1,) + truth.peak_mrad.shape[1:], **maps)
    g.create_dataset("fwhm_mrad", data=truth.fwhm_mrad, chunks=(1,) + truth.fwhm_mrad.shape[1:], **maps)
    g["peak_mrad"].attrs["description"] = "local peak of the undislocated lattice, mrad from reference_angle_deg"
    g["fwhm_mrad"].attrs["description"] = "local rocking-curve FWHM of the undislocated lattice, mrad"
    g.create_dataset("core_mask", data=truth.core_mask.astype(np.uint8), compression="gzip", shuffle=True,
                     chunks=(1,) + truth.core_mask.shape[1:])
    grain = truth.grain_mask if truth.grain_mask is not None else np.ones(truth.core_mask.shape, bool)
    g.create_dataset("grain_mask", data=grain.astype(bool), compression="gzip", shuffle=True,
                     chunks=(1,) + grain.shape[1:])
    g["grain_mask"].attrs["description"] = (
        "pixels inside the diffracting grain; a patch with < 25 % of them is class 0"
    )
    g.attrs["generator"] = truth.generator
    if truth.curve_profile is not None:
        g["curve_profile"] = np.asarray(truth.curve_profile, np.float64)
        g["curve_profile"].attrs["description"] = (
            "the undislocated single-pixel rocking curve: row 0 offset in half widths (HWHM), row 1 value "
            "(1 at the peak, 0 outside)"
        )
    g["points_um"] = np.asarray(truth.points_um, np.float32).reshape(-1, 3)
    g["points_um"].attrs["columns"] = "z, y, x (um)"
    verts = np.concatenate(truth.lines_um) if truth.lines_um else np.zeros((0, 3))
    g["lines_um"] = verts.astype(np.float32)
    g["lines_offsets"] = np.cumsum([0] + [len(v) for v in truth.lines_um]).astype(np.int64)
    g["lines_kind"] = truth.line_kinds.astype(np.int8)
    g["lines_kind"].attrs["codes"] = "0 free dislocation, 1 wall (sub-grain boundary) dislocation"
    for p in patch_sizes:
        u = truth.u(p)
        g.create_dataset(f"u_P{p}", data=u, compression="gzip", shuffle=True)
        g.create_dataset(f"class_P{p}", data=classes_from_u(u), compression="gzip")
    write_truth_nexus(g, truth, patch_sizes)


def write_truth_nexus(g: h5py.Group, truth: GroundTruth, patch_sizes: tuple[int, ...]) -> None:
    """The NeXus view of /ground_truth: ``dislocations`` (the core mask per layer, with the grain
    and the local peak and width as other signals, over z, y, x in um; the file opens on it),
    ``classes_P<p>`` (the true classes per patch) and ``points`` (3D scatter of the true points)."""
    stretch = abs(math.sin(math.radians(truth.two_theta))) or 1.0  # x = col * pixel / sin(2theta)
    pixel = (truth.pixel_size, truth.pixel_size / stretch)
    maps = [layer_axis(truth.layer_positions), *image_axes(truth.core_mask.shape[1:], pixel)]
    write_nxdata(g, "dislocations", g.name + "/core_mask", maps, long_name="dislocation core", interpretation="image",
                 auxiliary=[f"{g.name}/{k}" for k in ("grain_mask", "peak_mrad", "fwhm_mrad")],
                 title="true dislocation cores per layer")
    for p in patch_sizes:
        axes = patch_grid_axes(truth.angles, truth.layer_positions, truth.core_mask.shape[1:], p, pixel)
        write_nxdata(g, f"classes_P{p}", f"{g.name}/class_P{p}", axes, long_name=CLASS_NAME,
                     interpretation="image", auxiliary=[f"{g.name}/u_P{p}"], title=f"true classes of {p}-pixel patches")
    pts = np.asarray(truth.points_um).reshape(-1, 3)
    write_scatter(g, "points", pts, nearest_layer(pts[:, 0], truth.layer_positions), "layer", long_name="layer",
                  title=f"{len(pts)} true dislocation points in the imaged layers")
    make_entry(g, "dislocations")


def load_truth(path: str | os.PathLike) -> GroundTruth:
    """Read ``/ground_truth`` of a simulated file (``weakbeam simulate``) into a GroundTruth."""
    path = os.fspath(path)
    if "::" in path:
        path = path.split("::", 1)[0]
    if not os.path.exists(path):
        raise WeakbeamError(f"{path}: no such file")
    try:
        with open_h5_file(path) as f:
            if GROUP not in f:
                raise WeakbeamError(f"{path}: no /{GROUP} group (not a file made by weakbeam simulate)")
            g = f[GROUP]
            params = SimulationParams.from_json(g.attrs["params"])
            offsets = g["lines_offsets"][()]
            verts = g["lines_um"][()].astype(np.float64)
            truth = GroundTruth(
                params=params,
                angles=g["angles"][()],
                layer_positions=g["layer_positions"][()],
                peak_mrad=g["peak_mrad"][()],
                fwhm_mrad=g["fwhm_mrad"][()],
                core_mask=g["core_mask"][()].astype(bool),
                points_um=g["points_um"][()].astype(np.float64),
                lines_um=[verts[a:b] for a, b in zip(offsets[:-1], offsets[1:])],
                line_kinds=g["lines_kind"][()],
                grain_mask=g["grain_mask"][()].astype(bool) if "grain_mask" in g else None,
                generator=str(g.attrs.get("generator", "weakbeam")),
                curve_profile=g["curve_profile"][()] if "curve_profile" in g else None,
            )
            for name in g:
                if name.startswith("u_P"):
                    truth._cache[int(name[3:])] = g[name][()]
    except WeakbeamError:
        raise
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise WeakbeamError(f"{path}: cannot read the ground truth ({exc})") from None
    return truth
