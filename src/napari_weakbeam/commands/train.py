"""`weakbeam train`: train or fine-tune the WB/SB classifier from saved annotations (or suggestions)."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import check_job, check_model_out, check_training_memory
from .classify import add_device_argument, add_input_arguments, open_input, parse_scans

DESCRIPTION = """\
Train (or fine-tune) the weak-beam / strong-beam patch classifier and write a model file that
`weakbeam classify --model` and the napari plugin use.

Labels come from ANNOTATIONS.h5 (patches painted in napari and saved), from --suggest (labels
proposed from each patch's own rocking curve, no hand labels needed: a quick way to bootstrap a
model on your own data), or both (hand labels win where they exist, suggestions fill the rest).
Both weak-beam and strong-beam patches are needed.

--adapt SCAN adapts a model to a new scan in one step, with no painting: it fine-tunes the
starting model (default: the shipped one) for a few epochs on the rocking-curve aid's confident
labels of up to 4 layers of SCAN; correct what is left by hand afterwards.

By default the shipped model is fine-tuned (--from default), which needs the fewest labels; use
--from scratch (with --arch) for a new network, or --from MODEL.pt to continue from your own.
The validation set is whole frames; the best epoch on it is kept (early stopping). MODEL.pt is
written only when training succeeds (atomically): an existing file is never half-overwritten.
"""

EPILOG = """\
examples:
  weakbeam train labels.h5 --scan sample.h5 --out mymodel.pt
  weakbeam train --suggest --scan sample.h5 --out bootstrap.pt --patch-size 64
  weakbeam train --adapt newscan.h5 --out adapted.pt
  weakbeam train labels.h5 --scan sample.h5 --out paper.pt --from scratch --arch paper --epochs 50
