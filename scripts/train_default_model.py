#!/usr/bin/env python
"""Train the scan-aware default classifier shipped as src/napari_weakbeam/models/scanwb_default.pt.

Training data are randomised labelled scans from two generators (napari_weakbeam.core.simulate:
our physics simulator and dfxm-geo), made with ``make_dataset`` into a folder and reused when
already there. Each layer's scan context (core.classification.scan_context.LayerContext) is taken from its own
frames; in a share of the layers only a prefix or suffix of the frames is "acquired" (a partial
rocking curve, as during a scan), and only those frames are trained on. Labels are the generators'
ground truth (WB where u >= 2, SB where u <= 1, ambiguous patches and patches off the grain left
unlabelled).

    .venv/bin/python scripts/train_default_model.py --data /tmp/wb-train     # ~6 min on 2 idle cores (+ ~3 min to make the scans)

Seeds: training sets use ``make_dataset(..., seed=TRAIN_SEED)``; benchmarks use the fixed
benchmark set (core.simulate.benchmark_set) and held-out sets with other seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "napari_weakbeam" / "models" / "scanwb_default.pt"
TRAIN_SEED = 1


def layer_examples(path: Path, patch_size: int, rng: np.random.Generator, *, partial_share: float = 0.3,
                   max_frames: int = 24, max_layers: int = 2):
    """Training examples of one labelled scan file: lists of frames, labels, features, levels."""
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.classification.scan_context import LayerContext
    from napari_weakbeam.core.simulate import load_truth

    scan = open_scan(str(path))
    truth = load_truth(path)
    classes = truth.classes(patch_size)
    out = ([], [], [], [])
    for layer in range(min(scan.n_layers, max_layers)):
        frames = np.asarray(scan.layer(layer))
        angles = np.array(scan.angles[layer], np.float64)
        n = len(angles)
        acquired = np.isfinite(angles)
        if rng.random() < partial_share and n >= 11:
            k = int(rng.integers(int(0.35 * n), int(0.85 * n) + 1))
            cut = np.arange(n) < k if rng.random() < 0.5 else np.arange(n) >= n - k
            acquired &= cut
        seen = angles.copy()
        seen[~acquired] = np.nan
        ctx = LayerContext.from_frames(frames, seen, patch_size)
        feats = ctx.features()
        idx = np.flatnonzero(acquired & (classes[layer].reshape(n, -1) > 0).any(axis=1))
        if len(idx) > max_frames:
            idx = np.sort(rng.choice(idx, max_frames, replace=False))
        for i in idx:
            out[0].append(frames[i])
            out[1].append(classes[layer, i])
            out[2].append(feats[i])
            out[3].append(ctx.levels)
    return out


def build_set(paths: list[Path], patch_size: int, seed: int, **kw):
    """Stack the examples of every file; frames of different sizes are grouped by shape."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list] = {}
    for path in paths:
        fr, lab, feat, lv = layer_examples(path, patch_size, rng, **kw)
        for a, b, c, d in zip(fr, lab, feat, lv):
            g = groups.setdefault(a.shape, ([], [], [], []))
            g[0].append(a), g[1].append(b), g[2].append(c), g[3].append(d)
    return {shape: tuple(np.stack(x) for x in g) for shape, g in groups.items()}


