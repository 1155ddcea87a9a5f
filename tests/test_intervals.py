"""`tokensim run --seeds K`: replications and the intervals of their mean figures."""

import json

import numpy as np
import pytest
from conftest import tokensim_cli as tokensim

from tokensim.intervals import interval, intervals

SPEC = """import "std/hardware"
import "std/models"
cluster { node n0 { gpus H100_SXM x 1 } }
deployment { pool serve { model llama3_1_8b; cost roofline } }
workload { arrivals poisson 20/s; lengths chat; requests 150; seed 7 }
slo { ttft p90 < 500 ms }
"""


def test_a_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time():
    """Replications of a quantity with a known mean (normal, and skewed like a p99): the
    interval from 5 of them holds the mean in 93-97% of 4000 tries."""
    rng = np.random.default_rng(3)
    cases = (
        (lambda n: rng.normal(2.0, 0.5, n), 2.0),
        (lambda n: 1.0 + rng.gamma(8.0, 0.1, n), 1.8),  # skewed, mean 1 + 8 x 0.1
    )
    for draw, truth in cases:
        covered = sum(
            f["low"] <= truth <= f["high"] for f in (interval(list(draw(5))) for _ in range(4000))
        )
        assert 0.93 <= covered / 4000 <= 0.97


def test_the_interval_narrows_as_one_over_the_root_of_the_replications():
    rng = np.random.default_rng(5)
    values = list(rng.normal(10.0, 1.0, 400))
    widths = {n: interval(values[:n])["high"] - interval(values[:n])["low"] for n in (4, 16, 64)}
    assert widths[4] > widths[16] > widths[64]
    assert widths[16] / widths[64] == pytest.approx(2.0, rel=0.25)


def test_one_replication_has_no_interval():
    with pytest.raises(ValueError, match="at least two"):
        interval([1.0])


def test_figures_that_a_run_lacks_are_left_out():
    runs = [{"throughput": {"requests_per_s": r}, "ttft_s": {"p90": None}} for r in (1.0, 3.0)]
    got = intervals(runs, [1, 2])["figures"]
    assert list(got) == ["throughput"]
    assert (got["throughput"]["mean"], got["throughput"]["min"]) == (2.0, 1.0)


def test_run_with_seeds_replicates_and_reports_each_figures_interval(tmp_path):
    spec = tmp_path / "s.tsim"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    cache = ["--cache", str(tmp_path / "cache")]
    done = tokensim("run", spec, "--seeds", "4", "-o", out, *cache)
    assert done.returncode == 0, done.stderr
    assert "over 4 seeds (7..10)" in done.stdout
    entry = json.loads((out / "metrics.json").read_text())["intervals"]
    assert entry["seeds"] == [7, 8, 9, 10]
    tput = entry["figures"]["throughput"]
    assert tput["low"] <= tput["min"] <= tput["mean"] <= tput["max"] <= tput["high"]
    assert "SLO attainment" in entry["figures"]
    # the mean is the mean of the runs each seed gives alone
    alone = []
    for seed in (7, 8, 9, 10):
        one = tmp_path / f"one{seed}"
        assert tokensim("run", spec, "--seed", seed, "-o", one, "-q").returncode == 0
        alone.append(json.loads((one / "metrics.json").read_text())["throughput"]["requests_per_s"])
    assert tput["mean"] == pytest.approx(sum(alone) / 4)
    page = (out / "report.html").read_text()
    assert 'id="intervals"' in page and "mean of 4 seeds" in page
    # the latency CDFs carry the band the four runs span
    band = entry["cdf_spread"]["e2e_s"]
    assert all(lo <= hi for lo, hi in zip(band["low"], band["high"], strict=True))
    assert any(lo < hi for lo, hi in zip(band["low"], band["high"], strict=True))
    e2e = page[page.index('id="cdf-e2e"') :]
    assert '<path class="band"' in e2e[: e2e.index("</svg>")]
    assert "spread of 4 seeds" in e2e[: e2e.index("</svg>")]
    # and so do the charts over time: output tokens per second, bin by bin
    over = entry["timeline_spread"]["output_tokens_per_s"]
    assert any(lo < hi for lo, hi in zip(over["low"], over["high"], strict=True))
    tokens = page[page.index('id="tokens"') :]
    assert '<path class="band"' in tokens[: tokens.index("</svg>")]


def test_more_seeds_give_a_narrower_interval(tmp_path):
    spec = tmp_path / "s.tsim"
    spec.write_text(SPEC)
    width = {}
    for k in (3, 12):
        out = tmp_path / f"k{k}"
        args = ("--seeds", k, "-o", out, "-q", "--no-report", "--cache", tmp_path / "c")
        assert tokensim("run", spec, *args).returncode == 0
        f = json.loads((out / "metrics.json").read_text())["intervals"]["figures"]["TTFT p90"]
        width[k] = f["high"] - f["low"]
    assert width[12] < width[3]


