"""Rocking-curve labelling aid against the simulator's ground truth, with simple baselines.

For several simulated scans (seeds and settings), the aid's suggestions (core.classification.rocking_aid) are
compared with the true per-patch classes (u <= 1 SB, u >= 2 WB; ambiguous patches excluded). A
patch the aid leaves without a suggestion counts as wrong. Baselines measured in the same run on the
same patches: the frame-position rule of Benhadjira/dfxm-bv (first and last 20 % of the frames of a
layer are WB, the rest SB) and the majority class.

    .venv/bin/python benchmarks/bench_rocking_aid.py [--size 256 --layers 2 --patch-size 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = {
    "default": {},
    "high mosaicity": {"mosaicity_mrad": 0.12},
    "dense dislocations": {"density_um2": 0.05, "walls": 4},
    "low exposure (noisy)": {"exposure": 200.0},
    "broad curve, 15 frames": {"fwhm_mrad": 0.3, "frames": 15},
}


def frame_rule(angles: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """First and last 20 % of the frames of each layer WB (1), the rest SB (2)."""
    n_layers, n = angles.shape
    k = max(1, int(round(0.2 * n)))
    lab = np.full((n_layers, n) + grid, 2, np.uint8)
    lab[:, :k] = 1
    lab[:, n - k :] = 1
    return lab


def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Balanced accuracy (no suggestion = wrong), recalls, coverage, precision where suggested."""
    rec = [float(np.mean(pred[truth == k] == k)) if np.any(truth == k) else float("nan") for k in (1, 2)]
    m = truth > 0
    given = m & (pred > 0)
    return {
        "balanced": float(np.nanmean(rec)),
        "wb_recall": rec[0],
        "sb_recall": rec[1],
        "coverage": float(np.mean(pred[m] > 0)),
        "precision": float(np.mean(pred[given] == truth[given])) if given.any() else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--patch-size", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 202])
    args = ap.parse_args()

    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.classification.rocking_aid import suggest_scan_labels
    from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation

    P = args.patch_size
    rows = []
    u_bins = np.array([0, 0.5, 1, 2, 3, 5, np.inf])
    bin_hits = np.zeros(len(u_bins) - 1)
    bin_total = np.zeros(len(u_bins) - 1)
    confusion = np.zeros((2, 3), np.int64)  # truth WB/SB x suggested none/WB/SB
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in SETTINGS.items():
            for seed in args.seeds:
                params = SimulationParams(rows=args.size, cols=args.size, layers=args.layers, seed=seed, **extra)
                path = Path(tmp) / f"sim_{seed}.h5"
                write_simulation(path, simulate(params))
                scan = open_scan(str(path))
                truth = load_truth(path)
                cls, u = truth.classes(P), truth.u(P)
                t0 = time.perf_counter()
                pred = suggest_scan_labels(scan, P)
                dt = (time.perf_counter() - t0) / scan.n_layers
                base = frame_rule(scan.angles, cls.shape[2:])
                majority = np.full_like(cls, 1 if np.sum(cls == 1) >= np.sum(cls == 2) else 2)
                rows.append((name, seed, scores(pred, cls), scores(base, cls), scores(majority, cls), dt,
                             scan.n_frames))
                for k in (1, 2):
                    confusion[k - 1] += np.bincount(pred[cls == k], minlength=3)[:3]
                valid = np.isfinite(u) & (cls > 0)
                idx = np.digitize(u[valid], u_bins) - 1
                ok = pred[valid] == cls[valid]
                for b in range(len(u_bins) - 1):
                    bin_total[b] += np.sum(idx == b)
                    bin_hits[b] += np.sum(ok[idx == b])

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"simulated scans {args.size}x{args.size}, {args.layers} layers, patch size {P}, seeds {args.seeds}")
    print("| setting | seed | frames | aid balanced acc | aid coverage | aid precision | frame-rule balanced acc | "
          "majority balanced acc | aid time per layer (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, seed, a, b, m, dt, n in rows:
        print(f"| {name} | {seed} | {n} | {100 * a['balanced']:.1f} % | {100 * a['coverage']:.1f} % | "
              f"{100 * a['precision']:.2f} % | {100 * b['balanced']:.1f} % | {100 * m['balanced']:.1f} % | {dt:.3f} |")
    mean_a = np.mean([r[2]["balanced"] for r in rows])
    mean_b = np.mean([r[3]["balanced"] for r in rows])
    print(f"mean balanced accuracy: aid {100 * mean_a:.1f} %, frame rule {100 * mean_b:.1f} %, "
          f"error ratio frame rule / aid {(1 - mean_b) / max(1 - mean_a, 1e-9):.1f}x")
    print("confusion (rows: true WB, true SB; columns: no suggestion, WB, SB):")
    print(confusion)
    print("| true u | " + " | ".join(f"[{u_bins[b]:g}, {u_bins[b + 1]:g})" for b in range(len(u_bins) - 1)) + " |")
    print("|---|" + "---|" * (len(u_bins) - 1))
    print("| aid accuracy | " + " | ".join(
        f"{100 * bin_hits[b] / bin_total[b]:.1f} % (n={int(bin_total[b])})" if bin_total[b] else "-"
        for b in range(len(u_bins) - 1)) + " |")


if __name__ == "__main__":
    main()
