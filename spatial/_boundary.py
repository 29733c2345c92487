"""The decision boundary of a partition: where the top class changes (K > 1), or the zero set
of the output (K = 1), as segments.

Every pair of classes (a, c) gives a function ``f_a - f_c``, affine on every final region; the
faces where two classes can both be on top are split by those differences with the engine
(``_engine.split_all``, ``allowed`` limiting each face to its candidate pairs), and the boundary
is every edge along which a pair ties at the top.
"""
from __future__ import annotations

import numpy as np

from . import _engine

__all__ = ["_boundary"]


def _boundary(X, offsets, indices, vals, scale, layer, rtol) -> np.ndarray:
    """Segments where the top class changes (K > 1), or where the output is zero (K = 1)."""
    V, K = vals.shape
    ca_o, cb_o = _engine.layer_tol(layer, rtol)
    if K == 1:  # the zero set of f is the boundary between the classes (0, f)
        vals = np.concatenate([np.zeros((V, 1)), vals], 1)
        ca_o, cb_o = np.concatenate([[0.0], ca_o]), np.concatenate([[0.0], cb_o])
        K = 2
    ci, ai = np.triu_indices(K, 1)
    P = len(ci)
    D = vals[:, ai] - vals[:, ci]  # (V, P) positive where class a beats class c
    ca = np.concatenate([ca_o[ai] + ca_o[ci], np.zeros(K)])
    cb = np.concatenate([cb_o[ai] + cb_o[ci], np.full(K, np.inf)])  # class columns never split
    tol = scale[:, None] * ca[:P] + cb[:P]
    Ds = np.where(np.abs(D) <= tol, 0.0, D)
    F = len(offsets) - 1
    if F == 0:
        return np.zeros((0, 2, 2))
    # a face whose vertices all have one top class, beyond the tolerance of every pair with it,
    # has one candidate: only the others are tested pair by pair
    top_v = vals.argmax(1)
    pair_of = np.full((K, K), -1, np.int64)
    pair_of[ci, ai] = np.arange(P)
    pair_of[ai, ci] = np.arange(P)
    rival = pair_of[top_v[:, None], np.arange(K)[None, :]]  # (V, K) the pair of each class with the top
    sign = np.where(ai[rival] == top_v[:, None], 1.0, -1.0)  # D of that pair is (top - class) * sign
    margin = np.take_along_axis(Ds, np.maximum(rival, 0), 1) * sign
    clear = ((margin > 0) | (rival < 0)).all(1)  # the top beats every class beyond the tolerance
    deg = np.diff(offsets)
    face_of = np.repeat(np.arange(F), deg)
    mixed = np.zeros(F, bool)  # faces not cleared: a vertex unclear, or two top classes
    np.logical_or.at(mixed, face_of, ~clear[indices])
    tv = top_v[indices]
    mixed |= np.minimum.reduceat(tv, offsets[:-1]) != np.maximum.reduceat(tv, offsets[:-1])
    cand = np.zeros((F, K), bool)  # classes that can be on top somewhere in the face
    cand[~mixed, top_v[indices[offsets[:-1][~mixed]]]] = True
    mf = np.nonzero(mixed)[0]
    if len(mf):
        m_off = np.zeros(len(mf) + 1, np.int64)
        np.cumsum(deg[mf], out=m_off[1:])
        m_idx = indices[np.repeat(mixed, deg)]
        mx = np.maximum.reduceat(Ds[m_idx], m_off[:-1], axis=0)  # max of f_a - f_c over each face
        mn = np.minimum.reduceat(Ds[m_idx], m_off[:-1], axis=0)  # -max of f_c - f_a
        cm = np.ones((len(mf), K), bool)
        for p in range(P):
            cm[:, ci[p]] &= mn[:, p] <= 0
            cm[:, ai[p]] &= mx[:, p] >= 0
        cand[mf] = cm
    split = cand.sum(1) >= 2
    if split.any():
        s_offsets = np.zeros(int(split.sum()) + 1, np.int64)
        np.cumsum(deg[split], out=s_offsets[1:])
        s_indices = indices[np.repeat(split, deg)]
        allow = np.concatenate([cand[split][:, ci] & cand[split][:, ai], np.zeros((len(s_offsets) - 1, K), bool)], 1)
        sub = _engine.split_all(X, s_offsets, s_indices, np.concatenate([D, vals], 1), scale, ca, cb,
                                allowed=np.packbits(allow, axis=1))
        Xa, Za, Sa = sub.X, sub.Z, sub.scale
        assert Za is not None  # stored values (not affine): split_all returns them
        keep = ~split
        f_indices = np.concatenate([indices[np.repeat(keep, deg)], sub.indices])
        f_offsets_parts = [deg[keep], np.diff(sub.offsets)]
        f_offsets = np.zeros(sum(len(x) for x in f_offsets_parts) + 1, np.int64)
        np.cumsum(np.concatenate(f_offsets_parts), out=f_offsets[1:])
        D, vals = Za[:, :P], Za[:, P:]
        tol = Sa[:, None] * ca[:P] + cb[:P]
    else:
        Xa, f_offsets, f_indices = X, offsets, indices
    # at each vertex: which pairs tie at the top
    top = vals.max(1)
    ttol = tol.max(1)
    tie = (np.abs(D) <= tol) & (vals[:, ci] >= top[:, None] - ttol[:, None]) & (vals[:, ai] >= top[:, None] - ttol[:, None])
    a = f_indices
    b = f_indices[_engine.next_in_face(f_offsets)]
    on = (tie[a] & tie[b]).any(1)
    e = np.stack([np.minimum(a[on], b[on]), np.maximum(a[on], b[on])], 1)
    e = np.unique(e, axis=0) if len(e) else e.reshape(0, 2)
    return np.stack([Xa[e[:, 0]], Xa[e[:, 1]]], 1) if len(e) else np.zeros((0, 2, 2))
