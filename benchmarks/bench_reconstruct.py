"""Benchmark of the 3D reconstruction: speed and memory on a large scan, accuracy against the
simulator's ground truth (automated, paper, ridge, manual reference; automated vs manual).

Speed: a Bliss file of ``--layers`` layers x ``--frames`` frames x ``--size``^2 (simulated layers
repeated), its predictions file (the classifier's when the shipped model exists, else the true
classes; inference is not timed), then in fresh processes: the baseline (reading every layer, the
I/O floor) and ``weakbeam reconstruct``'s streaming path (one layer in memory, results written per
layer). Time, peak resident memory of each process, ratios to the baseline.

Accuracy: simulated multi-layer scans (``--seeds``), symmetric nearest-neighbour distances in
pixels, the fraction of true points within 3 pixels (recall) and of found points within 3 pixels of
the truth (precision), for each method and for automated vs manual (the paper's figure 5C).

    python benchmarks/bench_reconstruct.py               # full: 100 x 31 x 512^2
    python benchmarks/bench_reconstruct.py --quick       # small, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _machine() -> str:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, {platform.system()}"


def _labeller():
    """(name, function(frames (n, r, c), truth_classes) -> labels): the classifier if shipped."""
    try:
        from napari_weakbeam.core.modelfile import default_model_path, load_default_model

        if default_model_path().exists():
            import torch

            torch.set_num_threads(2)
            clf = load_default_model("cpu")
            return f"classifier ({clf.patch_size} px patches)", clf.patch_size, lambda fr, cls: clf.predict_frames(fr)[0]
    except Exception as exc:  # noqa: BLE001 - report and fall back to the truth
        print(f"classifier unavailable ({exc}); using the true classes", file=sys.stderr)
    return "true classes (no shipped model)", 64, lambda fr, cls: cls


# -- speed ---------------------------------------------------------------------------------------


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited on exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(queue, kind: str, path: str, pred: str, out: str, method: str, n_layers: int = 0) -> None:
    from napari_weakbeam.commands.reconstruct import run_reconstruction  # noqa: F401 (imports first)
    from napari_weakbeam.core.predictions import load_predictions  # noqa: F401
    from napari_weakbeam.core.readers import open_scan

    after_imports = _vm_hwm_mb()

    t0 = time.perf_counter()
    scan = open_scan(path, scans=[f"{i + 1}.1" for i in range(n_layers)] if n_layers else None)
    if kind == "read":
        total = 0.0
        for i in range(scan.n_layers):
            total += float(scan.layer(i)[:, ::64, ::64].sum())
        n_points = 0
    else:
        from napari_weakbeam.commands.reconstruct import run_reconstruction
        from napari_weakbeam.core.predictions import load_predictions
        from napari_weakbeam.core.reconstruct import ReconstructionParams

        labels = load_predictions(pred)
        if n_layers:  # the first layers only: same per-layer work, smaller dataset
            labels.label, labels.angles = labels.label[:n_layers], labels.angles[:n_layers]
        rec = run_reconstruction(scan, labels, ReconstructionParams(method=method), Path(out), quiet=True)
        n_points = len(rec.points_um)
    dt = time.perf_counter() - t0
    peak = _vm_hwm_mb()
    queue.put({"seconds": dt, "peak_rss_mb": peak, "imports_rss_mb": after_imports,
               "work_rss_mb": peak - after_imports, "points": n_points})


def _in_child(*args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,) + args)
    p.start()
    res = q.get()
    p.join()
    return res


def bench_speed(layers: int, frames: int, size: int, workdir: Path, methods: list[str]) -> dict:
    from napari_weakbeam.core.bliss_writer import write_bliss
    from napari_weakbeam.core.predictions import PredictionWriter
    from napari_weakbeam.core.readers import open_scan
    from napari_weakbeam.core.simulate import SimulationParams, simulate

    t = time.perf_counter()
    k = min(4, layers)
    sim = simulate(SimulationParams(rows=size, cols=size, layers=k, frames=frames, seed=11))
    t_sim = time.perf_counter() - t
    name, patch, label = _labeller()
    cls = sim.truth.classes(patch)
    labels = [label(sim.frames[i], cls[i]) for i in range(k)]
    path = workdir / "big.h5"
    t = time.perf_counter()
    write_bliss(path, (sim.frames[i % k] for i in range(layers)), [sim.angles[i % k] for i in range(layers)],
                2.0 * np.arange(layers), pixel_size=sim.params.pixel_size_um, two_theta=sim.params.two_theta_deg)
    scan = open_scan(path)
    pred = workdir / "pred.h5"
    with PredictionWriter(pred, scan, patch) as w:
        for i in range(layers):
            w.write_layer(i, labels[i % k], np.ones(labels[i % k].shape, np.float32))
    t_write = time.perf_counter() - t
    del sim
    layer_mb = frames * size * size * 2 / 2**20
    res = {"layers": layers, "frames": frames, "size": size, "labels": name, "dataset_gb": layers * layer_mb / 1024,
           "layer_mb": layer_mb, "simulate_s": t_sim, "write_s": t_write}
    res["read"] = _in_child("read", str(path), str(pred), "", "")
    for m in methods:
        out = workdir / f"vol_{m}.h5"
        r = _in_child("reconstruct", str(path), str(pred), str(out), m)
        r["ratio_to_read"] = r["seconds"] / res["read"]["seconds"]
        r["out_mb"] = out.stat().st_size / 2**20
        res[m] = r
        out.unlink()
    # memory does not grow with the dataset: the same method on a quarter of the layers
    quarter = max(1, layers // 4)
    out = workdir / "vol_quarter.h5"
    r = _in_child("reconstruct", str(path), str(pred), str(out), methods[0], quarter)
    r["layers"] = quarter
    res[f"{methods[0]}_{quarter}_layers"] = r
    out.unlink()
    path.unlink()
    pred.unlink()
    return res


# -- accuracy ------------------------------------------------------------------------------------


def bench_accuracy(seeds: list[int], layers: int, frames: int, size: int, workdir: Path) -> dict:
    from napari_weakbeam.core.compare import compare_points
    from napari_weakbeam.core.readers import open_scan
    from napari_weakbeam.core.reconstruct import ReconstructionParams, manual_reference, reconstruct_scan
    from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation

    name, patch, label = _labeller()
    rows: dict[str, list[dict]] = {}

    class Labels:
        def __init__(self, label, patch_size):
            self.label, self.patch_size = label, patch_size

    def add(key: str, a: np.ndarray, b: np.ndarray, px: float, seconds: float | None = None) -> None:
        s, _, _ = compare_points(a, b, 3 * px)
        rows.setdefault(key, []).append({
            "median_px": s.median / px, "mean_px": s.mean / px, "p90_px": s.p90 / px,
            "recall_3px": s.within_b, "precision_3px": s.within_a, "n_found": s.n_a, "n_truth": s.n_b,
            "seconds": seconds,
        })

    for seed in seeds:
        path = workdir / f"acc{seed}.h5"
        write_simulation(path, simulate(SimulationParams(rows=size, cols=size, layers=layers, frames=frames, seed=seed)))
        scan, truth = open_scan(path), load_truth(path)
        px = scan.pixel_size
        cls = truth.classes(patch)
        pred = Labels(np.stack([label(scan.layer(i), cls[i]) for i in range(scan.n_layers)]), patch)
        true_pred = Labels(cls, patch)
        recs = {}
        for method in ("adaptive", "paper", "ridge"):
            t = time.perf_counter()
            recs[method] = reconstruct_scan(scan, pred, ReconstructionParams(method=method))
            add(f"{method} vs truth", recs[method].points_um, truth.points_um, px, time.perf_counter() - t)
        add("adaptive (true classes) vs truth", reconstruct_scan(scan, true_pred, ReconstructionParams()).points_um,
            truth.points_um, px)
        t = time.perf_counter()
        manual = manual_reference(scan, ReconstructionParams())
        add("manual vs truth", manual.points_um, truth.points_um, px, time.perf_counter() - t)
        add("adaptive vs manual", recs["adaptive"].points_um, manual.points_um, px)
        path.unlink()
    summary = {}
    for key, vals in rows.items():
        summary[key] = {k: float(np.mean([v[k] for v in vals])) for k in vals[0] if vals[0][k] is not None}
        summary[key]["min_recall_3px"] = float(min(v["recall_3px"] for v in vals))
        summary[key]["max_median_px"] = float(max(v["median_px"] for v in vals))
    return {"labels": name, "seeds": seeds, "layers": layers, "frames": frames, "size": size, "per_seed": rows,
            "mean": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--quick", action="store_true", help="10 layers of 256^2, one seed")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    args = ap.parse_args()
    if args.quick:
        args.layers, args.size, args.seeds = 10, 256, "0"
    result = {"machine": _machine()}
    with tempfile.TemporaryDirectory(prefix="bench_recon_") as tmp:
        work = Path(tmp)
        if not args.skip_speed:
            result["speed"] = bench_speed(args.layers, args.frames, args.size, work, ["adaptive", "paper"])
            print(json.dumps(result["speed"], indent=1), flush=True)
        if not args.skip_accuracy:
            seeds = [int(s) for s in args.seeds.split(",")]
            result["accuracy"] = bench_accuracy(seeds, 6, 31, 256, work)
            print(json.dumps(result["accuracy"]["mean"], indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
