"""Benchmark of the 3D reconstruction: speed and memory on a large scan, accuracy against the
simulator's ground truth (automated, paper, ridge, manual reference; automated vs manual).

Speed: a Bliss file of ``--layers`` layers x ``--frames`` frames x ``--size``^2 (simulated layers
repeated), its predictions file (the classifier's when the shipped model exists, else the true
classes; inference is not timed), then in fresh processes: the baseline (reading every layer, the
I/O floor) and ``weakbeam reconstruct``'s streaming path (one layer in memory, results written per
layer). Time, peak resident memory of each process, ratios to the baseline.

Accuracy (labels: the ground-truth classes, so the reconstruction is measured on its own; on the
benchmark sets also `adaptive` on the shipped classifier's labels, the product end to end):
(1) the fixed benchmark set of both generators (core/simulate/benchmark_set.py: our simulator and
dfxm-geo, eight cases each: isolated lines, dense network, cell walls, beam fall-off, 2,500 ADU
dark floor, ~100 photons, short rocking range, small grain), one layer each: every method's
recall and precision within 3 pixels, median distance and empty layers; (2) multi-layer stacks of
our simulator at three exposures / dark floors, without and with a drift of 5 px per layer: the
same per method, the traced lines (share of true line length within 3 px, false length) and the
registered drift.

    python benchmarks/bench_reconstruct.py               # full: 100 x 31 x 512^2
    python benchmarks/bench_reconstruct.py --quick       # small, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _machine() -> str:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    return f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, {platform.system()}"


def _shipped_classifier():
    """The shipped default model (2 threads), or None with a message when there is none."""
    from napari_weakbeam.core.classification.modelfile import default_model_path, load_default_model

    if not default_model_path().exists():
        print("no shipped model: the end-to-end column is left out", file=sys.stderr)
        return None
    import torch

    torch.set_num_threads(2)
    return load_default_model("cpu")


def _labeller():
    """(name, patch size, function(frames (n, r, c), truth_classes) -> (labels, WB probabilities)):
    the classifier if shipped (its probabilities, as a predictions file holds them), else the true
    classes (probabilities NaN: the labels are read)."""
    try:
        clf = _shipped_classifier()
    except Exception as exc:  # noqa: BLE001 - report and fall back to the truth
        print(f"classifier unavailable ({exc}); using the true classes", file=sys.stderr)
        clf = None
    if clf is not None:
        return f"classifier ({clf.patch_size} px patches)", clf.patch_size, lambda fr, cls: clf.predict_frames(fr)
    return "true classes (no shipped model)", 64, lambda fr, cls: (cls, np.full(cls.shape, np.nan, np.float32))


# -- speed ---------------------------------------------------------------------------------------


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited on exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(queue, kind: str, path: str, pred: str, out: str, method: str, n_layers: int = 0) -> None:
    from napari_weakbeam.commands.reconstruct import run_reconstruction  # noqa: F401 (imports first)
    from napari_weakbeam.core.classification.predictions import load_predictions  # noqa: F401
    from napari_weakbeam.core.scanfiles.readers import open_scan

    after_imports = _vm_hwm_mb()

    t0, c0 = time.perf_counter(), time.process_time()
    scan = open_scan(path, scans=[f"{i + 1}.1" for i in range(n_layers)] if n_layers else None)
    if kind == "read":
        total = 0.0
        for i in range(scan.n_layers):
            total += float(scan.layer(i)[:, ::64, ::64].sum())
        n_points = 0
    else:
        from napari_weakbeam.commands.reconstruct import run_reconstruction
        from napari_weakbeam.core.classification.predictions import load_predictions
        from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams

        labels = load_predictions(pred)
        if n_layers:  # the first layers only: same per-layer work, smaller dataset
            labels.label, labels.angles = labels.label[:n_layers], labels.angles[:n_layers]
        rec = run_reconstruction(scan, labels, ReconstructionParams(method=method), Path(out), quiet=True)
        n_points = len(rec.points_um)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _vm_hwm_mb()
    queue.put({"seconds": dt, "cpu_s": cpu, "load_average": os.getloadavg()[0], "peak_rss_mb": peak, "imports_rss_mb": after_imports,
               "work_rss_mb": peak - after_imports, "points": n_points})


def _in_child(*args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,) + args)
    p.start()
    res = q.get()
    p.join()
    return res


def _time_tracing(path: Path) -> tuple[float, int]:
    """Time of the drift and the lines again from a reconstruction file's masks, registration
    images and rocking-curve tails (the tails read one layer at a time, as the finish does), the
    part of the whole-scan finish that they add."""
    import h5py

    from napari_weakbeam.core.reconstruction.drift import drift_and_lines

    with h5py.File(path, "r") as f:
        g = f["reconstruction"]
        vox = tuple(g.attrs["voxel_size_um"])
        masks = [g["mask"][i].astype(bool) for i in range(g["mask"].shape[0])]
        regs = [g["registration"][i] for i in range(g["registration"].shape[0])]
        pos = g["layer_positions"][()]
        t = time.perf_counter()
        _, lines, _ = drift_and_lines(masks, pos, vox, regs, tails=g["tails"] if "tails" in g else None)
        return time.perf_counter() - t, len(lines)


def bench_speed(layers: int, frames: int, size: int, workdir: Path, methods: list[str]) -> dict:
    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
    from napari_weakbeam.core.classification.predictions import PredictionWriter
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.simulate import SimulationParams, simulate

    t = time.perf_counter()
    k = min(4, layers)
    sim = simulate(SimulationParams(rows=size, cols=size, layers=k, frames=frames, seed=11))
    t_sim = time.perf_counter() - t
    name, patch, label = _labeller()
    cls = sim.truth.classes(patch)
    labels = [label(sim.frames[i], cls[i]) for i in range(k)]  # (labels, probabilities) per layer
    path = workdir / "big.h5"
    t = time.perf_counter()
    write_bliss(path, (sim.frames[i % k] for i in range(layers)), [sim.angles[i % k] for i in range(layers)],
                2.0 * np.arange(layers), pixel_size=sim.params.pixel_size_um, two_theta=sim.params.two_theta_deg)
    scan = open_scan(path)
    pred = workdir / "pred.h5"
    with PredictionWriter(pred, scan, patch) as w:
        for i in range(layers):
            w.write_layer(i, *labels[i % k])
    t_write = time.perf_counter() - t
    del sim
    layer_mb = frames * size * size * 2 / 2**20
    res = {"layers": layers, "frames": frames, "size": size, "labels": name, "dataset_gb": layers * layer_mb / 1024,
           "layer_mb": layer_mb, "simulate_s": t_sim, "write_s": t_write}
    res["read"] = _in_child("read", str(path), str(pred), "", "")
    for m in methods:
        out = workdir / f"vol_{m}.h5"
        r = _in_child("reconstruct", str(path), str(pred), str(out), m)
        r["ratio_to_read"] = r["seconds"] / res["read"]["seconds"]
        r["out_mb"] = out.stat().st_size / 2**20
        r["trace_s"], r["n_lines"] = _time_tracing(out)
        res[m] = r
        out.unlink()
    # memory does not grow with the dataset: the same method on a quarter of the layers
    quarter = max(1, layers // 4)
    out = workdir / "vol_quarter.h5"
    r = _in_child("reconstruct", str(path), str(pred), str(out), methods[0], quarter)
    r["layers"] = quarter
    res[f"{methods[0]}_{quarter}_layers"] = r
    out.unlink()
    path.unlink()
    pred.unlink()
    return res


# -- accuracy ------------------------------------------------------------------------------------

METHODS = ("adaptive", "paper", "ridge", "manual")


class _Labels:
    """Predictions-like labels: the true classes (the reconstruction measured on its own)."""

    def __init__(self, label, patch_size):
        self.label, self.patch_size = label, patch_size


def _score(found: np.ndarray, truth) -> dict:
    """Recall, precision, median (3 px) and what the false points are: the shares whose nearest
    true line passes within 3 px in-plane at a height within the slab's widening, 0.25 / 0.5 / 1
    um of the slab, or nowhere near (a diagnostic; the precision is as scored)."""
    from napari_weakbeam.core.simulate.scoring import false_point_heights, false_point_summary, score_points

    s = score_points(found, truth, 3.0)
    heights = false_point_heights(found, truth, 3.0)
    return {"recall_3px": s.recall, "precision_3px": s.precision, "median_px": s.median_px,
            "n_found": s.n_found, "n_truth": s.n_truth,
            "false_points": false_point_summary(heights, 3.0 * truth.params.pixel_size_um)}


def _false_line(row: dict) -> str:
    """'false points: on a line within 0.5 um of the slab / elsewhere' of one method's row."""
    f = row["false_points"]
    near = round(f["n_false"] * f["within_0.5um"]) if f["n_false"] else 0
    return f"false {f['n_false']}: near line (<= 0.5 um) {near} / elsewhere {f['n_false'] - near}"


