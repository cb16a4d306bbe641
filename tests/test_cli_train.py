"""`weakbeam train` end to end on real Bliss HDF5 and annotation files, and its one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from napari_weakbeam.cli import main
from napari_weakbeam.core.classification.annotations import Annotations, save_annotations
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.classification.modelfile import load_model, save_model
from napari_weakbeam.core.classification.predictions import load_predictions
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.classification.rocking_aid import suggest_scan_labels
from test_cli_classify import make_rocking_scan

P = 16
FAST = ["--epochs", "2", "--batch-size", "32", "--device", "cpu", "-q"]


def _annotations(scan, label: np.ndarray, source: str) -> Annotations:
    return Annotations(label=label, patch_size=P, frame_shape=scan.frame_shape, angles=scan.angles,
                       layer_positions=scan.layer_positions, source=source, scan_names=scan.scan_names)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_train")
    scan_path = str(make_rocking_scan(d / "scan.h5", frames=11))
    scan = open_scan(scan_path)
    # "Hand" labels: the rocking-curve suggestions on a few frames of the first layer only.
    suggested = suggest_scan_labels(scan, P)
    hand = np.zeros_like(suggested)
    hand[0, [0, 5, 10]] = suggested[0, [0, 5, 10]]
    assert set(np.unique(hand)) == {0, 1, 2}
    ann = d / "labels.h5"
    save_annotations(ann, _annotations(scan, hand, scan_path))
    only_wb = d / "only_wb.h5"
    save_annotations(only_wb, _annotations(scan, np.where(hand == 2, 0, hand).astype(np.uint8), scan_path))
    other = d / "other.h5"  # labels painted on another scan (other frame size)
    save_annotations(other, Annotations(label=np.ones((2, 11, 2, 2), np.uint8), patch_size=P, frame_shape=(32, 32),
                                        source="elsewhere.h5"))
    torch.manual_seed(0)
    start = save_model(d / "start.pt", build_classifier("wbnet", P))
    paper32 = save_model(d / "paper32.pt", build_classifier("paper", 32))
    return {"dir": d, "scan": scan_path, "ann": str(ann), "only_wb": str(only_wb), "other": str(other),
            "start": str(start), "paper32": str(paper32)}


def test_train_from_rocking_curve_suggestions(files, capsys):
    out = files["dir"] / "suggested.pt"
    rc = main(["train", "--suggest", "--scan", files["scan"], "--out", str(out), "--from", "scratch",
               "--patch-size", str(P), "--max-suggested", "200", *FAST])
    assert rc == 0, capsys.readouterr().err
    assert f"saved {out}" in capsys.readouterr().out
    model = load_model(out)
    assert model.arch == "scanwb" and model.scan_aware and model.patch_size == P
    assert "rocking-curve" in model.provenance["labels"] and model.provenance["scan"].endswith("scan.h5")
    # The new model classifies the scan through the command line.
    pred = files["dir"] / "pred.h5"
    assert main(["classify", files["scan"], "--model", str(out), "--out", str(pred), "-q"]) == 0
    assert load_predictions(pred).label.shape == (2, 11, 4, 6)


def test_fine_tune_from_annotations_and_scan_recorded_in_them(files, capsys):
    out = files["dir"] / "tuned.pt"
    # No --scan: the annotation file says which scan it belongs to.
    rc = main(["train", files["ann"], "--out", str(out), "--from", files["start"], *FAST])
    assert rc == 0, capsys.readouterr().err
    model = load_model(out)
    assert model.provenance["fine_tuned_from"] == files["start"]
    assert model.provenance["labels"] == f"annotations {files['ann']}"
    before = load_model(files["start"]).net.state_dict()
    assert any(not torch.equal(v, model.net.state_dict()[k]) for k, v in before.items())


def test_paper_architecture_from_scratch_with_annotations_and_suggestions(files, capsys):
    out = files["dir"] / "paper.pt"
    rc = main(["train", files["ann"], "--suggest", "--max-suggested", "100", "--scan", files["scan"],
               "--out", str(out), "--from", "scratch", "--arch", "paper", "--epochs", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    model = load_model(out)
    assert model.arch == "paper" and model.patch_size == P
    assert "+ rocking-curve suggestions" in model.provenance["labels"]


def _cases(files) -> dict[str, tuple[list[str], str]]:
    d, s = files["dir"], files["scan"]
    corrupt = d / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04 not a model at all")
    return {
        "no labels": (["--scan", s], "--suggest"),
        "missing annotations": ([str(d / "none.h5"), "--scan", s], "none.h5"),
        "annotations of another scan": ([files["other"], "--scan", s], "do not match"),
        "one class only": ([files["only_wb"], "--scan", s, "--from", "scratch"], "weak beam"),
        "patch size differs from annotations": ([files["ann"], "--scan", s, "--patch-size", "32"], "16-pixel"),
        "corrupt starting model": ([files["ann"], "--scan", s, "--from", str(corrupt)], "corrupt.pt"),
        "arch differs from starting model": ([files["ann"], "--scan", s, "--from", files["start"], "--arch", "paper"], "wbnet"),
        "missing scan": ([files["ann"], "--scan", str(d / "gone.h5")], "gone.h5"),
        "paper starting model of another patch size": ([files["ann"], "--scan", s, "--from", files["paper32"]], "32-pixel"),
        "zero epochs": ([files["ann"], "--scan", s, "--epochs", "0"], "--epochs"),
    }


@pytest.mark.parametrize(
    "case",
    ["no labels", "missing annotations", "annotations of another scan", "one class only",
     "patch size differs from annotations", "corrupt starting model", "arch differs from starting model",
     "missing scan", "paper starting model of another patch size", "zero epochs"],
)
def test_bad_input_exit_2_one_line_and_saved_model_kept(files, capsys, case):
    argv, needle = _cases(files)[case]
    out = files["dir"] / f"kept_{case.replace(' ', '_')}.pt"
    shutil.copyfile(files["start"], out)  # the user's earlier model (replaceable, but not by a failed run)
    earlier = out.read_bytes()
    rc = main(["train", *argv, "--out", str(out), "-q"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2, err
    assert len(errors) == 1 and needle in errors[0], err
    assert "Traceback" not in err
    assert out.read_bytes() == earlier


def test_simulate_annotate_train_classify_end_to_end(tmp_path, capsys):
    """weakbeam simulate -> labels saved as annotations -> weakbeam train -> weakbeam classify."""
    from napari_weakbeam.core.simulate import load_truth

    sim = tmp_path / "sim.h5"
    assert main(["simulate", str(sim), "--layers", "2", "--frames", "15", "--size", "64", "96", "--seed", "11"]) == 0
    scan = open_scan(str(sim))
    truth = load_truth(sim).classes(32)
    hand = truth.copy()
    hand[1] = 0  # labels on the first layer only, as a user would paint them
    ann = tmp_path / "labels.h5"
    save_annotations(ann, Annotations(label=hand, patch_size=32, frame_shape=scan.frame_shape, angles=scan.angles,
                                      layer_positions=scan.layer_positions, source=str(sim),
                                      scan_names=scan.scan_names))
    model = tmp_path / "model.pt"
    assert main(["train", str(ann), "--out", str(model), "--from", "scratch", "--epochs", "1", "-q"]) == 0
    assert load_model(model).patch_size == 32
    pred_path = tmp_path / "pred.h5"
    assert main(["classify", str(sim), "--model", str(model), "--out", str(pred_path), "-q"]) == 0
    pred = load_predictions(pred_path)
    assert pred.label.shape == truth.shape and set(np.unique(pred.label)) <= {1, 2}
    pred.check_matches(scan)
    assert pred.scan_names == scan.scan_names and pred.source == scan.source
    capsys.readouterr()
