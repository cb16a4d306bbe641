"""The rocking-curve labelling aid on rocking curves with a known peak and width per patch."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam.core.errors import WeakbeamError
from napari_weakbeam.core.classification.rocking_aid import curve_offsets, patch_curves, suggest_labels

P = 16
GRID = (3, 5)
N = 41
FWHM_TO_SIGMA = 1 / (2 * np.sqrt(2 * np.log(2)))


def _scene(seed: int = 0, gain: float = 1.0, dark: float = 100.0):
    """Frames whose patches each have their own Gaussian rocking curve (peak phi0, half width w).

    Returns frames (N, rows, cols), angles (N,), and the true offset u (N, gr, gc).
    """
    rng = np.random.default_rng(seed)
    phi = np.linspace(-0.08, 0.08, N)
    gr, gc = GRID
    phi0 = rng.uniform(-0.03, 0.03, GRID)
    hwhm = rng.uniform(0.006, 0.015, GRID)
    amp = rng.uniform(500, 3000, GRID)
    sigma = hwhm * 2 * FWHM_TO_SIGMA
    curve = amp * np.exp(-0.5 * ((phi[:, None, None] - phi0) / sigma) ** 2)  # (N, gr, gc)
    # Texture inside each patch (the same at every angle), so patches are not flat.
    texture = rng.uniform(0.7, 1.3, (gr * P, gc * P))
    mean_level = np.repeat(np.repeat(curve, P, axis=1), P, axis=2) * texture
    counts = rng.poisson(gain * mean_level) + dark + rng.normal(0, 3, mean_level.shape)
    frames = np.clip(counts, 0, 65535).astype(np.uint16)
    u = np.abs(phi[:, None, None] - phi0) / hwhm
    return frames, phi, u


def _truth(u: np.ndarray) -> np.ndarray:
    return np.where(u <= 1, 2, np.where(u >= 2, 1, 0))


def test_labels_follow_each_patch_own_peak_and_width():
    frames, phi, u = _scene()
    lab = suggest_labels(frames, phi, P)
    assert lab.shape == (N,) + GRID and lab.dtype == np.uint8
    truth = _truth(u)
    # Frames near a class boundary can fall either way with noise; away from it the aid is right.
    clear = (u <= 0.85) | (u >= 2.3)
    assert np.mean(lab[clear] == truth[clear]) >= 0.99
    # Every patch gets both classes somewhere in its curve, at the right places.
    assert np.all((lab == 1).any(axis=0)) and np.all((lab == 2).any(axis=0))
    # Measured offsets are close to the true ones near the peak.
    u_est = curve_offsets(patch_curves(frames, P), phi)
    near = u <= 3
    assert np.nanmedian(np.abs(u_est[near] - u[near])) < 0.1


def test_exposure_and_dark_level_do_not_change_labels():
    frames, phi, _ = _scene(seed=1)
    lab = suggest_labels(frames, phi, P)
    brighter, _, _ = _scene(seed=1, gain=4.0, dark=150.0)
    assert np.mean(suggest_labels(brighter, phi, P) == lab) >= 0.98


def test_frame_order_and_padding_frames():
    frames, phi, _ = _scene(seed=2)
    lab = suggest_labels(frames, phi, P)
    perm = np.random.default_rng(0).permutation(N)
    np.testing.assert_array_equal(suggest_labels(frames[perm], phi[perm], P), lab[perm])
    padded = np.concatenate([frames, np.zeros((3,) + frames.shape[1:], frames.dtype)])
    angles = np.concatenate([phi, [np.nan] * 3])
    lab_pad = suggest_labels(padded, angles, P)
    np.testing.assert_array_equal(lab_pad[:N], lab)
    assert (lab_pad[N:] == 0).all()


def test_no_peak_no_suggestion():
    rng = np.random.default_rng(4)
    noise = rng.poisson(100, (N, 32, 48)).astype(np.uint16)
    phi = np.linspace(-0.08, 0.08, N)
    assert (suggest_labels(noise, phi, P) == 0).all()


@pytest.mark.parametrize(
    "frames, angles, match",
    [
        (np.full((9, 16, 16), np.nan, np.float32), np.linspace(0, 1, 9), "NaN"),
        (np.ones((9, 16, 16)), np.linspace(0, 1, 8), "8 angles for 9 frames"),
        (np.ones((3, 16, 16)), np.linspace(0, 1, 3), "at least 5"),
        (np.ones((16, 16)), np.linspace(0, 1, 16), "frames must be"),
    ],
)
def test_bad_input_is_a_one_line_error(frames, angles, match):
    with pytest.raises(WeakbeamError, match=match) as err:
        suggest_labels(frames, angles, P)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("seed, patch_size", [(1, 16), (7, 32)])
def test_against_simulator_ground_truth(tmp_path, seed, patch_size):
    """On a clean simulated Bliss scan the aid agrees with the true per-patch classes."""
    from napari_weakbeam.core.scanfiles.readers import open_scan
    from napari_weakbeam.core.classification.rocking_aid import suggest_scan_labels
    from napari_weakbeam.core.simulate import SimulationParams, load_truth, simulate, write_simulation

    path = tmp_path / "sim.h5"
    write_simulation(path, simulate(SimulationParams(rows=128, cols=128, layers=2, frames=31, seed=seed)))
    scan = open_scan(str(path))
    lab = suggest_scan_labels(scan, patch_size)
    truth = load_truth(path).classes(patch_size)
    assert lab.shape == truth.shape
    np.testing.assert_array_equal(lab[1], suggest_labels(scan.layer(1), scan.angles[1], patch_size))
    # A missing suggestion counts as wrong: balanced accuracy over true WB and SB patches.
    recalls = [np.mean(lab[truth == k] == k) for k in (1, 2)]
    assert min(recalls) >= 0.85 and np.mean(recalls) >= 0.92, recalls
    # Where it suggests, it is (nearly) never the wrong class.
    given = (truth > 0) & (lab > 0)
    assert np.mean(lab[given] == truth[given]) >= 0.99
