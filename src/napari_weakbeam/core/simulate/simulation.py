"""``simulate(params) -> Simulation``: frames of every layer plus the ground truth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .optics import geometric_frame, render_layer, strong_beam_effects, undislocated_frame
from .params import SimulationParams
from .tilt import LayerFields, Structure, layer_fields, make_structure
from .truth import GroundTruth

Progress = Callable[[int, int], None]


@dataclass
class Simulation:
    """A simulated layer scan: uint16 frames sorted by angle and everything needed for the truth."""

    params: SimulationParams
    frames: np.ndarray  # (layers, frames, rows, cols) uint16
    angles: np.ndarray  # (layers, frames) degrees, increasing
    layer_positions: np.ndarray  # (layers,) um
    structure: Structure
    fields: list[LayerFields]
    truth: GroundTruth

    def offsets_mrad(self) -> np.ndarray:
        """Rocking angles relative to the grain's mean peak, mrad (layers, frames)."""
        return np.radians(self.angles - self.params.center_deg) * 1e3

    def noise_free(self, layer: int, *, dislocated: bool = True, effects: bool = False) -> np.ndarray:
        """Expected intensity (1 = perfect peak) of every frame of ``layer``: float32 (frames, rows, cols).

        ``dislocated=False`` gives the undislocated lattice (the ground truth's model);
        ``effects=True`` adds fringes, saturation and blur (what the detector sees before noise).
        """
        f = self.fields[layer]
        eta = self.params.lorentz_fraction
        out = []
        for off in self.offsets_mrad()[layer]:
            img = geometric_frame(f, float(off), eta) if dislocated else undislocated_frame(f, float(off), eta)
            if effects:
                img = strong_beam_effects(img, f, float(off), self.params)
            out.append(img)
        return np.asarray(out)


def simulate(params: SimulationParams | None = None, progress: Progress | None = None) -> Simulation:
    """Simulate a DFXM layer scan; ``progress(done_frames, total_frames)`` is called per frame batch.

    Deterministic for ``params.seed``: the structure uses one numpy Generator stream, each layer's
    detector noise its own (so a layer does not depend on the others' noise).
    """
    p = params or SimulationParams()
    p.validate()
    rng = np.random.default_rng(p.seed)
    structure = make_structure(p, rng)
    angles = np.tile(np.asarray(p.angles_deg()), (p.layers, 1))
    offsets = np.radians(angles - p.center_deg) * 1e3
    frames = np.empty((p.layers, p.frames, p.rows, p.cols), np.uint16)
    fields: list[LayerFields] = []
    total = p.layers * p.frames
    for layer in range(p.layers):
        f = layer_fields(structure, layer)
        fields.append(f)
        noise_rng = np.random.default_rng([p.seed, layer + 1])
        frames[layer] = render_layer(f, offsets[layer], p, noise_rng)
        if progress is not None:
            progress((layer + 1) * p.frames, total)
    lines, kinds = structure.polylines()
    truth = GroundTruth(
        params=p,
        angles=angles,
        layer_positions=np.asarray(p.layer_positions_um(), np.float64),
        peak_mrad=np.stack([f.peak0 for f in fields]),
        fwhm_mrad=np.stack([f.fwhm0 for f in fields]),
        core_mask=np.stack([f.core_mask for f in fields]),
        points_um=layer_points(lines, p),
        lines_um=lines,
        line_kinds=kinds,
    )
    return Simulation(p, frames, angles, truth.layer_positions, structure, fields, truth)


def layer_points(lines: list[np.ndarray], params: SimulationParams) -> np.ndarray:
    """Points (N, 3) z, y, x um of the lines inside each imaged slab, z snapped to the layer position.

    Each line is sampled every half pixel where it lies within the illuminated slab
    (|z - z_layer| <= thickness / 2) and inside the field of view.
    """
    p = params
    ly, lx = p.rows * p.pixel_size_um, p.cols * p.x_pixel_um
    half_t = p.layer_thickness_um / 2
    out = []
    for seg in lines:
        for a, b in zip(seg[:-1], seg[1:]):
            length = float(np.linalg.norm(b - a))
            n = max(int(np.ceil(length / (p.pixel_size_um / 2))), 1) + 1
            pts = a + np.linspace(0, 1, n)[:, None] * (b - a)
            for layer, z in enumerate(p.layer_positions_um()):
                sel = (
                    (np.abs(pts[:, 0] - z) <= half_t)
                    & (pts[:, 1] >= 0) & (pts[:, 1] < ly) & (pts[:, 2] >= 0) & (pts[:, 2] < lx)
                )
                if sel.any():
                    q = pts[sel].copy()
                    q[:, 0] = z
                    out.append(q)
    return np.concatenate(out) if out else np.zeros((0, 3))
