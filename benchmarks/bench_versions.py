#!/usr/bin/env python
"""Two versions of the code side by side on the same machine and load: wall seconds of the
whole-scan commands (`weakbeam classify`, `weakbeam reconstruct` from predictions and with
on-the-fly classification), each in a fresh process, the versions alternating run by run.

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python benchmarks/bench_versions.py --before /tmp/before/src [--runs 4]

Reports the median per command and version and the ratio after / before (the current checkout's
``src`` is "after"); a 8-layer x 31-frame x 384 x 384 simulated scan is made in --workdir first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "classify": ["classify", "scan.h5", "--out", "{v}_pred.h5", "--patch-size", "32", "-q"],
    "reconstruct": ["reconstruct", "scan.h5", "--predictions", "ref_pred.h5", "--out", "{v}_vol.h5", "-q"],
    "reconstruct_on_the_fly": ["reconstruct", "scan.h5", "--patch-size", "32", "--out", "{v}_fly.h5", "-q"],
}


def weakbeam(src: str, argv: list[str], cwd: Path) -> float:
    """Seconds one command takes in a fresh process running the code in ``src``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_weakbeam.cli", *argv], cwd=cwd, check=True,
                   env={**os.environ, "PYTHONPATH": src}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the src folder of the other version")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/weakbeam_bench_versions"))
    args = ap.parse_args()
    versions = {"before": str(Path(args.before).resolve()), "after": str(Path(__file__).resolve().parents[1] / "src")}
    wd = args.workdir
    wd.mkdir(parents=True, exist_ok=True)
    if not (wd / "scan.h5").exists():
        weakbeam(versions["after"], ["simulate", "scan.h5", "--layers", "8", "--frames", "31", "--size", "384", "384",
                                     "--seed", "2"], wd)
    if not (wd / "ref_pred.h5").exists():
        weakbeam(versions["after"], ["classify", "scan.h5", "--out", "ref_pred.h5", "--patch-size", "32", "-q"], wd)
    times: dict[str, dict[str, list[float]]] = {c: {v: [] for v in versions} for c in COMMANDS}
    load_start = os.getloadavg()
    for r in range(args.runs):
        for name, argv in COMMANDS.items():
            for v in ("before", "after") if r % 2 == 0 else ("after", "before"):
                for f in wd.glob(f"{v}_*.h5"):
                    f.unlink()
                times[name][v].append(weakbeam(versions[v], [a.format(v=v) for a in argv], wd))
    median = {c: {v: statistics.median(t) for v, t in d.items()} for c, d in times.items()}
    print(json.dumps({"machine": f"{os.cpu_count()} cores", "runs": args.runs, "seconds": times, "median_s": median,
                      "ratio_after_before": {c: round(m["after"] / m["before"], 3) for c, m in median.items()},
                      "load_start": load_start, "load_end": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
