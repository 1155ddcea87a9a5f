"""The end-to-end accuracy harness (bench/serving_runs.py, bench/e2e_accuracy.py): the loaders'
conversions on hand-written fixtures, the specs it writes, and, when ../shared is there, the
real measured runs."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import e2e_accuracy as e2e  # noqa: E402
import serving_runs as sr  # noqa: E402

import tokensim  # noqa: E402

SERVING = Path(__file__).resolve().parents[2] / "shared" / "data" / "serving"


def shared_data() -> Path:
    if not (SERVING / "README.md").is_file():
        pytest.skip(
            f"shared data absent: {SERVING} (the measured serving runs are not in the repo)"
        )
    return SERVING


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# ------------------------------------------------------------------------- serve flags


def test_serve_flags_of_each_engine():
    f = sr.flags_from(
        "vllm",
        "vllm serve Qwen/Qwen3-14B -tp 2 --max-num-seqs 64 --max-num-batched-tokens=4096 "
        "--gpu-memory-utilization 0.85 --kv-cache-dtype fp8_e4m3 --enforce-eager "
        "--no-enable-prefix-caching --reasoning-parser qwen3",
        tp=2,
    )
    assert (f.tp, f.max_num_seqs, f.max_num_batched_tokens) == (2, 64, 4096)
    assert f.gpu_memory_utilization == 0.85 and f.kv_cache_dtype == "fp8"
    assert f.enforce_eager is True and f.enable_prefix_caching is False
    assert ("--reasoning-parser", "qwen3") in f.extra
    g = sr.flags_from(
        "sglang",
        "python3 -m sglang.launch_server --model-path m --tp-size 8 --mem-frac 0.87 "
        "--disable-radix-cache --enable-torch-compile --chunked-prefill-size 4096",
        tp=8,
    )
    assert g.gpu_memory_utilization == 0.87 and g.enable_prefix_caching is False
    assert g.torch_compile and g.max_num_batched_tokens == 4096 and g.chunked_prefill
    t = sr.flags_from("trtllm", "trtllm-serve m --max_num_tokens=16384 --enable_chunked_prefill")
    assert t.max_num_batched_tokens == 16384 and t.chunked_prefill is True


# --------------------------------------------------------------------------- LambdaLabs


def _lambdalabs_result() -> dict:
    """A benchmark_serving.py result: 4 requests, the third failed (output 0, TTFT 0)."""
    return {
        "model_id": "meta-llama/Meta-Llama-3-8B-Instruct",
        "duration": 2.0,
        "input_lens": [100, 200, 1900, 50],
        "output_lens": [11, 21, 0, 1],
        "ttfts": [0.1, 0.2, 0.0, 0.3],
        "itls": [[0.05, 0.05], [0.1, 0.1, 0.1], [], []],
        "mean_tpot_ms": 10.0,
        "median_tpot_ms": 9.0,
        "p99_tpot_ms": 20.0,
        "mean_itl_ms": 80.0,
        "median_itl_ms": 75.0,
        "p99_itl_ms": 100.0,
        "mean_latency_ms": 500.0,
        "median_latency_ms": 400.0,
        "p99_latency_ms": 900.0,
    }


def test_lambdalabs_drops_failed_requests_and_keeps_units_straight():
    run = sr.lambdalabs_run(_lambdalabs_result(), "x", "llama3_8b", "H100_SXM", 1, 2048)
    w = run.workload
    assert w.arrival == "burst" and w.lengths == "list" and w.requests == 3
    assert w.prompt_lens == (100, 200, 50) and w.output_lens == (11, 21, 1)
    m = {k: x.value for k, x in run.measured.items()}
    # TTFT over the successful requests only (vLLM's summary counts the failed one's 0)
    assert m["ttft_mean"] == pytest.approx(0.2)
    assert m["ttft_p50"] == pytest.approx(0.2)
    # summaries in ms become seconds
    assert m["tpot_mean"] == pytest.approx(0.010) and m["itl_p99"] == pytest.approx(0.100)
    # E2E of the successful requests from TTFT + ITLs: 0.2, 0.5, 0.3
    assert m["e2e_mean"] == pytest.approx(1.0 / 3)
    assert m["e2e_p50"] == pytest.approx(0.3)
    assert m["throughput_requests_per_s"] == pytest.approx(1.5)  # 3 succeeded in 2 s
    assert m["throughput_output_tokens_per_s"] == pytest.approx(16.5)
    assert all(x.unit == "s" for x in run.metrics if x.name != "throughput")
    assert run.flags.num_scheduler_steps == 10 and run.flags.gpu_memory_utilization == 0.95


def test_lambdalabs_e2e_without_itls_corrects_the_mean_only():
    result = _lambdalabs_result()
    del result["itls"]
    m = sr.lambdalabs_run(result, "x", "llama3_8b", "H100_SXM", 1, 2048).measured
    assert m["e2e_mean"].value == pytest.approx(0.5 * 4 / 3)
    assert "e2e_p50" not in m and "e2e_p99" not in m


# ---------------------------------------------------------------------------- GPUStack

GPUSTACK_COLUMNS = (
    "row_id doc doc_line engine engine_version model_doc model_served gpu tp pp dp ep dp_attention "
    "weight_quantization kv_cache_dtype speculative_decoding serve_command serve_args_effective "
    "doc_format dataset input_len output_len num_prompts request_rate_req_per_s max_concurrency "
    "successful_requests total_input_tokens total_generated_tokens request_throughput_req_per_s "
    "output_token_throughput_tok_per_s mean_e2e_latency_s median_e2e_latency_s "
    "p95_e2e_latency_s p99_e2e_latency_s derivation_notes case_label label"
).split()
for _name in ("ttft", "tpot", "itl"):
    for _stat in ("mean", "median", "p95", "p99"):
        GPUSTACK_COLUMNS.append(f"{_stat}_{_name}_ms")


def _gpustack_row(**kw) -> dict:
    row = dict.fromkeys(GPUSTACK_COLUMNS, "")
    row.update(
        row_id="1",
        doc="qwen3-14b/h100.md",
        doc_line="10",
        engine="vLLM",
        engine_version="0.11.0",
        model_served="Qwen/Qwen3-14B",
        gpu="H100 SXM 80GB",
        tp="1",
        pp="1",
        dp="1",
        weight_quantization="bf16 (checkpoint default)",
        kv_cache_dtype="auto (engine default)",
        serve_args_effective="vllm serve Qwen/Qwen3-14B",
        doc_format="vllm-bench",
        dataset="random",
        input_len="2000",
        output_len="100",
        num_prompts="500",
        request_rate_req_per_s="inf",
        successful_requests="500",
        total_input_tokens="1000000",
        total_generated_tokens="49000",
        request_throughput_req_per_s="5.0",
        output_token_throughput_tok_per_s="490.0",
        mean_ttft_ms="1500",
        median_ttft_ms="1400",
        p99_ttft_ms="3000",
        mean_tpot_ms="20",
        median_tpot_ms="19",
        p99_tpot_ms="40",
        mean_itl_ms="20",
        median_itl_ms="18",
        p99_itl_ms="60",
    )
    row.update(kw)
    return row


def test_gpustack_rows_and_skips(tmp_path):
    rows = [
        _gpustack_row(),
        _gpustack_row(  # guidellm: constant rate, TPOT derived from E2E and TTFT
            row_id="2",
            doc_format="guidellm",
            request_rate_req_per_s="8",
            dataset="sharegpt",
            num_prompts="100",
            successful_requests="100",
            total_input_tokens="20000",
            total_generated_tokens="28100",
            mean_ttft_ms="100",
            mean_e2e_latency_s="2.9",
            mean_tpot_ms="1.0",
        ),
        _gpustack_row(
            row_id="3", max_concurrency="4", num_prompts="100", successful_requests="100"
        ),
        _gpustack_row(row_id="4", gpu="Ascend 910B", engine="MindIE"),
        _gpustack_row(row_id="5", speculative_decoding="yes"),
        _gpustack_row(row_id="6", successful_requests="490"),
        _gpustack_row(row_id="7", gpu="A100 SXM 80GB", weight_quantization="fp8 (checkpoint)"),
        _gpustack_row(row_id="8", model_served="openai/gpt-oss-20b"),
        _gpustack_row(row_id="9", weight_quantization="awq int4 (checkpoint)"),
    ]
    _write_csv(tmp_path / "gpustack" / "results.csv", rows)
    got = sr.load_gpustack(tmp_path)
    assert [r.id for r in got.runs] == ["gpustack/1", "gpustack/2", "gpustack/3"]
    fixed, guide, closed = got.runs
    assert fixed.model == "qwen3_14b" and fixed.gpu == "H100_SXM" and fixed.engine == "vllm"
    assert (fixed.workload.arrival, fixed.workload.prompt, fixed.workload.output) == (
        "burst",
        2000,
        98,  # the mean generated: some outputs stopped early
    )
    m = fixed.measured
    assert m["ttft_mean"].value == pytest.approx(1.5) and m["itl_p50"].value == pytest.approx(0.018)
    assert m["throughput_output_tokens_per_s"].value == 490.0
    assert guide.workload.arrival == "constant" and guide.workload.rate == 8.0
    assert guide.workload.lengths == "sharegpt" and guide.workload.mean_output == 281.0
    g = guide.measured
    assert "tpot_mean" not in g  # not per token in guidellm reports
    assert g["tpot_e2e_mean"].value == pytest.approx((2.9 - 0.1) / 280)
    assert closed.workload.arrival == "closed" and closed.workload.concurrency == 4
    reasons = {s.id: s.reason for s in got.skips}
    assert reasons == {
        "gpustack/4": sr.ASCEND,
        "gpustack/5": sr.SPECULATIVE,
        "gpustack/6": sr.FAILURES,
        "gpustack/7": sr.FP8_A100,
        "gpustack/8": sr.model_reason(sr.model_name("openai/gpt-oss-20b")[1]),
        "gpustack/9": sr.INT4,
    }


def test_gpustack_moe_rows_keep_their_parallelism_and_checkpoint_precision(tmp_path):
    deepseek = dict(model_served="deepseek-ai/DeepSeek-R1-0528", gpu="H200 SXM 141GB", tp="8")
    rows = [
        _gpustack_row(row_id="1", **deepseek),  # "checkpoint default": R1 ships in fp8
        _gpustack_row(row_id="2", engine="TensorRT-LLM", ep="8", **deepseek),
        _gpustack_row(row_id="3", engine="SGLang", dp="8", dp_attention="yes", **deepseek),
        _gpustack_row(row_id="4", dp="2", **deepseek),  # two engines side by side
        _gpustack_row(row_id="5", model_served="zai-org/GLM-4.5-Air", tp="4", ep="4"),
        _gpustack_row(
            row_id="6",
            model_served="zai-org/GLM-4.6-FP8",
            weight_quantization="fp8 (checkpoint)",
            tp="8",
        ),
        _gpustack_row(row_id="7", model_served="deepseek-ai/DeepSeek-V3.2", tp="8"),
    ]
    _write_csv(tmp_path / "gpustack" / "results.csv", rows)
    got = sr.load_gpustack(tmp_path)
    runs = {r.id: r for r in got.runs}
    assert sorted(runs) == ["gpustack/1", "gpustack/2", "gpustack/3", "gpustack/5", "gpustack/6"]
    r1, r2, r3 = runs["gpustack/1"], runs["gpustack/2"], runs["gpustack/3"]
    assert (r1.model, r1.dtype, r1.flags.tp, r1.flags.ep, r1.gpus) == (
        "deepseek_v3",
        "fp8",
        8,
        1,
        8,
    )
    assert (r2.flags.tp, r2.flags.ep) == (8, 8)
    assert (r3.flags.tp, r3.flags.dp, r3.gpus) == (1, 8, 8)  # SGLang's --tp counts every GPU
    glm, glm_fp8 = runs["gpustack/5"], runs["gpustack/6"]
    assert (glm.model, glm.dtype, glm.flags.ep) == ("glm4_5_air", "bf16", 4)
    assert (glm_fp8.model, glm_fp8.dtype) == ("glm4_6", "fp8")
    reasons = {s.id: s.reason for s in got.skips}
    assert reasons["gpustack/4"] == sr.EXPERT_PARALLEL
    assert reasons["gpustack/7"].startswith("model not representable: DeepSeek Sparse Attention")
    # the specs say so, and tokensim deploys them as written
    pool = e2e.spec_text(r3, engines=True).split("pool serve {")[1]
    assert "model deepseek_v3 fp8" in pool and "dp 8" in pool and "tp " not in pool
    assert "ep 8" in e2e.spec_text(r2, engines=True)
    for run in (r1, r2, r3, glm, glm_fp8):
        tokensim.load(e2e.spec_text(run, engines=True))  # checked: fits, parallelism valid


# --------------------------------------------------------------------------------- BLIS


def test_blis_stages_derive_per_token_time_from_e2e(tmp_path):
    base = {
        "experiment": "20260217-155451-llama-2-7b-tp1-codegen",
        "stage": "stage_0",
        "workload_profile": "codegen",
        "model": "meta-llama/Llama-2-7b-hf",
        "tp": "1",
        "max_model_len": "4096",
        "max_num_batched_tokens": "2048",
        "max_num_seqs": "128",
        "requested_rate_req_per_s": "5.0",
        "requests_sent": "3000",
        "failures": "0",
        "sp_output_len": "247",
        "sp_system_prompt_len": "100",
        "sp_num_groups": "10",
        "sp_num_prompts_per_group": "10",
        "prompt_len_mean": "591.63",
        "req_per_s": "4.98",
        **{f"ttft_ms_{s}": "25" for s in ("mean", "median", "p90", "p99")},
        **{f"e2e_latency_s_{s}": "1.8" for s in ("mean", "median", "p90", "p99")},
    }
    rows = [
        base,
        {**base, "stage": "summary"},
        {**base, "experiment": "x-llama-2-7b-tp1-reasoning", "workload_profile": "reasoning"},
    ]
    _write_csv(tmp_path / "blis_training" / "summary.csv", rows)
    got = sr.load_blis(tmp_path)
    (run,) = got.runs
    assert run.id == "blis/llama-2-7b-tp1-codegen/stage_0"
    w = run.workload
    assert (w.arrival, w.rate, w.requests, w.prompt, w.output) == ("constant", 5.0, 3000, 592, 247)
    assert w.prompts == sr.PromptSet(10, 10, 100) and run.engine_version.count("2026")
    m = run.measured
    assert m["ttft_p90"].value == pytest.approx(0.025)
    assert m["tpot_e2e_mean"].value == pytest.approx((1.8 - 0.025) / 246)
    assert "itl_p50" not in m and "throughput_output_tokens_per_s" not in m
    assert run.flags.max_num_batched_tokens == 2048 and run.flags.max_num_seqs == 128
    assert sorted(s.reason for s in got.skips) == sorted([sr.DUPLICATE, sr.OVERLOADED])


# ------------------------------------------------------------------------ ShareGPT lengths


def test_sharegpt_lengths_match_the_known_means():
    p, o = sr.sharegpt_lengths(1000, 217.4, 201.6, seed=3)
    assert abs(p.mean() - 217.4) < 1 and abs(o.mean() - 201.6) < 1
    assert p.min() >= 4 and p.max() <= 1024 and o.min() >= 4 and (p + o).max() <= 2048
    p2, o2 = sr.sharegpt_lengths(1000, 217.4, 201.6, seed=3)
    assert np.array_equal(p, p2) and np.array_equal(o, o2)


# ----------------------------------------------------------------------------- specs


def _run(**kw) -> sr.MeasuredRun:
    args = dict(
        id="test/1",
        source="gpustack",
        engine="vllm",
        engine_version="0.11.0",
        flags=sr.Flags(tp=2, max_num_seqs=64),
        gpu="H100_SXM",
        gpus=2,
        model="llama3_1_8b",
        dtype="bf16",
        workload=sr.Workload("burst", 20, "fixed", prompt=300, output=20),
        metrics=(
            sr.Metric("ttft", "mean", 0.1, "s"),
            sr.Metric("tpot", "p50", 0.01, "s"),
            sr.Metric("tpot_e2e", "mean", 0.01, "s"),
            sr.Metric("itl", "p50", 0.01, "s"),
            sr.Metric("throughput", "requests_per_s", 10.0, "1/s"),
        ),
    )
    args.update(kw)
    return sr.MeasuredRun(**args)


def test_spec_without_the_engine_language_writes_the_engine_defaults():
    run = _run()
    text = e2e.spec_text(run, engines=False)
    assert "batching chunked { budget 8192 tokens; max_seqs 64 }" in text
    assert "tp 2" in text and "link NVLINK4" in text and "lengths fixed 300 -> 20" in text
    spec = tokensim.load(text)
    assert spec.deployment.pools[0].tp == 2
    over = e2e.spec_text(run, {"kv.gpu_util": 0.8}, engines=False)
    assert "gpu_util 0.8" in over
    with pytest.raises(ValueError, match="engine language"):
        e2e.spec_text(run, {"host.iteration": "1 ms"}, engines=False)


def test_engine_statement_puts_flags_and_overrides_in_the_braces():
    run = _run(
        engine_version="0.5.4-0.6.0",
        flags=sr.Flags(max_num_seqs=1024, gpu_memory_utilization=0.95, num_scheduler_steps=10),
    )
    (stmt,) = e2e.engine_statement(run, {"host.iteration": "2 ms", "scheduler_steps": 4}, True)
    assert stmt.startswith("engine vllm_0_6 {")
    assert "batching continuous { max_seqs 1024 }" in stmt and "kv { gpu_util 0.95 }" in stmt
    assert "scheduler_steps 4" in stmt and "host { iteration 2 ms }" in stmt
    assert e2e.engine_statement(_run(engine="sglang", flags=sr.Flags()), None, True) == [
        "engine sglang"
    ]


def test_engine_by_version():
    assert e2e.engine_name(_run(engine_version="0.11.0")) == "vllm_v1"
    assert e2e.engine_name(_run(engine_version="0.14.1")) == "vllm_0_14"
    assert e2e.engine_name(_run(engine_version="0.5.4-0.6.0")) == "vllm_0_6"
    assert e2e.engine_name(_run(engine_version="V1 build of early 2026")) == "vllm_0_14"
    assert e2e.engine_name(_run(engine="nim", engine_version="1.8.0")) == "trtllm"


def test_a_prompt_set_shares_its_prefix_blocks():
    ps = sr.PromptSet(groups=3, per_group=2, shared=40)  # 2 full 16-token blocks shared
    w = sr.Workload("constant", 12, "fixed", rate=1.0, prompt=70, output=5, prompts=ps)
    prompts, outputs = sr.request_lengths(w)
    assert list(prompts) == [70] * 12 and list(outputs) == [5] * 12
    ids = sr.prefix_ids(w, prompts)
    assert all(len(i) == 70 // 16 for i in ids)
    assert ids[6:] == ids[:6]  # the six distinct prompts are sent again in the same order
    assert len(set(ids[:6])) == 6  # each distinct
    heads = {i[:2] for i in ids[:6]}
    assert len(heads) == 3  # one system prompt per group
    for a in ids[:6]:  # only a prompt of the same group shares blocks, and only those two
        for b in ids[:6]:
            if a != b:
                common = sum(x == y for x, y in zip(a, b, strict=True))
                assert common in (0, 2)
    assert sr.prefix_ids(sr.Workload("burst", 3, "fixed", prompt=70, output=5), prompts) is None


def test_a_prompt_set_is_served_from_the_prefix_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSIM_E2E_CACHE", str(tmp_path))
    ps = sr.PromptSet(groups=2, per_group=2, shared=32)
    w = sr.Workload("constant", 40, "fixed", rate=4.0, prompt=200, output=4, prompts=ps)
    run = _run(workload=w, flags=sr.Flags(), gpus=1)
    text = e2e.spec_text(run, engines=True)
    trace = text.split('trace "')[1].split('"')[0]
    assert Path(trace).read_text().splitlines()[0].endswith("prefix_hashes,prefix_block_tokens")
    cached = tokensim.run(text).requests["cached_tokens"]
    # first round: only the system prompt of a group's second prompt hits
    assert sorted(cached[:4]) == [0, 0, 32, 32]
    assert (cached[4:] >= 192).all()  # later rounds hit every full block (12 of 200 computed)
    # a truncated run keeps five rounds of the set
    assert e2e.truncate(run, 5).workload.requests == 20


def test_per_request_lengths_go_through_a_trace(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSIM_E2E_CACHE", str(tmp_path))
    w = sr.Workload("poisson", 3, "list", rate=2.0, prompt_lens=(10, 20, 30), output_lens=(5, 6, 7))
    text = e2e.spec_text(_run(workload=w, flags=sr.Flags(), gpus=1), engines=False)
    assert "arrivals poisson 2/s" in text and f'trace "{tmp_path}' in text
    sim = e2e.simulate(_run(workload=w, flags=sr.Flags(), gpus=1), engines=False)
    assert sim.error is None and sim.completed == 3


def test_simulate_compares_every_measured_metric_deterministically():
    runs = [_run(), _run(id="test/2", workload=sr.Workload("constant", 30, "fixed", rate=5.0,
                                                           prompt=100, output=10))]  # fmt: skip
    one = e2e.evaluate(runs, processes=1, engines=False)
    two = e2e.evaluate(runs, processes=2, engines=False)
    assert [(r.run.id, r.metric.key, r.simulated) for r in one.rows] == [
        (r.run.id, r.metric.key, r.simulated) for r in two.rows
    ]
    assert len(one.rows) == 10 and all(np.isfinite(r.error) for r in one.rows)
    table = e2e.error_table(one.rows)
    assert table.splitlines()[0].startswith("| source | runs | TTFT | TPOT | ITL | E2E |")
    assert "| gpustack | 2 |" in table


def test_error_table_aggregates_absolute_relative_errors():
    run = _run()
    rows = [
        e2e.Row(run, sr.Metric("ttft", "mean", 1.0, "s"), 1.5),  # +50%
        e2e.Row(run, sr.Metric("ttft", "p50", 1.0, "s"), 0.9),  # -10%
        e2e.Row(run, sr.Metric("ttft", "p99", 2.0, "s"), 1.6),  # -20%
    ]
    s = e2e.summary(rows, lambda r: (r.metric.family,))
    med, p90, n = s[("TTFT",)]
    assert n == 3 and med == pytest.approx(0.2) and p90 == pytest.approx(0.44)


def test_truncate_keeps_bursts_whole():
    w = sr.Workload("closed", 500, "list", concurrency=4, prompt_lens=(1,) * 500,
                    output_lens=(2,) * 500)  # fmt: skip
    short = e2e.truncate(_run(workload=w), 100).workload
    assert short.requests == 100 and len(short.prompt_lens) == 100
    assert e2e.truncate(_run(), 5).workload.requests == 20  # a burst is not cut


# ---------------------------------------------------------------- the real measured runs


def test_every_source_loads_with_skip_reasons():
    data = shared_data()
    loaded = sr.load(data=data)
    per = {s: sum(r.source == s for r in loaded.runs) for s in sr.SOURCES}
    assert all(per.values()), per
    assert all(s.reason for s in loaded.skips)
    for run in loaded.runs:
        assert run.metrics, run.id
        assert all(m.value > 0 and np.isfinite(m.value) for m in run.metrics), run.id
        assert run.model in e2e._catalogue_params(), run.id
    ids = [r.id for r in loaded.runs]
    assert len(ids) == len(set(ids))


def test_a_real_run_simulates_in_process():
    data = shared_data()
    runs = [r for r in sr.load_lambdalabs(data).runs if r.id.startswith("lambdalabs/p10-1xH100")]
    assert runs
    for run in runs:
        tokensim.load(e2e.spec_text(run, engines=False))
    ev = e2e.evaluate(runs[:1], processes=1)
    assert ev.rows and not ev.skips
    assert {r.metric.family for r in ev.rows} >= {"TTFT", "TPOT", "E2E", "throughput"}


# ----------------------------------------------------------------------- engine fitting


def test_the_fit_changes_what_it_says_and_weighs_runs_equally():
    import fit_engines as fe

    values = np.array([k.start for k in fe.KNOBS]) * 2
    over = fe.overrides(values)
    assert over["host.iteration"] == f"{2 * fe.KNOBS[0].start:g} ms"
    assert over["kernels.gemm"] == "2"  # a factor has no unit
    # the statements are ones the engine takes: the spec compiles with all of them
    run = _run(metrics=(sr.Metric("ttft", "mean", 0.1, "s"),))
    spec = tokensim.load(e2e.spec_text(run, over, True))
    engine = spec.deployment.pools[0].engine
    assert engine.host.iteration_s == pytest.approx(2 * fe.KNOBS[0].start * 1e-3)
    assert dict(engine.kernels)["gemm"] == 2
    # a run of two metrics weighs what a run of one does; a 10x miss counts as 4x
    one = _run(id="a", metrics=(sr.Metric("ttft", "mean", 1.0, "s"),))
    two = _run(id="b")
    rows = [e2e.Row(one, one.metrics[0], 10.0)] + [e2e.Row(two, m, m.value) for m in two.metrics]
    r = fe.residuals(rows)
    assert r[0] == pytest.approx(np.log(4.0)) and np.allclose(r[1:], 0)
    rows = [e2e.Row(two, m, 2 * m.value) for m in two.metrics]
    assert np.sum(fe.residuals(rows) ** 2) == pytest.approx(np.log(2.0) ** 2)


def test_an_engines_own_figures_are_kept_when_shared_ones_are_written(tmp_path):
    import fit_engines as fe

    catalogue = tmp_path / "engines.tsim"
    catalogue.write_text(fe.CATALOGUE.read_text("utf-8"), "utf-8")
    values = np.array([k.start for k in fe.KNOBS])
    token = [i for i, k in enumerate(fe.KNOBS) if k.path == "frontend.per_output_token"][0]
    values[token] = 3.0
    engines = ("vllm_v1", "vllm_0_14")
    fe.write_catalogue(
        {e: values for e in engines}, dict.fromkeys(engines, "X"), fe.SHARED, catalogue
    )
    text = catalogue.read_text("utf-8")

    def frontend(name):
        start = text.index(f"\nengine {name} {{")
        return text[start : text.index("\n}\n", start)].split("\n  frontend {")[1]

    assert "per_output_token 3 us" in frontend("vllm_v1")
    kept = frontend("vllm_0_14")  # vLLM 0.14's own, fitted on its runs: not overwritten
    before = fe.CATALOGUE.read_text("utf-8")
    start = before.index("\nengine vllm_0_14 {")
    assert kept.split("}")[0] == before[start:].split("\n  frontend {")[1].split("}")[0]
    assert "bench/fit_engines.py on X" not in kept


def test_fitted_front_ends_are_written_per_engine_beside_a_shared_host(tmp_path):
    import fit_engines as fe

    catalogue = tmp_path / "engines.tsim"
    catalogue.write_text(fe.CATALOGUE.read_text("utf-8"), "utf-8")
    runs = [
        _run(id="a", source="blis", engine="vllm", gpu="H100_SXM"),
        _run(id="b", source="nim", engine="nim", gpu="H100_SXM"),
    ]
    base = np.array([k.start for k in fe.KNOBS])
    fitted = {e: base.copy() for e in fe.ENGINES}
    front = [i for i, k in enumerate(fe.KNOBS) if k.path == "frontend.per_request"][0]
    fitted["vllm_v1"][front], fitted["trtllm"][front] = 11.5, 0.75
    fe.write_fit(fitted, runs, shared=True, frontends=True, path=catalogue)
    text = catalogue.read_text("utf-8")

    def block(name):
        start = text.index(f"\nengine {name} {{")
        return text[start : text.index("\n}\n", start)]

    v1, trt, sgl = block("vllm_v1"), block("trtllm"), block("sglang")
    assert "per_request 11.5 ms" in v1 and "per_request 0.75 ms" in trt
    # each front end says the runs it was fitted on; the host, every run
    every = "every engine's runs together: 1 nim (H100_SXM) and 1 blis (H100_SXM)"
    for engine in (v1, trt, sgl):
        host_note = engine.split("\n  host {")[1].split("\n  frontend {")[0]
        assert every in host_note
    assert "fitted (per_request, latency, per_output_token) by bench/fit_engines.py on 1 blis" in v1
    assert "fitted (per_request, latency, per_output_token) by bench/fit_engines.py on 1 nim" in trt
    # an engine with no runs of its own keeps the front end it had
    before = fe.CATALOGUE.read_text("utf-8")
    assert (
        sgl.split("\n  frontend {")[1]
        == before.split("\nengine sglang {")[1].split("\n  frontend {")[1].split("\n}\n")[0]
    )
