"""The fixed benchmark set: named scan settings for both generators, so every benchmark (and the
lead's cross-generator table) measures on the same definitions.

``benchmark_set("ours")`` -> {name: SimulationParams}; ``benchmark_set("dfxmgeo")`` -> {name:
DfxmGeoParams}; ``make_benchmark_set(folder, generator)`` writes them as labelled scans.
Each case changes one thing from a common, moderate base (256 x 256 px, 31 frames, seed fixed per
case), so a failure points at its cause. ``seed_offset`` makes the same cases with other seeds
(other dislocations, noise and mosaic): held-out scans, on which no rule was tuned.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import WeakbeamError

#: Benchmark case names, in order; each stands for one hard condition of real beamtimes.
BENCHMARK_CASES = (
    "isolated_lines",    # a few free dislocations, one wall
    "dense_network",     # many free dislocations crossing the field
    "cell_walls",        # tangled cell walls (fatigued metal): bright, speckled, cellular
    "falloff_85",        # beam profile falling off by 85 % across the field
    "dark_2500",         # detector floor of 2,500 ADU
    "low_exposure_100",  # ~100 photons at the peak
    "short_range",       # rocking range stopping before the tails (one side far short)
    "grain_40",          # the grain covers 40 % of the field, dark around it
)

GENERATORS = ("ours", "dfxmgeo")


def _ours(seed_offset: int = 0) -> dict:
    from .params import SimulationParams

    base = dict(rows=256, cols=256, frames=31, layers=1, exposure=3000.0, dark_adu=100.0)
    cases = {
        "isolated_lines": dict(density_um2=0.004, walls=1),
        "dense_network": dict(density_um2=0.12, walls=2),
        "cell_walls": dict(walls=10, wall_line_fraction=0.85, density_um2=0.08, wall_misorientation_mrad=0.1),
        "falloff_85": dict(illumination_falloff=0.85),
        "dark_2500": dict(dark_adu=2500.0),
        "low_exposure_100": dict(exposure=100.0),
        "short_range": dict(rocking_half_range_mrad=0.3, rocking_offset_mrad=0.12),
        "grain_40": dict(grain_coverage=0.4),
    }
    return {name: SimulationParams(**{**base, "seed": 900 + i + seed_offset, **cases[name]})
            for i, name in enumerate(BENCHMARK_CASES)}


def _dfxmgeo(seed_offset: int = 0) -> dict:
    """The benchmark set's dfxm-geo cases (names as ``benchmark_set.BENCHMARK_CASES``)."""
    from .dfxmgeo import PIXEL_UM, DfxmGeoParams  # imports nothing of dfxm-geo itself until a scan is made

    base = dict(rows=192, frames=31, photons=3000.0, mosaicity_mrad=0.15)
    cases = {
        "isolated_lines": dict(dislocations=4),
        "dense_network": dict(dislocations=60, spread_um=192 * PIXEL_UM / 2),
        "cell_walls": dict(dislocations=8, walls=4, wall_spacing_um=0.2),
        "falloff_85": dict(illumination_falloff=0.85),
        "dark_2500": dict(dark_adu=2500.0),
        "low_exposure_100": dict(photons=100.0),
        "short_range": dict(rocking_half_range_mrad=0.45, rocking_offset_mrad=0.2),
        "grain_40": dict(grain_coverage=0.4),
    }
    return {name: DfxmGeoParams(**{**base, "seed": 950 + i + seed_offset, **cases[name]})
            for i, name in enumerate(BENCHMARK_CASES)}


def benchmark_set(generator: str = "ours", seed_offset: int = 0) -> dict:
    """Named parameter sets of the benchmark, in :data:`BENCHMARK_CASES` order.

    ``generator``: "ours" (:class:`SimulationParams`) or "dfxmgeo" (:class:`.dfxmgeo.DfxmGeoParams`);
    ``seed_offset``: added to every case's seed (0: the fixed set; else held-out scans).
    """
    if generator == "ours":
        return _ours(seed_offset)
    if generator == "dfxmgeo":
        return _dfxmgeo(seed_offset)
    raise WeakbeamError(f"generator {generator!r}: expected one of {', '.join(GENERATORS)}")


def make_benchmark_set(folder: str | os.PathLike, generator: str = "ours", *, overwrite: bool = False,
                       seed_offset: int = 0) -> list[Path]:
    """Write every benchmark scan of ``generator`` as ``folder/<generator>_<case>.h5`` (with a
    ``seed_offset``: ``<generator>_<case>_s<offset>.h5``, :func:`benchmark_set`); return the paths.

    Files already there are kept (and not remade) unless ``overwrite``.
    """
    from .dataset import write_labelled_scan

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    suffix = f"_s{seed_offset}" if seed_offset else ""
    for name, params in benchmark_set(generator, seed_offset).items():
        path = folder / f"{generator}_{name}{suffix}.h5"
        if overwrite or not path.exists():
            write_labelled_scan(path, params, overwrite=overwrite)
        out.append(path)
    return out
