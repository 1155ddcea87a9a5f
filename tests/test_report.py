"""The result folder read back, the series cut down for the page, and report.html itself."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import tokensim_cli as tokensim
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensim.report import ResultError, files, load, write_page
from tokensim.report import series as ts

ROOT = Path(__file__).resolve().parent.parent
HEAD = 'import "std/hardware"\nimport "std/models"\n'
SMALL = (
    HEAD
    + """name "small"
cluster { node n0 { gpus H100_SXM x 2; link NVLINK4 } }
deployment { pool p { model llama3_1_8b; instances 2 }
             route p by least_requests }
workload { arrivals poisson 20/s; lengths chat; requests 300; seed 3 }
slo { ttft p90 < 200 ms; tpot p90 < 5 ms }
"""
)
DISAGG = (
    HEAD
    + """name "disagg"
cluster {
  node n0 { gpus H100_SXM x 4; link NVLINK4; nics 4 }
  node n1 { gpus H100_SXM x 4; link NVLINK4; nics 4 }
  network IB_400G between n0, n1
}
deployment {
  pool prefill { model llama3_1_8b; instances 2; on n0; role prefill }
  pool decode { model llama3_1_8b; instances 2; on n1; role decode }
  transfer prefill -> decode
}
workload { arrivals poisson 20/s; lengths chat; requests 300; seed 3 }
slo { ttft p90 < 1 s }
"""
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A two-instance run with an SLO (folder)."""
    folder = tmp_path_factory.mktemp("small")
    (folder / "small.tsim").write_text(SMALL)
    result = tokensim("run", "small.tsim", "-o", "out", "-q", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "out"


@pytest.fixture(scope="module")
def disagg(tmp_path_factory):
    folder = tmp_path_factory.mktemp("disagg")
    spec = folder / "disagg.tsim"
    spec.write_text(DISAGG)
    result = tokensim("run", spec, "-o", folder / "out", "-q")
    assert result.returncode == 0, result.stderr
    return folder / "out"


# -- series ---------------------------------------------------------------------------------


def _brute_mean(t, v, lo, hi, n=4000):
    x = np.linspace(lo, hi, n, endpoint=False) + (hi - lo) / (2 * n)
    k = np.searchsorted(t, x, side="right") - 1
    return np.where(k >= 0, v[np.maximum(k, 0)], 0.0).mean()


steps = st.lists(
    st.tuples(st.floats(0, 10, allow_nan=False), st.integers(0, 50)), min_size=1, max_size=30
)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_step_mean_is_the_time_average(points):
    points.sort()
    t = np.array([p[0] for p in points])
    v = np.array([p[1] for p in points], dtype=float)
    e = np.linspace(0, 12, 7)
    got = ts.step_mean(t, v, e)
    for k in range(6):
        assert got[k] == pytest.approx(_brute_mean(t, v, e[k], e[k + 1]), abs=0.05 * 50)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_step_max_is_the_highest_value_taken_in_each_bin(points):
    points.sort()
    t = np.array([p[0] for p in points])
    v = np.array([p[1] for p in points], dtype=float)
    e = np.linspace(0, 12, 7)
    got = ts.step_max(t, v, e)
    for k in range(6):
        lo, hi = e[k], e[k + 1]
        before = v[t <= lo]
        held = before[-1] if before.size else 0.0
        inside = v[(t > lo) & (t < hi)]
        assert got[k] == max([held, *inside])


def test_token_rate_spreads_every_output_token_once():
    rng = np.random.default_rng(1)
    first = rng.uniform(0, 50, 500)
    finish = first + rng.uniform(0, 20, 500)
    outputs = rng.integers(1, 400, 500).astype(float)
    e = ts.edges(80.0, 160)
    rate = ts.token_rate(first, finish, outputs, e)
    assert (rate >= -1e-9).all()
    assert (rate * np.diff(e)).sum() == pytest.approx(outputs.sum())


def test_token_rate_of_one_request_is_flat_between_its_first_and_last_token():
    e = np.linspace(0, 10, 11)
    rate = ts.token_rate(np.array([2.0]), np.array([6.0]), np.array([41.0]), e)
    assert rate[2] == pytest.approx(1 + 10)  # the first token, then 40 tokens over 4 s
    assert rate[3:6] == pytest.approx([10, 10, 10])
    assert rate[0] == rate[1] == rate[6] == 0


def test_sample_takes_the_slowest_and_a_seeded_sample():
    e2e = np.arange(100, dtype=float)
    req = {"e2e_s": e2e}
    top, rest = ts.sample_requests(req, slowest=5, sample=10)
    assert list(top) == [99, 98, 97, 96, 95]
    assert len(rest) == 10 and set(rest).isdisjoint(top)
    assert list(rest) == list(ts.sample_requests(req, slowest=5, sample=10)[1])
    assert list(e2e[rest]) == sorted(e2e[rest], reverse=True)


def test_window_holds_about_the_asked_number_of_iterations():
    starts = np.linspace(0, 100, 10_001)
    lo, hi = ts.window(starts, 100.0, most=1000)
    inside = ((starts >= lo) & (starts <= hi)).sum()
    assert 900 <= inside <= 1100 and lo < 50 < hi
    assert ts.window(starts[:10], 100.0) == (0.0, 100.0)


# -- the result folder ------------------------------------------------------------------------


def test_request_cells_are_the_values_as_csv_writer_writes_them():
    columns = [
        np.array([1.5, np.nan, -1.0, 1e-12, 123456789.123, -0.0, 2.0 / 3.0, np.inf]),
        np.arange(-3, 5),
        np.array([True, False] * 4),
        np.array(["p[0]", "b,c", 'd"e', "f\ng", "", "h\ri", "q[1]", "x"], dtype=object),
    ]
    for values in columns:  # a column at a time, as one value at a time
        assert files._cells(values) == [files._num(v) for v in values]
    # numbers never need quotes; text that would is written by csv.writer itself
    assert [files._plain_cells([v]) for v in columns[3]] == [
        True, False, False, False, True, False, True, True
    ]  # fmt: skip


def test_run_writes_every_file_of_the_folder(small):
    names = {p.name for p in small.iterdir()}
    assert {
        "report.html",
        "metrics.json",
        "requests.csv",
        "timeseries.csv",
        "iterations.csv",
        "graph.json",
        "run.json",
        "spec.tsim",
    } <= names
    assert not [n for n in names if n.endswith(".partial")]


def test_load_reads_the_folder_back(small):
    r = load(small)
    assert len(r.requests["id"]) == 300
    assert r.run["spec"] == "small" and r.run["pools"][0]["model"] == "llama3_1_8b"
    assert set(r.series) == set(r.work) == {"p[0]", "p[1]"}
    # every iteration is in iterations.csv: the counts match metrics.json
    for inst in r.metrics["instances"]:
        assert r.work[inst["name"]]["steps"].sum() == inst["iterations"]
    assert r.spec_text == SMALL


def test_iterations_do_not_overlap_and_busy_time_matches(small):
    r = load(small)
    for inst in r.metrics["instances"]:
        w = r.work[inst["name"]]
        assert (w["end_s"] >= w["start_s"]).all()
        assert (w["start_s"][1:] >= w["end_s"][:-1] - 1e-9).all()
        busy = (w["end_s"] - w["start_s"]).sum() / r.metrics["sim"]["simulated_s"]
        assert busy == pytest.approx(inst["busy_fraction"], rel=1e-6)


def test_link_utilization_is_a_share_of_bandwidth(disagg):
    r = load(disagg)
    assert r.links
    for cols in r.links.values():
        assert ((cols["utilization"] >= 0) & (cols["utilization"] <= 1 + 1e-9)).all()
        assert (cols["utilization"][cols["flows"] > 0] > 0).all()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "metrics.json").unlink(), "has no metrics.json"),
        (lambda f: (f / "run.json").write_text("{"), "run.json is not valid JSON"),
        (lambda f: (f / "iterations.csv").unlink(), "iterations.csv is missing"),
        (lambda f: _cut_last_row(f / "requests.csv"), "requests.csv:301: expected 22 values"),
        (lambda f: (f / "timeseries.csv").write_text("a,b\n1,2\n"), "expected the header"),
    ],
)
def test_a_damaged_folder_is_a_clear_error(small, tmp_path, damage, message):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(small, folder)
    damage(folder)
    with pytest.raises(ResultError, match=re.escape(message)):
        load(folder)
    result = tokensim("report", folder)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def _cut_last_row(path: Path) -> None:
    """Leave the last row with 3 of its values, as a copy cut short would."""
    lines = path.read_text().splitlines()
    lines[-1] = ",".join(lines[-1].split(",")[:3])
    path.write_text("\n".join(lines) + "\n")


