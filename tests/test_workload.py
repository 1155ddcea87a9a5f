"""The workload stage: arrival processes, length distributions, traces in a spec."""

from pathlib import Path

import numpy as np
import pytest

from tokensim.lang.check import check_text
from tokensim.lang.diagnostics import CompileError
from tokensim.workload import Requests, TraceError, generate, write_trace
from tokensim.workload.lengths import (
    CHAT_OUTPUT_MEDIAN,
    CHAT_OUTPUT_SIGMA,
    CHAT_PROMPT_MEDIAN,
    CHAT_PROMPT_SIGMA,
)

TRACES = Path(__file__).resolve().parent / "traces"
AZURE_CONV = (
    Path(__file__).resolve().parent.parent.parent
    / "shared/data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv"
)

LIB = """
link NVL { bandwidth 450 GB/s; latency 1 us }
link PCI { bandwidth 64 GB/s; latency 2 us }
gpu G { memory 80 GB; bandwidth 3 TB/s; host_link PCI; compute { bf16 1000 TFLOPS } }
model m { layers 32; hidden 4096; heads 32; kv_heads 8; ffn 14336; vocab 128256; max_context 8192 }
cluster { node n0 { gpus G x 8; link NVL } }
deployment { pool p { model m } }
"""
WORKLOAD_LINE = LIB.count("\n") + 1  # the spec line of ``workload { ... }``


def workload_of(body: str, folder: Path = TRACES):
    """The checked ``workload { body }`` of a spec that lives in ``folder``."""
    spec = check_text(LIB + "workload { " + body + " }", str(folder / "spec.tsim"))
    return spec.workload


def run(body: str, seed: int = 0, folder: Path = TRACES) -> Requests:
    return generate(workload_of(body, folder), folder, np.random.default_rng(seed))


FIXED = "lengths fixed 10 -> 5; "


# ---- arrival processes ------------------------------------------------------------------


