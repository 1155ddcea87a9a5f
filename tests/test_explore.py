"""Sweeps at scale and search: the content-hash cache, executors, resuming, and the
answers of ``tokensim search``."""

from __future__ import annotations

import csv
import json
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, compile_text
from conftest import tokensim_cli as tokensim

from tokensim.explore import search as s
from tokensim.explore.cache import RESULT_FILES, Cache, run_key
from tokensim.report.sweep_data import labels

HEAD = 'import "std/hardware"\nimport "std/models"\n'
SPEC = (
    HEAD
    + """name "small"
cluster { node n0 { gpus H100_SXM x 4; link NVLINK4 } }
deployment { pool p { model llama3_1_8b; instances 2 }
             route p by least_requests }
workload { arrivals poisson 20/s; lengths chat; requests 200; seed 3 }
slo { ttft p90 < 300 ms; tpot p90 < 20 ms }
"""
)


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def point_files(out: Path, name: str) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted(out.glob(f"*/{name}"))}


# -- the key --------------------------------------------------------------------------------


def test_the_key_is_the_content_not_where_it_was_written():
    a = compile_text(SPEC)
    b = compile_text("// a comment moves every line\n\n" + SPEC, "elsewhere.tsim")
    assert run_key(a, None) == run_key(b, None)
    assert run_key(a, None) != run_key(a, 4)
    changed = compile_text(SPEC.replace("requests 200", "requests 201"))
    assert run_key(changed, None) != run_key(a, None)
    rate = compile_text(SPEC.replace("poisson 20/s", "poisson 20.000001/s"))
    assert run_key(rate, None) != run_key(a, None)


def test_the_key_covers_the_contents_of_a_trace(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,20,5\n")
    spec = tmp_path / "t.tsim"
    spec.write_text(
        SPEC.replace("arrivals poisson 20/s; lengths chat; requests 200", 'trace "t.csv"')
    )
    from tokensim.lang.check import check
    from tokensim.lang.parse import parse
    from tokensim.lang.source import SourceMap

    def key():
        sources = SourceMap()
        return run_key(check(parse(spec.read_text(), str(spec), sources), sources), None)

    before = key()
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,30,5\n")
    assert key() != before


def test_the_cache_keeps_whole_entries_only(tmp_path):
    cache = Cache(tmp_path / "c")
    files = {name: f"{name} text" for name in RESULT_FILES} | {"report.html": "page"}
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, files)
    assert cache.get("ab" * 32) == {name: f"{name} text" for name in RESULT_FILES}
    (tmp_path / "c" / "ab" / ("ab" * 32) / "requests.csv.gz").unlink()  # damaged: a miss
    assert cache.get("ab" * 32) is None
    assert Cache(None).get("ab" * 32) is None
    Cache(None).put("cd" * 32, files)  # caching off: nothing is written


def test_a_compile_error_crosses_process_boundaries_whole():
    from tokensim.lang.diagnostics import CompileError

    with pytest.raises(CompileError) as info:
        compile_text(SPEC.replace("instances 2", "instances 2; tp 3"))
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.diagnostics == info.value.diagnostics


def test_labels_stay_clear_over_the_sweep():
    pts = [
        [("deployment.prefill.tp", "2"), ("deployment.decode.tp", "2"), ("cluster.n0.gpus", "A")]
        + [("cluster.n1.gpus", "A")],
        [("deployment.prefill.tp", "4"), ("deployment.decode.tp", "2"), ("cluster.n0.gpus", "B")]
        + [("cluster.n1.gpus", "B")],
    ]
    assert labels(pts) == [
        ["prefill.tp=2", "decode.tp=2", "gpus=A"],
        ["prefill.tp=4", "decode.tp=2", "gpus=B"],
    ]


# -- sweeps: processes, resuming, Ray -------------------------------------------------------

SWEEP = (
    SPEC + "sweep { workload.arrivals.rate in 5/s, 10/s, 20/s\n deployment.p.instances in 1, 2 }\n"
)


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory):
    """The sweep run in this process, one point after another, with no cache."""
    tmp = tmp_path_factory.mktemp("serial")
    (tmp / "s.tsim").write_text(SWEEP)
    result = tokensim("run", "s.tsim", "-o", "out", "-j", "1", "--no-cache", cwd=tmp)
    assert result.returncode == 0, result.stderr
    return tmp / "out"