def _layer_empty(rec, truth_pts: np.ndarray) -> list[int]:
    """Layers that hold true line points but no found point."""
    out = []
    for i, z in enumerate(rec.layer_positions):
        has_truth = np.any(np.isclose(truth_pts[:, 0], z))
        found = np.any(np.isclose(rec.points_um[:, 0], z)) if len(rec.points_um) else False
        if has_truth and not found:
            out.append(i)
    return out


def _methods(scan, labels, trace: bool = False) -> dict:
    from dataclasses import replace

    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.workflows import reconstruct_scan, run

    out = {}
    for m in METHODS:
        t = time.perf_counter()
        if m == "manual":
            rec = run(reconstruct_scan(scan, None, replace(ReconstructionParams(trace=trace), method="manual")))
        else:
            rec = run(reconstruct_scan(scan, labels, ReconstructionParams(method=m, trace=trace and m == "adaptive")))
        out[m] = (rec, time.perf_counter() - t)
    return out


def _end_to_end(scan, clf, trace: bool = False) -> tuple:
    """`adaptive` on the shipped classifier's own labels of ``scan``: the whole product path."""
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.workflows import classify_scan, reconstruct_scan, run

    t = time.perf_counter()
    pred = run(classify_scan(scan, clf))
    rec = run(reconstruct_scan(scan, pred, ReconstructionParams(method="adaptive", trace=trace)))
    return rec, time.perf_counter() - t


