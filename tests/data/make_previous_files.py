"""Make the files in tests/data/previous/ with the code of an earlier napari-weakbeam.

They were made with main at 0d2cd4a (before the NeXus layout, issue 16) and are committed, so
tests/test_nexus.py checks that files users made with that version still load. Run with the old
code first on the path, e.g.::

    PYTHONPATH=/path/to/old/checkout/src python tests/data/make_previous_files.py tests/data/previous
"""

import sys
from pathlib import Path

import numpy as np

from napari_weakbeam.core.classification.annotations import Annotations, save_annotations
from napari_weakbeam.core.classification.modelfile import load_default_model
from napari_weakbeam.core.classification.predictions import load_predictions
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
from napari_weakbeam.workflows import classify_scan, reconstruct_scan, run
from napari_weakbeam.core.reconstruction.reconstruction_io import save_reconstruction
from napari_weakbeam.core.simulate import SimulationParams, simulate_to_file


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    sim = out / "simulation.h5"
    params = SimulationParams(rows=64, cols=64, layers=2, frames=9, seed=3, density_um2=0.08, layer_spacing_um=0.5)
    simulate_to_file(sim, params, compression="gzip")
    scan = open_scan(str(sim))
    run(classify_scan(scan, load_default_model().with_patch_size(32), out / "predictions.h5"))
    pred = load_predictions(out / "predictions.h5")
    rec = run(reconstruct_scan(scan, pred, ReconstructionParams()))
    save_reconstruction(out / "reconstruction.h5", rec, scan_names=list(scan.scan_names))
    label = np.zeros_like(pred.label)
    label[:, 0] = 2
    label[:, -1] = 1
    save_annotations(out / "annotations.h5", Annotations(
        label, 32, scan.frame_shape, scan.angles, scan.layer_positions, str(sim), list(scan.scan_names)))


if __name__ == "__main__":
    main(sys.argv[1])