def test_points_in_parallel_give_the_same_results(serial_sweep, tmp_path):
    (tmp_path / "s.tsim").write_text(SWEEP)
    result = tokensim("run", "s.tsim", "-o", "out", "-j", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "swept 6 points on local" in result.stdout
    out = tmp_path / "out"
    assert (out / "sweep.csv").read_bytes() == (serial_sweep / "sweep.csv").read_bytes()
    for name in ("requests.csv", "iterations.csv", "run.json"):
        assert point_files(out, name) == point_files(serial_sweep, name)
    # again: every point comes from the cache, and the folders are left as they were
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/report.html")}
    again = tokensim("run", "s.tsim", "-o", "out", "-j", "2", cwd=tmp_path)
    assert "(6 from the cache)" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/report.html")} == stamps
    assert (out / "sweep.csv").read_bytes() == (serial_sweep / "sweep.csv").read_bytes()
    # the same results reach a new folder from the cache, pages drawn there
    third = tokensim("run", "s.tsim", "-o", "other", cwd=tmp_path)
    assert "(6 from the cache)" in third.stdout
    assert point_files(tmp_path / "other", "requests.csv") == point_files(out, "requests.csv")
    assert len(list((tmp_path / "other").glob("*/report.html"))) == 6


def test_a_sweep_from_a_script_on_standard_input_runs_here(serial_sweep, tmp_path):
    """Spawned workers re-import the main script, which `python - < script` does not have
    as a file: the points run in this process instead, with a note (the pool would start
    and lose workers without end)."""
    (tmp_path / "s.tsim").write_text(SWEEP)
    script = (
        "from tokensim.cli import main\n"
        "raise SystemExit(main(['run', 's.tsim', '-o', 'out', '-j', '2', '--no-cache']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, cwd=tmp_path,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the main script is not a file" in result.stderr
    assert "swept 6 points on local" in result.stdout
    out = tmp_path / "out"
    assert (out / "sweep.csv").read_bytes() == (serial_sweep / "sweep.csv").read_bytes()


def test_a_changed_value_runs_again(tmp_path):
    (tmp_path / "s.tsim").write_text(SWEEP)
    assert tokensim("run", "s.tsim", "-o", "out", "-q", cwd=tmp_path).returncode == 0
    (tmp_path / "s.tsim").write_text(SWEEP.replace("10/s, 20/s", "10/s, 30/s"))
    result = tokensim("run", "s.tsim", "-o", "out", cwd=tmp_path)
    assert "(4 from the cache)" in result.stdout
    assert [r["workload.arrivals.rate"] for r in rows(tmp_path / "out" / "sweep.csv")][-1] == "30/s"


def test_an_interrupted_sweep_resumes_where_it_stopped(serial_sweep, tmp_path):
    """Ctrl-C during a sweep: exit 130, finished points cached; the re-run skips them."""
    (tmp_path / "s.tsim").write_text(SWEEP.replace("requests 200", "requests 1500"))
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "tokensim", "run", "s.tsim", "-o", "out", "-j", "1"]
    proc = subprocess.Popen(
        [*cmd, "--cache", str(cache)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Ctrl-C reaches it even when the suite runs as a background job (which ignores it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(Cache(cache)) < 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "no point finished in 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted:" in err and b"Traceback" not in err
    done = len(Cache(cache))
    assert 2 <= done < 6
    assert not (tmp_path / "out" / "sweep.csv").exists()  # no table passing as whole
    again = subprocess.run([*cmd, "--cache", str(cache)], cwd=tmp_path, capture_output=True)
    assert f"({done} from the cache)".encode() in again.stdout
    finished = tmp_path / "all"
    full = [*cmd[:5], "-o", str(finished), "--no-cache"]
    assert subprocess.run(full, cwd=tmp_path, capture_output=True).returncode == 0
    assert (tmp_path / "out" / "sweep.csv").read_bytes() == (finished / "sweep.csv").read_bytes()


def test_the_ray_executor_gives_the_same_results(serial_sweep, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'tokensim[ray]')")
    (tmp_path / "s.tsim").write_text(SWEEP)
    result = tokensim(
        "run", "s.tsim", "-o", "out", "--executor", "ray", "-j", "2", "--no-cache", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "swept 6 points on ray" in result.stdout
    out = tmp_path / "out"
    assert (out / "sweep.csv").read_bytes() == (serial_sweep / "sweep.csv").read_bytes()
    assert point_files(out, "requests.csv") == point_files(serial_sweep, "requests.csv")


def test_executor_options_are_checked(tmp_path):
    (tmp_path / "s.tsim").write_text(SWEEP)
    for args, message in (
        (("-j", "0"), "--jobs takes a number of processes, at least 1"),
        (("--address", "ray://x:1"), "--address is for --executor ray"),
    ):
        result = tokensim("run", "s.tsim", "-o", "out", *args, cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_the_gpu_of_a_node_is_swept_by_name(tmp_path):
    spec = compile_text(SPEC + "sweep { cluster.n0.gpus in H100_SXM, H200 }\n")
    assert spec.sweep.axes[0].texts == ("H100_SXM", "H200")
    (tmp_path / "g.tsim").write_text(SPEC + "sweep { cluster.n0.gpus in H100_SXM, H200 }\n")
    result = tokensim("run", "g.tsim", "-o", "out", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*/run.json"))]
    assert [r["gpus"] for r in runs] == [
        {"H100_SXM": {"count": 4, "price_per_h": 3.0}},
        {"H200": {"count": 4, "price_per_h": 4.0}},
    ]
    from tokensim.lang.diagnostics import CompileError

    with pytest.raises(CompileError, match="unknown gpu `H300`"):
        compile_text(SPEC + "sweep { cluster.n0.gpus in H100_SXM, H300 }\n")


def test_cost_counts_the_gpus_the_pools_use(tmp_path):
    (tmp_path / "c.tsim").write_text(SPEC.replace("instances 2", "instances 1"))
    assert tokensim("run", "c.tsim", "-o", "out", "-q", "--no-report", cwd=tmp_path).returncode == 0
    cost = json.loads((tmp_path / "out" / "metrics.json").read_text())["cost"]
    assert cost["gpus"] == 1 and cost["usd_per_hour"] == 3.0  # one of the node's four H100s


# -- search ---------------------------------------------------------------------------------


def walk(limit: float, start: float = 10.0, tolerance: float = 0.02) -> list[float]:
    """The rates :func:`search.bracket` tries when a rate passes iff it is <= limit."""
    tried = []
    gen = s.bracket(start, tolerance)
    rate = next(gen)
    try:
        while True:
            tried.append(rate)
            rate = gen.send(rate <= limit)
    except StopIteration:
        return tried


@pytest.mark.parametrize("limit", [0.37, 9.99, 10.0, 13.7, 61.0])
def test_bracket_and_bisect_finds_the_limit_within_the_tolerance(limit):
    tried = walk(limit)
    passed = [r for r in tried if r <= limit]
    failed = [r for r in tried if r > limit]
    lo, hi = max(passed), min(failed)
    assert lo <= limit < hi and hi - lo <= 0.02 * lo * 1.01
    assert len(tried) < 20


def test_bracket_gives_up_beyond_its_range():
    assert max(walk(1e9)) == 10.0 * 2**s.UP_STEPS  # passes everywhere: stops at the cap
    assert min(walk(-1.0)) == pytest.approx(10.0 / 2**s.DOWN_STEPS, rel=1e-3)


def outcome(index, cost, ttft, tpot, rate, passed=True):
    metrics = {
        "cost": {"usd_per_hour": cost},
        "ttft_s": {"p90": ttft},
        "tpot_s": {"p90": tpot},
        "throughput": {"output_tokens_per_s": 0.0},
    }
    config = s.Config(index, {"x": str(index)}, None, None, 1, (f"x={index}",))
    return s.Outcome(config, [s.Trial(rate, [metrics], passed)])


def test_the_pareto_front_keeps_what_nothing_beats():
    outcomes = [
        outcome(0, 10.0, 0.5, 0.05, 20.0),  # cheapest
        outcome(1, 20.0, 0.2, 0.03, 30.0),  # dearer, faster, more throughput
        outcome(2, 20.0, 0.3, 0.04, 25.0),  # beaten by 1 on everything
        outcome(3, 5.0, 0.1, 0.01, 99.0, passed=False),  # fails: never on the front
    ]
    s.mark_pareto(outcomes, "max-rate")
    assert [o.pareto for o in outcomes] == [True, True, False, False]
    assert [o.config.index for o in s.ranked(outcomes, "max-rate")] == [1, 2, 0, 3]
    assert [o.config.index for o in s.ranked(outcomes, "min-cost")] == [0, 1, 2, 3]


CHOICES = SPEC + "sweep { deployment.p.instances in 1, 2, 4 }\n"


def test_min_gpus_answers_with_the_smallest_configuration_that_passes(tmp_path):
    (tmp_path / "c.tsim").write_text(CHOICES.replace("requests 200", "requests 400"))
    result = tokensim(
        "search", "c.tsim", "--goal", "min-gpus", "--seeds", "2", "-o", "out", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    table = rows(tmp_path / "out" / "search.csv")
    ok = [r for r in table if r["passes"] == "1"]
    assert ok and table[: len(ok)] == ok  # passing configurations first
    gpus = [int(r["gpus"]) for r in ok]
    assert gpus == sorted(gpus)
    answer = ok[0]
    assert f"Fewest GPUs that meet the SLO at 20/s: {answer['config']}" in result.stdout
    # every smaller configuration fails, with its reason
    for r in table:
        if int(r["gpus"]) < int(answer["gpus"]):
            assert r["passes"] == "0" and r["note"].startswith("fails: ")
    # the answer holds: every seed's run of it meets the SLO
    folder = next(p for p in (tmp_path / "out").iterdir() if p.name.endswith(answer["config"]))
    assert json.loads((folder / "metrics.json").read_text())["slo"]["met"]
    page = (tmp_path / "out" / "index.html").read_text()
    assert 'id="search-ttft"' in page and answer["config"] in page
    info = json.loads((tmp_path / "out" / "search.json").read_text())
    assert info["seeds"] == [3, 4] and info["goal"] == "min-gpus"
    (tmp_path / "out" / "index.html").unlink()  # tokensim report draws it again, the same
    assert tokensim("report", tmp_path / "out").returncode == 0
    assert (tmp_path / "out" / "index.html").read_text() == page
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "search.json").write_text('{"goal": "min-gpus"}')
    damaged = tokensim("report", tmp_path / "other")
    assert damaged.returncode == 2 and "is not a search result" in damaged.stderr
    again = tokensim(
        "search", "c.tsim", "--goal", "min-gpus", "--seeds", "2", "-o", "out", cwd=tmp_path
    )
    assert "ran 0 simulations, 6 from the cache" in again.stdout


def test_max_rate_grows_with_the_instances(tmp_path):
    (tmp_path / "c.tsim").write_text(CHOICES.replace("1, 2, 4", "1, 2"))
    result = tokensim(
        "search", "c.tsim", "--goal", "max-rate", "--seeds", "1", "--tolerance", "0.05",
        "-o", "out", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    by = {r["config"]: r for r in rows(tmp_path / "out" / "search.csv")}
    one, two = by["instances=1"], by["instances=2"]
    for r in (one, two):
        rate, fails = float(r["rate_per_s"]), float(r["fails_at_per_s"])
        assert rate < fails <= rate * 1.05 * 1.01
    assert float(two["rate_per_s"]) > 1.5 * float(one["rate_per_s"])
    assert "Highest rate that meets the SLO" in result.stdout


def test_configurations_that_do_not_deploy_are_listed_with_why(tmp_path):
    (tmp_path / "c.tsim").write_text(CHOICES.replace("1, 2, 4", "2, 8"))
    result = tokensim(
        "search", "c.tsim", "--goal", "min-cost", "--seeds", "1", "-o", "o",
        "--set", "workload.requests=150", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = {r["config"]: r for r in rows(tmp_path / "o" / "search.csv")}
    assert table["instances=8"]["note"].startswith("does not deploy: pool `p` needs 8 GPUs")
    run = json.loads(next((tmp_path / "o").glob("*/run.json")).read_text())
    assert run["overrides"] == ["workload.requests=150", "deployment.p.instances=2"]


def test_an_interrupted_cache_write_leaves_nothing(tmp_path, monkeypatch):
    from tokensim.explore import cache as cache_module

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.os, "replace", stop)
    cache = Cache(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        cache.put("ab" * 32, {name: "x" for name in RESULT_FILES})
    assert len(cache) == 0 and list((tmp_path / "c").rglob("*")) == [tmp_path / "c" / "ab"]


@pytest.mark.parametrize(
    "text, args, message",
    [
        (SPEC.replace("slo { ttft p90 < 300 ms; tpot p90 < 20 ms }", ""), (), "needs an slo block"),
        (SPEC, ("--seeds", "0"), "--seeds takes a number of seeds, at least 1"),
        (SPEC, ("--attainment", "1.5"), "--attainment takes a fraction"),
        (SPEC, ("--set", "deployment.p.tp=3"), "error: "),
    ],
)
def test_search_says_what_is_wrong(tmp_path, text, args, message):
    (tmp_path / "c.tsim").write_text(text)
    result = tokensim("search", "c.tsim", "--goal", "max-rate", *args, cwd=tmp_path)
    assert result.returncode in (1, 2) and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_max_rate_needs_a_rate_to_vary(tmp_path):
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,20,5\n")
    (tmp_path / "c.tsim").write_text(
        SPEC.replace("arrivals poisson 20/s; lengths chat; requests 200", 'trace "t.csv"')
    )
    result = tokensim("search", "c.tsim", "--goal", "max-rate", cwd=tmp_path)
    assert result.returncode == 2 and "has no arrival rate" in result.stderr, result.stderr


def test_the_shipped_capacity_example_checks_and_sweeps_its_choices():
    spec = compile_text(
        (ROOT / "specs" / "capacity_70b.tsim").read_text(), str(ROOT / "specs" / "x.tsim")
    )
    assert spec.sweep.points == 45
    assert {a.path for g in spec.sweep.zipped for a in g} >= {
        "cluster.n0.gpus",
        "deployment.chat.dtype",
    }


def test_min_cost_keeps_the_rate_each_point_sets(tmp_path):
    """A sweep that sets the rate per point is searched at each point's own rate."""
    text = SPEC + "sweep { workload.arrivals.rate in 5/s, 40/s }\n"
    (tmp_path / "c.tsim").write_text(text)
    result = tokensim(
        "search", "c.tsim", "--goal", "min-cost", "--seeds", "1", "-o", "o", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rates = {r["config"]: r["rate_per_s"] for r in rows(tmp_path / "o" / "search.csv")}
    assert rates == {"rate=5/s": "5", "rate=40/s": "40"}
    again = tokensim("search", "c.tsim", "--goal", "max-rate", cwd=tmp_path)
    assert again.returncode == 2 and "take it out of the sweep" in again.stderr


def test_search_warns_when_a_percentile_rests_on_few_requests(tmp_path):
    (tmp_path / "c.tsim").write_text(
        SPEC.replace("requests 200", "requests 100").replace("ttft p90", "ttft p99")
    )
    result = tokensim(
        "search", "c.tsim", "--goal", "min-cost", "--seeds", "1", "-o", "o", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "warning: ttft p99 is decided by the slowest 1 of 100 requests" in result.stderr
    assert "warning: tpot p90 is decided by the slowest 10 of 100 requests" in result.stderr
    (tmp_path / "c.tsim").write_text(SPEC)  # p90 of 200 requests: 20 beyond it, enough
    quiet = tokensim(
        "search", "c.tsim", "--goal", "min-cost", "--seeds", "1", "-o", "o", cwd=tmp_path
    )
    assert "warning" not in quiet.stderr


def test_a_sweep_lists_the_points_that_do_not_deploy_and_runs_the_others(tmp_path):
    (tmp_path / "s.tsim").write_text(SPEC + "sweep { deployment.p.instances in 2, 8 }\n")
    result = tokensim("run", "s.tsim", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "1 of 2 points do not deploy (first: 001-instances=8: pool `p` needs 8 GPUs"
        in result.stderr
    )
    assert "swept 1 points" in result.stdout
    table = rows(tmp_path / "out" / "sweep.csv")
    assert table[0]["error"] == "" and table[0]["requests_per_s"] != ""
    assert (
        table[1]["error"].startswith("pool `p` needs 8 GPUs") and table[1]["requests_per_s"] == ""
    )
    assert not (tmp_path / "out" / "001-instances=8").exists()
    page = (tmp_path / "out" / "index.html").read_text()
    assert (
        "does not deploy: pool `p` needs 8 GPUs" in page and "1 of 2 points do not deploy" in page
    )
    assert tokensim("report", tmp_path / "out").returncode == 0  # the page again, from the files


def test_a_sweep_where_no_point_deploys_is_an_error_at_a_point(tmp_path):
    (tmp_path / "s.tsim").write_text(SPEC + "sweep { deployment.p.instances in 8, 16 }\n")
    result = tokensim("run", "s.tsim", "-o", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert "needs 8 GPUs" in result.stderr
    assert "note: at the sweep point deployment.p.instances = 8" in result.stderr


def test_a_damaged_cache_entry_is_made_again(tmp_path):
    """An entry whose files no longer match their checksums is not served: it is removed,
    and the next put stores it anew."""
    from tokensim.explore.cache import CHECKSUMS, RESULT_FILES, Cache

    cache = Cache(tmp_path)
    files = {name: f"{name} of the run\n" * 50 for name in RESULT_FILES}
    cache.put("ab" * 32, files)
    assert cache.get("ab" * 32) == files
    entry = tmp_path / "ab" / ("ab" * 32)
    stored = entry / "requests.csv.gz"
    assert stored.stat().st_size < len(files["requests.csv"]) / 5  # compressed
    stored.write_bytes(stored.read_bytes()[:-9])  # truncated
    assert cache.get("ab" * 32) is None and not entry.exists()
    cache.put("ab" * 32, files)
    import gzip

    stored.write_bytes(gzip.compress(b"edited"))  # whole, but not what was stored
    assert cache.get("ab" * 32) is None and not entry.exists()
    cache.put("ab" * 32, files)
    assert cache.get("ab" * 32) == files
    (entry / CHECKSUMS).unlink()  # an entry without checksums is not trusted either
    assert cache.get("ab" * 32) is None
    assert cache.get("cd" * 32) is None  # absent


def test_a_local_sweep_leaves_no_process_behind(tmp_path):
    """`-j 2`: the workers and multiprocessing's resource tracker are joined when the sweep
    is done (under forkserver they outlived the command as zombies in containers)."""
    (tmp_path / "s.tsim").write_text(SWEEP)
    script = (
        "import multiprocessing, sys\n"
        "from multiprocessing import resource_tracker\n"
        "from tokensim.cli import main\n"
        "args = ['run', 's.tsim', '-o', 'out', '-j', '2', '--no-cache', '-q', '--no-report']\n"
        "code = main(args)\n"
        "tracker = resource_tracker._resource_tracker._pid\n"
        "print(code, len(multiprocessing.active_children()), tracker)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.stdout.split() == ["0", "0", "None"], result.stdout + result.stderr
    assert "leaked" not in result.stderr and "Traceback" not in result.stderr


def test_a_note_said_by_every_worker_is_said_once(tmp_path):
    """`-j 2`: each worker process prices its points from the datasheet of a GPU without a
    calibration and says so; the sweep hands those notes back and says each once."""
    text = SWEEP.replace("gpus H100_SXM x 4; link NVLINK4", "gpus L40S x 4; link PCIE4")
    (tmp_path / "s.tsim").write_text(text)
    result = tokensim("run", "s.tsim", "-o", "out", "-j", "2", "--no-cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "no calibration for L40S" in line]
    assert len(said) == 1, result.stderr
