"""The SLURM configuration in docs/cluster.md builds a real dask-jobqueue cluster and job script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"


def _example() -> str:
    text = DOC.read_text()
    block = re.search(r"<!-- cluster-example -->\s*```python\n(.*?)```\s*<!-- end cluster-example -->", text, re.S)
    assert block, "docs/cluster.md lost its checked SLURMCluster example"
    return block.group(1)


def test_the_documented_slurm_cluster_builds_a_valid_job_script(capsys):
    pytest.importorskip("dask_jobqueue")
    namespace: dict = {}
    exec(compile(_example(), str(DOC), "exec"), namespace)  # noqa: S102 (our own documentation)
    cluster = namespace["cluster"]
    try:
        script = capsys.readouterr().out
        assert script == cluster.job_script() + "\n"
        assert "#SBATCH -p nice" in script and "#SBATCH --cpus-per-task=8" in script
        assert "#SBATCH -t 02:00:00" in script and re.search(r"#SBATCH --mem=\d+G", script)
        worker = next(line for line in script.splitlines() if "dask_worker" in line or "dask worker" in line)
        # 4 single-threaded workers per job, each with 8 GB / 4 of the memory, back to our scheduler.
        assert "--nworkers 4" in worker and "--nthreads 1" in worker
        assert cluster.scheduler_address in worker
        limit = float(re.search(r"--memory-limit ([\d.]+)GiB", worker).group(1))
        assert 7 <= limit <= 8
        assert "export WEAKBEAM_TORCH_THREADS=2" in script and "--lifetime 110m" in worker
    finally:
        cluster.close()
