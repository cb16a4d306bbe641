"""`--slurm` against a live single-node SLURM (scripts/slurm-localhost.sh, started by the ``slurm``
fixture): Dask workers in real sbatch jobs, through dask-jobqueue, with the configuration file that
docs/cluster.md shows. Two jobs give the labels and volumes of one process; a job cancelled with
scancel mid-run does not lose a layer; Ctrl-C cancels the jobs; a full queue and an impossible
request are one-line errors."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_weakbeam.cli import main
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.distribution.distributed import LayerTask, ScanSpec, iter_layer_results
from napari_weakbeam.core.distribution.distributed_tasks import classify_task
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.modelfile import save_model
from napari_weakbeam.core.classification.predictions import PredictionWriter, classify_layer, load_predictions
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction
from napari_weakbeam.core.distribution.slurm import SlurmOptions, cluster_kwargs, job_states, load_jobqueue_file, slurm_cluster
from napari_weakbeam.workflows import classify_scan, run

from _distributed_data import P, calibrated_classifier, write_scan

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cluster.md"
LAYERS = 6
live = pytest.mark.slurm


def doc_block(name: str) -> str:
    """The code block between ``<!-- name -->`` and ``<!-- end name -->`` in docs/cluster.md."""
    block = re.search(rf"<!-- {name} -->\s*```\w*\n(.*?)```\s*<!-- end {name} -->", DOC.read_text(), re.S)
    assert block, f"docs/cluster.md lost its '{name}' block"
    return block.group(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 6-layer Bliss scan, a calibrated model file, and the one-process predictions."""
    d = tmp_path_factory.mktemp("slurm")
    scan = write_scan(d / "scan.h5", LAYERS)
    clf = calibrated_classifier(scan)
    run(classify_scan(open_scan(scan), clf, d / "ref.h5"))
    ref = load_predictions(d / "ref.h5")
    assert set(np.unique(ref.label)) == {1, 2}  # both classes: the comparisons mean something
    return {"dir": d, "scan": scan, "clf": clf, "model": str(save_model(d / "model.pt", clf)), "ref": ref}