"""

#: At most this many suggested patches are used (half per class), so --suggest stays fast.
MAX_SUGGESTED = 20000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train or fine-tune the classifier from annotations or rocking-curve suggestions",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("annotations", nargs="?", metavar="ANNOTATIONS.h5", help="annotation file saved from napari (optional with --suggest)")
    p.add_argument(
        "--scan",
        metavar="INPUT",
        help="the scan the labels belong to: Bliss .h5, EDF folder/glob, TIFF, or FILE.h5::/path "
        "(default: the source recorded in the annotation file)",
    )
    p.add_argument("--out", "-o", required=True, metavar="MODEL.pt", help="model file to write")
    p.add_argument(
        "--suggest",
        action="store_true",
        help="label patches from their own rocking curve (weak beam >= 2 half widths from the local "
        "peak, strong beam within 1); with ANNOTATIONS, fills the patches left unlabelled",
    )
    p.add_argument(
        "--adapt",
        metavar="SCAN",
        help="adapt the starting model to SCAN with no hand labels: fine-tune on the rocking-curve aid's "
        "confident labels of up to 4 of its layers (default --epochs 15)",
    )
    p.add_argument(
        "--from",
        dest="start",
        metavar="default|scratch|FILE",
        help="start from the shipped model (default), a new network (scratch), or a model file; "
        "giving --arch alone implies scratch",
    )
    p.add_argument("--arch", choices=["scanwb", "wbnet", "paper"], help="network for --from scratch: scanwb (scan-aware, any patch size; default), wbnet (single frame) or paper (the published one)")
    p.add_argument("--patch-size", type=int, metavar="P", help="patch size in pixels (default: the annotations', else the starting model's, else 64)")
    p.add_argument("--epochs", type=int, default=None, help="maximum number of passes over the training patches (default: 50; 15 with --adapt)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    p.add_argument("--batch-size", type=int, default=32, help="patches per batch (default: 32)")
    p.add_argument("--patience", type=int, default=10, help="stop after this many epochs without validation improvement (default: 10)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of labelled frames held out for validation (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed and data give the same model (default: 0)")
    p.add_argument("--no-augment", action="store_true", help="no data augmentation (flips, exposure, noise)")
    p.add_argument("--max-suggested", type=int, default=MAX_SUGGESTED, metavar="N", help=f"use at most N suggested patches, half per class (default: {MAX_SUGGESTED})")
    add_device_argument(p)
    add_input_arguments(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _check_numbers(args: argparse.Namespace) -> None:
    from ..core.errors import WeakbeamError

    if args.epochs is None:
        args.epochs = 15 if args.adapt else 50
    for name in ("epochs", "batch_size", "max_suggested"):
        if getattr(args, name) < 1:
            raise WeakbeamError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.patience < 1:
        raise WeakbeamError(f"--patience must be at least 1, got {args.patience}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise WeakbeamError(f"--lr must be a positive number, got {args.lr}")
    if not 0 <= args.val_fraction < 1:
        raise WeakbeamError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.patch_size is not None and args.patch_size < 8:
        raise WeakbeamError(f"--patch-size must be at least 8 pixels, got {args.patch_size}")


def _start(args: argparse.Namespace) -> tuple[str, Any]:
    """``--from`` resolved: (start for TrainConfig, the starting classifier or None for scratch)."""
    from ..core.errors import WeakbeamError
    from ..core.classification.modelfile import load_default_model, load_model

    start = args.start or ("scratch" if args.arch else "default")
    if start == "scratch":
        return start, None
    with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
        warnings.simplefilter("ignore")
        clf = load_default_model() if start == "default" else load_model(start)
    if args.arch and args.arch != clf.arch:
        raise WeakbeamError(
            f"--arch {args.arch} does not match the starting model ({start}: {clf.arch}); use --from scratch for a new {args.arch} network"
        )
    if start != "default":
        start = str(Path(start))
    return start, clf


def _labels(args: argparse.Namespace, scan: Any, ann: Any, patch_size: int) -> tuple[np.ndarray, str]:
    """(labels (layers, frames, gr, gc), where they come from), hand labels over suggestions."""
    from ._progress import tqdm

    from ..core.classification.rocking_aid import suggest_scan_labels

    labels = None if ann is None else np.asarray(ann.label, dtype=np.uint8)
    if not args.suggest:
        return labels, f"annotations {args.annotations}"
    with tqdm(total=scan.n_layers, desc="suggesting labels", unit="layer", disable=args.quiet, file=sys.stderr) as bar:
        suggested = suggest_scan_labels(scan, patch_size, progress=lambda done, n: bar.update(done - bar.n))
    # Keep at most max_suggested suggested patches (half per class), chosen with the seed.
    rng = np.random.default_rng(args.seed)
    free = suggested if labels is None else np.where(labels > 0, 0, suggested)
    flat = free.reshape(-1)
    for k in (1, 2):
        idx = np.flatnonzero(flat == k)
        if len(idx) > args.max_suggested // 2:
            drop = rng.choice(idx, len(idx) - args.max_suggested // 2, replace=False)
            flat[drop] = 0
    if labels is None:
        return free, "rocking-curve suggestions"
    return np.where(labels > 0, labels, free).astype(np.uint8), f"annotations {args.annotations} + rocking-curve suggestions"


def run(args: argparse.Namespace) -> int:
    """Entry point of `weakbeam train`."""
    from ..core.classification.annotations import load_annotations
    from ..core.errors import WeakbeamError

    _check_numbers(args)
    out = Path(args.out)
    if out.is_dir():
        raise WeakbeamError(f"{out}: is a folder; --out needs a file name such as model.pt")
    if args.adapt:
        if args.annotations or args.suggest:
            raise WeakbeamError("--adapt takes its labels from the scan's rocking curves: give no ANNOTATIONS.h5 and no --suggest")
        return _adapt(args, out)
    if args.annotations is None and not args.suggest:
        raise WeakbeamError("no labels: give an ANNOTATIONS.h5 file saved from napari, or --suggest (or --adapt SCAN)")
    ann = load_annotations(args.annotations) if args.annotations else None
    source = args.scan or (ann.source if ann is not None else None)
    if not source:
        raise WeakbeamError("--scan INPUT is needed: which scan do the labels belong to?")
    scans = parse_scans(args.scans) or (ann.scan_names if ann is not None and not args.scan else None) or None
    scan = open_input(args, source, scans=scans)
    inputs = check_model_out(out, args, scan)

    if ann is not None:
        if args.patch_size is not None and args.patch_size != ann.patch_size:
            raise WeakbeamError(
                f"{args.annotations}: annotations were painted on {ann.patch_size}-pixel patches, not "
                f"--patch-size {args.patch_size}; leave --patch-size out"
            )
        ann.check_matches(scan, what=f"annotations {args.annotations}")
    start, clf = _start(args)
    if ann is not None:
        patch_size = int(ann.patch_size)
    else:
        patch_size = int(args.patch_size or (clf.patch_size if clf is not None else 64))
    if clf is not None and clf.arch == "paper" and clf.patch_size != patch_size:
        raise WeakbeamError(
            f"{start}: this 'paper' model works on {clf.patch_size}-pixel patches only, but the labels use "
            f"{patch_size}-pixel patches; use --from scratch or a 'wbnet' model"
        )

    check_job(scan, patch_size, "training", option="--patch-size" if args.patch_size else "the patch size")
    labels, label_source = _labels(args, scan, ann, patch_size)
    n_frames = int(np.count_nonzero(labels.reshape(labels.shape[0], labels.shape[1], -1).any(axis=2)))
    check_training_memory(max(n_frames, 1), scan.frame_shape)
    config = _config(args, clf, patch_size, start)
    from ..workflows import train

    return _train_and_save(args, out, train(scan, labels, config, source=label_source), scan, label_source, start,
                           inputs, config.arch)


def _config(args: argparse.Namespace, clf: Any, patch_size: int, start: str):
    from ..core.classification.training import TrainConfig

    return TrainConfig(
        arch=args.arch or (clf.arch if clf is not None else "scanwb"),
        patch_size=patch_size,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        augment=not args.no_augment,
        start=start,
    )


def _adapt(args: argparse.Namespace, out: Path) -> int:
    """`--adapt SCAN`: fine-tune on the rocking-curve aid's confident labels of SCAN."""
    from ..core.errors import WeakbeamError
    from ..workflows import adapt

    scan = open_input(args, args.adapt)
    inputs = check_model_out(out, args, scan)
    start, clf = _start(args)
    if start == "scratch":
        raise WeakbeamError("--adapt fine-tunes a trained model: give --from default or --from MODEL.pt, not scratch")
    patch_size = int(args.patch_size or clf.patch_size)
    check_job(scan, patch_size, "adapting", option="--patch-size" if args.patch_size else "the patch size")
    if not args.quiet:
        print(f"reading the rocking curves of {scan.source} for confident labels ...", file=sys.stderr)
    config = _config(args, clf, patch_size, start)
    return _train_and_save(args, out, adapt(scan, config), scan, f"rocking-curve aid on {scan.source} (adapt)", start,
                           inputs, config.arch)


