#!/usr/bin/env python
"""Classifier accuracy on held-out simulated scans (seeds and settings never used in training).

Rows: the shipped default model (wbnet), wbnet and the published `paper` architecture trained the
same way on the same small training set (same normalisation, augmentation, class balancing, frame
split, early stopping, epochs), and the rocking-curve baseline (core.rocking_aid.suggest_labels,
which needs the whole rocking curve). Metrics on WB/SB patches (ambiguous 1 < u < 2 excluded):
accuracy, balanced accuracy, confusion matrix, accuracy per u bin. Then generalisation: wbnet
trained on ONE simulator setting and tested on others (patch scale, noise, mosaicity).

    .venv/bin/python benchmarks/bench_classifier_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from train_default_model import sample_params, simulated_set  # noqa: E402

from napari_weakbeam.core.modelfile import load_default_model  # noqa: E402
from napari_weakbeam.core.simulate import simulate  # noqa: E402
from napari_weakbeam.core.training import TrainConfig, Trainer  # noqa: E402

P = 64
U_BINS = [(0.0, 0.5), (0.5, 1.0), (2.0, 3.0), (3.0, 5.0), (5.0, np.inf)]


def metrics(pred: np.ndarray, truth: np.ndarray, u: np.ndarray) -> dict:
    """WB/SB metrics; ``pred`` 0 (no answer) counts as wrong in accuracy and balanced accuracy."""
    m = truth > 0
    p, t, uu = pred[m], truth[m], u[m]
    recall = {k: float((p[t == k] == k).mean()) for k in (1, 2)}
    conf = [[int(((t == a) & (p == b)).sum()) for b in (1, 2, 0)] for a in (1, 2)]
    per_u = {}
    for lo, hi in U_BINS:
        sel = (uu >= lo) & (uu <= hi if hi == 1.0 else uu < hi)
        per_u[f"{lo:g}-{hi:g}"] = [float((p[sel] == t[sel]).mean()) if sel.any() else None, int(sel.sum())]
    return {"accuracy": float((p == t).mean()), "balanced_accuracy": float(np.mean(list(recall.values()))),
            "recall_wb": recall[1], "recall_sb": recall[2], "answered": float((p > 0).mean()),
            "confusion_true_wb_sb__pred_wb_sb_none": conf, "accuracy_per_u": per_u, "patches": int(m.sum())}


def predict(clf, frames: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    label, _ = clf.predict_frames(frames)
    return label, time.perf_counter() - t0


_HISTORY: dict[int, list] = {}


def clf_history(clf) -> list:
    return _HISTORY.get(id(clf), [])


def train(arch: str, frames, classes, epochs: int, seed: int = 0):
    cfg = TrainConfig(arch=arch, patch_size=P, epochs=epochs, seed=seed, device="cpu", val_fraction=0.15,
                      patience=epochs, lr=3e-3 if arch == "wbnet" else 1e-3)
    t0 = time.perf_counter()
    trainer = Trainer(frames, classes, cfg)
    clf = trainer.train()
    _HISTORY[id(clf)] = trainer.history
    print(f"trained {arch}: {len(trainer.history)} epochs, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return clf, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer scans and epochs (smoke test)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20, help="epochs for both architectures on the small training set")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results_classifier_accuracy.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    q = args.quick
    result: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                               f"torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()[0]:.1f}"}
    t0 = time.perf_counter()

    # held-out scans: seeds >= 10001 (training uses 1..N), settings drawn independently
    test_seeds = list(range(10001, 10004 if q else 10013))
    tf, tc, tu = simulated_set(test_seeds, P)
    result["held_out"] = {"scans": len(test_seeds), "frames": int(len(tf)),
                          "wb": int((tc == 1).sum()), "sb": int((tc == 2).sum()), "ambiguous": int((tc == 0).sum())}
    rows = {}

    default = load_default_model()
    lab, dt = predict(default, tf)
    rows["default model (wbnet, shipped)"] = {**metrics(lab, tc, tu), "predict_s": dt}

    # the same small training set and recipe for both architectures
    train_seeds = list(range(501, 503 if q else 504))
    f, c, _ = simulated_set(train_seeds, P)
    ep = 2 if q else args.epochs
    for arch in ("wbnet", "paper"):
        clf, tt = train(arch, f, c, ep)
        lab, dt = predict(clf, tf)
        rows[f"{arch}, {ep} epochs on {int((c > 0).sum())} patches"] = {
            **metrics(lab, tc, tu), "train_s": tt, "predict_s": dt, "parameters": clf.n_parameters,
            "best_epoch_by_validation": int(np.argmin([h["monitor_loss"] for h in clf_history(clf)]) + 1) if clf_history(clf) else None}

    try:
        from napari_weakbeam.core.rocking_aid import suggest_labels

        per_scan = len(tf) // len(test_seeds)
        sims_angles = [simulate(sample_params(s)).angles[0] for s in test_seeds]
        lab = np.concatenate([suggest_labels(tf[i * per_scan:(i + 1) * per_scan], sims_angles[i], P)
                              for i in range(len(test_seeds))])
        rows["rocking-curve baseline (whole curve, no training)"] = metrics(lab, tc, tu)
    except ImportError:
        rows["rocking-curve baseline"] = "core.rocking_aid not available"
    result["held_out_results"] = rows

    # generalisation: train on one fixed setting, test on others
    base = dict(fwhm_mrad=0.15, mosaicity_mrad=0.06, exposure=2000.0, pixel_size_um=0.05, walls=2, density_um2=0.015,
                dark_adu=100.0, gain_adu=2.14, read_noise_adu=3.0, saturation=0.8, fringe_contrast=0.2, psf_px=0.8,
                fwhm_variation=0.1, mosaic_length_um=4.0)
    settings = {
        "same setting": {},
        "other patch scale (pixel 0.035 um)": {"pixel_size_um": 0.035},
        "other patch scale (pixel 0.075 um)": {"pixel_size_um": 0.075},
        "noisier (exposure 300 photons)": {"exposure": 300.0},
        "higher mosaicity (0.12 mrad)": {"mosaicity_mrad": 0.12},
        "wider rocking curve (0.3 mrad)": {"fwhm_mrad": 0.3},
    }
    gf, gc, _ = simulated_set(range(601, 603 if q else 605), P, **base)
    gclf, gt = train("wbnet", gf, gc, 6 if q else 30)
    gen = {"train": f"wbnet on {int((gc > 0).sum())} patches of one setting, {gt:.0f} s"}
    for name, change in settings.items():
        sf, sc, su = simulated_set(range(20001, 20002 if q else 20004), P, **{**base, **change})
        gen[name] = {"wbnet trained on one setting": metrics(predict(gclf, sf)[0], sc, su)["balanced_accuracy"],
                     "default model": metrics(predict(default, sf)[0], sc, su)["balanced_accuracy"]}
    result["generalisation_balanced_accuracy"] = gen
    result["total_s"] = time.perf_counter() - t0
    text = json.dumps(result, indent=1)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
