"""report.html in a real browser: headless Chromium driven by Playwright.

The page of a shipped disaggregated spec opens with no console error, every section and
plot is there and drawn, the timeline zooms, and a screenshot is saved (in the test's
temporary folder, or in $TOKENSIM_SCREENSHOTS when set). Skips, saying why, where the
Playwright package or the system's Chromium is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

playwright = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH: install Debian's `chromium` package to run the browser tests",
)

SECTIONS = (
    "deployment",
    "summary",
    "time",
    "latency",
    "load",
    "kv",
    "batches",
    "transfers",
    "timeline",
    "pools",
    "spec",
)


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TOKENSIM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, requests


@pytest.fixture(scope="module")
def disaggregated(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "disaggregated"
    result = subprocess.run(
        [sys.executable, "-m", "tokensim", "run", "specs/disaggregated_8gpu.tsim", "-o", out, "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_report_opens_with_every_section_drawn(browser, disaggregated, tmp_path):
    page, errors, requests = _open(browser, disaggregated / "report.html")
    assert errors == []
    assert all(url.startswith("file:") for url in requests), requests  # nothing fetched
    for section in SECTIONS:
        box = page.locator(f"section#{section}").bounding_box()
        assert box and box["height"] > 50, section
    charts = page.locator("svg.chart")
    assert charts.count() >= 14
    for k in range(charts.count()):
        chart = charts.nth(k)
        name = chart.get_attribute("aria-label") or str(k)
        box = chart.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 60, name
        drawn = chart.locator("path, rect, circle, polyline, line").count()
        assert drawn > 3, name
        assert "no data" not in chart.text_content(), name
    cards = page.locator(".card")
    assert cards.count() >= 7
    assert page.locator(".card.ok").count() + page.locator(".card.miss").count() >= 3
    assert page.locator("#spec .line").count() > 20
    page.screenshot(path=str(_shots(tmp_path) / "report-top.png"))
    page.screenshot(path=str(_shots(tmp_path) / "report-full.png"), full_page=True)


def test_timeline_zooms_and_resets(browser, disaggregated, tmp_path):
    page, errors, _ = _open(browser, disaggregated / "report.html")
    plot = page.locator("svg[data-t0] svg.gantt-plot")
    before = plot.get_attribute("viewBox")
    page.locator("#timeline").scroll_into_view_if_needed()
    box = plot.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(100)  # let the wheel event's handler run (not a timing assertion)
    zoomed = plot.get_attribute("viewBox")
    assert float(zoomed.split()[2]) < float(before.split()[2])
    page.locator("#timeline").screenshot(path=str(_shots(tmp_path) / "timeline-zoomed.png"))
    page.locator("[data-zoom=reset]").first.click()
    after = [float(v) for v in plot.get_attribute("viewBox").split()]
    assert after == pytest.approx([float(v) for v in before.split()], rel=1e-9, abs=1e-9)
    assert errors == []


def _swept(tmp_path: Path, sweep: str, command: str, *args: str) -> Path:
    """``tokensim COMMAND`` on single_gpu_8b.tsim with ``sweep`` added; its result folder."""
    spec = tmp_path / f"{command}.tsim"
    spec.write_text((ROOT / "specs" / "single_gpu_8b.tsim").read_text() + f"\n{sweep}\n")
    out = tmp_path / command
    result = subprocess.run(
        [sys.executable, "-m", "tokensim", command, spec, *args, "-o", out, "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_sweep_index_opens_and_links_its_points(browser, tmp_path):
    sweep = "sweep { workload.requests in 40, 80, 120; deployment.serve.batching.max_seqs in 64 }"
    out = _swept(tmp_path, sweep, "run")
    page, errors, _ = _open(browser, out / "index.html")
    assert errors == []
    assert page.locator("svg.chart").count() >= 3
    links = page.locator("#point-table a")
    assert links.count() == 3
    # the table fits the page at its width: no column scrolled out of sight
    fits = "e => e.scrollWidth <= e.clientWidth"
    assert page.locator("#points .scroll").evaluate(fits)
    links.first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/report.html") and page.locator("section#summary").count() == 1
    page.screenshot(path=str(_shots(tmp_path) / "sweep-point.png"))


@pytest.mark.parametrize(
    "sweep",
    [
        # a zip block is one dimension: one line through its points, not a line per value
        "sweep { zip { workload.requests in 40, 80; workload.seed in 1, 2 } }",
        # names: bars
        "sweep { cluster.n0.gpus in H100_SXM, H200 }",
        # a point per line: markers
        "sweep { workload.requests in 40, 80; workload.seed in 1, 2 }",
    ],
)
def test_no_chart_of_a_sweep_index_is_empty(browser, tmp_path, sweep):
    out = _swept(tmp_path, sweep, "run")
    page, errors, _ = _open(browser, out / "index.html")
    assert errors == []
    charts = page.locator("svg.chart")
    assert charts.count() >= 3
    for k in range(charts.count()):
        marks = charts.nth(k).locator("circle, g.bars rect")
        assert marks.count() >= 2, f"chart {k} of {sweep!r} draws nothing"
    page.screenshot(path=str(_shots(tmp_path) / "sweep-kind.png"), full_page=True)


@pytest.mark.parametrize(
    "sweep, marks",
    [
        # GPUs of different prices: each figure against the cost
        ("sweep { cluster.n0.gpus in H100_SXM, H200 }", "circle"),
        # the same deployment, so the same cost: a bar per configuration, not one column
        ("sweep { workload.requests in 100, 200 }", "g.bars rect"),
    ],
)
def test_search_page_opens_and_links_the_answer(browser, tmp_path, sweep, marks):
    out = _swept(tmp_path, sweep, "search", "--goal", "min-cost", "--seeds", "1")
    page, errors, _ = _open(browser, out / "index.html")
    assert errors == []
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    for k in range(3):  # every passing configuration, in each chart
        assert charts.nth(k).locator(marks).count() == 2, f"chart {k}"
    answer = page.locator("#search-table tr.answer a")
    assert answer.count() == 1
    page.screenshot(path=str(_shots(tmp_path) / "search.png"), full_page=True)
    answer.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/report.html") and page.locator("section#summary").count() == 1


def test_validation_page_draws_each_runs_cdfs(browser, tmp_path):
    import json

    from test_replay import SPEC, measured

    work = "arrivals burst; lengths fixed 200 -> 30; requests 40"
    result = measured(tmp_path, "a.json", "engine vllm_0_6", work, "inf")
    summary = {"request_rate": 2.0, "duration": 10.0, "completed": 20, "median_ttft_ms": 50.0}
    summary |= {"total_input_tokens": 4000, "total_output_tokens": 600, "p90_ttft_ms": 90.0}
    (tmp_path / "b.json").write_text(json.dumps(summary))
    (spec := tmp_path / "s.tsim").write_text(SPEC)
    page_path = tmp_path / "validation.html"
    done = subprocess.run(
        [sys.executable, "-m", "tokensim", "validate", "--bench", result, str(tmp_path / "b.json"),
         str(spec), "-o", str(page_path), "-q"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page, errors, requests = _open(browser, page_path)
    assert errors == [] and all(url.startswith("file:") for url in requests)
    assert page.locator("section[id^=run]").count() == 2
    charts = page.locator("svg.chart")
    assert charts.count() == 8  # TTFT, TPOT, ITL, E2E of each run
    for k in range(charts.count()):
        box = charts.nth(k).bounding_box()
        assert box and box["width"] > 200 and box["height"] > 60
    # the run with every request measured: two curves a chart; the summary: one, and guides
    assert page.locator("#run0 svg.chart").first.locator("path.series").count() == 2
    assert page.locator("#run1 svg.chart").first.locator("path.series").count() == 1
    page.screenshot(path=str(_shots(tmp_path) / "validation.png"), full_page=True)
