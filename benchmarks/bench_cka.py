"""Benchmark: CKA in feature space vs the bare products it needs, and vs Gram-matrix packages, on one CPU thread.

Run::

    python benchmarks/bench_cka.py                  # 10,000 x 512 float64; torch-cka / ckatorch where installed
    python benchmarks/bench_cka.py --others-n 4000  # the Gram-matrix packages on the first 4,000 rows only (faster)
    python benchmarks/bench_cka.py --no-others      # ours only
    python benchmarks/bench_cka.py --device cuda    # ours and the Gram-matrix packages on a GPU (no streaming)

Speed: ``spatial.cka.cka`` (linear and debiased) against the three products ``X^T Y``, ``X^T X``,
``Y^T Y`` that any feature-space CKA needs, best of ``--repeat`` rounds run round-robin in this
process (so machine load hits all alike). Targets: linear <= 1.5x, debiased <= 2.5x.

Gram-matrix packages (each run once, in a forked child, against our best time): torch-cka 0.21 (``torch_cka.CKA`` over
a one-batch DataLoader: its unbiased HSIC of n x n matrices, in float32 as it requires, which on
these features with means of 5 loses most digits to cancellation) and ckatorch
(``cka_base``, linear and ``unbiased=True``, float64). Their time is compared with ours on the same
rows; memory is the child's peak resident memory above its start (``VmHWM`` after resetting it
through ``/proc/self/clear_refs``), which counts torch's allocations (tracemalloc does not see them).

Streaming: ``CKA(debiased=True)`` over 100,000 x 512 examples generated batch by batch (1,000 a
batch), with the same peak-memory measure, against the functional on all the data at once.

Checkpoint matrices (``--matrices``): ``dynamics.cka_matrices`` of 4 checkpoints of a CNN (two
conv layers of 8 x 32 x 32 = 8,192 features) on 400 random 3x32x32 images, more features than
examples, so it works in example space (``_gram_cka``: an n x n Gram matrix per checkpoint),
against the feature-space products it used before (``Xc_i^T Xc_j`` per pair, and the feature-space
sums of ``cka()`` per pair debiased), on the same representations, one round each.

Device (``--device cuda``): the features on that device; ours, the bare products and the packages
(ckatorch on the device's tensors, torch-cka with ``device=``) raced in this process (a forked
child cannot use CUDA), each call synchronised; memory is the device's peak allocation of one call.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import warnings

import torch
from bench_lc import race, synced  # best time of each, round-robin (this script runs from benchmarks/)

from splinescope.spatial.cka import CKA, _cka_compute, _cka_update, cka


def features(n, p, seed=0, offset=5.0):
    """Correlated features with nonzero means, float64: X, and Y = relu(X A) + noise with one A
    (seeded by p) for every ``seed`` (which draws X and the noise)."""
    A = torch.randn(p, p, generator=torch.Generator().manual_seed(p), dtype=torch.float64) / p ** 0.5
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g, dtype=torch.float64) + offset
    Y = torch.relu(X @ A) + torch.randn(n, p, generator=g, dtype=torch.float64)
    return X, Y


def _status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def in_child(fn):
    """``fn()`` in a forked child: (seconds, peak resident MB above the child's start, float(value))."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def target():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak (VmHWM) to the current resident size
            base = _status_kb("VmRSS")
            t = time.perf_counter()
            v = fn()
            t = time.perf_counter() - t
            send.send((t, (_status_kb("VmHWM") - base) / 1024, float(v)))
        except BaseException as e:  # noqa: BLE001 - hand any failure to the parent
            send.send(e)

    p = ctx.Process(target=target)
    p.start()
    out = recv.recv()
    p.join()
    if isinstance(out, BaseException):
        raise out
    return out


def torch_cka_value(X, Y, device="cpu"):
    import torch_cka
    from torch.utils.data import DataLoader, TensorDataset
    n = X.shape[0]
    m1, m2 = torch.nn.Sequential(torch.nn.Identity()), torch.nn.Sequential(torch.nn.Identity())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = torch_cka.CKA(m1, m2, "X", "Y", model1_layers=["0"], model2_layers=["0"], device=device)
        c.compare(DataLoader(TensorDataset(X.float().cpu()), batch_size=n),
                  DataLoader(TensorDataset(Y.float().cpu()), batch_size=n))
    return c.export()["CKA"][0, 0]


def speed(args):
    X, Y = features(args.n, args.p)
    (t_bare, _), (t_lin, lin), (t_deb, deb) = race([
        lambda: (X.T @ Y, X.T @ X, Y.T @ Y),
        lambda: cka(X, Y),
        lambda: cka(X, Y, debiased=True)], args.repeat)
    print(f"{args.n:,} x {args.p} float64 features (X, and Y = relu(X A) + noise), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), best of {args.repeat}")
    print(f"  X^T Y, X^T X, Y^T Y (bare)     {t_bare * 1e3:9.1f} ms   1.00x")
    print(f"  cka(X, Y)                      {t_lin * 1e3:9.1f} ms   {t_lin / t_bare:.2f}x   (target <= 1.5x)   "
          f"CKA = {float(lin):.6f}")
    print(f"  cka(X, Y, debiased=True)       {t_deb * 1e3:9.1f} ms   {t_deb / t_bare:.2f}x   (target <= 2.5x)   "
          f"CKA = {float(deb):.6f}")
    if args.no_others:
        return
    m = args.others_n or args.n
    Xm, Ym = X[:m].contiguous(), Y[:m].contiguous()
    if m == args.n:
        best = {"linear": (t_lin, float(lin)), "debiased": (t_deb, float(deb))}
    else:
        (a, va), (b, vb) = race([lambda: cka(Xm, Ym), lambda: cka(Xm, Ym, debiased=True)], args.repeat)
        best = {"linear": (a, float(va)), "debiased": (b, float(vb))}
    runs = [("cka(X, Y) (ours)", "linear", lambda: cka(Xm, Ym)),
            ("cka(X, Y, debiased=True) (ours)", "debiased", lambda: cka(Xm, Ym, debiased=True))]
    try:
        import ckatorch
        runs += [("ckatorch.cka_base", "linear", lambda: ckatorch.cka_base(Xm, Ym)),
                 ("ckatorch.cka_base(unbiased=True)", "debiased", lambda: ckatorch.cka_base(Xm, Ym, unbiased=True))]
    except ImportError:
        print("  ckatorch: not installed (pip install ckatorch)")
    try:
        import torch_cka  # noqa: F401
        runs.append(("torch_cka.CKA (float32)", "debiased", lambda: torch_cka_value(Xm, Ym)))
    except ImportError:
        print("  torch-cka: not installed (pip install torch-cka)")
    gram = m * m * 8 / 2 ** 20
    print(f"\nOn {m:,} x {args.p} (one n x n float64 matrix is {gram:,.0f} MB). Theirs run once each in a forked "
          f"child;\nours: best of {args.repeat} here, memory from one run in a child. 'vs ours' is to our form of "
          "the same estimator")
    print("  method                              time     vs ours   peak memory   |value - ours|")
    for name, kind, fn in runs:
        t, peak, v = in_child(fn)
        base, ref = best[kind]
        if "(ours)" in name:
            t = base
        print(f"  {name:33s} {t:7.2f} s  {t / base:7.1f}x  {peak:9.1f} MB   {abs(v - ref):.1e}")


def on_device(args):
    """Ours, the bare products and the Gram-matrix packages on ``args.device``, in this process."""
    dev = args.device
    X, Y = (a.to(dev) for a in features(args.n, args.p))
    m = args.others_n or args.n
    Xm, Ym = X[:m].contiguous(), Y[:m].contiguous()
    runs = [("X^T Y, X^T X, Y^T Y (bare)", X, lambda: (X.T @ Y, X.T @ X, Y.T @ Y)),
            ("cka(X, Y)", X, lambda: cka(X, Y)),
            ("cka(X, Y, debiased=True)", X, lambda: cka(X, Y, debiased=True))]
    if m < args.n:
        runs += [("cka(X, Y) (ours)", Xm, lambda: cka(Xm, Ym)),
                 ("cka(X, Y, debiased=True) (ours)", Xm, lambda: cka(Xm, Ym, debiased=True))]
    if not args.no_others:
        try:
            import ckatorch
            runs += [("ckatorch.cka_base", Xm, lambda: ckatorch.cka_base(Xm, Ym)),
                     ("ckatorch.cka_base(unbiased=True)", Xm, lambda: ckatorch.cka_base(Xm, Ym, unbiased=True))]
        except ImportError:
            print("  ckatorch: not installed (pip install ckatorch)")
        try:
            import torch_cka  # noqa: F401
            runs.append(("torch_cka.CKA (float32)", Xm, lambda: torch_cka_value(Xm, Ym, dev)))
        except ImportError:
            print("  torch-cka: not installed (pip install torch-cka)")
    print(f"{args.n:,} x {args.p} float64 features on {dev}, torch {torch.__version__}, best of {args.repeat}")
    print("  method                              time      vs bare   peak memory   value")
    bare = None
    for name, rows, fn in runs:
        try:
            cuda = torch.device(dev).type == "cuda"
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev) if cuda else 0
            (t, v), = race([synced(fn, dev)], args.repeat)
            peak = (torch.cuda.max_memory_allocated(dev) - base) / 2 ** 20 if cuda else float("nan")
        except Exception as e:  # noqa: BLE001 - a package's failure is a line, not the end of the run
            print(f"  {name:33s} failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
            continue
        bare = bare or t
        value = "" if isinstance(v, tuple) else f"{float(v):.10f}"
        print(f"  {name:33s} {t * 1e3:8.2f} ms  {t / bare:7.2f}x  {peak:9.1f} MB   {value}  ({len(rows):,} rows)")


def stream(args):
    N, B, p = args.stream_n, args.stream_batch, args.p

    def batch(i):
        X, Y = features(B, p, seed=1000 + i)
        return X, Y

    def streamed():
        m = CKA(debiased=True)
        for i in range(N // B):
            m.update(*batch(i))
        return m.compute()

    def generated_only():
        for i in range(N // B):
            batch(i)
        return 0.0

    t, peak, v = in_child(streamed)
    t_gen = race([generated_only], 1)[0][0]
    m = CKA(debiased=True)
    m.update(*batch(0))
    state = sum(s.numel() * s.element_size() for s in m.metric_state.values())
    parts = [batch(i) for i in range(N // B)]
    X, Y = torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])
    del parts
    t_all, peak_all, whole = in_child(lambda: cka(X, Y, debiased=True))
    print(f"\nStreaming {N:,} x {p} examples in batches of {B:,} (generated one at a time), debiased")
    print(f"  CKA(debiased=True).update x {N // B}   {t - t_gen:7.2f} s   peak {peak:7.1f} MB above start "
          f"(state {state / 2 ** 20:.1f} MB, one batch {2 * B * p * 8 / 2 ** 20:.1f} MB)   CKA = {v:.10f}")
    print(f"  cka(X, Y, debiased=True), all rows  {t_all:7.2f} s   peak {peak_all:7.1f} MB above start "
          f"(the data itself: {2 * N * p * 8 / 2 ** 20:,.0f} MB, held before)   CKA = {whole:.10f}")
    print(f"  streamed - full data: {v - whole:.1e}; generating the batches took {t_gen:.2f} s more "
          "(not counted above; the peak includes it)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="examples")
    ap.add_argument("--p", type=int, default=512, help="features of X and of Y")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--others-n", type=int, default=None, help="rows for the Gram-matrix packages (default: n)")
    ap.add_argument("--no-others", action="store_true", help="skip torch-cka and ckatorch")
    ap.add_argument("--stream-n", type=int, default=100_000)
    ap.add_argument("--stream-batch", type=int, default=1_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="a torch device such as cuda: run there instead (no streaming)")
    ap.add_argument("--matrices", action="store_true", help="only the checkpoint matrices (see the docstring)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.matrices:
        matrices()
        return
    if args.device != "cpu":
        on_device(args)
        return
    speed(args)
    stream(args)


def matrices() -> None:
    from splinescope.spatial.dynamics import _centred, _gram_cka, representations

    L = torch.nn

    def net(seed):
        torch.manual_seed(seed)
        return L.Sequential(L.Conv2d(3, 8, 3, padding=1), L.ReLU(), L.Conv2d(8, 8, 3, padding=1), L.ReLU(),
                            L.Flatten(), L.Linear(8 * 1024, 10)).eval()

    x = torch.rand(400, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    reps = [representations(net(s), x) for s in range(4)]
    print("cka_matrices: 4 checkpoints, 2 layers of 8,192 features, 400 images, one thread")
    for debiased in (False, True):
        t0 = time.perf_counter()
        gram = {k: _gram_cka([r[k] for r in reps], debiased) for k in reps[0]}
        tg = time.perf_counter() - t0
        t0 = time.perf_counter()
        err = 0.0
        for k in reps[0]:
            feats = [r[k] for r in reps]
            C = [_centred(f) for f in feats]
            for i in range(4):
                for j in range(i + 1, 4):
                    if debiased:  # the feature-space sums (cka() itself works in example space here)
                        X, Y = feats[i].double(), feats[j].double()
                        v = float(_cka_compute(_cka_update(X, Y, X.mean(0), Y.mean(0), True), True))
                    else:
                        v = float(torch.linalg.matrix_norm(C[i].T @ C[j]) ** 2
                                  / (torch.linalg.matrix_norm(C[i].T @ C[i]) * torch.linalg.matrix_norm(C[j].T @ C[j])))
                    err = max(err, abs(v - gram[k][i, j]))
        tf = time.perf_counter() - t0
        print(f"  {'debiased' if debiased else 'linear':9s} example space {tg:6.2f} s   feature space {tf:6.2f} s   "
              f"ratio {tg / tf:.3f}x   largest difference {err:.1e}")


if __name__ == "__main__":
    main()
