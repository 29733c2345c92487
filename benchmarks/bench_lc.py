"""Benchmark: local complexity vs a plain forward pass of the same vertices, on one CPU thread.

Run::

    python benchmarks/bench_lc.py                 # speed: 784-200-200-200-10 MLP, 1,000 points, P=25
    python benchmarks/bench_lc.py --exact         # + LC estimate vs exact region counts in 2-D, by r
    python benchmarks/bench_lc.py --device cuda   # + the same three timings with the model on a GPU

Speed: every timing is the best of ``--repeat`` rounds (the methods run round-robin in
this process, so machine load hits all alike), and the ratios are
to the forward pass of the ``2 N P = 50,000`` vertices (``model(vertices)``, vertices built
beforehand) measured in the same run. Compared: ``spatial.local_complexity`` (Sequential fast
path), the same through forward hooks (the path of arbitrary models), and a direct
implementation of the definition (build the vertices, push them through every layer, count the
sign changes). The goal is ``local_complexity <= 0.6x``.

Exact (``--exact``, needs ``spatial.partition``): on a 2-16-16-16-1 ReLU net at random points,
per layer, the LC estimate vs the exact number of neurons whose (bent) zero set crosses the
diamond neighbourhood, read from the exact partition of the diamond, and the number of regions
meeting it, as a function of the radius. The estimate never exceeds the exact count (a sign
change between two vertices means a zero inside the connected diamond) and equals it on the
first layer (also checked in ``tests/test_local_complexity.py``).

Device (``--device cuda``): after the CPU table, the forward pass, ``local_complexity`` and the
hooks path with the model and points on that device (each call synchronised), their ratios to
that device's forward pass and to the CPU's, and whether the counts equal the CPU's.
"""
from __future__ import annotations

import argparse
import time

import torch

from splinescope.spatial.local_complexity import _lc_update, _plan, _prepare_x, local_complexity, random_frame


def mlp(widths, seed=0):
    g = torch.Generator().manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = torch.nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g) * (2 / a) ** 0.5)
            lin.bias.copy_(torch.randn(b, generator=g) * 0.1)
        mods.append(lin)
        if i < len(widths) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def direct(model, x, F, radius):
    """The definition, straight: all 2NP vertices through every layer, counted layer by layer."""
    N, P = x.shape[0], F.shape[0]
    v = torch.cat([x[:, None] + radius * F, x[:, None] - radius * F], 1).reshape(N * 2 * P, -1)
    out = []
    h = v
    for m in model:
        h = m(h)
        if isinstance(m, torch.nn.Linear) and m is not model[-1]:
            z = h.view(N, 2 * P, -1)
            lo, hi = z.amin(1), z.amax(1)
            out.append(((lo < 0) & (hi > 0)).sum(-1))
    return torch.stack(out, 1)


def synced(f, device):
    """``f`` followed by a wait for the device's queued work (GPU calls return before it is done)."""
    if torch.device(device).type != "cuda":
        return f

    def run():
        out = f()
        torch.cuda.synchronize(device)
        return out
    return run


def race(fns, repeat):
    """Best time and result of each function, run round-robin so all see the same machine load."""
    best = [float("inf")] * len(fns)
    out = [None] * len(fns)
    for _ in range(repeat):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            out[i] = f()
            best[i] = min(best[i], time.perf_counter() - t)
    return list(zip(best, out))


def speed(args):
    torch.manual_seed(0)  # the benchmark's own data; the library never touches this RNG
    model = mlp([784, 200, 200, 200, 10]).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.n, 784, generator=g)
    F = random_frame(args.P, 784, seed=2)
    r = args.radius
    verts = torch.cat([x[:, None] + r * F, x[:, None] - r * F], 1).reshape(-1, 784)  # (2NP, D)
    hooked = _plan(model, hooks=True)
    xt, shape = _prepare_x(hooked, x)
    with torch.no_grad():
        (t_fwd, _), (t_lc, lc), (t_hook, lc_h), (t_dir, lc_d) = race([
            lambda: model(verts),
            lambda: local_complexity(model, x, r, frame=F),
            lambda: _lc_update(hooked, xt, shape, F, r, False, None),
            lambda: direct(model, x, F, r)], args.repeat)
    agree = (lc == lc_d).float().mean().item()
    print(f"784-200-200-200-10 MLP, N={args.n} points, P={args.P}, r={r}, "
          f"{verts.shape[0]:,} vertices, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), best of {args.repeat}")
    print(f"  forward pass of the vertices   {t_fwd * 1e3:8.1f} ms   1.00x")
    print(f"  local_complexity (Sequential)  {t_lc * 1e3:8.1f} ms   {t_lc / t_fwd:.2f}x")
    print(f"  local_complexity (hooks)       {t_hook * 1e3:8.1f} ms   {t_hook / t_fwd:.2f}x")
    print(f"  direct implementation          {t_dir * 1e3:8.1f} ms   {t_dir / t_fwd:.2f}x")
    print(f"  mean LC per layer {[round(v, 2) for v in lc.double().mean(0).tolist()]}; "
          f"entries equal to direct: {agree:.4%}, hooks == direct: {bool((lc_h == lc_d).all())}")
    if args.device != "cpu":
        on_device(args, model, x, F, lc, t_fwd)


