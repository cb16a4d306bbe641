"""Folders of randomised, labelled scans from either generator (training and test data).

Every file has the same layout whatever made it: a Bliss master file (``open_scan`` reads it) with
``/ground_truth`` beside the scans (``load_truth(path).classes(P)`` gives the labels).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, check_replaceable
from ..errors import WeakbeamError
from .params import SimulationParams
from .randomise import random_params
from .truth import GroundTruth

GENERATORS = ("ours", "dfxmgeo")


def write_labelled_scan(
    path: str | os.PathLike, params, *, overwrite: bool = False, compression: str | None = "gzip"
) -> GroundTruth:
    """Make one labelled scan at ``path`` (atomically) from ``SimulationParams`` (our simulator) or
    ``DfxmGeoParams`` (dfxm-geo); return its ground truth.

    An existing file is replaced only with ``overwrite`` and only if it is itself a labelled scan.
    """
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise WeakbeamError(f"{path}: exists; choose another name or pass overwrite")
        check_replaceable(path, "labelled scan", group="ground_truth")
    with atomic_path(path) as tmp:
        if isinstance(params, SimulationParams):
            from .write import simulate_to_file

            truth = simulate_to_file(tmp, params, compression=compression)
        else:
            from .dfxmgeo import DfxmGeoParams, simulate_dfxmgeo_to_file

            if not isinstance(params, DfxmGeoParams):
                raise WeakbeamError(f"labelled scan parameters of type {type(params).__name__}: not a generator's")
            truth = simulate_dfxmgeo_to_file(tmp, params, compression=compression)
    return truth


def random_settings(generator: str, n: int, seed: int) -> list:
    """The parameter sets of scans 0..n-1 of a randomised set (scan i uses the stream [seed, i])."""
    if generator == "ours":
        return [random_params(np.random.default_rng([seed, i])) for i in range(n)]
    if generator == "dfxmgeo":
        from .dfxmgeo import random_dfxmgeo_params

        return [random_dfxmgeo_params(np.random.default_rng([seed, i])) for i in range(n)]
    raise WeakbeamError(f"generator {generator!r}: expected one of {', '.join(GENERATORS)}")


def make_dataset(
    folder: str | os.PathLike,
    generator: str,
    n: int,
    seed: int = 0,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int, Path], None] | None = None,
) -> list[Path]:
    """Write ``n`` randomised labelled scans of ``generator`` as ``folder/<generator>_<i>.h5``.

    Scan i depends only on (seed, i), so a set can be extended or remade in part. Existing scans are
    kept unless ``overwrite``. An ``index.json`` lists every file, its parameters and its class counts
    at 64 px patches. ``progress(done, n, path)`` after each scan.
    """
    if not isinstance(n, int) or n < 0:
        raise WeakbeamError(f"number of scans {n!r}: must be an integer >= 0")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WeakbeamError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    paths, index = [], []
    for i, params in enumerate(random_settings(generator, n, seed)):
        path = folder / f"{generator}_{i:04d}.h5"
        if overwrite or not path.exists():
            truth = write_labelled_scan(path, params, overwrite=overwrite)
        else:
            from .truth import load_truth

            truth = load_truth(path)
        counts = np.bincount(truth.classes(64).ravel(), minlength=3)
        index.append({"file": path.name, "generator": generator, "seed": seed, "index": i,
                      "class_counts_P64": {"ambiguous": int(counts[0]), "weak_beam": int(counts[1]),
                                           "strong_beam": int(counts[2])},
                      "params": json.loads(params.to_json())})
        paths.append(path)
        if progress is not None:
            progress(i + 1, n, path)
    with atomic_path(folder / "index.json") as tmp:
        tmp.write_text(json.dumps(index, indent=1))
    return paths
