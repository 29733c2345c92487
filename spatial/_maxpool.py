"""Max-pooling cells: from tournament bits to argmax, and the merge of cells that share it.

A max over ``k`` candidates is computed by ``_graph`` as a tournament of ``k - 1`` pairwise
comparisons (``max(a, b) = b + relu(a - b)``), one hinge unit each. The engine splits along every
comparison's line, but a comparison neither of whose operands is the window's argmax does not
change the network's function: the cells on its two sides are one linear region. This module
reads each window's argmax back from the bits (:func:`argmax`), gives the bits every cell of one
region shares (:func:`canonical`: on the winner's path a comparison is won by the winner, off it
the right operand goes on), says which bits the function depends on (:func:`relevant`) and merges
the faces whose canonical patterns are equal (:func:`merge`; ``_tiles`` merges the pieces of one
region in different tiles with it).

Within one canonical pattern every earlier layer is affine, so the region is an intersection of
half-planes: convex, and its pieces meet along edges the engine made twice (once per side), which
the merge cancels.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from . import _engine
from ._errors import SplinescopeError

__all__ = ["argmax", "canonical", "canonical_packed", "relevant", "duels", "merge"]


class _Tour(NamedTuple):
    """One tournament in a partition's pattern columns."""

    cols: List[np.ndarray]  # per round: the pattern column of each comparison
    win: List[np.ndarray]  # per round: the window of each comparison
    left: List[np.ndarray]  # per round: global slot ids of the operands and of the slot made
    right: List[np.ndarray]
    made: List[np.ndarray]
    last: np.ndarray  # (windows,) the global slot of each window's winner
    base: np.ndarray  # (windows,) first global slot of each window
    slots: int


def _tours(net, sizes: Sequence[int]) -> List[_Tour]:
    first = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    out = []
    for info in net.max_info:
        k = np.asarray(info.sizes, np.int64)
        base = np.concatenate([[0], np.cumsum(2 * k - 1)[:-1]]).astype(np.int64)
        count = k.copy()  # per window: the next slot id to be made
        cols, win, left, right, made = [], [], [], [], []
        for stage, start, pairs in zip(info.stages, info.starts, info.pairs):
            pairs = np.asarray(pairs, np.int64).reshape(-1, 3)
            w = pairs[:, 0]
            new = np.empty(len(pairs), np.int64)
            for i, wi in enumerate(w):  # slots are numbered per window in the order they are made
                new[i] = count[wi]
                count[wi] += 1
            cols.append(first[stage] + start + np.arange(len(pairs)))
            win.append(w)
            left.append(base[w] + pairs[:, 1])
            right.append(base[w] + pairs[:, 2])
            made.append(base[w] + new)
        out.append(_Tour(cols, win, left, right, made, base + 2 * k - 2, base, int((2 * k - 1).sum())))
    return out


def _start(t: _Tour, R: int) -> np.ndarray:
    """(slots, R) the candidate in each slot before any round: slot i of a window holds candidate
    i (in the smallest integer type that holds a window's candidates: less memory to move).
    Slots are rows (one per slot, a column per pattern), so a round moves whole rows."""
    n = (np.asarray(t.last) - np.asarray(t.base)) // 2 + 1  # candidates per window
    dtype = np.uint8 if n.max(initial=1) <= 255 else np.int32
    row = np.zeros(t.slots, dtype)
    for w, b in enumerate(t.base):
        row[b: b + n[w]] = np.arange(n[w], dtype=dtype)
    return np.repeat(row[:, None], R, axis=1)


def _transposed(a: np.ndarray) -> np.ndarray:
    """``a.T`` as a contiguous array (through torch: its transposing copy is ~1.5x numpy's, and
    packing bits of a transposed view is 5x slower than of a contiguous one)."""
    return torch.from_numpy(a).t().contiguous().numpy()


