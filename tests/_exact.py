"""An independent exact reference: linear regions in rational arithmetic (fractions).

Slow and simple on purpose: the weights are read straight from the torch modules (not through
the engine's reader), every region is a list of Fraction points, each neuron's exact affine map
on it is composed in Fractions, and regions are cut with Sutherland-Hodgman clipping. Shares no
code with the engine.

Where the engine rounds on purpose, the reference reproduces that rounding, written here
independently, so that both compute the regions of one and the same network:

- BatchNorm1d (eval) is folded in float64 as ``w = (1 / sqrt(var + eps)) * gamma``,
  ``b = beta - mean * w`` (``gamma / sqrt(var + eps)`` is not rational; this is the engine's
  operation order, which rounds the same), and exact from there.
- A plane slice is the float64 restriction, as documented for partition: the first Linear's
  float64 weights become ``W @ basis.T`` and ``bias + W @ origin`` (numpy), exact from there.

Runs of affine maps without an activation between them (Linear, BatchNorm1d) are composed
exactly; the engine composes them in float64, so such networks agree up to one rounding of the
composed weights (identical for a single Linear, or for dyadic weights whose products are exact).
"""
from fractions import Fraction as Fr

import numpy as np
import torch

L = torch.nn


def _fr(a):
    return [_fr(x) for x in a] if np.ndim(a) else Fr(float(a))


def _f64(t):
    return np.ascontiguousarray(t.detach().cpu().double().numpy())


def _modules(model):
    if isinstance(model, L.Sequential):
        for child in model.children():
            yield from _modules(child)
    else:
        yield model


def _frac_layers(model, plane=None):
    """[(W, b, slope)] in Fractions straight from a torch model; the last has slope None."""
    layers, W, b, width = [], None, None, None  # W, b: the pending affine map (None: identity)
    first = True
    for m in _modules(model):
        if isinstance(m, (L.Identity, L.Flatten, L.Dropout)):
            continue
        if isinstance(m, L.Linear):
            w2 = _f64(m.weight)
            b2 = _f64(m.bias) if m.bias is not None else np.zeros(w2.shape[0])
            if first and plane is not None:
                origin, basis = np.asarray(plane.origin, np.float64), np.asarray(plane.basis, np.float64)
                w2, b2 = w2 @ basis.T, b2 + w2 @ origin  # the engine's float64 restriction
            w2, b2 = _fr(w2), _fr(b2)
        elif isinstance(m, L.BatchNorm1d):
            assert not m.training and m.running_mean is not None, "BatchNorm1d must be in eval mode"
            scale = 1.0 / np.sqrt(_f64(m.running_var) + float(m.eps))
            shift = np.zeros_like(scale)
            if m.affine:
                scale, shift = scale * _f64(m.weight), _f64(m.bias)
            shift = shift - scale * _f64(m.running_mean)
            w2 = [[Fr(float(s)) if i == j else Fr(0) for j in range(len(scale))] for i, s in enumerate(scale)]
            b2 = _fr(shift)
        elif isinstance(m, (L.ReLU, L.LeakyReLU, L.PReLU)):
            if isinstance(m, L.ReLU):
                slope = Fr(0)
            elif isinstance(m, L.LeakyReLU):
                slope = Fr(float(m.negative_slope))
            else:
                assert m.weight.numel() == 1, "PReLU with one slope only"
                slope = Fr(float(m.weight.detach().double().reshape(())))
            if W is None:
                W, b = [[Fr(int(i == j)) for j in range(width)] for i in range(width)], [Fr(0)] * width
            layers.append((W, b, slope))
            W, b = None, None
            continue
        else:
            raise TypeError(f"the exact reference does not read {type(m).__name__}")
        assert not (first and plane is not None and not isinstance(m, L.Linear)), "a plane needs a Linear first"
        first = False
        if W is None:
            W, b = w2, b2
        else:  # compose exactly: w2 @ W, w2 @ b + b2
            W, b = ([[sum((r[k] * W[k][j] for k in range(len(W))), Fr(0)) for j in range(len(W[0]))] for r in w2],
                    [sum((r[k] * b[k] for k in range(len(b))), bb) for r, bb in zip(w2, b2)])
        width = len(W)
    if W is None:  # ends with an activation: its output is the output
        W, b = [[Fr(int(i == j)) for j in range(width)] for i in range(width)], [Fr(0)] * width
    layers.append((W, b, None))
    return layers


def _affine(wrow, bk, M):
    c, g1, g2 = bk, Fr(0), Fr(0)
    for w, (mc, m1, m2) in zip(wrow, M):
        if w:
            c += w * mc
            g1 += w * m1
            g2 += w * m2
    return c, g1, g2