def test_poisson_gaps_have_mean_one_over_rate_and_cv_one():
    r = run("arrivals poisson 20/s; " + FIXED + "requests 50000")
    gaps = np.diff(r.arrival_s)
    assert len(r) == 50000 and r.arrival_s[0] == 0
    assert gaps.mean() == pytest.approx(1 / 20, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_gamma_gaps_have_the_given_mean_and_cv(cv):
    r = run(f"arrivals gamma {{ rate 5/s; cv {cv} }}; " + FIXED + "requests 100000")
    gaps = np.diff(r.arrival_s)
    assert gaps.mean() == pytest.approx(1 / 5, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


@pytest.mark.parametrize("cv", ["0.001", "1000"])
def test_gamma_draws_finite_times_at_the_ends_of_its_cv_range(cv):
    r = run(f"arrivals gamma {{ rate 5/s; cv {cv} }}; " + FIXED + "requests 1000")
    assert np.all(np.isfinite(r.arrival_s)) and np.all(np.diff(r.arrival_s) >= 0)


@pytest.mark.parametrize("cv", ["1e-300", "1e308", "0"])
def test_a_gamma_cv_beyond_what_can_be_drawn_is_a_located_error(cv):
    with pytest.raises(CompileError) as err:
        workload_of(f"arrivals gamma 20/s {{ cv {cv} }}; " + FIXED + "requests 10")
    assert "`cv` must be" in err.value.diagnostics[0].message


@pytest.mark.parametrize(
    ("process", "exact"),
    [
        ("poisson 1/s", "poisson 1/s { exact on }"),
        ("gamma 1/s { cv 3 }", "gamma 1/s { cv 3; exact on }"),
    ],
)
def test_exact_arrivals_keep_the_drawn_pattern_at_exactly_the_rate(process, exact):
    # 300 gaps drawn with seed 0 span 347 s at 1/s: a load 16% light; `exact` scales them
    # to 299 s, the pattern (each gap's share of the span) as drawn
    drawn = run(f"arrivals {process}; " + FIXED + "requests 300").arrival_s
    scaled = run(f"arrivals {exact}; " + FIXED + "requests 300").arrival_s
    assert scaled[0] == 0 and scaled[-1] == pytest.approx(299.0)
    assert abs(drawn[-1] - 299.0) > 5  # the draw alone misses the rate
    assert np.allclose(scaled, drawn * 299.0 / drawn[-1])
    # with a duration too, the scaled arrivals are cut at it
    cut = run(f"arrivals {exact}; " + FIXED + "requests 300; duration 100 s").arrival_s
    assert cut[-1] < 100 and np.allclose(cut, scaled[: len(cut)])


def test_exact_arrivals_need_a_count_of_requests():
    with pytest.raises(CompileError) as err:
        workload_of("arrivals poisson 5/s { exact on }; " + FIXED + "duration 1 min")
    assert "needs `requests`" in err.value.diagnostics[0].message


def test_constant_gaps_are_exact_from_zero():
    r = run("arrivals constant 4/s; " + FIXED + "requests 9")
    assert r.arrival_s.tolist() == [k / 4 for k in range(9)]


def test_burst_arrives_all_at_zero():
    r = run("arrivals burst; " + FIXED + "requests 7")
    assert r.arrival_s.tolist() == [0.0] * 7


@pytest.mark.parametrize("process", ["poisson 50/s", "gamma 50/s { cv 4 }", "constant 50/s"])
def test_duration_stops_arrivals(process):
    r = run(f"arrivals {process}; " + FIXED + "duration 2 min")
    assert r.arrival_s[-1] < 120
    assert len(r) == pytest.approx(50 * 120, rel=0.1)
    if process.startswith("constant"):
        assert len(r) == 6000  # arrivals at 0, 0.02, ..., 119.98 s


def test_duration_only_poisson_goes_on_until_the_end():
    # Arrivals come in chunks; the last one must still be close to the end.
    r = run("arrivals poisson 3/s; " + FIXED + "duration 1 h")
    assert 3600 - 5 < r.arrival_s[-1] < 3600
    assert np.all(np.diff(r.arrival_s) >= 0)


def test_requests_and_duration_whichever_ends_first():
    assert len(run("arrivals constant 10/s; " + FIXED + "requests 5; duration 1 min")) == 5
    assert len(run("arrivals constant 10/s; " + FIXED + "requests 5000; duration 3 s")) == 30


def test_a_rate_and_duration_beyond_the_request_limit_is_a_located_error():
    with pytest.raises(CompileError) as err:
        workload_of("arrivals poisson 1e9/s; " + FIXED + "duration 10 min")
    text = err.value.diagnostics[0].message
    assert "makes about 6e+11 requests" in text and "at most 10,000,000" in text
    assert err.value.diagnostics[0].span.line == WORKLOAD_LINE


def test_requests_end_an_absurd_rate_within_a_duration():
    # the count ends the draws; the expected count over the duration is never drawn whole
    r = run("arrivals gamma 1e308/s { cv 2 }; " + FIXED + "requests 20; duration 10 min")
    assert len(r) == 20 and np.all(r.arrival_s < 1e-300)


@pytest.mark.parametrize("n", [1, 2, 1000, 12345])
def test_requests_count_is_exact(n):
    assert len(run("arrivals poisson 7/s; lengths chat; requests " + str(n))) == n


# ---- length distributions -----------------------------------------------------------------


def test_fixed_lengths():
    r = run("arrivals poisson 1/s; lengths fixed 512 -> 128; requests 100")
    assert set(r.prompt_tokens.tolist()) == {512} and set(r.output_tokens.tolist()) == {128}
    assert r.prompt_tokens.dtype == np.int64 and r.output_tokens.dtype == np.int64


@pytest.mark.parametrize(
    "text, prompts, outputs",
    [
        # vLLM's bounds: floor(L (1 - r)) .. ceil(L (1 + r)), outputs at least 1
        ("random 10 -> 3 { range_ratio 0.25 }", (7, 13), (2, 4)),
        ("random 10 -> 1 { range_ratio 0.9 }", (1, 19), (1, 2)),
        ("random 10 -> 3", (10, 10), (3, 3)),  # vLLM's default range ratio 0
    ],
)
def test_random_lengths_draw_as_vllm_random_dataset(text, prompts, outputs):
    r = run(f"arrivals poisson 1/s; lengths {text}; requests 4000")
    assert (r.prompt_tokens.min(), r.prompt_tokens.max()) == prompts
    assert (r.output_tokens.min(), r.output_tokens.max()) == outputs


def test_a_random_range_ratio_of_one_or_more_is_an_error():
    with pytest.raises(CompileError, match="`range_ratio` must be < 1"):
        workload_of("arrivals poisson 1/s; lengths random 10 -> 3 { range_ratio 1 }; requests 5")


def test_uniform_lengths_cover_inclusive_ranges():
    r = run("arrivals poisson 1/s; lengths uniform 3..6 -> 1..2; requests 5000")
    assert set(r.prompt_tokens.tolist()) == {3, 4, 5, 6}
    assert set(r.output_tokens.tolist()) == {1, 2}


def test_normal_lengths_round_and_clip():
    r = run(
        "arrivals poisson 1/s; requests 20000; lengths normal { prompt_mean 100; prompt_std 80;"
        " output_mean 50; output_std 10; max_prompt 200; max_output 60 }"
    )
    assert r.prompt_tokens.min() == 1 and r.prompt_tokens.max() == 200
    assert r.output_tokens.max() == 60
    assert np.median(r.output_tokens) == pytest.approx(50, abs=1)


def test_lognormal_median_matches_and_clips():
    r = run(
        "arrivals poisson 1/s; requests 40000; lengths lognormal { prompt_median 800;"
        " prompt_sigma 1; output_median 40; output_sigma 0.5; max_prompt 4000 }"
    )
    assert np.median(r.prompt_tokens) == pytest.approx(800, rel=0.03)
    assert np.median(r.output_tokens) == pytest.approx(40, rel=0.03)
    assert r.prompt_tokens.max() == 4000 and r.output_tokens.min() >= 1
    logs = np.log(r.output_tokens)
    assert logs.std() == pytest.approx(0.5, rel=0.05)


def test_sharegpt_follows_its_shipped_quantiles():
    from tokensim.workload.lengths import SHAREGPT_OUTPUT, SHAREGPT_PROMPT

    r = run("arrivals poisson 1/s; lengths sharegpt; requests 40000")
    for drawn, knots in ((r.prompt_tokens, SHAREGPT_PROMPT), (r.output_tokens, SHAREGPT_OUTPUT)):
        assert (drawn.min(), drawn.max()) == (round(knots[0]), round(knots[-1]))
        for k in (5, 10, 15):  # the 25th, 50th and 75th percentiles are knots
            assert np.percentile(drawn, 5 * k) == pytest.approx(knots[k], rel=0.03, abs=1)
    # the documented means: the area under the piecewise-linear quantile function
    assert r.prompt_tokens.mean() == pytest.approx(207, rel=0.02)
    assert r.output_tokens.mean() == pytest.approx(215, rel=0.02)


def test_a_negative_zero_sigma_is_zero():
    # `-0` is written by hand or by a tool; numpy's lognormal refuses a negative zero
    r = run(
        "arrivals poisson 1/s; requests 50; lengths lognormal { prompt_median 800;"
        " prompt_sigma -0; output_median 40; output_sigma 0.5 }"
    )
    assert set(r.prompt_tokens.tolist()) == {800}


def test_chat_follows_its_documented_fit_and_clips():
    r = run("arrivals poisson 1/s; lengths chat; requests 40000")
    assert np.median(r.prompt_tokens) == pytest.approx(CHAT_PROMPT_MEDIAN, rel=0.03)
    assert np.median(r.output_tokens) == pytest.approx(CHAT_OUTPUT_MEDIAN, rel=0.03)
    assert np.log(r.prompt_tokens).std() == pytest.approx(CHAT_PROMPT_SIGMA, rel=0.03)
    assert np.log(r.output_tokens).std() == pytest.approx(CHAT_OUTPUT_SIGMA, rel=0.03)
    clipped = run(
        "arrivals poisson 1/s; lengths chat { max_prompt 500; max_output 64 }; requests 2000"
    )
    assert clipped.prompt_tokens.max() == 500 and clipped.output_tokens.max() == 64
    assert clipped.prompt_tokens.min() >= 1


def test_chat_figures_are_the_fit_to_the_azure_conversation_trace():
    if not AZURE_CONV.is_file():
        pytest.skip(f"shared data absent: {AZURE_CONV}")
    from tokensim.workload import read_trace

    trace = read_trace(AZURE_CONV, "azure")
    for tokens, median, sigma in (
        (trace.prompt_tokens, CHAT_PROMPT_MEDIAN, CHAT_PROMPT_SIGMA),
        (trace.output_tokens, CHAT_OUTPUT_MEDIAN, CHAT_OUTPUT_SIGMA),
    ):
        logs = np.log(tokens)
        assert np.exp(logs.mean()) == pytest.approx(median, abs=0.5)
        assert logs.std() == pytest.approx(sigma, abs=0.0005)


# ---- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "arrivals poisson 9/s; lengths chat; requests 500",
        "arrivals gamma 9/s { cv 2 }; lengths uniform 1..100 -> 1..50; duration 30 s",
    ],
)
def test_same_seed_same_requests_other_seed_other_requests(body):
    a, b, c = run(body, seed=1), run(body, seed=1), run(body, seed=2)
    for name in ("arrival_s", "prompt_tokens", "output_tokens", "priority"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.arrival_s, c.arrival_s)
    assert not np.array_equal(a.prompt_tokens, c.prompt_tokens)


