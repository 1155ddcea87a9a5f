"""What a run reports as vLLM does: every latency's std and p95 and the spec's
`metrics { percentiles }` in metrics.json, and bench.json with `vllm bench serve`'s names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import errors_of

import tokensim
from tokensim.replay.results import read

SPEC = """
import "std/hardware"
import "std/models"
cluster { node n0 { gpus H100_SXM x 1 } }
deployment { pool p { model llama3_1_8b } }
workload { arrivals ARRIVALS; lengths chat; requests 120; seed 4 }
slo { ttft p90 < 200 ms }
"""


def run(tmp_path, arrivals="poisson 6/s", extra=""):
    path = tmp_path / "s.tsim"
    path.write_text(SPEC.replace("ARRIVALS", arrivals) + extra)
    done = tokensim.run(path)
    out = tmp_path / "out"
    done.write(out, page=False)
    return done, json.loads((out / "metrics.json").read_text()), out / "bench.json"


def test_latencies_have_std_p95_and_the_percentiles_the_spec_asks_for(tmp_path):
    done, metrics, _ = run(tmp_path, extra="metrics { percentiles 99.9, 75 }\n")
    ttft = done.requests["ttft_s"][~done.requests["rejected"]]
    got = metrics["ttft_s"]
    assert set(got) == {"mean", "std", "p50", "p75", "p90", "p95", "p99", "p99.9"}
    assert got["std"] == pytest.approx(float(ttft.std()), rel=1e-6)
    assert got["p99.9"] == pytest.approx(float(np.percentile(ttft, 99.9)), rel=1e-6)
    assert set(metrics["itl_s"]) == set(got)


def test_bench_json_names_the_run_as_vllm_does(tmp_path):
    _, metrics, path = run(tmp_path, extra="metrics { percentiles 99.9 }\n")
    bench = json.loads(path.read_text())
    for name, key in (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("itl", "itl_s"), ("e2el", "e2e_s")):
        assert bench[f"mean_{name}_ms"] == pytest.approx(metrics[key]["mean"] * 1e3)
        assert bench[f"median_{name}_ms"] == pytest.approx(metrics[key]["p50"] * 1e3)
        assert bench[f"std_{name}_ms"] == pytest.approx(metrics[key]["std"] * 1e3)
        assert bench[f"p99_{name}_ms"] == pytest.approx(metrics[key]["p99"] * 1e3)
        assert bench[f"p99.9_{name}_ms"] == pytest.approx(metrics[key]["p99.9"] * 1e3)
    assert bench["completed"] == metrics["requests"]["completed"] == len(bench["ttfts"])
    assert bench["request_throughput"] == metrics["throughput"]["requests_per_s"]
    assert bench["request_goodput"] == metrics["slo"]["goodput_requests_per_s"]
    assert bench["total_output_tokens"] == sum(bench["output_lens"])
    assert (bench["request_rate"], bench["burstiness"]) == (6.0, 1.0)


@pytest.mark.parametrize(
    "arrivals, load",
    [
        ("closed 8", {"request_rate": "inf", "max_concurrency": 8}),
        ("burst", {"request_rate": "inf"}),
        ("gamma 6/s { cv 2 }", {"request_rate": 6.0, "burstiness": 0.25}),
        ("constant 6/s", {"request_rate": 6.0, "burstiness": 1e6}),
    ],
)
def test_bench_json_says_how_the_requests_were_sent(tmp_path, arrivals, load):
    _, _, path = run(tmp_path, arrivals)
    bench = json.loads(path.read_text())
    assert {k: bench.get(k) for k in load} == load


def test_bench_json_reads_back_as_a_vllm_result_of_the_same_load(tmp_path):
    _, metrics, path = run(tmp_path)
    (observed,) = read(path)
    assert observed.format == "vLLM bench serve" and observed.arrivals == "poisson 6/s"
    assert observed.requests == metrics["requests"]["completed"]
    assert observed.metrics["ttft_p99"] == pytest.approx(metrics["ttft_s"]["p99"])


def test_a_percentile_outside_0_to_100_is_an_error():
    out = errors_of("metrics { percentiles 0, 101 }\n")
    assert "must be > 0" in out and "must be <= 100" in out