@pytest.fixture
def config(tmp_path, monkeypatch) -> str:
    """docs/cluster.md's test configuration as slurm.yaml in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slurm.yaml").write_text(doc_block("slurm-test-config"))
    return str(tmp_path / "slurm.yaml")


def active_jobs() -> list[str]:
    """Jobs SLURM still holds as pending or running (any user)."""
    out = subprocess.run(["squeue", "-h", "-t", "PENDING,RUNNING", "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split()


def wait_until_no_jobs(timeout: float = 20.0) -> list[str]:
    """Wait until ``squeue`` lists no job at all (completing ones included); the jobs left."""
    deadline = time.monotonic() + timeout
    while True:
        left = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def assert_same_labels(path, ref) -> None:
    pred = load_predictions(path)
    assert pred.complete
    np.testing.assert_array_equal(pred.label, ref.label)  # bit for bit
    np.testing.assert_allclose(pred.prob, ref.prob, rtol=0, atol=1e-6)


# -- without SLURM: what the options and the configuration file turn into -------------------------


def test_options_override_the_configuration_file_and_workers_use_this_python(tmp_path, monkeypatch):
    pytest.importorskip("dask_jobqueue")
    import dask
    from dask_jobqueue import SLURMCluster

    monkeypatch.chdir(tmp_path)
    (tmp_path / "site.yaml").write_text(doc_block("jobqueue-yaml"))
    settings = load_jobqueue_file(tmp_path / "site.yaml")
    settings["jobqueue.slurm.interface"] = "lo"  # the scheduler starts here, where there is no ib0
    with dask.config.set(settings):
        from_file = cluster_kwargs(SlurmOptions(config="site.yaml"))
        given = cluster_kwargs(SlurmOptions(queue="gpu", cores=2, memory="6GB", walltime="00:20:00"))
        cluster = SLURMCluster(**given)
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
    assert from_file == {"queue": "nice", "cores": 8, "memory": "24GB", "walltime": "02:00:00", "processes": 8}
    assert given == {"queue": "gpu", "cores": 2, "memory": "6GB", "walltime": "00:20:00", "processes": 2}
    for line in ("#SBATCH -p gpu", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=6G", "#SBATCH -t 00:20:00"):
        assert line in script
    worker = next(ln for ln in script.splitlines() if "dask_worker" in ln)
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker")  # the same Python
    assert "--nworkers 2" in worker and "--nthreads 1" in worker  # one single-threaded worker per CPU
    assert "source /data/id03/inhouse/venvs/weakbeam/bin/activate" in script  # the site's prologue


def test_bad_slurm_arguments_are_one_line_errors(data, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobqueue:\n  pbs:\n    cores: 2\n")
    cases = [  # all found before the scan is read or a job submitted
        (["--cluster", str(bad)], f"argument --cluster: {bad}: no 'jobqueue: slurm:' section"),
        (["--cluster", str(tmp_path / "none.yaml")], "none.yaml: No such file or directory"),
        (["--slurm", "--workers", "2"], "argument --workers: not allowed with argument --slurm"),
        (["--slurm-jobs", "2", "--workers", "2"], "give one of --scheduler, --workers or --slurm"),
        (["--slurm", "--slurm-memory", "lots"], "argument --slurm-memory: 'lots': not a size"),
        (["--slurm-jobs", "0"], "argument --slurm-jobs: 0: need at least 1 job"),
    ]
    for extra, message in cases:
        rc = main(["classify", data["scan"], "--out", str(tmp_path / "p.h5"), "--model", data["model"], "-q"] + extra)
        err = capsys.readouterr().err
        assert rc == 2 and message in err and err.count("\n") == 1, (extra, err)


# -- against the live SLURM -----------------------------------------------------------------------


@live
def test_two_slurm_jobs_give_the_labels_and_volumes_of_one_process(slurm, data, config, capsys):
    d, scan = data["dir"], data["scan"]
    common = ["--cluster", config, "--slurm-jobs", "2"]
    assert main(["classify", scan, "--out", "pred.h5", "--model", data["model"]] + common) == 0
    err = capsys.readouterr().err
    jobs = re.search(r"SLURM: submitted jobs (\d+) (\d+) \(partition debug, 1 CPU, 2GB, 00:10:00 each\)", err)
    assert jobs, err
    assert_same_labels("pred.h5", data["ref"])
    assert not active_jobs()  # both jobs cancelled when the command ended
    # Both jobs ran a Dask worker that joined this command's scheduler (their own log files).
    for job in jobs.groups():
        log = Path(f"dask-logs/dask-worker-{job}.err").read_text()
        assert "Registered to:" in log and "tcp://127.0.0.1:" in log
    # Reconstruction from those predictions: 2 SLURM jobs and one process, the same volumes.
    rec = ["reconstruct", scan, "--predictions", "pred.h5", "--method", "ridge", "-q"]
    assert main(rec + ["--out", str(d / "one.h5")]) == 0
    assert main(rec + ["--out", "on_slurm.h5"] + common) == 0
    one, on_slurm = load_reconstruction(d / "one.h5"), load_reconstruction("on_slurm.h5")
    assert one.volume.std() > 0  # a real map
    np.testing.assert_array_equal(on_slurm.volume, one.volume)
    np.testing.assert_array_equal(on_slurm.mask, one.mask)
    np.testing.assert_array_equal(on_slurm.points_um, one.points_um)
    assert not active_jobs()


def slow_classify(scan, layer, classifier):
    """The real per-layer classification, slowed down so that a job is cancelled while busy."""
    time.sleep(0.5)
    return classify_layer(scan, layer, classifier)


@pytest.fixture
def slow_task(data, monkeypatch) -> LayerTask:
    """The classification task with :func:`slow_classify`, which the jobs import from tests/."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    base = classify_task(data["clf"])
    return LayerTask(slow_classify, base.resource, base.load_resource)



def _write_layers(task, scan, writer, client):
    """Each layer's result written as it arrives from the workers: yields (layer, done, total)."""
    results = iter_layer_results(task, ScanSpec.from_scan(scan), range(LAYERS), client=client)
    for done, (layer, result) in enumerate(results, start=1):
        writer.write_layer(layer, *result)
        yield layer, done, LAYERS

