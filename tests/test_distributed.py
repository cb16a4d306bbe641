"""Whole scans through Dask: a real LocalCluster (2 worker processes on loopback), real Bliss files,
a real classifier; same labels as one process, a killed worker, resume, an unreachable scheduler."""

from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
import pytest
import torch

from napari_weakbeam.core.distribution import distributed as dist
from napari_weakbeam.core.distribution.distributed import LayerTask, ScanSpec, iter_layer_results, open_client
from napari_weakbeam.core.distribution.distributed_tasks import classify_task
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.predictions import PredictionWriter, classify_layer, load_predictions
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.workflows import classify_scan, reconstruct_scan, run

from _distributed_data import P, calibrated_classifier, write_scan

LAYERS = 6


@pytest.fixture(scope="module")
def bliss(tmp_path_factory) -> str:
    return write_scan(tmp_path_factory.mktemp("dist") / "scan.h5", LAYERS)


@pytest.fixture(scope="module")
def clf(bliss):
    return calibrated_classifier(bliss)


@pytest.fixture(scope="module")
def reference(bliss, clf, tmp_path_factory):
    """The one-process predictions (workflows.classify_scan without a client)."""
    out = tmp_path_factory.mktemp("ref") / "pred.h5"
    run(classify_scan(open_scan(bliss), clf, out))
    pred = load_predictions(out)
    assert set(np.unique(pred.label)) == {1, 2}  # the comparison below means something
    return pred


@pytest.fixture
def client(dask_client):
    """The session's LocalCluster (tests/conftest.py), with both workers up."""
    dask_client.wait_for_workers(2, timeout=60)
    return dask_client


def _assert_same(pred, reference) -> None:
    assert pred.complete
    np.testing.assert_array_equal(pred.label, reference.label)  # bit for bit
    np.testing.assert_allclose(pred.prob, reference.prob, rtol=0, atol=1e-6)


