"""Exact partitions of a digits CNN and of a 3x32x32 residual net on planes through three inputs,
against the float32 forward pass of a 1000x1000 grid of the same plane, on one CPU thread, in
the same run.

Run: ``python benchmarks/bench_cnn.py [--half 0.25 0.5 1.0] [--trained 1000] [--res-half 0.004 0.008] [--repeat 2]
[--device cuda] [--checks]``

The CNN (issue 10): 1x8x8 -> Conv 16 (3x3, pad 1) -> ReLU -> MaxPool 2 -> Conv 32 (3x3, pad 1)
-> ReLU -> Linear 10, ``torch.manual_seed(0)`` default init; the plane through sklearn digits
0, 1, 2 (scaled to [0, 1]); the box ``(0, h, 0, h)`` in plane coordinates for each ``--half`` h
(h = 1 is the triangle of the three digits and its mirror); with ``--trained N`` (default 1000) the same
net trained N steps on the digits (:func:`trained_cnn`), what a user partitions after training: its
regions are denser (about 2.4x at h = 1) and more of them come from the first
conv -> ReLU -> max-pool stage. Target (issue 10): partition / grid
<= 0.1x, at most 0.25x. The grid pass costs the same for every box while the partition grows with
its regions, so the ratio is printed for each box (the default boxes hold about 3k, 18k and 61k
regions). Prints regions, seconds (the least of ``--repeat`` runs, and the first run's: memory the process
has not touched yet costs page faults, which are slow on some virtual machines), and the ratio
partition / grid. (On the development VM the first call's extra second is system time: the kernel
making the transparent huge pages numpy asks for with madvise. With
``np._core.multiarray._set_madvise_hugepage(False)`` the (0, 1)^2 box took 1.67 s first and 1.61 s
after, against 2.40 s and 1.36-1.63 s with them; the trained net's (0, 1)^2 box 4.6-6.8 s first
against 7.4-9.3 s, its later calls alike. The environment variable ``NUMPY_MADVISE_HUGEPAGE=0``
does the same for a process; it is left to the user: with 4 KB pages the MLPs of
``bench_partition`` ran 4-22% slower on every call, first ones included.)

The residual net (issue 10): 3x32x32 -> Conv 16 (3x3, pad 1) -> ReLU -> two blocks
``relu(x + conv(relu(conv(x))))`` of 16 channels -> AdaptiveAvgPool 1 -> Linear 10,
``torch.manual_seed(0)``; the plane through three uniform random images (seed 1); boxes
``(0, h, 0, h)`` for each ``--res-half`` h. Its float32 grid pass costs minutes on one thread, so
it is timed on ``--res-grid`` of the 10^6 grid points (in the same batches)
and scaled to 10^6 (the forward pass costs the same per point; printed as ``grid s*``).

``floor s`` / ``x floor``: a float64 forward pass of the partition's vertices through the network
(the engine's own layers on the plane, :func:`floor`) and partition / that pass, as
``bench_partition`` prints it: every vertex through every layer, so an exact method that passes
each vertex only through the layers after the one that made it can be below it (the MLPs there are
at 0.3-0.7x), but it shows what one evaluation of the output's vertices costs next to the grid.

``--checks``: five more columns, ``verify()`` and ``affine_maps()`` of the box's partition (seconds,
and as ratios to the partition's) and the process's peak memory (MB) after them (both check every
region with a forward pass of its corners, or three maps per region, in bounded chunks).

``--device cuda``: three more columns, the partition with ``device=`` (each layer's forward pass of
the vertices there), the grid pass on that device (the points moved there untimed, each batch
synchronised; the CPU grid's points, scaled alike) and partition (CPU) / that grid: the baseline a GPU user would compare with.
"""
from __future__ import annotations

import argparse
import copy
import resource
import time

import torch
from threadpoolctl import threadpool_limits
from sklearn.datasets import load_digits

from splinescope import spatial


def cnn() -> torch.nn.Sequential:
    torch.manual_seed(0)
    L = torch.nn
    return L.Sequential(L.Conv2d(1, 16, 3, padding=1), L.ReLU(), L.MaxPool2d(2), L.Conv2d(16, 32, 3, padding=1),
                        L.ReLU(), L.Flatten(), L.Linear(32 * 16, 10)).eval()


