"""Reconstruction across a scan: thresholds from the scan's noise level, seamless WB weights,
drift registration, 3D line tracing, line files (HDF5, VTK through meshio, CSV) and scoring."""

from __future__ import annotations

import json

import h5py
import meshio
import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_weakbeam.cli import main
from napari_weakbeam.core.scanfiles.bliss_writer import write_bliss
from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.reconstruction.exports import export_lines, export_lines_csv, export_lines_mesh, read_lines
from napari_weakbeam.core.reconstruction.drift import register_drift, registration_image
from napari_weakbeam.core.reconstruction.line_scoring import score_lines, truth_line_points
from napari_weakbeam.core.reconstruction.lines import Lines, layer_pieces, move_ratio, trace_lines
from napari_weakbeam.core.reconstruction.tails import tail_images
from napari_weakbeam.core.classification.predictions import PredictionWriter
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.reconstruction.reconstruct import (
    ReconstructionParams,
    noise_level,
    normalised_sum,
    scan_noise_level,
    segment_map,
    wb_weights,
)
from napari_weakbeam.core.reconstruction.reconstruction_io import load_reconstruction
from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation
from napari_weakbeam.workflows import reconstruct_scan, run

from recon_synth import synth_layer

P = 16


def _write(path, layers, angles, positions=None, pixel=0.05):
    positions = 2.0 * np.arange(len(layers)) if positions is None else positions
    write_bliss(path, layers, angles, positions, pixel_size=pixel)
    return open_scan(str(path))


class _Labels:
    def __init__(self, label, patch_size):
        self.label, self.patch_size = label, patch_size


# -- thresholds that hold across the scan ---------------------------------------------------------


def test_faint_layer_with_three_lines_is_not_empty(tmp_path):
    """A faint layer of three lines beside bright, busy layers: the same noise-based decision for
    every layer finds its lines (a per-layer percentile rule scaled to the bright layers would not)."""
    layers = [synth_layer(10, n_lines=12), synth_layer(11, n_lines=3, wb_level=60.0), synth_layer(12, n_lines=12)]
    scan = _write(tmp_path / "scan.h5", [lay[0] for lay in layers], [lay[1] for lay in layers])
    labels = _Labels(np.stack([lay[2] for lay in layers]), P)
    rec = run(reconstruct_scan(scan, labels, ReconstructionParams()))
    core = layers[1][3]
    found = rec.mask[1]
    assert found.sum() > 20, "the faint layer came out (nearly) empty"
    r, c = np.nonzero(core)
    fr, fc = np.nonzero(found)
    d = cKDTree(np.column_stack([fr, fc])).query(np.column_stack([r, c]))[0]
    assert np.mean(d <= 3) >= 0.8  # its three lines are found
    d_back = cKDTree(np.column_stack([r, c])).query(np.column_stack([fr, fc]))[0]
    assert np.mean(d_back <= 3) >= 0.8  # and little else
    # one decision for the scan: the scan's level is the median of the layers', every mask uses it
    levels = [noise_level(rec.volume[i]) for i in range(3)]
    assert rec.noise == pytest.approx(scan_noise_level(levels))
    for i in range(3):
        np.testing.assert_array_equal(rec.mask[i], segment_map(rec.volume[i], ReconstructionParams(patch_size=P), rec.noise))


def test_noise_level_ignores_the_lines():
    rng = np.random.default_rng(0)
    bg = rng.normal(5.0, 2.0, (128, 128)).astype(np.float32)
    few, many = bg.copy(), bg.copy()
    few[60:62, 10:100] += 500
    for r in range(10, 120, 12):
        many[r:r + 2, 10:120] += 500
    for img in (few, many):
        centre, spread = noise_level(img)
        assert centre == pytest.approx(5.0, abs=0.5) and spread == pytest.approx(2.0, rel=0.25)


# -- no patch seams ------------------------------------------------------------------------------


def _border_jump(m: np.ndarray, p: int) -> tuple[float, float]:
    """Mean |step| between neighbouring columns across patch borders and within patches."""
    steps = np.abs(np.diff(m, axis=1)).mean(axis=0)
    border = np.arange(p - 1, m.shape[1] - 1, p)
    inside = np.setdiff1d(np.arange(m.shape[1] - 1), border)
    return float(steps[border].max()), float(steps[inside].max())


