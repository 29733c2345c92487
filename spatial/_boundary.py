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
    """Segments where the top class changes (K > 1), or where the output is zero (K = 1).

    A vertex is *clear* where its top class beats every other class beyond the tolerance of
    their difference; a face whose vertices are all clear with one top class has only that
    candidate, and no boundary edge touches a clear vertex. The pairwise work (candidate
    classes, the split, the ties) is done on the other faces and vertices only."""
    V, K = vals.shape
    ca_o, cb_o = _engine.layer_tol(layer, rtol)
    if K == 1:  # the zero set of f is the boundary between the classes (0, f)
        vals = np.concatenate([np.zeros((V, 1)), vals], 1)
        ca_o, cb_o = np.concatenate([[0.0], ca_o]), np.concatenate([[0.0], cb_o])
        K = 2
    ci, ai = np.triu_indices(K, 1)
    P = len(ci)
    ca = np.concatenate([ca_o[ai] + ca_o[ci], np.zeros(K)])
    cb = np.concatenate([cb_o[ai] + cb_o[ci], np.full(K, np.inf)])  # class columns never split
    F = len(offsets) - 1
    if F == 0:
        return np.zeros((0, 2, 2))
    # clear vertices: f_top - f_k beyond the tolerance of the pair (top, k) for every k (the same
    # floats as that pair's difference and tolerance below, up to the sign)
    top_v = vals.argmax(1)
    gap = vals[np.arange(V), top_v][:, None] - vals
    gtol = scale[:, None] * (ca_o[top_v][:, None] + ca_o) + (cb_o[top_v][:, None] + cb_o)
    gap[np.arange(V), top_v] = np.inf
    clear = (gap > gtol).all(1)
    deg = np.diff(offsets)
    tv = np.where(clear, top_v, -1)[indices]  # -1: an unclear vertex
    lo, hi = np.minimum.reduceat(tv, offsets[:-1]), np.maximum.reduceat(tv, offsets[:-1])
    mixed = (lo < 0) | (lo != hi)
    cand = np.zeros((F, K), bool)  # classes that can be on top somewhere in the face
    cand[np.nonzero(~mixed)[0], lo[~mixed]] = True
    mf = np.nonzero(mixed)[0]
    m_off = np.zeros(len(mf) + 1, np.int64)
    np.cumsum(deg[mf], out=m_off[1:])
    m_idx = indices[np.repeat(mixed, deg)]
    # the pairwise differences at the vertices of mixed faces: u (U,) global ids, local ids lu
    u, lu = np.unique(m_idx, return_inverse=True)
    D = vals[u][:, ai] - vals[u][:, ci]  # (U, P) positive where class a beats class c
    tol = scale[u, None] * ca[:P] + cb[:P]
    if len(mf):
        Ds = np.where(np.abs(D) <= tol, 0.0, D)[lu]
        mx = np.maximum.reduceat(Ds, m_off[:-1], axis=0)  # max of f_a - f_c over each face
        mn = np.minimum.reduceat(Ds, m_off[:-1], axis=0)  # -max of f_c - f_a
        cm = np.ones((len(mf), K), bool)
        for p in range(P):
            cm[:, ci[p]] &= mn[:, p] <= 0
            cm[:, ai[p]] &= mx[:, p] >= 0
        cand[mf] = cm
    split = cand[mf].sum(1) >= 2  # among the mixed faces
    Xa, f_offsets, f_indices = X[u], m_off, lu
    if split.any():  # split them on the local vertices (the others of the mixed faces kept)
        sd = deg[mf]
        s_offsets = np.zeros(int(split.sum()) + 1, np.int64)
        np.cumsum(sd[split], out=s_offsets[1:])
        s_indices = lu[np.repeat(split, sd)]
        allow = np.concatenate([cand[mf[split]][:, ci] & cand[mf[split]][:, ai],
                                np.zeros((len(s_offsets) - 1, K), bool)], 1)
        sub = _engine.split_all(Xa, s_offsets, s_indices, np.concatenate([D, vals[u]], 1), scale[u], ca, cb,
                                allowed=np.packbits(allow, axis=1))
        Za = sub.Z
        assert Za is not None  # stored values (not affine): split_all returns them
        keep = ~split
        f_indices = np.concatenate([lu[np.repeat(keep, sd)], sub.indices])
        f_offsets = np.zeros(int(keep.sum()) + len(sub.offsets), np.int64)
        np.cumsum(np.concatenate([sd[keep], np.diff(sub.offsets)]), out=f_offsets[1:])
        Xa, D, vals_u, tol = sub.X, Za[:, :P], Za[:, P:], sub.scale[:, None] * ca[:P] + cb[:P]
    else:
        vals_u = vals[u]
    # at each (local) vertex: which pairs tie at the top
    top = vals_u.max(1)
    ttol = tol.max(1)
    tie = (np.abs(D) <= tol) & (vals_u[:, ci] >= top[:, None] - ttol[:, None]) & (vals_u[:, ai] >= top[:, None] - ttol[:, None])
    a = f_indices
    b = f_indices[_engine.next_in_face(f_offsets)]
    on = (tie[a] & tie[b]).any(1)
    e = np.stack([np.minimum(a[on], b[on]), np.maximum(a[on], b[on])], 1)
    e = np.unique(e, axis=0) if len(e) else e.reshape(0, 2)
    return np.stack([Xa[e[:, 0]], Xa[e[:, 1]]], 1) if len(e) else np.zeros((0, 2, 2))
