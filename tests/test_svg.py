"""The SVG charts: tick rules, number formats, chart structure, edge cases and gantt.js."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tokensim.report import svg as charts
from tokensim.report.svg import (
    PALETTE,
    Band,
    Rule,
    Series,
    bar_chart,
    breakdown_chart,
    cdf_chart,
    fmt_number,
    fmt_seconds,
    gantt_chart,
    line_chart,
    nice_ticks,
)

NS = "{http://www.w3.org/2000/svg}"
GANTT_JS = Path(charts.__file__).parent / "templates" / "gantt.js"
KINDS = {"prefill": "#0072B2", "decode": "#E69F00"}
NASTY = 'a<b & "c"'


def find(root, cls: str, tag: str = "g"):
    """The elements ``tag`` whose class list holds ``cls``."""
    return [e for e in root.iter(NS + tag) if cls in e.get("class", "").split()]


def texts(el) -> list[str]:
    return [t.text or "" for t in el.iter(NS + "text")]


def points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def line(**kw):
    x = np.linspace(0, 10, 50)
    series = [Series(f"s{i}", x, np.sin(x) + i + 1) for i in range(kw.pop("n", 3))]
    return line_chart(series, id="tput", title="Throughput", x_label="time", y_label="tok/s", **kw)


CHARTS = {
    "line": line,
    "cdf": lambda: cdf_chart(
        {"ttft": np.linspace(0.01, 0.2, 500), "e2e": np.linspace(0.5, 3, 500)},
        id="cdf",
        title="Latency",
        x_label="latency",
    ),
    "bar": lambda: bar_chart(
        ["a", "b", "c"], {"x": [1, 2, 3], "y": [3, 2, 1]}, id="bars", title="Bars", y_label="n"
    ),
    "breakdown": lambda: breakdown_chart(
        [("req 1", [0.1, 0.5]), ("req 2", [0.2, 0.3])],
        ["queue", "decode"],
        id="bd",
        title="Breakdown",
    ),
    "gantt": lambda: gantt_chart(
        ["i0", "i1"],
        [(0, 0.1, 0.3, "prefill", "b0"), (1, 0.2, 0.9, "decode", "b1")],
        id="gantt",
        title="Batches",
        kinds=KINDS,
        window=(0.0, 1.0),
    ),
}

# Each chart kind given nothing, then only NaN.
EMPTY = {
    "line": lambda: line_chart([], id="e", title="T", x_label="x", y_label="y"),
    "line-nan": lambda: line_chart(
        [Series("s", [1, 2], [math.nan, math.inf])], id="e", title="T", x_label="x", y_label="y"
    ),
    "cdf": lambda: cdf_chart({}, id="e", title="T", x_label="x"),
    "cdf-nan": lambda: cdf_chart({"a": np.array([np.nan, np.nan])}, id="e", title="T", x_label="x"),
    "bar": lambda: bar_chart([], {}, id="e", title="T", y_label="y"),
    "bar-nan": lambda: bar_chart(["a"], {"k": [math.nan]}, id="e", title="T", y_label="y"),
    "breakdown": lambda: breakdown_chart([], ["a"], id="e", title="T"),
    "breakdown-nan": lambda: breakdown_chart([("r", [math.nan])], ["a"], id="e", title="T"),
    "gantt": lambda: gantt_chart([], [], id="e", title="T", kinds={}, window=(0, 1)),
    "gantt-nan": lambda: gantt_chart(
        ["i"], [(0, math.nan, 1.0, "k", "")], id="e", title="T", kinds={}, window=(0, 1)
    ),
}


# --- ticks and number formats ----------------------------------------------------------------


def test_nice_ticks_examples():
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 0.93) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 97) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 11) == [0, 2.5, 5, 7.5, 10, 12.5]
    assert nice_ticks(-0.3, 0.3, 3) == [-0.4, -0.2, 0.0, 0.2, 0.4]
    assert nice_ticks(0, 0) == nice_ticks(0, 1)
    assert nice_ticks(math.nan, 1) == [0.0, 1.0]
    five = nice_ticks(5, 5)
    assert len(five) >= 2 and five[0] <= 5 <= five[-1]


@given(
    lo=st.floats(-1e6, 1e6),
    width=st.floats(1e-6, 1e7),
    n=st.integers(2, 12),
)
def test_nice_ticks_cover_the_range_with_the_smallest_nice_step(lo, width, n):
    assume(width > abs(lo) * 1e-9)
    hi = lo + width
    ticks = nice_ticks(lo, hi, n)
    step = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
    ulps = max(abs(lo), abs(hi)) * 1e-12  # what the ticks' own rounding may be off by
    slack = max(ulps, step * 1e-9)  # float noise at this level is not a value to round out to
    assert ticks[0] <= lo + slack and ticks[-1] >= hi - slack
    assert len(ticks) - 1 <= n + 2
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert all(math.isclose(g, step, rel_tol=1e-6, abs_tol=ulps) for g in gaps)
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-12)
    nice = (1, 2, 2.5, 5, 10)
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in nice)
    # the next smaller nice step would need more than n intervals
    smaller = max(m for m in (0.5, 1, 2, 2.5, 5) if m < mantissa * (1 - 1e-6)) * (step / mantissa)
    assert width / smaller > n * (1 - 1e-6)


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0, "0"),
        (0.00025, "250 µs"),
        (0.012, "12 ms"),
        (0.0125, "12.5 ms"),
        (1.5, "1.5 s"),
        (90, "90 s"),
        (720, "12 min"),
        (0.9996, "1 s"),
        (4 * 3600, "4 h"),
        (-0.012, "-12 ms"),
        (math.nan, "n/a"),
    ],
)
def test_fmt_seconds(x, text):
    assert fmt_seconds(x) == text


@pytest.mark.parametrize(
    ("x", "text"),
    [(0, "0"), (12, "12"), (12.34, "12.3"), (1500, "1.5k"), (2.3e6, "2.3M"), (0.25, "0.25")],
)
def test_fmt_number(x, text):
    assert fmt_number(x) == text


def x_labels(svg: str) -> list[str]:
    return texts(find(ET.fromstring(svg), "x-axis")[0])


def y_labels(svg: str) -> list[str]:
    return texts(find(ET.fromstring(svg), "y-axis")[0])


def test_time_ticks_are_nice_in_the_displayed_unit():
    def chart(x_hi):
        s = Series("s", [0, x_hi], [1, 2])
        return line_chart([s], id="t", title="t", x_label="", y_label="")

    # x spans the data exactly; the ticks are the nice values inside it
    assert x_labels(chart(0.23)) == ["0", "50 ms", "100 ms", "150 ms", "200 ms"]
    assert x_labels(chart(1000)) == ["0", "5 min", "10 min", "15 min"]
    assert x_labels(chart(4)) == ["0", "1 s", "2 s", "3 s", "4 s"]


def test_percent_and_time_y_axes():
    s = Series("s", [0, 1], [0.1, 0.93])
    pct = line_chart([s], id="p", title="t", x_label="", y_label="", y_percent=True, y_max=1.0)
    assert y_labels(pct) == ["0%", "20%", "40%", "60%", "80%", "100%"]
    s = Series("s", [0, 1], [0.001, 0.0042])
    sec = line_chart([s], id="p", title="t", x_label="", y_label="", y_time=True)
    assert y_labels(sec) == ["0", "1 ms", "2 ms", "3 ms", "4 ms", "5 ms"]


# --- every chart ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", CHARTS)
def test_chart_is_one_self_describing_svg(kind):
    svg = CHARTS[kind]()
    root = ET.fromstring(svg)
    title = root.find(NS + "title").text
    assert root.tag == NS + "svg"
    assert re.fullmatch(r"0 0 \d+ \d+", root.get("viewBox"))
    assert root.get("width") == "100%" and root.get("role") == "img"
    assert "chart" in root.get("class").split()
    assert root.get("aria-label") == title and title
    assert root.get("font-family") == "system-ui, sans-serif"
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize("kind", CHARTS)
def test_chart_is_deterministic(kind):
    assert CHARTS[kind]() == CHARTS[kind]()


@pytest.mark.parametrize("kind", EMPTY)
def test_empty_input_says_no_data(kind):
    root = ET.fromstring(EMPTY[kind]())
    assert "no data" in texts(root)
    assert not find(root, "series", "path")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="chart id"):
        line_chart([], id="not an id", title="t", x_label="", y_label="")
    with pytest.raises(ValueError, match="axis"):
        Rule(1.0, "r", axis="z")
    with pytest.raises(ValueError, match="different lengths"):
        line_chart([Series("s", [1, 2], [1])], id="a", title="t", x_label="", y_label="")
    with pytest.raises(ValueError, match="2 values for 3"):
        bar_chart(["a", "b", "c"], {"k": [1, 2]}, id="a", title="t", y_label="")
    with pytest.raises(ValueError, match="lane 2"):
        gantt_chart(["a", "b"], [(2, 0, 1, "k", "")], id="a", title="t", kinds={}, window=(0, 1))


def test_text_is_escaped():
    nasty = [Series(NASTY, [0, 1], [1, 2]), Series("b", [0, 1], [2, 1])]
    made = [
        line_chart(nasty, id="a", title=NASTY, x_label=NASTY, y_label=NASTY),
        bar_chart([NASTY], {NASTY: [1.0], "k": [2.0]}, id="a", title=NASTY, y_label=NASTY),
        breakdown_chart([(NASTY, [1.0])], [NASTY], id="a", title=NASTY),
        gantt_chart(
            [NASTY], [(0, 0, 1, NASTY, NASTY)], id="a", title=NASTY, kinds={}, window=(0, 1)
        ),
    ]
    for svg in made:
        root = ET.fromstring(svg)
        assert root.get("aria-label") == NASTY
        assert NASTY in texts(root)
        assert "<b" not in svg
    root = ET.fromstring(made[3])
    assert [t.text for t in root.iter(NS + "title")][-1] == NASTY  # the bar's tooltip


# --- line chart -----------------------------------------------------------------------------


def test_line_chart_draws_a_path_per_series_and_a_legend():
    root = ET.fromstring(line(n=3))
    paths = find(root, "series", "path")
    assert len(paths) == 3
    assert [p.get("stroke") for p in paths] == list(PALETTE[:3])
    assert texts(find(root, "legend")[0]) == ["s0", "s1", "s2"]
    assert not find(ET.fromstring(line(n=1)), "legend")


def test_line_chart_styles_gaps_and_steps():
    s = [
        Series("cap", [0, 10], [5, 5], color="#123456", dash=True),
        Series("gap", [0, 1, 2, 3, 4], [1, 2, math.nan, 3, 4]),
        Series("step", [0, 1, 2, 3], [1, 3, 2, 4], step=True),
    ]
    root = ET.fromstring(line_chart(s, id="a", title="t", x_label="", y_label=""))
    cap, gap, step = find(root, "series", "path")
    assert cap.get("stroke") == "#123456" and cap.get("stroke-dasharray")
    assert gap.get("d").count("M") == 2 and len(points(gap.get("d"))) == 4
    pts = points(step.get("d"))
    assert len(pts) == 7  # 4 points, 3 risers
    # flat until the next x: each riser starts at the height of the point before it
    assert all(a[1] == b[1] for a, b in zip(pts[0::2], pts[1::2], strict=False))


def test_rules_widen_the_axis_and_bands_are_closed():
    s = Series("s", [0, 1, 2], [1, 10, 5])
    band = Band("range", [0, 1, 2], [0, 8, 4], [2, 12, 6])
    svg = line_chart(
        [s],
        id="a",
        title="t",
        x_label="",
        y_label="",
        bands=[band],
        rules=[Rule(50, "capacity"), Rule(4, "end", axis="x")],
    )
    root = ET.fromstring(svg)
    assert float(y_labels(svg)[-1]) >= 50
    assert x_labels(svg)[-1] in ("4 s", "5 s")
    assert {t for r in find(root, "rule") for t in texts(r)} == {"capacity", "end"}
    (b,) = find(root, "band", "path")
    assert b.get("d").endswith("Z") and len(points(b.get("d"))) == 6


def test_log_x_drops_non_positive_points():
    s = Series("s", [-1, 0, 0.001, 0.01, 0.1, 1], [1, 2, 3, 4, 5, 6])
    root = ET.fromstring(
        line_chart([s], id="a", title="t", x_label="", y_label="", log_x=True, y_min=None)
    )
    (path,) = find(root, "series", "path")
    assert len(points(path.get("d"))) == 4
    assert texts(find(root, "x-axis")[0]) == ["1 ms", "10 ms", "100 ms", "1 s"]


# --- CDF ------------------------------------------------------------------------------------


def test_ecdf_keeps_min_and_max_within_300_points():
    v = np.random.default_rng(1).lognormal(size=10_000)
    x, p = charts._ecdf(v)
    assert len(x) <= 300 and x[0] == v.min() and x[-1] == v.max()
    assert p[-1] == 1.0 and np.all(np.diff(x) >= 0) and np.all(np.diff(p) > 0)
    x, p = charts._ecdf(np.array([3.0, 1.0, 2.0]))
    assert x.tolist() == [1, 2, 3] and p.tolist() == pytest.approx([1 / 3, 2 / 3, 1])


def test_cdf_chart_downsamples_and_picks_a_log_axis_for_wide_data():
    rng = np.random.default_rng(2)
    wide = rng.lognormal(-5, 2, 5000)
    root = ET.fromstring(cdf_chart({"ttft": wide}, id="c", title="t", x_label="s"))
    (path,) = find(root, "series", "path")
    pts = points(path.get("d"))
    assert 2 < len(pts) <= 300
    assert pts[0][0] == min(x for x, _ in pts) and pts[-1][0] == max(x for x, _ in pts)
    labels = texts(find(root, "x-axis")[0])
    assert all(re.fullmatch(r"(1|10|100) (µs|ms|s)|1 s|10 s|100 s|1.67 min", s) for s in labels)
    assert {"p50", "p90", "p99"} <= set(texts(root))

    narrow = cdf_chart({"a": np.linspace(0.1, 0.5, 50)}, id="c", title="t", x_label="s")
    assert x_labels(narrow)[:3] == ["0", "100 ms", "200 ms"]

    with_zeros = np.r_[np.zeros(10), -np.ones(5), np.geomspace(1e-4, 1, 40)]
    root = ET.fromstring(cdf_chart({"a": with_zeros}, id="c", title="t", x_label="s"))
    assert len(points(find(root, "series", "path")[0].get("d"))) == 40


# --- bars -----------------------------------------------------------------------------------


def rects(root, cls: str) -> list:
    return [r for g in find(root, cls) for r in g.iter(NS + "rect")]


def test_bar_chart_draws_a_bar_per_finite_value():
    values = {"x": [1, 2, 3], "y": [2, math.nan, -1]}
    root = ET.fromstring(bar_chart(["a", "b", "c"], values, id="b", title="t", y_label=""))
    bars = rects(root, "bars")
    assert len(bars) == 5
    assert "b · x: 2" in [r.find(NS + "title").text for r in bars]
    assert texts(find(root, "x-axis")[0]) == ["a", "b", "c"]


def test_long_category_names_wrap_instead_of_being_cut():
    names = ["batching=continuous { max_seqs 64 }", "batching=chunked { budget 512 }", "x"]
    root = ET.fromstring(bar_chart(names, {"v": [1, 2, 3]}, id="b", title="t", y_label=""))
    labels = find(root, "x-axis")[0].findall(NS + "text")
    lines = [[t.text for t in label.iter(NS + "tspan")] or [label.text] for label in labels]
    assert ["".join(x if x.endswith("=") else x + " " for x in ls).strip() for ls in lines] == names
    assert len(lines[0]) > 1 and lines[2] == ["x"]  # wrapped where too wide only
    assert [label.find(NS + "title").text for label in labels[:2]] == names[:2]  # whole on hover
    short = ET.fromstring(bar_chart(["a", "b"], {"v": [1, 2]}, id="c", title="t", y_label=""))
    height = [float(r.get("viewBox").split()[3]) for r in (root, short)]
    assert height[0] > height[1]  # room for the lines


def test_stacked_bars_sit_on_each_other():
    values = {"low": [1.0], "high": [3.0]}
    root = ET.fromstring(bar_chart(["a"], values, id="b", title="t", y_label="", stacked=True))
    low, high = (
        {k: float(r.get(k)) for k in ("x", "y", "width", "height")} for r in rects(root, "bars")
    )
    assert high["height"] == pytest.approx(3 * low["height"], abs=0.2)
    assert high["y"] + high["height"] == pytest.approx(low["y"], abs=0.2)
    assert high["x"] == low["x"]


def test_breakdown_segments_are_proportional_with_tooltips():
    rows = [("req 4812", [1.0, 3.0, 0.0, math.nan]), ("req 7", [0.5, 0.0, 0.25, 1.23])]
    parts = ["queue", "prefill", "kv wait", "decode"]
    svg = breakdown_chart(rows, parts, id="b", title="t")
    root = ET.fromstring(svg)
    segs = rects(root, "segments")
    assert len(segs) == 5  # zero and NaN segments are left out
    by_tip = {r.find(NS + "title").text: r for r in segs}
    q, p = by_tip["req 4812 · queue: 1 s"], by_tip["req 4812 · prefill: 3 s"]
    assert float(p.get("width")) == pytest.approx(3 * float(q.get("width")), abs=0.2)
    assert float(p.get("x")) == pytest.approx(float(q.get("x")) + float(q.get("width")), abs=0.2)
    assert "req 7 · decode: 1.23 s" in by_tip
    assert texts(find(root, "legend")[0]) == parts
    more = breakdown_chart(rows * 5, parts, id="b", title="t", row_height=20)
    height = [int(ET.fromstring(s).get("viewBox").split()[3]) for s in (svg, more)]
    assert height[1] - height[0] == pytest.approx(10 * 20 - 2 * 14, abs=1)


# --- gantt ----------------------------------------------------------------------------------


def gantt(bars, **kw):
    lanes = ["inst 0", "inst 1", "inst 2"]
    return gantt_chart(lanes, bars, id="g", title="Batches", kinds=KINDS, window=(10, 20), **kw)


def test_gantt_drops_and_clips_bars_to_the_window():
    svg = gantt(
        [
            (0, 12.0, 13.0, "prefill", "inside"),
            (0, 1.0, 5.0, "prefill", "before"),
            (1, 25.0, 30.0, "decode", "after"),
            (1, 8.0, 11.0, "decode", "across start"),
            (2, 19.0, 23.0, "prefill", "across end"),
            (2, 15.0, 15.0, "decode", "instant"),
            (2, 5.0, 10.0, "decode", "ends at the start"),
        ]
    )
    root = ET.fromstring(svg)
    assert root.get("data-t0") == "10.0" and root.get("data-t1") == "20.0"
    (plot,) = find(root, "gantt-plot", "svg")
    assert plot.get("viewBox").split()[:3] == ["0", "0", "10.000000"]
    assert plot.get("preserveAspectRatio") == "none"
    bars = {
        r.find(NS + "title").text: (float(r.get("x")), float(r.get("width")), float(r.get("y")))
        for r in plot.iter(NS + "rect")
    }
    assert bars == {
        "inside": (2.0, 1.0, 2.0),
        "across start": (0.0, 1.0, 18.0),
        "across end": (9.0, 1.0, 34.0),
        "instant": (5.0, 0.0, 34.0),
    }
    groups = {g.get("data-kind"): g for g in plot.iter(NS + "g")}
    assert {k: g.get("fill") for k, g in groups.items()} == KINDS
    assert all(r.get("style") is None and r.get("fill") is None for r in plot.iter(NS + "rect"))
    assert "non-scaling-stroke" in root.find(NS + "style").text
    (axis,) = find(root, "gantt-axis")
    assert texts(axis) == ["10 s", "12 s", "14 s", "16 s", "18 s", "20 s"]
    assert {b.get("data-zoom") for b in root.iter(NS + "g") if b.get("data-zoom")} == {
        "in",
        "out",
        "reset",
    }
    assert texts(find(root, "legend")[0]) == ["prefill", "decode"]


def test_gantt_names_unknown_kinds_and_stays_small():
    rng = np.random.default_rng(3)
    starts = np.sort(rng.uniform(10, 20, 3000))
    bars = [(i % 3, s, s + 0.01, "prefill" if i % 2 else "mixed", "") for i, s in enumerate(starts)]
    svg = gantt(bars)
    root = ET.fromstring(svg)
    assert "mixed" in texts(find(root, "legend")[0])
    assert len(list(find(root, "gantt-plot", "svg")[0].iter(NS + "rect"))) == 3000
    assert len(svg) < 3000 * 70


# --- gantt.js -------------------------------------------------------------------------------

# A fake DOM just big enough for gantt.js: the chart's geometry comes from Python, client px equal
# svg px (getScreenCTM is the identity), and events are called on the registered listeners.
HARNESS = r"""
const cfg = JSON.parse(require("fs").readFileSync(0, "utf8"));
function el(attrs, index) {
  return {
    attrs: Object.assign({}, attrs), index: index || {}, children: [], listeners: {}, style: {},
    textContent: "",
    getAttribute(n) { return n in this.attrs ? String(this.attrs[n]) : null; },
    setAttribute(n, v) { this.attrs[n] = String(v); },
    removeAttribute(n) { delete this.attrs[n]; },
    addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); },
    appendChild(c) { this.children.push(c); return c; },
    removeChild(c) { this.children.splice(this.children.indexOf(c), 1); return c; },
    get lastChild() { return this.children[this.children.length - 1] || null; },
    querySelectorAll(sel) { return this.index[sel] || []; },
    querySelector(sel) { return this.querySelectorAll(sel)[0] || null; },
    fire(type, e) {
      e = Object.assign({ button: 0, deltaMode: 0, pointerId: 1, defaultPrevented: false,
                          preventDefault() { this.defaultPrevented = true; } }, e);
      (this.listeners[type] || []).forEach((f) => f(e));
      return e;
    },
  };
}
if (!cfg.with_gantt) cfg.plot = cfg.axis = cfg.svg = {};
const grid = el({ d: "" });
const axis = el(cfg.axis, { path: [grid] });
axis.children.push(grid);
const plot = el(cfg.plot);
const buttons = ["in", "out", "reset"].map((z) => el({ "data-zoom": z }));
const zoom = el({ visibility: "hidden" });
const svg = el(cfg.svg, { ".gantt-plot": [plot], ".gantt-axis": [axis], "[data-zoom]": buttons,
                          ".gantt-zoom": [zoom] });
