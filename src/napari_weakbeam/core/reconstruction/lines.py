"""Dislocation lines in 3D: layer drift, tracing through the stack, scoring.

A real layer scan drifts a few pixels between layers. :func:`drift_and_lines` measures the drift
from the continuity of the lines (:func:`drift_from_pieces`: the second difference of a straight
line's positions in three consecutive layers is the drift's), up to its linear trend, which no
data of the layers can tell from inclined structure; where the layers hold the same content,
shifted, :func:`register_drift` registers it instead (phase correlation of each layer's
:func:`registration_image`, the per-pixel rocking-curve centre of mass).

:func:`trace_lines` links the pieces of each layer's mask (connected components, with their
centroid and in-plane axis) into polylines across layers: a piece continues a line in the next
layer if it lies near the line's extrapolation (or, for a line seen in one layer only, near its
axis), one-to-one (``scipy.optimize.linear_sum_assignment``) within ``link_distance_um``.
Vertices are the pieces' drift-corrected centroids at their layer's height; a line seen in one
layer only is its piece's in-plane extent. :class:`Lines` holds them as ``vertices`` (N, 3) um
z, y, x and ``offsets`` (L + 1,), with per-line length and mean direction.

:func:`score_lines` compares traced lines with true ones (the share of true line length found
within a tolerance, and the traced length that follows no true line). core.reconstruction.exports writes them
(VTK, XDMF, CSV). See docs/reconstruction.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..errors import WeakbeamError
from ..scanfiles.scan import layer_spacing

LINK_FACTOR = 2.0  # default largest step of a line between layers, in layer spacings
EDGE_MARGIN_PX = 5  # scoring: a line crossing a layer plane this near the field's edge is not observable there
REG_BIN = 2  # registration images are binned 2 x 2 (drift in full pixels = shift x REG_BIN)
OFF_AXIS_UM = 0.75  # tracing: largest step across an elongated piece's axis (a 5 px drift along x is ~0.7 um)
REG_SAME_PEAK = 0.4  # phase-correlation peak of layers that hold the same content, shifted (measured 0.45-0.99; 0.05-0.30 between layers of a simulated grain)


# ----------------------------------------------------------------------------------------------
# Lines container


@dataclass
class Lines:
    """Polylines: line k is ``vertices[offsets[k]:offsets[k + 1]]`` (z, y, x micrometres)."""

    vertices: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.offsets = np.asarray(self.offsets, dtype=np.int64).ravel()
        if len(self.offsets) == 0:
            self.offsets = np.zeros(1, np.int64)
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.vertices) or np.any(np.diff(self.offsets) < 0):
            raise WeakbeamError(f"line offsets {self.offsets[:3]}...{self.offsets[-1:]} do not index {len(self.vertices)} vertices")

    @classmethod
    def from_list(cls, lines: Sequence[np.ndarray]) -> "Lines":
        lines = [np.asarray(v, dtype=np.float64).reshape(-1, 3) for v in lines]
        verts = np.concatenate(lines) if lines else np.zeros((0, 3))
        return cls(verts, np.cumsum([0] + [len(v) for v in lines]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def line(self, k: int) -> np.ndarray:
        return self.vertices[self.offsets[k]:self.offsets[k + 1]]

    def to_list(self) -> list[np.ndarray]:
        return [self.line(k) for k in range(len(self))]

    def lengths(self) -> np.ndarray:
        """Length of each line (um)."""
        return np.array([float(np.linalg.norm(np.diff(v, axis=0), axis=1).sum()) for v in self.to_list()])

    def directions(self) -> np.ndarray:
        """Mean direction of each line: the unit principal axis of its vertices (z, y, x), pointing
        up (dz >= 0; for a flat line, dy >= 0). NaN for a line of one vertex."""
        out = np.full((len(self), 3), np.nan)
        for k in range(len(self)):
            v = self.line(k)
            if len(v) < 2 or not np.ptp(v, axis=0).any():
                continue
            d = np.linalg.svd(v - v.mean(axis=0), full_matrices=False)[2][0]
            lead = d[0] if abs(d[0]) > 1e-9 else (d[1] if abs(d[1]) > 1e-9 else d[2])
            out[k] = d if lead >= 0 else -d
        return out

    def table(self) -> np.ndarray:
        """(L, 4): length um and direction z, y, x per line."""
        return np.column_stack([self.lengths(), self.directions()]) if len(self) else np.zeros((0, 4))

    def sample(self, step: float) -> np.ndarray:
        """Points along every line, at most ``step`` um apart (vertices included)."""
        pts = []
        for v in self.to_list():
            pts.append(_sample_polyline(v, step))
        return np.concatenate(pts) if pts else np.zeros((0, 3))


def _sample_polyline(v: np.ndarray, step: float) -> np.ndarray:
    if len(v) < 2:
        return v.copy()
    out = [v[:1]]
    for a, b in zip(v[:-1], v[1:]):
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        out.append(a + np.linspace(0, 1, n + 1)[1:, None] * (b - a))
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# Drift


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


# ----------------------------------------------------------------------------------------------
# Tracing


@dataclass
class Piece:
    """One connected component of a layer's mask: centroid (y, x) um, in-plane unit axis (y, x)
    in um, half length along it (um), the layer index."""

    layer: int
    centre: np.ndarray
    axis: np.ndarray
    half_length: float
    elongated: bool
    edge: bool = False
    """The piece touches the field's edge (cut there)."""


