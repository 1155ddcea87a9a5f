"""The Python API and --set overrides, as a notebook or a shell user would use them."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, SPECS

import tokensim

SPEC = ROOT / "specs" / "single_gpu_8b.tsim"


def test_load_run_and_read_results():
    spec = tokensim.load(SPEC, {"workload.requests": "150", "workload.arrivals.rate": "12/s"})
    assert spec.workload.requests == 150 and spec.workload.arrivals.get("rate") == 12
    run = tokensim.run(spec, seed=4)
    assert run.metrics["requests"]["completed"] == 150
    ttft = run.requests["ttft_s"]
    assert isinstance(ttft, np.ndarray) and len(ttft) == 150
    assert run.metrics["ttft_s"]["p50"] == pytest.approx(np.percentile(ttft, 50))
    assert set(run.timeseries) == {"serve[0]"}


def test_load_from_text_and_errors_are_compile_errors():
    text = SPEC.read_text().replace("requests 2000", "requests 20")
    assert tokensim.load(text).workload.requests == 20
    with pytest.raises(tokensim.CompileError) as info:
        tokensim.load(SPEC, {"deployment.serve.tp": "3"})
    assert "tp 3 does not divide" in str(info.value)


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("workload.arrivals.rate", "20 GB", "expected a rate, found a size in bytes"),
        ("deployment.serve.tpp", "2", "this spec can set `deployment.serve.tp`"),
        ("workload.arrivals.rat", "2/s", "has no parameter `rat`"),
    ],
)
def test_bad_overrides_are_located_at_the_set_text(path, value, message):
    with pytest.raises(tokensim.CompileError) as info:
        tokensim.load(SPEC, {path: value})
    assert message in str(info.value) and f"--> --set {path}:1:" in str(info.value)


def test_a_pool_is_set_as_a_whole_block():
    spec = tokensim.load(SPEC, {"deployment.serve": "{ model llama3_1_8b fp8 }"})
    (pool,) = spec.deployment.pools
    assert pool.dtype == "fp8"
    assert pool.kv.span is None  # the spec's own `kv { ... }` went with the block it replaced
    with pytest.raises(tokensim.CompileError) as info:
        tokensim.load(SPEC, {"deployment.serve": "llama3_1_8b"})
    said = str(info.value)
    assert "`deployment.serve` is a block" in said and "--> --set deployment.serve:1:" in said
    assert "write `deployment.serve={ ... }`" in said


def test_override_moves_shorthand_values_into_the_body():
    text = SPEC.read_text().replace("arrivals poisson 8/s", "arrivals gamma 8/s { cv 3 }")
    spec = tokensim.load(text, {"workload.arrivals.cv": "2"})
    assert dict(spec.workload.arrivals.params) == {"rate": 8, "cv": 2, "exact": False}


def test_cli_set_and_seed(tmp_path):
    out = tmp_path / "r"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokensim",
            "run",
            str(SPEC),
            "-o",
            str(out),
            "-q",
            "--seed",
            "9",
            "--set",
            "workload.requests=80",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert '"completed": 80' in (out / "metrics.json").read_text()
    assert '"seed": 9' in (out / "metrics.json").read_text()


@pytest.mark.filterwarnings("ignore:.*ignores its sweep")
def test_every_shipped_single_pool_spec_runs(tmp_path):
    for path in SPECS:
        spec = tokensim.load(path, {"workload.requests": "60"})
        if any(p.role != "colocated" for p in spec.deployment.pools):
            continue
        run = tokensim.run(spec)
        assert run.metrics["requests"]["completed"] == 60, path.name


def test_setting_another_policy_drops_the_old_policys_parameters():
    spec = tokensim.load(SPEC, {"deployment.serve.batching": "chunked"})
    assert spec.deployment.pools[0].batching.name == "chunked"
    spec = tokensim.load(SPEC, {"deployment.serve.batching": "continuous"})
    assert dict(spec.deployment.pools[0].batching.params)["max_tokens"] == 8192  # kept


def test_a_bad_path_after_a_statement_without_its_block_is_still_located():
    # `trace x` has no { } block: listing the settable paths must not trip on it
    with pytest.raises(tokensim.CompileError) as info:
        tokensim.load(SPEC, {"workload.trace": '"t.csv"', "deployment.tp": "2"})
    assert "this spec can set `deployment.serve.tp`" in str(info.value)


TWO_NODES = """
import "std/hardware"
import "std/models"
cluster {
  node n0 { gpus H100_SXM x 8; link NVLINK4 }
  node n1 { gpus H100_SXM x 8; link NVLINK4 }
  network IB_400G between n0, n1
}
deployment { pool p { model llama3_1_8b; instances 2 } }
workload { arrivals poisson 5/s; lengths chat; requests 100; seed 1 }
"""


def test_a_wildcard_sets_every_path_it_matches():
    spec = tokensim.load(TWO_NODES, {"cluster.*.gpus": "H200"})
    assert [n.gpu.name for n in spec.cluster.nodes] == ["H200", "H200"]
    assert [n.count for n in spec.cluster.nodes] == [8, 8]  # `x 8` kept


def test_a_wildcard_that_matches_nothing_names_what_does():
    with pytest.raises(tokensim.CompileError) as info:
        tokensim.load(TWO_NODES, {"cluster.*.gpuz": "H200"})
    message = str(info.value)
    assert "`cluster.*.gpuz` matches nothing" in message
    assert "`cluster.n0.gpus`, `cluster.n1.gpus`" in message
