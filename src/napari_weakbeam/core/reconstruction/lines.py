"""Dislocation lines in 3D: the :class:`Lines` container and tracing them through the stack.

:func:`trace_lines` links the pieces of each layer's mask (connected components, with their
centroid and in-plane axis) into polylines across layers: a piece continues a line in the next
layer if it lies near the line's extrapolation (or, for a line seen in one layer only, near its
axis, at the distance the scan's shallow lines move for their length: :func:`move_ratio`; for
a line of a sub-grain wall's row, where its row's common move takes it: :mod:`.wall_moves`),
one-to-one (``scipy.optimize.linear_sum_assignment``, leaving a track or a piece unlinked at a
cost, so that a row cannot slide onto its neighbours) within ``link_distance_um``. No link
implies a move for which its piece is far too long (:func:`_too_long`: a shallow line's streak
is not a steep line's piece, nor moves with a wall's row).
Vertices are the pieces' drift-corrected centres (between the rocking curve's two tails,
:mod:`.tails`) at their layer's height; a line seen in one layer only is its piece's in-plane
extent (one segment per line where lines cross in it, :mod:`.crossings`). :class:`Lines` holds them as ``vertices`` (N, 3) um
z, y, x and ``offsets`` (L + 1,), with per-line length and mean direction.

The pieces themselves are in :mod:`.pieces`, the drift between layers in :mod:`.drift`, the
scoring against true lines in :mod:`.line_scoring`; core.reconstruction.exports writes lines
(VTK, XDMF, CSV). See docs/reconstruction.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..errors import WeakbeamError
from ..scanfiles.scan import layer_spacing
from .pieces import MIN_PIECE_PIXELS, Piece, all_pieces, corrected, layer_pieces  # noqa: F401 (re-exported)
from .wall_moves import common_moves

LINK_FACTOR = 2.0  # default largest step of a line between layers, in layer spacings
OFF_AXIS_UM = 0.75  # tracing: largest step across an elongated piece's axis (a 5 px drift along x is ~0.7 um)
AXIS_WEIGHT = 0.1  # tracing: cost per um of a shallow link's move off the one its length predicts (:func:`move_ratio`)
AXIS_MOVE_MAX = 4.0  # tracing: a shallow link moving more than this times the move its length predicts joins two lines


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
            pts.append(sample_polyline(v, step))
        return np.concatenate(pts) if pts else np.zeros((0, 3))


def sample_polyline(v: np.ndarray, step: float) -> np.ndarray:
    if len(v) < 2:
        return v.copy()
    out = [v[:1]]
    for a, b in zip(v[:-1], v[1:]):
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        out.append(a + np.linspace(0, 1, n + 1)[1:, None] * (b - a))
    return np.concatenate(out)


def _link_cost(track: list[Piece], z: list[float], q: Piece, zq: float, ratio: float | None = None) -> float:
    """In-plane distance (um) from ``q`` to where ``track`` is expected at height ``zq``.

    A track of two or more pieces is extrapolated in a straight line; it does not take a piece far
    longer than the image of a line moving as it does (:func:`_too_long`: a shallow line's streak
    across its path, which the track skips over, leaving it to the shallow line), unless the piece
    lies along its move (:func:`_along_move`: the line turning shallower). A track of one piece has
    no known inclination: if it and ``q`` are both elongated (lines shallow enough to draw a
    segment across the slab) and parallel, ``q`` continues it when it lies on its axis line
    (across it within :func:`_across_reach` of the move, as :func:`_off_axis`), however far
    along (a shallow line moves far between layers, up to 8 layer spacings): the cost
    is the distance across the axes plus ``AXIS_WEIGHT`` times how far the move along them is from
    the one the pieces' length predicts (``ratio`` x height step x length, :func:`move_ratio`; the
    length of a piece cut by the field's edge is not used; more than ``AXIS_MOVE_MAX`` times that
    move: no link), or, without a prediction, plus 5 % of the move; otherwise the plain distance,
    unless the track's piece is far longer than the image of a line moving so (:func:`_too_long`)
    or one piece is a drawn segment and the other far shorter than that image (:func:`_too_short`).
    """
    last = track[-1]
    if len(track) >= 2:
        prev = track[-2]
        dz0 = z[-1] - z[-2]
        pred = last.centre + (last.centre - prev.centre) * ((zq - z[-1]) / dz0 if dz0 else 0.0)
        # at the extrapolation (within OFF_AXIS_UM) a piece continues the line whatever its own
        # axis: a short piece's axis is uncertain (1 in 20 on the simulated stacks > 20 degrees off)
        if _off_axis(q, q.centre - last.centre) and np.linalg.norm(q.centre - pred) > OFF_AXIS_UM:
            return math.inf
        step = last.centre - prev.centre
        if dz0 and _too_long(q, step / dz0, ratio, abs(zq - z[-1])) and not _along_move(q, step):  # a shallow line's streak across it
            return math.inf
        return float(np.linalg.norm(q.centre - pred))
    d = q.centre - last.centre
    if last.elongated and q.elongated and abs(float(last.axis @ q.axis)) >= math.cos(math.radians(20)):
        along = float(d @ last.axis)
        across = 0.5 * (float(np.linalg.norm(d - along * last.axis)) + float(np.linalg.norm(d - (d @ q.axis) * q.axis)))
        # parallel but far apart across their axes: two lines side by side, not one moving along
        if abs(along) <= 8 * abs(zq - z[-1]) and across <= _across_reach(d):
            lengths = [2 * p.half_length for p in (last, q) if not p.edge]
            if ratio is None or not lengths:
                return across + 0.05 * abs(along)
            expect = ratio * abs(zq - z[-1]) * float(np.mean(lengths))
            if abs(along) > AXIS_MOVE_MAX * expect:
                return math.inf
            return across + AXIS_WEIGHT * abs(abs(along) - expect)
    if _off_axis(last, d) or _off_axis(q, d) or (zq != z[-1] and _too_long(last, d / abs(zq - z[-1]), ratio, abs(zq - z[-1]))):
        return math.inf
    # a drawn segment and a piece far shorter than the image of a line moving so are two lines
    if ratio and zq != z[-1] and (_draws(q) or _draws(last)):
        step = d / abs(zq - z[-1])
        if (_draws(q) and _too_short(last, step, ratio)) or (_draws(last) and _too_short(q, step, ratio)):
            return math.inf
    return float(np.linalg.norm(d))


def _off_axis(piece: Piece, d: np.ndarray) -> bool:
    """Whether a line through an elongated ``piece`` cannot move by ``d`` (um) between layers: a
    line crossing the slab draws its own in-plane direction, so it moves along the piece's axis;
    off by more than ``OFF_AXIS_UM`` or 20 degrees (drift, segmentation), the link is wrong. A
    piece elongated in um only (``Piece.drawn`` False: a steep line's dot, wider along x where
    the pixels are) draws no direction."""
    if not _draws(piece):
        return False
    return float(np.linalg.norm(d - (d @ piece.axis) * piece.axis)) > _across_reach(d)


def _draws(piece: Piece) -> bool:
    """Whether ``piece`` is a segment drawn across the slab: elongated in um and in pixels."""
    return piece.elongated and piece.drawn


def _across_reach(d: np.ndarray) -> float:
    """The largest step (um) across a line's axis in a move ``d`` along it: ``OFF_AXIS_UM`` or
    20 degrees of the move."""
    return max(OFF_AXIS_UM, math.sin(math.radians(20)) * float(np.linalg.norm(d)))


def _lookahead(a: Piece, za: float, b: Piece, zb: float, nxt: list[Piece], zn: float, gate: float,
               field: np.ndarray) -> float:
    """How well a line through ``a`` and ``b`` continues into the following layer: half the
    distance from its extrapolation to the nearest piece there (at most ``gate`` / 2); 0 when the
    extrapolation leaves that layer's field of view (``field``: its (lo, hi) corners (y, x) um,
    :func:`corrected`) or the layer holds no piece."""
    if not nxt or zb == za:
        return 0.0
    pred = b.centre + (b.centre - a.centre) * ((zn - zb) / (zb - za))
    if _outside(pred, field):
        return 0.0
    d = min(float(np.linalg.norm(q.centre - pred)) for q in nxt)
    return 0.5 * min(d, gate)


Track = tuple[list[Piece], list[float]]


def _outside(p: np.ndarray, field: np.ndarray, margin: float = 0.0) -> bool:
    """Whether the point ``p`` (y, x um) lies outside the field ``field`` ((lo, hi) corners) by
    more than ``margin``."""
    return bool(np.any(p < field[0] - margin) or np.any(p > field[1] + margin))


def _cost_matrix(active: list[Track], layer: list[Piece], zk: float, gate: float, ratio: float | None = None,
                 rows: dict[int, np.ndarray] | None = None, field: np.ndarray | None = None) -> np.ndarray:
    """Link costs (:func:`_link_cost`) of every active track to every piece of the layer at height
    ``zk``; inf where the piece lies too far to be linked under any rule (not computed). A track of
    one piece of the layer before that belongs to a wall's row (``rows``: its row's common move,
    :func:`.wall_moves.common_moves`, by ``id`` of the piece) costs the distance from where that
    move takes it, unless the piece is far longer than the image of a line moving so little
    (:func:`_too_long`: a shallow line's streak beside the row). A track whose straight
    extrapolation lies outside the layer's field of view (``field``: its (lo, hi) corners (y, x)
    um, :func:`corrected`) by more than ``OFF_AXIS_UM`` has left it: it links to nothing (before,
    it took a piece up to the link distance inside, another line's)."""
    cost = np.full((len(active), len(layer)), math.inf)
    centres = np.array([q.centre for q in layer])
    tree = cKDTree(centres)
    for i, (t, zs) in enumerate(active):
        last = t[-1]
        move = None if rows is None or len(t) > 1 or last.layer != layer[0].layer - 1 else rows.get(id(last))
        # a piece far longer than the row's move allows is a shallow line's, linked by the rules below
        if move is not None and not _too_long(last, move / abs(zk - zs[-1]), ratio, abs(zk - zs[-1])):
            js = tree.query_ball_point(last.centre + move, gate)
            cost[i, js] = np.linalg.norm(centres[js] - (last.centre + move), axis=1)
            continue
        if len(t) >= 2:
            dz0 = zs[-1] - zs[-2]
            centre, reach = last.centre + (last.centre - t[-2].centre) * ((zk - zs[-1]) / dz0 if dz0 else 0.0), gate
            if field is not None and _outside(centre, field, OFF_AXIS_UM):
                continue  # the line has left the field of view
        else:  # the axis rule reaches up to 8 layer steps along the axis
            centre, reach = last.centre, gate + (8 * abs(zk - zs[-1]) if last.elongated else 0.0)
        for j in tree.query_ball_point(centre, reach * (1 + 1e-9)):
            cost[i, j] = _link_cost(t, zs, layer[j], zk, ratio)
    return cost


def row_moves(pieces: list[list[Piece]], gate: float) -> dict[int, np.ndarray]:
    """The common move to the next layer of every piece in a wall's row (by ``id`` of the piece;
    :func:`.wall_moves.common_moves`)."""
    out: dict[int, np.ndarray] = {}
    for a, b in zip(pieces[:-1], pieces[1:]):
        moves = common_moves([p.centre for p in a], [q.centre for q in b], gate)
        out.update((id(p), m) for p, m in zip(a, moves) if np.all(np.isfinite(m)))
    return out


def _assign(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """One-to-one links (track i, piece j) of least total cost among those within ``gate``, where
    leaving a track or a piece unlinked costs ``gate`` / 2 each (any link within the gate can be
    made, but a row of parallel lines cannot slide onto its neighbours to avoid leaving one end
    unlinked)."""
    na, nb = cost.shape
    big = 1e6
    full = np.full((na + nb, nb + na), big)
    full[:na, :nb] = np.where(cost <= gate, cost, big)
    full[:na, nb:][np.diag_indices(na)] = gate / 2
    full[na:, :nb][np.diag_indices(nb)] = gate / 2
    full[na:, nb:] = 0.0
    ri, ci = linear_sum_assignment(full)
    return [(int(i), int(j)) for i, j in zip(ri, ci) if i < na and j < nb and full[i, j] < big]


#: A line's image in a layer is about (its move per um of height) / :func:`move_ratio` long (the
#: segment it draws across the slab) plus the blur (a steep line's dot: ~0.6 um): a piece longer
#: than ``IMAGE_FACTOR`` times that plus ``IMAGE_SLACK_UM`` is not the image of a line moving so
#: little (a shallow line's streak across a steep line's path or among a wall's steep lines; issue
#: 10, 1 um layer step: x1.5 cost an aliased wall stack at 2 um, x3 kept less of the gain).
IMAGE_FACTOR = 4.0
IMAGE_SLACK_UM = 1.0


#: A move shorter than this (um) between two layers has no known direction (the pieces' centres
#: are 0.1-0.2 um off the cores: over 20 degrees on a shorter move).
MOVE_DIRECTION_UM = 0.5


def _along_move(piece: Piece, move: np.ndarray) -> bool:
    """Whether elongated ``piece`` lies along ``move`` (um, between two layers; at least
    ``MOVE_DIRECTION_UM`` long), within 20 degrees: the line's own image as it turns shallower, not
    a streak across its path."""
    n = float(np.linalg.norm(move))
    return n >= MOVE_DIRECTION_UM and abs(float(piece.axis @ move)) >= n * math.cos(math.radians(20))


def _too_short(piece: Piece, move: np.ndarray, ratio: float | None) -> bool:
    """Whether ``piece`` (not cut by the field's edge) is far shorter than the image of a line
    moving by ``move`` (um per um of height) between layers: under 1 / ``IMAGE_FACTOR`` of it (a
    small dot is not the piece of a line moving so far; :func:`_link_cost` asks it where the other
    piece is a drawn segment); False without a ``ratio``."""
    return bool(ratio) and not piece.edge and 2 * piece.half_length < float(np.linalg.norm(move)) / ratio / IMAGE_FACTOR


def _too_long(piece: Piece, move: np.ndarray, ratio: float | None, dz: float | None = None) -> bool:
    """Whether ``piece`` (elongated, not cut by the field's edge) is far longer than the image of
    a line moving by ``move`` (um per um of height) between layers (``IMAGE_FACTOR``). Without a
    ``ratio`` (the scan shows too few shallow lines to measure it), the image is taken as long as
    it can be: a slab as thick as the step ``dz`` (um) between the layers (a layer's in-plane
    streak is not a steep line's piece; dfxm-geo stacks: no ratio on any); False without either."""
    own = float(np.linalg.norm(move)) / ratio if ratio else (float(np.linalg.norm(move)) * dz if dz else math.inf)
    return piece.elongated and not piece.edge and 2 * piece.half_length > IMAGE_FACTOR * own + IMAGE_SLACK_UM


def link_tracks(pieces: list[list[Piece]], pos: np.ndarray, gate: float, max_gap: int, fields: np.ndarray) -> list[Track]:
    """Link the pieces of consecutive layers into tracks (the rules of :func:`trace_lines`);
    ``fields``: each layer's field of view in the pieces' coordinates (:func:`corrected`)."""
    n = len(pos)
    ratio = move_ratio(pieces, pos)
    rows = row_moves(pieces, gate)
    finished: list[Track] = []
    active: list[Track] = []
    for k in range(n):
        zk = float(pos[k])
        matched_tracks: set[int] = set()
        matched_pieces: set[int] = set()
        if active and pieces[k]:
            cost = _cost_matrix(active, pieces[k], zk, gate, ratio, rows, fields[k])
            if k + 1 < n:
                for i, (t, zs) in enumerate(active):
                    if len(t) == 1:
                        for j, q in enumerate(pieces[k]):
                            if cost[i, j] <= gate:
                                cost[i, j] += _lookahead(t[0], zs[0], q, zk, pieces[k + 1], float(pos[k + 1]), gate, fields[k + 1])
            # a track that skipped a layer (a piece missed there) pays for the gap
            skipped = np.array([t[-1].layer != k - 1 for t, _ in active])
            cost[skipped] += 0.25 * gate
            for i, j in _assign(cost, gate):
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


def move_ratio(pieces: list[list[Piece]], pos: np.ndarray, min_pairs: int = 3, bandwidth: float = 0.15) -> float | None:
    """How far the scan's shallow lines move between layers for their image length: the move
    along the axis per um of height step and um of piece length (1 / um), or None where fewer
    than ``min_pairs`` pairs show it.

    A line at inclination psi draws a segment of about slab / tan psi (plus the blur) across a
    layer's slab and moves step / tan psi along it to the next layer, so move / (step x length)
    is about the same for all of a scan's shallow lines, whatever their inclination: it is the
    scan's (slab thickness, resolution), measured here on the pairs of parallel elongated pieces
    of consecutive layers, not cut by the field's edge, that are each other's only axis-rule
    candidate (pieces with several, such as a wall's parallel lines, are left out): the mode of
    their log ratio (Gaussian kernel of ``bandwidth``), refined by the median of those within
    two bandwidths.
    """
    shallow = [[p for p in layer if p.elongated and not p.edge] for layer in pieces]
    ratios, links = [], []  # per pair of consecutive layers: ratio and candidate matrices
    for k in range(len(pieces) - 1):
        a, b, dz = shallow[k], shallow[k + 1], abs(float(pos[k + 1] - pos[k]))
        if not a or not b or dz == 0:
            ratios.append(np.zeros((len(a), len(b))))
            links.append(np.zeros((len(a), len(b)), bool))
            continue
        ca, cb = np.array([p.centre for p in a]), np.array([p.centre for p in b])
        ua, ub = np.array([p.axis for p in a]), np.array([p.axis for p in b])
        d = cb[None] - ca[:, None]  # (na, nb, 2)
        dist = np.linalg.norm(d, axis=2)
        along = np.einsum("ijk,ik->ij", d, ua)
        reach = np.maximum(OFF_AXIS_UM, math.sin(math.radians(20)) * dist)
        across_a = np.linalg.norm(d - along[..., None] * ua[:, None], axis=2)
        across_b = np.linalg.norm(d - np.einsum("ijk,jk->ij", d, ub)[..., None] * ub[None], axis=2)
        ok = ((np.abs(ua @ ub.T) >= math.cos(math.radians(20))) & (np.abs(along) <= 8 * dz)
              & (across_a <= reach) & (across_b <= reach))
        half = np.array([p.half_length for p in a])[:, None] + np.array([p.half_length for p in b])[None]
        ratios.append(np.abs(along) / (dz * half))
        links.append(ok)
    r = []
    for k, (ratio, ok) in enumerate(zip(ratios, links)):
        # each end's candidates: up to the next layer and down to the layer before
        n_a = ok.sum(axis=1) + (links[k - 1].sum(axis=0) if k > 0 else 0)
        n_b = ok.sum(axis=0) + (links[k + 1].sum(axis=1) if k + 1 < len(links) else 0)
        r.extend(ratio[ok & (n_a[:, None] == 1) & (n_b[None] == 1) & (ratio > 0)])
    if len(r) < min_pairs:
        return None
    r = np.log(r)
    mode = r[int(np.argmax(np.exp(-0.5 * ((r[:, None] - r[None]) / bandwidth) ** 2).sum(axis=1)))]
    return float(np.exp(np.median(r[np.abs(r - mode) <= 2 * bandwidth])))


def polylines(tracks: list[Track]) -> Lines:
    """Tracks as polylines: the pieces' centroids at their layer's height; a track of one piece is
    the piece's in-plane extent, or one segment per arm where lines cross in it."""
    polylines = []
    for track, zs in tracks:
        if len(track) == 1:
            for c, u, h in _one_layer_segments(track[0]):
                a, b = c - h * u, c + h * u
                polylines.append(np.array([[zs[0], a[0], a[1]], [zs[0], b[0], b[1]]]))
        else:
            v = np.array([[z, p.centre[0], p.centre[1]] for p, z in zip(track, zs)])
            polylines.append(np.vstack([_end(v[1], v[0], track[0]), v, _end(v[-2], v[-1], track[-1])]))
    polylines.sort(key=lambda v: (v[0, 0], v[0, 1], v[0, 2]))
    return Lines.from_list(polylines)


def _one_layer_segments(p: Piece) -> list:
    """The segments (centre, axis, half length) um drawn for a piece seen in one layer only: its
    crossing arms, or else the span of its points along its axis, or else (no points given) its
    in-plane extent; a segment of no length is a point of the cloud, not a line."""
    if p.arms:
        segments = p.arms
    elif p.span is None:
        segments = ((p.centre, p.axis, p.half_length),)
    else:
        lo, hi = p.span
        segments = ((p.centre + 0.5 * (lo + hi) * p.axis, p.axis, 0.5 * (hi - lo)),)
    return [s for s in segments if s[2] > 0]


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


def link_gate(pos: np.ndarray, link_distance_um: float | None) -> float:
    return float(LINK_FACTOR * layer_spacing(pos) if link_distance_um is None else link_distance_um)


def trace_lines(
    masks: Sequence[np.ndarray] | Any,
    layer_positions: np.ndarray,
    voxel: tuple[float, float, float],
    drift_px: np.ndarray | None = None,
    link_distance_um: float | None = None,
    max_gap: int = 1,
    tails: Sequence[np.ndarray | None] | Any = None,
    skeletons: Sequence[np.ndarray] | Any = None,
) -> Lines:
    """Link the pieces of each layer's mask into 3D polylines (see the module docstring).

    ``masks``: a sequence of (rows, cols) bool masks, one per layer (e.g. an h5py dataset: read
    one layer at a time). ``link_distance_um``: the largest in-plane distance between a line's
    expected position and a piece in the next layer (None: 2 x the layer spacing, i.e. lines
    inclined more than ~27 degrees to the layers; shallower ones are linked along their axis).
    A line seen in one layer so far has no known inclination: its candidate links are also judged
    by how well they continue into the layer after (parallel lines of a wall stay apart). A line
    missing from up to ``max_gap`` consecutive layers continues after the gap. ``tails``: per
    layer, the rocking curve's tails around the mask (:func:`.tails.tail_images`), to centre
    the pieces between them (None: the pieces' centroids). ``skeletons``: per layer, the point
    cloud's centre lines: a line seen in one layer only then spans its piece's points (None: the
    piece's extent).
    """
    pos = np.asarray(layer_positions, dtype=np.float64)
    pieces, fields = corrected(*all_pieces(masks, len(pos), voxel, tails, skeletons), drift_px, voxel)
    return polylines(link_tracks(pieces, pos, link_gate(pos, link_distance_um), max_gap, fields))
