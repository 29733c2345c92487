"""The viewer's page for a large run: file size, time to open in a browser, time to switch frames.

Run: ``python benchmarks/bench_viewer.py [--frames 40] [--width 128] [--keep run.html]``

Builds ``--frames`` networks 2 -> [w, w, w] -> 1 with LeakyReLU(0.01) (``torch.manual_seed(seed)``,
default init, seeds 0, 1, ...; the output shifted so that it is zero at its median over the box, so
a decision boundary crosses it), about 20,000 regions each on [-1, 1]^2 at w = 128, with 400
labelled data points, 200 held-out ones and a synthetic LC log, and writes their page with
:func:`render.viewer` (timed). Then, in headless Chromium (``/usr/bin/chromedriver``, selenium),
it times the page from navigation to the first frame drawn (``window.__ready``, set after the
first frame is painted) and the switch to other frames: the first visit (decode and draw) and a
second one (decoded already, draw only). Budgets: the file under 30 MB, the first frame under 2 s.
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from splinescope import render

SIZE_MB, OPEN_S = 30.0, 2.0
L = torch.nn


def net_for(width: int, seed: int) -> torch.nn.Sequential:
    """2 -> [w, w, w] -> 1, LeakyReLU(0.01), its output zero at its median over [-1, 1]^2."""
    torch.manual_seed(seed)
    net = L.Sequential(L.Linear(2, width), L.LeakyReLU(0.01), L.Linear(width, width), L.LeakyReLU(0.01),
                       L.Linear(width, width), L.LeakyReLU(0.01), L.Linear(width, 1))
    grid = torch.cartesian_prod(torch.linspace(-1, 1, 41), torch.linspace(-1, 1, 41))
    with torch.no_grad():
        net[-1].bias -= net(grid)[:, 0].median()
    return net


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait_ready(driver, timeout: float = 60.0) -> float:
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        ready = driver.execute_script("return window.__ready || null")
        if ready is not None:
            return float(ready) / 1000
        time.sleep(0.01)
    errors = driver.execute_script("return window.__errors")
    raise TimeoutError(f"the page drew no frame in {timeout} s: {errors}")


SWITCH = """const done = arguments[arguments.length - 1];
const t = performance.now();
window.__viewer.show(arguments[0])
  .then(() => requestAnimationFrame(() => setTimeout(() => done(performance.now() - t))));"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--opens", type=int, default=3, help="times the page is opened (best and median shown)")
    ap.add_argument("--keep", default=None, help="also copy the page here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    Xt = rng.uniform(-1, 1, (200, 2))
    yt = (Xt[:, 0] * Xt[:, 1] > 0).astype(int)
    steps = [0] + [int(round(s)) for s in np.geomspace(1, 30000, args.frames - 1)]
    log = [{"step": s, "lc_train": 5 + math.log1p(s), "lc_test": 4 + 0.8 * math.log1p(s), "lc_random": 3.0}
           for s in steps]
    ckpts = [(s, net_for(args.width, seed)) for seed, s in enumerate(steps)]

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "bench.html"
        t = time.perf_counter()
        page = render.viewer(ckpts, (-1, 1, -1, 1), out, data=(X, y), test=(Xt, yt), log=log, progress=False)
        build = time.perf_counter() - t
        mb = page.size / 1e6
        print(f"frames {len(page.steps)}, regions {int(page.n_regions.min())}..{int(page.n_regions.max())} "
              f"(mean {page.n_regions.mean():.0f}), written in {build:.1f} s")
        print(f"file size      {mb:8.2f} MB   budget {SIZE_MB:.0f} MB   {'ok' if mb < SIZE_MB else 'OVER'}")
        if args.keep:
            Path(args.keep).write_bytes(out.read_bytes())

        driver = browser()
        try:
            opens = []
            for _ in range(args.opens):
                driver.get("about:blank")
                driver.get(out.as_uri())
                opens.append(wait_ready(driver))
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            ok = "ok" if min(opens) < OPEN_S else "OVER"
            print(f"open -> frame  {min(opens):8.3f} s    budget {OPEN_S:.0f} s    {ok}   (median of {len(opens)}: "
                  f"{statistics.median(opens):.3f} s; from navigation start to the first frame painted)")
            targets = list(range(1, min(len(page.steps), 11)))
            cold = [driver.execute_async_script(SWITCH, i) for i in targets]
            warm = [driver.execute_async_script(SWITCH, i) for i in targets]
            for what, ms in (("first visit (decode + draw)", cold), ("painted already (copy)", warm)):
                print(f"switch, {what:28s} median {statistics.median(ms):6.0f} ms  max {max(ms):6.0f} ms")
            print(f"console errors: {len(errors)}" + "".join(f"\n  {e['message']}" for e in errors))
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