def _train_and_save(args: argparse.Namespace, out: Path, workflow: Any, scan: Any, label_source: str, start: str,
                    inputs: list[str], arch: str) -> int:
    """Run the training ``workflow`` with a progress bar and save the model to ``out`` (never over ``inputs``)."""
    from ._progress import tqdm

    from ..core.classification.modelfile import save_model
    from ..workflows import run

    last = None
    bar = None

    def show(ev: Any) -> None:
        nonlocal last, bar
        if isinstance(ev.payload, dict):  # the start: the training set (said before the bar starts)
            if not args.quiet:
                n = ev.payload
                print(f"training {arch} ({start}) on {n['train']} patches, validating on {n['validation']} "
                      f"({n['weak_beam']} weak beam, {n['strong_beam']} strong beam; {label_source}; "
                      f"device {n['device']})", file=sys.stderr)
            return
        if bar is None:
            bar = tqdm(total=args.epochs, desc="epochs", unit="epoch", disable=args.quiet, file=sys.stderr)
        p = last = ev.payload
        post = {"loss": f"{p.loss:.3f}", "acc": f"{p.accuracy:.3f}"}
        if p.val_accuracy is not None:
            post.update(val_loss=f"{p.val_loss:.3f}", val_bal_acc=f"{p.val_accuracy:.3f}")
        bar.set_postfix(post, refresh=False)
        if not p.done and p.batch == p.n_batches:
            bar.update(1)

    try:
        model = run(workflow, show)
    finally:
        if bar is not None:
            bar.close()
    model.provenance = {**model.provenance, "scan": str(scan.source), "scan_names": list(scan.scan_names),
                        "labels": label_source}
    save_model(out, model, inputs=inputs)
    prov = model.provenance
    val = ""
    if prov.get("best_on_validation"):
        val = f"; kept epoch {prov['best_epoch']}, validation balanced accuracy {100 * prov['best_balanced_accuracy']:.1f} %"
    reason = f" ({last.message})" if last is not None and last.message else ""
    print(f"saved {out}: {model.describe()}{val}{reason}")
    return 0