def layer_pieces(mask: np.ndarray, layer: int, voxel: tuple[float, float, float], drift_px: np.ndarray | None = None,
                 min_pixels: int = 3) -> list[Piece]:
    """The pieces of one layer's mask in drift-corrected micrometres."""
    lab, n = ndi.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3)))
    if n == 0:
        return []
    dy, dx = (0.0, 0.0) if drift_px is None else (float(drift_px[0]), float(drift_px[1]))
    out = []
    for k, sl in enumerate(ndi.find_objects(lab), start=1):
        r, c = np.nonzero(lab[sl] == k)
        if len(r) < min_pixels:
            continue
        y = (r + sl[0].start - dy) * voxel[1]
        x = (c + sl[1].start - dx) * voxel[2]
        pts = np.column_stack([y, x])
        centre = pts.mean(axis=0)
        cov = np.cov(pts.T) if len(pts) > 2 else np.eye(2) * 1e-12
        evals, evecs = np.linalg.eigh(cov)
        axis = evecs[:, 1]
        proj = (pts - centre) @ axis
        half = float(max(proj.max(), -proj.min()))
        elongated = bool(evals[1] > 4 * max(evals[0], 1e-12))
        edge = sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == lab.shape[0] or sl[1].stop == lab.shape[1]
        out.append(Piece(layer, centre, axis, half, elongated, bool(edge)))
    return out


def _link_cost(track: list[Piece], z: list[float], q: Piece, zq: float) -> float:
    """In-plane distance (um) from ``q`` to where ``track`` is expected at height ``zq``.

    A track of two or more pieces is extrapolated in a straight line. A track of one piece has no
    known inclination: if it and ``q`` are both elongated (lines shallow enough to draw a segment
    across the slab) and parallel, ``q`` continues it when it lies on its axis line, however far
    along (a shallow line moves far between layers): the cost is the distance across the axes
    plus 5 % of the distance along them (up to 8 layer spacings); otherwise the plain distance.
    """
    last = track[-1]
    if len(track) >= 2:
        prev = track[-2]
        dz0 = z[-1] - z[-2]
        pred = last.centre + (last.centre - prev.centre) * ((zq - z[-1]) / dz0 if dz0 else 0.0)
        if _off_axis(q, q.centre - last.centre):
            return math.inf
        return float(np.linalg.norm(q.centre - pred))
    d = q.centre - last.centre
    if last.elongated and q.elongated and abs(float(last.axis @ q.axis)) >= math.cos(math.radians(20)):
        along = float(d @ last.axis)
        across = 0.5 * (float(np.linalg.norm(d - along * last.axis)) + float(np.linalg.norm(d - (d @ q.axis) * q.axis)))
        if abs(along) <= 8 * abs(zq - z[-1]):
            return across + 0.05 * abs(along)
    if _off_axis(last, d) or _off_axis(q, d):
        return math.inf
    return float(np.linalg.norm(d))