def _baseline_labels(scan, patch: int) -> dict:
    """Labels from the no-network baselines, per layer: the five-line brightness rule
    (bench_classifier_accuracy.brightness_rule) and the rocking-curve aid (no suggestion counts
    as weak beam, as ``use_ambiguous`` reads it)."""
    from bench_classifier_accuracy import brightness_rule

    from napari_weakbeam.core.classification.rocking_aid import suggest_labels

    def stack(f):
        return _Labels(np.stack([f(i) for i in range(scan.n_layers)]), patch)

    return {"brightness": stack(lambda i: brightness_rule(scan, i, patch)),
            "aid": stack(lambda i: suggest_labels(scan.layer(i), scan.angles[i], patch))}


def bench_sets(workdir: Path, generators: list[str], patch: int = 32, seed_offsets: tuple[int, ...] = (0,)) -> dict:
    """Every method on the fixed benchmark set of each generator (one layer per scan), on the true
    classes, and `adaptive` on the shipped classifier's labels (``adaptive_classified``: the
    product end to end); the scans are made in ``workdir`` unless already there. ``seed_offsets``
    other than 0 add the same cases with other seeds (held-out scans: cases ``<case>_s<offset>``);
    ``goals`` counts, per method and seed offset, the scans meeting all of issue 10's goals
    (:func:`goals_met`); ``summary`` holds the mean and lowest scores (:func:`score_summary`)."""
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.simulate import load_truth
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.core.simulate.benchmark_set import make_benchmark_set
    from napari_weakbeam.workflows import reconstruct_scan, run

    clf = _shipped_classifier()
    res: dict = {}
    for gen in generators:
        t = time.perf_counter()
        paths = [p for off in seed_offsets for p in make_benchmark_set(workdir, gen, seed_offset=off)]
        t_make = time.perf_counter() - t
        cases = {}
        for path in paths:
            scan, truth = open_scan(str(path)), load_truth(path)
            labels = _Labels(truth.classes(patch), patch)
            row = {}
            methods = _methods(scan, labels, trace=True)
            for m, (rec, sec) in methods.items():
                row[m] = _score(rec.points_um, truth) | {
                    "empty_layers": _layer_empty(rec, truth.points_um), "seconds": sec}
            # the layer's lines, traced (one layer: each piece, or its crossing arms, is a line)
            row["lines"] = _single_layer_lines(methods["adaptive"][0], truth)
            row["lines_manual"] = _single_layer_lines(methods["manual"][0], truth)
            if clf is not None:
                rec, sec = _end_to_end(scan, clf, trace=True)
                row["adaptive_classified"] = _score(rec.points_um, truth) | {
                    "empty_layers": _layer_empty(rec, truth.points_um), "seconds": sec}
                row["lines_classified"] = _single_layer_lines(rec, truth)
            for name, lab in _baseline_labels(scan, patch=64).items():  # the classifier's patch size
                rec = run(reconstruct_scan(scan, lab, ReconstructionParams(method="adaptive")))
                row[f"adaptive_{name}"] = _score(rec.points_um, truth) | {"empty_layers": _layer_empty(rec, truth.points_um)}
                row[f"lines_{name}"] = _single_layer_lines(rec, truth)
            cases[path.stem.split("_", 1)[1]] = row
            print(gen, path.stem, {m: f"{v['recall_3px']:.2f}/{v['precision_3px']:.2f}/{v['median_px']:.2f}"
                                   for m, v in row.items() if "recall_3px" in v}, "adaptive", _false_line(row["adaptive"]),
                  "lines", {k: f"{v['recall']:.2f}/{v['precision']:.2f}" for k, v in row.items() if k.startswith("lines")},
                  flush=True)
        res[gen] = {"make_s": t_make, "cases": cases, "frame_shape": list(scan.frame_shape),
                    "goals": goals_met(cases), "summary": score_summary(cases)}
        print(gen, "all goals met:", res[gen]["goals"], flush=True)
        for group, methods in res[gen]["summary"].items():
            print(gen, group, {m: f"R {v['recall_mean']:.3f} (min {v['recall_min']:.3f}) P {v['precision_mean']:.3f} "
                                  f"(min {v['precision_min']:.3f})" for m, v in methods.items()}, flush=True)
    return res


