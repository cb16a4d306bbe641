"""Whole-scan throughput on SLURM jobs (``--slurm``) against one process and a LocalCluster, same run.

Uses the live single-node SLURM of ``scripts/slurm-localhost.sh`` (started here if it is not up,
and stopped again after; needs root and slurm-wlm + munge) and the dataset, the timings and the
tables of ``bench_distributed.py``: one process (the baseline; also with 1 torch thread, as
a 1-CPU job's worker has), a LocalCluster of 1 and 2 workers,
and ``core.distribution.slurm.slurm_cluster`` with 1 and 2 jobs of 1 CPU (one single-threaded worker each), all
on the same file in the same run. Start-up (sbatch until every worker has joined) is reported
apart from the throughput. Prints JSON and a Markdown table.

    sudo .venv/bin/python benchmarks/bench_slurm.py [--layers 12 --frames 31 --size 1024 --memory 2GB]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent / "scripts" / "slurm-localhost.sh"
sys.path.insert(0, str(HERE))

import bench_distributed as bd  # noqa: E402


@contextlib.contextmanager
def localhost_slurm():
    """The single-node SLURM, started for the benchmark if it is not already up."""
    was_up = subprocess.run([SCRIPT, "status"], capture_output=True).returncode == 0
    if not was_up:
        subprocess.run([SCRIPT, "start"], check=True)
    try:
        yield
    finally:
        if not was_up:
            subprocess.run([SCRIPT, "stop"], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--frames", type=int, default=31)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--memory", default="2GB", help="memory per SLURM job (one worker)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    from napari_weakbeam.core.distribution.distributed import _cpu_count
    from napari_weakbeam.core.distribution.slurm import SlurmOptions, slurm_cluster

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="wb_bench_slurm_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"scan_{args.layers}x{args.frames}x{args.size}.h5"
    if not path.exists():
        bd.make_dataset(path, args.layers, args.frames, args.size, 1)
    config = workdir / "slurm.yaml"
    # slurmd starts jobs at nice 0: renice them to this process's level, which the one-process runs
    # and the LocalCluster workers inherit, so that all rows compete alike with other load.
    config.write_text(f"jobqueue:\n  slurm:\n    queue: debug\n    cores: 1\n    memory: {args.memory}\n"
                      f"    walltime: '00:30:00'\n    interface: lo\n    log-directory: {workdir / 'dask-logs'}\n"
                      f"    job-script-prologue: ['renice -n {os.nice(0)} -p $$ >/dev/null']\n")
    # The jobs unpickle this benchmark's helpers (bench_distributed._peak_rss_mb): let them import it.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    n_frames = args.layers * args.frames
    load = {"before": os.getloadavg()}
    with localhost_slurm():
        runs = {"1 process": bd.one_process(path, workdir, _cpu_count()),
                "1 process, 1 torch thread": bd.one_process(path, workdir, 1)}
        for w in (1, 2):
            runs[f"LocalCluster, {w} worker{'s' * (w > 1)}"] = bd.on_cluster(path, workdir, w)
        for j in (1, 2):
            def cluster(j=j):
                return slurm_cluster(SlurmOptions(jobs=j, config=str(config)))
            runs[f"SLURM, {j} job{'s' * (j > 1)} of 1 CPU"] = bd.on_cluster(path, workdir, j, cluster, f"slurm{j}")
    load["after"] = os.getloadavg()
    base = runs["1 process"]
    rows = [{
        "run": name,
        "classify_fps": n_frames / r["classify_s"],
        "classify_ratio": base["classify_s"] / r["classify_s"],
        "reconstruct_fps": n_frames / r["reconstruct_s"],
        "reconstruct_ratio": base["reconstruct_s"] / r["reconstruct_s"],
        "peak_mb": [round(m) for m in r["peak_mb"]],
        "start_s": r.get("start_s", 0.0),
    } for name, r in runs.items()]
    result = {
        "machine": f"{platform.machine()}, {_cpu_count()} CPUs, {platform.python_version()}, {platform.platform()}",
        "dataset": f"{args.layers} layers x {args.frames} frames x {args.size}x{args.size} uint16 "
        f"({n_frames} frames, {n_frames * args.size**2 * 2 / 2**20:.0f} MiB)",
        "slurm_job": f"1 CPU, {args.memory}, partition debug of scripts/slurm-localhost.sh",
        "load_average_1_5_15min": load,
        "rows": rows,
    }
    print(json.dumps(result, indent=1))
    print("\n| run | start-up (s) | classify frames/s | ratio | reconstruct frames/s | ratio | peak RSS per worker (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['start_s']:.1f} | {r['classify_fps']:.1f} | {r['classify_ratio']:.2f} | "
              f"{r['reconstruct_fps']:.1f} | {r['reconstruct_ratio']:.2f} | {', '.join(map(str, r['peak_mb']))} |")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