def _off_axis(piece: Piece, d: np.ndarray) -> bool:
    """Whether a line through an elongated ``piece`` cannot move by ``d`` (um) between layers: a
    line crossing the slab draws its own in-plane direction, so it moves along the piece's axis;
    off by more than ``OFF_AXIS_UM`` or 20 degrees (drift, segmentation), the link is wrong."""
    if not piece.elongated:
        return False
    across = float(np.linalg.norm(d - (d @ piece.axis) * piece.axis))
    return across > max(OFF_AXIS_UM, math.sin(math.radians(20)) * float(np.linalg.norm(d)))


def _lookahead(a: Piece, za: float, b: Piece, zb: float, nxt: list[Piece], zn: float, gate: float,
               field: np.ndarray) -> float:
    """How well a line through ``a`` and ``b`` continues into the following layer: half the
    distance from its extrapolation to the nearest piece there (at most ``gate`` / 2); 0 when the
    extrapolation leaves the field of view (``field``: its (y, x) extent, um) or the layer holds
    no piece."""
    if not nxt or zb == za:
        return 0.0
    pred = b.centre + (b.centre - a.centre) * ((zn - zb) / (zb - za))
    if np.any(pred < 0) or np.any(pred > field):
        return 0.0
    d = min(float(np.linalg.norm(q.centre - pred)) for q in nxt)
    return 0.5 * min(d, gate)


Track = tuple[list[Piece], list[float]]


def _cost_matrix(active: list[Track], layer: list[Piece], zk: float, gate: float) -> np.ndarray:
    """Link costs (:func:`_link_cost`) of every active track to every piece of the layer at
    height ``zk``; inf where the piece lies too far to be linked under any rule (not computed)."""
    cost = np.full((len(active), len(layer)), math.inf)
    tree = cKDTree(np.array([q.centre for q in layer]))
    for i, (t, zs) in enumerate(active):
        last = t[-1]
        if len(t) >= 2:
            dz0 = zs[-1] - zs[-2]
            centre, reach = last.centre + (last.centre - t[-2].centre) * ((zk - zs[-1]) / dz0 if dz0 else 0.0), gate
        else:  # the axis rule reaches up to 8 layer steps along the axis
            centre, reach = last.centre, gate + (8 * abs(zk - zs[-1]) if last.elongated else 0.0)
        for j in tree.query_ball_point(centre, reach * (1 + 1e-9)):
            cost[i, j] = _link_cost(t, zs, layer[j], zk)
    return cost


def _link_tracks(pieces: list[list[Piece]], pos: np.ndarray, gate: float, max_gap: int, field: np.ndarray) -> list[Track]:
    """Link the pieces of consecutive layers into tracks (the rules of :func:`trace_lines`)."""
    n = len(pos)
    finished: list[Track] = []
    active: list[Track] = []
    for k in range(n):
        zk = float(pos[k])
        matched_tracks: set[int] = set()
        matched_pieces: set[int] = set()
        if active and pieces[k]:
            cost = _cost_matrix(active, pieces[k], zk, gate)
            if k + 1 < n:
                for i, (t, zs) in enumerate(active):
                    if len(t) == 1:
                        for j, q in enumerate(pieces[k]):
                            if cost[i, j] <= gate:
                                cost[i, j] += _lookahead(t[0], zs[0], q, zk, pieces[k + 1], float(pos[k + 1]), gate, field)
            # a track that skipped a layer (a piece missed there) pays for the gap
            skipped = np.array([t[-1].layer != k - 1 for t, _ in active])
            cost[skipped] += 0.25 * gate
            big = 1e6
            cost_g = np.where(cost <= gate, cost, big)
            ri, ci = linear_sum_assignment(cost_g)
            for i, j in zip(ri, ci):
                if cost_g[i, j] < big:
                    active[i][0].append(pieces[k][j])
                    active[i][1].append(zk)
                    matched_tracks.add(i)
                    matched_pieces.add(j)
        still = []
        for i, tr in enumerate(active):
            # unmatched tracks wait one layer (a line missed in one layer), then end
            keep = i in matched_tracks or tr[0][-1].layer >= k - max_gap
            (still if keep else finished).append(tr)
        for j, q in enumerate(pieces[k]):
            if j not in matched_pieces:
                still.append(([q], [zk]))
        active = still
    finished.extend(active)
    return finished