def _seed_offset(case: str) -> str:
    """The seed offset of a benchmark case's name (``"0"``: the fixed set; ``<case>_s<offset>``)."""
    tail = case.rsplit("_s", 1)[-1]
    return tail if "_s" in case and tail.isdigit() else "0"


def goals_met(cases: dict) -> dict:
    """Per seed offset (``"0"``: the fixed set) and method: how many of ``cases`` meet all of issue
    10's goals (recall and precision within 3 px >= 0.9, median distance <= 2 px, and, for every
    method but the manual reference, recall at least the manual reference's), of how many."""
    out: dict = {}
    for case, row in cases.items():
        off = _seed_offset(case)
        manual = row.get("manual", {}).get("recall_3px", 0.0)
        for m, v in row.items():
            if "recall_3px" not in v:
                continue
            ok = v["recall_3px"] >= 0.9 and v["precision_3px"] >= 0.9 and v["median_px"] <= 2
            ok = ok and (m == "manual" or v["recall_3px"] >= manual)
            met, n = out.setdefault(off, {}).get(m, (0, 0))
            out[off][m] = (met + int(ok), n + 1)
    return out


def score_summary(cases: dict) -> dict:
    """Per set (``fixed``: seed offset 0; ``held_out``: the others) and method: the mean and the
    lowest recall and precision within 3 px and the mean median distance over ``cases``. A goal
    count moves with single dots on single scans; these move with every scan."""
    rows: dict = {}
    for case, row in cases.items():
        group = "fixed" if _seed_offset(case) == "0" else "held_out"
        for m, v in row.items():
            if "recall_3px" in v:
                rows.setdefault(group, {}).setdefault(m, []).append(
                    (v["recall_3px"], v["precision_3px"], v["median_px"]))
    out: dict = {}
    for group, methods in rows.items():
        for m, vals in methods.items():
            a = np.array(vals, dtype=np.float64)
            out.setdefault(group, {})[m] = {
                "n": len(a), "recall_mean": float(np.nanmean(a[:, 0])), "recall_min": float(np.nanmin(a[:, 0])),
                "precision_mean": float(np.nanmean(a[:, 1])), "precision_min": float(np.nanmin(a[:, 1])),
                "median_px_mean": float(np.nanmean(a[:, 2]))}
    return out


