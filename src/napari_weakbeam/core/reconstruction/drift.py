"""The drift of a layer scan between layers.

A real layer scan drifts a few pixels between layers. :func:`drift_and_lines` measures the drift
from the continuity of the lines (:func:`drift_from_pieces`: the second difference of a straight
line's positions in three consecutive layers is the drift's), up to its linear trend, which no
data of the layers can tell from inclined structure; where the layers hold the same content,
shifted, :func:`register_drift` registers it instead (phase correlation of each layer's
:func:`registration_image`, the per-pixel rocking-curve centre of mass). It then traces the lines
(:mod:`.lines`), corrected for the drift when asked. See docs/reconstruction.md.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .lines import Lines, link_gate, link_tracks, polylines
from .pieces import Piece, all_pieces, corrected

REG_BIN = 2  # registration images are binned 2 x 2 (drift in full pixels = shift x REG_BIN)
#: How a scan's drift was measured (:func:`drift_and_lines`; ``/reconstruction/drift_px``
#: attribute ``source``): on a static reference box, by registering layers of the same content,
#: from the lines' continuity (up to its linear trend), or not at all (0 recorded).
DRIFT_SOURCES = ("reference", "registration", "lines", "none")
MIN_VOTE_EQUATIONS = 3  # a drift step (2 unknowns) chosen among measurements needs one agreeing equation to spare (:func:`_vote`)
#: The agreeing equations of a vote must fix both components: the smaller singular value of their
#: rows at least this share of the larger (tan 10 degrees: rows alone whose normals span less than
#: 20 degrees, e.g. the parallel lines of one wall, meet far out by chance; :func:`_vote`).
MIN_ROW_SPREAD = float(np.tan(np.radians(10.0)))
REG_SAME_PEAK = 0.4  # phase-correlation peak of layers that hold the same content, shifted (measured 0.45-0.99; 0.05-0.30 between layers of a simulated grain)


def registration_image(frames: np.ndarray, angles: np.ndarray | None = None) -> np.ndarray:
    """A layer's drift-tracking image: the per-pixel rocking-curve centre of mass (in frame-index
    units, dark level removed) on every ``REG_BIN``-th pixel of each axis, float32 (one frame: its
    intensity there).

    It maps the grain's local orientation, which varies slowly with height, so consecutive layers
    correlate even where dislocations move between them.
    """
    f = np.asarray(frames)
    n, rows, cols = f.shape
    x = np.arange(n, dtype=np.float32) if angles is None else np.argsort(np.argsort(np.asarray(angles))).astype(np.float32)
    if angles is not None:
        ok = np.isfinite(np.asarray(angles, dtype=np.float64))
        f, x = f[ok], x[ok]
    r2, c2 = rows // REG_BIN * REG_BIN, cols // REG_BIN * REG_BIN
    b = f[:, :r2:REG_BIN, :c2:REG_BIN]  # every REG_BIN-th pixel (a binned mean costs 4x the time)
    b = b.astype(np.float32)
    if len(b) == 1:  # one frame (the manual method): its intensity
        return b[0]
    b -= b.min(axis=0, keepdims=True)
    tot = b.sum(axis=0)
    com = np.tensordot(x, b, axes=(0, 0)) / np.maximum(tot, 1e-6)
    return np.where(tot > 0, com, np.float32(np.median(com))).astype(np.float32)


def layer_shift(ref: np.ndarray, moving: np.ndarray, max_shift_px: float = 20.0) -> tuple[np.ndarray | None, float]:
    """Shift (dy, dx) in full pixels of ``moving`` relative to ``ref`` (registration images), or
    None where the registration fails (a shift beyond ``max_shift_px``, images too small), and
    the height of the correlation peak (1 for the same content shifted; 0.05-0.3 between the
    layers of a simulated grain, whose lines and walls move).

    Phase correlation (whitened spectrum: sharp features dominate), 1/20 pixel, of the
    mean-removed, edge-tapered images.
    """
    from skimage.registration import phase_cross_correlation

    def prep(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
        return (a - a.mean()) * win

    if ref.shape != moving.shape or min(ref.shape) < 8:
        return None, 0.0
    a, b = prep(ref), prep(moving)
    cross = np.fft.fft2(b) * np.conj(np.fft.fft2(a))
    peak = float(np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-30)).real.max())
    shift, _, _ = phase_cross_correlation(b, a, upsample_factor=20, normalization="phase")
    shift = np.asarray(shift, dtype=np.float64) * REG_BIN
    if not np.all(np.isfinite(shift)) or np.abs(shift).max() > max_shift_px:
        return None, peak
    return shift, peak


def register_steps(images: Sequence[np.ndarray | None], max_shift_px: float = 20.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Registered shift (layers - 1, 2) px of each layer relative to the one before
    (:func:`layer_shift`), whether it succeeded (layers - 1,) bool (failed steps: 0) and the
    height of its correlation peak (layers - 1,)."""
    n = len(images)
    steps, ok, peak = np.zeros((max(n - 1, 0), 2)), np.zeros(max(n - 1, 0), bool), np.zeros(max(n - 1, 0))
    for k in range(1, n):
        a, b = images[k - 1], images[k]
        if a is None or b is None:
            continue
        s, peak[k - 1] = layer_shift(a, b, max_shift_px)
        if s is not None:
            steps[k - 1], ok[k - 1] = s, True
    return steps, ok, peak


