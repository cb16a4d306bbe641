"""`weakbeam watch`: follow a Bliss scan while it is acquired, and say where weak beam is."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Follow a rocking scan of a Bliss master file while Bliss writes it: every frame is classified
as soon as it lands, with the scan-aware model on the rocking curves acquired so far, and a line
per frame says how much of the grain is weak beam and where weak beam is on the curve so far.
Frames seen earlier are re-classified as the curves grow. When the scan ends (Bliss writes its
end_time; an aborted scan ends too) the finished scan is classified once more exactly as
`weakbeam classify` does and PRED.h5 is written: it then equals an offline classify. While a
scan is acquired, PRED.live.h5 beside PRED.h5 holds its labels so far, replaced after every frame
(a whole file whenever it is read); it is removed once PRED.h5 holds the scan.

--next goes on with the scans that follow in the master file (the next layers), until
interrupted or --idle-timeout seconds pass with no new frame; PRED.h5 then holds every scan
followed. Started mid-scan, the watcher catches up; stopped and started again with the same
--out, it keeps the scans already finished in PRED.h5.

The growing file is read through blissdata's dynamic HDF5 API (no Redis needed); --redis URL
reads blissdata's Redis data store instead, for beamlines that run one.

Where weak beam is: for each layer, the rocking-angle ranges on both sides of the peak where at
least 90 % of the grain's patches are weak beam and their median intensity is at least 3x the
noise, with the share of the field the grain covers (also stored in PRED.h5, /predictions/weak_beam).
"""

EPILOG = """\
examples:
  weakbeam watch /data/id03/sample/sample.h5 --scan 12 --out pred_12.h5
  weakbeam watch sample.h5 --scan 1 --next --idle-timeout 600 --out pred.h5
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .classify import add_device_argument

    p = sub.add_parser("watch", help="follow a Bliss scan while it is acquired; say where weak beam is",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="MASTER.h5", help="the Bliss master file being written")
    p.add_argument("--scan", metavar="N", help="scan to follow (N or N.1; default 1)")
    p.add_argument("--out", "-o", metavar="PRED.h5", help="predictions file (default: MASTER_predictions.h5 "
                   "in the current folder)")
    p.add_argument("--next", dest="follow_next", action="store_true", help="go on with the following scans")
    p.add_argument("--idle-timeout", type=float, metavar="S", help="stop when nothing new comes for S seconds "
                   "(default: wait for ever)")
    p.add_argument("--model", "-m", metavar="MODEL.pt", help="model file or `default`")
    p.add_argument("--patch-size", type=int, metavar="P", help="patch size in pixels (default: the model's)")
    p.add_argument("--detector", metavar="NAME", help="detector to read (default: the scan's only one)")
    p.add_argument("--redis", metavar="URL", help="read blissdata's Redis data store at URL instead of the file")
    add_device_argument(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no line per frame")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of `weakbeam watch`."""
    from ..core.errors import WeakbeamError
    from ..core.classification.live import freeze_startup_objects
    from ..core.scanfiles.live_feed import open_feed
    from ..workflows import watch
    from .classify import load_classifier, resolve_device

    master = Path(args.input)
    if args.idle_timeout is not None and args.idle_timeout <= 0:
        raise WeakbeamError(f"--idle-timeout must be a positive number of seconds, got {args.idle_timeout}")
    if args.scan is not None and not str(args.scan).split(".")[0].isdigit():
        raise WeakbeamError(f"--scan {args.scan}: expected a scan number such as 12 or 12.1")
    if master.is_dir():
        raise WeakbeamError(f"{master}: is a folder; give the Bliss master .h5 file")
    if args.redis is None and master.is_file() and master.stat().st_size > 0:
        import h5py

        if not h5py.is_hdf5(master):
            raise WeakbeamError(f"{master}: not an HDF5 file (weakbeam watch follows Bliss master files)")
    if not master.exists() and args.redis is None and args.idle_timeout is None:
        print(f"waiting for {master} to appear", file=sys.stderr)
    out = Path(args.out or f"{master.stem}_predictions.h5")
    if out.is_dir():
        raise WeakbeamError(f"{out}: is a folder; --out needs a file name such as pred.h5")
    clf = load_classifier(args.model, args.patch_size).to(resolve_device(args.device))
    feed = open_feed(master, idle_timeout=args.idle_timeout, detector=args.detector, redis_url=args.redis)
    freeze_startup_objects()
    _SHOWN.clear()
    try:
        for ev in watch(master, clf, out, scan=args.scan, follow_next=args.follow_next,
                        idle_timeout=args.idle_timeout, detector=args.detector, model=args.model or "default",
                        feed=feed):
            report(ev.payload, args.quiet)
    finally:
        feed.close()
        gc.unfreeze()  # back to the collector (main() may be called from a longer-lived process)
    return 0


_SHOWN: dict[str, tuple] = {}  # the weak-beam ranges last printed per scan


def report(ev: Any, quiet: bool = False) -> None:
    """Print one watch event."""
    if ev.kind == "frame" and not quiet and ev.deferred:
        print(f"scan {ev.scan} frame {ev.index + 1} at {ev.angle:+.4f} deg: newer frames waiting, "
              "labelled after them", flush=True)
    elif ev.kind == "frame" and not quiet:
        wb = ev.weak_beam
        share = wb.wb_share[ev.index] if wb is not None and wb.wb_share is not None else float("nan")
        grain = f"grain WB {100 * share:.0f} %, " if share == share else ""
        print(f"scan {ev.scan} frame {ev.index + 1} at {ev.angle:+.4f} deg: {grain}labelled in "
              f"{1000 * ev.latency_s:.0f} ms", flush=True)
        ranges = None if wb is None else tuple((r.side, r.start, r.stop) for r in wb.ranges)
        if ranges is not None and ranges != _SHOWN.get(ev.scan, "none yet"):  # it changed: say it
            _SHOWN[ev.scan] = ranges
            print(f"  so far, {wb.summary()}", flush=True)
    elif ev.kind == "scan_done":
        print(f"scan {ev.scan} ended: {ev.layer.n} frames; predictions written", flush=True)
        for r in ev.results:
            print(r.summary(), flush=True)
    elif ev.kind == "skipped":
        print(f"scan {ev.scan}: already in the predictions file or has no images; skipped", flush=True)
    elif ev.kind == "idle":
        print(f"nothing new at scan {ev.scan}: stopped", flush=True)


def report_weak_beam(out: Path) -> None:
    """Print where weak beam is in each layer of a predictions file, and store it there."""
    from ..core.classification.predictions import load_predictions
    from ..core.classification.weak_range import predictions_weak_beam, store_weak_beam

    pred = load_predictions(out)
    results = predictions_weak_beam(pred)
    if results is None:
        return
    store_weak_beam(out, results, pred.label.shape[0])
    for r in results:
        print(r.summary(), file=sys.stdout)
