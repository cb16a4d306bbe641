"""A steep line's dot imaged as its two strain lobes keeps only its centre's points at the scan's
finish (``lobe_dots``, issue 10 precision); streaks and longer lines are left alone."""

from __future__ import annotations

import numpy as np

from napari_weakbeam.core.reconstruction.lobe_dots import CORE_PX, keep_lobe_dot_centres
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams, skeleton_2d
from recon_synth import finish_on_off_none


def _dot(length=11, lobes_along=True, shape=(60, 60), top=25, col=30):
    """A vertical blob ``length`` rows long and 3 columns wide, brightest at its middle, and its
    two tails: along it (low tail at its upper end, high tail at its lower end: a lobe pair)
    or beside it (low tail left of it, high tail right of it: a streak lying in the slab)."""
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + length, col - 1:col + 2] = True
    rows = np.arange(top, top + length)
    image = np.zeros(shape, np.float32)
    image[top:top + length, col - 1:col + 2] = (1000.0 - 40.0 * np.abs(rows - rows.mean()))[:, None]
    tails = np.zeros((2,) + shape, np.float32)
    if lobes_along:
        tails[0, top:top + 3, col - 1:col + 2] = 1.0  # each lobe at its end
        tails[1, top + length - 3:top + length, col - 1:col + 2] = 1.0
    else:
        tails[0, top:top + length, col - 2:col] = 1.0
        tails[1, top:top + length, col + 1:col + 3] = 1.0
    return mask, tails, image


def test_a_lobe_pair_keeps_its_centre():
    mask, tails, image = _dot()
    skel = skeleton_2d(mask)
    assert skel.sum() >= 7
    out = keep_lobe_dot_centres(skel, mask, tails)
    rows = np.nonzero(out)[0]
    assert 0 < out.sum() < skel.sum()
    assert np.all(np.abs(rows - 30) <= CORE_PX)  # the blob's middle row is 30
    assert not (out & ~skel).any()


def test_a_lobe_pair_is_cut_around_its_core_not_its_brighter_lobe():
    """The lower lobe brighter on the map: the map's centroid leans to it, but the core lies midway
    between the two tails' centroids (the middle row, 30), and the kept points sit around it."""
    mask, tails, image = _dot()
    rows = np.arange(25, 36)
    image[25:36, 29:32] = (2.0 ** (rows - 25))[:, None]  # brighter downwards
    skel = skeleton_2d(mask)
    r, _ = np.nonzero(skel)
    w = image[np.nonzero(skel)]
    assert (w @ r) / w.sum() > 31.5  # where the map's centroid would have cut it
    kept = np.nonzero(keep_lobe_dot_centres(skel, mask, tails))[0]
    assert kept.min() == 30 - CORE_PX and kept.max() == 30 + CORE_PX


def test_streaks_long_lines_and_missing_tails_are_left_alone():
    mask, tails, image = _dot(lobes_along=False)  # the lobes beside it: a line lying in the slab
    skel = skeleton_2d(mask)
    assert np.array_equal(keep_lobe_dot_centres(skel, mask, tails), skel)
    mask, tails, image = _dot(length=40, top=10)  # longer than a lobe pair
    skel = skeleton_2d(mask)
    assert np.array_equal(keep_lobe_dot_centres(skel, mask, tails), skel)
    mask, tails, image = _dot()
    skel = skeleton_2d(mask)
    assert keep_lobe_dot_centres(skel, mask, None) is skel
    assert np.array_equal(keep_lobe_dot_centres(skel, mask, np.zeros_like(tails)), skel)


def test_finish_segmentation_cuts_the_dot_with_the_tails_only():
    """At the scan's finish ``adaptive`` cuts the lobe pair's points when the tails are given, not
    its mask (the lines trace the whole image), and keeps them with ``lobe_dots=False`` or
    without tails."""
    _, tails, image = _dot()
    out, masks = finish_on_off_none(image, ReconstructionParams(lobe_dots=False), "tails", tails)
    assert np.ptp(out["off"]) >= 6 and np.ptp(out["none"]) >= 6
    assert np.ptp(out["on"]) <= 2 * CORE_PX and np.all(np.abs(out["on"] - 30) <= CORE_PX)
    assert np.array_equal(masks["on"], masks["off"])
