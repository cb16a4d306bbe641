"""`weakbeam classify` end to end on real Bliss HDF5 files, and its one-line errors (exit status 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from napari_weakbeam.cli import main
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.classification.classifier import build_classifier
from napari_weakbeam.core.classification.modelfile import load_model, save_model
from napari_weakbeam.core.classification.predictions import load_predictions
from napari_weakbeam.core.scanfiles.readers import open_scan

P = 16


def make_rocking_scan(path: Path, layers: int = 2, frames: int = 15, shape=(64, 96), seed: int = 0) -> Path:
    """A small Bliss scan whose local rocking peak moves across the field, with bright line defects."""
    rng = np.random.default_rng(seed)
    phi = np.linspace(-0.05, 0.05, frames)
    rows, cols = shape
    phi0 = -0.02 + 0.04 * np.arange(cols)[None, :] / cols * np.ones((rows, 1))
    data = []
    for _ in range(layers):
        lines = np.zeros(shape)
        lines[rng.integers(0, rows, 4), :] = 400
        lines[:, rng.integers(0, cols, 4)] = 400
        sb = 3000 * np.exp(-0.5 * ((phi[:, None, None] - phi0) / 0.008) ** 2)
        data.append(rng.poisson(100 + sb * (1 - 0.3 * (lines > 0)) + lines).astype(np.uint16))
    write_bliss(path, data, [phi] * layers, np.arange(layers) * 2.0, pixel_size=0.05)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_classify")
    scan = make_rocking_scan(d / "scan.h5")
    torch.manual_seed(0)
    model = save_model(d / "wbnet.pt", build_classifier("wbnet", P))
    paper = save_model(d / "paper.pt", build_classifier("paper", P))
    return {"dir": d, "scan": str(scan), "model": str(model), "paper": str(paper)}


def _errors(capsys) -> list[str]:
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith("error:")], err


def test_classify_writes_predictions_the_model_gives(files, capsys):
    out = files["dir"] / "pred.h5"
    rc = main(["classify", files["scan"], "--out", str(out), "--model", files["model"], "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr()
    assert f"wrote {out}" in printed.out and "layer" in printed.err  # summary line and progress bars
    pred = load_predictions(out)
    scan = open_scan(files["scan"])
    assert pred.label.shape == (2, 15, 4, 6) and pred.patch_size == P and pred.complete
    clf = load_model(files["model"])
    for i in range(scan.n_layers):
        lab, prob = clf.predict_frames(scan.layer(i))
        np.testing.assert_array_equal(pred.label[i], lab)
        np.testing.assert_allclose(pred.prob[i], prob, rtol=1e-6)
    np.testing.assert_array_equal(pred.angles, scan.angles)
    # --resume on a finished file keeps it as it is.
    assert main(["classify", files["scan"], "--out", str(out), "--model", files["model"], "--resume", "-q"]) == 0
    np.testing.assert_array_equal(load_predictions(out).label, pred.label)


def test_patch_size_and_scan_selection(files):
    out = files["dir"] / "pred32.h5"
    rc = main(["classify", files["scan"], "--out", str(out), "--model", files["model"], "--patch-size", "32",
               "--scans", "2.1", "--detector", "pco_ff", "-q"])
    assert rc == 0
    pred = load_predictions(out)
    assert pred.patch_size == 32 and pred.label.shape == (1, 15, 2, 3)
    assert pred.scan_names == ["2.1"]


@pytest.mark.parametrize("what", ["missing input", "corrupt model"])
def test_console_script_error_is_one_line_without_traceback(files, tmp_path, what):
    exe = Path(sys.executable).with_name("weakbeam")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04 a pickle that is not a model")
    argv = [str(tmp_path / "nope.h5")] if what == "missing input" else [files["scan"], "--model", str(corrupt)]
    res = subprocess.run([str(exe), "classify", *argv, "--out", str(tmp_path / "p.h5")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert ("nope.h5" if what == "missing input" else "corrupt.pt") in lines[0]


def _bad_inputs(files) -> dict[str, tuple[list[str], str]]:
    d = files["dir"]
    corrupt = d / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a model")
    truncated = d / "truncated.h5"
    truncated.write_bytes(Path(files["scan"]).read_bytes()[:3000])
    nan = d / "nan.h5"
    with h5py.File(nan, "w") as f:
        data = np.full((1, 6, 32, 32), 100.0, np.float32)
        data[0, 3, 1, 1] = np.nan
        f["entry/data"] = data
    s, m = files["scan"], files["model"]
    return {
        "missing input": ([str(d / "missing.h5"), "--model", m], "missing.h5"),
        "wrong dataset path": ([f"{s}::/1.1/instrument/nothing", "--model", m], "nothing"),
        "truncated input": ([str(truncated), "--model", m], "truncated.h5"),
        "unknown scan": ([s, "--scans", "7.1", "--model", m], "7.1"),
        "missing model": ([s, "--model", str(d / "none.pt")], "none.pt"),
        "corrupt model": ([s, "--model", str(corrupt)], "corrupt.pt"),
        "patch size of the paper model": ([s, "--model", files["paper"], "--patch-size", "32"], "16"),
        "NaN in frames": ([f"{nan}::/entry/data", "--model", m], "NaN"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing input", "wrong dataset path", "truncated input", "unknown scan", "missing model",
     "corrupt model", "patch size of the paper model", "NaN in frames"],
)
def test_bad_input_exit_2_one_line_and_old_output_kept(files, capsys, case):
    argv, needle = _bad_inputs(files)[case]
    out = files["dir"] / f"kept_{case.replace(' ', '_')}.h5"
    with h5py.File(out, "w") as f:  # an earlier predictions file (replaceable, but not by a failed run)
        f.create_group("predictions").attrs["note"] = "earlier predictions"
    earlier = out.read_bytes()
    rc = main(["classify", *argv, "--out", str(out), "-q"])
    errors, err = _errors(capsys)
    assert rc == 2, err
    assert len(errors) == 1 and needle in errors[0], err
    assert "Traceback" not in err
    assert out.read_bytes() == earlier


def test_output_folder_is_refused(files, capsys):
    rc = main(["classify", files["scan"], "--out", str(files["dir"]), "--model", files["model"], "-q"])
    errors, _ = _errors(capsys)
    assert rc == 2 and "folder" in errors[0]


def test_simulate_then_classify_with_the_shipped_model(tmp_path, capsys):
    """weakbeam simulate -> weakbeam classify (default model) agrees with the simulator's truth."""
    from napari_weakbeam.core.simulate import load_truth

    sim = tmp_path / "sim.h5"
    assert main(["simulate", str(sim), "--layers", "2", "--frames", "21", "--size", "128", "128", "--seed", "12345"]) == 0
    out = tmp_path / "pred.h5"
    assert main(["classify", str(sim), "--out", str(out), "--patch-size", "32", "--device", "cpu", "-q"]) == 0
    pred = load_predictions(out)
    truth = load_truth(sim).classes(32)
    assert pred.label.shape == truth.shape and pred.model == "default"
    recalls = [np.mean(pred.label[truth == k] == k) for k in (1, 2)]
    assert np.mean(recalls) >= 0.85, recalls  # chance is 0.5
    capsys.readouterr()


