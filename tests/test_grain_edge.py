"""A grain that covers part of the field: each frame's noise is measured inside the crystal, so the
camera's quiet noise off the grain does not set the units of the frames near the peak, and the
grain's edge gives no false lines (issue 10; held-out benchmark scans, docs/benchmarks.md step 20)."""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.reconstruction.dislocation_map import MIN_NOISE_PIXELS, normalised_sum
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
from napari_weakbeam.core.scanfiles.readers import open_scan
from napari_weakbeam.core.simulate import benchmark_set, write_labelled_scan
from napari_weakbeam.core.simulate.scoring import score_points
from napari_weakbeam.workflows import reconstruct_scan, run


class _Labels:
    def __init__(self, label: np.ndarray, patch: int):
        self.label, self.patch_size = label, patch


def test_the_frame_noise_is_measured_inside_the_crystal():
    """With the pixels off the grain given, each frame is put in the units of the grain's noise
    alone: the same map as the grain cropped out of the field."""
    rng = np.random.default_rng(0)
    rows, cols, edge = 60, 150, 135  # the grain: the last 15 columns (from a multiple of 3: the same noise sample)
    frames = np.empty((5, rows, cols), np.float32)
    frames[:, :, :edge] = 100 + rng.normal(0, 1, (5, rows, edge))  # off the grain: the camera's noise
    frames[:, :, edge:] = 1000 + rng.normal(0, 20, (5, rows, cols - edge))  # the grain: photon noise
    frames[2, 30, 142] += 300  # a dot
    outside = np.zeros((rows, cols), bool)
    outside[:, :edge] = True
    params = ReconstructionParams()
    inside = normalised_sum(frames, None, params, outside=outside)
    crop = normalised_sum(frames[:, :, edge:], None, params)
    assert np.allclose(inside[:, edge:], crop, rtol=1e-4, atol=1e-4)
    mixed = normalised_sum(frames, None, params)
    assert mixed[30, 142] > 2 * inside[30, 142] > 10  # the camera's quiet noise made the dot (and the grain) loud
    # a crystal too small to measure a noise on its own: the whole field, as without
    few = np.ones((rows, cols), bool)
    few[:3 * (MIN_NOISE_PIXELS // 5 - 1), edge:] = False  # fewer than MIN_NOISE_PIXELS sampled inside
    assert np.array_equal(normalised_sum(frames, None, params, outside=few), mixed)


def test_a_grain_covering_part_of_the_field_gives_no_false_lines_at_its_edge(tmp_path):
    """The held-out grain scan (seed offset 2000) whose edge read precision 0.33 before."""
    path = tmp_path / "grain.h5"
    truth = write_labelled_scan(path, benchmark_set("ours", seed_offset=2000)["grain_40"])
    rec = run(reconstruct_scan(open_scan(str(path)), _Labels(truth.classes(32), 32), ReconstructionParams(trace=False)))
    s = score_points(rec.points_um, truth)
    assert s.recall >= 0.95 and s.precision >= 0.9, (s.recall, s.precision)