def _same_content(images: Sequence[np.ndarray | None]) -> bool:
    """Whether every pair of consecutive registration images holds the same content, shifted
    (phase-correlation peak >= ``REG_SAME_PEAK``; stops at the first pair that does not)."""
    for a, b in zip(images[:-1], images[1:]):
        if a is None or b is None or layer_shift(a, b, math.inf)[1] < REG_SAME_PEAK:
            return False
    return True


def register_drift(images: Sequence[np.ndarray | None], max_shift_px: float = 20.0) -> np.ndarray:
    """Drift (layers, 2) of each layer relative to the first, in pixels (dy, dx), from the
    registration images alone: the content of layer k appears shifted by ``drift[k]``;
    consecutive layers are registered and the shifts summed (a failed step counts as 0)."""
    steps = register_steps(images, max_shift_px)[0]
    return np.vstack([np.zeros((1, 2)), np.cumsum(steps, axis=0)]) if len(images) else np.zeros((0, 2))


def _triples(prev: list[Piece], cur: list[Piece], nxt: list[Piece], um: np.ndarray, gate_um: float,
             max_accel_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every plausible way a straight line may cross three consecutive layers: pieces p, q, r of
    the same kind (compact, or elongated and parallel) with q within ``gate_um`` of p and r of q,
    none cut by the field's edge. Each gives the drift's second difference a = r - 2q + p
    (pixels), |a| <= ``max_accel_px``: compact pieces in y and x (points (m, 2)), elongated ones
    across their axis only (rows: unit normals (k, 2) and values (k,) of normals @ a = value)."""
    points, normals, values = [np.zeros((0, 2))], [np.zeros((0, 2))], [np.zeros(0)]
    usable = [[q for q in layer if not q.edge] for layer in (prev, cur, nxt)]
    if not all(usable):
        return points[0], normals[0], values[0]
    (pp, qq, rr) = usable
    cp, cr = (np.array([q.centre for q in layer]) for layer in (pp, rr))
    ap, ar = (np.array([q.axis for q in layer]) for layer in (pp, rr))
    ep, er = (np.array([q.elongated for q in layer]) for layer in (pp, rr))
    tp, tr = cKDTree(cp), cKDTree(cr)
    par = math.cos(math.radians(20))
    for q in qq:
        ip = np.array(tp.query_ball_point(q.centre, gate_um), dtype=int)
        ir = np.array(tr.query_ball_point(q.centre, gate_um), dtype=int)
        ip, ir = ip[ep[ip] == q.elongated], ir[er[ir] == q.elongated]
        if q.elongated:
            ip = ip[np.abs(ap[ip] @ q.axis) >= par]
            ir = ir[np.abs(ar[ir] @ q.axis) >= par]
        if not len(ip) or not len(ir):
            continue
        acc = ((cr[ir][None, :, :] - 2 * q.centre + cp[ip][:, None, :]) / um).reshape(-1, 2)
        if q.elongated:
            ax = q.axis / um
            ax = ax / (np.linalg.norm(ax) or 1.0)
            e = np.array([-ax[1], ax[0]])
            v = acc @ e
            v = v[np.abs(v) <= max_accel_px]
            normals.append(np.tile(e, (len(v), 1)))
            values.append(v)
        else:
            points.append(acc[np.abs(acc).max(axis=1) <= max_accel_px])
    return np.concatenate(points), np.concatenate(normals), np.concatenate(values)


def _vote(points: np.ndarray, normals: np.ndarray, values: np.ndarray, max_accel_px: float,
          tol_px: float = 1.5, row_weight: float = 0.5, bin_px: float = 0.5) -> np.ndarray | None:
    """The 2-vector a that most measurements agree with within ``tol_px``: the ``points`` (m, 2)
    (a = point) and the rows (normals @ a = values; each counts ``row_weight``: any two rows
    meet somewhere). The votes (a histogram on a ``bin_px`` grid over |a| <= ``max_accel_px``, a
    row drawn along its line, smoothed by a disc of radius ``tol_px``) are weighted by a
    Gaussian of width ``max_accel_px`` / 2 around 0 (a chance agreement far out does not beat
    the measurements near 0); then least squares over the measurements that agree with the
    best cell. None if they do not fix both components, or if the measurements offered a choice
    (more than one) and the best cell holds no equation to spare (a point is two equations, a row
    one; ``MIN_VOTE_EQUATIONS``): any two rows meet somewhere and any one point is a cell, so
    among several, only a third agreeing equation shows the choice is not chance (the dfxm-geo
    cell-walls stack, no drift applied: two of four rows met at a spurious 17 px). A lone point
    offers no choice: one dot crossing three layers (refused, it cost one of our drifted stacks
    its drift: detrended error 0.2 -> 3.3 px). None too where the agreeing rows are nearly
    parallel (``MIN_ROW_SPREAD``: 11 rows of one dfxm-geo wall, normals within 2 degrees, met at
    (-16, -15) px and recorded a drift of 10.9 px where none was applied).
    """
    edges = np.arange(-max_accel_px - bin_px / 2, max_accel_px + bin_px, bin_px)
    centres = (edges[:-1] + edges[1:]) / 2
    samples, weights = [points], [np.ones(len(points))]
    if len(values):
        t = np.arange(-1.5 * max_accel_px, 1.5 * max_accel_px + bin_px / 2, bin_px)  # along each row
        along = np.column_stack([-normals[:, 1], normals[:, 0]])
        line = (normals * values[:, None])[:, None, :] + t[None, :, None] * along[:, None, :]
        samples.append(line.reshape(-1, 2))
        # samples bin_px apart, smoothed by the disc, sum to 4/3 tol / bin_px on the line: one vote
        weights.append(np.full(line.shape[0] * line.shape[1], row_weight * 0.75 * bin_px / tol_px))
    hist = np.histogram2d(*np.concatenate(samples).T, bins=(edges, edges), weights=np.concatenate(weights))[0]
    r = int(np.ceil(tol_px / bin_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1] * bin_px
    kernel = np.clip(1 - (yy**2 + xx**2) / tol_px**2, 0, None)
    votes = ndi.convolve(hist, kernel, mode="constant")
    votes *= np.exp(-2.0 * (centres[:, None] ** 2 + centres[None, :] ** 2) / max_accel_px**2)
    i, j = np.unravel_index(int(np.argmax(votes)), votes.shape)
    best = np.array([centres[i], centres[j]])
    near = np.linalg.norm(points - best, axis=1) <= tol_px
    agree = np.abs(normals @ best - values) <= tol_px
    rows = np.concatenate([np.tile(np.eye(2), (int(near.sum()), 1)), normals[agree]])
    vals = np.concatenate([points[near].ravel(), values[agree]])
    chose = len(points) + len(values) > 1
    if (chose and len(vals) < MIN_VOTE_EQUATIONS) or len(vals) < 2:
        return None
    sv = np.linalg.svd(rows, compute_uv=False)  # rows are unit vectors: sv[0] >= 1
    if sv[-1] < MIN_ROW_SPREAD * sv[0]:
        return None  # one direction only (or nearly parallel rows): they meet anywhere along the other
    return np.linalg.lstsq(rows, vals, rcond=None)[0]


def drift_from_pieces(pieces: list[list[Piece]], voxel: tuple[float, float, float], gate_um: float,
                      max_accel_px: float = 20.0) -> tuple[np.ndarray, int]:
    """Drift (layers, 2) in pixels from the continuity of the lines, up to its linear trend, and
    the number of layers whose second difference the lines gave (0: the drift is 0).

    A straight line's position in layer k is p + v k + drift[k], so its second difference
    between layers k - 1, k, k + 1 is the drift's. Every plausible crossing of three consecutive
    layers (:func:`_triples`, no tracking: a link that a wall's parallel lines make ambiguous
    cannot mislead it) votes for that second difference, and the value most of them agree with
    wins (:func:`_vote`: wrong combinations scatter, the true ones coincide). Summed twice, it
    gives the drift up to a linear trend, which no line can tell from an inclination: the result
    is the one whose steps average to 0. A layer without a vote keeps the drift's velocity.
    """
    n = len(pieces)
    um = np.array(voxel[1:], dtype=np.float64)
    accel = np.zeros((n, 2))
    used = 0
    for k in range(1, n - 1):
        points, normals, values = _triples(pieces[k - 1], pieces[k], pieces[k + 1], um, gate_um, max_accel_px)
        if len(points) or len(values):
            a = _vote(points, normals, values, max_accel_px)
            if a is not None:
                accel[k] = a
                used += 1
    drift = np.zeros((n, 2))
    for k in range(1, n - 1):
        drift[k + 1] = 2 * drift[k] - drift[k - 1] + accel[k]
    if n > 1:
        drift -= np.arange(n)[:, None] * (drift[-1] / (n - 1))[None]  # steps averaging to 0
    return drift, used


def drift_and_lines(
    masks: Sequence[np.ndarray] | Any,
    layer_positions: np.ndarray,
    voxel: tuple[float, float, float],
    reg_images: Sequence[np.ndarray | None] | None,
    *,
    max_shift_px: float = 20.0,
    correct: bool = False,
    trace: bool = True,
    link_distance_um: float | None = None,
    max_gap: int = 1,
    tails: Sequence[np.ndarray | None] | Any = None,
    reference: np.ndarray | None = None,
    skeletons: Sequence[np.ndarray] | Any = None,
) -> tuple[np.ndarray, Lines | None, str]:
    """The scan's drift (layers, 2) px, its lines (None without ``trace``), corrected for the
    drift when ``correct``, and how the drift was measured (one of ``DRIFT_SOURCES``).

    The drift is fitted to the continuity of the lines the pieces can form
    (:func:`drift_from_pieces`). Its linear trend is not measured: the result
    is the drift with the smallest steps that the lines allow (a steady drift is the same as
    inclining every line, and the registration of the orientation maps follows the structure
    that moves between layers: see docs/reconstruction.md). The drift is the registration's
    alone (:func:`register_drift`) where every step registers the same content shifted
    (correlation peak >= ``REG_SAME_PEAK``: nothing moves between the layers but the sample);
    where no line crosses three layers in a straight line (or with two layers), or the lines'
    drift steps beyond ``max_shift_px`` between two layers, and the content differs, no drift is
    measured and it is 0. With ``correct``
    the lines are traced again from the drift-corrected pieces. Each mask is read once. With
    ``tails`` (per layer, :func:`.tails.tail_images`), the pieces are centred between the
    rocking curve's tails; with ``skeletons`` (per layer, the point cloud's centre lines), a line
    seen in one layer only spans its piece's points. A ``reference`` drift (layers, 2), measured on a static feature
    (:mod:`.drift_reference`, trend included), is used as it is.
    """
    pos = np.asarray(layer_positions, dtype=np.float64)
    n = len(pos)
    pieces, field = all_pieces(masks, n, voxel, tails, skeletons)
    gate = link_gate(pos, link_distance_um)
    if reference is not None:
        drift, source = np.asarray(reference, dtype=np.float64).reshape(n, 2), "reference"
    else:
        drift, used = drift_from_pieces(pieces, voxel, gate, 2 * max_shift_px)
        source = "lines" if used else "none"
        if used and n > 1 and np.linalg.norm(np.diff(drift, axis=0), axis=1).max() > max_shift_px:
            # a step beyond the largest drift accepted: chance crossings voted (the dfxm-geo
            # cell-walls stack: 27-56 px per layer with none applied), not the sample's drift
            drift, source = np.zeros((n, 2)), "none"
        # the orientation maps are registered only where they hold the same content: elsewhere they
        # follow what moves between the layers (dfxm-geo stacks, no drift applied: 16-36 px)
        if reg_images is not None and n >= 2 and _same_content(reg_images):
            drift, source = register_drift(reg_images, max_shift_px), "registration"
    lines = None
    if trace:
        moved, fields = corrected(pieces, field, drift if correct else None, voxel)
        lines = polylines(link_tracks(moved, pos, gate, max_gap, fields))
    return drift, lines, source
