"""Comparison of two point clouds (reconstructions, or one with the simulator's ground truth).

As in the paper: the symmetric nearest-neighbour distances, i.e. every point of A to its nearest
point of B and every point of B to its nearest point of A, in micrometres, summarised by median,
mean, 90th percentile and the fraction within a tolerance, and shown as a histogram.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..errors import WeakbeamError, check_finite


DEFAULT_TOLERANCE_UM = 0.15  # without a pixel size: 3 pixels of 50 nm


def default_tolerance(pixel_size_um: float | None) -> float:
    """The comparison tolerance when none is given: 3 pixels, or 0.15 um without a pixel size."""
    return 3 * float(pixel_size_um) if pixel_size_um else DEFAULT_TOLERANCE_UM


def _points(p: Any, what: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise WeakbeamError(f"{what}: points must be (N, 3) z, y, x in micrometres, got shape {a.shape}")
    if len(a) == 0:
        raise WeakbeamError(f"{what}: no points to compare (empty reconstruction)")
    check_finite(a, f"{what}: points")
    return a


def nearest_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each point of ``a`` to its nearest point of ``b`` (same units)."""
    return cKDTree(b).query(a, k=1, workers=-1)[0]


def symmetric_distances(a: Any, b: Any, names: tuple[str, str] = ("A", "B")) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances both ways: (A -> B for each point of A, B -> A for each of B)."""
    pa, pb = _points(a, names[0]), _points(b, names[1])
    return nearest_distances(pa, pb), nearest_distances(pb, pa)


@dataclass
class DistanceStats:
    """Summary of symmetric nearest-neighbour distances (micrometres).

    ``median``/``mean``/``p90``/``within`` are over both directions together (the paper's
    symmetric distribution); ``within_a`` is the fraction of A's points within the tolerance of B
    (precision when B is the truth), ``within_b`` the fraction of B's points within the tolerance
    of A (recall of the truth when B is the truth).
    """

    n_a: int
    n_b: int
    median: float
    mean: float
    p90: float
    tolerance: float
    within: float
    within_a: float
    within_b: float
    median_a_to_b: float
    median_b_to_a: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def in_pixels(self, pixel_um: float) -> dict[str, float]:
        """Median, mean and p90 in pixels of ``pixel_um``."""
        return {k: getattr(self, k) / pixel_um for k in ("median", "mean", "p90")}

    def summary(self, unit: str = "um") -> str:
        """Human-readable multi-line summary."""
        return "\n".join(
            [
                f"points: A {self.n_a}, B {self.n_b}",
                f"symmetric nearest-neighbour distance: median {self.median:.4g} {unit}, "
                f"mean {self.mean:.4g} {unit}, p90 {self.p90:.4g} {unit}",
                f"within {self.tolerance:.4g} {unit}: {100 * self.within:.1f} % of all distances; "
                f"{100 * self.within_a:.1f} % of A's points, {100 * self.within_b:.1f} % of B's points",
            ]
        )


def distance_stats(d_ab: np.ndarray, d_ba: np.ndarray, tolerance: float = 0.1) -> DistanceStats:
    """Median, mean, 90th percentile and the fractions within ``tolerance`` (micrometres)."""
    if tolerance < 0 or not np.isfinite(tolerance):
        raise WeakbeamError(f"tolerance must be a finite distance >= 0, got {tolerance}")
    d_ab, d_ba = np.asarray(d_ab, dtype=np.float64), np.asarray(d_ba, dtype=np.float64)
    both = np.concatenate([d_ab, d_ba])
    if both.size == 0:
        raise WeakbeamError("no distances to summarise (empty point clouds)")
    return DistanceStats(
        n_a=int(d_ab.size),
        n_b=int(d_ba.size),
        median=float(np.median(both)),
        mean=float(both.mean()),
        p90=float(np.percentile(both, 90)),
        tolerance=float(tolerance),
        within=float(np.mean(both <= tolerance)),
        within_a=float(np.mean(d_ab <= tolerance)) if d_ab.size else float("nan"),
        within_b=float(np.mean(d_ba <= tolerance)) if d_ba.size else float("nan"),
        median_a_to_b=float(np.median(d_ab)) if d_ab.size else float("nan"),
        median_b_to_a=float(np.median(d_ba)) if d_ba.size else float("nan"),
    )


def compare_points(a: Any, b: Any, tolerance: float = 0.1, names: tuple[str, str] = ("A", "B")) -> tuple[DistanceStats, np.ndarray, np.ndarray]:
    """Symmetric distances between two point clouds and their statistics."""
    d_ab, d_ba = symmetric_distances(a, b, names)
    return distance_stats(d_ab, d_ba, tolerance), d_ab, d_ba


def histogram(d_ab: np.ndarray, d_ba: np.ndarray, bins: int | np.ndarray = 40, max_um: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the symmetric distances: (counts, bin edges in micrometres)."""
    both = np.concatenate([np.asarray(d_ab), np.asarray(d_ba)])
    top = max_um if max_um is not None else float(np.percentile(both, 99)) if both.size else 1.0
    top = top if top > 0 else 1.0
    return np.histogram(np.clip(both, 0, top), bins=bins, range=(0, top))


