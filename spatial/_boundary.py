"""The decision boundary of a partition: where the top class changes (K > 1), or the zero set
of the output (K = 1), as segments.

Every pair of classes (a, c) gives a function ``f_a - f_c``, affine on every final region; the
faces where two classes can both be on top are split by the differences of their candidate pairs
with the engine (``_engine.split_all``, ``allowed`` limiting each face to its own pairs), and the
boundary is every edge along which a pair ties at the top. Only the pairs some face needs become
columns, and the ties are listed per vertex, so the work and memory grow with the vertices times
the classes, not with the classes squared (a 100-class head: all K (K - 1) / 2 pairs at every
vertex of a mixed face took 6-13 GB and half a minute on a few thousand regions).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _engine

__all__ = ["_boundary", "top_split", "TopSplit", "as_classes"]

CHUNK_ELEMENTS = 1 << 22
"""Values per temporary (a face's vertices times the classes) of the candidate tests."""


def _two_largest_sum(a: np.ndarray) -> float:
    """The largest sum of two entries of ``a`` (its two largest; the one entry when there is one),
    as float64 rounds it: at least ``a[i] + a[j]`` rounded, for every ``i != j``."""
    s = np.sort(a)[-2:]
    return float(s.sum()) if len(s) == 2 else float(s[0])


def n_classes(k: int) -> int:
    """The classes of a classifier of ``k`` outputs: one output is a logit, two classes by its
    sign (as :func:`as_classes` and :func:`top_class` read it); more are class scores.

    >>> n_classes(1), n_classes(10)
    (2, 10)
    """
    return 2 if k == 1 else k


def top_class(out):
    """(n,) the class of each row of (n, K) outputs, numpy or torch: one output, 1 where it is
    > 0; more, the argmax (the first of ties).

    >>> top_class(np.array([[-0.5], [0.5]])).tolist(), top_class(np.array([[1.0, 3.0, 2.0]])).tolist()
    ([0, 1], [1])
    """
    return (out[:, 0] > 0) * 1 if out.shape[1] == 1 else out.argmax(1)


def as_classes(vals: np.ndarray, ca_o: np.ndarray, cb_o: np.ndarray):
    """One output ``f`` as the two classes ``(0, f)`` (its sign is the class), with their
    tolerances; several outputs as they are."""
    if vals.shape[1] != 1:
        return vals, ca_o, cb_o
    z = np.zeros(1)
    return (np.concatenate([np.zeros((len(vals), 1)), vals], 1), np.concatenate([z, ca_o]),
            np.concatenate([z, cb_o]))


class TopSplit(NamedTuple):
    """The faces where some classifier's top class can change, split until none does
    (:func:`top_split`), on their own vertices (local ids)."""

    X: np.ndarray  # (L, 2) the faces' vertices (in the order of their ids), then the new ones
    offsets: np.ndarray  # CSR pieces: the faces not split (in order), then the pieces of those split
    indices: np.ndarray
    vals: np.ndarray  # (L, C) every class's value at the vertices
    D: np.ndarray  # (L, P) the split's columns f_pj - f_pi (exactly 0 on their own lines)
    pi: np.ndarray  # (P,) the class columns of each pair, pi < pj
    pj: np.ndarray
    scale: np.ndarray  # (L,) the tolerance scale at the vertices
    mixed: np.ndarray  # (F,) bool: the faces here (any other face has one top class per classifier)
    tops: list  # per classifier, (F,) the top class (within its columns) of each face not here


def _clear_tops(vals, scale, ca_o, cb_o, offsets, indices):
    """Per face, its one top class where every vertex is *clear* with it (the top class beats
    every other beyond the tolerance of their difference, the same floats as that pair's column),
    else -1."""
    V = len(vals)
    top_v = vals.argmax(1)
    gap = vals[np.arange(V), top_v][:, None] - vals
    gtol = scale[:, None] * (ca_o[top_v][:, None] + ca_o) + (cb_o[top_v][:, None] + cb_o)
    gap[np.arange(V), top_v] = np.inf
    clear = (gap > gtol).all(1)
    del gap, gtol
    tv = np.where(clear, top_v, -1)[indices]  # -1: an unclear vertex
    lo, hi = np.minimum.reduceat(tv, offsets[:-1]), np.maximum.reduceat(tv, offsets[:-1])
    return np.where(lo == hi, lo, -1)


def top_split(X, offsets, indices, vals, scale, ca_o, cb_o, groups) -> TopSplit:
    """Split the faces (``X``, CSR ``offsets``/``indices``, convex; at the vertices the class
    values ``vals`` (V, C), affine on every face, tolerance ``scale * ca_o + cb_o`` per column) where
    some classifier's top class can change, until it is one per piece and classifier.

    ``groups``: each classifier's class columns ``(start, stop)``. A face is kept out where every
    classifier has one top class clear at every vertex; the others get each classifier's
    candidates (:func:`_candidates`), and those with two candidates of one classifier are split
    (``_engine.split_all``) by the differences of their candidates' pairs (each face only by its
    own pairs; only the pairs some face needs become columns, in the order ``i * C + j``)."""
    F, C = len(offsets) - 1, vals.shape[1]
    deg = np.diff(offsets)
    tops = [_clear_tops(vals[:, a:b], scale, ca_o[a:b], cb_o[a:b], offsets, indices) for a, b in groups]
    mixed = np.zeros(F, bool)
    for t in tops:
        mixed |= t < 0
    mf = np.nonzero(mixed)[0]
    sd = deg[mf]  # the mixed faces' degrees
    m_off = np.zeros(len(mf) + 1, np.int64)
    np.cumsum(sd, out=m_off[1:])
    u, lu = np.unique(indices[np.repeat(mixed, deg)], return_inverse=True)  # the mixed faces' vertices
    lu = lu.reshape(-1)
    vu, su = vals[u], scale[u]
    cand = np.zeros((len(mf), C), bool)
    many = np.zeros(len(mf), bool)  # some classifier has two candidates
    for (a, b), t in zip(groups, tops):
        tm = t[mf]
        one = tm >= 0
        cand[np.nonzero(one)[0], a + tm[one]] = True
        rows = np.nonzero(~one)[0]
        if len(rows):
            r_off = np.zeros(len(rows) + 1, np.int64)
            np.cumsum(sd[rows], out=r_off[1:])
            cg = _candidates(vu[:, a:b], su, r_off, lu[np.repeat(~one, sd)], ca_o[a:b], cb_o[a:b])
            cand[rows, a:b] = cg
            many[rows] |= cg.sum(1) >= 2
    Xa, f_offsets, f_indices, D, vv, sc = X[u], m_off, lu, np.zeros((len(u), 0)), vu, su
    pi = pj = np.zeros(0, np.int64)
    if many.any():  # split them on the local vertices (the others of the mixed faces kept)
        cs = cand[many]
        f, c = np.nonzero(cs)  # each split face's candidates, in order
        grp = np.searchsorted(np.array([b for _, b in groups]), c, side="right")
        first, second = _pairs_within(f * len(groups) + grp, len(f))  # pairs (i < j) of one classifier
        keys, pcol = np.unique(c[first] * C + c[second], return_inverse=True)
        pi, pj = keys // C, keys % C
        P = len(keys)
        allow = np.zeros((len(cs), P + C), bool)  # class columns never split
        allow[f[first], pcol.reshape(-1)] = True
        ca = np.concatenate([ca_o[pj] + ca_o[pi], np.zeros(C)])
        cb = np.concatenate([cb_o[pj] + cb_o[pi], np.full(C, np.inf)])
        s_offsets = np.zeros(len(cs) + 1, np.int64)
        np.cumsum(sd[many], out=s_offsets[1:])
        sub = _engine.split_all(Xa, s_offsets, lu[np.repeat(many, sd)], np.concatenate([vu[:, pj] - vu[:, pi], vu], 1),
                                su, ca, cb, allowed=np.packbits(allow, axis=1))
        assert sub.Z is not None  # stored values (not affine): split_all returns them
        keep = ~many
        f_indices = np.concatenate([lu[np.repeat(keep, sd)], sub.indices])
        f_offsets = np.zeros(int(keep.sum()) + len(sub.offsets), np.int64)
        np.cumsum(np.concatenate([sd[keep], np.diff(sub.offsets)]), out=f_offsets[1:])
        Xa, D, vv, sc = sub.X, sub.Z[:, :P], sub.Z[:, P:], sub.scale
    return TopSplit(Xa, f_offsets, f_indices, vv, D, pi, pj, sc, mixed, tops)


def _boundary(X, offsets, indices, vals, scale, layer, rtol) -> np.ndarray:
    """Segments where the top class changes (K > 1), or where the output is zero (K = 1).

    A vertex is *clear* where its top class beats every other class beyond the tolerance of
    their difference; a face whose vertices are all clear with one top class has only that
    candidate, and no boundary edge touches a clear vertex. The pairwise work (candidate
    classes, the split, the ties) is done on the other faces and vertices only
    (:func:`top_split`)."""
    vals, ca_o, cb_o = as_classes(vals, *_engine.layer_tol(layer, rtol))
    if len(offsets) == 1:
        return np.zeros((0, 2, 2))
    ts = top_split(X, offsets, indices, vals, scale, ca_o, cb_o, [(0, vals.shape[1])])
    e = _tied_edges(ts.D, ts.vals, ts.scale, ts.pi, ts.pj, ca_o, cb_o, ts.offsets, ts.indices)
    return np.stack([ts.X[e[:, 0]], ts.X[e[:, 1]]], 1) if len(e) else np.zeros((0, 2, 2))


def _ranges(start: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The ranges ``start[i] .. start[i] + n[i] - 1``, concatenated.

    >>> _ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist()
    [5, 6, 9, 10, 11]
    """
    return np.repeat(start, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))


def _pairs_within(group: np.ndarray, n: int) -> tuple:
    """Every pair of entries ``(p, q)``, ``p < q``, of the same group, for entries listed group by
    group (``group`` (n,) nondecreasing): their positions, ``p`` first then ``q``, in order.

    >>> _pairs_within(np.array([0, 0, 0, 1, 2, 2]), 6)
    (array([0, 0, 1, 4]), array([1, 2, 2, 5]))
    """
    cnt = np.bincount(group, minlength=int(group[-1]) + 1 if n else 0)
    start = np.repeat(np.cumsum(cnt) - cnt, cnt)
    after = np.repeat(cnt, cnt) - 1 - (np.arange(n) - start)  # entries after each in its group
    return np.repeat(np.arange(n), after), _ranges(np.arange(1, n + 1), after)


def _candidates(vu, su, m_off, lu, ca_o, cb_o) -> np.ndarray:
    """(G, K) the classes that can be on top somewhere in each of G faces (slots ``lu`` of the
    local vertices, CSR ``m_off``; values ``vu`` (U, K), tolerance scales ``su``): ``c`` unless some
    class ``a`` beats it beyond their pair's tolerance at every vertex of the face, i.e. it is kept
    when for every ``a`` some vertex has ``f_a - f_c <= tol_ac`` (float64, as the pair's column).

    Tested only on the classes that pass a looser filter first: ``max_v (f_c + T) >= max_a min_v
    f_a``, ``T`` twice the largest pair tolerance plus ``2**-40 |f|`` (a class kept above has, for
    every ``a``, a vertex where ``f_c + tol_ac >= f_a >= min_v f_a``), so the work is the faces
    times their few candidates times the classes, not times the classes squared."""
    U, K = vu.shape
    G = len(m_off) - 1
    deg = np.diff(m_off)
    T = 2.0 * (su * _two_largest_sum(ca_o) + _two_largest_sum(cb_o)) + 2.0 ** -40 * np.abs(vu).max(1)
    loose = np.zeros((G, K), bool)
    step = max(1, CHUNK_ELEMENTS // max(K * int(deg.max(initial=1)), 1))  # faces per chunk
    for g0 in range(0, G, step):
        g1 = min(G, g0 + step)
        v = lu[m_off[g0]: m_off[g1]]
        o = m_off[g0: g1] - m_off[g0]
        hi = np.maximum.reduceat(vu[v] + T[v, None], o, axis=0)
        floor = np.minimum.reduceat(vu[v], o, axis=0).max(1)
        loose[g0: g1] = hi >= floor[:, None]
    g, c = np.nonzero(loose)
    cand = np.zeros((G, K), bool)
    n = deg[g]
    for s in range(0, len(g), step):
        gi, ci, ni = g[s: s + step], c[s: s + step], n[s: s + step]
        v, cc = lu[_ranges(m_off[gi], ni)], np.repeat(ci, ni)
        tol = su[v, None] * (ca_o + ca_o[cc, None]) + (cb_o + cb_o[cc, None])
        ok = (vu[v] - vu[v, cc][:, None]) <= tol  # (rows, K): f_a - f_c within the pair's tolerance
        beaten = ~np.logical_or.reduceat(ok, np.cumsum(ni) - ni, axis=0)  # some a beats c at every vertex
        cand[gi, ci] = ~beaten.any(1)
    return cand


def _tied_edges(D, vv, sc, pi, pj, ca_o, cb_o, offsets, indices) -> np.ndarray:
    """(S, 2) the edges (local vertex pairs, each once) of the faces ``offsets``/``indices`` along
    which a pair of classes ties at the top: at both ends the two are within their pair's tolerance
    of each other and within the largest pair tolerance of the top value. ``D`` (L, P): the split's
    columns ``f_pj - f_pi`` (exactly 0 on their own lines); another pair's difference is taken from
    the class values ``vv`` (L, K)."""
    L, K = vv.shape
    top = vv.max(1)
    ttol = sc * _two_largest_sum(ca_o) + _two_largest_sum(cb_o)  # at least every pair's tolerance
    near = vv >= (top - ttol)[:, None]
    v, k = np.nonzero(near)  # by vertex, then class
    first, second = _pairs_within(v, len(v))
    tv, ti, tj = v[first], k[first], k[second]  # every pair of near classes at a vertex, i < j
    d = vv[tv, tj] - vv[tv, ti]
    if len(pi):  # the split's own columns where the pair is one (interpolated, 0 on its lines)
        col = np.searchsorted(pi * K + pj, ti * K + tj)
        col = np.minimum(col, len(pi) - 1)
        own = (pi[col] == ti) & (pj[col] == tj)
        d[own] = D[tv[own], col[own]]
    tied = np.abs(d) <= sc[tv] * (ca_o[tj] + ca_o[ti]) + (cb_o[tj] + cb_o[ti])
    keys = (tv[tied] * K + ti[tied]) * K + tj[tied]  # sorted: by vertex, then pair
    if not len(keys):
        return np.zeros((0, 2), np.int64)
    a = indices
    b = indices[_engine.next_in_face(offsets)]
    vert = keys // (K * K)
    lo_k, hi_k = np.searchsorted(vert, a), np.searchsorted(vert, a, side="right")
    n = hi_k - lo_k  # pairs tied at each edge's first end
    edge = np.repeat(np.arange(len(a)), n)
    want = b[edge] * (K * K) + keys[_ranges(lo_k, n)] % (K * K)
    hit = np.searchsorted(keys, want)
    hit = np.minimum(hit, len(keys) - 1)
    on = np.zeros(len(a), bool)
    on[edge[keys[hit] == want]] = True
    e = np.stack([np.minimum(a[on], b[on]), np.maximum(a[on], b[on])], 1)
    return np.unique(e, axis=0) if len(e) else e.reshape(0, 2)