def _polylines(tracks: list[Track]) -> Lines:
    """Tracks as polylines: the pieces' centroids at their layer's height; a track of one piece is
    the piece's in-plane extent."""
    polylines = []
    for track, zs in tracks:
        if len(track) == 1:
            p = track[0]
            a = p.centre - p.half_length * p.axis
            b = p.centre + p.half_length * p.axis
            polylines.append(np.array([[zs[0], a[0], a[1]], [zs[0], b[0], b[1]]]))
        else:
            v = np.array([[z, p.centre[0], p.centre[1]] for p, z in zip(track, zs)])
            polylines.append(np.vstack([_end(v[1], v[0], track[0]), v, _end(v[-2], v[-1], track[-1])]))
    polylines.sort(key=lambda v: (v[0, 0], v[0, 1], v[0, 2]))
    return Lines.from_list(polylines)


def _end(inner: np.ndarray, end: np.ndarray, piece: Piece) -> np.ndarray:
    """The end of a traced line beyond its last vertex ``end`` (z, y, x), away from ``inner``
    ((1, 3), or (0, 3) for a compact end piece): a line shallow enough to draw a segment across
    the end layer's slab goes on along its direction by the piece's half length in-plane (at
    most a quarter of the layer step in z)."""
    d = end - inner
    step = float(np.linalg.norm(d[1:]))
    if not piece.elongated or step == 0:
        return np.zeros((0, 3))
    return (end + min(piece.half_length / step, 0.25) * d)[None]


def _shifted(pieces: list[list[Piece]], drift_px: np.ndarray | None, voxel: tuple[float, float, float]) -> list[list[Piece]]:
    """The pieces with their centroids corrected for each layer's drift (dy, dx) in pixels."""
    if drift_px is None:
        return pieces
    um = np.array(voxel[1:], dtype=np.float64)
    return [[replace(q, centre=q.centre - np.asarray(drift_px[k], dtype=np.float64) * um) for q in layer]
            for k, layer in enumerate(pieces)]


def _all_pieces(masks: Sequence[np.ndarray] | Any, n: int, voxel: tuple[float, float, float]) -> tuple[list[list[Piece]], np.ndarray]:
    """Every layer's pieces (one mask in memory at a time) and the field's (y, x) extent, um."""
    pieces, field = [], np.zeros(2)
    for k in range(n):
        m = np.asarray(masks[k])
        field = np.array(m.shape, dtype=np.float64) * np.array(voxel[1:])
        pieces.append(layer_pieces(m, k, voxel))
    return pieces, field


def _gate(pos: np.ndarray, link_distance_um: float | None) -> float:
    return float(LINK_FACTOR * layer_spacing(pos) if link_distance_um is None else link_distance_um)


