"""Physics-based DFXM simulator with ground truth (geometrical optics + strong-beam effects).

``simulate(SimulationParams(...))`` -> :class:`Simulation`; ``write_simulation(path, sim)`` writes the
Bliss layout plus ``/ground_truth``; ``load_truth(path)`` -> :class:`GroundTruth` with ``.u(P)``,
``.classes(P)``, ``.points_um``, ``.core_mask``, ``.grain_mask``. Training and test data:
``random_params(rng, **overrides)`` (randomise.py), ``make_dataset(folder, generator, n, seed)``
(dataset.py), ``benchmark_set(generator)`` (benchmark_set.py); the second generator, dfxm-geo, is in
dfxmgeo.py (optional extra). See docs/simulator.md.
"""

from ..patches import classes_from_u
from .benchmark_set import BENCHMARK_CASES, benchmark_set, make_benchmark_set
from .dataset import make_dataset, random_settings, write_labelled_scan
from .params import SimulationParams
from .randomise import REGIMES, random_params
from .simulation import Simulation, iter_layers, simulate
from .truth import GroundTruth, load_truth, patch_peak_halfwidth
from .write import simulate_to_file, write_simulation

__all__ = [
    "BENCHMARK_CASES",
    "REGIMES",
    "benchmark_set",
    "make_benchmark_set",
    "make_dataset",
    "random_params",
    "random_settings",
    "write_labelled_scan",
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