def test_no_seams_across_patch_borders():
    """A uniform weak-beam texture with per-patch WB probabilities that change from patch to
    patch: the map changes smoothly across patch borders (no step larger than inside patches)."""
    rows, cols, n = 64, 64, 6
    yy, xx = np.mgrid[:rows, :cols]
    frames = np.stack([100 + 400 * (1 + np.sin(xx / 3.0 + k) * np.cos(yy / 4.0)) for k in range(n)]).astype(np.uint16)
    prob = np.random.default_rng(1).uniform(0.0, 1.0, (n, rows // P, cols // P)).astype(np.float32)
    weights = wb_weights(prob, P, (rows, cols))
    b, i = _border_jump(weights.mean(axis=0), P)
    assert b <= 1.5 * i + 1e-6  # the weights themselves are continuous
    m = normalised_sum(frames, prob, ReconstructionParams(patch_size=P, dark_level=100.0, background="none"))
    b, i = _border_jump(m, P)
    assert b <= 1.5 * i, f"step across patch borders {b:.3g} vs {i:.3g} inside patches"
    # the weights follow the probabilities at the patch centres
    c = P // 2 - 1
    np.testing.assert_allclose(weights[:, c::P, c::P], prob, atol=0.08)


def test_weights_from_classes_and_probabilities():
    lab = np.array([[[1, 2], [0, 1]]], np.uint8)
    w = wb_weights(lab, 4, (8, 8))
    assert w[0, 1, 1] == pytest.approx(1.0) and w[0, 1, 6] == pytest.approx(0.0)  # WB, SB patch centres
    assert w[0, 6, 1] == pytest.approx(1.0)  # unclassified counts as WB by default
    assert wb_weights(lab, 4, (8, 8), use_ambiguous=False)[0, 6, 1] == pytest.approx(0.0)
    prob = np.array([[[0.9, np.nan], [0.2, 0.5]]], np.float32)
    w = wb_weights(prob, 4, (8, 8))
    assert np.isfinite(w).all() and w[0, 1, 1] == pytest.approx(0.9)


# -- drift -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_layer():
    sim = simulate(SimulationParams(rows=128, cols=128, layers=1, frames=15, seed=4, walls=1))
    return sim


def test_registered_drift_within_a_pixel(one_layer, tmp_path):
    """The same structure in every layer, shifted by up to 5 px per layer: the registered drift
    (recorded in the file) is within 1 px of the applied one."""
    steps = np.array([[0, 0], [3, -4], [-5, 0], [2, 2], [0, 5]])
    drift = np.cumsum(steps, axis=0)
    frames = one_layer.frames[0]
    layers = [np.roll(frames, tuple(d), axis=(-2, -1)) for d in drift]
    scan = _write(tmp_path / "drift.h5", layers, [one_layer.angles[0]] * len(layers))
    regs = [registration_image(scan.layer(i), scan.angles[i]) for i in range(scan.n_layers)]
    found = register_drift(regs)
    assert np.abs(found - drift).max() <= 1.0
    params = ReconstructionParams(correct_drift=True)
    out = tmp_path / "vol.h5"
    run(reconstruct_scan(scan, None, params, out))
    rec = load_reconstruction(out)
    assert np.abs(rec.drift_px - drift).max() <= 1.0
    with h5py.File(out) as f:
        assert bool(f["reconstruction/drift_px"].attrs["applied"])
    # corrected: every layer's points land on the first layer's
    z = rec.points_um[:, 0]
    first = rec.points_um[z == z.min()][:, 1:]
    last = rec.points_um[z == z.max()][:, 1:]
    d = cKDTree(first).query(last)[0]
    assert np.median(d) <= 0.5 * rec.voxel_size_um[2]


@pytest.mark.parametrize("step_px", [0.0, 5.0])
def test_drift_of_a_simulated_stack_from_its_lines(step_px, tmp_path):
    """A simulated stack whose lines move between layers (a registration of the layers follows
    them), drifted by a random walk of 5 px steps: the recorded drift is within 1 px of the
    applied one once the straight line through the errors is taken out (the trend no line can
    tell from an inclination, docs/reconstruction.md), and without drift none is recorded."""
    from napari_weakbeam.core.simulate.drift import drift_errors, drift_stack

    sim = simulate(SimulationParams(rows=192, cols=192, layers=5, frames=15, seed=2, walls=0))
    frames, labels, applied = drift_stack(sim.frames, sim.truth.classes(32), step_px, 3, 32)
    scan = _write(tmp_path / "drift.h5", list(frames), list(sim.angles), sim.layer_positions)
    rec = run(reconstruct_scan(scan, _Labels(labels, 32), ReconstructionParams(correct_drift=True)))
    err, detrended, _ = drift_errors(rec.drift_px, applied)
    assert detrended <= 1.0, (rec.drift_px.round(1).tolist(), applied.tolist())
    if step_px == 0:
        assert err <= 1.0, rec.drift_px.round(1).tolist()
    else:  # a registration of the orientation maps alone is far off on the same stack
        regs = [registration_image(scan.layer(i), scan.angles[i]) for i in range(scan.n_layers)]
        assert drift_errors(register_drift(regs), applied)[1] > 1.0


# -- tracing ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def line_scan(tmp_path_factory):
    """A simulated 5-layer scan of free dislocation lines, with the true classes as predictions
    (a fixed seed: the benchmark reports the spread over seeds, docs/benchmarks.md)."""
    d = tmp_path_factory.mktemp("lines")
    path = d / "sim.h5"
    write_simulation(path, simulate(SimulationParams(rows=192, cols=192, layers=5, frames=15, seed=2, walls=0)))
    scan, truth = open_scan(str(path)), load_truth(path)
    cls = truth.classes(32)
    pred = d / "pred.h5"
    with PredictionWriter(pred, scan, 32) as w:
        for i in range(scan.n_layers):
            w.write_layer(i, cls[i], (cls[i] == 1).astype(np.float32))
    return str(path), str(pred)


def test_traced_lines_follow_the_true_lines(line_scan, tmp_path):
    from napari_weakbeam.core.classification.predictions import load_predictions

    path, pred = line_scan
    scan, truth = open_scan(path), load_truth(path)
    rec = run(reconstruct_scan(scan, load_predictions(pred), ReconstructionParams()))
    assert rec.lines is not None and len(rec.lines) > 3
    pts, every, step, zt = truth_line_points(truth)
    score = score_lines(rec.lines, pts, 3 * scan.pixel_size, zt, step, reference=every)
    assert score.recall >= 0.85, score.summary()
    assert score.precision >= 0.85, score.summary()
    assert np.sum(np.diff(rec.lines.offsets) >= 3) >= 2  # lines followed through several layers
    # per-line length and unit direction
    tab = rec.lines.table()
    assert tab.shape == (len(rec.lines), 4) and np.all(tab[:, 0] >= 0)
    ok = np.isfinite(tab[:, 1])
    np.testing.assert_allclose(np.linalg.norm(tab[ok, 1:], axis=1), 1.0)
    # the file written layer by layer holds the same lines
    out = tmp_path / "vol.h5"
    run(reconstruct_scan(scan, load_predictions(pred), ReconstructionParams(), out))
    back = load_reconstruction(out, volumes=False)
    np.testing.assert_allclose(back.lines.vertices, rec.lines.vertices)
    np.testing.assert_array_equal(back.lines.offsets, rec.lines.offsets)
    with h5py.File(out) as f:
        g = f["reconstruction/lines"]
        assert g["vertices"].shape[1] == 3 and g["offsets"][0] == 0 and g["offsets"][-1] == len(g["vertices"])
        np.testing.assert_allclose(g["length_um"][()], rec.lines.lengths())


def test_trace_links_straight_lines_and_keeps_parallel_ones_apart():
    """Synthetic masks: three steep parallel lines 1 um apart moving 0.8 um per layer, and a
    shallow line drawn as a long segment in two layers 7 um apart along its axis."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((4, 200, 400), bool)
    for k in range(4):
        for j in range(3):
            r, c = 40 + 20 * j, 40 + 16 * k
            masks[k, r - 1:r + 2, c - 1:c + 2] = True
    masks[1, 150, 50:110] = True  # shallow line: layers 1 and 2
    masks[1, 151, 50:110] = True
    masks[2, 150, 190:250] = True
    masks[2, 151, 190:250] = True
    lines = trace_lines(masks, np.arange(4) * 2.0, vox)
    long = [v for v in lines.to_list() if len(v) == 4 and np.allclose(np.diff(v[:, 0]), 2.0)]
    assert len(long) == 3
    for v in long:
        assert np.ptp(v[:, 1]) < 0.01 and np.allclose(np.diff(v[:, 2]), 0.8, atol=0.01)
    # the shallow line: its two pieces' centres 7 um apart, and on along its direction past them
    # by their half length (~1.5 um in x, so 2 x 1.5 / 7 um in z: the part inside the slabs)
    shallow = [v for v in lines.to_list() if len(v) == 4 and not np.allclose(np.diff(v[:, 0]), 2.0)]
    assert len(shallow) == 1
    v = shallow[0]
    np.testing.assert_allclose(np.diff(v[:, 2]), [1.5, 7.0, 1.5], atol=0.1)
    np.testing.assert_allclose(v[:, 0], [2 - 2 * (v[1, 2] - v[0, 2]) / 7, 2, 4, 4 + 2 * (v[3, 2] - v[2, 2]) / 7])
    # layers stacked downwards trace the same lines
    down = trace_lines(masks, -np.arange(4) * 2.0, vox)
    assert sum(len(v) == 4 and np.allclose(np.abs(np.diff(v[:, 0])), 2.0) for v in down.to_list()) == 3
    # a line missed in one layer continues after the gap
    masks[2, :120] = False
    gap = trace_lines(masks, np.arange(4) * 2.0, vox)
    assert sum(len(v) == 3 and v[-1, 0] == 6.0 for v in gap.to_list()) == 3


def _wall_row(n_layers: int, n_lines: int = 7, cols: int = 600) -> np.ndarray:
    """Masks of a wall's row of steep parallel lines: compact 3 x 3 px pieces 2.5 um apart along
    x, all moving 0.8 um along x per layer (0.05 um pixels)."""
    masks = np.zeros((n_layers, 200, cols), bool)
    for k in range(n_layers):
        for j in range(n_lines):
            r, c = 100, 60 + 50 * j + 16 * k
            masks[k, r - 1:r + 2, c - 1:c + 2] = True
    return masks


def _row_lines(lines: Lines, n_vertices: int) -> list[np.ndarray]:
    """The traced lines of ``n_vertices`` layers that keep to one line of the row (x moving 0.8 um
    per layer, y fixed)."""
    return [v for v in lines.to_list() if len(v) == n_vertices and np.allclose(np.diff(v[:, 2]), 0.8, atol=0.01)
            and np.ptp(v[:, 1]) < 0.01]


def test_wall_row_does_not_slide_onto_its_neighbours():
    """A row of lines entering the field from layer 1 on, whose first line is missed in layer 1:
    every line of the row stays on itself (a one-to-one assignment that must link every track it
    can slides the whole row onto the neighbours, 3.3 um away, which is as straight)."""
    masks = _wall_row(4, 10)
    masks[0, :, 400:] = False  # lines 8-10 enter the field after layer 0
    masks[1, :, 70:85] = False  # the 1st line is missed in layer 1
    lines = trace_lines(masks, np.arange(4) * 2.0, (2.0, 0.05, 0.05))
    assert len(_row_lines(lines, 4)) == 6  # lines 2-7 over all four layers
    assert not any(np.any(np.abs(np.diff(v[:, 2])) > 3.0) for v in lines.to_list())


def test_wall_row_links_with_its_common_move():
    """A row of 7 lines and, beside one of them, a short line 0.5 um away in layer 1 (nearer than
    the row's 0.8 um move) going straight on: the row's common move links the line to its own
    piece; linked piece by piece, the nearer one takes it."""
    masks = _wall_row(4)
    for k in (1, 2):  # the distractor: from line 4's layer-0 position, 0.5 um per layer in y
        r, c = 100 + 10 * k, 60 + 50 * 3
        masks[k, r - 1:r + 2, c - 1:c + 2] = True
    lines = trace_lines(masks, np.arange(4) * 2.0, (2.0, 0.05, 0.05))
    assert len(_row_lines(lines, 4)) == 7


def _two_tail_frames(low: np.ndarray, high: np.ndarray, n: int = 15) -> np.ndarray:
    """A layer's frames (n, rows, cols): a rocking curve peaked at frame 7 everywhere, with the
    image ``low`` in its first 4 frames (the low tail) and ``high`` in its last 4."""
    idx = np.arange(n)[:, None, None]
    frames = 100.0 * np.exp(-0.5 * ((idx - 7) / 2.0) ** 2) * np.ones((n,) + low.shape)
    frames[:4] += low[None]
    frames[n - 4:] += high[None]
    return frames.astype(np.float32)


def _spot(col: int, size: int = 64) -> np.ndarray:
    """A steep line's image: a Gaussian dot (sigma 1.5 px) at row 32, column ``col``."""
    yy, xx = np.mgrid[:size, :size]
    return np.exp(-0.5 * (((yy - 32) / 1.5) ** 2 + ((xx - col) / 1.5) ** 2))


def test_steep_piece_centred_between_the_rocking_curve_tails():
    """A steep line whose image is 3 px to one side of the core (col 32) in the low tail of the
    rocking curve, three times brighter and wider in the mask, and 3 px to the other side in the
    high tail: the mask's centroid leans 1.5 px to the bright side; between the two tails'
    images the piece sits on the core."""
    size = 64
    frames = _two_tail_frames(300.0 * _spot(35), 100.0 * _spot(29))
    mask = np.zeros((size, size), bool)
    mask[29:36, 29:39] = True  # the bright side reaches further
    vox = (2.0, 0.05, 0.05)
    tails = tail_images(frames, None, mask, registration_image(frames))
    (plain,) = layer_pieces(mask, 0, vox)
    (centred,) = layer_pieces(mask, 0, vox, tails=tails)
    assert not plain.elongated and plain.centre[1] / vox[2] == pytest.approx(33.5)
    assert centred.centre[1] / vox[2] == pytest.approx(32.0, abs=0.3)
    assert centred.centre[0] / vox[1] == pytest.approx(32.0, abs=0.3)
    # no tails kept there (e.g. beyond the layer's own mask): the centroid
    (far,) = layer_pieces(mask, 0, vox, tails=np.zeros_like(tails))
    assert far.centre[1] == plain.centre[1]



def test_noisy_tails_centre_the_piece_on_their_cores():
    """The steep line of the test above, imaged in each tail as bright as the other, under noise
    (sigma 10 per frame against a 300 peak; 5 seeds) and a mask leaning 1.5 px to one side:
    weighing each tail's brightest 40 % over the grown piece, the piece sits within 0.3 px of
    the core on average (its 20th percentile as the floor let the noise over the whole piece
    pull it 0.6 px towards the mask's middle)."""
    size = 64
    mask = np.zeros((size, size), bool)
    mask[29:36, 27:41] = True
    vox = (2.0, 0.05, 0.05)
    errors = []
    for seed in range(5):
        noise = np.random.default_rng(seed).normal(0.0, 10.0, (15, size, size))
        frames = (_two_tail_frames(300.0 * _spot(35), 300.0 * _spot(29)) + noise).astype(np.float32)
        tails = tail_images(frames, None, mask, registration_image(frames))
        (piece,) = layer_pieces(mask, 0, vox, tails=tails)
        errors.append(abs(piece.centre[1] / vox[2] - 32.0))
    assert np.mean(errors) < 0.3

def test_shallow_piece_centred_between_the_rocking_curve_tails():
    """A shallow line (a streak along the columns, core at row 32) imaged 2 px below its core in
    the low tail, brighter and wider in the mask, and 2 px above it in the high tail: the mask's
    centroid leans a pixel across the streak; between the two tails' images the elongated
    piece sits on the core (before, only compact pieces were centred between the tails)."""
    size = 64
    yy, xx = np.mgrid[:size, :size]
    streak = lambda r: np.exp(-0.5 * ((yy - r) / 1.5) ** 2) * ((xx >= 10) & (xx <= 54))  # noqa: E731
    frames = _two_tail_frames(300.0 * streak(34), 100.0 * streak(30))
    mask = np.zeros((size, size), bool)
    mask[30:37, 10:55] = True  # the bright side reaches further
    vox = (2.0, 0.05, 0.05)
    tails = tail_images(frames, None, mask, registration_image(frames))
    (plain,) = layer_pieces(mask, 0, vox)
    (centred,) = layer_pieces(mask, 0, vox, tails=tails)
    assert plain.elongated and centred.elongated
    assert plain.centre[0] / vox[1] == pytest.approx(33.0)
    assert centred.centre[0] / vox[1] == pytest.approx(32.0, abs=0.3)
    assert centred.centre[1] / vox[2] == pytest.approx(32.0, abs=0.5)


def test_shallow_link_moves_as_far_as_the_scans_lines_do():
    """Shallow lines (3 um segments) moving 7 um along their axis between two layers set the
    scan's move ratio; a fourth line has two collinear candidates in the next layer, one at that
    distance and a nearer one 3.4 um along: it links to the one its length predicts (keeping
    the move short, as before, took the nearer one)."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((2, 400, 800), bool)
    for r in (50, 120, 190, 300):
        masks[0, r:r + 2, 50:110] = True
        masks[1, r:r + 2, 190:250] = True
    masks[1, 300:302, 118:178] = True  # the distractor, nearer along the same axis
    pieces = [layer_pieces(m, k, vox) for k, m in enumerate(masks)]
    assert move_ratio(pieces, np.array([0.0, 2.0])) == pytest.approx(7.0 / (2 * 2 * 1.475), rel=0.01)
    lines = trace_lines(masks, np.array([0.0, 2.0]), vox)
    linked = [v for v in lines.to_list() if np.ptp(v[:, 0]) > 0]
    assert len(linked) == 4
    for v in linked:  # centroids 7 um apart in x, the distractor (centre x 7.375 um) a line of its own
        assert np.diff(v[1:3, 2]) == pytest.approx(7.0, abs=0.01)
    assert any(np.ptp(v[:, 0]) == 0 and np.mean(v[:, 2]) == pytest.approx(7.375, abs=0.01) for v in lines.to_list())


def _bar(mask: np.ndarray, centre: tuple[float, float], angle_deg: float, length_px: float, width_px: int = 2) -> None:
    """Draw a straight bar (in place): ``length_px`` long, ``width_px`` wide, at ``angle_deg``
    from the row axis, centred on ``centre`` (row, col)."""
    a = np.radians(angle_deg)
    u, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    for t in np.linspace(-length_px / 2, length_px / 2, int(4 * length_px)):
        for w in np.linspace(-(width_px - 1) / 2, (width_px - 1) / 2, width_px):
            r, c = np.rint(np.asarray(centre) + t * u + w * n).astype(int)
            mask[r, c] = True


def test_piece_at_the_extrapolation_continues_whatever_its_axis():
    """A line drawn as 1.2 um bars along its move in layers 0 and 1; in layer 2 its piece lies at
    the straight extrapolation but its short image points 30 degrees off: it continues the line
    (the axis check refused it, and the line broke in two)."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((3, 300, 300), bool)
    move = np.array([30.0, 50.0])  # px per layer: 1.5, 2.5 um
    along = np.degrees(np.arctan2(move[1], move[0]))
    for k in range(3):
        _bar(masks[k], tuple(np.array([60.0, 60.0]) + k * move), along + (30 if k == 2 else 0), 24)
    lines = trace_lines(masks, np.arange(3) * 2.0, vox)
    assert len(lines) == 1
    v = lines.line(0)
    assert np.unique(v[:, 0]).size >= 3 and np.ptp(v[:, 0]) >= 4.0


def test_line_leaving_the_field_links_to_nothing():
    """A line moving 2.5 um per layer towards the field's edge in layers 0 and 1 would lie 1 um
    outside the field in layer 2; a piece 1.75 um from there, inside, is another line's (before,
    within the link distance, it continued the first). Corrected for the drift, the field is
    the layer's, moved with its content."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((3, 400, 200), bool)
    for k, r in ((0, 320), (1, 370), (2, 385)):  # rows 16, 18.5 um; the field ends at 20 um
        masks[k, r - 1:r + 2, 99:102] = True
    lines = trace_lines(masks, np.arange(3) * 2.0, vox)
    assert sorted(np.ptp(v[:, 0]) for v in lines.to_list()) == [0.0, 2.0]
    # corrected for a drift that moved layer 2's content 2 um up, the field moves with it: the
    # line, at 21 um there, is inside (the image at 19 um), and continues
    masks[2] = False
    masks[2, 379:382, 99:102] = True
    drift = np.array([[0.0, 0.0], [0.0, 0.0], [-40.0, 0.0]])
    lines = trace_lines(masks, np.arange(3) * 2.0, vox, drift_px=drift)
    assert len(lines) == 1 and np.ptp(lines.line(0)[:, 0]) == 4.0


def test_shallow_link_refused_far_beyond_the_move_its_length_predicts():
    """Three 3 um shallow lines moving 7 um along their axis set the scan's move ratio (~1.2 per
    um); a 0.5 um piece (a line moving ~1.2 um) and a collinear one 7 um along in the next
    layer, 6 times the move its length predicts, are two lines (before, the axis rule linked
    them: its preference for the predicted move was no limit)."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((2, 400, 800), bool)
    for r in (50, 120, 190):
        masks[0, r:r + 2, 50:110] = True
        masks[1, r:r + 2, 190:250] = True
    masks[0, 300:302, 50:60] = True
    masks[1, 300:302, 190:200] = True
    lines = trace_lines(masks, np.array([0.0, 2.0]), vox)
    linked = [v for v in lines.to_list() if np.ptp(v[:, 0]) > 0]
    assert len(linked) == 3 and all(np.mean(v[:, 1]) < 10.0 for v in linked)
    assert len(lines) == 5


def test_parallel_streaks_side_by_side_are_two_lines():
    """A shallow line seen in layer 0 only (a 3 um streak along y) and, 2.5 um beside it, a
    parallel line's 1 um streaks moving 2.5 um along y per layer in layers 1-3: the second line
    is traced alone through its three layers (before, the axis rule took its first piece as the
    first line's move along its axis, 2.5 um across it, and the two made one kinked line)."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((4, 300, 400), bool)
    masks[0, 20:80, 300:302] = True
    for k in (1, 2, 3):
        masks[k, 100 + 50 * (k - 1):120 + 50 * (k - 1), 350:352] = True
    lines = trace_lines(masks, np.arange(4) * 2.0, vox)
    assert len(lines) == 2
    assert any(np.all(np.isin([2.0, 4.0, 6.0], v[:, 0])) and np.allclose(v[:, 2], 17.525, atol=0.01)
               for v in lines.to_list())


def test_line_scoring_tolerance_per_image_axis():
    """A traced line two x pixels (0.28 um) beside the true one: outside 3 y pixels (0.15 um) in
    every direction, inside 3 pixels of each axis; four x pixels beside it is outside both."""
    true = np.column_stack([np.zeros(41), np.linspace(0, 4, 41), np.full(41, 5.0)])
    x_px = 0.05 / np.sin(np.radians(20.73))
    for shift, found_iso, found_axis in ((2 * x_px, 0.0, 1.0), (4 * x_px, 0.0, 0.0)):
        traced = Lines.from_list([true + [0, 0, shift]])
        iso = score_lines(traced, [true], 0.15, 0.25, 0.1)
        axis = score_lines(traced, [true], 0.15, 0.25, 0.1, x_tolerance_um=3 * x_px)
        assert (iso.recall, iso.precision) == (found_iso, found_iso)
        assert (axis.recall, axis.precision) == (found_axis, found_axis)
    with pytest.raises(WeakbeamError):
        score_lines(traced, [true], 0.15, 0.25, 0.1, x_tolerance_um=0)


# -- line files --------------------------------------------------------------------------------------


def test_vtk_and_csv_lines_round_trip(tmp_path):
    lines = Lines.from_list([np.array([[0, 1, 2], [2, 1.5, 2.5], [4, 2, 3.1]]), np.array([[2, 5, 5], [2, 5, 6]])])
    vtk = export_lines_mesh(tmp_path / "lines.vtk", lines)
    mesh = meshio.read(vtk)  # a real reader
    assert len(mesh.points) == 5 and mesh.cells[0].type == "line" and len(mesh.cells[0].data) == 3
    np.testing.assert_allclose(mesh.points[0], [2, 1, 0])  # x, y, z for ParaView
    np.testing.assert_allclose(mesh.cell_data["length_um"][0][:2], lines.lengths()[0])
    back = read_lines(vtk)
    np.testing.assert_allclose(back.vertices, lines.vertices)
    np.testing.assert_array_equal(back.offsets, lines.offsets)
    csv = export_lines_csv(tmp_path / "lines.csv", lines)
    rows = np.loadtxt(csv, delimiter=",", skiprows=1)
    assert open(csv).readline().strip() == "line,z_um,y_um,x_um"
    np.testing.assert_allclose(rows[:, 1:], lines.vertices)
    np.testing.assert_array_equal(rows[:, 0], [0, 0, 0, 1, 1])
    assert lines.lengths() == pytest.approx([np.sqrt(4.5) + np.sqrt(4.61), 1.0])
    with pytest.raises(WeakbeamError, match="offsets"):
        Lines(np.zeros((3, 3)), [0, 5])


def test_cli_exports_and_scores_lines(line_scan, tmp_path, capsys):
    path, pred = line_scan
    out, vtk, csv = tmp_path / "vol.h5", tmp_path / "l.vtk", tmp_path / "l.csv"
    assert main(["reconstruct", path, "-p", pred, "--out", str(out), "--export-lines", str(vtk),
                 "--export-lines", str(csv), "-q"]) == 0
    text = capsys.readouterr().out
    assert "lines (" in text and "registered drift" in text
    rec = load_reconstruction(out, volumes=False)
    np.testing.assert_allclose(read_lines(vtk).vertices, rec.lines.vertices[np.repeat(np.diff(rec.lines.offsets) >= 2, np.diff(rec.lines.offsets))])
    assert main(["compare", str(out), path, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["lines"]["recall"] >= 0.85 and d["lines"]["false_length_um"] >= 0
    assert main(["compare", str(out), path]) == 0
    assert "of the true length found within" in capsys.readouterr().out
    # mistakes: one line, no traceback
    assert main(["reconstruct", path, "-p", pred, "--out", str(tmp_path / "v2.h5"), "--export-lines", "x.txt"]) == 2
    assert "--export-lines x.txt" in capsys.readouterr().err
    assert main(["reconstruct", path, "-p", pred, "--out", str(tmp_path / "v2.h5"), "--link-distance", "-1"]) == 2
    assert main(["reconstruct", path, "-p", pred, "--out", str(tmp_path / "v3.h5"), "--export-lines", path]) == 2
    capsys.readouterr()
    with pytest.raises(WeakbeamError, match="no traced lines"):
        rec.lines = None
        export_lines(tmp_path / "n.vtk", rec)


def test_dots_too_small_to_carry_a_line_are_not_pieces():
    """A 2-4 pixel dot stays a point of the reconstruction but starts no line (linked, such dots
    made false lines on the wall stacks); 5 pixels and more are pieces."""
    from napari_weakbeam.core.reconstruction.lines import MIN_PIECE_PIXELS, layer_pieces

    mask = np.zeros((40, 40), bool)
    mask[5, 5:9] = True  # 4 pixels
    mask[20:22, 20:23] = True  # 6 pixels
    pieces = layer_pieces(mask, 0, (2.0, 0.05, 0.16))
    assert MIN_PIECE_PIXELS == 5 and len(pieces) == 1
    assert np.allclose(pieces[0].centre, [20.5 * 0.05, 21 * 0.16])


def _ratio_lines(masks: np.ndarray, cols: tuple[int, ...] = (600, 680, 760)) -> None:
    """Three 3 um shallow lines along y moving 7 um along it from layer 0 to 1 (in place): they
    set the scan's move ratio."""
    for c in cols:
        masks[0, 20:80, c:c + 2] = True
        masks[1, 160:220, c:c + 2] = True


def _streak_pair(lines: Lines, z: tuple[float, float]) -> bool:
    """Whether a traced line holds the 3 um streak along y at heights ``z`` (col 210, its
    centres 7 um apart along y)."""
    return any(np.all(np.isin(z, v[:, 0])) and np.ptp(v[:, 1]) >= 7.0 and np.allclose(v[:, 2], 10.5, atol=0.1)
               for v in lines.to_list())


def test_steep_line_does_not_take_a_shallow_streak_across_its_path():
    """Layers 1 um apart: a steep line (3 x 3 px dots moving 0.2 um per layer) whose dot in
    layer 2 lies on a shallow line's 3 um streak, which goes on 7 um along its axis in layer 3.
    The merged piece is far longer than the steep line's image, so the steep line skips it and
    the shallow line keeps both its pieces (before, the steep line, 0.1 um from the merged
    piece's centre, took it and the shallow line lost its first layer)."""
    vox = (1.0, 0.05, 0.05)
    masks = np.zeros((4, 400, 820), bool)
    _ratio_lines(masks)
    for k in range(4):
        r, c = 100 + 4 * k, 210
        masks[k, r - 1:r + 2, c - 1:c + 2] = True
    masks[2, 78:138, 210:212] = True  # the streak over the dot (row 108)
    masks[3, 218:278, 210:212] = True
    lines = trace_lines(masks, np.arange(4.0), vox)
    assert _streak_pair(lines, (2.0, 3.0))
    assert any(np.ptp(v[:, 0]) == 3.0 and np.ptp(v[:, 1]) < 1.0 for v in lines.to_list())  # the steep line, all 4 layers


def test_wall_row_move_not_given_to_a_shallow_streak():
    """Layers 1 um apart: a wall's row of steep lines moving 0.2 um per layer, and a shallow
    line's 3 um streak across the row in layer 0, merged with one of the row's dots, moving 7 um
    along its axis to layer 1. The row's common move (0.2 um) cannot be the streak's (its length
    predicts ~7 um): it links to its own next piece (before, it took the row's line's dot)."""
    vox = (1.0, 0.05, 0.05)
    masks = np.zeros((4, 400, 820), bool)
    _ratio_lines(masks)
    for k in range(4):
        for j in range(7):
            r, c = 100, 60 + 50 * j + 4 * k
            masks[k, r - 1:r + 2, c - 1:c + 2] = True
    masks[0, 70:130, 210:212] = True  # across the row's 4th dot (col 210)
    masks[1, 210:270, 210:212] = True
    lines = trace_lines(masks, np.arange(4.0), vox)
    assert _streak_pair(lines, (0.0, 1.0))


def test_steep_dot_wider_along_x_only_moves_any_way():
    """A steep line's 3 x 3 px dots moving 1 um along y per layer, x pixels 3x y's (as at
    2theta ~20 degrees): each dot is ~3x wider along x in um, but round in pixels, so it draws
    no direction and the line is linked through its 4 layers (before, the dots counted as
    elongated along x, and a move of 1 um across that axis was refused: four lines)."""
    vox = (2.0, 0.05, 0.15)
    masks = np.zeros((4, 200, 100), bool)
    for k in range(4):
        r = 40 + 20 * k
        masks[k, r - 1:r + 2, 49:52] = True
    lines = trace_lines(masks, np.arange(4) * 2.0, vox)
    assert len(lines) == 1 and np.all(np.isin([0.0, 2.0, 4.0, 6.0], lines.line(0)[:, 0]))


def test_small_dot_does_not_start_a_shallow_line():
    """Three 3 um shallow lines set the scan's move ratio (~1.2 per um); a 3 x 3 px dot in layer
    0 and, 3.5 um along y from it in layer 1, a 3 um streak along y: a line moving 1.75 um per um
    of height would draw a ~1.5 um image, 15 times the dot's, so the dot is not its piece: two
    lines (before, the plain distance linked them, 3.5 um, within the link distance)."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((2, 400, 820), bool)
    _ratio_lines(masks)
    masks[0, 99:102, 299:302] = True
    masks[1, 140:200, 300:302] = True
    lines = trace_lines(masks, np.array([0.0, 2.0]), vox)
    assert len(lines) == 5 and sum(np.ptp(v[:, 0]) > 0 for v in lines.to_list()) == 3


def test_line_turning_shallow_keeps_its_long_last_piece():
    """A line moving 1 um along x per 2 um layer step (dots), whose piece in the last layer is a
    3.5 um streak along that move, centred where the line goes (a line turning shallower: far
    longer than its image so far, but along its move, not across its path): it continues."""
    vox = (2.0, 0.05, 0.05)
    masks = np.zeros((4, 400, 820), bool)
    _ratio_lines(masks)
    for k in range(3):
        masks[k, 99:102, 99 + 20 * k:102 + 20 * k] = True
    masks[3, 99:101, 125:195] = True
    lines = trace_lines(masks, np.arange(4) * 2.0, vox)
    assert any(np.ptp(v[:, 0]) >= 6.0 and np.ptp(v[:, 1]) < 0.2 for v in lines.to_list())
