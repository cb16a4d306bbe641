"""Centre lines that are no core in the slab give no points (issue 10, precision on data we did not
simulate): those seen in one tail of the rocking curve only (``one_tail_share``,
core/reconstruction/tail_ends.py) and those seen in few of the weak-beam frames
(``few_frames_share``, core/reconstruction/few_frames.py), such as dfxm-geo's rotation contours,
which sweep across the field as the angle turns."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_weakbeam.core.patches import STRONG_BEAM, WEAK_BEAM
from napari_weakbeam.core.reconstruction.few_frames import drop_few_frame_lines
from napari_weakbeam.core.reconstruction.pieces import all_pieces
from napari_weakbeam.core.reconstruction.reconstruct import ReconstructionParams
from napari_weakbeam.core.reconstruction.tail_ends import drop_one_tail_lines
from napari_weakbeam.core.scanfiles.scan import Scan
from napari_weakbeam.workflows import reconstruct_scan, run


def _two_lines(shape=(60, 60)):
    """A skeleton of two vertical lines (columns 15 and 45, rows 10-50)."""
    skel = np.zeros(shape, bool)
    skel[10:50, 15] = True
    skel[10:50, 45] = True
    return skel


def test_a_line_seen_in_one_tail_only_goes():
    skel = _two_lines()
    tails = np.zeros((2,) + skel.shape, np.float32)
    tails[0, 10:50, 13:15] = 0.8  # the core's two lobes, one in each tail
    tails[1, 10:50, 16:18] = 0.7
    tails[1, 10:50, 44:47] = 1.0  # the other line: the high tail only
    tails[0, 10:50, 44:47] = 0.02  # (its low tail at the noise: 2 % of the high)
    out = drop_one_tail_lines(skel, tails, 0.05)
    assert out[:, 15].sum() == 40 and not out[:, 45].any()
    assert np.array_equal(drop_one_tail_lines(skel, tails, 0.0), skel)
    assert np.array_equal(drop_one_tail_lines(skel, None, 0.05), skel)
    tails[0, 10:50, 44:47] = 0.1  # 10 %: kept
    assert np.array_equal(drop_one_tail_lines(skel, tails, 0.05), skel)
    tails[0] = 0.0  # a scan of one side of the rocking curve: every line shows in one tail
    assert np.array_equal(drop_one_tail_lines(skel, tails, 0.05), skel)


def test_a_line_seen_in_one_tail_but_in_many_frames_stays():
    """A core whose weaker tail the frames sample far from the peak (a coarse scan) is bright in
    many frames: it stays; a contour, bright in few, goes."""
    skel = _two_lines()
    tails = np.zeros((2,) + skel.shape, np.float32)
    tails[0, 10:50, 13:15], tails[1, 10:50, 16:18] = 0.8, 0.7
    tails[1, 10:50, 44:47] = 1.0  # the second line: the high tail only
    counts = np.zeros(skel.shape, np.uint8)
    counts[:, 10:20] = 12
    counts[:, 40:50] = 9  # 9 of 30 frames: more than ONE_TAIL_MAX_FRAMES (0.2)
    assert np.array_equal(drop_one_tail_lines(skel, tails, 0.05, counts, 30), skel)
    counts[:, 40:50] = 4  # 4 of 30: few
    out = drop_one_tail_lines(skel, tails, 0.05, counts, 30)
    assert out[:, 15].sum() == 40 and not out[:, 45].any()


def test_a_line_seen_in_few_frames_goes_where_the_frames_can_tell():
    skel = _two_lines()
    skel[55, 20:40] = True  # a third line, bright in no frame alone
    counts = np.zeros(skel.shape, np.uint8)
    counts[:, 10:20] = 12
    counts[:, 40:50] = 2
    out = drop_few_frame_lines(skel, counts, 30, 0.08)
    assert out[:, 15].sum() == 40 and not out[:, 45].any() and out[55].sum() == 20
    assert np.array_equal(drop_few_frame_lines(skel, counts, 10, 0.08), skel)  # 0.8 frames: too few to tell
    assert np.array_equal(drop_few_frame_lines(skel, counts, 30, 0.0), skel)
    assert np.array_equal(drop_few_frame_lines(skel, None, 30, 0.08), skel)


def test_a_piece_without_points_is_no_line_piece():
    """Given the centre lines, a mask piece whose points all went is left out of the lines."""
    mask = np.zeros((1, 60, 60), bool)
    mask[0, 10:50, 14:17] = True
    mask[0, 10:50, 44:47] = True
    skel = np.zeros_like(mask)
    skel[0, 10:50, 15] = True
    voxel = (2.0, 0.1, 0.1)
    assert len(all_pieces(mask, 1, voxel)[0][0]) == 2
    kept = all_pieces(mask, 1, voxel, skeletons=skel)[0][0]
    assert len(kept) == 1 and abs(kept[0].centre[1] - 1.5) < 0.05


def _scan_with_a_contour(seed: int = 0, shape=(96, 96), n: int = 41):
    """Two layers: in the first a dislocation in the slab (column 40, bright in every weak-beam
    frame, its lobes one pixel to each side in the two tails); in the second, as in dfxm-geo's
    upper layers, a rotation contour only (an arc that moves 4 px per frame through six of the
    high tail's frames, as a distant line's field turns the lattice to each angle in turn). The
    scan and its class labels (patch 32). (The contour's low tail is not dark enough here for
    ``one_tail_share``: the strong beam's wings and the noise hold 85 % of its high tail.)"""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[:rows, :cols].astype(np.float64)
    peak, half = n // 2, 1.0
    frames, labels = np.zeros((2, n) + shape, np.uint16), np.zeros((2, n, 3, 3), np.uint8)
    for k in range(n):
        u = abs(k - peak) / half
        base = 10.0 + 2000.0 * np.exp(-0.5 * (u / 1.18) ** 2) * np.ones(shape)
        line, contour = base.copy(), base.copy()
        if u >= 2:
            side = -1 if k < peak else 1
            line += 600.0 * np.exp(-0.5 * (xx - (40 + side)) ** 2) * ((yy > 8) & (yy < 88))
        if peak + 5 < k <= peak + 11:
            radius = 30.0 + 4.0 * (k - peak - 5)
            contour += 5000.0 * np.exp(-0.5 * (np.hypot(yy - 48, xx - 110) - radius) ** 2)
        frames[0, k], frames[1, k] = rng.poisson(line), rng.poisson(contour)
        labels[:, k] = WEAK_BEAM if u >= 2 else STRONG_BEAM
    scan = Scan(frames=da.from_array(frames), angles=np.tile(10.0 + 0.002 * np.arange(n), (2, 1)),
                layer_positions=np.array([0.0, 2.0]), pixel_size=0.1)
    return scan, labels


class _Labels:
    def __init__(self, label, patch):
        self.label, self.patch_size = label, patch


@pytest.mark.parametrize("rules", ["both", "few frames"])
def test_a_rotation_contour_gives_no_points_and_the_line_keeps_them(rules):
    scan, labels = _scan_with_a_contour()
    on = {"both": {}, "few frames": {"one_tail_share": 0.0}}[rules]

    def points(params):
        pts = run(reconstruct_scan(scan, _Labels(labels, 32), params)).points_um
        return pts[pts[:, 0] == 0.0, 2] / 0.1, pts[pts[:, 0] == 2.0]  # the line layer's columns, the contour's points

    line, contour = points(ReconstructionParams(**on))
    line_off, contour_off = points(ReconstructionParams(one_tail_share=0.0, few_frames_share=0.0))
    assert len(contour_off) >= 20 and len(contour) == 0  # the contour's points: without the rules, with them
    assert (np.abs(line - 40) <= 2).sum() >= 60 and len(line) == len(line_off)  # the line keeps its points
