"""Training and fine-tuning the patch classifier from patch-resolution labels.

Each labelled patch becomes one training item: a crop of the raw frame holding the patch plus the
network's ``context`` pixels on each side, aligned to the network's stride, so the network sees
exactly the pixels it sees at inference (where it runs fully convolutionally over whole frames).
Normalisation levels come from the whole frame, as at inference. Augmentations respect the
physics: flips of either detector axis (rot90 is not used: the two axes differ, one is stretched
by 1/sin(2theta) and the rocking tilt runs along one of them), lower exposure with photon-noise
resampling, detector gain and read noise, and jitter of the dark/bright levels. The validation set
is whole frames (never patches of one frame in both sets); class imbalance is handled by a
class-weighted loss; early stopping keeps the best validation checkpoint.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch.nn import functional as F

from .classifier import Classifier, build_classifier
from .device import resolve_device
from ..errors import WeakbeamError, check_finite
from .normalise import frame_levels
from ..patches import STRONG_BEAM, WEAK_BEAM, grid_shape, pad_to_grid


@dataclass
class TrainConfig:
    """Training settings. ``start``: ``"scratch"``, ``"default"`` (the shipped model) or a model path."""

    arch: str = "scanwb"
    patch_size: int = 64
    epochs: int = 50
    lr: float = 3e-3
    batch_size: int = 32
    val_fraction: float = 0.2
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    augment: bool = True
    start: Any = "scratch"  # "scratch", "default", a model path, or a Classifier to fine-tune
    num_threads: int | None = None
    weight_decay: float = 1e-4
    schedule: str | None = None  # "onecycle" or "constant" lr; None: onecycle for wbnet, constant (as published) for paper
    tile_patches: int | None = None  # patches per side of a training crop (auto: ~256 px; 1 for paper)
    hparams: dict[str, Any] = field(default_factory=dict)
    context_dropout: float = 0.15  # scan-aware models: share of training tiles seen without scan context


@dataclass
class TrainProgress:
    """One progress report, yielded after every batch (and once more when done)."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based within the epoch
    n_batches: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    done: bool = False
    message: str = ""


def _check_config(cfg: TrainConfig) -> None:
    """One-line errors for impossible settings."""
    if int(cfg.epochs) < 1 or int(cfg.batch_size) < 1:
        raise WeakbeamError(f"epochs ({cfg.epochs}) and batch size ({cfg.batch_size}) must be at least 1")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise WeakbeamError(f"learning rate {cfg.lr} must be a positive number")
    if not 0 <= cfg.val_fraction < 1:
        raise WeakbeamError(f"validation fraction {cfg.val_fraction} must be in [0, 1)")
    if cfg.schedule not in (None, "onecycle", "constant"):
        raise WeakbeamError(f"unknown learning-rate schedule {cfg.schedule!r}: choose onecycle or constant")


def labelled_frames(scan: Any, label: np.ndarray, patch_size: int, scan_aware: bool):
    """The frames of ``scan`` that hold labels in ``label`` (layers, frames, gr, gc), lazily, with
    their labels and, for a scan-aware model, their scan features and layer levels (one extra read
    of each labelled layer): ``(frames, labels, features | None, levels | None)``."""
    import dask.array as da

    idx = np.argwhere(label.reshape(label.shape[0], label.shape[1], -1).any(axis=2))
    if len(idx) == 0:
        raise WeakbeamError(f"no labelled patches for {scan.source}: label at least one patch of each class")
    frames = [scan.frames[int(l), int(f)] for l, f in idx]
    stacked = da.stack(frames) if hasattr(frames[0], "compute") else np.stack(frames)
    labels = np.stack([label[int(l), int(f)] for l, f in idx])
    if not scan_aware:
        return stacked, labels, None, None
    from .predictions import layer_context

    feats, lv = [], []
    per_layer: dict[int, tuple[np.ndarray, tuple[float, float]]] = {}
    for l, f in idx:
        l = int(l)
        if l not in per_layer:
            ctx, _ = layer_context(scan, l, patch_size, keep=False)
            per_layer[l] = (ctx.features(), ctx.levels)
        feats.append(per_layer[l][0][int(f)])
        lv.append(per_layer[l][1])
    return stacked, labels, np.stack(feats), np.asarray(lv, np.float64)


def is_scan_aware(cfg: TrainConfig) -> bool:
    """Whether training from ``cfg`` makes a scan-aware model (by architecture or starting model)."""
    if isinstance(cfg.start, Classifier):
        return cfg.start.scan_aware
    start = str(cfg.start)
    if start == "scratch":
        return cfg.arch == "scanwb"
    from .modelfile import load_default_model, load_model

    return (load_default_model() if start == "default" else load_model(start)).scan_aware


