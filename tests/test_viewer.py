"""Tests of render/_viewer.py: the page (self-contained, its frames decoded here against spatial's
partitions), errors, the ``view`` subcommand, and the page in headless Chromium: it loads without
console errors, the slider changes the frame, the hovered region shows spatial's numbers."""
import json
import os
import re
import shutil
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from splinescope import render, spatial
from splinescope.render import _viewer
from splinescope.render.cli import main
from splinescope.spatial.checkpoints import load_checkpoints
from splinescope.spatial.migration import region_distances
from splinescope.spatial.runs import LOG_FILE, append_log, load_run_data
from splinescope.spatial.train import ToyRun, toy_mlp, train_toy

torch.set_num_threads(1)

BOUNDS = (-1.5, 2.5, -1.2, 1.7)  # around the moons
STEPS = [0, 1, 30, 300]
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A toy run folder (checkpoints, arch.json, data.npz with held-out points) and its log."""
    d = tmp_path_factory.mktemp("viewer") / "moons"
    train_toy(ToyRun(n=64, test=32, width=8, depth=2, steps=300, checkpoints=STEPS), d, progress=False)
    for s in STEPS:
        append_log(d, {"step": s, "lc_train": 2.0 + s / 100, "lc_test": 1.5 + s / 200, "lc_random": 1.0,
                       "lc_train/1": 9.0, "loss": 0.5})
    return d


@pytest.fixture(scope="module")
def page(run):
    return render.viewer(run, BOUNDS, run.parent / "run.html", progress=False)


@pytest.fixture(scope="module")
def parts(run):
    """spatial's partition of each checkpoint and its region distances to the run's data."""
    X, _ = load_run_data(run)
    out = []
    for step, m in load_checkpoints(run):
        p = spatial.partition(m, BOUNDS)
        out.append((step, p, region_distances(p, X)))
    return out


def _meta(text):
    return json.loads(re.search(r'<script type="application/json" id="meta">(.*?)</script>', text, re.S).group(1))


def _frames(text):
    import base64
    return [zlib.decompress(base64.b64decode(b))
            for b in re.findall(r'<script type="application/octet-stream" id="frame-\d+">(.*?)</script>', text)]


# ---- an independent reading of the frame format (see the docstring of render/_viewer.py)

def _varints(b, n):
    out, pos = [], 0
    for _ in range(n):
        v = shift = 0
        while True:
            c = b[pos]
            pos += 1
            v |= (c & 127) << shift
            shift += 7
            if not c & 128:
                break
        out.append(v)
    assert pos == len(b), "a section has bytes left over"
    return np.array(out, dtype=np.int64)


def _unzig(u):
    return np.where(u % 2 == 1, -(u + 1) // 2, u // 2)


def _decode(raw):
    h = np.frombuffer(raw[:64], "<u4").astype(np.int64)
    version, R, V, NC, S, K, N, NV = h[:8]
    assert version == 1
    ends = 64 + np.cumsum(h[8:])
    sec = [raw[a:b] for a, b in zip(np.concatenate([[64], ends[:-1]]), ends)]
    sizes = _varints(sec[0], R)
    vq = np.cumsum(_unzig(_varints(sec[1], 2 * V)).reshape(-1, 2), axis=0)
    idx, fresh = [], 0
    for c in _varints(sec[2], NC):
        idx.append(fresh if c == 0 else fresh - c)
        fresh += c == 0
    perm = np.cumsum(_unzig(_varints(sec[3], R)))
    segs = np.cumsum(_unzig(_varints(sec[4], 4 * S)).reshape(-1, 2), axis=0).reshape(-1, 2, 2)
    PB, VB = (N + 7) // 8, (NV + 7) // 8
    pat = np.frombuffer(sec[6], np.uint8)
    shared, mask = np.unpackbits(pat[:PB], count=N), np.unpackbits(pat[PB:2 * PB], count=N).astype(bool)
    rows = np.bitwise_xor.accumulate(pat[2 * PB:].reshape(R, VB), axis=0)
    bits = np.tile(shared, (R, 1))
    bits[:, mask] = np.unpackbits(rows, axis=1, count=NV)
    nums = np.frombuffer(sec[7], np.uint8).reshape(4, -1)
    m = (nums[0].astype(np.int64) | (nums[1].astype(np.int64) << 8)).astype(np.uint16).view(np.int16)
    e = (nums[2].astype(np.int64) | (nums[3].astype(np.int64) << 8)).astype(np.uint16).view(np.int16)
    return dict(R=R, K=K, sizes=sizes, vq=vq, idx=np.array(idx), perm=perm, segs=segs,
                colors=np.frombuffer(sec[5], np.uint8).reshape(R, 3), bits=bits, m=m.reshape(-1, R),
                e=e.reshape(-1, R))


def _shown(m, e):
    """The text the page shows for m * 10**(e - 3), by Python's rule."""
    if e == _viewer._INF_E:
        return "inf" if m > 0 else "-inf"
    if e == _viewer._NAN_E:
        return "nan"
    return f"{m * 10.0 ** (e - 3):.4g}"