def plot_histogram(ax: Any, d_ab: np.ndarray, d_ba: np.ndarray, labels: tuple[str, str] = ("A -> B", "B -> A"), tolerance: float | None = None, bins: int = 40) -> None:
    """Draw the two directions as stacked histograms on a matplotlib ``ax`` (micrometres)."""
    _, edges = histogram(d_ab, d_ba, bins)
    top = edges[-1]
    ax.hist([np.clip(d_ab, 0, top), np.clip(d_ba, 0, top)], bins=edges, stacked=True, label=list(labels),
            color=["#f5a623", "#2d7ff9"])
    if tolerance is not None:
        ax.axvline(tolerance, color="k", ls="--", lw=1, label=f"tolerance {tolerance:g} um")
    ax.set_xlabel("nearest-neighbour distance (um)")
    ax.set_ylabel("points")
    ax.legend(fontsize="small")


HISTOGRAM_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff")


def check_histogram_path(path: str) -> None:
    """Raise a one-line error now (before any work) if the histogram cannot be written to ``path``."""
    from pathlib import Path

    p = Path(path)
    if p.suffix.lower() not in HISTOGRAM_FORMATS:
        raise WeakbeamError(
            f"{path}: unknown image format {p.suffix or '(none)'} for the histogram (use {', '.join(HISTOGRAM_FORMATS)})"
        )
    if p.is_dir():
        raise WeakbeamError(f"{path}: is a folder; give a file name for the histogram, e.g. distances.png")
    if not p.parent.is_dir():
        raise WeakbeamError(f"{p.parent}: no such folder for the histogram")


def save_histogram_png(path: str, d_ab: np.ndarray, d_ba: np.ndarray, labels: tuple[str, str] = ("A -> B", "B -> A"), tolerance: float | None = None, title: str = "") -> None:
    """Write the histogram to a PNG (or .pdf, .svg ...) file (matplotlib Agg, no display needed)."""
    from matplotlib.figure import Figure

    check_histogram_path(path)

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot(111)
    plot_histogram(ax, d_ab, d_ba, labels, tolerance)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    from ..atomic import atomic_path

    fmt = {".jpg": "jpeg", ".tif": "tiff"}.get(Path(path).suffix.lower(), Path(path).suffix.lower()[1:])
    try:
        with atomic_path(path) as tmp:  # an earlier histogram is replaced whole or not at all
            fig.savefig(tmp, format=fmt)
    except OSError as exc:
        raise WeakbeamError(f"{path}: cannot write the histogram ({exc.strerror or exc})") from None