def training_inputs(scan: Any, labels: Any, config: TrainConfig | None = None):
    """What a :class:`Trainer` is built from: ``(frames, labels, config, features, levels)``.

    ``labels``: patch labels (layers, frames, grid_rows, grid_cols) of ``scan`` at
    ``config.patch_size``, or annotations (core.classification.annotations.Annotations), checked
    against the scan, whose patch size the returned config copy takes. Only frames holding labels
    are read (lazily)."""
    config = copy.copy(config or TrainConfig())
    if hasattr(labels, "check_matches"):
        labels.check_matches(scan)
        config.patch_size = int(labels.patch_size)
        labels = labels.label
    frames, frame_labels, features, levels = labelled_frames(scan, np.asarray(labels), config.patch_size,
                                                             is_scan_aware(config))
    return frames, frame_labels, config, features, levels


def _class_names(counts: dict[int, int]) -> str:
    return "weak beam" if counts[WEAK_BEAM] else "strong beam"


class Trainer:
    """Train (or fine-tune) a :class:`Classifier` on frames and patch labels.

    ``frames``: (n, rows, cols) raw detector frames (numpy or dask); ``labels``: uint8
    (n, grid_rows, grid_cols), 0 = unlabelled, 1 = weak beam, 2 = strong beam. Iterate
    :meth:`run` to train; :meth:`stop` (or closing the generator) ends it within one batch;
    :attr:`classifier` then holds the best checkpoint, :attr:`history` one dict per epoch.
    """

    def __init__(self, frames: Any, labels: np.ndarray, config: TrainConfig | None = None,
                 features: np.ndarray | None = None, levels: np.ndarray | None = None):
        """``features`` (n, gr, gc, K) and ``levels`` (n, 2) (dark, span) give each frame's scan
        context (core.classification.scan_context) for a scan-aware model; without them it learns from appearance
        with each frame's own levels."""
        self.config = config = config or TrainConfig()
        self._stop = False
        self.history: list[dict[str, float]] = []
        _check_config(config)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.classifier = self._start_classifier()
        self._prepare(frames, labels, features, levels)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_annotations(cls, scan: Any, annotations: Any, config: TrainConfig | None = None) -> "Trainer":
        """Train on the labelled frames of ``scan`` (core.scanfiles.scan.Scan) with ``annotations``
        (core.classification.annotations.Annotations); only frames holding labels are read."""
        frames, labels, config, features, levels = training_inputs(scan, annotations, config)
        return cls(frames, labels, config, features, levels)

    def _start_classifier(self) -> Classifier:
        cfg = self.config
        if isinstance(cfg.start, Classifier):  # an in-memory model (the widgets' current one)
            c = copy.deepcopy(cfg.start).with_patch_size(cfg.patch_size)
            c.provenance = {**c.provenance, "fine_tuned_from": "the model in use"}
            return c.to(self.device)
        start = str(cfg.start)
        if start == "scratch":
            c = build_classifier(cfg.arch, cfg.patch_size, **cfg.hparams)
        else:
            from .modelfile import load_default_model, load_model

            c = load_default_model() if start == "default" else load_model(start)
            c = c.with_patch_size(cfg.patch_size)
            c.provenance = {**c.provenance, "fine_tuned_from": start}
        return c.to(self.device)

    def _prepare(self, frames: Any, labels: np.ndarray, features: np.ndarray | None = None,
                 levels_in: np.ndarray | None = None) -> None:
        """Validate input, cut one raw crop (with context) per labelled patch."""
        cfg, c = self.config, self.classifier
        labels = np.asarray(labels)
        if getattr(frames, "ndim", 0) != 3:
            raise WeakbeamError(f"training frames must be (n, rows, cols), got shape {getattr(frames, 'shape', None)}")
        p = c.patch_size
        expected = (frames.shape[0],) + grid_shape(frames.shape[1:], p)
        if labels.shape != expected:
            raise WeakbeamError(f"labels of shape {labels.shape} do not fit {frames.shape[0]} frames of {tuple(frames.shape[1:])} at patch size {p} (expected {expected})")
        bad = set(np.unique(labels).tolist()) - {0, WEAK_BEAM, STRONG_BEAM}
        if bad:
            raise WeakbeamError(f"labels hold unknown class codes {sorted(bad)} (only 0 = unlabelled, 1 = weak beam, 2 = strong beam)")
        counts = {k: int(np.count_nonzero(labels == k)) for k in (WEAK_BEAM, STRONG_BEAM)}
        if counts[WEAK_BEAM] + counts[STRONG_BEAM] == 0:
            raise WeakbeamError("no labelled patches: label at least one weak beam and one strong beam patch")
        if min(counts.values()) == 0:
            raise WeakbeamError(f"labels hold only {_class_names(counts)} patches: label at least one patch of each class")
        self.counts = counts

        self.scan_aware = c.scan_aware
        if features is not None and (features.shape[:3] != labels.shape):
            raise WeakbeamError(f"scan features of shape {features.shape} do not fit labels of shape {labels.shape}")
        k = int(getattr(c.net, "n_features", 0))
        m, s = c.context, int(getattr(c.net, "stride", 1))
        t = self.tiles = int(cfg.tile_patches or (1 if m == 0 else max(1, round(256 / p))))
        L = int(math.ceil((t * p + 2 * m + (s - 1)) / s) * s)
        crops, levels, tiles, offs, fids, feats = [], [], [], [], [], []
        for i in range(frames.shape[0]):
            lab = labels[i]
            if not lab.any():
                continue
            raw = np.asarray(frames[i]).astype(np.float32)
            check_finite(raw, f"training frame {i}")
            if self.scan_aware and levels_in is not None:
                lo, scale = float(levels_in[i][0]), float(levels_in[i][1])
            else:
                lo, scale = frame_levels(raw, c.normalisation)
            grid = pad_to_grid(raw, p)
            nt_r, nt_c = math.ceil(lab.shape[0] / t), math.ceil(lab.shape[1] / t)
            extra_r = nt_r * t * p + 2 * m + s - grid.shape[0] - m
            extra_c = nt_c * t * p + 2 * m + s - grid.shape[1] - m
            padded = np.pad(grid, ((m, extra_r), (m, extra_c)), constant_values=lo)
            lab_t = np.zeros((nt_r * t, nt_c * t), np.int64) - 1
            lab_t[: lab.shape[0], : lab.shape[1]] = np.where(lab == WEAK_BEAM, 0, np.where(lab == STRONG_BEAM, 1, -1))
            feat_t = np.zeros((nt_r * t, nt_c * t, k), np.float32)
            if features is not None and k:
                feat_t[: lab.shape[0], : lab.shape[1]] = features[i]
            for ti in range(nt_r):
                for tj in range(nt_c):
                    tl = lab_t[ti * t : (ti + 1) * t, tj * t : (tj + 1) * t]
                    if not (tl >= 0).any():
                        continue
                    r0, c0 = (ti * t * p // s) * s, (tj * t * p // s) * s
                    crops.append(padded[r0 : r0 + L, c0 : c0 + L])
                    offs.append((m + ti * t * p - r0, m + tj * t * p - c0))
                    levels.append((lo, scale))
                    tiles.append(tl)
                    feats.append(feat_t[ti * t : (ti + 1) * t, tj * t : (tj + 1) * t])
                    fids.append(i)
        self.crops = torch.from_numpy(np.stack(crops))
        self.levels = torch.tensor(levels, dtype=torch.float32)
        self.targets = torch.from_numpy(np.stack(tiles))  # (N, T, T): 0 WB, 1 SB, -1 ignore
        self.features = torch.from_numpy(np.stack(feats))  # (N, T, T, K) scan features (K = 0: none)
        self.offsets = torch.tensor(offs, dtype=torch.long)
        self.frame_ids = np.asarray(fids)
        self.train_idx, self.val_idx = self._split()
        y = self.targets[self.train_idx]
        n = np.array([int((y == 0).sum()), int((y == 1).sum())], dtype=np.float64)
        self.class_weight = torch.tensor(n.sum() / (2 * np.maximum(n, 1)), dtype=torch.float32)
        per_tile = float((self.targets >= 0).sum()) / max(1, len(self.targets))
        self.tiles_per_batch = max(2, int(round(cfg.batch_size / max(per_tile, 1.0))))

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        """Validation split by whole frames, both classes on both sides where possible."""
        cfg = self.config
        every = np.arange(len(self.targets))
        frames = np.unique(self.frame_ids)
        has = np.stack([(self.targets == k).flatten(1).any(1).numpy() for k in (0, 1)], axis=1)
        if cfg.val_fraction <= 0 or len(frames) < 2:
            return every, every[:0]
        rng = np.random.default_rng(cfg.seed)
        best = None
        n_val = min(len(frames) - 1, max(1, int(round(cfg.val_fraction * len(frames)))))
        for _ in range(50):
            order = rng.permutation(frames)
            val = np.isin(self.frame_ids, order[:n_val])
            ok_train = has[~val].any(0).all()
            if ok_train and has[val].any(0).all():
                return every[~val], every[val]
            if ok_train and best is None:
                best = val
        if best is None:  # no frame split keeps both classes in training: no validation set
            return every, every[:0]
        return every[~best], every[best]

    # -- training ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to end after the current batch."""
        self._stop = True

    def _batch(self, idx: torch.Tensor, augment: bool, gen: torch.Generator | None):
        """Normalised (optionally augmented) crops (B, 1, L, L), tile offsets (B, 2), targets
        (B, T, T), scan features (B, T, T, K)."""
        c = self.classifier
        x = self.crops[idx].clone()
        feat = self.features[idx].clone()
        lv = self.levels[idx].clone()
        off = self.offsets[idx].clone()
        y = self.targets[idx].clone()
        span, L = c.patch_size * self.tiles, x.shape[-1]
        if augment:
            b = len(idx)
            u = torch.rand(b, 8, generator=gen)
            for axis, col, k in ((-1, 1, 0), (-2, 0, 1)):
                flip = u[:, k] < 0.5
                if flip.any():
                    x[flip] = x[flip].flip(axis)
                    y[flip] = y[flip].flip(axis)
                    feat[flip] = feat[flip].flip(axis - 1)
                    off[flip, col] = L - off[flip, col] - span
            noisy = torch.nonzero(u[:, 2] < 0.5).flatten()
            if len(noisy):  # lower exposure: photon noise resampled, random gain and read noise
                v = u[noisy]
                lo = lv[noisy, 0, None, None]
                exposure = torch.exp(math.log(0.25) * v[:, 3])[:, None, None]  # 0.25 .. 1
                gain = (1.0 + 2.0 * v[:, 4])[:, None, None]
                xn = x[noisy]
                photons = (xn - lo).clamp_(min=0).div_(gain).mul_(exposure)
                shape = xn.shape
                noise = photons.sqrt_().mul_(torch.randn(shape, generator=gen)).mul_(gain)
                noise.add_(torch.randn(shape, generator=gen).mul_(3.0 * v[:, 5, None, None]))
                x[noisy] = xn + noise.div_(exposure)
            lv[:, 1] *= torch.exp(0.1 * (2 * u[:, 6] - 1))
            lv[:, 0] += 0.03 * (2 * u[:, 7] - 1) * lv[:, 1]
            if feat.shape[-1]:  # some tiles without scan context: the appearance-only fallback
                drop = torch.rand(b, generator=gen) < float(self.config.context_dropout)
                feat[drop] = 0
        z = (x - lv[:, 0, None, None]) / lv[:, 1, None, None]
        cc = float(c.normalisation.compression)
        if cc > 0:  # numpy's arcsinh is several times faster than torch's on the CPU
            z = torch.from_numpy(np.arcsinh(np.float32(cc) * z.numpy()) * np.float32(1 / math.asinh(cc)))
        return z[:, None].to(self.device), off.to(self.device), y.to(self.device), feat.to(self.device)

    def _logits(self, x: torch.Tensor, off: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        c = self.classifier
        if self.scan_aware:
            return c.net.tile_logits(x, off, c.patch_size, self.tiles, feat)
        return c.net.tile_logits(x, off, c.patch_size, self.tiles)

    def _evaluate(self, idx: np.ndarray) -> tuple[float, float, float]:
        """(class-weighted loss, accuracy, balanced accuracy) on tiles ``idx``, eval mode."""
        self.classifier.net.eval()
        outs, ys = [], []
        with torch.inference_mode():
            for i in range(0, len(idx), 16):
                x, off, y, feat = self._batch(torch.as_tensor(idx[i : i + 16]), False, None)
                keep = y >= 0
                outs.append(self._logits(x, off, feat)[keep].float().cpu())
                ys.append(y[keep].cpu())
        out, y = torch.cat(outs), torch.cat(ys)
        loss = float(F.cross_entropy(out, y, weight=self.class_weight))
        pred = out.argmax(1)
        acc = float((pred == y).float().mean())
        recalls = [float((pred[y == k] == k).float().mean()) for k in (0, 1) if (y == k).any()]
        return loss, acc, float(np.mean(recalls))

    def run(self) -> Iterator[TrainProgress]:
        """Train, yielding a :class:`TrainProgress` after every batch; the last one has done=True."""
        cfg, c = self.config, self.classifier
        net = c.net
        threads = torch.get_num_threads()
        if cfg.num_threads:
            torch.set_num_threads(int(cfg.num_threads))
        gen = torch.Generator().manual_seed(cfg.seed)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        train_idx = torch.as_tensor(self.train_idx)
        tb = min(self.tiles_per_batch, len(train_idx))
        n_batches = max(1, math.ceil(len(train_idx) / tb))
        schedule = cfg.schedule or ("constant" if c.arch == "paper" else "onecycle")
        if schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * n_batches, pct_start=0.15)
        else:  # "constant" (_check_config refuses any other)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        weight = self.class_weight.to(self.device)
        best_loss, best_state, since_best = math.inf, copy.deepcopy(net.state_dict()), 0
        val_loss = val_acc = None
        message, t0 = "", time.perf_counter()
        epoch = 0
        try:
            for epoch in range(1, cfg.epochs + 1):
                net.train()
                order = train_idx[torch.randperm(len(train_idx), generator=gen)]
                epoch_loss, epoch_acc = [], []
                for b in range(n_batches):
                    if self._stop:
                        message = f"stopped by the user in epoch {epoch}"
                        break
                    idx = order[b * tb : (b + 1) * tb]
                    if len(idx) < 2 and len(order) > 1:
                        idx = order[-2:]  # batch norm needs two samples
                    x, off, y, feat = self._batch(idx, cfg.augment, gen)
                    keep = y >= 0
                    logits = self._logits(x, off, feat)[keep]
                    y = y[keep]
                    loss = F.cross_entropy(logits, y, weight=weight)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    acc = float((logits.argmax(1) == y).float().mean())
                    loss = loss.detach()
                    epoch_loss.append(float(loss))
                    epoch_acc.append(acc)
                    last = b == n_batches - 1
                    if last:
                        if len(self.val_idx):
                            loss_e, _, bal_e = self._evaluate(self.val_idx)
                            val_loss, val_acc = loss_e, bal_e
                        else:  # no validation frames: monitor the epoch's mean training loss
                            loss_e, bal_e = float(np.mean(epoch_loss)), float(np.mean(epoch_acc))
                        if loss_e < best_loss - 1e-6:
                            best_loss, best_state, since_best = loss_e, copy.deepcopy(net.state_dict()), 0
                        else:
                            since_best += 1
                        self.history.append({"epoch": epoch, "loss": float(loss), "accuracy": acc,
                                             "monitor_loss": loss_e, "monitor_balanced_accuracy": bal_e,
                                             "validation": bool(len(self.val_idx))})
                    yield TrainProgress(epoch, cfg.epochs, b + 1, n_batches, float(loss), acc, val_loss, val_acc)
                if self._stop:  # Stop pressed during the epoch's last batch
                    message = f"stopped by the user in epoch {epoch}"
                    break
                if since_best >= cfg.patience:
                    message = f"early stop after epoch {epoch}: no improvement for {cfg.patience} epochs"
                    break
            else:
                message = f"finished {cfg.epochs} epochs"
        finally:
            torch.set_num_threads(threads)
            net.load_state_dict(best_state)
            net.eval()
            c.provenance = {**c.provenance, **self._provenance(epoch, best_loss, time.perf_counter() - t0, message)}
        yield TrainProgress(epoch, cfg.epochs, n_batches, n_batches, float("nan") if not self.history else self.history[-1]["loss"],
                            float("nan") if not self.history else self.history[-1]["accuracy"],
                            val_loss, val_acc, True, message)

    def _provenance(self, epoch: int, best_loss: float, seconds: float, message: str) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["hparams"] = dict(cfg["hparams"])
        return {"trained_epochs": int(epoch), "best_monitor_loss": float(best_loss), "train_seconds": round(seconds, 2),
                "n_train_patches": int((self.targets[self.train_idx] >= 0).sum()),
                "n_val_patches": int((self.targets[self.val_idx] >= 0).sum()),
                "class_counts": {"weak beam": self.counts[WEAK_BEAM], "strong beam": self.counts[STRONG_BEAM]},
                "config": cfg, "stop_reason": message, "torch": torch.__version__, **self._best_epoch()}

    def _best_epoch(self) -> dict[str, Any]:
        """The epoch kept (lowest monitored loss) and its balanced accuracy, on validation frames or not."""
        if not self.history:
            return {}
        best = min(self.history, key=lambda h: h["monitor_loss"])
        return {"best_epoch": int(best["epoch"]), "best_balanced_accuracy": float(best["monitor_balanced_accuracy"]),
                "best_on_validation": bool(best["validation"])}

    def train(self) -> Classifier:
        """Run to the end and return the trained classifier."""
        for _ in self.run():
            pass
        return self.classifier
