#!/usr/bin/env python
"""Classifier accuracy on the fixed benchmark set of both generators, side by side with baselines.

Scans: core.simulate.benchmark_set, eight hard conditions (isolated lines, dense network, cell walls,
85 % beam fall-off, 2,500 ADU floor, ~100 photons, a short rocking range, a grain covering 40 % of
the field) from our simulator and from dfxm-geo (a generator we did not tune). Seeds never used in
training. Rows, all on the same patches (truth WB where u >= 2, SB where u <= 1; ambiguous and
off-grain patches excluded; "no answer" counts as wrong):

* the shipped scan-aware default model;
* the single-frame model of version 0.1 (``--model single-frame``);
* the brightness rule: WB when (patch mean - dark) / (the scan's 99.9th percentile - dark) < 0.15,
  dark the scan's 1st percentile;
* the rocking-curve aid (core.classification.rocking_aid, Suggest), which leaves ambiguous frames unlabelled;
* the physics self-check of the default model (share of consistent patches; needs no labels).

Cross-generator (with ``--ours-model`` and ``--dfxmgeo-model``, models trained on one generator
only by scripts/train_default_model.py): each applied to the other generator's scans, before and
after ``adapt`` (fine-tuning on the scan's own confident rocking-curve labels).

    .venv/bin/python benchmarks/bench_classifier_accuracy.py --data /tmp/wb-bench [--ours-model A.pt --dfxmgeo-model B.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from napari_weakbeam.core.classification.modelfile import load_default_model, load_model
from napari_weakbeam.core.patches import patch_means
from napari_weakbeam.core.classification.predictions import layer_context
from napari_weakbeam.workflows import classify_scan, run
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.classification.rocking_aid import suggest_from_context
from napari_weakbeam.core.classification.self_check import SelfCheck
from napari_weakbeam.core.simulate import load_truth
from napari_weakbeam.core.simulate.benchmark_set import make_benchmark_set


def balanced(pred: np.ndarray, truth: np.ndarray) -> dict:
    m = truth > 0
    p, t = pred[m], truth[m]
    rec = {k: float((p[t == k] == k).mean()) if (t == k).any() else float("nan") for k in (1, 2)}
    return {"balanced_accuracy": float(np.nanmean(list(rec.values()))), "recall_wb": rec[1], "recall_sb": rec[2],
            "patches": int(m.sum())}


def brightness_rule(scan, layer: int, p: int) -> np.ndarray:
    """The five-line rule of issue 9, on the same patch grid."""
    frames = np.asarray(scan.layer(layer), np.float64)
    dark, bright = np.percentile(frames, [1, 99.9])
    rel = (patch_means(frames, p) - dark) / max(bright - dark, 1e-9)
    return np.where(rel < 0.15, 1, 2).astype(np.uint8)


def evaluate(path: Path, models: dict, p: int) -> dict:
    scan = open_scan(str(path))
    truth = load_truth(path).classes(p)
    row: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, clf in models.items():
            t0 = time.perf_counter()
            checks: list = []
            with_check = name == "default (scan-aware)"
            pred = run(classify_scan(scan, clf.with_patch_size(p), self_check=with_check),
                       lambda ev: ev.what == "layers" and ev.payload.check is not None and checks.append(ev.payload.check))
            row[name] = balanced(pred.label, truth)
            row[name]["seconds"] = round(time.perf_counter() - t0, 2)
            if with_check:
                check = sum(checks, SelfCheck())
                row["self_check_consistent"] = round(check.consistent, 4)
                row["self_check_patches"] = check.checked
        row["brightness rule"] = balanced(np.stack([brightness_rule(scan, i, p) for i in range(scan.n_layers)]), truth)
        aid = np.stack([suggest_from_context(layer_context(scan, i, p, keep=False)[0]) for i in range(scan.n_layers)])
        row["rocking-curve aid"] = balanced(aid, truth)
    return row


def adapted(path: Path, clf, p: int, epochs: int) -> dict:
    from napari_weakbeam.core.classification.training import TrainConfig
    from napari_weakbeam.workflows import adapt

    scan = open_scan(str(path))
    truth = load_truth(path).classes(p)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = run(adapt(scan, TrainConfig(start=clf.with_patch_size(p), patch_size=p, epochs=epochs, device="cpu")))
        lab = run(classify_scan(scan, new)).label
    out = balanced(lab, truth)
    out["adapt_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder for the benchmark scans (made when missing)")
    ap.add_argument("--patch-size", type=int, default=64)
    ap.add_argument("--generators", default="ours,dfxmgeo")
    ap.add_argument("--ours-model", type=Path, help="a model trained on our simulator only (cross-generator rows)")
    ap.add_argument("--dfxmgeo-model", type=Path, help="a model trained on dfxm-geo only (cross-generator rows)")
    ap.add_argument("--adapt-epochs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results_classifier_accuracy.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    p = args.patch_size
    models = {"default (scan-aware)": load_default_model(), "single-frame (v0.1)": load_model("single-frame")}
    result: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
                               f"{torch.__version__}, {torch.get_num_threads()} threads, no GPU",
                    "patch_size": p, "scans": {}}
    files = {g: make_benchmark_set(args.data, g) for g in args.generators.split(",")}
    for gen, paths in files.items():
        for path in paths:
            row = evaluate(path, models, p)
            result["scans"][path.stem] = row
            print(path.stem, {k: (v["balanced_accuracy"] if isinstance(v, dict) else v) for k, v in row.items()},
                  flush=True)
    cross = {}
    for trained, model_path, tested in (("ours", args.ours_model, "dfxmgeo"), ("dfxmgeo", args.dfxmgeo_model, "ours")):
        if model_path is None or tested not in files:
            continue
        clf = load_model(model_path)
        for path in files[tested]:
            before = evaluate(path, {"model": clf}, p)["model"]
            after = adapted(path, clf, p, args.adapt_epochs)
            cross[f"trained on {trained} -> {path.stem}"] = {"before": before, "after adapt": after}
            print("cross", trained, path.stem, round(before["balanced_accuracy"], 4), "->",
                  round(after["balanced_accuracy"], 4), flush=True)
    result["cross_generator"] = cross
    result["total_s"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result))
    return 0


def table(result: dict) -> str:
    """The markdown table of docs/benchmarks.md."""
    cols = ["default (scan-aware)", "single-frame (v0.1)", "brightness rule", "rocking-curve aid"]
    lines = ["| scan | " + " | ".join(cols) + " | self-check |", "|---" * (len(cols) + 2) + "|"]
    for name, row in result["scans"].items():
        cells = [f"{row[c]['balanced_accuracy']:.3f}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('self_check_consistent', float('nan')):.3f} |")
    if result.get("cross_generator"):
        lines += ["", "| trained on -> tested on | before adapt | after adapt |", "|---|---|---|"]
        for name, r in result["cross_generator"].items():
            lines.append(f"| {name.replace('trained on ', '')} | {r['before']['balanced_accuracy']:.3f} | "
                         f"{r['after adapt']['balanced_accuracy']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