def _dequantise(q, bounds):
    x0, x1, y0, y1 = bounds
    return np.stack([x0 + q[..., 0] / 65535 * (x1 - x0), y0 + q[..., 1] / 65535 * (y1 - y0)], -1)


# ---- the page in Python

def test_page_is_one_self_contained_file(page, run):
    text = page.path.read_text(encoding="utf-8")
    assert page.size == page.path.stat().st_size < 1_000_000
    assert "http://" not in text and "https://" not in text  # nothing fetched: no src, href or import
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"(?!data:)|@import|url\(", text)
    assert not list(run.parent.glob(".run.html.*"))  # the atomic write left no temporary file
    meta = _meta(text)
    assert meta["steps"] == STEPS and page.steps == STEPS and len(_frames(text)) == len(STEPS)
    assert meta["title"] == "moons" and "<title>moons · splinescope</title>" in text
    assert list(meta["lc"]) == ["lc_random", "lc_test", "lc_train"]  # not lc_train/1, not loss
    assert meta["lc"]["lc_train"] == [[s, 2.0 + s / 100] for s in STEPS]
    assert len(meta["data"]["X"]) == 64 and len(meta["test"]["X"]) == 32 and set(meta["test"]["y"]) == {0, 1}
    assert meta["migration"]["n_regions"] == page.n_regions.tolist()
    assert re.fullmatch(r"ViewerPage\(4 frames, regions \d+\.\.\d+, 0\.\d\d MB, path=.*run\.html\)", repr(page))


def test_frames_hold_spatials_partitions(page, parts):
    assert len(parts[-1][1].boundary)  # a boundary crosses the slice, at least at the end
    for raw, (step, p, d) in zip(_frames(page.path.read_text()), parts):
        f = _decode(raw)
        R = len(p)
        assert f["R"] == R and sorted(f["perm"]) == list(range(R))
        perm = f["perm"]
        assert (f["sizes"] == np.diff(p.offsets)[perm]).all()
        corners = _dequantise(f["vq"][f["idx"]], BOUNDS)
        expected = np.concatenate([p.polygon(i) for i in perm])
        assert np.abs(corners - expected).max() <= 0.5 * 4.0 / 65535 + 1e-12  # half a quantum of the box
        segs = _dequantise(f["segs"], BOUNDS)
        assert len(segs) == len(p.boundary) and np.abs(segs - p.boundary).max(initial=0) <= 0.5 * 4.0 / 65535 + 1e-12
        assert (np.packbits(f["bits"], axis=1) == p.patterns[perm]).all()
        assert (f["colors"] == np.rint(render.region_colors(p.region_keys()[perm])[:, :3] * 255)).all()
        A = p.affine_maps()
        values = [p.areas(), d[:, 0], d[:, 1]] + [A[:, k, j] for k in range(p.n_outputs) for j in range(3)]
        for col, v in enumerate(values):
            shown = [_shown(m, e) for m, e in zip(f["m"][col], f["e"][col])]
            assert shown == [f"{x:.4g}" for x in v[perm]]


def test_decimal4_has_the_digits_of_python_formatting():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(3000) * 10.0 ** rng.integers(-30, 30, 3000)
    ties = [1234.5, 1235.5, 12345.0, 99995.0, 9999.5, 0.5, 0.125, -2.5e-3]
    edges = [10.0 ** k for k in range(-12, 13)] + [np.nextafter(10.0 ** k, 0) for k in range(-12, 13)]
    extremes = [5e-324, 2.2250738585072014e-308, 1e-300, 1.7976931348623157e308, 9.9995e307, -1e-310]
    v = np.concatenate([v, ties, edges, extremes, -np.asarray(edges)])
    m, e = _viewer._decimal4(v)
    expected = [f"{x:.3e}".split("e") for x in v]
    assert m.tolist() == [int(d.replace(".", "")) for d, _ in expected]
    assert e.tolist() == [int(x) for _, x in expected]
    m, e = _viewer._decimal4([0.0, -0.0, float("nan"), float("inf"), -float("inf")])
    assert m.tolist() == [0, 0, 0, 1, -1] and e.tolist() == [0, -32767, -32768, 32767, 32767]