def bench_no_label(paths: list[Path]) -> dict:
    """Checks that read no truth, on the product's path (the shipped classifier, then `adaptive`):
    the classifier's rocking-curve self-check (share of the checked patches consistent with the
    physics), the share of points the two no-label rules take (centre lines seen in one tail or in
    few frames: ``one_tail_share``, ``few_frames_share``), the share the lobe-pair cut takes
    (``lobe_dots``), and the camera defects repaired, per scan."""
    from napari_weakbeam.core.classification.self_check import SelfCheck
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.workflows import classify_scan, reconstruct_scan

    clf = _shipped_classifier()
    rows = {}
    for path in paths:
        scan = open_scan(str(path))
        check, gen, pred = SelfCheck(), classify_scan(scan, clf, self_check=True), None
        try:
            while True:
                item = next(gen)
                if item.what == "layers" and item.payload.check is not None:
                    check = check + item.payload.check
        except StopIteration as stop:
            pred = stop.value

        def points(**kw):
            from napari_weakbeam.workflows import run

            rec = run(reconstruct_scan(scan, pred, ReconstructionParams(trace=False, **kw)))
            return len(rec.points_um), rec

        n, rec = points()
        n_free = points(one_tail_share=0.0, few_frames_share=0.0)[0]
        n_whole = points(lobe_dots=False)[0]
        rows[path.stem] = {"self_check_consistent": check.consistent, "self_check_patches": check.checked,
                           "points": n, "points_without_rules": n_free, "rejected_share": 1 - n / max(n_free, 1),
                           "points_without_lobe_cut": n_whole, "lobe_cut_share": 1 - n / max(n_whole, 1),
                           "defects_repaired_hot_zinger": rec.defects.max(axis=0).tolist() if rec.defects is not None else None}
        print(path.stem, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[path.stem].items()}, flush=True)
    return rows


def _line_scores(rec, truth) -> tuple:
    """``rec``'s traced lines against the truth (line_scoring.score_lines): with 3 y pixels in both
    axes (the stacks' line score) and with 3 pixels of each image axis (the points' tolerance:
    x pixels are ~3x y)."""
    from napari_weakbeam.core.reconstruction.line_scoring import score_lines, truth_line_points

    pts, every, step, zt = truth_line_points(truth)
    px = float(truth.params.pixel_size_um)
    return (score_lines(rec.lines, pts, 3 * px, zt, step, reference=every),
            score_lines(rec.lines, pts, 3 * px, zt, step, reference=every, x_tolerance_um=3 * rec.voxel_size_um[2]))


def _single_layer_lines(rec, truth) -> dict:
    """A one-layer reconstruction's traced lines against the true lines in its slab: recall and
    precision of the length within 3 pixels of each image axis (the points' tolerance), and with
    3 y pixels in both axes (the stacks' line score)."""
    both, axis = _line_scores(rec, truth)
    return {"recall": axis.recall, "precision": axis.precision, "recall_3y_px": both.recall,
            "precision_3y_px": both.precision, "n_lines": len(rec.lines), "true_um": axis.true_length_um}


def _trend_removed(lines, trend: np.ndarray, layer_positions: np.ndarray, voxel):
    """The traced lines with the linear trend of the drift error taken out (each vertex moved by
    the trend of its nearest layer): what they would be if that trend, which no line can show,
    were known."""
    from napari_weakbeam.core.reconstruction.lines import Lines

    v = lines.vertices.copy()
    k = np.abs(v[:, :1] - np.asarray(layer_positions)[None]).argmin(axis=1)
    v[:, 1:] += trend[k] * np.asarray(voxel[1:])[None]
    return Lines(v, lines.offsets)