def _round_bits(t: _Tour, bits: np.ndarray) -> List[np.ndarray]:
    """Per round, (comparisons, R) the bits of its comparisons in the patterns ``bits`` (R, N):
    only the tournament's columns are turned into rows (a round's columns are consecutive)."""
    out = []
    for cols in t.cols:
        c = bits[:, cols[0]: cols[-1] + 1] if len(cols) and cols[-1] - cols[0] == len(cols) - 1 else bits[:, cols]
        out.append(_transposed(c))
    return out


def _argmax(t: _Tour, rounds: List[np.ndarray]) -> np.ndarray:
    """(windows, R) each window's argmax under the rounds' bits (``_round_bits``)."""
    C = _start(t, rounds[0].shape[1] if rounds else 0)
    for b, left, right, made in zip(rounds, t.left, t.right, t.made):
        C[made] = np.where(b, C[left], C[right])
    return C[t.last]


CHUNK = 8192
"""Patterns per chunk of the tournament replays: (slots, CHUNK) temporaries of a few MB."""


def argmax(bits: np.ndarray, net, sizes: Sequence[int]) -> List[np.ndarray]:
    """Per tournament, (R, windows) the argmax candidate of each window under the bits.

    ``bits``: (R, N) bool patterns over the hidden units (layer sizes ``sizes``); a comparison's bit
    is set where its left operand won."""
    bits = np.asarray(bits, bool)
    tours = _tours(net, sizes)
    parts: List[List[np.ndarray]] = [[] for _ in tours]
    for s in range(0, max(len(bits), 1), CHUNK):
        for i, t in enumerate(tours):
            parts[i].append(_argmax(t, _round_bits(t, bits[s: s + CHUNK])).T)
    return [np.concatenate(p) for p in parts]


def _span(tours: List[_Tour]) -> Tuple[int, int]:
    """The pattern columns [c0, c1) that hold every comparison of the tournaments."""
    cols = [c for t in tours for c in t.cols if len(c)]
    if not cols:
        return 0, 0
    return int(min(c.min() for c in cols)), int(max(c.max() for c in cols)) + 1


def _replay(bT: np.ndarray, tours: List[_Tour], off: int, mask: bool = False) -> Optional[np.ndarray]:
    """Replay each tournament with its argmax, in place on ``bT`` (pattern columns from ``off``
    as rows, one column per pattern): afterwards it holds the canonical bits. With ``mask``,
    returns the relevance mask of the same rows (else None)."""
    M = np.ones(bT.shape, bool) if mask else None
    for t in tours:
        A = _argmax(t, [bT[c - off] for c in t.cols])  # before this tournament's bits are rewritten
        C = _start(t, bT.shape[1])
        for cols, w, left, right, made in zip(t.cols, t.win, t.left, t.right, t.made):
            cl, cr = C[left], C[right]
            Aw = A[w]
            won = cl == Aw
            bT[cols - off] = won
            if M is not None:
                M[cols - off] = won | (cr == Aw)
            C[made] = np.where(won, cl, cr)
    return M


def _replayed(bits: np.ndarray, net, sizes: Sequence[int], which: int) -> np.ndarray:
    """The canonical bits (``which`` 0) or the relevance mask (1) of every pattern (R, N), chunk by
    chunk; only the tournaments' columns are turned into rows."""
    tours = _tours(net, sizes)
    c0, c1 = _span(tours)
    bits = np.asarray(bits, bool)
    out = np.array(bits, copy=True) if which == 0 else np.ones(bits.shape, bool)
    for s in range(0, len(bits), CHUNK):
        bT = _transposed(bits[s: s + CHUNK, c0:c1])
        M = _replay(bT, tours, c0, mask=which == 1)
        out[s: s + CHUNK, c0:c1] = _transposed(bT if M is None else M)
    return out


