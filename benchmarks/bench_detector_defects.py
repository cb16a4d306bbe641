"""Robustness to the camera's defects: hot pixels and cosmic-ray zingers (issue 10).

Each scan of the benchmark set (both generators, one layer each) is reconstructed from the true
classes three times: as simulated, with hot pixels and zingers added
(core/simulate/camera_defects.py: hot pixels at 0.05 % of the field, half of them in pairs, at 0.3 x
the scan's brightest reading; 3-pixel zingers at 0.01 % of each frame's pixels, at 2 x it) with the
repair (core/reconstruction/detector_defects.py, the default), and the same without it; and end to
end (the shipped classifier's labels, then the reconstruction), as simulated and with the defects. Points
recall / precision within 3 px of each axis; the defects flagged on the scans as simulated (our
camera has none, dfxm-geo's has warm pixels); the share of the added defects found; and the
repair's time on a 512 x 512 x 31 layer against the whole layer's reconstruction, same run.

    python benchmarks/bench_detector_defects.py --sets-dir SETS --json results_detector_defects.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _score(path: Path, truth, **kw) -> dict:
    """Points of the reconstruction from the true classes (32 px), scored as bench_reconstruct
    scores them, and the defects it repaired."""
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.workflows import reconstruct_scan, run

    from bench_reconstruct import _Labels, _score as score

    rec = run(reconstruct_scan(open_scan(str(path)), _Labels(truth.classes(32), 32), ReconstructionParams(trace=False, **kw)))
    return score(rec.points_um, truth) | {"defects_repaired": rec.defects.tolist() if rec.defects is not None else None}


def _end_to_end(path: Path, truth, clf) -> dict:
    """Points of the product's path: the shipped classifier's labels (on the frames as they are),
    then the reconstruction (which repairs the defects)."""
    from napari_weakbeam.core.scanfiles.readers import open_scan

    from bench_reconstruct import _end_to_end as end_to_end, _score as score

    return score(end_to_end(open_scan(str(path)), clf)[0].points_um, truth)


def bench_scans(sets_dir: Path, work: Path) -> dict:
    from napari_weakbeam.core.reconstruction.detector_defects import find_defects
    from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.simulate import load_truth
    from napari_weakbeam.core.simulate.camera_defects import add_camera_defects

    import bench_reconstruct

    clf = bench_reconstruct._shipped_classifier()
    rows = {}
    for path in sorted(sets_dir.glob("*.h5")):
        scan, truth = open_scan(str(path)), load_truth(path)
        frames = np.asarray(scan.layer(0))
        hot0, zing0 = find_defects(frames)
        dirty_frames, hot, zing = add_camera_defects(frames, seed=1)
        dirty = work / f"defects_{path.name}"
        write_bliss(dirty, [dirty_frames], [np.asarray(scan.angles[0])], scan.layer_positions,
                    pixel_size=scan.pixel_size, two_theta=(scan.metadata or {}).get("two_theta"))
        h, z = find_defects(dirty_frames)
        found_hot = float(np.mean(np.concatenate([h[hot[:, 0], hot[:, 1]], h[hot[::2, 0], hot[::2, 1] + 1]])))
        found_zing = float(np.mean(z[zing[:, 0], zing[:, 1], zing[:, 2]])) if len(zing) else float("nan")
        row = {"clean": _score(path, truth), "defects_repaired": _score(dirty, truth),
               "defects_not_repaired": _score(dirty, truth, detector_defects=False),
               "end_to_end_clean": _end_to_end(path, truth, clf), "end_to_end_defects": _end_to_end(dirty, truth, clf),
               "flagged_on_clean": {"hot_pixels": int(hot0.sum()), "zinger_values": int(zing0.sum())},
               "added": {"hot_pixels": int(len(hot) + len(hot[::2])), "zingers": int(len(zing))},
               "found": {"hot_pixels": found_hot, "zingers": found_zing}}
        rows[path.stem] = row
        print(path.stem, {k: (round(v["recall_3px"], 3), round(v["precision_3px"], 3)) for k, v in row.items()
                          if isinstance(v, dict) and "recall_3px" in v}, row["flagged_on_clean"], row["found"], flush=True)
        dirty.unlink()
    return rows


def bench_speed(work: Path, repeats: int = 5) -> dict:
    """The repair (find + repair) against the whole reconstruction of one 512 x 512 x 31 layer
    (the repair included), best of ``repeats``."""
    from napari_weakbeam.core.reconstruction.detector_defects import remove_defects
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams, process_layer
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation
    from napari_weakbeam.core.simulate.camera_defects import add_camera_defects

    sim = simulate(SimulationParams(rows=512, cols=512, layers=1, frames=31, seed=3))
    path = work / "speed.h5"
    write_simulation(path, sim)
    scan, truth = open_scan(str(path)), load_truth(path)
    frames = np.asarray(scan.layer(0))
    dirty = add_camera_defects(frames, seed=1)[0]
    labels = truth.classes(32)[0]
    params = ReconstructionParams(patch_size=32, trace=False)

    def best(fn) -> float:
        out = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return min(out)

    repair_clean = best(lambda: remove_defects(frames))
    repair_dirty = best(lambda: remove_defects(dirty))
    layer = best(lambda: process_layer(scan, 0, params, labels))
    return {"repair_clean_s": repair_clean, "repair_with_defects_s": repair_dirty, "layer_s": layer,
            "ratio_to_layer": repair_clean / layer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets-dir", required=True, help="the benchmark set's scans (make_benchmark_set)")
    ap.add_argument("--json", default="results_detector_defects.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}",
                  "load_average_start": list(os.getloadavg()),
                  "scans": bench_scans(Path(args.sets_dir), work), "speed": bench_speed(work),
                  "load_average_end": list(os.getloadavg())}
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["speed"], indent=1))


if __name__ == "__main__":
    main()
