"""Streaming classification: peak memory of `weakbeam classify` versus the size of the dataset.

Writes two Bliss HDF5 datasets of 2048x2048 uint16 frames layer by layer (never the whole dataset in
memory), a small one and one several times larger, then runs `weakbeam classify` on each in a fresh
subprocess and reads that process's peak resident memory (VmHWM, see ``_peak_rss_mb``).
As a baseline measured in the same run, a subprocess classifies the small dataset the naive way
(the whole scan read into memory first, then classified). Streaming memory should stay flat as the
dataset grows and sit well below the dataset size.

    .venv/bin/python benchmarks/bench_classify_memory.py [--small-layers 2 --large-layers 12
        --frames 31 --size 2048 --workdir /tmp/wb_bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = "--child"


def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    """Peak resident memory of this process image (VmHWM).

    Not ``getrusage().ru_maxrss``: Linux keeps ru_maxrss across exec, so a child forked from this
    benchmark (which has held a layer of frames while writing the data) would report the parent's
    peak. VmHWM belongs to the exec'd image only (ru_maxrss is the fallback without /proc).
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def write_dataset(path: Path, n_layers: int, n_frames: int, size: int, seed: int = 0) -> int:
    """A rocking scan in the Bliss layout, generated and written one layer at a time; returns bytes."""
    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss

    rng = np.random.default_rng(seed)
    phi = np.linspace(-0.06, 0.06, n_frames)
    yy, xx = np.mgrid[:size, :size]
    shift = 0.02 * (xx / size - 0.5)  # the local peak moves across the field (mosaicity)
    noise = rng.integers(0, 8, (4, size, size), dtype=np.uint16)

    def layers():
        for k in range(n_layers):
            out = np.empty((n_frames, size, size), np.uint16)
            for j, p in enumerate(phi):
                level = 100 + 2500 * np.exp(-0.5 * ((p - shift) / 0.01) ** 2)
                out[j] = level.astype(np.uint16) + noise[(j + k) % 4]
            yield out

    write_bliss(path, layers(), [phi] * n_layers, np.arange(n_layers) * 2.0, pixel_size=0.05)
    return n_layers * n_frames * size * size * 2


def child(args: argparse.Namespace) -> None:
    """Run in a fresh process: classify ``args.data`` one way and print memory and time as JSON."""
    import torch

    torch.set_num_threads(2)
    from napari_weakbeam.cli import main
    from napari_weakbeam.core.classification.modelfile import load_model
    from napari_weakbeam.core.scanfiles.readers import open_scan

    load_model(args.model)  # import everything first, so "after imports" is comparable
    rss_imports = _rss_now_mb()
    t0 = time.perf_counter()
    if args.mode == "stream":
        rc = main(["classify", args.data, "--out", args.out, "--model", args.model, "--device", "cpu", "-q"])
        assert rc == 0, rc
    else:  # naive baseline: the whole dataset in memory, then classified
        scan = open_scan(args.data)
        clf = load_model(args.model)
        data = np.asarray(scan.frames.compute())
        for i in range(data.shape[0]):
            clf.predict_frames(data[i])
    wall = time.perf_counter() - t0
    print(json.dumps({"rss_imports_mb": rss_imports, "peak_rss_mb": _peak_rss_mb(), "wall_s": wall}))


def run_child(mode: str, data: Path, model: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, CHILD, mode, str(data), str(model), str(out)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small-layers", type=int, default=2)
    ap.add_argument("--large-layers", type=int, default=12)
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", default=None, help="where to write the datasets (deleted afterwards)")
    args = ap.parse_args()

    import torch

    from napari_weakbeam.core.classification.classifier import build_classifier
    from napari_weakbeam.core.classification.modelfile import save_model

    work = Path(args.workdir or tempfile.mkdtemp(prefix="wb_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        torch.manual_seed(0)
        model = work / "model.pt"
        save_model(model, build_classifier("wbnet", 64))  # the default architecture; weights do not matter
        rows = []
        for name, layers in (("small", args.small_layers), ("large", args.large_layers)):
            data = work / f"{name}.h5"
            t0 = time.perf_counter()
            nbytes = write_dataset(data, layers, args.frames, args.size)
            t_write = time.perf_counter() - t0
            r = run_child("stream", data, model, work / f"{name}_pred.h5")
            r.update(name=name, mode="stream", layers=layers, data_mb=nbytes / 2**20, write_s=t_write)
            rows.append(r)
            if name == "small":
                b = run_child("inmemory", data, model, work / "unused.h5")
                b.update(name=name, mode="in-memory baseline", layers=layers, data_mb=nbytes / 2**20)
                rows.append(b)
            else:
                data.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
          f"torch {torch.__version__}, 2 threads")
    print(f"frames {args.size}x{args.size} uint16, {args.frames} frames per layer")
    print("| dataset | mode | layers | data (MB) | RSS after imports (MB) | peak RSS (MB) | "
          "peak - imports (MB) | time (s) | frames/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        frames = r["layers"] * args.frames
        print(f"| {r['name']} | {r['mode']} | {r['layers']} | {r['data_mb']:.0f} | {r['rss_imports_mb']:.0f} | "
              f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['rss_imports_mb']:.0f} | {r['wall_s']:.1f} | "
              f"{frames / r['wall_s']:.1f} |")
    small, base, large = rows
    print(f"large/small data size: {large['data_mb'] / small['data_mb']:.1f}x; "
          f"large/small streaming peak RSS: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x; "
          f"streaming/in-memory peak RSS on the small dataset: {small['peak_rss_mb'] / base['peak_rss_mb']:.2f}x; "
          f"large dataset / streaming peak RSS: {large['data_mb'] / large['peak_rss_mb']:.1f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        ns = argparse.Namespace(mode=sys.argv[2], data=sys.argv[3], model=sys.argv[4], out=sys.argv[5])
        child(ns)
    else:
        main()