def test_cluster_gives_the_labels_of_one_process(bliss, clf, reference, client, tmp_path):
    scan = open_scan(bliss)
    events = []
    out = run(classify_scan(scan, clf, tmp_path / "pred.h5", client=client), events.append)
    _assert_same(load_predictions(out), reference)
    assert {e.what for e in events} == {"layers"}  # whole layers from the workers
    assert sorted(e.payload.layer for e in events) == list(range(LAYERS))
    assert [(e.done, e.total) for e in events] == [(i, LAYERS) for i in range(1, LAYERS + 1)]
    # The model went to each worker once (a plugin), not once per layer.
    key = classify_task(clf).resource_key
    loads = client.run(lambda: dict(dist.RESOURCE_LOADS))
    assert len(loads) == 2 and all(v.get(key) == 1 for v in loads.values())
    # CPU workers limit torch threads: 2 workers on 2 cores -> one thread each, also in the
    # threads that ran the layers (OpenMP thread counts are per thread).
    want = {max(1, dist._cpu_count() // 2)}
    assert set(client.run(torch.get_num_threads).values()) == want
    addresses = list(client.scheduler_info()["workers"])
    in_tasks = {client.submit(torch.get_num_threads, pure=False, workers=[a]).result() for a in addresses}
    assert in_tasks == want
    # ... and the plugin is removed afterwards, so the model does not stay in the workers' memory.
    assert all(key not in v for v in client.run(lambda: list(dist._RESOURCES)).values())


def test_the_layer_task_in_one_process_matches_too(bliss, clf, reference):
    scan = open_scan(bliss)
    results = list(iter_layer_results(classify_task(clf), scan, range(LAYERS)))
    assert [layer for layer, _ in results] == list(range(LAYERS))
    for layer, (label, prob, *_) in results:
        np.testing.assert_array_equal(label, reference.label[layer])


def slow_classify(scan, layer, classifier):
    """The real per-layer classification, made slow enough that a worker dies while busy."""
    time.sleep(0.4)
    return classify_layer(scan, layer, classifier)


def test_a_killed_worker_does_not_fail_the_run(bliss, clf, reference, client, tmp_path):
    scan = open_scan(bliss)
    base = classify_task(clf)
    task = LayerTask(slow_classify, base.resource, base.load_resource)
    pids_before = client.run(os.getpid)
    killed = {}
    with PredictionWriter(tmp_path / "p.h5", scan, P) as writer:
        results = iter_layer_results(task, ScanSpec.from_scan(scan), range(LAYERS), client=client)
        for done, (layer, result) in enumerate(results, start=1):
            writer.write_layer(layer, *result)
            if done == 1:  # kill a worker that is computing a layer right now
                deadline = time.monotonic() + 5
                while not killed and time.monotonic() < deadline:
                    busy = [a for a, keys in client.processing().items() if keys]
                    if busy:
                        killed[busy[0]] = pids_before[busy[0]]
                        os.kill(pids_before[busy[0]], signal.SIGKILL)
                    else:
                        time.sleep(0.01)
    assert killed, "no worker was busy after the first layer"
    _assert_same(load_predictions(tmp_path / "p.h5"), reference)
    # The nanny replaced the dead worker: the cluster is back to two, with a new process.
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != set(pids_before.values())


def test_resume_after_an_interruption_skips_finished_layers(bliss, clf, reference, client, tmp_path):
    scan = open_scan(bliss)
    out = tmp_path / "pred.h5"
    gen = classify_scan(scan, clf, out, client=client)
    first = [next(gen).payload.layer for _ in range(2)]
    gen.close()  # interrupted: the layers in flight are cancelled
    assert not out.exists()  # only the partial file, never an incomplete PRED.h5
    with PredictionWriter(out, scan, P, resume=True) as writer:
        done_before = writer.done_layers()
    assert set(first) == done_before
    rerun = []
    run(classify_scan(scan, clf, out, client=client, resume=True), lambda ev: rerun.append(ev.payload.layer))
    assert sorted(rerun) == sorted(set(range(LAYERS)) - done_before)
    _assert_same(load_predictions(out), reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_quick_one_line_error():
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(WeakbeamError) as err:
        with open_client(scheduler=address, timeout=2):
            pass
    assert time.monotonic() - t0 < 15
    msg = str(err.value)
    assert address in msg and "not reachable" in msg and "\n" not in msg


def test_scheduler_and_workers_together_are_refused():
    with pytest.raises(WeakbeamError, match="either --scheduler or --workers"):
        with open_client(scheduler="tcp://127.0.0.1:1", workers=2):
            pass


def test_cli_classify_and_reconstruct_on_a_scheduler(bliss, clf, reference, client, tmp_path, capsys):
    from napari_weakbeam.cli import main
    from napari_weakbeam.core.classification.modelfile import save_model
    from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction

    model = save_model(tmp_path / "model.pt", clf)
    address = client.scheduler.address
    pred = tmp_path / "pred.h5"
    assert main(["classify", bliss, "--out", str(pred), "--model", str(model), "--scheduler", address, "-q"]) == 0
    _assert_same(load_predictions(pred), reference)
    # Reconstruction from those predictions: on the cluster and in one process, the same volume.
    common = ["reconstruct", bliss, "--predictions", str(pred), "--method", "ridge", "-q"]
    assert main(common + ["--out", str(tmp_path / "one.h5")]) == 0
    assert main(common + ["--out", str(tmp_path / "dist.h5"), "--scheduler", address]) == 0
    one, on_cluster = load_reconstruction(tmp_path / "one.h5"), load_reconstruction(tmp_path / "dist.h5")
    assert one.volume.std() > 0  # a real map, not an empty one
    np.testing.assert_array_equal(on_cluster.volume, one.volume)
    np.testing.assert_array_equal(on_cluster.mask, one.mask)
    np.testing.assert_array_equal(on_cluster.points_um, one.points_um)
    capsys.readouterr()
    # A user mistake: one line and exit status 2, before anything is read.
    rc = main(["classify", bliss, "--out", str(tmp_path / "x.h5"), "--workers", "0"])
    assert rc == 2 and "--workers: 0: need at least 1 worker" in capsys.readouterr().err


def test_reconstruct_with_on_the_fly_classification_on_the_cluster(bliss, clf, client, tmp_path):
    from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
    from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction

    scan = open_scan(bliss)
    params = ReconstructionParams(method="paper")
    expected = run(reconstruct_scan(scan, clf, params))
    done = []
    run(reconstruct_scan(scan, clf, params, tmp_path / "vol.h5", client=client),
        lambda ev: done.append((ev.done, ev.total)))
    rec = load_reconstruction(tmp_path / "vol.h5")
    assert done == [(i, LAYERS) for i in range(1, LAYERS + 1)]
    np.testing.assert_array_equal(rec.volume, expected.volume)
    np.testing.assert_array_equal(rec.mask, expected.mask)


def test_layers_stream_back_for_napari_without_a_file(bliss, clf, reference, client):
    scan = open_scan(bliss)
    gen = classify_scan(scan, clf, client=client, layers=[4, 1, 3])
    got = {ev.payload.layer: (ev.payload.label, ev.payload.prob) for ev in gen}
    assert sorted(got) == [1, 3, 4]
    for layer, (label, prob) in got.items():
        np.testing.assert_array_equal(label, reference.label[layer])


def test_a_bad_layer_on_a_worker_is_a_one_line_error_and_keeps_the_done_layers(client, clf, tmp_path):
    import h5py

    data = np.random.default_rng(1).poisson(500, (3, 4, 48, 64)).astype(np.float32)
    data[2, 1, 5, 5] = np.nan  # a corrupt frame in the last layer
    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["entry/data"] = data
    scan = open_scan(f"{tmp_path / 'raw.h5'}::/entry/data")
    with pytest.raises(WeakbeamError) as err:
        run(classify_scan(scan, clf, tmp_path / "pred.h5", client=client))
    assert "layer 2 frame 1" in str(err.value) and "NaN" in str(err.value) and "\n" not in str(err.value)
    with PredictionWriter(tmp_path / "pred.h5", scan, P, resume=True) as writer:
        assert 2 not in writer.done_layers()


def test_cli_workers_starts_and_stops_its_own_local_cluster(bliss, clf, reference, tmp_path):
    import psutil

    from napari_weakbeam.cli import main
    from napari_weakbeam.core.classification.modelfile import save_model

    def dask_processes() -> set[int]:  # nannies and workers (not multiprocessing's resource tracker)
        return {p.pid for p in psutil.Process().children(recursive=True)
                if p.is_running() and "spawn_main" in " ".join(p.cmdline())}

    model = save_model(tmp_path / "model.pt", clf)
    before = dask_processes()
    out = tmp_path / "pred.h5"
    assert main(["classify", bliss, "--out", str(out), "--model", str(model), "--workers", "1", "-q"]) == 0
    _assert_same(load_predictions(out), reference)
    # The processes it started are gone again (only the session cluster's may remain).
    time.sleep(0.5)
    assert dask_processes() <= before
