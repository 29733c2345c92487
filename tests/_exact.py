"""An independent exact reference: linear regions in rational arithmetic (fractions).

Slow and simple on purpose: every region is a list of Fraction points, each neuron's exact
affine map on it is composed from the float64 weights' exact values, and regions are cut with
Sutherland-Hodgman clipping. Shares no code with the engine.
"""
from fractions import Fraction as Fr


def _frac_layers(net):
    """[(W, b, slope)] in Fractions from a spatial._net.Network (its float64 values, exactly)."""
    return [([[Fr(float(x)) for x in row] for row in l.weight], [Fr(float(x)) for x in l.bias],
             None if l.slope is None else Fr(float(l.slope))) for l in net.layers]


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


def exact_regions(net, bounds):
    """[(polygon, bits, output maps)] of every linear region, in Fractions."""
    x0, x1, y0, y1 = (Fr(float(v)) for v in bounds)
    box = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    regions = [(box, [(Fr(0), Fr(1), Fr(0)), (Fr(0), Fr(0), Fr(1))], [])]
    for W, b, slope in _frac_layers(net):  # the last layer (no activation) returns
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