class Block(torch.nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class ResNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.act = torch.nn.ReLU()
        self.block1, self.block2 = Block(16), Block(16)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.pool(self.block2(self.block1(self.act(self.stem(x))))).flatten(1))


def trained_cnn(steps: int) -> torch.nn.Sequential:
    """:func:`cnn` trained on all 1,797 digits (1x8x8 images) for ``steps`` Adam steps (lr 2e-3,
    batches of 256, seed 0; :func:`splinescope.spatial.train.train`): the network a user
    partitions after training."""
    from splinescope.spatial.data import digits
    from splinescope.spatial.train import train

    X, y = digits()
    net = cnn()
    train(net, X.reshape(-1, 1, 8, 8), y, steps=steps, lr=2e-3, batch_size=256, checkpoints=[steps], seed=0,
          progress=False)
    return net.eval()


def resnet() -> ResNet:
    torch.manual_seed(0)
    return ResNet().eval()


GRID_BATCH = 10_000
"""Grid points per forward call on a device."""
GRID_BATCHES = (1_000, 2_000, 10_000)
"""The batch sizes the CPU grid pass is timed with; the fastest counts. On this VM page faults
decide which is fastest, and it changes with the state of the process's memory: the digits
CNN's pass took 3.1-3.5 s in batches that reused memory and 8-10 s (2.5-4 million faults) in
batches that did not, with 1,000, 5,000 or 10,000 points alike. The fastest is the fair
baseline."""


def grid_best(net, plane, h, points: int = 1_000_000) -> float:
    """The fastest CPU grid pass over :data:`GRID_BATCHES` (see :func:`grid_forward`)."""
    return min(grid_forward(net, plane, h, points, batch=b) for b in GRID_BATCHES)


def grid_forward(net, plane, h, points: int = 1_000_000, device: str = "cpu", batch: int = GRID_BATCH) -> float:
    """Seconds of the float32 forward pass of the 1000x1000 grid of (0, h)^2 (its first ``points``
    points, scaled to all of them), in batches of ``batch`` points lifted one at a time
    (the lifting and the move to ``device`` are not timed)."""
    g = torch.linspace(0, h, 1000, dtype=torch.float64)
    st = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)[:points].numpy()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(st), batch):
            X = torch.tensor(plane.lift(st[i:i + batch]), dtype=torch.float32).reshape((-1,) + plane.shape)
            X = X.to(device)
            t = time.perf_counter()
            net(X)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
            total += time.perf_counter() - t
    return total * (1_000_000 / len(st))