def test_tiff_stack_and_edf_folder_inputs(files, tmp_path, capsys):
    """The other input kinds go through the same streaming path."""
    import tifffile
    from fabio.edfimage import EdfImage

    scan = open_scan(files["scan"])
    frames = scan.layer(0)[:6]
    tiff = tmp_path / "stack.tif"
    tifffile.imwrite(tiff, frames)
    edf = tmp_path / "edf"
    edf.mkdir()
    for i, frame in enumerate(frames):
        header = {"motor_mne": "diffry difftz", "motor_pos": f"{-0.03 + 0.01 * i:.4f} 0.0"}
        EdfImage(data=frame, header=header).write(str(edf / f"frame_{i:04d}.edf"))
    expected, _ = load_model(files["model"]).predict_frames(frames)
    for source in (str(tiff), str(edf)):
        out = tmp_path / "pred.h5"
        assert main(["classify", source, "--out", str(out), "--model", files["model"], "-q"]) == 0
        pred = load_predictions(out)
        assert pred.label.shape == (1, 6, 4, 6)
        np.testing.assert_array_equal(pred.label[0], expected)
    np.testing.assert_allclose(pred.angles[0], -0.03 + 0.01 * np.arange(6))
    capsys.readouterr()


def test_output_that_is_the_input_scan_is_refused_and_the_scan_kept(files, tmp_path, capsys):
    import shutil

    scan = tmp_path / "scan.h5"
    shutil.copy(files["scan"], scan)
    before = scan.read_bytes()
    rc = main(["classify", str(scan), "--out", str(scan), "--model", files["model"], "-q"])
    assert rc == 2
    errors, _ = _errors(capsys)
    assert len(errors) == 1 and "is the input being read" in errors[0]
    assert scan.read_bytes() == before