def canonical_packed(patterns: np.ndarray, net, sizes: Sequence[int]) -> np.ndarray:
    """:func:`canonical` of packed patterns (R, ceil(N/8)), packed, chunk by chunk: only the bytes
    that hold the tournaments' columns are unpacked (never all the patterns at once), and the
    tournaments are replayed bit-sliced (:func:`_replay_sliced`)."""
    if not net.max_info:
        return patterns
    tours = _tours(net, sizes)
    c0, c1 = _span(tours)
    b0, b1 = c0 // 8, -(-c1 // 8)
    out = np.array(patterns, copy=True)
    for s in range(0, len(patterns), CHUNK):
        part = patterns[s: s + CHUNK, b0:b1]
        bT = _bit_rows(part)
        _replay_sliced(bT, tours, 8 * b0)
        back = np.unpackbits(bT, axis=1, count=len(part)).view(bool)
        out[s: s + CHUNK, b0:b1] = np.packbits(_transposed(back), axis=1)
    return out


_BIT = np.uint8(1) << np.arange(7, -1, -1, dtype=np.uint8)  # each bit of a byte, first to last


def _bit_rows(packed: np.ndarray) -> np.ndarray:
    """The bit matrix ``packed`` (R, nb) transposed: (8 nb, ceil(R/8)), row ``j`` the bits of column
    ``j`` of every pattern, packed (each byte masked bit by bit: 3x unpacking, transposing and
    packing booleans)."""
    T = _transposed(np.ascontiguousarray(packed))
    return np.packbits(T[:, None, :] & _BIT[None, :, None], axis=2).reshape(8 * T.shape[0], -1)


