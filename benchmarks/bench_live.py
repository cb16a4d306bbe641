"""Latency of `weakbeam watch`: from a frame written by another process to its label.

A writer process (core.scanfiles.bliss_live_writer) replays a synthetic scan frame by frame into a Bliss
master file and prints when each frame's angle was flushed (CLOCK_MONOTONIC, shared by processes
on Linux); core.classification.live.watch follows it and we record when each label is ready, and separately the
time to read one frame through blissdata. When frames land faster than they are labelled, the
newest is labelled first and the ones it overtook later (deferred, not in the latency). The first
frame labelled also pays for setting the network up when it lands at once after the scan is
created (the replay writes it right away), so it is given apart from the later frames. Frames are
classified with core.classification.live.live_threads() torch threads, as `weakbeam watch` does. Short on purpose (few
frames); the machine is shared, so each size is run `--repeat` times, each run with its load average:
`python benchmarks/bench_live.py [--sizes 512,2048] [--frames 12] [--repeat 3]`. With `--redis` the writer
also publishes each frame to a local blissdata Redis data store (core.scanfiles.bliss_live_writer.local_data_store)
and the watcher reads the frames from there (`weakbeam watch --redis`), the read time too.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_weakbeam.core.scanfiles.bliss_live_writer import local_data_store
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.classification.live import freeze_startup_objects, live_threads, watch
from napari_weakbeam.core.scanfiles.live_feed import open_feed
from napari_weakbeam.core.classification.modelfile import default_model_path, load_default_model


def scan(path: Path, size: int, n: int) -> None:
    rng = np.random.default_rng(0)
    ang = 10 + 0.01 * np.arange(n)
    cols = np.linspace(-0.5, 0.5, size)[None, :]
    frames = np.empty((n, size, size), np.uint16)
    for i, a in enumerate(ang):
        frames[i] = rng.poisson(100 + 3000 * np.exp(-(((a - 10.05 - 0.02 * cols) / 0.02) ** 2)) * np.ones((size, 1)))
    write_bliss(path, [frames], [ang], [0.0])


#: Seconds from the writer's start to its scan's: the watcher is waiting for the scan when it starts,
#: as at the beamline (``weakbeam watch --next`` runs before the layers are acquired).
START_DELAY_S = 3.0


def run(size: int, n: int, period: float, clf, redis_url: str | None = None, start_gap: float = 0.0) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src, live = Path(d) / "src.h5", Path(d) / "live.h5"
        scan(src, size, n)
        w = subprocess.Popen([sys.executable, "-m", "napari_weakbeam.core.scanfiles.bliss_live_writer", str(src), str(live),
                              "--period", str(period), "--pause-at", f"0:{start_gap}",
                              "--start-delay", str(START_DELAY_S)]
                             + (["--redis", redis_url] if redis_url else []),
                             stdout=subprocess.PIPE, text=True)
        labelled, work = {}, {}
        while not live.exists():
            time.sleep(0.01)
        deferred = 0
        feed = open_feed(live, idle_timeout=30, redis_url=redis_url)
        clf = copy.deepcopy(clf)  # a classifier not warmed up at this frame size by an earlier run
        for ev in watch(live, clf, None, scan="1", idle_timeout=30, feed=feed):  # as weakbeam watch runs
            deferred += ev.kind == "frame" and ev.deferred
            if ev.kind == "frame" and not ev.deferred:
                labelled[ev.index] = time.perf_counter()
                work[ev.index] = ev.latency_s  # from the reader seeing the frame to its label
        t_final = time.perf_counter()
        written = {}
        for line in w.stdout:
            t, _, k = line.split()
            written[int(k) - 1] = float(t)
        w.wait()
        lat = np.array([labelled[k] - written[k] for k in sorted(labelled)])
        feed.start("1.1")
        ds = feed.f["1.1/instrument/pco_ff/data"]
        reads = []
        for k in range(n):
            t0 = time.perf_counter()
            np.asarray(ds[k])
            reads.append(time.perf_counter() - t0)
        feed.close()
        wk = np.array([work[k] for k in sorted(work)])
        return {"size": size, "frames": n, "deferred": deferred, "median": float(np.median(lat)), "p95": float(np.percentile(lat, 95)), "max": float(lat.max()),
                "first": float(lat[0]), "later_median": float(np.median(lat[1:])), "later_p95": float(np.percentile(lat[1:], 95)),
                "all": lat, "all_work": wk,
                "work_median": float(np.median(wk)), "work_p95": float(np.percentile(wk, 95)),
                "read_median": float(np.median(reads)), "final_pass": t_final - max(labelled.values())}


def viewer_gaps(size: int, n: int, period: float, clf) -> dict:
    """Follow mode in a real napari viewer (the all-steps panel, as the Plugins menu docks it) while
    the writer writes: the gaps of a 10 ms timer on the GUI thread (needs a display: xvfb-run), at the
    start (Follow ticked up to the first frame shown, which creates the two live layers) and while
    following (gaps that began after that; the first draw of the new layers is one of them). The writer pauses 25 s after its first frame, so that the viewer is
    open and following before the other frames land at the writer's period."""
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_weakbeam._napari._demo import PANEL, PLUGIN
    from napari_weakbeam._napari._follow import follower_for
    from napari_weakbeam._napari._session import get_session

    with tempfile.TemporaryDirectory() as d:
        src, live = Path(d) / "src.h5", Path(d) / "live.h5"
        scan(src, size, n)
        w = subprocess.Popen([sys.executable, "-m", "napari_weakbeam.core.scanfiles.bliss_live_writer", str(src), str(live),
                              "--period", str(period), "--pause-at", "1:25"], stdout=subprocess.PIPE, text=True)
        w.stdout.readline()
        viewer = napari.Viewer()
        viewer.open(str(live), plugin=PLUGIN)
        _, panel = viewer.window.add_plugin_dock_widget(PLUGIN, PANEL)
        widgets = dict(panel.widgets)
        widgets["Annotate"].start_annotating(viewer.layers[0].name, clf.patch_size)
        session = get_session(viewer)
        session.set_classifier(clf, "benchmark")
        app, ticks = QApplication.instance(), []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        widgets["Predictions"].follow_check.setChecked(True)
        follower = follower_for(session)
        timer.start(10)
        first = []
        while getattr(follower.last_event, "kind", "") != "scan_done":
            app.processEvents()
            if not first and follower.frames_shown:
                first.append(time.perf_counter())
            time.sleep(0.002)
        timer.stop()
        widgets["Predictions"].follow_check.setChecked(False)
        while follower.running:
            app.processEvents()
        w.wait()
        viewer.close()
    t = np.asarray(ticks)
    gaps, later = np.diff(t), t[:-1] > first[0] + 0.05  # gaps that began once the first frame was shown
    steady = gaps[later]
    return {"frames": follower.frames_shown, "start": float(gaps[~later].max()), "max": float(steady.max()),
            "p99": float(np.percentile(steady, 99)), "over_100ms": int((steady > 0.1).sum()), "ticks": t}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512,2048")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--period", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--verbose", action="store_true", help="print every frame's latency")
    ap.add_argument("--start-gap", type=float, default=0.5,
                    help="seconds between a scan's start and its first frame (motors moving to the start)")
    ap.add_argument("--redis", action="store_true", help="read the frames from a local blissdata Redis data store")
    ap.add_argument("--viewer", action="store_true", help="also: GUI-thread gaps of a napari viewer in Follow mode "
                    "(run under xvfb-run)")
    a = ap.parse_args()
    if default_model_path().exists():
        clf, what = load_default_model(), "default model"
    else:
        torch.manual_seed(0)
        clf, what = build_classifier("scanwb", 64), "untrained scanwb (same network size; default model missing)"
    from blissdata.h5api import dynamic_hdf5, redis_hdf5  # noqa: F401  (imported before the freeze, as weakbeam watch does)

    freeze_startup_objects()
    print(f"load average at start {os.getloadavg()[0]:.1f}; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{live_threads()} while following, {torch.get_num_threads()} for the final pass; no GPU; {what}, 64-px patches; writer period {a.period} s, {a.start_gap} s from a scan's start to its first frame; frames read from "
          f"{'a local blissdata Redis data store' if a.redis else 'the file (blissdata dynamic_hdf5)'}")
    print("| frame | run (load avg) | frames (labelled on landing) | write -> label median (s) | 95th pct (s) | max (s) "
          "| first labelled (s) | later frames median (s) | 95th pct (s) | seen -> label median (s) | 95th pct (s) "
          "| read one frame (s) | final pass (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(local_data_store(stack.enter_context(tempfile.TemporaryDirectory()))) if a.redis else None
        for s in (int(v) for v in a.sizes.split(",")):
            for i in range(a.repeat):
                load = os.getloadavg()[0]
                r = run(s, a.frames, a.period, clf, url, a.start_gap)
                print(f"| {s} x {s} | {i + 1} ({load:.1f}) | {r['frames']} ({r['frames'] - r['deferred']}) | {r['median']:.3f} | "
                      f"{r['p95']:.3f} | {r['max']:.3f} | {r['first']:.3f} | {r['later_median']:.3f} | {r['later_p95']:.3f} | "
                      f"{r['work_median']:.3f} | {r['work_p95']:.3f} | {r['read_median']:.4f} | {r['final_pass']:.1f} |", flush=True)
                if a.verbose:
                    print("  write -> label per frame (s):", " ".join(f"{v:.3f}" for v in r["all"]), flush=True)
                    print("  seen -> label per frame (s): ", " ".join(f"{v:.3f}" for v in r["all_work"]), flush=True)
    if a.viewer:
        print("\n| frame | load avg | frames shown | longest GUI-thread gap at the start | while following: longest "
              "| 99th pct of gaps | gaps over 100 ms |")
        print("|---|---|---|---|---|---|---|")
        for s in (int(v) for v in a.sizes.split(",")):
            load = os.getloadavg()[0]
            r = viewer_gaps(s, a.frames, a.period, clf)
            print(f"| {s} x {s} | {load:.1f} | {r['frames']} | {1000 * r['start']:.0f} ms | {1000 * r['max']:.0f} ms | "
                  f"{1000 * r['p99']:.0f} ms | "
                  f"{r['over_100ms']} |", flush=True)


if __name__ == "__main__":
    main()
