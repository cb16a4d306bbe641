"""Line ends imaged in one tail of the rocking curve only (the image of a line just outside the
slab) are peeled at the scan's finish (``tail_end_fraction``, issue 10 precision)."""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams, skeleton_2d
from napari_weakbeam.core.reconstruction.tail_ends import along_line_median, peel_one_tail_ends, tail_balance
from recon_synth import finish_on_off_none


def _line(rows=(20, 100), col=30, shape=(120, 60)):
    """A mask of a 3-pixel-wide vertical line, its map and its two tails, each on its side of the
    core: both along it, but only the high tail over its last 20 rows (its end outside the slab:
    half as bright on the map); tails 0 away from the line, as :func:`.tails.tail_images` keeps
    them."""
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0]:rows[1], col - 1:col + 2] = True
    tails = np.zeros((2,) + shape, np.float32)
    tails[0, rows[0]:rows[1], col - 1] = 0.8  # each tail on its side of the core
    tails[1, rows[0]:rows[1], col + 1] = 1.0
    tails[0, rows[1] - 20:rows[1]] = 0.0  # the end: the low tail is gone
    image = np.zeros(shape, np.float32)
    image[rows[0]:rows[1], col] = 1000.0
    image[rows[1] - 20:rows[1], col] = 500.0
    return mask, tails, image


def test_end_seen_in_one_tail_is_peeled():
    mask, tails, image = _line()
    bal = tail_balance(tails, mask)
    assert bal[40, 30] > 0.5 and bal[90, 30] == 0.0 and bal[5, 5] == 0.0
    skel = skeleton_2d(mask)
    rows = np.nonzero(peel_one_tail_ends(skel, mask, tails, 0.1, image))[0]
    assert rows.min() == np.nonzero(skel)[0].min() and 78 <= rows.max() <= 80  # the one-tail end (rows 80-99) is gone
    assert peel_one_tail_ends(skel, mask, tails, 0.0, image) is skel
    assert peel_one_tail_ends(skel, mask, None, 0.1, image) is skel


def test_a_tip_with_a_chance_balance_does_not_stop_the_peel():
    """The line's last row holds some of the other tail (noise at the mask's tip): the end point
    alone reads balanced, but the balance is read along the line, so the one-tail end still goes
    (dfxm-geo short range, the classifier's labels: 10 false points on one steep line's image)."""
    mask, tails, image = _line()
    skel = skeleton_2d(mask)
    tip = np.nonzero(skel)[0].max()
    tails[0, tip + 1, 29] = 0.8  # the row beyond the tip: only the end point's 3 x 3 reads it
    assert tail_balance(tails, mask)[tip, 30] > 0.1 and tail_balance(tails, mask)[tip - 2, 30] == 0.0
    rows = np.nonzero(peel_one_tail_ends(skel, mask, tails, 0.1, image))[0]
    assert 78 <= rows.max() <= 80


def test_along_line_median_ignores_one_point_not_two():
    skel = np.zeros((3, 12), dtype=bool)
    skel[1, 1:11] = True
    score = np.zeros((3, 12), np.float32)
    score[1, 1] = 1.0  # an end point alone: takes its neighbour's
    score[1, 4] = 1.0  # one point inside: takes its neighbours'
    score[1, 7:9] = 1.0  # a stretch of two: kept
    score[0, 0] = 5.0  # off the skeleton: unchanged
    out = along_line_median(skel, score)
    assert out[1, 1] == 0.0 and out[1, 4] == 0.0 and out[1, 7] == 1.0 and out[1, 8] == 1.0 and out[0, 0] == 5.0
    assert along_line_median(np.zeros_like(skel), score)[1, 4] == 1.0


def test_bright_one_tail_stretch_and_the_field_edge_stop_the_peel():
    """A one-tail end as bright as the line's core (a line lying in the slab whose other tail is
    weak) stays; so does one cut by the field's edge (the line goes on outside the field)."""
    mask, tails, image = _line()
    skel = skeleton_2d(mask)
    bright = np.where(image > 0, np.float32(1000.0), image)
    assert peel_one_tail_ends(skel, mask, tails, 0.1, bright).sum() == skel.sum()
    mask, tails, image = _line(rows=(20, 120))  # reaching the bottom edge
    skel = skeleton_2d(mask)
    assert peel_one_tail_ends(skel, mask, tails, 0.1, image).sum() == skel.sum()


def test_one_tail_stretch_inside_a_line_is_kept():
    """Only ends are peeled: a stretch in one tail between balanced parts stays, and where no
    tail was kept (the scan-wide mask beyond the kept band) there is no evidence: kept."""
    mask, tails, image = _line()
    tails[0, 20:100] = 0.0
    tails[0, 20:100, 29] = 0.8
    tails[0, 50:60] = 0.0  # middle in one tail only
    tails[0, 80:100, 29] = 0.8  # a balanced end
    skel = skeleton_2d(mask)
    assert peel_one_tail_ends(skel, mask, tails, 0.1, image).sum() == skel.sum()
    assert peel_one_tail_ends(skel, mask, np.zeros_like(tails), 0.1, image).sum() == skel.sum()


def test_finish_segmentation_peels_with_the_tails():
    """At the scan's finish ``adaptive`` takes the one-tail end off the skeleton (the points) when
    the tails are given, not off the mask (the lines trace the whole image), and keeps it with
    ``tail_end_fraction=0`` or without tails."""
    _, tails, image = _line()
    out, masks = finish_on_off_none(image, ReconstructionParams(tail_end_fraction=0.0), "tails", tails)
    assert out["off"].max() >= 97 and out["none"].max() >= 97
    assert out["on"].max() <= 81 and out["on"].min() == out["off"].min()
    assert np.array_equal(masks["on"], masks["off"])
