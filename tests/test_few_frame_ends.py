"""Line ends seen in few weak-beam frames (the image of a line outside the slab, or noise on its
end, at low exposure) are peeled off the points at the scan's finish (``few_frame_fraction``,
issue 10 precision; core/reconstruction/few_frames.py)."""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.reconstruction.dislocation_map import normalised_sum
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams, skeleton_2d
from napari_weakbeam.core.reconstruction.few_frames import FrameCount, peel_few_frame_ends
from recon_synth import finish_on_off_none


def test_frame_count_counts_the_frames_of_each_neighbourhood():
    """A pixel bright in every other one of 70 frames (many bytes of 8 frames) counts 35 over
    its 3 x 3 neighbourhood, 0 beyond; a one-frame speck counts 1; the field's edge is no wrap."""
    count = FrameCount((6, 7), 4.0)
    on = np.zeros((6, 7), np.float32)
    on[2, 2] = 5.0
    speck = np.zeros((6, 7), np.float32)
    speck[0, 6] = 9.0
    for i in range(70):
        count.add(on if i % 2 == 0 else (speck if i == 1 else np.zeros_like(on)))
    c = count.counts()
    assert (c[1:4, 1:4] == 35).all() and c[4:, :].sum() == 0 and c[:, 4].sum() == 0
    assert c[0, 5] == 1 and c[1, 6] == 1 and c[0, 0] == 0  # the speck; no wrap to column 0


def test_normalised_sum_gives_each_frame_to_the_count():
    """The count sees the frames' contrasts as summed (noise units): a spot bright in 4 of 9
    frames counts 4; the sum is the same with and without the count."""
    rng = np.random.default_rng(1)
    frames = rng.poisson(100, (9, 40, 40)).astype(np.float32)
    frames[2:6, 20, 20] += 400
    params = ReconstructionParams()
    count = FrameCount((40, 40), params.hysteresis_low)
    with_count = normalised_sum(frames, None, params, count)
    assert np.array_equal(with_count, normalised_sum(frames, None, params))
    assert count.counts()[20, 20] == 4


def _line(shape=(120, 60), col=30):
    """A vertical line's mask, map and frame counts: seen in 12 frames along rows 20-80, in 3 over
    its last 20 rows (80-100), half as bright there on the map."""
    mask = np.zeros(shape, dtype=bool)
    mask[20:100, col - 1:col + 2] = True
    counts = np.zeros(shape, np.uint8)
    counts[20:80, col - 2:col + 3] = 12
    counts[80:100, col - 2:col + 3] = 3
    image = np.zeros(shape, np.float32)
    image[20:100, col] = 1000.0
    image[80:100, col] = 500.0
    return mask, counts, image


def test_end_seen_in_few_frames_is_peeled():
    mask, counts, image = _line()
    skel = skeleton_2d(mask)
    out = peel_few_frame_ends(skel, counts, 0.5, image)
    r = np.nonzero(out)[0]
    assert r.max() <= 81 and r.min() == np.nonzero(skel)[0].min()
    assert np.array_equal(peel_few_frame_ends(skel, counts, 0.0, image), skel)
    assert np.array_equal(peel_few_frame_ends(skel, None, 0.5, image), skel)
    # as bright as the line's core: the peel stops
    assert np.array_equal(peel_few_frame_ends(skel, counts, 0.5, np.where(mask, 1000.0, 0.0)), skel)


def test_finish_segmentation_peels_with_the_counts():
    """At the scan's finish ``adaptive`` takes the few-frame end off the skeleton (the points)
    when the counts are given, not off the mask, and keeps it with ``few_frame_fraction=0``."""
    _, counts, image = _line()
    out, masks = finish_on_off_none(image, ReconstructionParams(few_frame_fraction=0.0), "counts", counts)
    assert out["off"].max() >= 97 and out["none"].max() >= 97
    assert out["on"].max() <= 81 and out["on"].min() == out["off"].min()
    assert np.array_equal(masks["on"], masks["off"])
