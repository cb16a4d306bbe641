"""One path per user action: the command line, the workflows (in this process and on a real Dask
LocalCluster) and the widgets' worker bodies give the same results, bit for bit, on the bundled
sample data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from napari_weakbeam.cli import main
from napari_weakbeam.core.classification.modelfile import load_default_model, load_model
from napari_weakbeam.core.classification.predictions import load_predictions
from napari_weakbeam.core.classification.training import TrainConfig
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.simulate import SimulationParams
from napari_weakbeam.workflows import (
    Progress,
    adapt,
    classify_scan,
    compare,
    reconstruct_scan,
    run,
    simulate,
)

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "napari_weakbeam" / "sample_data" / "multi_layer.h5"
SCANS = "1.1,2.1,3.1"  # three of its six layers: enough for layer order and resume to matter
P = 32


@pytest.fixture(scope="module")
def scan():
    return open_scan(str(SAMPLE), scans=SCANS.split(","))


@pytest.fixture(scope="module")
def clf():
    return load_default_model().with_patch_size(P)


@pytest.fixture(scope="module")
def cli_pred(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "pred.h5"
    assert main(["classify", str(SAMPLE), "--scans", SCANS, "--patch-size", str(P), "--out", str(out), "-q"]) == 0
    return out


def _same_predictions(a: Path, b: Path) -> None:
    pa, pb = load_predictions(a), load_predictions(b)
    assert pa.complete and pb.complete
    np.testing.assert_array_equal(pa.label, pb.label)
    np.testing.assert_array_equal(pa.prob, pb.prob)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for name in ("patch_intensity", "layer_levels", "angles", "layer_positions"):
            np.testing.assert_array_equal(fa["predictions"][name][()], fb["predictions"][name][()])


def test_classify_cli_workflow_cluster_and_widget_agree(scan, clf, cli_pred, dask_client, tmp_path):
    events: list[Progress] = []
    assert run(classify_scan(scan, clf, tmp_path / "wf.h5", model="default"), events.append) == tmp_path / "wf.h5"
    _same_predictions(cli_pred, tmp_path / "wf.h5")
    assert {e.what for e in events} == {"frames", "layers"} and all(isinstance(e, Progress) for e in events)
    assert [e.done for e in events if e.what == "layers"] == [1, 2, 3]
    run(classify_scan(scan, clf, tmp_path / "dask.h5", client=dask_client, model="default"))
    _same_predictions(cli_pred, tmp_path / "dask.h5")
    # the Predictions widget's "Export" worker (nothing predicted in the viewer yet)
    from napari_weakbeam._napari._jobs import export_job

    shape = load_predictions(cli_pred).label.shape
    job = export_job(scan, clf, P, str(tmp_path / "widget.h5"), np.zeros(shape, np.uint8),
                     np.zeros(shape, np.float32), np.zeros(shape[:2], bool), "default")
    assert [ev.done for ev in job] == [1, 2, 3]
    _same_predictions(cli_pred, tmp_path / "widget.h5")


def test_reconstruct_cli_workflow_cluster_and_widget_agree(scan, cli_pred, dask_client, tmp_path):
    params = ReconstructionParams()
    out = tmp_path / "cli.h5"
    assert main(["reconstruct", str(SAMPLE), "--scans", SCANS, "--predictions", str(cli_pred), "--out", str(out),
                 "-q"]) == 0
    cli = load_reconstruction(out)
    pred = load_predictions(cli_pred)
    in_memory = run(reconstruct_scan(scan, pred, params))
    run(reconstruct_scan(scan, pred, params, tmp_path / "wf.h5"))
    run(reconstruct_scan(scan, pred, params, tmp_path / "dask.h5", client=dask_client))
    from napari_weakbeam._napari._jobs import reconstruct_job

    job = reconstruct_job(scan, pred, params, with_manual=True, tolerance=0.15)
    seen = []
    while True:
        try:
            seen.append(next(job).done)
        except StopIteration as stop:
            widget = stop.value
            break
    assert seen == list(range(1, 7))  # one count over the automated run and the manual reference
    assert cli.points_um.size and cli.lines is not None
    for rec in (in_memory, load_reconstruction(tmp_path / "wf.h5"), load_reconstruction(tmp_path / "dask.h5"),
                widget.auto):
        np.testing.assert_array_equal(rec.volume, cli.volume)
        np.testing.assert_array_equal(rec.mask, cli.mask)
        np.testing.assert_array_equal(rec.points_um, cli.points_um)
        np.testing.assert_array_equal(rec.lines.vertices, cli.lines.vertices)
    manual = run(reconstruct_scan(scan, None, replace(params, method="manual")))
    np.testing.assert_array_equal(widget.manual.mask, manual.mask)


def test_compare_cli_and_workflow_agree(scan, cli_pred, tmp_path, capsys):
    pred = load_predictions(cli_pred)
    run(reconstruct_scan(scan, pred, ReconstructionParams(), tmp_path / "a.h5"))
    run(reconstruct_scan(scan, None, ReconstructionParams(method="manual"), tmp_path / "b.h5"))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    wf = run(compare(tmp_path / "a.h5", tmp_path / "b.h5"))
    assert cli["median"] == wf.stats.median and cli["within_a"] == wf.stats.within_a
    # in memory (the Reconstruct widget compares what it holds): the same statistics
    a, b = load_reconstruction(tmp_path / "a.h5"), load_reconstruction(tmp_path / "b.h5")
    assert run(compare(a, b)).stats == wf.stats


def _weights(model) -> list[torch.Tensor]:
    return [t.detach().cpu() for t in model.net.state_dict().values()]


def test_adapt_cli_workflow_and_widget_agree(scan, tmp_path):
    out = tmp_path / "cli.pt"
    assert main(["train", "--adapt", str(SAMPLE), "--scans", SCANS, "--epochs", "1", "--patch-size", str(P),
                 "--device", "cpu", "--out", str(out), "-q"]) == 0
    config = TrainConfig(start="default", patch_size=P, epochs=1, device="cpu")
    events: list[Progress] = []
    model = run(adapt(scan, config), events.append)
    assert isinstance(events[0].payload, dict) and events[-1].payload.done
    from napari_weakbeam._napari._jobs import adapt_job

    job = adapt_job(scan, None, P, epochs=1)
    while True:
        try:
            next(job)
        except StopIteration as stop:
            widget = stop.value
            break
    for a, b, c in zip(_weights(load_model(out)), _weights(model), _weights(widget)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        if a.is_floating_point():  # the widget's job asks for device auto: the CPU here, the same steps
            torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_simulate_cli_and_workflow_agree(tmp_path):
    args = ["--size", "48", "64", "--frames", "5", "--layers", "2", "--seed", "3"]
    assert main(["simulate", str(tmp_path / "cli.h5"), *args]) == 0
    params = SimulationParams(rows=48, cols=64, frames=5, layers=2, seed=3)
    events: list[Progress] = []
    truth = run(simulate(tmp_path / "wf.h5", params), events.append)
    assert truth is not None and events[-1].done == events[-1].total == 10
    a, b = open_scan(str(tmp_path / "cli.h5")), open_scan(str(tmp_path / "wf.h5"))
    for i in range(2):
        np.testing.assert_array_equal(a.layer(i), b.layer(i))
    # as the command, the workflow never replaces a file of another kind (here: someone's notes)
    (tmp_path / "notes.h5").write_text("my notes")
    from napari_weakbeam.core.errors import WeakbeamError

    with pytest.raises(WeakbeamError, match="notes.h5"):
        run(simulate(tmp_path / "notes.h5", params))
    assert (tmp_path / "notes.h5").read_text() == "my notes"


def test_closing_a_workflow_cancels_and_keeps_the_finished_layers(scan, clf, tmp_path):
    out = tmp_path / "pred.h5"
    workflow = classify_scan(scan, clf, out)
    for ev in workflow:
        if ev.what == "layers":
            break
    workflow.close()
    assert not out.exists()  # never an incomplete file
    resumed = []
    run(classify_scan(scan, clf, out, resume=True), lambda ev: ev.what == "layers" and resumed.append(ev.payload.layer))
    assert resumed == [1, 2] and load_predictions(out).complete


def test_train_cli_and_workflow_agree(scan, tmp_path):
    """`weakbeam train ANNOTATIONS.h5` and workflows.train on the same painted labels: the same model."""
    from napari_weakbeam.core.classification.annotations import Annotations, load_annotations, save_annotations
    from napari_weakbeam.core.simulate import load_truth
    from napari_weakbeam.workflows import train

    truth = load_truth(SAMPLE).classes(P)[:3]
    label = np.zeros_like(truth)
    label[:, [2, 10, 18]] = truth[:, [2, 10, 18]]  # three frames of each layer painted
    save_annotations(tmp_path / "labels.h5", Annotations(label, P, scan.frame_shape, scan.angles,
                                                          source=str(SAMPLE), scan_names=list(scan.scan_names)))
    out = tmp_path / "cli.pt"
    assert main(["train", str(tmp_path / "labels.h5"), "--scan", str(SAMPLE), "--scans", SCANS, "--epochs", "1",
                 "--device", "cpu", "--out", str(out), "-q"]) == 0
    config = TrainConfig(start="default", patch_size=P, epochs=1, device="cpu")
    model = run(train(scan, load_annotations(tmp_path / "labels.h5"), config))
    for a, b in zip(_weights(load_model(out)), _weights(model)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    start = _weights(load_default_model().with_patch_size(P))
    assert any(not torch.equal(a, b) for a, b in zip(start, _weights(model)))  # it did train
