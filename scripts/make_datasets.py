#!/usr/bin/env python
"""Write folders of randomised, labelled DFXM rocking scans from one or both generators.

    python scripts/make_datasets.py --generator both --n 50 --out data/train --seed 0
    python scripts/make_datasets.py --benchmark --generator both --out data/benchmark

Each scan is a Bliss master file with ``/ground_truth`` (``open_scan`` / ``load_truth`` read both
generators' files alike). ``--generator ours`` uses napari_weakbeam.core.simulate (random_params);
``dfxmgeo`` needs the extra ``pip install napari-weakbeam[dfxmgeo]``. Scan i of a set depends only on
(seed, i); existing files are kept unless ``--overwrite``. ``--benchmark`` writes the fixed benchmark
set (benchmark_set.py) instead of random scans.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.simulate import make_benchmark_set, make_dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", choices=("ours", "dfxmgeo", "both"), default="both")
    ap.add_argument("--n", type=int, default=10, help="scans per generator (random sets)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per generator)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--benchmark", action="store_true", help="write the fixed benchmark set instead")
    ap.add_argument("--overwrite", action="store_true", help="remake scans that already exist")
    args = ap.parse_args(argv)
    gens = ("ours", "dfxmgeo") if args.generator == "both" else (args.generator,)
    try:
        for gen in gens:
            t0 = time.perf_counter()
            if args.benchmark:
                paths = make_benchmark_set(args.out, gen, overwrite=args.overwrite)
            else:
                def show(done, n, path, t0=t0):
                    print(f"  {gen} {done}/{n} {path.name} ({time.perf_counter() - t0:.1f} s)", flush=True)

                paths = make_dataset(args.out / gen, gen, args.n, args.seed, overwrite=args.overwrite, progress=show)
            print(f"{gen}: {len(paths)} scans in {time.perf_counter() - t0:.1f} s -> {args.out}")
    except WeakbeamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