def test_report_of_a_folder_that_is_not_a_result(tmp_path):
    result = tokensim("report", tmp_path)
    assert result.returncode == 2 and "not a result folder" in result.stderr
    result = tokensim("report", tmp_path / "nope")
    assert result.returncode == 2 and "is not a folder" in result.stderr


# -- the page ---------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Ids, classes of cards, svg count, and external references of a page."""

    def __init__(self):
        super().__init__()
        self.ids, self.cards, self.svgs, self.external = set(), [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if "card" in (a.get("class") or "").split():
            self.cards.append((a.get("data-card"), a["class"]))
        if tag == "svg" and "chart" in (a.get("class") or ""):
            self.svgs += 1
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])


def parsed(folder: Path) -> _Page:
    page = _Page()
    page.feed((folder / "report.html").read_text("utf-8"))
    return page


def test_page_has_every_section_and_no_external_resource(small):
    page = parsed(small)
    for section in ("deployment", "summary", "time", "latency", "load", "kv", "batches"):
        assert section in page.ids
    assert {"timeline", "pools", "spec", "slo", "parts"} <= page.ids
    assert "transfers" not in page.ids  # nothing moves between instances
    assert page.svgs >= 10
    assert page.external == []


def test_slo_cards_are_green_or_red_as_the_metrics_say(small):
    r = load(small)
    page = parsed(small)
    cards = dict(page.cards)
    for t in r.metrics["slo"]["targets"]:
        label = {"ttft": "TTFT", "tpot": "TPOT"}[t["metric"]] + " " + t["stat"]
        assert ("ok" if t["met"] else "miss") in cards[label].split()
    assert ("ok" if r.metrics["slo"]["met"] else "miss") in cards["SLO attainment"].split()
    # the 5 ms TPOT limit is out of reach for an 8B model at this load: one red card at least
    assert any("miss" in c.split() for c in cards.values())


