"""Remake the bundled sample data (deterministic): ``python scripts/make_sample_data.py``.

Writes ``src/napari_weakbeam/sample_data/{one_layer,multi_layer}.h5`` (also reachable as the
top-level ``sample_data/`` link): simulated DFXM rocking scans in the ESRF Bliss layout with their
ground truth, gzip-compressed uint16 frames. Same code and seeds -> the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_weakbeam.core.simulate import SimulationParams, simulate, write_simulation

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_weakbeam" / "sample_data"

SAMPLES = {
    # one layer, 31 frames (as Yildirim et al. 2023), big enough for 64-px patches
    "one_layer.h5": SimulationParams(rows=256, cols=256, layers=1, frames=31, seed=1),
    # one 3D dislocation structure seen in 6 layers 2 um apart
    "multi_layer.h5": SimulationParams(rows=192, cols=192, layers=6, frames=21, seed=2, density_um2=0.02),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, params in SAMPLES.items():
        path = args.out / name
        write_simulation(path, simulate(params), compression="gzip")
        path.chmod(0o644)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