@live
def test_a_job_cancelled_with_scancel_mid_run_loses_no_layer(slurm, data, config, slow_task):
    scan = open_scan(data["scan"])
    task = slow_task
    cancelled = None
    with slurm_cluster(SlurmOptions(jobs=2, config=config)) as client:
        client.wait_for_workers(2, timeout=60)
        job_of = client.run(lambda: os.environ["SLURM_JOB_ID"])  # worker address -> its SLURM job
        assert len(set(job_of.values())) == 2
        with PredictionWriter("pred.h5", scan, P) as writer:
            for _, done, total in _write_layers(task, scan, writer, client):
                if done == 1:  # cancel the job of a worker that is computing a layer right now
                    deadline = time.monotonic() + 5
                    while cancelled is None and time.monotonic() < deadline:
                        busy = [a for a, keys in client.processing().items() if keys]
                        if busy:
                            cancelled = job_of[busy[0]]
                            subprocess.run(["scancel", cancelled], check=True)
                        else:
                            time.sleep(0.01)
        assert cancelled is not None, "no worker was busy after the first layer"
        assert done == total == LAYERS
        survivors = set(job_of.values()) - {cancelled}
        assert set(active_jobs()) & set(job_of.values()) == survivors  # the other job finished the run
    assert_same_labels("pred.h5", data["ref"])
    assert not active_jobs()


@live
def test_when_every_job_has_ended_the_run_stops_with_one_line(slurm, data, config, slow_task):
    scan = open_scan(data["scan"])
    t0 = None
    with pytest.raises(WeakbeamError) as err:
        with slurm_cluster(SlurmOptions(jobs=1, config=config)) as client:
            job = next(iter(client.run(lambda: os.environ["SLURM_JOB_ID"]).values()))
            with PredictionWriter("pred.h5", scan, P) as writer:
                for _, done, _ in _write_layers(slow_task, scan, writer, client):
                    if done == 1:  # the allocation ends (walltime, scancel) with layers left
                        subprocess.run(["scancel", job], check=True)
                        t0 = time.monotonic()
                assert done == 0, "the run went on with no job"
    assert t0 is not None and time.monotonic() - t0 < 60
    assert re.fullmatch(rf"SLURM: every worker job has ended \({job} (CANCELLED|COMPLETING|gone)\) before the last layer",
                        str(err.value)), err.value
    assert not active_jobs()


@pytest.fixture(scope="module")
def long_scan(tmp_path_factory) -> tuple[Path, int]:
    """A scan whose classification lasts long after its first layer on any machine (64 layers of
    9 frames of 2048x2048, ~0.7 s a layer here): the signal must come mid-run. A 64x64 tile repeated
    and bitshuffle-compressed, so the file is quick to write (~6 s, 160 MB)."""
    n = 64
    tile = np.random.default_rng(0).poisson(1000, (9, 64, 64)).astype(np.uint16)
    layer = np.tile(tile, (1, 32, 32))
    path = tmp_path_factory.mktemp("long") / "big.h5"
    write_bliss(path, [layer] * n, [np.linspace(-0.02, 0.02, 9)] * n, 2.0 * np.arange(n), pixel_size=0.05,
                compression="bitshuffle")
    return path, n