def clip(poly, c, g1, g2):
    """The part of a convex polygon where c + g1 x + g2 y >= 0."""
    out = []
    n = len(poly)
    for i in range(n):
        P, Q = poly[i], poly[(i + 1) % n]
        fp = c + g1 * P[0] + g2 * P[1]
        fq = c + g1 * Q[0] + g2 * Q[1]
        if fp >= 0:
            out.append(P)
        if (fp > 0 > fq) or (fp < 0 < fq):
            t = fp / (fp - fq)
            out.append((P[0] + t * (Q[0] - P[0]), P[1] + t * (Q[1] - P[1])))
    return out


def area(poly):
    n = len(poly)
    return sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1] for i in range(n)) / 2


def exact_regions(model, bounds, plane=None):
    """[(polygon, bits, output maps)] of every linear region of a torch model, in Fractions.

    ``model`` is a ``torch.nn.Sequential`` (nested too) of Linear, ReLU, LeakyReLU, PReLU (one
    slope), BatchNorm1d (eval), Identity, Flatten and Dropout. ``plane`` (a ``spatial.Plane``)
    slices it: the slice network is the float64 restriction, as documented for partition.
    """
    x0, x1, y0, y1 = (Fr(float(v)) for v in bounds)
    box = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    regions = [(box, [(Fr(0), Fr(1), Fr(0)), (Fr(0), Fr(0), Fr(1))], [])]
    for W, b, slope in _frac_layers(model, plane):  # the last layer (no activation) returns
        if slope is None:
            return [(poly, bits, [_affine(W[k], b[k], M) for k in range(len(W))]) for poly, M, bits in regions]
        new = []
        for poly, M, bits in regions:
            Z = [_affine(W[k], b[k], M) for k in range(len(W))]
            pieces = [(poly, [])]
            for c, g1, g2 in Z:
                nxt = []
                for pp, bb in pieces:
                    if c == 0 and g1 == 0 and g2 == 0:  # identically zero: inactive, no cut
                        nxt.append((pp, bb + [0]))
                        continue
                    pos = clip(pp, c, g1, g2)
                    neg = clip(pp, -c, -g1, -g2)
                    if len(pos) >= 3 and area(pos) > 0:
                        nxt.append((pos, bb + [1]))
                    if len(neg) >= 3 and area(neg) > 0:
                        nxt.append((neg, bb + [0]))
                pieces = nxt
            for pp, bb in pieces:
                newM = [z if bit else (slope * z[0], slope * z[1], slope * z[2]) for z, bit in zip(Z, bb)]
                new.append((pp, newM, bits + bb))
        regions = new
    raise ValueError("the network has no output layer")


def zero_set_length(regions):
    """Total length of {f = 0} (single output) inside the regions, exactly up to the final sqrt."""
    import math

    total = 0.0
    for poly, _, maps in regions:
        c, g1, g2 = maps[0]
        if g1 == 0 and g2 == 0:
            continue
        # the zero set's ends: the corners of the part where f >= 0 at which f = 0 exactly
        pts = [P for P in clip(poly, c, g1, g2) if c + g1 * P[0] + g2 * P[1] == 0]
        pts = list(dict.fromkeys(pts))
        n = len(poly)
        if len(pts) == 2:
            length = math.hypot(float(pts[0][0] - pts[1][0]), float(pts[0][1] - pts[1][1]))
            # an edge shared by two regions is counted from both sides: halve it there
            on_edge = any(
                {pts[0], pts[1]} <= {poly[i], poly[(i + 1) % n]} or _on_segment(pts, poly[i], poly[(i + 1) % n])
                for i in range(n))
            total += length / 2 if on_edge else length
    return total


def _on_segment(pts, A, B):
    def on(P):
        cross = (B[0] - A[0]) * (P[1] - A[1]) - (B[1] - A[1]) * (P[0] - A[0])
        return cross == 0 and min(A[0], B[0]) <= P[0] <= max(A[0], B[0]) and min(A[1], B[1]) <= P[1] <= max(A[1], B[1])
    return on(pts[0]) and on(pts[1])


def argmax_boundary_length(regions):
    """Total length of the set where the top class changes (K >= 2 outputs), region by region.

    Inside a region every output is affine; the cell of class c is the region clipped by
    f_c >= f_a for every a. Each boundary segment inside the region is an edge of two cells, and
    the region's own sides are edges of exactly one cell, so the length inside the region is
    (sum of the cells' perimeters - the region's perimeter) / 2.
    """
    import math

    def perimeter(poly):
        n = len(poly)
        return sum(math.hypot(float(poly[i][0] - poly[(i + 1) % n][0]), float(poly[i][1] - poly[(i + 1) % n][1]))
                   for i in range(n))

    total = 0.0
    for poly, _, maps in regions:
        cells = 0.0
        for c, (cc, c1, c2) in enumerate(maps):
            cell = poly
            for a, (ac, a1, a2) in enumerate(maps):
                if a != c and len(cell) >= 3:
                    cell = clip(cell, cc - ac, c1 - a1, c2 - a2)
            if len(cell) >= 3 and area(cell) > 0:
                cells += perimeter(cell)
        total += (cells - perimeter(poly)) / 2
    return total