def on_device(args, model, x, F, lc_cpu, t_fwd_cpu):
    """The forward pass, the Sequential path and the hooks path with everything on ``args.device``."""
    dev = args.device
    model, x, F = model.to(dev), x.to(dev), F.to(dev)
    r = args.radius
    verts = torch.cat([x[:, None] + r * F, x[:, None] - r * F], 1).reshape(-1, x.shape[1])
    hooked = _plan(model, hooks=True)
    xt, shape = _prepare_x(hooked, x)
    with torch.no_grad():
        (t_fwd, _), (t_lc, lc), (t_hook, lc_h) = race([
            synced(lambda: model(verts), dev),
            synced(lambda: local_complexity(model, x, r, frame=F), dev),
            synced(lambda: _lc_update(hooked, xt, shape, F, r, False, None), dev)], args.repeat)
    same = (lc.cpu() == lc_cpu).float().mean().item()
    name = f" ({torch.cuda.get_device_name(dev)})" if torch.device(dev).type == "cuda" else ""
    print(f"on {dev}{name}, best of {args.repeat}; last column: time / the CPU's forward pass")
    print(f"  forward pass of the vertices   {t_fwd * 1e3:8.2f} ms   1.00x   {t_fwd / t_fwd_cpu:.4f}x")
    print(f"  local_complexity (Sequential)  {t_lc * 1e3:8.2f} ms   {t_lc / t_fwd:.2f}x   {t_lc / t_fwd_cpu:.4f}x")
    print(f"  local_complexity (hooks)       {t_hook * 1e3:8.2f} ms   {t_hook / t_fwd:.2f}x   {t_hook / t_fwd_cpu:.4f}x")
    print(f"  entries equal to the CPU's: {same:.4%} (float32: a neuron on the edge may flip), "
          f"hooks vs Sequential: {(lc_h == lc).float().mean().item():.4%} equal")


def exact_counts(model, c, F, r):
    """Exact per-layer counts of neurons crossing the diamond around ``c``, and its regions.

    The diamond ``conv(c +- r F_p)`` is the box ``[-1, 1]^2`` of the plane through ``c`` spanned
    by ``r (F_0 + F_1) / 2`` and ``r (F_0 - F_1) / 2``; a neuron crosses it iff its bit is not
    constant over the partition's regions there.
    """
    import numpy as np
    from splinescope import spatial
    plane = spatial.Plane(c, r * (F[0] + F[1]) / 2, r * (F[0] - F[1]) / 2)
    p = spatial.partition(model, bounds=(-1, 1, -1, 1), plane=plane, boundary=False)
    bits = p.pattern_bits()  # (R, N)
    varies = bits.any(0) & ~bits.all(0)  # (N,)
    cuts = np.cumsum((0,) + p.layer_sizes)
    return [int(varies[a:b].sum()) for a, b in zip(cuts[:-1], cuts[1:])], len(p)


def exact(args):
    import numpy as np
    from splinescope import spatial
    if not hasattr(spatial, "partition"):
        print("--exact: spatial.partition is not available yet")
        return
    model = mlp([2, 16, 16, 16, 1], seed=3).double().eval()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(args.points, 2, generator=g, dtype=torch.float64) * 2 - 1
    F = random_frame(2, 2, seed=5, dtype=torch.float64)
    Fn = F.numpy()
    print(f"\n2-16-16-16-1 ReLU net (He init), {args.points} random points in [-1, 1]^2, P=2 (the "
          "diamond is a square);\nmean per layer: LC estimate / exact neurons crossing the diamond "
          "(from spatial.partition); mean regions meeting it")
    print("     r   layer 1        layer 2        layer 3        est/exact total  regions")
    for r in args.radii:
        lc = local_complexity(model, x, r, frame=F).double()  # (N, 3)
        both = [exact_counts(model, c, Fn, r) for c in x.numpy()]
        ex = np.array([b[0] for b in both])  # (N, 3)
        regions = np.mean([b[1] for b in both])
        cells = "  ".join(f"{lc[:, k].mean():5.2f} / {ex[:, k].mean():5.2f}" for k in range(3))
        assert (lc.numpy() <= ex).all() and (lc[:, 0].numpy() == ex[:, 0]).all()
        print(f"{r:6.2f}  {cells}  {lc.sum().item() / max(1, ex.sum()):15.3f}  {regions:7.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="points")
    ap.add_argument("--P", type=int, default=25, help="directions")
    ap.add_argument("--radius", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--exact", action="store_true", help="also the 2-D comparison with exact counts")
    ap.add_argument("--points", type=int, default=200, help="points of the --exact comparison")
    ap.add_argument("--radii", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3, 1.0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="also time the three methods on this torch device (cuda)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    speed(args)
    if args.exact:
        exact(args)


if __name__ == "__main__":
    main()
