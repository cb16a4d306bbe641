"""The common move of a sub-grain wall's lines between two layers.

A wall is a row of parallel dislocation lines (one Burgers vector family), so between two layers
all its lines move by the same in-plane vector s. Linked piece by piece, a row is ambiguous: the
shift to the neighbour, s - d (d: the lines' spacing along the wall), is as straight, and one
missed or merged piece makes the one-to-one assignment slide the whole row onto it. Here every
candidate displacement between the two layers is voted on by the pieces around it
(:func:`common_moves`): a move that ``min_support`` or more nearby pieces share is a row's; the
row is then linked with that one move (:mod:`.lines`).

Among a row's periodic candidates (s, s - d, s + d: each shared by all the row but one piece),
the smallest move is taken: right while the move along the wall is under half the spacing
(``|s| < d / 2``). Beyond it, the layers sample the wall too coarsely to tell which (aliasing;
docs/reconstruction.md gives the figures): finer layer steps are the remedy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree

MOVE_TOL_UM = 0.3  # two displacements closer than this are the same move (centroid noise 0.1-0.2 um)
ROW_RADIUS_UM = 10.0  # pieces that vote on each other's moves: within this distance (a wall's lines are ~2.5 um apart)
MIN_SUPPORT = 3  # pieces (the piece itself included) that must share a move for it to be a row's


def common_moves(a: Sequence[np.ndarray], b: Sequence[np.ndarray], gate: float, *, tol: float = MOVE_TOL_UM,
                 radius: float = ROW_RADIUS_UM, min_support: int = MIN_SUPPORT) -> np.ndarray:
    """Per centre of ``a`` (y, x um, one layer), the move (dy, dx) um its row shares to the centres
    ``b`` of the next layer, NaN where it belongs to no row.

    A candidate displacement of a piece (to a centre of ``b`` within ``gate``) is supported by the
    pieces within ``radius`` of it that have a candidate within ``tol`` of it (itself included).
    A piece whose best candidate has ``min_support`` or more belongs to a row; its move is the
    smallest of its candidates supported by all but one of the best's supporters (the row's
    aliases: s and s -/+ d).
    """
    ca = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    cb = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    out = np.full((len(ca), 2), np.nan)
    if len(ca) < min_support or not len(cb):
        return out
    near = cKDTree(cb).query_ball_point(ca, gate)
    src = np.repeat(np.arange(len(ca)), [len(js) for js in near])
    if not len(src):
        return out
    disp = cb[np.concatenate(near).astype(np.int64)] - ca[src]
    # support of each candidate: distinct pieces within radius with a candidate within tol of it
    pairs = cKDTree(disp).query_pairs(tol, output_type="ndarray")
    every = np.arange(len(disp))
    c, o = np.concatenate([pairs[:, 0], pairs[:, 1], every]), np.concatenate([pairs[:, 1], pairs[:, 0], every])
    keep = np.linalg.norm(ca[src[c]] - ca[src[o]], axis=1) <= radius
    key = np.unique(c[keep] * len(ca) + src[o[keep]])
    support = np.bincount(key // len(ca), minlength=len(disp))
    for i in range(len(ca)):
        mine = np.nonzero(src == i)[0]
        if not len(mine):
            continue
        best = support[mine].max()
        if best < min_support:
            continue
        ok = mine[support[mine] >= max(min_support, best - 1)]
        out[i] = disp[ok[np.argmin(np.linalg.norm(disp[ok], axis=1))]]
    return _row_mode(ca, out, src, disp, tol, radius, min_support)


def _row_mode(centres: np.ndarray, moves: np.ndarray, src: np.ndarray, disp: np.ndarray, tol: float, radius: float,
              min_support: int) -> np.ndarray:
    """Each piece's move: of its own candidates (``disp`` where ``src`` is the piece), the one
    that most of the pieces around it chose (``moves``, within ``tol``; ties: the smallest), so
    that where two rows cross or one piece chose apart, the row decides; NaN where fewer than
    ``min_support`` agree with any of its candidates."""
    out = np.full_like(moves, np.nan)
    has = np.nonzero(np.all(np.isfinite(moves), axis=1))[0]
    if len(has) < min_support:
        return out
    tree = cKDTree(centres[has])
    for i in range(len(centres)):
        mine = disp[src == i]
        if not len(mine):
            continue
        m = moves[has[tree.query_ball_point(centres[i], radius)]]
        votes = (np.linalg.norm(mine[:, None] - m[None], axis=2) <= tol).sum(axis=1)
        if votes.max() >= min_support:
            top = np.nonzero(votes == votes.max())[0]
            out[i] = mine[top[np.argmin(np.linalg.norm(mine[top], axis=1))]]
    return out
