"""Benchmark the two generators of labelled scans: time per scan and class balance of the benchmark set.

    python benchmarks/bench_generators.py [--random 3] [--out benchmarks/results_generators.json]

For each generator ("ours": core.simulate, "dfxmgeo": dfxm-geo) it makes every scan of the fixed
benchmark set (benchmark_set.py) and ``--random`` randomised scans (random_settings, seed 0) in
memory, timing each (wall and CPU time), and counts the truth classes of the benchmark scans at 32 and
64 px patches (ambiguous / WB / SB; the share of SB among the labelled ones). Label consistency with
the scan itself, at 32 px: the share of patch-frames labelled SB whose measured patch mean (minus the
dark level) reaches a quarter of that patch's own maximum over the scan, and of those labelled WB
that stay below it. dfxm-geo's one-off
costs (importing it, which compiles its numba kernels, and its perfect-crystal curve) are timed apart.
Prints a Markdown table and writes the figures as JSON with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_simulate import machine  # noqa: E402

from napari_weakbeam.core.simulate import benchmark_set, random_settings, simulate  # noqa: E402


def make(generator: str, params):
    """Frames and truth of one scan of ``generator`` (in memory)."""
    if generator == "ours":
        sim = simulate(params)
        return sim.frames, sim.truth
    from napari_weakbeam.core.simulate.dfxmgeo import simulate_dfxmgeo

    return simulate_dfxmgeo(params)


def consistency(frames: np.ndarray, classes: np.ndarray, dark: float, P: int = 32) -> tuple[float, float]:
    """(share of SB patch-frames >= 25 % of their patch's maximum, share of WB ones below it)."""
    data = frames[0].astype(np.float64) - dark
    cls = classes[0]
    sb, wb = [], []
    for i in range(cls.shape[1]):
        for j in range(cls.shape[2]):
            c = data[:, i * P:(i + 1) * P, j * P:(j + 1) * P].mean(axis=(1, 2))
            rel = c / max(c.max(), 1e-9)
            sb += list(rel[cls[:, i, j] == 2] >= 0.25)
            wb += list(rel[cls[:, i, j] == 1] < 0.25)
    return float(np.mean(sb)), float(np.mean(wb))


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", type=int, default=3, help="randomised scans per generator")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results_generators.json"))
    args = ap.parse_args(argv)
    results: dict = {"machine": machine(), "generators": {}}
    print(results["machine"])
    for gen in ("ours", "dfxmgeo"):
        res: dict = {"benchmark": {}, "random": []}
        if gen == "dfxmgeo":
            from napari_weakbeam.core.simulate import dfxmgeo

            _, wall, cpu = timed(dfxmgeo.require_dfxm_geo)
            res["import_s"] = round(wall, 2)
            _, wall, cpu = timed(dfxmgeo.perfect_curve)
            res["perfect_curve_s"] = round(wall, 2)
        for name, params in benchmark_set(gen).items():
            (frames, truth), wall, cpu = timed(lambda p=params: make(gen, p))
            entry = {"shape": list(frames.shape), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
            for P in (32, 64):
                c = np.bincount(truth.classes(P).ravel(), minlength=3)
                entry[f"P{P}"] = {"ambiguous": int(c[0]), "weak_beam": int(c[1]), "strong_beam": int(c[2]),
                                  "sb_share_of_labelled": round(float(c[2] / max(c[1] + c[2], 1)), 3)}
            sb_ok, wb_ok = consistency(frames, truth.classes(32), float(truth.params.dark_adu))
            entry["consistency_P32"] = {"sb_above_quarter": round(sb_ok, 3), "wb_below_quarter": round(wb_ok, 3)}
            res["benchmark"][name] = entry
            print(f"{gen:8s} {name:18s} {str(tuple(frames.shape)):22s} {wall:6.2f} s  P32 {entry['P32']} "
                  f"consistency SB {sb_ok:.3f} WB {wb_ok:.3f}")
        for i, params in enumerate(random_settings(gen, args.random, 0)):
            (frames, _), wall, cpu = timed(lambda p=params: make(gen, p))
            res["random"].append({"index": i, "shape": list(frames.shape), "wall_s": round(wall, 2),
                                  "cpu_s": round(cpu, 2)})
            print(f"{gen:8s} random {i}: {tuple(frames.shape)} {wall:.2f} s (cpu {cpu:.2f} s)")
        results["generators"][gen] = res
    args.out.write_text(json.dumps(results, indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