def test_result_is_read_only():
    r = run("arrivals poisson 1/s; lengths chat; requests 3")
    with pytest.raises(ValueError):
        r.prompt_tokens[0] = 5


# ---- traces in a spec ----------------------------------------------------------------------


def test_trace_gives_arrivals_and_lengths_shifted_to_zero():
    r = run('trace "tiny_tokensim.jsonl"')
    assert r.arrival_s.tolist() == [0.0, 0.5, 3.0]
    assert r.prompt_tokens.tolist() == [100, 200, 300]
    assert r.output_tokens.tolist() == [10, 20, 30]
    assert r.priority.tolist() == [0, 3, 0]
    assert r.prefix_hashes == ((), (7, 8), ()) and r.prefix_block_tokens == 64


def test_time_scale_multiplies_gaps():
    r = run('trace "tiny_mooncake.jsonl" { time_scale 2 }')
    assert r.arrival_s.tolist() == [0.0, 1.0, 6.0]


def test_requests_truncates_a_trace_and_duration_cuts_it():
    assert run('trace "tiny_azure.csv"; requests 2').prompt_tokens.tolist() == [374, 396]
    assert len(run('trace "tiny_azure.csv"; requests 99')) == 3
    assert run('trace "tiny_vidur.csv"; duration 5 s').arrival_s.tolist() == [0.0, 4.314579]


