"""Benchmark the DFXM simulator: frames per second, against baselines measured in the same run.

    python benchmarks/bench_simulate.py [--size 512 512] [--layers 2] [--frames 31] [--repeat 2]

Reports (best of ``--repeat``):
- simulate: ``simulate(params)`` with noise (fields, rocking curves, strong-beam effects, detector);
- noise-free: the same without the detector noise;
- baselines on the same frames: drawing their shot noise alone with ``numpy`` (``rng.poisson``, the
  floor any Poisson detector model pays) and writing them to HDF5 with ``write_bliss`` (gzip, as the
  sample data; bitshuffle-LZ4, as the beamline): a simulator faster than the writer is never the
  bottleneck of ``weakbeam simulate``.
The ratio is each step's CPU time over simulate's (= simulate fps / step fps). Wall-clock and CPU-time (``time.process_time``) rates
are both given: on a shared machine the CPU rate is the stable one. The machine (CPU, cores, load
average) is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {cores} cores, load average {load:.1f}, numpy {np.__version__}, Python {platform.python_version()}"


def best(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU time (seconds) of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def main() -> None:
    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
    from napari_weakbeam.core.simulate import SimulationParams, simulate

    ap = argparse.ArgumentParser(description="simulator frames per second")
    ap.add_argument("--size", type=int, nargs=2, default=(512, 512))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    rows, cols = args.size
    params = SimulationParams(rows=rows, cols=cols, layers=args.layers, frames=args.frames)
    n = args.layers * args.frames
    print(f"machine: {machine()}")
    print(f"case: {args.layers} layers x {args.frames} frames of {rows}x{cols} (default physics), best of {args.repeat}")

    held = {}

    def run() -> None:
        held["sim"] = simulate(params)

    t_sim = best(run, args.repeat)
    sim = held["sim"]
    quiet = SimulationParams(rows=rows, cols=cols, layers=args.layers, frames=args.frames, noise=False)
    t_free = best(lambda: simulate(quiet), args.repeat)

    expected = [sim.noise_free(i, effects=True) * params.exposure for i in range(args.layers)]
    rng = np.random.default_rng(0)
    t_poisson = best(lambda: [rng.poisson(f) for layer in expected for f in layer], args.repeat)

    with tempfile.TemporaryDirectory() as tmp:
        layers, angles = list(sim.frames), list(sim.angles)
        t_gzip = best(lambda: write_bliss(Path(tmp) / "g.h5", layers, angles, None, compression="gzip"), args.repeat)
        t_bshuf = best(lambda: write_bliss(Path(tmp) / "b.h5", layers, angles, None, compression="bitshuffle"), args.repeat)

    rows_out = [
        ("simulate (with noise)", t_sim),
        ("simulate, noise-free", t_free),
        ("baseline: numpy Poisson draw of the same frames", t_poisson),
        ("baseline: write_bliss gzip", t_gzip),
        ("baseline: write_bliss bitshuffle-LZ4", t_bshuf),
    ]
    print("\n| step | frames/s (wall) | frames per CPU-s | CPU time / simulate CPU time |\n|---|---|---|---|")
    for name, (wall, cpu) in rows_out:
        print(f"| {name} | {n / wall:.1f} | {n / cpu:.1f} | {cpu / t_sim[1]:.2f} |")


if __name__ == "__main__":
    main()
