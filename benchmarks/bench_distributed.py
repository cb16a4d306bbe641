"""Whole-scan throughput through Dask: one process vs a LocalCluster of 1 and 2 workers.

Simulates a multi-layer DFXM scan (core.simulate; ``--sim-layers`` distinct simulated layers,
cycled to ``--layers`` layers so the benchmark does not spend its time simulating), writes it in the
Bliss layout, then classifies it (``workflows.classify_scan`` in one process = the baseline, then
with a LocalCluster client) and reconstructs it (``paper`` method, labels from
the predictions). Reports frames per second, the ratio to the one-process run of the same job
measured in the same run, and the peak resident memory of each worker process (``VmHWM``).
From the measured per-frame costs it projects the time of a 300-layer x 31-frame x 2160x2560
dataset on N CPU workers. Prints JSON and a Markdown table.

    .venv/bin/python benchmarks/bench_distributed.py [--layers 12 --frames 31 --size 1024 --sim-layers 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

PATCH = 64
REPEATS = 1  # raise to take the best of several runs on a quiet machine
FULL = {"layers": 300, "frames": 31, "rows": 2160, "cols": 2560}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss, not inherited over exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_dataset(path: Path, layers: int, frames: int, size: int, sim_layers: int) -> None:
    """A simulated scan in the Bliss layout: ``sim_layers`` simulated layers cycled to ``layers``."""
    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
    from napari_weakbeam.core.simulate import SimulationParams, simulate

    sim = simulate(SimulationParams(rows=size, cols=size, layers=sim_layers, frames=frames, seed=3))
    data, angles = np.asarray(sim.frames), np.asarray(sim.angles)
    write_bliss(
        path,
        (data[k % sim_layers] for k in range(layers)),
        [angles[k % sim_layers] for k in range(layers)],
        2.0 * np.arange(layers),
        pixel_size=0.05,
        two_theta=20.73,
    )


def _classifier():
    import torch

    from napari_weakbeam.core.classification.classifier import build_classifier

    torch.manual_seed(0)
    return build_classifier("wbnet", PATCH).eval()


def _one_process(path: str, workdir: str, threads: int, queue: mp.Queue) -> None:
    """Baseline in a fresh process: classify_scan + reconstruct_scan with no client, ``threads`` torch threads."""
    import torch

    from napari_weakbeam.core.distribution.distributed import _cpu_count
    from napari_weakbeam.core.classification.predictions import load_predictions
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.workflows import classify_scan, reconstruct_scan, run

    torch.set_num_threads(threads)
    scan, clf = open_scan(path), _classifier()
    t0 = time.perf_counter()
    for i in range(scan.n_layers):
        scan.layer(i)
    t_read = time.perf_counter() - t0
    params = ReconstructionParams(method="paper")
    t_cls, t_rec = [], []
    for r in range(REPEATS):
        t0 = time.perf_counter()
        run(classify_scan(scan, clf, Path(workdir) / f"pred_1p{threads}_{r}.h5"))
        t_cls.append(time.perf_counter() - t0)
        pred = load_predictions(Path(workdir) / f"pred_1p{threads}_{r}.h5")
        t0 = time.perf_counter()
        run(reconstruct_scan(scan, pred, params, Path(workdir) / f"vol_1p{threads}_{r}.h5"))
        t_rec.append(time.perf_counter() - t0)
    queue.put({"read_s": t_read, "classify_s": min(t_cls), "reconstruct_s": min(t_rec),
               "peak_mb": [_peak_rss_mb()], "cores_used": min(threads, _cpu_count())})


def one_process(path: Path, workdir: Path, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_one_process, args=(str(path), str(workdir), threads, queue))
    p.start()
    out = queue.get()
    p.join()
    return out


def on_cluster(path: Path, workdir: Path, workers: int, cluster=None, name: str = "") -> dict:
    """Classify and reconstruct on ``cluster()`` (a context manager yielding a Client; default: a
    LocalCluster of ``workers``), timed once all ``workers`` have joined."""
    from napari_weakbeam.core.distribution.distributed import _cpu_count, local_cluster
    from napari_weakbeam.core.classification.predictions import load_predictions
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.workflows import classify_scan, reconstruct_scan, run

    scan, clf = open_scan(str(path)), _classifier()
    t0 = time.perf_counter()
    name = name or f"{workers}w"
    with (cluster or (lambda: local_cluster(workers)))() as client:
        client.wait_for_workers(workers, timeout=300)
        t_start = time.perf_counter() - t0
        client.run(lambda: __import__("torch").get_num_threads())  # workers import torch (steady state)
        t_cls, t_rec = [], []
        for r in range(REPEATS):
            out = workdir / f"pred_{name}_{r}.h5"
            t0 = time.perf_counter()
            run(classify_scan(scan, clf, out, client=client))
            t_cls.append(time.perf_counter() - t0)
            pred = load_predictions(out)
            t0 = time.perf_counter()
            run(reconstruct_scan(scan, pred, ReconstructionParams(method="paper"), workdir / f"vol_{name}_{r}.h5",
                                 client=client))
            t_rec.append(time.perf_counter() - t0)
        peaks = sorted(client.run(_peak_rss_mb).values())
    return {"start_s": t_start, "classify_s": min(t_cls), "reconstruct_s": min(t_rec), "peak_mb": peaks,
            "cores_used": min(_cpu_count(), workers)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--sim-layers", type=int, default=1)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    from napari_weakbeam.core.distribution.distributed import _cpu_count

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="wb_bench_dist_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"scan_{args.layers}x{args.frames}x{args.size}.h5"
    t0 = time.perf_counter()
    if not path.exists():  # reuse the dataset of an earlier run in the same --workdir
        make_dataset(path, args.layers, args.frames, args.size, min(args.sim_layers, args.layers))
    t_make = time.perf_counter() - t0
    n_frames = args.layers * args.frames
    load = {"before": os.getloadavg()[0]}
    runs = {"1 process": one_process(path, workdir, _cpu_count()),
            "1 process, 1 torch thread": one_process(path, workdir, 1)}
    for w in (1, 2):
        runs[f"LocalCluster, {w} worker{'s' * (w > 1)}"] = on_cluster(path, workdir, w)
    load["after"] = os.getloadavg()[0]
    base = runs["1 process"]
    rows = []
    for name, r in runs.items():
        rows.append({
            "run": name,
            "classify_fps": n_frames / r["classify_s"],
            "classify_ratio": base["classify_s"] / r["classify_s"],
            "reconstruct_fps": n_frames / r["reconstruct_s"],
            "reconstruct_ratio": base["reconstruct_s"] / r["reconstruct_s"],
            "peak_mb": [round(m) for m in r["peak_mb"]],
            "start_s": r.get("start_s", 0.0),
        })
    # Projection to a full dataset from the per-frame cost in core-seconds (wall x cores used),
    # the lowest over the runs (the least disturbed by other jobs), scaled by the pixel count.
    cores = _cpu_count()
    px_ratio = FULL["rows"] * FULL["cols"] / args.size**2
    full_frames = FULL["layers"] * FULL["frames"]
    per_frame = {
        "read": base["read_s"] / n_frames * px_ratio,
        "classify_core": min(r["classify_s"] * r["cores_used"] for r in runs.values()) / n_frames * px_ratio,
        "reconstruct_core": min(r["reconstruct_s"] * r["cores_used"] for r in runs.values()) / n_frames * px_ratio,
    }
    proj = {}
    for n in (1, 8, 32, 128):
        proj[n] = {  # hours for the full dataset on n workers of one core (or one GPU)
            "classify_cpu_h": full_frames * per_frame["classify_core"] / n / 3600,
            "classify_gpu_h_read_bound": full_frames * per_frame["read"] / n / 3600,
            "reconstruct_cpu_h": full_frames * per_frame["reconstruct_core"] / n / 3600,
        }
    result = {
        "machine": f"{platform.machine()}, {cores} CPUs, {platform.python_version()}, {platform.platform()}",
        "dataset": f"{args.layers} layers x {args.frames} frames x {args.size}x{args.size} uint16 "
        f"({n_frames} frames, {n_frames * args.size**2 * 2 / 2**20:.0f} MiB), simulated ({t_make:.0f} s)",
        "layer_mib": args.frames * args.size**2 * 2 / 2**20,
        "load_average_1min": load,
        "rows": rows,
        "per_frame_full_size_s": per_frame,
        "projection_full_dataset": proj,
    }
    print(json.dumps(result, indent=1))
    print("\n| run | classify frames/s | ratio | reconstruct frames/s | ratio | peak RSS per process (MiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['classify_fps']:.1f} | {r['classify_ratio']:.2f} | {r['reconstruct_fps']:.1f} | "
              f"{r['reconstruct_ratio']:.2f} | {', '.join(map(str, r['peak_mb']))} |")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