def test_trace_lengths_with_poisson_arrivals():
    r = run('trace "tiny_mooncake.jsonl"; arrivals poisson 100/s', seed=3)
    assert r.prompt_tokens.tolist() == [1000, 600, 10]
    assert r.prefix_hashes == ((0, 1), (0, 2), (3,)) and r.prefix_block_tokens == 512
    assert r.arrival_s[0] == 0 and r.arrival_s[1:].tolist() != [0.5, 3.0]


def test_trace_arrivals_with_drawn_lengths_drop_prefix_ids():
    r = run('trace "tiny_mooncake.jsonl"; lengths fixed 7 -> 3')
    assert r.arrival_s.tolist() == [0.0, 0.5, 3.0]
    assert r.prompt_tokens.tolist() == [7, 7, 7]
    assert r.prefix_hashes is None and r.prefix_block_tokens == 0


def test_length_only_trace_takes_arrivals_from_the_process():
    r = run('trace "tiny_vidur_lengths.csv"; arrivals constant 2/s')
    assert r.arrival_s.tolist() == [0.0, 0.5]
    assert r.prompt_tokens.tolist() == [3772, 2015]


def test_length_only_trace_without_arrivals_is_a_located_error():
    with pytest.raises(TraceError) as info:
        run('trace "tiny_vidur_lengths.csv"')
    (d,) = info.value.diagnostics
    assert "has no arrival times" in d.message
    assert d.span.file.endswith("spec.tsim") and d.span.line == WORKLOAD_LINE
    assert "arrivals poisson" in d.help


def test_bad_trace_in_a_spec_points_at_the_file_and_the_spec(tmp_path):
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,5,0\n")
    with pytest.raises(TraceError) as info:
        run('trace "t.csv"', folder=tmp_path)
    (d,) = info.value.diagnostics
    assert d.message == "trace line 2: output_tokens must be at least 1, not 0"
    assert (d.span.file, d.span.line, d.span.col) == (str(tmp_path / "t.csv"), 2, 1)
    assert d.notes[0].message == "the trace is named here" and d.notes[0].span.line == WORKLOAD_LINE
    err = info.value.to_compile_error()
    assert isinstance(err, CompileError)
    text = str(err)
    assert "error: trace line 2: output_tokens must be at least 1, not 0" in text
    assert f"--> {tmp_path / 't.csv'}:2:1" in text and "2 | 0,5,0" in text and "^^^^^" in text