def test_cost_card_uses_the_catalogue_price(small):
    r = load(small)
    cost = r.metrics["cost"]
    assert cost["usd_per_hour"] == pytest.approx(2 * 3.00)
    out_tokens = r.requests["output_tokens"][r.requests["rejected"] == 0].sum()
    spent = cost["usd_per_hour"] * r.metrics["throughput"]["duration_s"] / 3600
    assert cost["usd_per_million_output_tokens"] == pytest.approx(spent / out_tokens * 1e6)
    assert "Cost per 1M output tokens" in dict(parsed(small).cards)


def test_a_spec_without_slo_or_prices_has_a_page_without_them(tmp_path):
    spec = tmp_path / "plain.tsim"
    text = SMALL.replace("H100_SXM", "B200").replace(
        "slo { ttft p90 < 200 ms; tpot p90 < 5 ms }", ""
    )
    spec.write_text(text.replace("requests 300", "requests 50"))
    result = tokensim("run", spec, "-o", tmp_path / "o", "-q")
    assert result.returncode == 0, result.stderr
    metrics = load(tmp_path / "o").metrics
    assert "slo" not in metrics and "cost" not in metrics  # B200 has no catalogue price
    page = parsed(tmp_path / "o")
    labels = [label for label, _ in page.cards]
    assert "SLO attainment" not in labels and "Cost per 1M output tokens" not in labels
    assert "TTFT p90" in labels and "slo" not in page.ids
    assert all(cls.split() == ["card", "plain"] for _, cls in page.cards)


