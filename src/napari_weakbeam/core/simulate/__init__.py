"""Physics-based DFXM simulator with ground truth (geometrical optics + strong-beam effects).

``simulate(SimulationParams(...))`` -> :class:`Simulation`; ``write_simulation(path, sim)`` writes the
Bliss layout plus ``/ground_truth``; ``load_truth(path)`` -> :class:`GroundTruth` with ``.u(P)``,
``.classes(P)``, ``.points_um``, ``.core_mask``. See docs/simulator.md.
"""

from .params import SimulationParams
from .simulation import Simulation, iter_layers, simulate, simulate_to_file
from .truth import GroundTruth, classes_from_u, load_truth, patch_peak_halfwidth
from .write import write_simulation

__all__ = [
    "GroundTruth",
    "Simulation",
    "SimulationParams",
    "classes_from_u",
    "load_truth",
    "patch_peak_halfwidth",
    "iter_layers",
    "simulate",
    "simulate_to_file",
    "write_simulation",
]
