#!/usr/bin/env python
"""Train the single-frame (appearance-only) classifier shipped as models/wbnet_default.pt.

It was the default model of version 0.1; the scan-aware default is made by
scripts/train_default_model.py. Kept for comparison (`--model single-frame`).

Each training scan is drawn from the physics-based simulator with its own seed and a random
setting: rocking-curve width, mosaicity, sub-grain walls, dislocation density, exposure, dark level,
gain, read noise, pixel size (patch scale), extinction, fringes and PSF. Labels are the simulator's
ground truth (WB where u >= 2, SB where u <= 1, ambiguous patches left unlabelled).

    .venv/bin/python scripts/train_single_frame_model.py       # ~5-10 min on 2 CPU cores

Benchmarks import ``sample_params`` and ``simulated_set`` from here so held-out data come from the
same distribution with seeds never used for training (training seeds are < 10000).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from napari_weakbeam.core.simulate import SimulationParams, simulate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "napari_weakbeam" / "models" / "wbnet_default.pt"


def sample_params(seed: int, rows: int = 256, cols: int = 256, frames: int = 25, **fixed) -> SimulationParams:
    """A random simulator setting (drawn from ``seed``), with ``fixed`` values overriding."""
    r = np.random.default_rng(seed + 7919)
    draw = dict(
        rows=rows, cols=cols, frames=frames, seed=int(seed),
        fwhm_mrad=float(r.uniform(0.09, 0.3)),
        fwhm_variation=float(r.uniform(0.0, 0.2)),
        mosaicity_mrad=float(r.uniform(0.02, 0.12)),
        mosaic_length_um=float(r.uniform(2.0, 8.0)),
        walls=int(r.integers(0, 4)),
        density_um2=float(np.exp(r.uniform(np.log(0.004), np.log(0.05)))),
        exposure=float(np.exp(r.uniform(np.log(300.0), np.log(8000.0)))),
        dark_adu=float(r.uniform(85.0, 125.0)),
        gain_adu=float(r.uniform(1.5, 3.0)),
        read_noise_adu=float(r.uniform(2.0, 4.0)),
        pixel_size_um=float(r.uniform(0.035, 0.075)),
        saturation=float(r.uniform(0.6, 1.0)),
        fringe_contrast=float(r.uniform(0.0, 0.3)),
        psf_px=float(r.uniform(0.5, 1.2)),
    )
    draw.update(fixed)
    return SimulationParams(**draw)


def simulated_set(seeds, patch_size: int = 64, **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (n, rows, cols) uint16, classes (n, gr, gc) and u (n, gr, gc) from several scans."""
    frames, classes, us = [], [], []
    for s in seeds:
        sim = simulate(sample_params(int(s), **kw))
        frames.append(sim.frames.reshape(-1, *sim.frames.shape[2:]))
        classes.append(sim.truth.classes(patch_size).reshape(-1, *sim.truth.classes(patch_size).shape[2:]))
        us.append(sim.truth.u(patch_size).reshape(-1, *sim.truth.u(patch_size).shape[2:]))
    return np.concatenate(frames), np.concatenate(classes), np.concatenate(us)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=32, help="number of simulated training scans")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import torch

    from train_default_model import train_and_save
    from napari_weakbeam.core.classification.training import TrainConfig, Trainer

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    seeds = list(range(1, args.scans + 1))
    frames, classes, _ = simulated_set(seeds, args.patch_size)
    print(f"simulated {len(seeds)} scans, {len(frames)} frames, {int((classes == 1).sum())} WB / "
          f"{int((classes == 2).sum())} SB patches in {time.perf_counter() - t0:.0f} s", flush=True)
    cfg = TrainConfig(arch="wbnet", patch_size=args.patch_size, epochs=args.epochs, lr=3e-3, batch_size=32,
                      val_fraction=0.15, patience=8, seed=args.seed, device="cpu", num_threads=args.threads)
    trainer = Trainer(frames, classes, cfg)
    del frames
    train_and_save(trainer, args.out, t0, "scripts/train_single_frame_model.py", argv,
                   f"{len(seeds)} simulated scans (napari_weakbeam.core.simulate), seeds {seeds[0]}-{seeds[-1]}, "
                   "random settings from scripts/train_single_frame_model.py:sample_params")
    return 0


if __name__ == "__main__":
    from napari_weakbeam.core.errors import WeakbeamError

    try:
        raise SystemExit(main())
    except WeakbeamError as exc:
        raise SystemExit(f"error: {exc}") from None