def test_generated_requests_round_trip_through_a_trace_file(tmp_path):
    r = run("arrivals gamma 3/s { cv 2 }; lengths chat; requests 300", seed=5)
    write_trace(r, tmp_path / "out.csv")
    back = run('trace "out.csv"', folder=tmp_path)
    assert np.array_equal(back.arrival_s, r.arrival_s)
    assert np.array_equal(back.prompt_tokens, r.prompt_tokens)
    assert np.array_equal(back.output_tokens, r.output_tokens)


# ---- the container -----------------------------------------------------------------------


def _cols(n=2):
    return (np.zeros(n), np.ones(n, np.int64), np.ones(n, np.int64), np.zeros(n, np.int64))


@pytest.mark.parametrize(
    "change",
    [
        lambda c: (c[0].astype(np.float32),) + c[1:],
        lambda c: (c[0], c[1][:1]) + c[2:],
        lambda c: (np.array([1.0, 0.5]),) + c[1:],
        lambda c: (np.array([-1.0, 0.5]),) + c[1:],
        lambda c: (c[0], np.array([0, 1])) + c[2:],
        lambda c: c[:2] + (np.array([1, 0]), c[3]),
    ],
)
def test_requests_rejects_malformed_columns(change):
    with pytest.raises(ValueError):
        Requests(*change(_cols()))


def test_requests_checks_prefix_ids():
    with pytest.raises(ValueError):
        Requests(*_cols(), prefix_hashes=((1,),), prefix_block_tokens=16)  # one per request
    with pytest.raises(ValueError):
        Requests(*_cols(), prefix_hashes=((1,), (2,)), prefix_block_tokens=0)
    with pytest.raises(ValueError):
        Requests(*_cols(), prefix_block_tokens=16)
    with pytest.raises(ValueError):
        Requests(*_cols(), prefix_hashes=((1,), ("a",)), prefix_block_tokens=16)
    assert len(Requests(*_cols(), prefix_hashes=((1,), ()), prefix_block_tokens=16)) == 2


# ---- shared prefixes --------------------------------------------------------------------


def test_a_shared_prefix_lengthens_every_prompt_and_groups_the_sharers():
    r = run(
        "arrivals poisson 1/s; lengths fixed 10 -> 5; requests 4000;"
        " shared_prefix 64 tokens { fraction 0.25; groups 3 }"
    )
    assert set(r.prompt_tokens.tolist()) == {74}  # the work is the same whoever shares
    assert r.prefix_block_tokens == 64
    shared = [h for h in r.prefix_hashes if h]
    assert len(shared) / len(r) == pytest.approx(0.25, abs=0.03)
    assert {h for (h,) in shared} == {0, 1, 2}
    assert all(len(h) == 0 for h in r.prefix_hashes if not h)


def test_a_shared_prefix_defaults_to_one_prefix_for_every_request():
    r = run("arrivals poisson 1/s; lengths fixed 10 -> 5; requests 50; shared_prefix 32")
    assert set(r.prefix_hashes) == {(0,)} and r.prompt_tokens[0] == 42


def test_a_shared_prefix_cannot_add_to_a_traces_own_prefix_ids():
    with pytest.raises(TraceError) as err:
        run('trace "tiny_mooncake.jsonl"; shared_prefix 100 tokens')
    (d,) = err.value.diagnostics
    assert "gives its own prefix ids" in d.message and d.span.line == WORKLOAD_LINE
    # with `lengths`, the trace gives only arrival times: nothing to add to
    r = run('trace "tiny_mooncake.jsonl"; lengths fixed 7 -> 3; shared_prefix 100 tokens')
    assert set(r.prompt_tokens.tolist()) == {107}


@pytest.mark.parametrize(
    "body, message",
    [
        ("shared_prefix 0 tokens", "`shared_prefix` must be >= 1, found `0 tokens`"),
        ("shared_prefix 10 { fraction 1.5 }", "`fraction` must be <= 1"),
        ("shared_prefix 10 { groups 0 }", "`groups` must be >= 1"),
        ("shared_prefix 10 s", "tokens"),
    ],
)
def test_a_bad_shared_prefix_is_a_located_error(body, message):
    with pytest.raises(CompileError, match=message):
        workload_of(f"arrivals poisson 1/s; lengths fixed 10 -> 5; requests 5; {body}")