def test_page_of_modules_without_data_or_log(tmp_path):
    nets = [(0, toy_mlp(4, 1, seed=0)), (5, toy_mlp(4, 1, seed=1))]
    page = render.viewer(nets, out=tmp_path / "m.html", title="two <nets>", progress=False)
    text = page.path.read_text()
    meta = _meta(text)
    assert meta["lc"] == {} and meta["lc_note"] == "No training log given: no LC panel."
    assert meta["data"] is None and meta["test"] is None and meta["migration"]["density_data"] == [None, None]
    assert "<title>two &lt;nets&gt; · splinescope</title>" in text
    f = _decode(_frames(text)[0])
    assert all(_shown(m, e) == "nan" for m, e in zip(f["m"][2], f["e"][2]))  # no data: no distance to it


def test_page_of_a_folder_without_a_log(run, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns(LOG_FILE))
    page = render.viewer(bare, BOUNDS, tmp_path / "bare.html", data=None, progress=False)
    meta = _meta(page.path.read_text())
    assert meta["lc"] == {} and meta["lc_note"] == "No log.jsonl in bare: no LC panel." and meta["data"] is None
    page = render.viewer([toy_mlp(4, 1)], out=tmp_path / "x.html", log=[{"step": 0, "loss": 1.0}], progress=False)
    assert _meta(page.path.read_text())["lc_note"] == "The training log has no lc_* columns: no LC panel."