@pytest.mark.parametrize(
    "extra, says",
    [
        (("--seeds", "0"), "--seeds takes a number of replications, at least 1"),
        (("--seeds", "3"), "replications (--seeds, or the workload's `seeds`) are of one run"),
    ],
)
def test_a_bad_seeds_option_is_a_usage_error(tmp_path, extra, says):
    spec = tmp_path / "s.tsim"
    spec.write_text(SPEC + "sweep { workload.arrivals.rate in 10/s, 20/s }\n")
    done = tokensim("run", spec, *extra, "-o", tmp_path / "o")
    assert done.returncode == 2 and says in done.stderr


@pytest.mark.parametrize("part", ["figures", "cdf_spread"])
def test_a_folder_with_broken_intervals_is_a_clear_error(tmp_path, part):
    spec = tmp_path / "s.tsim"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    args = ("--seeds", "2", "-o", out, "-q", "--cache", tmp_path / "c")
    assert tokensim("run", spec, *args).returncode == 0
    metrics = json.loads((out / "metrics.json").read_text())
    if part == "figures":
        metrics["intervals"]["figures"]["throughput"]["low"] = "low"
    else:
        metrics["intervals"]["cdf_spread"]["ttft_s"]["low"][3] = "low"
    (out / "metrics.json").write_text(json.dumps(metrics))
    done = tokensim("report", out)
    assert done.returncode != 0
    assert "`intervals` is not what tokensim run --seeds writes" in done.stderr
    assert "Traceback" not in done.stderr


def _runs(values, limit=1.0, rejected=0):
    return [
        {
            "requests": {"rejected": rejected},
            "slo": {
                "met": v < limit,
                "attainment": 1.0,
                "targets": [{"metric": "ttft", "stat": "p90", "op": "<", "limit_s": limit,
                             "value_s": v, "met": v < limit}],
            },
        }
        for v in values
    ]  # fmt: skip


@pytest.mark.parametrize(
    "values, every_run, at_90",
    [
        ([0.5, 0.6, 1.01], False, True),  # one seed misses; the mean is well within
        ([0.85, 0.95, 0.99], True, False),  # all pass, but the mean may be over at 90%
        ([0.5, 0.52, 0.55], True, True),
    ],
)
def test_search_can_decide_at_a_stated_confidence(values, every_run, at_90):
    from tokensim.explore.search import Settings, trial_passes

    runs = _runs(values)
    assert trial_passes(runs, Settings()) is every_run
    assert trial_passes(runs, Settings(confidence=0.9)) is at_90
    assert trial_passes(_runs(values, rejected=1), Settings(confidence=0.9)) is False


def test_search_with_confidence_runs_and_says_so(tmp_path):
    spec = tmp_path / "s.tsim"
    spec.write_text(SPEC)
    out = tmp_path / "o"
    args = ("--goal", "max-rate", "--seeds", "3", "--confidence", "0.9", "-o", out)
    done = tokensim("search", spec, *args, "--cache", tmp_path / "c", "-q")
    assert done.returncode in (0, 1), done.stderr
    info = json.loads((out / "search.json").read_text())
    assert info["confidence"] == 0.9
    assert "at 90.0% confidence" in (out / "index.html").read_text()
    bad = tokensim("search", spec, "--goal", "max-rate", "--seeds", "1", "--confidence", "0.9")
    assert bad.returncode == 2 and "--confidence needs at least two runs" in bad.stderr


def test_the_workload_may_ask_for_the_replications(tmp_path):
    spec = tmp_path / "s.tsim"
    spec.write_text(SPEC.replace("seed 7 }", "seed 7; seeds 3 }"))
    out = tmp_path / "o"
    cache = ("--cache", tmp_path / "c")
    assert tokensim("run", spec, "-o", out, "-q", "--no-report", *cache).returncode == 0
    assert json.loads((out / "metrics.json").read_text())["intervals"]["seeds"] == [7, 8, 9]
    # --seeds overrides it; search runs each configuration that many times
    assert tokensim("run", spec, "--seeds", "1", "-o", out, "-q", *cache).returncode == 0
    assert "intervals" not in json.loads((out / "metrics.json").read_text())
    found = tmp_path / "f"
    done = tokensim("search", spec, "--goal", "min-cost", "-o", found, "-q", *cache)
    assert done.returncode in (0, 1), done.stderr
    assert json.loads((found / "search.json").read_text())["seeds"] == [7, 8, 9]


def test_timelines_of_different_bin_widths_are_banded_in_the_wider():
    from tokensim.intervals import intervals

    fine = {
        "bin_s": 1.0,
        "completed_per_s": [1.0] * 10 + [3.0] * 10,
        "output_tokens_per_s": [0.0] * 20,
    }
    coarse = {"bin_s": 10.0, "completed_per_s": [2.0, 2.0], "output_tokens_per_s": [5.0, 5.0]}
    spread = intervals([{"timeline": fine}, {"timeline": coarse}], [1, 2])["timeline_spread"]
    assert spread["bin_s"] == 10.0
    assert spread["completed_per_s"] == {"low": [1.0, 2.0], "high": [2.0, 3.0]}