def test_disaggregated_page_shows_the_kv_transfers(disagg):
    page = parsed(disagg)
    assert "transfers" in page.ids
    html = (disagg / "report.html").read_text()
    assert "KV copy" in html and "KV wait" in html and "IB_400G" in html


def test_report_rerenders_the_same_page(small, tmp_path):
    import shutil

    folder = tmp_path / "again"
    shutil.copytree(small, folder)
    (folder / "report.html").unlink()
    result = tokensim("report", folder)
    assert result.returncode == 0, result.stderr
    assert (folder / "report.html").read_bytes() == (small / "report.html").read_bytes()


def test_same_spec_and_seed_give_the_same_page(small, tmp_path):
    (tmp_path / "small.tsim").write_text(SMALL)  # the same file name, in another folder
    assert tokensim("run", "small.tsim", "-o", "b", "-q", cwd=tmp_path).returncode == 0
    assert (tmp_path / "b" / "report.html").read_bytes() == (small / "report.html").read_bytes()


def test_write_page_escapes_what_the_spec_says(tmp_path):
    spec = tmp_path / "x.tsim"
    spec.write_text(SMALL.replace('name "small"', 'name "<script>alert(1)</script>"'))
    assert tokensim("run", spec, "-o", tmp_path / "o", "-q").returncode == 0
    html = (tmp_path / "o" / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    write_page(tmp_path / "o")  # the API renders the same folder again


# -- a sweep ----------------------------------------------------------------------------------


def test_sweep_runs_every_point_and_links_them(tmp_path):
    spec = tmp_path / "sweep.tsim"
    spec.write_text(
        SMALL.replace("requests 300", "requests 100")
        + "sweep { workload.arrivals.rate in 5/s .. 25/s step 10/s }\n"
    )
    result = tokensim("run", spec, "-o", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "s"
    rows = (out / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("point,workload.arrivals.rate,requests_per_s")
    assert [r.split(",")[1] for r in rows[1:]] == ["5/s", "15/s", "25/s"]
    index = (out / "index.html").read_text()
    for row in rows[1:]:
        folder = row.split(",")[0]
        assert (out / folder / "report.html").exists()
        assert f'href="{folder}/report.html"' in index
        assert "workload.arrivals.rate=" in (out / folder / "run.json").read_text()
    assert index.count('class="chart"') >= 4
    before = (out / "index.html").read_bytes()
    (out / "index.html").unlink()
    assert tokensim("report", out).returncode == 0
    assert (out / "index.html").read_bytes() == before
    for text, message in (("{", "sweep.json is not valid JSON"), ('{"axes": []}', "points")):
        (out / "sweep.json").write_text(text)
        result = tokensim("report", out)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr


def test_a_sweep_over_names_compares_them_in_bars(tmp_path):
    spec = tmp_path / "names.tsim"
    spec.write_text(
        SMALL.replace("requests 300", "requests 40")
        + "sweep { deployment.p.batching in continuous, chunked }\n"
    )
    result = tokensim("run", spec, "-o", tmp_path / "s", "-q")
    assert result.returncode == 0, result.stderr
    index = (tmp_path / "s" / "index.html").read_text()
    assert index.count('class="chart"') >= 4
    assert ">continuous<" in index and ">chunked<" in index  # the bars' group labels


def test_no_sweep_runs_the_spec_as_written(tmp_path):
    spec = tmp_path / "sweep.tsim"
    spec.write_text(
        SMALL.replace("requests 300", "requests 50") + "sweep { workload.requests in 10, 20 }\n"
    )
    result = tokensim("run", spec, "-o", tmp_path / "one", "--no-sweep", "-q")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "one" / "sweep.csv").exists()
    assert load(tmp_path / "one").metrics["requests"]["total"] == 50


def test_the_page_says_what_prices_each_pool(small):
    page = (small / "report.html").read_text("utf-8")
    metrics = json.loads((small / "metrics.json").read_text("utf-8"))
    (name, pool), *_ = metrics["pools"].items()
    assert (
        f'data-runs-on="{name}">Pool <code>{name}</code> runs engine {pool["engine"]["name"]}'
        in page
    )
    assert f"cost {pool['cost']['kind']}" in page


def test_the_page_of_a_run_is_drawn_from_memory_as_the_files_read_back(disagg, tmp_path):
    """tokensim run draws its page from the run in memory (from_result): every column is
    what the CSV reads back, so the page is the one `tokensim report` draws."""
    from tokensim.graph import lower
    from tokensim.lang.check import check
    from tokensim.lang.parse import parse
    from tokensim.lang.source import SourceMap
    from tokensim.metrics import summarize
    from tokensim.report import from_result, write
    from tokensim.report.page import render
    from tokensim.sim.run import simulate

    text = DISAGG.replace("poisson 20/s", "poisson 60/s")  # queues, and KV on the links
    graph = lower(check(parse(text, "d.tsim", SourceMap())))
    result = simulate(graph)
    write(result, tmp_path, summarize(result), graph=graph, spec_text=text)
    files, memory = load(tmp_path), from_result(tmp_path, result)

    def same(a, b):
        nan = (a != a) & (b != b) if a.dtype.kind == "f" else False
        return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | nan).all())

    assert list(files.requests) == list(memory.requests)
    assert all(same(files.requests[c], memory.requests[c]) for c in files.requests)
    assert files.links and list(files.links) == list(memory.links)
    for part in ("series", "work", "links"):
        a, b = getattr(files, part), getattr(memory, part)
        assert list(a) == list(b)
        for name in a:
            assert list(a[name]) == list(b[name])
            assert all(same(a[name][c], b[name][c]) for c in a[name]), (part, name)
    assert render(files) == render(memory)


