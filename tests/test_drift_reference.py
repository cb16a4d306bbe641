"""The drift registered on a static reference (a fiducial marker), trend included (issue 10:
the recorded drift within 1 px of the applied one), through the API, the streamed file and the
command line; bad boxes give one-line errors before any work."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_weakbeam.cli import main
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.reconstruction.drift_reference import check_box, parse_box, reference_image
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.simulate import SimulationParams, simulate
from napari_weakbeam.core.simulate.drift import drift_errors, drift_stack
from napari_weakbeam.core.simulate.grain import marker_box, marker_centre, marker_mask
from napari_weakbeam.workflows import reconstruct_scan, run


class _Labels:
    def __init__(self, label, patch):
        self.label, self.patch_size = label, patch


@pytest.fixture(scope="module")
def marker_stack(tmp_path_factory):
    """A 5-layer simulated stack with a 1 um fiducial marker, drifted by a random walk of 5 px
    steps (its trend included): the scan, its labels, the applied drift and a box around the
    marker reaching as far as the drift."""
    sim = simulate(SimulationParams(rows=192, cols=192, layers=5, frames=15, seed=2, walls=0, marker_radius_um=1.0,
                                    exposure=300.0))
    frames, labels, applied = drift_stack(sim.frames, sim.truth.classes(32), 5.0, 3, 32)
    assert np.abs(np.polyfit(np.arange(5), applied, 1)[0]).max() > 0.5  # the walk has a trend
    path = tmp_path_factory.mktemp("marker") / "stack.h5"
    p = sim.params
    write_bliss(path, list(frames), list(sim.angles), sim.layer_positions, pixel_size=p.pixel_size_um,
                two_theta=p.two_theta_deg)
    return str(path), labels, applied, marker_box(p, np.abs(applied).max()), sim


def test_the_marker_does_not_diffract_and_stays_put(marker_stack):
    *_, sim = marker_stack
    m = marker_mask(sim.params)
    assert m.sum() > 50
    assert not sim.truth.grain_mask[:, m].any()  # no layer diffracts inside it
    frames = sim.frames[0]
    span = frames.max(axis=0).astype(float) - frames.min(axis=0)
    assert np.median(span[m]) * 10 < np.median(span[~m])
    assert marker_mask(SimulationParams(rows=32, cols=32, frames=5)) is None  # none by default


def test_drift_on_the_marker_holds_the_trend(marker_stack, tmp_path):
    path, labels, applied, box, _ = marker_stack
    scan = open_scan(path)
    lines_only = run(reconstruct_scan(scan, _Labels(labels, 32), ReconstructionParams(correct_drift=True)))
    err_lines, detrended, _ = drift_errors(lines_only.drift_px, applied)
    assert err_lines > 1.0  # from the lines alone the trend is missing
    rec = run(reconstruct_scan(scan, _Labels(labels, 32), ReconstructionParams(correct_drift=True, drift_reference=box)))
    err, _, _ = drift_errors(rec.drift_px, applied)
    assert err <= 1.0, (rec.drift_px.round(2).tolist(), applied.tolist())
    # streamed to a file: the same drift, and the file says what it was measured on
    out = tmp_path / "vol.h5"
    run(reconstruct_scan(scan, _Labels(labels, 32), ReconstructionParams(correct_drift=True, drift_reference=box), out=out))
    np.testing.assert_allclose(load_reconstruction(out, volumes=False).drift_px, rec.drift_px)
    with h5py.File(out, "r") as f:
        assert "static reference" in f["reconstruction/drift_px"].attrs["measured_on"]


def test_cli_drift_reference_and_its_mistakes(marker_stack, tmp_path, capsys):
    path, labels, applied, box, _ = marker_stack
    pred = tmp_path / "pred.h5"
    from napari_weakbeam.core.classification.predictions import PredictionWriter

    scan = open_scan(path)
    with PredictionWriter(pred, scan, 32) as w:
        for i in range(scan.n_layers):
            w.write_layer(i, labels[i], (labels[i] == 1).astype(np.float32))
    out = tmp_path / "vol.h5"
    text = f"{box[0]}:{box[1]},{box[2]}:{box[3]}"
    assert main(["reconstruct", path, "-p", str(pred), "--out", str(out), "--drift-reference", text, "-q"]) == 0
    assert "on the reference box" in capsys.readouterr().out
    assert drift_errors(load_reconstruction(out, volumes=False).drift_px, applied)[0] <= 1.0
    for bad, words in (("10:20", "ROW0:ROW1,COL0:COL1"), ("0:4,0:40", "at least 8"), ("0:400,0:40", "past the 192 x 192"),
                       ("a:b,c:d", "ROW0:ROW1,COL0:COL1")):
        assert main(["reconstruct", path, "-p", str(pred), "--out", str(tmp_path / "bad.h5"),
                     "--drift-reference", bad, "-q"]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad.h5").exists()
    # a box with nothing static in it (away from the marker): named, one line, no output
    c = marker_centre(_sim_params(marker_stack))
    r0, c0 = (0 if c[0] > 96 else 150), (0 if c[1] > 96 else 150)
    assert main(["reconstruct", path, "-p", str(pred), "--out", str(tmp_path / "none.h5"),
                 "--drift-reference", f"{r0}:{r0 + 40},{c0}:{c0 + 40}", "-q"]) == 2
    err = capsys.readouterr().err
    assert "no non-diffracting feature" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none.h5").exists()


def _sim_params(stack):
    return stack[4].params


def test_box_checks_and_reference_image():
    assert parse_box("1:20,3:40") == (1, 20, 3, 40)
    with pytest.raises(WeakbeamError, match="four integers"):
        check_box((1, 2, 3))
    with pytest.raises(WeakbeamError, match="at least 8"):
        ReconstructionParams(drift_reference=(0, 4, 0, 40))
    d = ReconstructionParams(drift_reference=[0, 10, 0, 10]).to_dict()
    assert d["drift_reference"] == [0, 10, 0, 10]  # JSON for the file's attributes and Dask workers
    assert ReconstructionParams.from_dict(d).drift_reference == (0, 10, 0, 10)
    flat = np.random.default_rng(0).normal(1000, 5, (9, 20, 20)).astype(np.float32)
    assert reference_image(flat) is None  # everything diffracts alike: no reference in it
