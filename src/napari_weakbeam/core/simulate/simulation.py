"""``simulate(params) -> Simulation``: frames of every layer plus the ground truth.

Layers are made one at a time (:func:`iter_layers`), so :func:`.write.simulate_to_file` writes datasets far
bigger than memory; :func:`simulate` keeps everything in memory for tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .optics import geometric_frame, render_layer, strong_beam_effects, undislocated_frame
from .params import SimulationParams
from .structure import Structure, make_structure
from .tilt import LayerFields, layer_fields
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


def scan_angles(params: SimulationParams) -> np.ndarray:
    """Rocking angles (layers, frames) in degrees, increasing."""
    return np.tile(np.asarray(params.angles_deg()), (params.layers, 1))


def iter_layers(
    params: SimulationParams, structure: Structure | None = None, progress: Progress | None = None
) -> Iterator[tuple[np.ndarray, LayerFields]]:
    """Yield (frames uint16 (frames, rows, cols), fields) layer after layer.

    Deterministic for ``params.seed``: the structure uses one numpy Generator stream, each layer's
    detector noise its own (so a layer does not depend on the others' noise).
    """
    p = params
    if structure is None:
        structure = make_structure(p, np.random.default_rng(p.seed))
    offsets = np.radians(scan_angles(p) - p.center_deg) * 1e3
    total = p.layers * p.frames
    for layer in range(p.layers):
        fields = layer_fields(structure, layer)
        done = layer * p.frames
        on_frame = None if progress is None else (lambda i, done=done: progress(done + i + 1, total))
        frames = render_layer(fields, offsets[layer], p, np.random.default_rng([p.seed, layer + 1]), on_frame)
        yield frames, fields


def build_truth(params: SimulationParams, structure: Structure, fields: list[LayerFields]) -> GroundTruth:
    """The ground truth from the structure and the per-layer fields."""
    lines, kinds = structure.polylines()
    return GroundTruth(
        params=params,
        angles=scan_angles(params),
        layer_positions=np.asarray(params.layer_positions_um(), np.float64),
        peak_mrad=np.stack([f.peak0 for f in fields]),
        fwhm_mrad=np.stack([f.fwhm0 for f in fields]),
        core_mask=np.stack([f.core_mask for f in fields]),
        grain_mask=np.stack([_grain(f) for f in fields]),
        points_um=layer_points(lines, params),
        lines_um=lines,
        line_kinds=kinds,
    )


def simulate(params: SimulationParams | None = None, progress: Progress | None = None) -> Simulation:
    """Simulate a DFXM layer scan in memory; ``progress(done_frames, total_frames)`` after each frame."""
    p = params or SimulationParams()
    p.validate()
    structure = make_structure(p, np.random.default_rng(p.seed))
    frames = np.empty((p.layers, p.frames, p.rows, p.cols), np.uint16)
    fields: list[LayerFields] = []
    for i, (layer_frames, f) in enumerate(iter_layers(p, structure, progress)):
        frames[i] = layer_frames
        fields.append(f)
    truth = build_truth(p, structure, fields)
    return Simulation(p, frames, truth.angles, truth.layer_positions, structure, fields, truth)


def _grain(f) -> np.ndarray:
    return f.grain if f.grain is not None else np.ones(f.peak0.shape, bool)


def layer_points(lines: list[np.ndarray], params: SimulationParams) -> np.ndarray:
    """Points (N, 3) z, y, x um of the lines inside each imaged slab, z snapped to the layer position.

    Each line is sampled every half pixel where it lies within the illuminated slab
    (|z - z_layer| <= thickness / 2) and inside the field of view.
    """
    p = params
    y0, x0 = -0.5 * p.pixel_size_um, -0.5 * p.x_pixel_um  # pixel (r, c) is centred at (r, c) * size
    y1, x1 = y0 + p.rows * p.pixel_size_um, x0 + p.cols * p.x_pixel_um
    half_t = p.layer_thickness_um / 2
    out = []
    for seg in lines:
        for a, b in zip(seg[:-1], seg[1:]):
            length = float(np.linalg.norm(b - a))
            n = max(int(np.ceil(length / (p.pixel_size_um / 2))), 1) + 1
            pts = a + np.linspace(0, 1, n)[:, None] * (b - a)
            for z in p.layer_positions_um():
                sel = (
                    (np.abs(pts[:, 0] - z) <= half_t)
                    & (pts[:, 1] >= y0) & (pts[:, 1] < y1) & (pts[:, 2] >= x0) & (pts[:, 2] < x1)
                )
                if sel.any():
                    q = pts[sel].copy()
                    q[:, 0] = z
                    out.append(q)
    return np.concatenate(out) if out else np.zeros((0, 3))