def test_numbers_are_rounded_as_their_text_reads_back():
    from tokensim.report.digits import as_written, rounded9

    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            rng.random(20000) * 10.0 ** rng.integers(-30, 30, 20000),
            -rng.random(2000),
            np.round(rng.random(2000) * 1e6) / 1e6 + 5e-10,  # on a tie of the 9th digit
            [0.1234567895, 999999999.5, 9.9999999995, 1e-300, 5e-324, 1e300, 0.0, -0.0],
            [np.inf, -np.inf, np.nan],
        ]
    )
    want = np.array([float(f"{v:.9g}") for v in x.tolist()])
    got = rounded9(x)
    assert ((got == want) | (np.isnan(got) & np.isnan(want))).all()
    assert np.signbit(rounded9(np.array([-0.0])))[0]
    assert np.isnan(as_written(np.array([-1.0, np.nan]))).all()  # written as empty cells
    assert as_written(np.array([-2.0]))[0] == -2.0


def test_sequences_and_prompt_tokens_are_charted_apart(small, disagg):
    import re

    def charts(folder):
        return set(
            re.findall(r'<svg[^>]* id="(batch-[a-z0-9_-]+)"', (folder / "report.html").read_text())
        )

    assert {c.rsplit("-", 1)[1] for c in charts(small)} == {"seqs", "tokens"}
    # a prefill pool prefills only, a decode pool decodes only: one chart each
    assert charts(disagg) == {"batch-prefill-tokens", "batch-decode-seqs"}