def _is_summary(path: Path) -> bool:
    """Whether ``path`` is a model summary written by :func:`train_and_save`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and {"model", "arch", "provenance"} <= set(data)


def train_and_save(trainer, out: Path, t0: float, script: str, argv: list[str] | None, training_data: str) -> None:
    """Run ``trainer`` printing one line per epoch, then save the model to ``out`` with its
    provenance and a JSON summary beside it (``out`` with the suffix .json)."""
    from napari_weakbeam.core.atomic import atomic_path, check_replaceable
    from napari_weakbeam.core.classification.modelfile import check_model_output, save_model

    summary_path = out.with_suffix(".json")
    check_model_output(out, [])  # before training: never over a scan, labels or a file of another kind
    check_replaceable(summary_path, "model summary", same_kind=_is_summary)
    for p in trainer.run():
        if p.batch == p.n_batches or p.done:
            print(f"epoch {p.epoch}/{p.epochs} loss {p.loss:.4f} val_loss {p.val_loss or 0:.4f} "
                  f"val_balanced_accuracy {p.val_accuracy or 0:.4f} {p.message} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    clf = trainer.classifier
    clf.provenance = {
        **clf.provenance,
        "training_script": script,
        "training_data": training_data,
        "command": f"python {script} " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    save_model(out, clf)
    summary = {"model": out.name, "arch": clf.arch, "patch_size": clf.patch_size,
               "parameters": clf.n_parameters, "provenance": clf.provenance, "history": trainer.history}
    with atomic_path(summary_path) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {out} ({out.stat().st_size} bytes) in {time.perf_counter() - t0:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder for the training scans (made when missing)")
    ap.add_argument("--n-ours", type=int, default=48, help="randomised scans from our simulator")
    ap.add_argument("--n-dfxmgeo", type=int, default=64, help="randomised scans from dfxm-geo (0: none)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", default="scratch", help="scratch, or a model file to continue from")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import torch

    from napari_weakbeam.core.simulate.dataset import make_dataset
    from napari_weakbeam.core.classification.training import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    paths = []
    for gen, n in (("ours", args.n_ours), ("dfxmgeo", args.n_dfxmgeo)):
        if n:
            paths += make_dataset(args.data / gen, gen, n, seed=TRAIN_SEED,
                                  progress=lambda d, t, p: print(f"  {p.name} ({d}/{t}, {time.perf_counter() - t0:.0f} s)", flush=True))
    print(f"{len(paths)} training scans ready in {time.perf_counter() - t0:.0f} s", flush=True)
    sets = build_set(paths, args.patch_size, args.seed)
    # the Trainer takes frames of one size: pad every group to the largest frame (edge values, and
    # labels 0 on the padding so it is never trained on)
    rows = max(s[0] for s in sets)
    cols = max(s[1] for s in sets)
    from napari_weakbeam.core.patches import grid_shape

    gr, gc = grid_shape((rows, cols), args.patch_size)
    frames, labels, feats, levels = [], [], [], []
    for (r, c), (fr, lab, feat, lv) in sets.items():
        frames.append(np.pad(fr.astype(np.float32), ((0, 0), (0, rows - r), (0, cols - c)), mode="edge"))
        labels.append(np.pad(lab, ((0, 0), (0, gr - lab.shape[1]), (0, gc - lab.shape[2]))))
        feats.append(np.pad(feat, ((0, 0), (0, gr - feat.shape[1]), (0, gc - feat.shape[2]), (0, 0))))
        levels.append(lv)
    frames, labels = np.concatenate(frames), np.concatenate(labels)
    feats, levels = np.concatenate(feats), np.concatenate(levels)
    print(f"{len(frames)} frames, {int((labels == 1).sum())} WB / {int((labels == 2).sum())} SB patches "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    cfg = TrainConfig(arch="scanwb", patch_size=args.patch_size, epochs=args.epochs, lr=3e-3, batch_size=32,
                      val_fraction=0.15, patience=6, seed=args.seed, device="cpu", num_threads=args.threads,
                      start=args.start)
    trainer = Trainer(frames, labels, cfg, feats, levels)
    del frames
    train_and_save(trainer, args.out, t0, "scripts/train_default_model.py", argv,
                   f"{args.n_ours} randomised scans of our simulator and {args.n_dfxmgeo} of dfxm-geo "
                   f"(core.simulate.dataset.make_dataset, seed {TRAIN_SEED})")
    return 0


if __name__ == "__main__":
    from napari_weakbeam.core.errors import WeakbeamError

    try:
        raise SystemExit(main())
    except WeakbeamError as exc:
        raise SystemExit(f"error: {exc}") from None