def _planes(t: _Tour) -> int:
    """Bits that number a window's candidates."""
    n = int(((np.asarray(t.last) - np.asarray(t.base)) // 2 + 1).max(initial=1))
    return max(1, (n - 1).bit_length())


def _start_sliced(t: _Tour, L: int, W: int) -> np.ndarray:
    """(L, slots, W) uint8: :func:`_start` bit-sliced, plane ``l`` the ``l``-th bit of each
    slot's candidate, for ``8 W`` patterns at once (a byte holds 8 patterns)."""
    row = _start(t, 1)[:, 0].astype(np.int64)
    planes = ((row[None, :] >> np.arange(L)[:, None]) & 1).astype(np.uint8) * np.uint8(255)
    return np.repeat(planes[:, :, None], W, axis=2)


def _pick(b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bitwise ``b ? x : y`` (b broadcast over the planes of ``x`` and ``y``)."""
    return y ^ ((x ^ y) & b)


def _replay_sliced(bT: np.ndarray, tours: List[_Tour], off: int) -> None:
    """:func:`_replay` (the canonical bits only) on bit-packed rows: ``bT`` (columns from ``off``,
    ceil(R/8)) uint8, each byte the bits of 8 patterns, rewritten in place. A window's candidate
    ids are held as ``_planes`` bit planes, so a round is a few bitwise operations on packed rows
    (8 patterns per byte instead of one)."""
    W = bT.shape[1]
    for t in tours:
        start = _start_sliced(t, _planes(t), W)
        C = start.copy()
        for cols, left, right, made in zip(t.cols, t.left, t.right, t.made):  # the argmax under the bits
            C[:, made] = _pick(bT[cols - off][None], C[:, left], C[:, right])
        A = C[:, t.last]
        C = start  # (the replay writes the slots it makes; the starting ones stay)
        for cols, w, left, right, made in zip(t.cols, t.win, t.left, t.right, t.made):
            cl, cr = C[:, left], C[:, right]
            won = np.bitwise_and.reduce(~(cl ^ A[:, w]), axis=0)  # the left operand is the argmax
            bT[cols - off] = won
            C[:, made] = _pick(won[None], cl, cr)


def canonical(bits: np.ndarray, net, sizes: Sequence[int]) -> np.ndarray:
    """(R, N) the bits every cell of the same linear region shares: each tournament replayed with
    its argmax (the winner wins its comparisons; a comparison without it goes to its right operand).

    For a network without max-pooling, the bits themselves."""
    if not net.max_info:
        return bits
    return _replayed(bits, net, sizes, 0)


def relevant(bits: np.ndarray, net, sizes: Sequence[int]) -> np.ndarray:
    """(R, N) bool: the bits the network's function depends on (False: a comparison of two
    candidates neither of which is its window's argmax)."""
    if not net.max_info:
        return np.ones(bits.shape, bool)
    return _replayed(bits, net, sizes, 1)


def duels(bits: np.ndarray, net, sizes: Sequence[int]):
    """The comparisons that define one region's argmax: its window's winner against every rival.

    Within a region each window's argmax ``w`` is at least every candidate ``j``: the region is cut
    by the lines ``v_w = v_j`` (one per rival), not only by the comparisons of its own tournament
    path, whose opponents are running maxima. For the region's bits ``bits`` (N,), yields
    ``(bits2, cols, sign)`` per tournament and rival rank: ``bits2`` has that tournament's
    comparisons set so that in every window both the argmax and one rival win each comparison
    before they meet; ``cols`` are the pattern columns where they meet (one per window that has
    a rival of that rank), whose value under ``bits2`` is ``v_left - v_right``; ``sign`` is +1
    where the argmax is the left operand (so ``sign * value = v_w - v_j >= 0`` in the region)."""
    for t in _tours(net, sizes):
        A = _argmax(t, _round_bits(t, np.asarray(bits, bool)[None, :]))[:, 0].astype(np.int64)
        k = (np.asarray(t.last) - np.asarray(t.base)) // 2 + 1  # candidates per window
        for rank in range(int(k.max(initial=1)) - 1):
            has = rank < k - 1
            J = np.where(has, rank + (rank >= A), A)  # the rank-th candidate other than the argmax
            C = _start(t, 1)[:, 0].astype(np.int64)
            b2 = np.array(bits, dtype=bool, copy=True)
            cols, sign = [], []
            for col, w, left, right, made in zip(t.cols, t.win, t.left, t.right, t.made):
                cl, cr = C[left], C[right]
                fl = (cl == A[w]) | (cl == J[w])
                meet = fl & ((cr == A[w]) | (cr == J[w])) & has[w]
                cols.append(col[meet])
                sign.append(np.where(cl[meet] == A[w[meet]], 1, -1))
                won = np.where(meet, cl == A[w], fl)  # a favoured operand wins; else the right goes on
                b2[col] = won
                C[made] = np.where(won, cl, cr)
            yield b2, np.concatenate(cols), np.concatenate(sign)


class Merged(NamedTuple):
    X: np.ndarray
    offsets: np.ndarray
    indices: np.ndarray
    patterns: np.ndarray
    keep: np.ndarray  # the old index of each kept vertex
    lines: Optional[np.ndarray]
    first: np.ndarray  # the old index of each region's first face
    slot_line: Optional[np.ndarray]  # the line of each region's edge (from its slot), given ``slot_line``


def merge(X: np.ndarray, offsets: np.ndarray, indices: np.ndarray, patterns: np.ndarray, net,
          sizes: Sequence[int], corners: np.ndarray, lines: Optional[np.ndarray] = None,
          slot_line: Optional[np.ndarray] = None) -> Merged:
    """Merge the faces of one linear region (equal canonical patterns) into one polygon.

    The edges two faces of one group share (each directed once per face) cancel; the rest is the
    region's outer loop, walked from its first remaining edge. Vertices left with two edges (a
    collinear point where a cancelled edge ended; not a box corner) are dropped, unused vertices
    removed. Regions keep the order of their first face. ``corners``: the box's corner vertices.
    ``slot_line`` (one per slot of ``indices``: the line of the edge from that slot's vertex to
    the next): the merged edges' lines (an edge that absorbed dropped collinear vertices keeps
    the line of its first piece, which is the same line)."""
    canon = canonical_packed(patterns, net, sizes)  # without max-pooling the bits themselves (tiles)
    first, group = _engine.unique_rows(canon)  # group ids in the order of their first face
    G = len(first)
    V = len(X)
    a = indices.astype(np.int64)
    b = a[_engine.next_in_face(offsets)]
    g = group[np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))]
    # an edge is internal where its twin (b, a) lies in a face of the same group: the two slots of
    # an undirected edge (one per face along it) are neighbours once sorted by it
    und = np.minimum(a, b) * V + np.maximum(a, b)
    o = np.argsort(und, kind="stable")
    us = und[o]
    pair = np.zeros(len(o), bool)  # sorted slot i and i + 1 are one edge's two sides
    if len(o) > 1:
        pair[:-1] = us[1:] == us[:-1]
    if len(o) > 2 and (pair[:-1] & pair[1:]).any():
        raise SplinescopeError("an edge of more than two faces: not a planar subdivision (a bug, please report it)")
    i = np.nonzero(pair)[0]
    inner = np.zeros(len(o), bool)
    inner[i] = inner[i + 1] = (g[o[i]] == g[o[i + 1]]) & (a[o[i]] == b[o[i + 1]])
    internal = np.empty(len(o), bool)
    internal[o] = inner
    # the merged regions' undirected edges: each kept edge once (an edge between two regions twice)
    kept = us[~inner]
    edges = kept[np.concatenate([[True], kept[1:] != kept[:-1]])] if len(kept) else kept
    a, b, g = a[~internal], b[~internal], g[~internal]
    sl = None if slot_line is None else np.asarray(slot_line)[~internal]
    E = len(a)
    # the loop of each group: the successor of (u, v) is the group's edge starting at v
    # (a convex loop passes each vertex once)
    key = g * V + a
    o = np.argsort(key)
    succ = o[np.minimum(np.searchsorted(key[o], g * V + b), max(E - 1, 0))]
    if E and not ((key[succ] == g * V + b).all() and np.bincount(succ, minlength=E).max() == 1):
        raise SplinescopeError("faces of one region do not close into one loop: not a planar subdivision "
                               "(a bug, please report it)")
    pred = np.empty(E, np.int64)
    pred[succ] = np.arange(E)
    start = np.full(G, E, np.int64)
    np.minimum.at(start, g, np.arange(E))
    is_start = np.zeros(E, bool)
    is_start[start] = True
    # list ranking by pointer doubling: steps from the loop's start
    dist = (~is_start).astype(np.int64)
    ptr = np.where(is_start, np.arange(E), pred)
    for _ in range(64):  # (a loop of E edges is ranked in log2(E) doublings)
        if is_start[ptr].all():
            break
        dist, ptr = dist + dist[ptr], ptr[ptr]
    else:
        raise SplinescopeError("faces of one region make more than one loop: not a planar subdivision "
                               "(a bug, please report it)")
    order = np.lexsort((dist, g))
    idx = a[order]
    sl = None if sl is None else sl[order]
    fg = np.sort(g)
    # drop vertices of degree two (collinear points), except the box's corners
    drop = np.bincount(np.concatenate([edges // V, edges % V]), minlength=V) == 2
    drop[corners] = False
    keep_slot = ~drop[idx]
    idx, fg = idx[keep_slot], fg[keep_slot]
    sl = None if sl is None else sl[keep_slot]
    new_off = np.concatenate([[0], np.cumsum(np.bincount(fg, minlength=G))]).astype(np.int64)
    seen = np.zeros(V, bool)
    seen[idx] = True
    used = np.flatnonzero(seen)
    remap = np.full(V, -1, np.int64)
    remap[used] = np.arange(len(used))
    return Merged(X[used], new_off, remap[idx], canon[first],
                  used, None if lines is None else lines[used], first, sl)
