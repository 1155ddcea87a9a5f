"""Calibrating from a user's own benchmark: reading results, replaying them, fitting the engine.

Every benchmark file here is made by the test: a run simulated with known engine figures is
written in the benchmark tool's format, so the fit has a right answer to find."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import tokensim
from tokensim.cli import main
from tokensim.replay import fit, replay, results

SPEC = """
import "std/hardware"
import "std/models"
import "std/engines"
cluster { node n0 { gpus H100_SXM x 1 } }
deployment {
  pool serve {
    model llama3_1_8b
    engine vllm_0_6 { frontend { batches on } }
  }
}
workload { arrivals poisson 5/s; lengths fixed 100 -> 10; requests 10 }
"""


def vllm_result(run: tokensim.api.Run, rate: float | str, **extra) -> dict:
    """A ``vllm bench serve --save-result --save-detailed`` JSON of a tokensim run."""
    r = run.requests
    ttft, e2e, out = r["ttft_s"], r["e2e_s"], r["output_tokens"]
    itls = [[(e - t) / (o - 1)] * int(o - 1) for t, e, o in zip(ttft, e2e, out, strict=True)]
    duration = float(r["finish_s"].max() - r["arrival_s"].min())
    return {
        "backend": "vllm",
        "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "request_rate": rate,
        "burstiness": 1.0,
        "max_concurrency": None,
        "duration": duration,
        "completed": len(out),
        "request_throughput": len(out) / duration,
        "mean_ttft_ms": float(ttft.mean() * 1e3),
        "input_lens": [int(x) for x in r["prompt_tokens"]],
        "output_lens": [int(x) for x in out],
        "ttfts": [float(x) for x in ttft],
        "itls": itls,
        **extra,
    }


def measured(tmp_path, name: str, engine: str, workload: str, rate) -> str:
    """Simulate ``SPEC`` with ``engine`` braces and ``workload``; write it as a vLLM result."""
    text = SPEC.replace("engine vllm_0_6 { frontend { batches on } }", engine)
    text = text.replace("arrivals poisson 5/s; lengths fixed 100 -> 10; requests 10", workload)
    run = tokensim.run(tokensim.load(text))
    path = tmp_path / name
    path.write_text(json.dumps(vllm_result(run, rate)), "utf-8")
    return str(path)


# -- reading ------------------------------------------------------------------------------


def test_a_vllm_result_with_per_request_arrays(tmp_path):
    data = {
        "request_rate": "inf",
        "max_concurrency": None,
        "duration": 2.0,
        "completed": 3,
        "input_lens": [100, 200, 300],
        "output_lens": [10, 0, 5],
        "ttfts": [0.1, 0.0, 0.3],
        "itls": [[0.01] * 9, [], [0.02] * 4],
        "errors": ["", "prompt too long", ""],
        "mean_ttft_ms": 133.0,
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    (run,) = results.read(path)
    assert run.format == "vLLM bench serve" and run.arrivals == "burst"
    assert list(run.prompts) == [100, 300] and list(run.outputs) == [10, 5]  # failed: out
    assert run.metrics["ttft_mean"] == pytest.approx(0.2)  # not the summary's 133 ms
    assert run.metrics["e2e_p50"] == pytest.approx((0.19 + 0.38) / 2)
    assert run.metrics["tpot_mean"] == pytest.approx(0.015)
    assert run.metrics["throughput_requests_per_s"] == pytest.approx(1.0)
    assert any("1 of 3 requests failed" in n for n in run.notes)


def _guidellm_request(start: float, prompt: int, out: int, ttft_ms: float, e2e: float, new: bool):
    """A successful request as guidellm writes it: 0.4+ nests its timings under ``info``,
    0.2-0.3 under ``scheduler_info``; both serialize the computed latency fields."""
    timings = {"request_start": start, "request_end": start + e2e}
    req = {
        "prompt_tokens": prompt,
        "output_tokens": out,
        "time_to_first_token_ms": ttft_ms,
        "inter_token_latency_ms": (e2e * 1000 - ttft_ms) / (out - 1) if out > 1 else None,
        "time_per_output_token_ms": e2e * 1000 / out,
        "request_latency": e2e,
    }
    if new:
        req["info"] = {"timings": timings}
    else:
        req["scheduler_info"] = {"request_timings": timings}
    return req


@pytest.mark.parametrize("new", [True, False])
def test_a_guidellm_report_is_a_run_per_benchmark(tmp_path, new):
    holder = "config" if new else "args"
    sent = [(10.2, 300, 5, 80.0, 0.5), (10.0, 100, 11, 50.0, 0.25), (10.1, 200, 1, 60.0, 0.06)]
    concurrent = {
        holder: {"strategy": {"type_": "concurrent", "streams": 4}},
        "duration": 2.0,
        "request_totals": {"successful": 3, "errored": 0, "incomplete": 0, "total": 3},
        "requests": {
            "successful": [_guidellm_request(*r, new=new) for r in sent],
            "errored": [],
            "incomplete": [],
        },
    }
    poisson = dict(concurrent, **{holder: {"strategy": {"type_": "poisson", "rate": 2.5}}})
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"benchmarks": [concurrent, poisson]}))
    first, second = results.read(path)
    assert first.format == "guidellm" and first.arrivals == "closed 4"
    assert second.arrivals == "poisson 2.5/s" and second.name.endswith("report.json#2")
    assert list(first.prompts) == [100, 200, 300]  # in the order they were sent
    assert list(first.outputs) == [11, 1, 5]
    assert first.metrics["ttft_p50"] == pytest.approx(0.06)
    # guidellm's inter-token latency is vLLM's TPOT (one-token outputs have none)
    assert first.metrics["tpot_mean"] == pytest.approx((0.02 + 0.105) / 2)
    assert first.metrics["e2e_mean"] == pytest.approx(0.27)
    assert first.metrics["throughput_requests_per_s"] == pytest.approx(1.5)


def test_an_open_loop_guidellm_run_is_replayed_at_its_send_times(tmp_path, capsys):
    """A guidellm request records when it was sent: a Poisson run is replayed at those
    times, not at a Poisson process of its own, so a run tokensim made replays exactly."""
    work = "arrivals poisson 8/s; lengths uniform 50..400 -> 5..60; requests 60"
    text = SPEC.replace("arrivals poisson 5/s; lengths fixed 100 -> 10; requests 10", work)
    r = tokensim.run(tokensim.load(text)).requests
    done = [
        {
            "prompt_tokens": int(r["prompt_tokens"][i]),
            "output_tokens": int(r["output_tokens"][i]),
            "time_to_first_token_ms": float(r["ttft_s"][i] * 1e3),
            "inter_token_latency_ms": float(r["tpot_s"][i] * 1e3),
            "request_latency": float(r["e2e_s"][i]),
            "request_start_time": 1.7e9 + float(r["arrival_s"][i]),
        }
        for i in range(len(r["id"]))
    ][::-1]  # in any order: sorted by when they were sent
    bench = {
        "config": {"strategy": {"type_": "poisson", "rate": 8.0}},
        "duration": float(r["finish_s"].max()),
        "requests": {"successful": done},
    }
    (path := tmp_path / "g.json").write_text(json.dumps({"benchmarks": [bench]}))
    (run,) = results.read(path)
    assert run.sent is not None and run.sent[0] == 0.0 and np.all(np.diff(run.sent) >= 0)
    # a report that lists a sample of its requests: their own times would be a thinner load
    sample = dict(bench, requests={"successful": done[:10]}, request_totals={"successful": 60})
    (part := tmp_path / "sample.json").write_text(json.dumps({"benchmarks": [sample]}))
    (thin,) = results.read(part)
    assert thin.sent is None and thin.arrivals == "poisson 8/s" and "10 of its 60" in thin.notes[0]
    assert thin.metrics["throughput_requests_per_s"] == pytest.approx(60 / bench["duration"])
    (spec := tmp_path / "s.tsim").write_text(text)
    assert main(["validate", "--bench", str(path), str(spec), "-o", str(tmp_path / "v.html")]) == 0
    out = capsys.readouterr().out
    assert "| TTFT | 0% / 0% |" in out and "| E2E | 0% / 0% |" in out


def test_a_vllm_run_at_a_rate_is_replayed_at_its_send_times(tmp_path, capsys):
    """``vllm bench serve --save-detailed`` records when each request was sent
    (``start_times``, on the client's clock): a run at a rate is replayed at those times,
    so a run tokensim made replays exactly."""
    work = "arrivals poisson 8/s; lengths uniform 50..400 -> 5..60; requests 60"
    text = SPEC.replace("arrivals poisson 5/s; lengths fixed 100 -> 10; requests 10", work)
    run = tokensim.run(tokensim.load(text))
    arrival = run.requests["arrival_s"]
    data = vllm_result(run, 8.0, start_times=[5000.0 + float(t) for t in arrival])
    for key in ("input_lens", "output_lens", "ttfts", "itls", "start_times"):
        data[key] = data[key][::-1]  # in any order: sorted by when they were sent
    (path := tmp_path / "r.json").write_text(json.dumps(data))
    (obs,) = results.read(path)
    assert obs.sent == pytest.approx(arrival - arrival.min(), abs=1e-9)
    assert list(obs.prompts) == list(run.requests["prompt_tokens"])
    # SGLang's bench_serving (which began as a copy of vLLM's) writes them too
    (sgl := tmp_path / "s.jsonl").write_text(json.dumps(dict(data, backend="sglang")) + "\n")
    (line,) = results.read(sgl)
    assert line.format == "SGLang bench_serving" and line.sent == pytest.approx(obs.sent)
    (spec := tmp_path / "s.tsim").write_text(text)
    assert main(["validate", "--bench", str(path), str(spec), "-o", str(tmp_path / "v.html")]) == 0
    out = capsys.readouterr().out
    assert "| TTFT | 0% / 0% |" in out and "| E2E | 0% / 0% |" in out
    # with a cap on requests in flight the times recorded are those the cap let through;
    # a flood's (or a closed loop's) sends are the server's doing, not replayed
    (capped := tmp_path / "c.json").write_text(json.dumps(dict(data, max_concurrency=4)))
    (obs,) = results.read(capped)
    assert obs.sent is not None and "replayed at the times" in obs.notes[-1]
    assert not any("at the rate alone" in n for n in obs.notes)
    (flood := tmp_path / "f.json").write_text(json.dumps(dict(data, request_rate="inf")))
    assert results.read(flood)[0].sent is None


def test_guidellm_reports_it_cannot_replay_are_located_errors(tmp_path):
    ok = {"requests": {"successful": [_guidellm_request(0.0, 10, 5, 30.0, 0.2, True)]}}

    def error(bench) -> str:
        path = tmp_path / "g.json"
        path.write_text(json.dumps({"benchmarks": [bench]}))
        with pytest.raises(results.ResultError) as e:
            results.read(path)
        return str(e.value)

    assert "no scheduling strategy" in error(ok)
    sweep = dict(ok, config={"strategy": {"type_": "replay"}})
    assert "strategy `replay` is not one tokensim replays" in error(sweep)
    rate = dict(ok, config={"strategy": {"type_": "constant", "rate": 0}})
    assert "without a rate above 0" in error(rate)
    loaded = dict(
        ok,
        config={"strategy": {"type_": "synchronous"}},
        request_totals={"successful": 1, "errored": 3},
    )
    assert "3 of 4 requests failed" in error(loaded)
    empty = {"config": {"strategy": {"type_": "synchronous"}}, "requests": {"successful": []}}
    assert "no successful requests" in error(empty)


@pytest.mark.parametrize(
    ("fields", "arrivals"),
    [
        ({"request_rate": "inf"}, "burst"),
        ({"request_rate": float("inf"), "max_concurrency": 8}, "closed 8"),
        ({"request_rate": 4.0}, "poisson 4/s"),
        ({"request_rate": 4.0, "burstiness": 4.0}, "gamma 4/s { cv 0.5 }"),
    ],
)
def test_how_the_requests_were_sent(tmp_path, fields, arrivals):
    data = {"duration": 1.0, "completed": 5, "total_input_tokens": 500}
    data |= {"total_output_tokens": 50, "mean_ttft_ms": 20.0, **fields}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    (run,) = results.read(path)
    assert run.arrivals == arrivals
    # without per-request lengths: every request at the means, and it says so
    assert run.lengths == "fixed 100 -> 10" and run.prompts is None
    assert any("no per-request lengths" in n for n in run.notes)
    assert run.metrics["ttft_mean"] == pytest.approx(0.02)


def test_a_run_the_server_fell_behind_on_is_replayed_whole(tmp_path):
    # sent at 16/s for 5000 requests: served at 15.6/s the run is a steady state and its
    # start stands for it; served at 8.3/s its queue grew to the end, and a cut would lose it
    base = {"request_rate": 16.0, "completed": 5000, "mean_ttft_ms": 20.0}
    base |= {"total_input_tokens": 500000, "total_output_tokens": 50000}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**base, "duration": 320.0}))
    (steady,) = results.read(path)
    assert not results.overloaded(steady)
    assert results.truncate(steady, 2000).requests == 2000
    path.write_text(json.dumps({**base, "duration": 600.0}))
    (behind,) = results.read(path)
    assert results.overloaded(behind) and results.sent_rate(behind) == 16.0
    kept = results.truncate(behind, 2000)
    assert kept.requests == 5000
    assert any("8.33 requests/s of the 16/s sent" in n for n in kept.notes)
    burst = dataclasses.replace(behind, arrivals="burst")
    assert not results.overloaded(burst) and results.sent_rate(burst) is None


def test_a_sharegpt_run_without_its_lengths_is_replayed_with_sharegpts_mix(tmp_path):
    data = {"duration": 1.0, "completed": 5, "total_input_tokens": 1120, "mean_ttft_ms": 20.0}
    data |= {"total_output_tokens": 945, "request_rate": 4.0}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**data, "dataset_name": "sharegpt"}))
    (run,) = results.read(path)
    assert run.lengths == "sharegpt" and run.prompts is None
    assert any("means 207 -> 215 tokens; this run's 224 -> 189" in n for n in run.notes)
    # another dataset without lengths: every request at the means
    path.write_text(json.dumps({**data, "dataset_name": "hf"}))
    (run,) = results.read(path)
    assert run.lengths == "fixed 224 -> 189"


def test_sglang_jsonl_holds_a_run_a_line(tmp_path):
    line = {
        "backend": "sglang",
        "dataset_name": "random",
        "random_input_len": 1024,
        "random_output_len": 512,
        "random_range_ratio": 0.5,
        "max_concurrency": None,
        "duration": 10.0,
        "completed": 20,
        "median_ttft_ms": 80.0,
        "mean_e2e_latency_ms": 4000.0,
        "median_itl_ms": 12.0,
    }
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(line | {"request_rate": r}) for r in (1.0, 2.0)) + "\n")
    runs = results.read(path)
    assert [r.arrivals for r in runs] == ["poisson 1/s", "poisson 2/s"]
    assert runs[1].name.endswith("r.jsonl:2") and runs[0].format == "SGLang bench_serving"
    assert runs[0].lengths == "uniform 512..1024 -> 256..512"
    assert runs[0].metrics["e2e_mean"] == pytest.approx(4.0)
    assert runs[0].metrics["itl_p50"] == pytest.approx(0.012)


def test_an_inference_perf_stage_reads_its_config(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        "load:\n  type: constant\n  stages:\n  - {rate: 5.0, duration: 60}\n"
        "  - {rate: 10.0, duration: 60}\n"
        "data:\n  type: shared_prefix\n  shared_prefix:\n    num_groups: 2\n"
        "    num_prompts_per_group: 3\n    system_prompt_len: 64\n    question_len: 100\n"
        "    output_len: 50\nserver:\n  ignore_eos: true\n  model_name: m\n"
    )
    stats = {"mean": 0.03, "median": 0.02, "p90": 0.05, "p99": 0.08}
    for stage, rate in enumerate((5.0, 10.0)):
        (folder / f"stage_{stage}_lifecycle_metrics.json").write_text(
            json.dumps(
                {
                    "load_summary": {"count": 40, "requested_rate": rate},
                    "successes": {
                        "count": 40,
                        "latency": {
                            "time_to_first_token": stats,
                            "request_latency": {k: v * 30 for k, v in stats.items()},
                        },
                        "throughput": {"requests_per_sec": rate},
                        "prompt_len": {"mean": 170.2},
                        "output_len": {"mean": 41.0},
                    },
                    "failures": {"count": 0},
                }
            )
        )
    runs = results.read(folder)
    assert [r.arrivals for r in runs] == ["constant 5/s", "constant 10/s"]
    run = runs[0]
    assert set(run.prompts) == {170} and set(run.outputs) == {50}  # the requested output
    assert len(set(run.prefixes)) == 6  # 2 groups x 3 prompts, sent in turn
    same_group = [p for p in run.prefixes if p[0] == run.prefixes[0][0]]
    assert len({p[4] for p in same_group}) > 1  # the system prompt's 4 blocks are shared
    assert run.metrics["tpot_p50"] == pytest.approx((0.6 - 0.02) / 49)
    (folder / "config.yaml").unlink()
    with pytest.raises(results.ResultError, match="config.yaml is not beside it"):
        results.read(folder)


def test_a_genai_perf_export(tmp_path):
    def stats(scale, unit="ms"):
        return {"unit": unit, "avg": 10 * scale, "p50": 9 * scale, "p90": 15 * scale}

    data = {
        "time_to_first_token": stats(1),
        "inter_token_latency": stats(0.2),
        "request_latency": stats(30),
        "request_throughput": {"unit": "requests/sec", "avg": 4.0},
        "output_token_throughput": {"unit": "tokens/sec", "avg": 800.0},
        "input_sequence_length": {"unit": "tokens", "avg": 199.6},
        "output_sequence_length": {"unit": "tokens", "avg": 200.2},
        "input_config": {"model": ["meta-llama/Llama-3.1-8B"], "concurrency": 8},
    }
    path = tmp_path / "profile_export_genai_perf.json"
    path.write_text(json.dumps(data))
    (run,) = results.read(path)
    assert run.format == "GenAI-Perf" and run.arrivals == "closed 8"
    assert run.lengths == "fixed 200 -> 200" and run.requests == 200
    assert run.metrics["tpot_p90"] == pytest.approx(0.003)  # its ITL is per request: TPOT
    assert run.metrics["e2e_mean"] == pytest.approx(0.3)
    assert run.model == "meta-llama/Llama-3.1-8B"
    data["input_config"] |= {"request_rate": 5.0, "request_count": 50}
    data["time_to_first_token"]["unit"] = "tokens"
    path.write_text(json.dumps(data))
    with pytest.raises(results.ResultError, match="not a time unit"):
        results.read(path)
    data["time_to_first_token"]["unit"] = "ms"
    path.write_text(json.dumps(data))
    (run,) = results.read(path)
    assert run.arrivals == "constant 5/s" and run.requests == 50


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ('{"duration": 1', "r.json:1: not JSON"),
        ('{"a": 1}\n{"b": 2', "r.json:2: not JSON"),
        ('{"hello": 1}', "not a benchmark result tokensim reads"),
        ('{"mean_ttft_ms": 1, "completed": 2}', "`duration` is missing"),
        ('{"mean_ttft_ms": 1, "completed": 2, "duration": "x"}', "should be a number"),
        ('{"mean_ttft_ms": 1, "completed": 2, "duration": 1}', "no per-request lengths"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_results_are_located_errors(tmp_path, text, message):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(results.ResultError, match=message.replace("(", r"\(")):
        results.read(path)


# -- replaying and fitting ------------------------------------------------------------------


def test_a_replay_sends_the_measured_requests_on_the_specs_deployment(tmp_path):
    work = "arrivals poisson 5/s; lengths fixed 100 -> 10; requests 10"
    path = measured(tmp_path, "m.json", "engine vllm_0_6", work, 5.0)
    (spec_path := tmp_path / "s.tsim").write_text(SPEC)
    dep = replay.load(spec_path)
    (obs,) = results.read(path)
    checked, text = replay.spec(dep, obs, {"host.iteration": "3 ms"}, tmp_path)
    # a rate without send times: drawn at exactly the rate (its 10 requests span 1.8 s)
    assert "arrivals poisson 5/s { exact on }" in text and "requests 10" in text
    assert checked.deployment.pools[0].engine.host.iteration_s == 3e-3
    assert checked.deployment.pools[0].engine.frontend.batches  # the spec's own braces
    sims = replay.simulate(dep, obs, {}, tmp_path)
    assert set(sims) == {*obs.metrics, replay.REJECTED} and sims[replay.REJECTED] == 0
    assert all(math.isfinite(v) for v in sims.values())


def test_the_fit_finds_the_figures_a_run_was_made_with(tmp_path):
    true = "engine vllm_0_6 { frontend { batches on; per_request 8 ms } }"
    paths = [
        measured(
            tmp_path, "a.json", true, "arrivals burst; lengths fixed 200 -> 30; requests 60", "inf"
        ),
        measured(
            tmp_path, "b.json", true, "arrivals burst; lengths fixed 400 -> 60; requests 20", "inf"
        ),
    ]
    (spec_path := tmp_path / "s.tsim").write_text(SPEC)
    dep = replay.load(spec_path)
    runs = [r for p in paths for r in results.read(p)]
    result = fit.fit(dep, runs, tmp_path, max_evaluations=60)
    fitted = dict(zip((k.path for k in result.knobs), result.values, strict=True))
    assert fitted["frontend.per_request"] == pytest.approx(8.0, rel=0.15)
    before, after = fit.errors(runs, result.before), fit.errors(runs, result.after)
    assert before["TTFT"][0] > 0.3 and after["TTFT"][0] < 0.05


def test_the_fit_moves_a_figure_that_starts_at_one(tmp_path):
    """Kernel factors start at 1 (log 0): the fit's finite-difference steps must still
    move them (scipy's relative steps would be zero there)."""
    true = "engine vllm_0_6 { kernels { gemm 1.4 } }"
    work = "arrivals burst; lengths fixed 1000 -> 30; requests {}"
    paths = [measured(tmp_path, f"{n}.json", true, work.format(n), "inf") for n in (8, 24)]
    (spec_path := tmp_path / "s.tsim").write_text(SPEC)
    dep = replay.load(spec_path)
    runs = [r for p in paths for r in results.read(p)]
    gemm = next(k for k in fit.KNOBS if k.path == "kernels.gemm")
    result = fit.fit(dep, runs, tmp_path, knobs=(gemm,), max_evaluations=30)
    assert result.values[0] == pytest.approx(1.4, rel=0.05)
    # one run: the kernel factors keep the engine's figures
    one = fit.fit(dep, runs[:1], tmp_path, knobs=(gemm,), max_evaluations=30)
    assert one.values[0] == 1.0 and "kernel factors keep" in one.warnings[0]


def test_a_single_run_that_queued_is_warned_of(tmp_path):
    """A steady-rate run whose TTFT p90 is over twice its median was near saturation: one
    fit on it alone is said to transfer poorly; a burst's spread is not queueing."""
    (spec_path := tmp_path / "s.tsim").write_text(SPEC)
    dep = replay.load(spec_path)
    gemm = next(k for k in fit.KNOBS if k.path == "kernels.gemm")  # held: nothing replays

    def warnings(arrivals: str, p50: float, p90: float, served: float = 20.0) -> list[str]:
        metrics = {"ttft_p50": p50, "ttft_p90": p90, "throughput_requests_per_s": served}
        run = results.Observed("r.json", "vLLM bench serve", "m", arrivals, 10, metrics)
        run = dataclasses.replace(run, lengths="fixed 100 -> 10")
        return fit.fit(dep, [run], tmp_path, knobs=(gemm,)).warnings

    assert "the server was queueing" in warnings("constant 20/s", 0.07, 0.25)[0]
    assert "counts its TTFT beyond the median a quarter" in warnings("constant 20/s", 0.07, 0.25)[0]
    assert "transfers poorly" in warnings("poisson 20/s", 0.07, 0.25)[0]
    assert not any("queueing" in w for w in warnings("constant 8/s", 0.055, 0.063))
    assert not any("queueing" in w for w in warnings("burst", 0.3, 0.9))
    # served at half the rate sent: overloaded, which says more than that it queued
    (said, *_) = warnings("poisson 20/s", 0.07, 0.25, served=10.0)
    assert "served 10 requests/s of the 20/s sent: the server was overloaded" in said
    assert not any("the server was queueing" in w for w in warnings("poisson 20/s", 3, 9, 10))


def test_calibrate_bench_writes_a_profile_the_spec_runs_with(tmp_path, capsys):
    true = "engine vllm_0_6 { frontend { batches on; per_request 4 ms } }"
    work = "arrivals burst; lengths fixed 200 -> 30; requests 60"
    path = measured(tmp_path, "a.json", true, work, "inf")
    (spec_path := tmp_path / "s.tsim").write_text(SPEC)
    profile = tmp_path / "profile.tsim"
    args = ["calibrate", "--bench", path, "--spec", str(spec_path), "-o", str(profile)]
    assert main([*args, "--max-evaluations", "40"]) == 0
    out, err = capsys.readouterr()
    assert "| TTFT |" in out and "warning: one run cannot tell apart" in err
    text = profile.read_text()
    assert "engine vllm_0_6_calibrated from vllm_0_6 {" in text and "a.json" in text
    use = SPEC.replace('import "std/engines"', 'import "std/engines"\nimport "profile.tsim"')
    use = use.replace("engine vllm_0_6 {", "engine vllm_0_6_calibrated {")
    (tmp_path / "use.tsim").write_text(use)
    pool = tokensim.load(tmp_path / "use.tsim").deployment.pools[0]
    assert pool.engine.frontend.per_request_s == pytest.approx(4e-3, rel=0.2)
    assert pool.engine.frontend.batches
    # the same inputs give the same profile
    assert main([*args, "--max-evaluations", "40", "-q"]) == 0 and profile.read_text() == text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bench", "nope.json", "--spec", "{spec}", "-o", "p.tsim"], "nope.json: no such file"),
        (["--bench", "{result}", "-o", "p.tsim"], "--bench needs --spec"),
        (["--bench", "{result}", "--spec", "{spec}", "-o", "p.json"], "name it *.tsim"),
        (["-o", "p.tsim"], "nothing to calibrate on"),
        (["--bench", "{result}", "--spec", "{spec}", "-o", "p.tsim", "--name", "my-e"], "--name"),
        (
            [
                "--bench",
                "{result}",
                "--spec",
                "{spec}",
                "--serve-cmd",
                "x --port 1",
                "-o",
                "p.tsim",
            ],
            "runs none of",
        ),
    ],
)
def test_calibrate_bench_mistakes_exit_two(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.tsim").write_text(SPEC)
    result = {"request_rate": 1, "duration": 1, "completed": 1, "mean_ttft_ms": 10.0}
    result |= {"total_input_tokens": 10, "total_output_tokens": 5}
    (tmp_path / "r.json").write_text(json.dumps(result))
    fill = {"spec": "s.tsim", "result": "r.json"}
    assert main(["calibrate", *(a.format(**fill) for a in extra)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.tsim").exists()


def test_shared_prefix_ids_share_the_system_prompt_only():
    ids = results.shared_prefix_ids(12, 100, 2, 2, 40, block=16)
    assert len(ids) == 12 and all(len(p) == 6 for p in ids)
    assert ids[0] == ids[4] == ids[8]  # request i sends prompt i mod 4
    groups = {p[:2] for p in ids}
    assert len(groups) == 2  # two 16-token blocks of system prompt per group
    assert len({p[2:] for p in ids}) == 4
    assert np.all([p[2] != q[2] for p in ids for q in ids if p[:2] != q[:2]])


def test_validate_bench_draws_a_page_of_every_run(tmp_path, capsys):
    work = "arrivals burst; lengths fixed 200 -> 30; requests 40"
    true = "engine vllm_0_6 { frontend { batches on; per_request 4 ms } }"
    path = measured(tmp_path, "a.json", true, work, "inf")
    summary = tmp_path / "b.json"
    fields = {"request_rate": 2.0, "duration": 10.0, "completed": 20, "median_ttft_ms": 50.0}
    fields |= {"total_input_tokens": 4000, "total_output_tokens": 600, "p99_ttft_ms": 90.0}
    summary.write_text(json.dumps(fields))
    (spec := tmp_path / "s.tsim").write_text(SPEC)
    page = tmp_path / "v.html"
    # the spec among the results, as `validate --bench RESULT... SPEC.tsim` reads
    assert main(["validate", "--bench", path, str(summary), str(spec), "-o", str(page)]) == 0
    out = capsys.readouterr().out
    assert "2 run(s) replayed" in out and "| TTFT |" in out
    html = page.read_text()
    assert html.count('<section id="run') == 2 and "a.json" in html and "b.json" in html
    assert "TTFT: measured and simulated" in html  # per-request figures: two curves
    assert "ITL: measured and simulated" in html  # the file's inter-token gaps
    assert "TTFT: simulated; measured percentiles" in html  # a summary: its percentiles
    assert "measured p99" in html
    assert main(["validate", "--bench", path, "-o", str(page)]) == 2
    assert "needs one spec" in capsys.readouterr().err
    # a request the deployment refuses (longer than the model's context) is said, not hidden
    huge = dict(fields, input_lens=[100, 300_000], output_lens=[10, 5], ttfts=[0.1, 0.3])
    huge |= {"itls": [[0.01] * 9, [0.02] * 4], "completed": 2}
    (big := tmp_path / "big.json").write_text(json.dumps(huge))
    assert main(["validate", "--bench", str(big), str(spec), "-o", str(page)]) == 0
    err = capsys.readouterr().err
    assert "rejected 1 of 2 requests (prompt + output = 300005 tokens > max_context" in err
    assert "which the measured server served" in page.read_text()


def test_a_run_of_another_model_is_warned_of(tmp_path):
    (spec := tmp_path / "s.tsim").write_text(SPEC)
    dep = replay.load(spec)
    run = results.Observed(
        "r.json", "vLLM bench serve", "meta-llama/Llama-3.1-8B-Instruct", "burst", 1, {}
    )
    assert replay.model_mismatch(dep, run) is None
    other = dataclasses.replace(run, model="meta-llama/Llama-3.1-70B-Instruct")
    assert "the spec serves `llama3_1_8b`" in replay.model_mismatch(dep, other)


def test_a_serve_command_sets_the_pools(tmp_path):
    from tokensim.replay import serve

    cmd = (
        "python -m vllm.entrypoints.openai.api_server --model m --port 8000 -tp 2 "
        "--max-num-seqs 128 --max-num-batched-tokens=4096 --gpu-memory-utilization 0.95 "
        "--kv-cache-dtype fp8_e4m3 --no-enable-prefix-caching --num-scheduler-steps 8 "
        "--enforce-eager --frobnicate 3"
    )
    s = serve.settings(cmd)
    assert s.engine == "vllm" and serve.for_policy(s.paths, "chunked") == {
        "tp": "2",
        "batching.max_seqs": "128",
        "batching.budget": "4096 tokens",
        "kv.gpu_util": "0.95",
        "kv.dtype": "fp8",
        "kv.prefix_cache": "off",
        "engine.scheduler_steps": "8",
        "engine.cuda_graphs": "off",
        "engine.async_output": "off",  # vLLM V0 processes outputs in line when eager
    }
    assert s.ignored == ["--model", "--port"] and s.unknown == ["--frobnicate"]
    # V0 without chunked prefill: the budget is max_tokens; the flag switches the policy
    v0 = serve.settings("vllm serve m --max-num-batched-tokens 1024 --enable-chunked-prefill")
    assert serve.for_policy(v0.paths, "continuous") == {
        "batching": "chunked { budget 1024 tokens }"
    }
    # V0 derives its budget from the model length (at least 2,048); V1 does not
    long = serve.settings("vllm serve m --max-model-len 8192")
    assert serve.for_policy(long.paths, "continuous") == {"batching.max_tokens": "8192 tokens"}
    assert serve.for_policy(long.paths, "chunked") == {}
    short = serve.settings("vllm serve m --max-model-len 1024 --max-num-seqs 8")
    assert serve.for_policy(short.paths, "continuous")["batching.max_tokens"] == "2048 tokens"
    sync = serve.settings("vllm serve m --disable-async-output-proc")
    assert serve.for_policy(sync.paths, "continuous") == {"engine.async_output": "off"}
    # one process: V0's engine loop takes requests in itself; V1 ignores the flag
    one = serve.settings("vllm serve m --disable-frontend-multiprocessing")
    assert serve.for_policy(one.paths, "continuous") == {
        "engine.frontend.shares_cpu": "on",
        "engine.frontend.batches": "off",
    }
    assert serve.for_policy(one.paths, "chunked") == {}
    sg = serve.settings("python3 -m sglang.launch_server --tp 4 --chunked-prefill-size -1")
    assert sg.engine == "sglang"
    assert serve.for_policy(sg.paths, "continuous") == {"tp": "4", "batching.chunk": "off"}
    with pytest.raises(serve.ServeError, match="whole number"):
        serve.settings("vllm serve m --max-num-seqs many")
    with pytest.raises(serve.ServeError, match="runs none of"):
        serve.settings("python server.py --port 1")
    # laid on the spec's pool
    (spec := tmp_path / "s.tsim").write_text(SPEC)
    dep = replay.load(spec, "vllm serve m --max-num-seqs 64 --gpu-memory-utilization 0.8")
    assert dep.serve.paths == {"batching.max_seqs": "64", "kv.gpu_util": "0.8"}
    # tp first: a spec that deploys only with the command's tp
    big = SPEC.replace("llama3_1_8b", "llama3_1_70b")
    big = big.replace("H100_SXM x 1", "H100_SXM x 4; link NVLINK4")
    (spec_big := tmp_path / "big.tsim").write_text(big)
    dep = replay.load(spec_big, "vllm serve m -tp 4 --max-num-batched-tokens 1024")
    assert dep.serve.paths == {"tp": "4", "batching.max_tokens": "1024 tokens"}
    dep = replay.load(spec, "vllm serve m --max-num-seqs 64 --gpu-memory-utilization 0.8")
    checked, _ = replay.spec(
        dep, results.Observed("r", "f", "", "burst", 1, {}, lengths="fixed 10 -> 2"), {}, tmp_path
    )
    pool = checked.deployment.pools[0]
    assert dict(pool.batching.params)["max_seqs"] == 64 and pool.kv.gpu_util == 0.8
    assert pool.engine.frontend.batches  # the spec's own engine braces stay
    dep = replay.load(spec, "vllm serve m --disable-frontend-multiprocessing")
    assert dep.engine.frontend.shares_cpu and not dep.engine.frontend.batches
    v1 = SPEC.replace("engine vllm_0_6 { frontend { batches on } }", "engine vllm_v1")
    (spec_v1 := tmp_path / "v1.tsim").write_text(v1)
    dep = replay.load(spec_v1, "vllm serve m --disable-frontend-multiprocessing")
    assert not dep.engine.frontend.shares_cpu and dep.serve.paths == {}
    assert dep.serve.ignored == ["--disable-frontend-multiprocessing (vLLM V1 ignores it)"]


def test_an_engine_the_spec_defines_itself_is_refused_before_any_fit(tmp_path, capsys):
    own = SPEC.replace(
        'import "std/engines"',
        'import "std/engines"\nengine mine from vllm_0_6 { scheduler_steps 2 }',
    ).replace("engine vllm_0_6 {", "engine mine {")
    (spec := tmp_path / "s.tsim").write_text(own)
    work = "arrivals burst; lengths fixed 100 -> 10; requests 5"
    path = measured(tmp_path, "a.json", "engine vllm_0_6", work, "inf")
    args = ["calibrate", "--bench", path, "--spec", str(spec), "-o", str(tmp_path / "p.tsim")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "defined in the spec itself" in err and "fitting" not in err
    assert not (tmp_path / "p.tsim").exists()


def made_with_a_20ms_latency(tmp_path, arrivals: str):
    """The spec's deployment, and a run of 200 requests sent by ``arrivals`` to the
    engine with a 20 ms front-end latency, read back from its vLLM result file."""
    true = "engine vllm_0_6 { frontend { latency 20 ms } }"
    work = f"arrivals {arrivals}; lengths fixed 300 -> 20; requests 200"
    path = measured(tmp_path, "a.json", true, work, 4.0)
    (spec_path := tmp_path / "s.tsim").write_text(SPEC)
    (run,) = results.read(path)
    return replay.load(spec_path), run


def test_a_runs_slow_tail_does_not_drive_a_one_run_fit(tmp_path):
    """A few very slow requests (a pause, a retry) set a run's TTFT p99 and lift its mean;
    the simulator has no cause for them. Means and p99s count less than medians and p90s,
    so a one-run fit still finds the latency the run was made with."""
    dep, run = made_with_a_20ms_latency(tmp_path, "poisson 4/s")
    m = dict(run.metrics)
    m["ttft_p99"] *= 9  # two requests of 200 waited about half a second
    m["ttft_mean"] += 2 * 0.5 / 200
    run = dataclasses.replace(run, metrics=m)
    latency = next(k for k in fit.KNOBS if k.path == "frontend.latency")
    result = fit.fit(dep, [run], tmp_path, knobs=(latency,), max_evaluations=30)
    assert result.values[0] == pytest.approx(20.0, rel=0.1)


def test_a_steady_rate_runs_queueing_tail_does_not_drive_a_one_run_fit(tmp_path):
    """Sent at a constant rate, a tenth of a run's requests waited behind the server's own
    noise (a pause, a slow step), which tripled its TTFT p90; evenly spaced, equal requests
    replayed have no such noise. Its TTFT tail counts a quarter, so a one-run fit finds
    about the latency it finds without that tail; sent at random, the tail counts in full
    and pulls the latency up."""
    dep, run = made_with_a_20ms_latency(tmp_path, "constant 4/s")
    clean = dataclasses.replace(run, arrivals="constant 4/s")  # the file says Poisson
    m = dict(run.metrics)
    m["ttft_mean"] += 0.1 * 2 * m["ttft_p90"]
    m["ttft_p90"] *= 3
    steady = dataclasses.replace(clean, metrics=m)
    at_random = dataclasses.replace(steady, arrivals="poisson 4/s")
    latency = next(k for k in fit.KNOBS if k.path == "frontend.latency")
    fitted = {
        name: fit.fit(dep, [r], tmp_path, knobs=(latency,), max_evaluations=30).values[0]
        for name, r in (("clean", clean), ("steady", steady), ("at_random", at_random))
    }
    assert fitted["steady"] == pytest.approx(fitted["clean"], rel=0.05)
    assert fitted["at_random"] > 1.2 * fitted["clean"]


def test_a_small_batchs_step_time_is_not_all_put_on_its_sequences(tmp_path):
    """Decode steps of ten sequences take longer than the spec's engine says (here a fixed
    CPU time per step). Put on the CPU time per sequence, that would be carried thirty-fold
    to a batch of 300; the fit holds that figure closest to the engine's, so the larger
    burst's TPOT stays near what it measured."""
    true = "engine vllm_0_6 { scheduler_steps 10; host { iteration 30 ms } }"
    work = "arrivals burst; lengths fixed 20 -> 300; requests {}"
    small, large = (
        results.read(measured(tmp_path, f"{n}.json", true, work.format(n), "inf"))[0]
        for n in (10, 300)
    )
    spec = SPEC.replace("{ frontend { batches on } }", "{ scheduler_steps 10 }")
    (spec_path := tmp_path / "s.tsim").write_text(spec)
    dep = replay.load(spec_path)
    result = fit.fit(dep, [small], tmp_path, max_evaluations=60)
    predicted = replay.simulate(dep, large, result.overrides(), tmp_path)
    assert predicted["tpot_p50"] == pytest.approx(large.metrics["tpot_p50"], rel=0.15)