def trace_lines(
    masks: Sequence[np.ndarray] | Any,
    layer_positions: np.ndarray,
    voxel: tuple[float, float, float],
    drift_px: np.ndarray | None = None,
    link_distance_um: float | None = None,
    max_gap: int = 1,
) -> Lines:
    """Link the pieces of each layer's mask into 3D polylines (see the module docstring).

    ``masks``: a sequence of (rows, cols) bool masks, one per layer (e.g. an h5py dataset: read
    one layer at a time). ``link_distance_um``: the largest in-plane distance between a line's
    expected position and a piece in the next layer (None: 2 x the layer spacing, i.e. lines
    inclined more than ~27 degrees to the layers; shallower ones are linked along their axis).
    A line seen in one layer so far has no known inclination: its candidate links are also judged
    by how well they continue into the layer after (parallel lines of a wall stay apart). A line
    missing from up to ``max_gap`` consecutive layers continues after the gap.
    """
    pos = np.asarray(layer_positions, dtype=np.float64)
    pieces, field = _all_pieces(masks, len(pos), voxel)
    return _polylines(_link_tracks(_shifted(pieces, drift_px, voxel), pos, _gate(pos, link_distance_um), max_gap, field))


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
    best cell. None if they do not fix both components."""
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
    if len(vals) < 2 or np.linalg.matrix_rank(rows) < 2:
        return None
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
) -> tuple[np.ndarray, Lines | None]:
    """The scan's drift (layers, 2) px and its lines (None without ``trace``), corrected for the
    drift when ``correct``.

    The lines are traced as they are and the drift is fitted to their continuity
    (:func:`drift_from_tracks`); they are linked again with that drift corrected and the rest
    fitted (``DRIFT_ITERATIONS`` times). The drift's linear trend is not measured: the result
    is the drift with the smallest steps that the lines allow (a steady drift is the same as
    inclining every line, and the registration of the orientation maps follows the structure
    that moves between layers: see docs/reconstruction.md). The drift is the registration's
    alone (:func:`register_drift`) where every step registers the same content shifted
    (correlation peak >= ``REG_SAME_PEAK``: nothing moves between the layers but the sample),
    where no line crosses three layers in a straight line, or with two layers. With ``correct``
    the lines are traced again from the drift-corrected pieces. Each mask is read once.
    """
    pos = np.asarray(layer_positions, dtype=np.float64)
    n = len(pos)
    pieces, field = _all_pieces(masks, n, voxel)
    gate = _gate(pos, link_distance_um)
    drift, n_used = drift_from_pieces(pieces, voxel, gate, 2 * max_shift_px)
    if reg_images is not None and n >= 2 and (n == 2 or n_used == 0 or _same_content(reg_images)):
        drift = register_drift(reg_images, max_shift_px)
    lines = None
    if trace:
        lines = _polylines(_link_tracks(_shifted(pieces, drift if correct else None, voxel), pos, gate, max_gap, field))
    return drift, lines


# ----------------------------------------------------------------------------------------------
# Scoring against true lines


@dataclass
class LineScore:
    """Traced lines against true ones (micrometres).

    ``recall``: share of the observable true line length with a traced line within the tolerance;
    ``false_length_um``: traced length farther than the tolerance from every true line;
    ``precision``: share of the traced length within the tolerance of a true line.
    """

    true_length_um: float
    traced_length_um: float
    found_length_um: float
    false_length_um: float
    recall: float
    precision: float
    tolerance_um: float
    z_tolerance_um: float
    n_true: int
    n_traced: int

    def summary(self) -> str:
        return (
            f"lines: {self.n_traced} traced ({self.traced_length_um:.4g} um), {self.n_true} true "
            f"({self.true_length_um:.4g} um observable); {100 * self.recall:.1f} % of the true length "
            f"found within {self.tolerance_um:.4g} um; false length {self.false_length_um:.4g} um "
            f"({100 * (1 - self.precision):.1f} % of the traced length)"
        )

    def to_dict(self) -> dict[str, float]:
        from dataclasses import asdict

        return asdict(self)


def observable_truth(true_lines: Sequence[np.ndarray], layer_positions: np.ndarray, thickness_um: float,
                     fov_lo: np.ndarray, fov_hi: np.ndarray, step: float, margin: float = 0.0) -> list[np.ndarray]:
    """Points (every ``step`` um) of the true lines a layer scan can show: inside the field of
    view (y, x between ``fov_lo`` and ``fov_hi``) and either inside an imaged slab (|z - z_k| <=
    thickness / 2) or between two consecutive layers whose planes (z_k) the line crosses inside
    the field, at least ``margin`` um from its edges (a crossing at the edge is imaged cut)."""
    pos = np.sort(np.asarray(layer_positions, dtype=np.float64))
    half = thickness_um / 2
    out = []
    for v in true_lines:
        pts = _sample_polyline(np.asarray(v, dtype=np.float64), step)
        inside = np.all((pts[:, 1:] >= fov_lo) & (pts[:, 1:] < fov_hi), axis=1)
        pts = pts[inside]
        if not len(pts):
            continue
        slab = np.abs(pts[:, 0][:, None] - pos[None]) <= half  # (n, layers)
        inner = np.all((pts[:, 1:] >= fov_lo + margin) & (pts[:, 1:] < fov_hi - margin), axis=1)
        crossed = ((np.abs(pts[:, 0][:, None] - pos[None]) <= step) & inner[:, None]).any(axis=0)
        keep = slab.any(axis=1)
        gap = np.searchsorted(pos, pts[:, 0]) - 1  # layer below each point
        ok = (gap >= 0) & (gap < len(pos) - 1)
        g = np.clip(gap, 0, max(len(pos) - 2, 0))
        if len(pos) > 1:
            keep |= ok & crossed[g] & crossed[np.minimum(g + 1, len(pos) - 1)]
        if keep.any():
            out.append(pts[keep])
    return out


def truth_line_points(truth: Any, step: float | None = None) -> tuple[list[np.ndarray], np.ndarray, float, float]:
    """A simulation's true lines to score against: the observable points (:func:`observable_truth`
    with a margin of ``EDGE_MARGIN_PX`` pixels, for recall), every point of the lines (for the false length), the sampling step and the z
    tolerance (half the slab thickness)."""
    p = truth.params
    step = step or p.pixel_size_um / 2
    lo = np.array([-0.5 * p.pixel_size_um, -0.5 * p.x_pixel_um])
    hi = lo + np.array([p.rows * p.pixel_size_um, p.cols * p.x_pixel_um])
    pts = observable_truth(truth.lines_um, truth.layer_positions, p.layer_thickness_um, lo, hi, step,
                           margin=EDGE_MARGIN_PX * p.pixel_size_um)
    every = Lines.from_list(truth.lines_um).sample(step) if len(truth.lines_um) else np.zeros((0, 3))
    return pts, every, step, p.layer_thickness_um / 2


def score_lines(traced: Lines, true_points: Sequence[np.ndarray] | np.ndarray, tolerance_um: float,
                z_tolerance_um: float, step: float | None = None, reference: np.ndarray | None = None) -> LineScore:
    """Score ``traced`` against true line points (from :func:`observable_truth`, ``step`` apart).

    A true point is found when a point of a traced line lies within ``tolerance_um`` in-plane and
    ``z_tolerance_um`` in height (an ellipsoid: depth resolution is the slab, not the pixel). A
    traced point is true when a point of ``reference`` (default: the true points; give every
    point of the true lines so that a line traced where the truth is not counted observable is
    not false) lies as near.
    """
    if tolerance_um <= 0 or z_tolerance_um <= 0:
        raise WeakbeamError("line tolerances must be > 0 micrometres")
    groups = [np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in (true_points if isinstance(true_points, (list, tuple)) else [true_points])]
    truth = np.concatenate(groups) if groups else np.zeros((0, 3))
    step = step or tolerance_um / 3
    found_pts = traced.sample(step)
    scale = np.array([tolerance_um / z_tolerance_um, 1.0, 1.0])
    t_len = len(truth) * step
    tr_len = float(traced.lengths().sum())
    if len(truth) and len(found_pts):
        d_t = cKDTree(found_pts * scale).query(truth * scale, k=1)[0]
        rec = float(np.mean(d_t <= tolerance_um))
        ref = truth if reference is None or not len(reference) else np.asarray(reference, dtype=np.float64).reshape(-1, 3)
        d_f = cKDTree(ref * scale).query(found_pts * scale, k=1)[0]
        # traced length near the truth: each sample stands for the length around it
        prec = float(np.mean(d_f <= tolerance_um))  # samples are evenly spaced along the lines
    else:
        rec, prec = 0.0, (0.0 if len(found_pts) else float("nan"))
    prec_v = float(prec) if np.isfinite(prec) else float("nan")
    false_len = tr_len * (1 - prec_v) if np.isfinite(prec_v) else 0.0
    return LineScore(t_len, tr_len, rec * t_len, false_len, rec, prec_v, float(tolerance_um), float(z_tolerance_um),
                     len(groups), len(traced))
