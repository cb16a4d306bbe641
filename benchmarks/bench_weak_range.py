"""Where is weak beam, checked against the simulator's truth on the fixed benchmark set.

For each case of ``benchmark_set("ours")`` (256 x 256 px, 31 frames, one hard condition each) the
layer's recommended weak-beam ranges are computed from *measured* labels (the rocking-curve aid,
core.classification.rocking_aid: no model, no truth) at two thresholds of the grain's WB share (0.8, the issue's
first proposal, and 0.9, the default), and each range's frames are checked against the truth: the
share of the grain's patches (core.classification.weak_range.grain_patches) whose true class is WB (1), SB (2),
and WB among the patches the truth decides (class 0: in between, or under 25 % grain pixels).

    python benchmarks/bench_weak_range.py [--patch-size 32]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.classification.rocking_aid import suggest_from_context
from napari_weakbeam.core.classification.scan_context import LayerContext
from napari_weakbeam.core.simulate import load_truth, simulate, write_simulation
from napari_weakbeam.core.simulate.benchmark_set import benchmark_set
from napari_weakbeam.core.classification.weak_range import grain_patches, layer_weak_beam


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patch-size", type=int, default=32)
    a = ap.parse_args()
    p = a.patch_size
    print("| case | grain | min share | side | range (deg) | frames | truth WB | truth SB | truth WB of decided |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = {0.8: 1.0, 0.9: 1.0}
    with tempfile.TemporaryDirectory() as d:
        for name, params in benchmark_set("ours").items():
            path = Path(d) / f"{name}.h5"
            write_simulation(path, simulate(params))
            scan, truth = open_scan(str(path)), load_truth(path)
            cls = truth.classes(p)[0]
            ctx = LayerContext.from_frames(np.asarray(scan.layer(0)), scan.angles[0], p)
            labels = suggest_from_context(ctx)
            grain = grain_patches(ctx)
            for share in (0.8, 0.9):
                r = layer_weak_beam(ctx, labels, 0, min_share=share)
                if not r.ranges:
                    print(f"| {name} | {100 * r.grain_share:.0f} % | {share} | - | none | 0 | - | - | - |")
                for rg in r.ranges:
                    fr = (scan.angles[0] >= rg.start) & (scan.angles[0] <= rg.stop)
                    t = cls[fr][:, grain]
                    wb, sb = float((t == 1).mean()), float((t == 2).mean())
                    worst[share] = min(worst[share], wb)
                    print(f"| {name} | {100 * r.grain_share:.0f} % | {share} | {rg.side} | {rg.start:.4f} to "
                          f"{rg.stop:.4f} | {rg.n_frames} | {100 * wb:.1f} % | {100 * sb:.1f} % | "
                          f"{100 * wb / max(wb + sb, 1e-12):.1f} % |", flush=True)
    print(f"\nlowest truth WB share of a recommended range: {', '.join(f'{k}: {100 * v:.1f} %' for k, v in worst.items())}")


if __name__ == "__main__":
    main()