def test_errors(run, tmp_path):
    net = [toy_mlp(4, 1)]
    with pytest.raises(ValueError, match=r"^'\.gif' is not a supported output format, must be '\.html'$"):
        render.viewer(net, out=tmp_path / "x.gif")
    with pytest.raises(ValueError, match=r"^'x' is not a supported output format, must be '\.html'$"):
        render.viewer(net, out=tmp_path / "x")
    with pytest.raises(TypeError, match="out must be a path, got int"):
        render.viewer(net, out=3)
    with pytest.raises(FileNotFoundError, match=r"the folder of '.*no/x\.html' does not exist"):
        render.viewer(net, out=tmp_path / "no" / "x.html")
    with pytest.raises(FileNotFoundError, match="missing: no such checkpoint file or folder"):
        render.viewer(tmp_path / "missing", out=tmp_path / "x.html", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: holds no checkpoint files \(looked for \.pt"):
        render.viewer(tmp_path / "empty", out=tmp_path / "x.html", progress=False)
    with pytest.raises(ValueError, match=r"'everything' is not a valid log option, must be 'auto', None or a list"):
        render.viewer(net, out=tmp_path / "x.html", log="everything")
    with pytest.raises(TypeError, match=r"log must be 'auto', None or a list of dicts with a 'step' .*got int"):
        render.viewer(net, out=tmp_path / "x.html", log=5)
    with pytest.raises(ValueError, match=r"'all' is not a valid data option, must be 'auto', None, an \(X, y\) pair"):
        render.viewer(net, out=tmp_path / "x.html", data="all")
    assert not list(tmp_path.glob("*.html"))


def test_cli_view(run, tmp_path, capsys):
    out = tmp_path / "cli.html"
    args = ["view", str(run), "--bounds", *map(str, BOUNDS), "--out", str(out), "--title", "moons run", "--quiet"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(rf"wrote {re.escape(str(out))} \(0\.\d\d MB\): 4 frames, \d+\.\.\d+ regions", line)
    assert _meta(out.read_text())["title"] == "moons run"
    assert main(["view", str(run), "--out", str(tmp_path / "x.gif"), "--quiet"]) == 2
    assert ("splinescope view: error: '.gif' is not a supported output format, must be '.html'"
            in capsys.readouterr().err)
    assert main(["view", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y.html"), "--quiet"]) == 2
    assert "nowhere: no such checkpoint file or folder" in capsys.readouterr().err


# ---- the page in a browser: one headless Chromium for the module

@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium not installed: pip install 'selenium>=4' (the test extra)")
    if not os.path.exists(CHROMEDRIVER) or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium/chromedriver not installed: apt-get install chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _open(driver, path):
    driver.get(Path(path).as_uri())
    _until(driver, lambda: driver.execute_script("return window.__ready || null") is not None, "the first frame")


def _until(driver, ok, what, timeout=20.0):
    t = time.monotonic()
    while not ok():
        if time.monotonic() - t > timeout:
            raise AssertionError(f"waited {timeout} s for {what}; page errors: "
                                 f"{driver.execute_script('return window.__errors')}")
        time.sleep(0.02)


def _errors(driver):
    logged = [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    return logged + driver.execute_script("return window.__errors")


def _text(driver, css):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css).text


def _canvas(driver):
    return driver.execute_script("return document.getElementById('map').toDataURL()")


def _go(driver, key, frame):
    """Move the slider with the keyboard (a real input event); wait for the frame."""
    from selenium.webdriver.common.by import By
    driver.find_element(By.ID, "slider").send_keys(key)
    _until(driver, lambda: driver.execute_script("return window.__viewer.current") == frame, f"frame {frame}")


def test_browser_loads_the_page_without_errors(browser, page, parts):
    _open(browser, page.path)
    assert _errors(browser) == []
    n = len(parts[0][1])
    assert _text(browser, "#frame-label") == f"step 0 · {n:,} regions · 1/4"
    assert _text(browser, "#summary").startswith("4 checkpoints (steps 0..300)")
    assert _text(browser, '#legend-regions [data-series="regions"]') == f"{n:,}"
    assert _text(browser, '#legend-lc [data-series="lc_train"]') == "2 (step 0)"
    assert _text(browser, "#lc-note") == ""


def test_browser_slider_changes_the_frame(browser, page, parts):
    from selenium.webdriver.common.keys import Keys
    _open(browser, page.path)
    first = _canvas(browser)
    _go(browser, Keys.END, 3)
    n = len(parts[3][1])
    assert _text(browser, "#frame-label") == f"step 300 · {n:,} regions · 4/4"
    assert _text(browser, '#legend-regions [data-series="regions"]') == f"{n:,}"
    assert _canvas(browser) != first
    _go(browser, Keys.HOME, 0)
    assert _canvas(browser) == first  # drawn again the same (from the kept bitmap)
    assert _errors(browser) == []


@pytest.mark.parametrize("frame", [0, 3])
def test_browser_hover_shows_the_numbers_of_spatial(browser, page, parts, frame):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, page.path)
    if frame:
        _go(browser, Keys.END, frame)
    _, p, d = parts[frame]
    j = int(np.argmax(p.areas()))  # the largest region: its centroid is far from its edges
    c = p.centroids()[j]
    assert p.locate(c[None])[0] == j
    canvas = browser.find_element(By.ID, "map")
    W, H = canvas.rect["width"], canvas.rect["height"]
    x0, x1, y0, y1 = BOUNDS
    px, py = (c[0] - x0) / (x1 - x0) * W, (y1 - c[1]) / (y1 - y0) * H
    ActionChains(browser).move_to_element_with_offset(canvas, round(px - W / 2), round(py - H / 2)).perform()
    _until(browser, lambda: _text(browser, "#info-region") == str(j), f"region {j} under the pointer")
    assert _text(browser, "#info-area") == f"{p.areas()[j]:.4g}"
    assert _text(browser, "#info-boundary") == f"{d[j, 0]:.4g}"
    assert _text(browser, "#info-data") == f"{d[j, 1]:.4g}"
    A = p.affine_maps()[j]
    shown = [[_text(browser, f'#info-affine [data-k="{k}"][data-j="{i}"]') for i in range(3)] for k in range(len(A))]
    assert shown == [[f"{a:.4g}" for a in row] for row in A]
    assert _text(browser, "#info-pattern-hex") == p.patterns[j].tobytes().hex()
    bits = p.pattern_bits()[j]
    active = [_text(browser, f'#info-layers [data-layer="{l}"]') for l in range(2)]
    assert active == [str(int(bits[:8].sum())), str(int(bits[8:].sum()))]
    assert f"of {len(p):,} regions at step {STEPS[frame]}" in _text(browser, "#info-of")
    assert _errors(browser) == []


def test_browser_curve_click_and_play(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    _open(browser, page.path)
    curve = browser.find_element(By.ID, "curve-density")
    w = curve.rect["width"]
    ActionChains(browser).move_to_element_with_offset(curve, round(w / 2) - 12, 0).click().perform()
    _until(browser, lambda: browser.execute_script("return window.__viewer.current") == 3, "the last checkpoint")
    assert browser.find_element(By.ID, "slider").get_attribute("value") == "3"
    play = browser.find_element(By.ID, "play")
    play.click()  # plays on from the last frame: back to the first, then on
    _until(browser, lambda: browser.execute_script("return window.__viewer.current") in (1, 2), "playing")
    play.click()
    assert play.get_attribute("aria-label") == "play"
    assert _errors(browser) == []


def test_browser_page_without_a_log_says_so(browser, tmp_path):
    page = render.viewer([(0, toy_mlp(4, 1, seed=0)), (9, toy_mlp(4, 1, seed=2))], out=tmp_path / "n.html",
                         progress=False)
    from selenium.webdriver.common.by import By
    _open(browser, page.path)
    assert not browser.find_element(By.ID, "lc-panel").is_displayed()
    assert _text(browser, "#lc-note") == "No training log given: no LC panel."
    assert _text(browser, '#legend-density [data-series="near data"]') == "—"  # no data: no density
    assert _errors(browser) == []