def bench_stacks(workdir: Path, seeds: list[int], settings: list[tuple[float, float]], layers: int, size: int,
                 frames: int, drift_px: float, patch: int = 32, walls: int = 2, layer_step_um: float = 2.0,
                 marker_um: float = 0.0) -> dict:
    """Multi-layer scans of our simulator at several exposures and dark floors, without and with
    drift: every method's points, the traced lines and the registered drift. With ``marker_um``,
    the stacks hold a fiducial marker of that radius, and each is also reconstructed with the
    drift registered on it (``drift_reference``: a box around it, reaching as far as the drift)."""
    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
    from napari_weakbeam.core.reconstruction.line_scoring import score_lines, truth_line_points
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.workflows import reconstruct_scan, run
    from napari_weakbeam.core.simulate import SimulationParams, simulate
    from napari_weakbeam.core.simulate.drift import drift_errors, drift_stack
    from napari_weakbeam.core.simulate.grain import marker_box

    clf = _shipped_classifier()
    rows = []
    for exposure, dark in settings:
        for seed in seeds:
            sim = simulate(SimulationParams(rows=size, cols=size, layers=layers, frames=frames, seed=seed,
                                            exposure=exposure, dark_adu=dark, walls=walls, layer_spacing_um=layer_step_um,
                                            marker_radius_um=marker_um))
            p, truth = sim.params, sim.truth
            cls = truth.classes(patch)
            pts, every, step, zt = truth_line_points(truth)
            for d in (0.0, drift_px):
                fr, lab, drift = drift_stack(sim.frames, cls, d, seed, patch)
                path = workdir / f"stack_{seed}_{exposure:g}_{dark:g}_{d:g}.h5"
                write_bliss(path, list(fr), list(sim.angles), sim.layer_positions, pixel_size=p.pixel_size_um,
                            two_theta=p.two_theta_deg)
                scan = open_scan(str(path))
                px = float(scan.pixel_size)
                row = {"seed": seed, "exposure": exposure, "dark_adu": dark, "walls": walls, "drift_step_px": d,
                       "applied_drift": drift.tolist()}
                if d == 0:
                    for m, (rec, sec) in _methods(scan, _Labels(lab, patch), trace=True).items():
                        row[m] = _score(rec.points_um, truth) | {
                            "empty_layers": _layer_empty(rec, truth.points_um), "seconds": sec}
                        if m == "manual":  # the manual reference's lines, beside ours
                            sc, sa = _line_scores(rec, truth)
                            row["lines_manual"] = {"recall": sc.recall, "precision": sc.precision}
                            row["lines_manual_axis_px"] = {"recall": sa.recall, "precision": sa.precision}
                    if clf is not None:  # the product end to end: the shipped model's labels, traced
                        rec, sec = _end_to_end(scan, clf, trace=True)
                        row["adaptive_classified"] = _score(rec.points_um, truth) | {
                            "empty_layers": _layer_empty(rec, truth.points_um), "seconds": sec}
                        sc = score_lines(rec.lines, pts, 3 * px, zt, step, reference=every)
                        row["lines_classified"] = {"recall": sc.recall, "precision": sc.precision}
                for correct in ((False,) if d == 0 else (False, True)):
                    t = time.perf_counter()
                    rec = run(reconstruct_scan(scan, _Labels(lab, patch), ReconstructionParams(correct_drift=correct)))
                    sec = time.perf_counter() - t
                    sc = score_lines(rec.lines, pts, 3 * px, zt, step, reference=every)
                    key = "lines" + ("_drift_corrected" if correct else "")
                    row[key] = {"recall": sc.recall, "precision": sc.precision, "true_um": sc.true_length_um,
                                "traced_um": sc.traced_length_um, "false_um": sc.false_length_um,
                                "n_lines": len(rec.lines), "multi_layer": int(np.sum(np.diff(rec.lines.offsets) > 2)),
                                "seconds": sec}
                    # the same with 3 pixels of each image axis (the points' scoring: x pixels ~3x y)
                    sc = score_lines(rec.lines, pts, 3 * px, zt, step, reference=every, x_tolerance_um=3 * rec.voxel_size_um[2])
                    row[key + "_axis_px"] = {"recall": sc.recall, "precision": sc.precision}
                    row["registered_drift"] = rec.drift_px.tolist()
                    err, detrended, trend = drift_errors(rec.drift_px, drift)
                    row["drift_error_px"], row["drift_error_detrended_px"] = err, detrended
                    if correct:
                        given = _trend_removed(rec.lines, trend, rec.layer_positions, rec.voxel_size_um)
                        for name, x_tol in (("", None), ("_axis_px", 3 * rec.voxel_size_um[2])):
                            sc = score_lines(given, pts, 3 * px, zt, step, reference=every, x_tolerance_um=x_tol)
                            row["lines_drift_trend_given" + name] = {"recall": sc.recall, "precision": sc.precision}
                        row["points_drift_corrected"] = _score(rec.points_um, truth)
                if marker_um > 0:  # the drift registered on the marker, trend included, and corrected
                    box = marker_box(p, np.abs(drift).max(initial=0.0))
                    rec = run(reconstruct_scan(scan, _Labels(lab, patch),
                                               ReconstructionParams(correct_drift=True, drift_reference=box)))
                    err, detrended, _ = drift_errors(rec.drift_px, drift)
                    sc = score_lines(rec.lines, pts, 3 * px, zt, step, reference=every)
                    row["drift_reference"] = {"box": list(box), "registered_drift": rec.drift_px.tolist(),
                                              "error_px": err, "detrended_px": detrended,
                                              "lines": {"recall": sc.recall, "precision": sc.precision},
                                              "points": _score(rec.points_um, truth)}
                rows.append(row)
                print({k: v for k, v in row.items() if k.startswith(("lines", "drift_error", "seed", "exposure", "drift_step", "adaptive_cl", "drift_reference"))},
                      flush=True)
                path.unlink()
    return {"layers": layers, "size": size, "frames": frames, "patch": patch, "walls": walls,
            "layer_step_um": layer_step_um, "rows": rows}


