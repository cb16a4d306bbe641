#!/usr/bin/env python
"""Classifier speed, the architectures side by side, measured in one run on this machine.

Inference: patches per second and seconds for one 2048 x 2048 uint16 frame (normalisation and
padding included) -- scanwb and wbnet run fully convolutionally over the frame, `paper` classifies
batches of 64 x 64 patches (its frame time is measured on a 512 x 512 frame and scaled by area).
End to end: `classify_layer` on a real Bliss file of 2048 x 2048 frames, reading included; the
scan-aware model reads the layer's rocking-curve context first (one extra pass over the layer).
Training: seconds for 50 epochs on 2,000 labelled 64 x 64 patches (simulated frames); for `paper`
one epoch is timed and multiplied by 50. Ratios are against `paper` in the same run.

    .venv/bin/python benchmarks/bench_classifier_speed.py [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from train_single_frame_model import simulated_set  # noqa: E402

from napari_weakbeam.core.classification.classifier import build_classifier  # noqa: E402
from napari_weakbeam.core.classification.training import TrainConfig, Trainer  # noqa: E402

P = 64


def timed(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def inference(device: str, repeat: int) -> dict:
    rng = np.random.default_rng(0)
    big = rng.poisson(300, (2048, 2048)).astype(np.uint16)
    small = big[:512, :512].copy()
    out = {}
    for arch in ("scanwb", "wbnet", "paper"):
        clf = build_classifier(arch, P).to(device).eval()
        if arch != "paper":
            t = timed(lambda: clf.predict_frame(big), repeat)
        else:
            t = timed(lambda: clf.predict_frame(small), max(1, repeat // 2)) * (2048 * 2048) / (512 * 512)
        out[arch] = {"frame_2048_s": t, "patches_per_s": (2048 // P) ** 2 / t, "parameters": clf.n_parameters}
    out["wbnet_vs_paper_throughput"] = out["wbnet"]["patches_per_s"] / out["paper"]["patches_per_s"]
    out["scanwb_vs_paper_throughput"] = out["scanwb"]["patches_per_s"] / out["paper"]["patches_per_s"]
    out["end_to_end"] = end_to_end(device, big, out["paper"]["frame_2048_s"])
    return out


def end_to_end(device: str, big: np.ndarray, paper_frame_s: float, n: int = 8) -> dict:
    """Frames per second of classify_layer on a Bliss file of ``n`` 2048 x 2048 frames (reads included)."""
    import tempfile

    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
    from napari_weakbeam.core.classification.predictions import classify_layer
    from napari_weakbeam.core.scanfiles.readers import open_scan

    level = 100 + 3000 * np.exp(-0.5 * (np.arange(n) - n / 2) ** 2 / 2)
    frames = np.stack([(big.astype(np.float64) * lv / 300).astype(np.uint16) for lv in level])
    out = {"frames": n}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scan.h5"
        write_bliss(path, [frames], [np.linspace(-0.02, 0.02, n)], [0.0])
        scan = open_scan(str(path))
        for arch in ("scanwb", "wbnet"):
            clf = build_classifier(arch, P).to(device).eval()
            t = timed(lambda: classify_layer(scan, 0, clf), 2)
            out[arch] = {"layer_s": t, "frames_per_s": n / t}
        out["scanwb_vs_paper_frames_per_s"] = out["scanwb"]["frames_per_s"] * paper_frame_s
        out["scan_context_cost_vs_wbnet"] = out["scanwb"]["layer_s"] / out["wbnet"]["layer_s"]
    return out


def training(device: str, quick: bool) -> dict:
    frames, classes, _ = simulated_set([901], P, rows=512, cols=512, frames=60 if not quick else 8)
    keep = int(np.searchsorted(np.cumsum((classes > 0).sum(axis=(1, 2))), 2000)) + 1  # ~2,000 labelled patches
    frames, classes = frames[:keep], classes[:keep]
    n = int((classes > 0).sum())
    out = {"patches": n}
    Trainer(frames, classes, TrainConfig(patch_size=P, epochs=1, val_fraction=0.0, device=device)).train()  # warm-up (lazy imports)
    for arch, epochs in (("wbnet", 50 if not quick else 3), ("paper", 1)):
        cfg = TrainConfig(arch=arch, patch_size=P, epochs=epochs, val_fraction=0.0, patience=10**6, seed=0, device=device)
        t0 = time.perf_counter()
        Trainer(frames, classes, cfg).train()
        dt = time.perf_counter() - t0
        out[arch] = {"epochs_timed": epochs, "seconds_for_50_epochs": dt * 50 / epochs}
    out["wbnet_vs_paper_training_speed"] = out["paper"]["seconds_for_50_epochs"] / out["wbnet"]["seconds_for_50_epochs"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results_classifier_speed.json"))
    args = ap.parse_args()
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "load_average_at_start": os.getloadavg()[0]}
    for th in args.threads:
        torch.set_num_threads(th)
        result[f"cpu_{th}_threads"] = {"inference": inference("cpu", 2 if args.quick else 5),
                                       "training": training("cpu", args.quick)}
    if torch.cuda.is_available():
        result["cuda"] = {"device": torch.cuda.get_device_name(0), "inference": inference("cuda", 10),
                          "training": training("cuda", args.quick)}
    result["load_average_at_end"] = os.getloadavg()[0]
    text = json.dumps(result, indent=1)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
