"""`weakbeam classify`: label every patch of every frame of a scan as weak beam or strong beam."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from ._checks import check_job, check_output, patch_option, resumable
from ._cluster import add_cluster_arguments, client_from_args

DESCRIPTION = """\
Classify every patch of every frame of a DFXM rocking scan as weak beam (WB) or strong beam (SB)
with a trained model, and write the per-patch labels and WB probabilities to PRED.h5.

The data are streamed layer by layer (a few frames at a time), so memory stays bounded however
large the dataset. PRED.h5 appears only when every layer is done: an interrupted run leaves a
hidden .PRED.h5.partial beside it, which --resume continues, and an earlier PRED.h5 is never
destroyed by a failed run.

The default model is scan-aware: it reads each patch in the context of its own rocking curve
and of the whole layer (one extra read of each layer). A layer with fewer than 3 frames (a
fixed-angle layer scan) is classified from appearance alone, with a warning. `--model
single-frame` uses the previous, single-frame model, for comparison.

After classifying, a self-check that needs no labels is printed: the share of patches that break
the rocking-curve physics (weak beam at their own curve's peak, or P(WB) falling away from it).
When the model and the curves disagree on more than 5 % of patches it warns and points at
`weakbeam train --adapt`.

PRED.h5 holds /predictions/label (uint8, layers x frames x grid_rows x grid_cols; 1 = WB,
2 = SB, 0 = not classified), /predictions/probability_weak_beam (float32), the patches' rocking
curves, the rocking angles, the layer positions, the patch size and the source
(see docs/file-formats.md). It is a NeXus file: silx view and h5web open it on the WB
probability maps with their axes (layer position, rocking angle, y and x in um).
"""

EPILOG = """\
examples:
  weakbeam classify sample.h5 --out pred.h5
  weakbeam classify sample.h5 --scans 1.1,2.1 --detector pco_ff --out pred.h5 --device cuda
  weakbeam classify "frames/*.edf" --model mymodel.pt --out pred.h5
  weakbeam classify data.h5::/entry/data --patch-size 128 --out pred.h5
  weakbeam classify stack.tif --angles angles.txt --pixel-size 0.0376 --out pred.h5
"""


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """Options that choose what to read from INPUT (shared with `weakbeam train`)."""
    p.add_argument(
        "--scans",
        metavar="1.1,2.1",
        help="comma-separated scans of a Bliss master file to use, one layer each (default: every "
        "rocking scan in the file)",
    )
    p.add_argument("--detector", metavar="NAME", help="detector to read (e.g. pco_ff; default: the only or main one)")
    p.add_argument(
        "--angles",
        metavar="FILE|START:STEP",
        help="rocking angles in degrees for inputs that do not store them (TIFF stacks, FILE.h5::/path): "
        "a text/CSV file with one angle per frame (one row per layer for 4D data) or a .npy file, or "
        "START:STEP for evenly spaced frames, written --angles=-0.06:0.004 when START is negative "
        "(default: frame indices)",
    )
    p.add_argument(
        "--pixel-size",
        type=float,
        metavar="UM",
        help="effective pixel size at the sample in micrometres (overrides the file's)",
    )
    p.add_argument(
        "--magnification",
        type=float,
        metavar="M",
        help="objective magnification: the file's camera pixel size is divided by M (when the file does not store it)",
    )


def add_device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where the network runs: auto picks a CUDA GPU, then Apple mps, then the CPU (default: auto)",
    )


def parse_scans(text: str | None) -> list[str] | None:
    """``"1.1, 2.1"`` -> ``["1.1", "2.1"]``; None -> None (every scan); only commas: an error."""
    if not text:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        from ..core.errors import WeakbeamError

        raise WeakbeamError(f"--scans {text!r}: no scan names (e.g. --scans 1.1,2.1; leave it out for every scan)")
    return names


def open_input(args: argparse.Namespace, source: str | None = None, scans: list[str] | None = None):
    """Open the INPUT of a command as a lazy Scan (a WeakbeamError names the file on failure).

    ``scans`` overrides ``--scans``; ``--angles`` and ``--pixel-size`` are applied when given.
    """
    from ..core.scanfiles.readers import open_scan

    source = source or args.input
    kwargs: dict[str, Any] = {
        "scans": scans if scans is not None else parse_scans(args.scans),
        "detector": args.detector,
        "pixel_size": getattr(args, "pixel_size", None),
        "magnification": getattr(args, "magnification", None),
    }
    spec = getattr(args, "angles", None)
    if spec:
        kwargs["angles"] = read_angles(spec, lambda: open_scan(source, **kwargs).n_frames)
    return open_scan(source, **kwargs)


def read_angles(spec: str, n_frames: Any) -> Any:
    """``--angles``: a text/CSV or .npy file of angles, or ``START:STEP`` (``n_frames()`` frames)."""
    import io

    import numpy as np

    from ..core.errors import WeakbeamError

    path = Path(spec)
    if not path.exists() and ":" in spec:
        try:
            start, step = (float(v) for v in spec.split(":"))
        except ValueError:
            raise WeakbeamError(f"--angles {spec}: expected START:STEP in degrees (e.g. -0.06:0.004) or a file") from None
        return start + step * np.arange(n_frames())
    if not path.is_file():
        raise WeakbeamError(f"{spec}: angles file not found")
    try:
        if path.suffix == ".npy":
            angles = np.load(path, allow_pickle=False)
        else:
            angles = np.loadtxt(io.StringIO(path.read_text().replace(",", " ")), ndmin=1)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise WeakbeamError(f"{path}: not a list of angles in degrees ({str(exc).splitlines()[0][:120]})") from None
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim == 2 and 1 in angles.shape:
        angles = angles.ravel()
    if not np.all(np.isfinite(angles)):
        raise WeakbeamError(f"{path}: angles must be finite numbers")
    return angles


def resolve_device(name: str):
    """The torch device for ``--device`` (auto: cuda, then mps, then cpu)."""
    from ..core.classification.device import resolve_device as _resolve

    return _resolve(name)


def load_classifier(model: str | None, patch_size: int | None = None):
    """The model of ``--model`` (default: the shipped one), at ``patch_size`` when given.

    A patch size the model cannot use (the ``paper`` architecture is tied to one) is a WeakbeamError.
    """
    from ..core.errors import WeakbeamError
    from ..core.classification.modelfile import load_default_model, load_model

    with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
        warnings.simplefilter("ignore")
        clf = load_model(model) if model else load_default_model()
    if patch_size is not None and int(patch_size) != int(clf.patch_size):
        if patch_size < 1:
            raise WeakbeamError(f"--patch-size must be a positive number of pixels, got {patch_size}")
        try:
            clf = clf.with_patch_size(int(patch_size))
        except (ValueError, AttributeError) as exc:
            raise WeakbeamError(
                f"{model or 'the default model'}: trained for patch size {clf.patch_size}, cannot use "
                f"--patch-size {patch_size} ({exc})"
            ) from None
    return clf


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify",
        help="label every patch of a scan as weak beam / strong beam (writes PRED.h5)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a Bliss master .h5 file, a folder or glob of EDF frames, a TIFF stack, or FILE.h5::/path/to/dataset",
    )
    p.add_argument("--out", "-o", required=True, metavar="PRED.h5", help="predictions file to write")
    p.add_argument("--model", "-m", metavar="MODEL.pt", help="model file from `weakbeam train`, or `default` "
                   "(the scan-aware model shipped with napari-weakbeam, used when not given) or `single-frame` "
                   "(the shipped appearance-only model)")
    p.add_argument(
        "--patch-size",
        type=int,
        metavar="P",
        help="patch size in pixels (default: the model's; the default model accepts any size, the "
        "paper architecture only the size it was trained at)",
    )
    add_device_argument(p)
    add_input_arguments(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into the same PRED.h5, skipping the layers already done",
    )
    add_cluster_arguments(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of `weakbeam classify`."""
    from ..core.errors import WeakbeamError

    out = Path(args.out)
    if out.is_dir():
        raise WeakbeamError(f"{out}: is a folder; --out needs a file name such as pred.h5")
    scan = open_input(args)
    check_output(out, scan)
    if args.patch_size is not None:
        check_job(scan, args.patch_size, "classification")
    clf = load_classifier(args.model, args.patch_size)
    check_job(scan, clf.patch_size, "classification", option=patch_option(args))
    clf = clf.to(resolve_device(args.device))
    t0 = time.perf_counter()
    with resumable(out), client_from_args(args) as client:
        run_predictions(scan, clf, out, client=client, resume=args.resume, quiet=args.quiet,
                        model=args.model or "default", device=args.device)
    print(f"{summary(out)} ({time.perf_counter() - t0:.1f} s, {clf.describe()} on {clf.device})", file=sys.stdout)
    report_self_check(out)
    from .watch import report_weak_beam

    report_weak_beam(out)
    return 0


def report_self_check(out: Path) -> None:
    """Print the physics self-check of a predictions file, and its warning if any."""
    from ..core.classification.predictions import load_predictions
    from ..core.classification.self_check import check_predictions

    check = check_predictions(load_predictions(out))
    if check is None:
        return
    print(check.summary(), file=sys.stdout)
    warning = check.warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def run_predictions(scan: Any, clf: Any, out: Path, *, client: Any = None, resume: bool, quiet: bool, model: str,
                    device: str = "auto") -> None:
    """Classify the whole scan into ``out`` with progress bars (layers; frames of the layer in this process)."""
    from ._progress import tqdm

    from ..workflows import classify_scan

    layers_bar = tqdm(total=scan.n_layers, desc="layers", unit="layer", disable=quiet, file=sys.stderr)
    frames_bar = None if client is not None else tqdm(total=scan.n_frames, desc="frames", unit="frame", leave=False,
                                                       disable=quiet, file=sys.stderr)
    current = None
    gen = classify_scan(scan, clf, out, client=client, resume=resume, model=model, device=device)
    try:
        for ev in gen:
            if ev.what == "layers":
                layers_bar.update(ev.done - layers_bar.n)
            elif frames_bar is not None:
                if ev.payload.layer != current:
                    current = ev.payload.layer
                    frames_bar.reset(total=ev.total)
                    frames_bar.set_description(ev.message)
                frames_bar.update(ev.done - frames_bar.n)
    except KeyboardInterrupt:
        print(f"{layers_bar.n} of {scan.n_layers} layers done; run the same command with --resume to continue",
              file=sys.stderr)
        raise
    finally:
        gen.close()
        for bar in (frames_bar, layers_bar):
            if bar is not None:
                bar.close()


def summary(out: Path) -> str:
    """One line describing a finished predictions file."""
    import h5py
    import numpy as np

    with h5py.File(out, "r") as f:
        d = f["predictions/label"]
        counts = np.zeros(3, dtype=np.int64)
        for i in range(d.shape[0]):
            counts += np.bincount(d[i].ravel(), minlength=3)[:3]
        shape = d.shape
        p = int(f["predictions"].attrs["patch_size"])
    n = max(int(counts[1] + counts[2]), 1)
    return (
        f"wrote {out}: {shape[0]} layers x {shape[1]} frames x {shape[2]}x{shape[3]} patches of "
        f"{p} px; weak beam {100 * counts[1] / n:.1f} %, strong beam {100 * counts[2] / n:.1f} %"
    )
