"""Lines crossing inside one layer's mask piece, and a layer's in-plane streak beside a steep
line's dot (issue 10: dfxm-geo stacks)."""

from __future__ import annotations

import numpy as np
from skimage.draw import line as draw_line

from napari_weakbeam.core.reconstruction.crossings import piece_arms
from napari_weakbeam.core.reconstruction.lines import trace_lines

VOX = (2.0, 0.05, 0.05)


def _streak(mask: np.ndarray, r0: int, c0: int, r1: int, c1: int, width: int = 1) -> None:
    rr, cc = draw_line(r0, c0, r1, c1)
    for d in range(-width, width + 1):
        mask[np.clip(rr + d, 0, mask.shape[0] - 1), cc] = True


def _distance_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
    return float(np.linalg.norm(p - (a + t * (b - a))))


def test_two_crossing_streaks_are_two_segments():
    """An X of two 5 um streaks (0.05 um pixels) is two straight arms, each on its streak."""
    m = np.zeros((140, 140), bool)
    _streak(m, 20, 20, 120, 120)
    _streak(m, 20, 120, 120, 20)
    arms = piece_arms(m, (0, 0), VOX)
    assert len(arms) == 2
    truths = [(np.array([20, 20]) * 0.05, np.array([120, 120]) * 0.05),
              (np.array([20, 120]) * 0.05, np.array([120, 20]) * 0.05)]
    for c, u, h in arms:
        ends = [c - h * u, c + h * u]
        best = min(max(_distance_to_segment(e, *t) for e in ends) for t in truths)
        assert best < 0.1 and 2 * h > 4.0


def test_straight_streak_with_a_short_spur_is_one_line():
    """A straight streak with a 0.3 um bump on its side (noise on its outline) holds one line."""
    m = np.zeros((60, 200), bool)
    _streak(m, 30, 10, 30, 190)
    m[24:30, 100:103] = True
    assert piece_arms(m, (0, 0), VOX) == []
    # nor does a wide band (a wall's image 1 um across, dfxm-geo pixels), whatever its corners
    band = np.zeros((45, 60), bool)
    band[5:30, 5:55] = True
    assert piece_arms(band, (0, 0), (2.0, 0.04, 0.13)) == []
    # and a T of a long streak and a 2 um branch is two lines
    _streak(m, 30, 60, 70 if m.shape[0] > 70 else 59, 100)
    assert len(piece_arms(m, (0, 0), VOX)) == 2


def test_crossing_streaks_of_one_layer_traced_as_two_lines():
    """Seen in one layer only, two crossing streaks are traced as two lines along them (not one
    segment along the piece's mean axis, between them)."""
    masks = np.zeros((2, 140, 140), bool)
    _streak(masks[0], 20, 20, 120, 120)
    _streak(masks[0], 20, 120, 120, 20)
    lines = trace_lines(masks, np.array([0.0, 2.0]), VOX)
    assert len(lines) == 2
    for v in lines.to_list():
        d = v[1, 1:] - v[0, 1:]
        assert abs(abs(d[0]) - abs(d[1])) < 0.3 and np.linalg.norm(d) > 4.0  # along a diagonal


def test_in_plane_streak_does_not_link_to_a_dot_on_its_axis():
    """A layer's 7 um in-plane streak and, in the next layer, a steep line's dot on its axis 0.3 um
    from its centre: with no shallow pairs to measure the scan's move ratio, the streak is far
    longer than the image of a line moving 0.3 um per layer can be, so the two stay apart and
    the streak is drawn along its length."""
    masks = np.zeros((2, 200, 60), bool)
    masks[0, 30:170, 29:32] = True
    masks[1, 104:107, 29:32] = True
    lines = trace_lines(masks, np.array([0.0, 2.0]), VOX)
    lengths = sorted(lines.lengths())
    assert len(lines) == 2 and lengths[-1] > 6.5



def test_line_of_one_layer_spans_its_points_not_its_mask():
    """Given the layer's centre-line points (the point cloud's skeleton, its dim ends peeled), a
    line seen in one layer only spans them along its piece's axis; a piece holding none is no
    line (the points judged it false)."""
    masks = np.zeros((1, 60, 200), bool)
    masks[0, 28:33, 10:190] = True  # a streak 9 um long
    masks[0, 10:14, 20:60] = True  # a streak whose points were all peeled
    masks[0, 40:46, 170:176] = True  # a dot of one point: a point of the cloud, not a line
    skel = np.zeros_like(masks)
    skel[0, 30, 50:150] = True  # its points: the middle 5 um
    skel[0, 43, 173] = True
    plain = trace_lines(masks, np.array([0.0]), VOX)
    assert len(plain) == 3 and plain.lengths().max() > 8.5
    spans = trace_lines(masks, np.array([0.0]), VOX, skeletons=skel)
    assert len(spans) == 1 and spans.lengths()[0] > 0
    x = spans.line(0)[:, 2]
    np.testing.assert_allclose([x.min(), x.max()], [50 * 0.05, 149 * 0.05], atol=0.03)