def bench_dfxmgeo_stacks(workdir: Path, cases: list[str], layers: int = 4, step_um: float = 2.0,
                         patch: int = 32) -> dict:
    """dfxm-geo stacks (the benchmark set's cases, ``layers`` layers ``step_um`` apart: the line
    beam moved up through the same dislocations): points per layer and traced lines against the
    truth, on the true classes and end to end, beside the manual reference, and the drift each
    records (none is applied). A first measurement of line tracing on a generator we did not tune
    (docs/simulator.md)."""
    import dataclasses

    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.simulate import benchmark_set, load_truth, write_labelled_scan
    from napari_weakbeam.workflows import reconstruct_scan, run

    clf = _shipped_classifier()
    base = benchmark_set("dfxmgeo")
    rows = {}
    for name in cases:
        path = workdir / f"dfxmgeo_stack_{name}.h5"
        t = time.perf_counter()
        write_labelled_scan(path, dataclasses.replace(base[name], layers=layers, layer_spacing_um=step_um))
        made = time.perf_counter() - t
        scan, truth = open_scan(str(path)), load_truth(path)
        row: dict = {"make_s": made}
        recs = {"true_classes": run(reconstruct_scan(scan, _Labels(truth.classes(patch), patch), ReconstructionParams()))}
        if clf is not None:
            recs["classified"] = _end_to_end(scan, clf, trace=True)[0]
        for key, rec in recs.items():
            sc, sa = _line_scores(rec, truth)
            row[key] = _score(rec.points_um, truth) | {
                "empty_layers": _layer_empty(rec, truth.points_um),
                "per_layer_points": [int(np.isclose(rec.points_um[:, 0], z).sum()) for z in truth.layer_positions],
                # no drift is applied: the largest recorded is the error
                "drift_source": rec.drift_source, "drift_max_px": float(np.abs(rec.drift_px).max()),
                "lines": {"recall": sc.recall, "precision": sc.precision, "true_um": sc.true_length_um,
                          "n_lines": len(rec.lines)},
                "lines_axis_px": {"recall": sa.recall, "precision": sa.precision}}
        rec = run(reconstruct_scan(scan, None, ReconstructionParams(method="manual")))
        sc, sa = _line_scores(rec, truth)
        row["manual"] = _score(rec.points_um, truth) | {
            "lines": {"recall": sc.recall, "precision": sc.precision, "n_lines": len(rec.lines)},
            "lines_axis_px": {"recall": sa.recall, "precision": sa.precision}}
        row["truth_points_per_layer"] = [int(np.isclose(truth.points_um[:, 0], z).sum()) for z in truth.layer_positions]
        rows[name] = row
        print(name, {k: (round(v["recall_3px"], 3), round(v["precision_3px"], 3),
                         round(v.get("lines", {}).get("recall", float("nan")), 3)) for k, v in row.items()
                     if isinstance(v, dict) and "recall_3px" in v}, flush=True)
        path.unlink()
    return {"layers": layers, "layer_step_um": step_um, "patch": patch, "cases": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--generators", default="ours,dfxmgeo")
    ap.add_argument("--quick", action="store_true", help="10 layers of 256^2, one seed, our generator")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-stacks", action="store_true", help="accuracy on the benchmark sets only")
    ap.add_argument("--skip-sets", action="store_true", help="no benchmark sets (stacks only)")
    ap.add_argument("--walls", type=int, default=2, help="sub-grain walls in the multi-layer stacks (default 2, the simulator's)")
    ap.add_argument("--layer-step", type=float, default=2.0, help="layer spacing of the stacks, um (default 2, the simulator's)")
    ap.add_argument("--marker-um", type=float, default=0.0, help="stacks with a fiducial marker of this radius (um), each also registered on it (default 0: none)")
    ap.add_argument("--dfxmgeo-stacks", default="", help="also: dfxm-geo stacks of these benchmark cases (comma-separated, e.g. isolated_lines,cell_walls,dense_network)")
    ap.add_argument("--seed-offsets", default="0", help="benchmark sets: these seed offsets (comma-separated; 0 the fixed set, others held-out scans of the same cases)")
    ap.add_argument("--no-label", nargs="*", default=None, metavar="SCAN", help="only the checks that read no truth (self-check, rules' rejections, lobe cut, defects) on these scan files")
    ap.add_argument("--sets-dir", default="", help="folder of the benchmark-set scans (made there if missing; default: a temporary folder)")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    args = ap.parse_args()
    if args.quick:
        args.layers, args.size, args.seeds, args.generators = 10, 256, "0", "ours"
    result = {"machine": _machine(), "load_average_start": os.getloadavg()}
    if args.no_label is not None:
        result["no_label"] = bench_no_label([Path(p) for p in args.no_label])
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return
    with tempfile.TemporaryDirectory(prefix="bench_recon_") as tmp:
        work = Path(tmp)
        if not args.skip_accuracy:
            seeds = [int(s) for s in args.seeds.split(",")]
            if not args.skip_sets:
                result["sets"] = bench_sets(Path(args.sets_dir) if args.sets_dir else work / "sets", args.generators.split(","),
                                            seed_offsets=tuple(int(v) for v in args.seed_offsets.split(",")))
            if not args.skip_stacks:
                result["stacks"] = bench_stacks(work, seeds, [(2000.0, 100.0), (300.0, 100.0), (100.0, 2500.0)],
                                                6, 256, 21, 5.0, walls=args.walls, layer_step_um=args.layer_step,
                                                marker_um=args.marker_um)
        if args.dfxmgeo_stacks:
            result["dfxmgeo_stacks"] = bench_dfxmgeo_stacks(work, args.dfxmgeo_stacks.split(","))
        if not args.skip_speed:
            result["speed"] = bench_speed(args.layers, args.frames, args.size, work, ["adaptive", "paper"])
            print(json.dumps(result["speed"], indent=1), flush=True)
    result["load_average_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