@live
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_cancels_the_slurm_jobs(slurm, data, config, long_scan, tmp_path, sig):
    """Ctrl-C in the terminal, or SIGTERM (kill; scancel of a job that runs the command)."""
    big, n = long_scan
    # The command in a terminal (a pseudo-terminal: real progress bars), then the signal.
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns
    cmd = [sys.executable, "-m", "napari_weakbeam.cli", "classify", str(big), "--out", "pred.h5",
           "--model", data["model"], "--cluster", config, "--slurm-jobs", "2"]
    proc = subprocess.Popen(cmd, stdin=follower, stdout=follower, stderr=follower, cwd=tmp_path)
    os.close(follower)
    screen = []
    reader = threading.Thread(target=_read_all, args=(leader, screen), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not re.search(rf"\| *[1-9]\d*/{n} ", "".join(screen)):  # a layer is done: mid-run
        assert proc.poll() is None and time.monotonic() < deadline, "".join(screen)
        time.sleep(0.05)
    jobs = re.search(r"submitted jobs (\d+) (\d+)", "".join(screen)).groups()
    proc.send_signal(sig)
    shown = int(re.findall(rf"\| *(\d+)/{n} ", "".join(screen))[-1])
    rc = proc.wait(timeout=60)
    reader.join(timeout=5)
    assert rc == 130, f"signal sent at {shown}/{n} layers shown; " + "".join(screen)[-3000:]
    assert "interrupted" in "".join(screen)
    assert not set(jobs) & set(active_jobs())  # no job pending or running once the command is back
    assert not wait_until_no_jobs()  # and none left even completing, shortly after
    assert (tmp_path / ".pred.h5.partial").exists() and not (tmp_path / "pred.h5").exists()  # kept for --resume


def _read_all(fd: int, into: list[str]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed with the process
            return
        if not chunk:
            return
        into.append(chunk.decode(errors="replace"))


@live
def test_a_full_queue_is_a_one_line_error_after_the_wait(slurm, data, config, capsys):
    # Another user's job holds both CPUs of the node: ours stays pending (Resources).
    blocker = subprocess.run(["sbatch", "--parsable", "-c", "2", "-o", "/dev/null", "--wrap", "sleep 120"],
                             capture_output=True, text=True, check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while job_states([blocker]).get(blocker, ("",))[0] != "RUNNING":
            assert time.monotonic() < deadline, "the blocking job did not start"
            time.sleep(0.2)
        t0 = time.monotonic()
        rc = main(["classify", data["scan"], "--out", "pred.h5", "--model", data["model"], "--cluster", config,
                   "--slurm-wait", "3", "-q"])
        took = time.monotonic() - t0
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1, err
        assert re.match(r"error: SLURM: no worker job started within 3 s \(\d+ PENDING( \((Resources|Priority)\))?\): "
                        r"the queue is full or no node fits partition debug, 1 CPU, 2GB, 00:10:00", err), err
        assert took < 30
        assert active_jobs() == [blocker]  # our pending job was cancelled
    finally:
        subprocess.run(["scancel", blocker])
    assert not Path("pred.h5").exists()


@live
def test_a_job_no_node_can_run_is_refused_at_once(slurm, data, config, capsys):
    t0 = time.monotonic()
    rc = main(["classify", data["scan"], "--out", "pred.h5", "--model", data["model"], "--cluster", config,
               "--slurm-memory", "9999GB", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("error: SLURM refuses the worker job (partition debug, 1 CPU, 9999GB, 00:10:00): ")
    assert "Requested node configuration is not available" in err
    assert time.monotonic() - t0 < 30 and not active_jobs()  # nothing was submitted


@live
def test_jobs_that_cannot_start_a_worker_are_a_one_line_error(slurm, data, config, capsys):
    # A node without the command's Python (not on a shared file system): the jobs fail at once.
    Path(config).write_text(Path(config).read_text() + "    python: /nonexistent/venv/bin/python\n")
    rc = main(["classify", data["scan"], "--out", "pred.h5", "--model", data["model"], "--cluster", config, "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert re.match(r"error: SLURM: the worker jobs ended before a worker connected \(\d+ (FAILED|COMPLETED|gone)\); "
                    r"see their output", err), err
    job = re.search(r"\((\d+) ", err).group(1)
    assert "/nonexistent/venv/bin/python" in Path(f"dask-logs/dask-worker-{job}.err").read_text()
    assert not active_jobs()


def first_frame_mean(scan, layer, resource):
    return float(scan.layer(layer)[0].mean())


def test_a_worker_that_does_not_see_the_input_says_so(dask_client, data, tmp_path):
    """A worker on a node without the shared file system (here: the file moved after the command
    opened it) fails with one line that names the path and what must be shared."""
    copy = tmp_path / "scan.h5"
    copy.write_bytes(Path(data["scan"]).read_bytes())
    scan = open_scan(str(copy))
    copy.rename(tmp_path / "elsewhere.h5")
    with pytest.raises(WeakbeamError) as err:  # a task without a model: nothing left on the workers
        list(iter_layer_results(LayerTask(first_frame_mean), ScanSpec.from_scan(scan), [0], client=dask_client))
    msg = str(err.value)
    assert f"{copy}: not found on worker host" in msg and "same path" in msg and "shared file system" in msg