def floor(net, plane, vertices, repeat: int) -> float:
    """Seconds (the least of ``repeat``) of a float64 forward pass of the partition's vertices
    through the network as the engine holds it (:func:`splinescope.spatial._net.parse`, on the
    plane), in chunks of rows whose widest layer holds 4M values (32 MB: larger temporaries are
    fresh pages each time; the residual net's vertices took 18.7 s in chunks of 2,000 rows and
    5.4 s in chunks of 128): every vertex through every layer, where the engine passes each vertex
    only through the layers after the one that made it (as ``bench_partition``'s floor)."""
    from splinescope.spatial._net import parse

    pnet = parse(net, in_shape=plane.shape).restrict(plane.origin, plane.basis)
    rows = max(16, (1 << 22) // max(layer.width for layer in pnet.layers))
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(0, len(vertices), rows):
            pnet.forward(vertices[i: i + rows])
        best = min(best, time.perf_counter() - t)
    return best


def checks(net, plane, h, tp: float) -> str:
    """``--checks``: seconds of ``verify()`` and of ``affine_maps()`` on the box's partition, as
    ratios to the partition's seconds (``tp``), and the process's peak memory after them (MB)."""
    p = spatial.partition(net, (0, h, 0, h), plane=plane)
    t = time.perf_counter()
    ok = p.verify(raise_on_error=False).ok
    tv = time.perf_counter() - t
    t = time.perf_counter()
    p.affine_maps()
    tm = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f" {tv:>8.2f} {tv / tp:>6.1f}x {tm:>7.2f} {tm / tp:>6.1f}x {peak:>7.0f}{'' if ok else ' VERIFY FAILED'}"


def run(name, net, plane, halves, repeat, points=1_000_000, device="cpu", check=False) -> None:
    spatial.partition(net, (0, halves[0] / 10, 0, halves[0] / 10), plane=plane)  # warm: tracing, imports
    star = "*" if points < 1_000_000 else ""
    gpu = device != "cpu"
    if gpu:  # warm the device too
        spatial.partition(net, (0, halves[0] / 10, 0, halves[0] / 10), plane=plane, device=device)
        grid_forward(copy.deepcopy(net).to(device), plane, halves[0], GRID_BATCH, device)
    extra = f" {'dev part s':>10} {'dev grid s' + star:>10} {'ratio dev':>9}" if gpu else ""
    if check:
        extra += f" {'verify s':>8} {'/part':>7} {'maps s':>7} {'/part':>7} {'peak MB':>7}"
    print(f"{name}\n{'box':>14} {'regions':>8} {'partition s':>12} {'first s':>8} {'grid s' + star:>8} {'ratio':>7}"
          f" {'floor s':>8} {'x floor':>7}" + extra)
    for h in halves:
        tp, tg, td, tgd, n = [], [], [], [], 0
        for _ in range(repeat):  # the partitions one after another, then the grid passes
            t = time.perf_counter()
            p = spatial.partition(net, (0, h, 0, h), plane=plane)
            tp.append(time.perf_counter() - t)
            n = len(p)
        tf = floor(net, plane, p.vertices, repeat)
        for _ in range(repeat):
            tg.append(grid_best(net, plane, h, points))
            if gpu:
                t = time.perf_counter()
                nd = len(spatial.partition(net, (0, h, 0, h), plane=plane, device=device))
                td.append(time.perf_counter() - t)
                tgd.append(grid_forward(copy.deepcopy(net).to(device), plane, h, points, device))
                if nd != n:
                    print(f"  REGION COUNT ON {device}: {nd} != {n}")
        extra = f" {min(td):>10.2f} {min(tgd):>10.3f} {min(tp) / min(tgd):>8.3g}x" if gpu else ""
        if check:
            extra += checks(net, plane, h, min(tp))
        print(f"{f'(0,{h})^2':>14} {n:>8} {min(tp):>12.2f} {tp[0]:>8.2f} {min(tg):>8.2f} {min(tp) / min(tg):>7.3f}x"
              f" {tf:>8.2f} {min(tp) / tf:>6.2f}x" + extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--trained", type=int, nargs="*", default=[1000],
                    help="also time the digits CNN after this many training steps (each; none: skip)")
    ap.add_argument("--res-half", type=float, nargs="*", default=[0.004, 0.008])
    ap.add_argument("--res-grid", type=int, default=20_000, help="grid points timed for the residual net")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="also partition and time the grid on this torch device (cuda)")
    ap.add_argument("--checks", action="store_true",
                    help="also time verify() and affine_maps() on each box (ratios to the partition) and print the peak memory")
    a = ap.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS too: one thread for every method, as torch
    d = load_digits().data.reshape(-1, 1, 8, 8) / 16.0
    run("digits CNN 1x8x8, plane through digits 0, 1, 2", cnn(), spatial.Plane.through(d[0], d[1], d[2]),
        a.half, a.repeat, device=a.device, check=a.checks)
    for steps in a.trained:
        run(f"digits CNN after {steps} training steps, same plane", trained_cnn(steps),
            spatial.Plane.through(d[0], d[1], d[2]), a.half, a.repeat, device=a.device, check=a.checks)
    if a.res_half:
        X = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
        run("residual net 3x32x32 (two blocks of 16 channels), plane through three random images", resnet(),
            spatial.Plane.through(X[0], X[1], X[2]), a.res_half, a.repeat, a.res_grid, device=a.device,
            check=a.checks)


if __name__ == "__main__":
    main()