svg.getScreenCTM = () => ({ a: 1, d: 1, e: 0, f: 0 });
global.window = {};
global.document = {
  readyState: "complete",
  querySelectorAll: (sel) => (sel === "svg[data-t0]" && cfg.with_gantt ? [svg] : []),
  createElementNS: (ns, tag) => el({}),
  addEventListener() {},
};
require(cfg.script);
const out = [];
function snap() {
  out.push({ viewBox: plot.getAttribute("viewBox"), grid: grid.getAttribute("d"),
             labels: axis.children.slice(1).map((t) => t.textContent),
             zoomHidden: zoom.getAttribute("visibility") });
}
const px = (f) => +cfg.plot.x + f * +cfg.plot.width;
const cy = +cfg.plot.y + 2;
if (cfg.with_gantt) {
  buttons[2].fire("click", {}); snap();                                    // 0: reset
  const e = svg.fire("wheel", { clientX: px(0.25), clientY: cy, deltaY: -300 }); snap();  // 1
  out.push(e.defaultPrevented);                                            // 2
  const o = svg.fire("wheel", { clientX: px(0.25), clientY: cy - 30, deltaY: -300 });
  out.push(o.defaultPrevented); snap();                                    // 3, 4
  svg.fire("pointerdown", { clientX: px(0.5), clientY: cy });
  svg.fire("pointermove", { clientX: px(0.6), clientY: cy });
  svg.fire("pointerup", { clientX: px(0.6), clientY: cy }); snap();        // 5
  svg.fire("dblclick", { clientX: px(0.5), clientY: cy }); snap();         // 6
  buttons[0].fire("click", {}); snap();                                    // 7: in
  for (let i = 0; i < 40; i++) buttons[0].fire("click", {});
  snap();                                                                  // 8
}
process.stdout.write(JSON.stringify(out));
"""


def run_gantt_js(svg_text: str | None) -> list:
    cfg = {"script": str(GANTT_JS), "with_gantt": svg_text is not None}
    if svg_text is not None:
        root = ET.fromstring(svg_text)
        (plot,) = find(root, "gantt-plot", "svg")
        (axis,) = find(root, "gantt-axis")
        cfg |= {"svg": dict(root.attrib), "plot": dict(plot.attrib), "axis": dict(axis.attrib)}
    result = subprocess.run(
        ["node", "-e", HARNESS], input=json.dumps(cfg), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@needs_node
def test_gantt_js_is_quiet_on_a_page_without_gantt():
    assert run_gantt_js(None) == []


@needs_node
@pytest.mark.parametrize(
    "window", [(10.0, 20.0), (100.0, 120.0), (0.0, 600.0), (2.5, 2.5004), (100.0, 100.37)]
)
def test_gantt_js_zooms_pans_and_redraws_python_s_ticks(window):
    svg_text = gantt_chart(
        ["a", "b"], [(0, *window, "prefill", "x")], id="g", title="t", kinds=KINDS, window=window
    )
    root = ET.fromstring(svg_text)
    python_labels = texts(find(root, "gantt-axis")[0])
    full = window[1] - window[0]
    snaps = run_gantt_js(svg_text)
    reset, wheel, prevented, outside_prevented, outside, drag, dbl, zoom_in, deepest = snaps

    def view(s):
        a, _, span, _ = (float(v) for v in s["viewBox"].split())
        return window[0] + a, span

    assert reset["labels"] == python_labels and reset["zoomHidden"] is None
    assert reset["grid"].count("M") == len(python_labels)
    assert view(reset) == (window[0], pytest.approx(full))
    # the wheel zooms in around the cursor, a quarter of the way in
    a, span = view(wheel)
    assert span < full and a + span / 4 == pytest.approx(window[0] + full / 4)
    assert prevented is True and outside_prevented is False and outside == wheel
    # dragging right by a tenth of the plot moves the view left by a tenth of its span
    assert view(drag)[0] == pytest.approx(max(a - span / 10, window[0]))
    assert view(dbl) == view(reset)
    assert view(zoom_in)[1] == pytest.approx(full / 1.5)
    a, span = view(deepest)
    assert span == pytest.approx(full / 1e4) and window[0] <= a and a + span <= window[1]
    labels = deepest["labels"]
    assert 2 <= len(labels) <= 12 and len(set(labels)) == len(labels)