def test_tiff_angles_and_pixel_size_from_the_command_line(files, tmp_path, capsys):
    """A TIFF stack stores no angles: --angles gives them (file or START:STEP), --pixel-size the scale."""
    import tifffile

    from napari_weakbeam.core.distribution.distributed import ScanSpec

    frames = open_scan(files["scan"]).layer(0)[:6]
    tiff = tmp_path / "stack.tif"
    tifffile.imwrite(tiff, frames)
    angles = -0.03 + 0.01 * np.arange(6)
    (tmp_path / "angles.txt").write_text("\n".join(f"{a:.4f}" for a in angles))
    (tmp_path / "angles.csv").write_text(",".join(f"{a:.4f}" for a in angles))
    np.save(tmp_path / "angles.npy", angles)
    for spec in ("angles.txt", "angles.csv", "angles.npy", "-0.03:0.01"):
        out = tmp_path / "pred.h5"
        arg = str(tmp_path / spec) if spec.startswith("angles") else spec
        rc = main(["classify", str(tiff), f"--angles={arg}", "--pixel-size", "0.0376", "--out", str(out),
                   "--model", files["model"], "-q"])
        assert rc == 0, spec
        np.testing.assert_allclose(load_predictions(out).angles[0], angles, atol=1e-9)
        out.unlink()
    capsys.readouterr()

    # Workers reopen the TIFF with the same angles (they travel in the scan's spec).
    scan = open_scan(str(tiff), angles=angles, pixel_size=0.0376)
    again = ScanSpec.from_scan(scan).open()
    np.testing.assert_allclose(again.angles, scan.angles)
    assert again.pixel_size == 0.0376

    # Bad --angles: one line each.
    (tmp_path / "short.txt").write_text("0.1 0.2")
    (tmp_path / "words.txt").write_text("a b c")
    for arg, expected in ((str(tmp_path / "short.txt"), "2 angles for 6 frames"), (str(tmp_path / "words.txt"), "words.txt"),
                          (str(tmp_path / "none.txt"), "not found"), ("1:x", "START:STEP")):
        rc = main(["classify", str(tiff), "--angles", arg, "--out", str(tmp_path / "p.h5"), "--model", files["model"], "-q"])
        errors, _ = _errors(capsys)
        assert rc == 2 and len(errors) == 1 and expected in errors[0], (arg, errors)
    # A Bliss file has its own angles: --angles is refused rather than silently ignored.
    rc = main(["classify", files["scan"], "--angles", "0:1", "--out", str(tmp_path / "p.h5"), "--model", files["model"], "-q"])
    errors, _ = _errors(capsys)
    assert rc == 2 and len(errors) == 1
