"""Symmetric nearest-neighbour comparison of point clouds (micrometres)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_weakbeam.core.reconstruction.compare import (
    compare_points,
    distance_stats,
    histogram,
    save_histogram_png,
    symmetric_distances,
)
from napari_weakbeam.core.errors import WeakbeamError


def _line(n: int, z: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 10, n)
    return np.column_stack([np.full(n, z), t, 0.5 * t])


def test_shifted_copy_gives_the_shift_both_ways():
    a = _line(200)
    b = a + np.array([0.0, 0.0, 0.3])  # shifted along x, perpendicular component ~0.27
    d_ab, d_ba = symmetric_distances(a, b)
    # brute force, independent of the k-d tree
    brute_ab = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min(axis=1)
    brute_ba = np.sqrt(((b[:, None] - a[None]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(d_ab, brute_ab)
    np.testing.assert_allclose(d_ba, brute_ba)
    assert np.all(d_ab <= 0.3 + 1e-12)


def test_stats_directions_and_tolerance():
    truth = _line(100)
    found = np.concatenate([truth[:50], np.array([[0.0, 50.0, 50.0]])])  # half the line + 1 outlier
    stats, d_ab, d_ba = compare_points(found, truth, tolerance=0.2)
    assert stats.n_a == 51 and stats.n_b == 100
    assert stats.within_a == pytest.approx(50 / 51)  # precision: all but the outlier
    assert stats.within_b == pytest.approx(np.mean(d_ba <= 0.2))
    assert 0.45 < stats.within_b < 0.6  # recall: about half the line
    both = np.concatenate([d_ab, d_ba])
    assert stats.median == pytest.approx(np.median(both))
    assert stats.p90 == pytest.approx(np.percentile(both, 90))
    assert stats.mean == pytest.approx(both.mean())
    assert stats.in_pixels(0.05)["median"] == pytest.approx(stats.median / 0.05)
    assert "median" in stats.summary()


def test_layers_apart_count_in_z():
    a = _line(50, z=0.0)
    b = _line(50, z=2.0)
    d_ab, d_ba = symmetric_distances(a, b)
    np.testing.assert_allclose(d_ab, 2.0)
    np.testing.assert_allclose(d_ba, 2.0)


def test_histogram_counts_every_distance(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.random((300, 3)), rng.random((200, 3))
    d_ab, d_ba = symmetric_distances(a, b)
    counts, edges = histogram(d_ab, d_ba, bins=20)
    assert counts.sum() == 500 and len(edges) == 21
    png = tmp_path / "h.png"
    save_histogram_png(str(png), d_ab, d_ba, tolerance=0.1, title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "a, match",
    [
        (np.zeros((0, 3)), "no points"),
        (np.zeros((5, 2)), "N, 3"),
        (np.full((5, 3), np.nan), "NaN"),
    ],
)
def test_bad_point_clouds(a, match):
    with pytest.raises(WeakbeamError, match=match):
        symmetric_distances(a, _line(10))


def test_bad_tolerance():
    with pytest.raises(WeakbeamError, match="tolerance"):
        distance_stats(np.ones(3), np.ones(3), tolerance=-1)
