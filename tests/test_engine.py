"""Serving engines: the language (definitions, layers of overrides, defaults by GPU) and
each mechanism the simulator runs (host time, async scheduling, eager launches,
multi-step windows, the front end's queue, output reservation, memory rules, closed loops).

Each scenario starts from the ``ideal`` engine (no overheads) and switches on one
mechanism, so the expected times are computed by hand from the cost model."""

import numpy as np
import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.lang.check import std_engines
from tokensim.lang.override import override
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap
from tokensim.perf import Batch, for_pool
from tokensim.sim.instance import Instance
from tokensim.sim.run import simulate

LIB = """
import "std/hardware"
import "std/engines"
link NVL { bandwidth 400 GB/s; latency 2 us }
link PCI { bandwidth 50 GB/s; latency 2 us }
gpu G { memory 80 GB; bandwidth 2 TB/s; host_link PCI
        compute { bf16 1000 TFLOPS }
        efficiency { gemm 0.5; attention 0.25; memory 0.5; kv_read 0.25; network 0.5 } }
model m { layers 10; hidden 4096; heads 32; kv_heads 8; ffn 16384; vocab 32000; max_context 8192 }
cluster { node n0 { gpus G x 8; link NVL } }
"""


def spec_of(engine: str, workload: str, pool: str = "") -> object:
    return compile_text(
        LIB
        + f"deployment {{ pool p {{ model m; on n0[0]; {pool}; engine {engine} }} }}\n"
        + f"workload {{ {workload} }}"
    )


def run(engine: str, workload: str, pool: str = ""):
    spec = spec_of(engine, workload, pool)
    graph = lower(spec)
    return simulate(graph, transitions=True), for_pool(spec.deployment.pools[0], graph)


def ttft(result) -> np.ndarray:
    r = result.requests
    return r["first_token_s"] - r["arrival_s"]


# -- the language -------------------------------------------------------------------------


def test_std_engines_are_defined_with_sources():
    engines = std_engines()
    assert {"vllm_v1", "vllm_0_6", "sglang", "trtllm", "ideal"} <= set(engines)
    assert all(e.sources for e in engines.values())


def test_vllm_0_14_is_vllm_v1_with_async_scheduling():
    from dataclasses import replace

    text = """
import "std/hardware"
import "std/models"
import "std/engines"
cluster { node a { gpus A100_80G x 2; link NVLINK3 }
          node h { gpus H100_SXM x 2; link NVLINK4 } }
deployment { pool a1 { model llama3_1_8b; on a[0]; engine vllm_v1 }
             pool a2 { model llama3_1_8b; on a[1]; engine vllm_0_14 }
             pool h1 { model llama3_1_8b; on h[0]; engine vllm_v1 }
             pool h2 { model llama3_1_8b; on h[1]; engine vllm_0_14 } }
"""
    pools = compile_text(text).deployment.pools
    for old, new in (pools[:2], pools[2:]):
        assert not old.engine.async_scheduling and new.engine.async_scheduling
        assert old.batching.params == new.batching.params and old.kv == new.kv
        # the same engine but for the scheduling, and its API server's time per streamed
        # token (read off BLIS's runs of this version)
        same = dict(name="", version="", sources=(), span=None, frontend=old.engine.frontend)
        assert replace(new.engine, async_scheduling=False, **same) == replace(old.engine, **same)
        assert new.engine.frontend.per_output_token_s > old.engine.frontend.per_output_token_s


def test_a_pool_without_an_engine_runs_vllm_v1_with_its_defaults_for_the_gpu():
    text = """
import "std/hardware"
import "std/models"
cluster { node a { gpus A100_80G x 1 }
          node h { gpus H100_SXM x 1 } }
deployment { pool pa { model llama3_1_8b; on a }
             pool ph { model llama3_1_8b; on h } }
"""
    pools = {p.name: p for p in compile_text(text).deployment.pools}
    assert {p.engine.name for p in pools.values()} == {"vllm_v1"}
    # vLLM's arg_utils: 2048 tokens / 256 sequences on an A100, 8192 / 1024 on an H100
    assert dict(pools["pa"].batching.params)["budget"] == 2048
    assert dict(pools["ph"].batching.params) == {
        "budget": 8192,
        "max_seqs": 1024,
        "chunk": True,
        "order": "fcfs",
    }
    assert pools["ph"].engine.overrides == ()  # the engine's own default for the GPU
    assert pools["pa"].kv.prefix_cache and pools["pa"].kv.block_tokens == 16


def test_overrides_layer_statement_by_statement():
    spec = compile_text(
        LIB
        + """deployment {
  engine vllm_0_6 { host { per_seq 1 us } }
  pool a { model m; on n0[0] }
  pool b { model m; on n0[1]; engine { scheduler_steps 10; host { iteration 7 ms } }
           kv { gpu_util 0.5 } }
  pool c { model m; on n0[2]; engine sglang; batching continuous { max_seqs 8 } }
}"""
    )
    a, b, c = spec.deployment.pools
    v06 = std_engines()["vllm_0_6"]
    assert a.engine.name == b.engine.name == "vllm_0_6" and a.engine.host.per_seq_s == 1e-6
    assert a.engine.host.iteration_s > 0  # the definition's, kept beside the override
    assert b.engine.scheduler_steps == 10 and b.engine.stream_tokens == 10
    assert b.engine.host.iteration_s == 7e-3 and b.engine.host.per_seq_s == 1e-6
    assert b.kv.gpu_util == 0.5 and b.kv.block_tokens == 16  # the engine's block size
    assert c.engine.name == "sglang" and c.engine.host.per_seq_s != 1e-6  # a new engine
    assert c.kv.block_tokens == 1 and dict(c.batching.params)["max_seqs"] == 8
    # the same policy merges parameters: the engine's max_tokens stays
    assert dict(c.batching.params)["max_tokens"] == 8192 and dict(c.batching.params)["chunk"]
    assert v06.name == "vllm_0_6"


def test_an_engine_defined_from_another_changes_only_what_it_says():
    text = """
import "std/hardware"
import "std/engines"
import "std/models"
engine mine from vllm_v1 {
  source "fitted on my benchmark"
  host { iteration 2 ms }
  on_gpu A100_80G { batching chunked { max_seqs 64 } }
}
engine mine2 from mine { frontend { latency 1 ms } }
cluster { node a { gpus A100_80G x 1 }
          node h { gpus H100_SXM x 1 } }
deployment { pool pa { model llama3_1_8b; on a; engine mine }
             pool ph { model llama3_1_8b; on h; engine mine2 } }
"""
    pools = {p.name: p for p in compile_text(text).deployment.pools}
    base = std_engines()["vllm_v1"]
    pa, ph = pools["pa"], pools["ph"]
    assert pa.engine.host.iteration_s == 2e-3 == ph.engine.host.iteration_s
    # what it does not say is the base's: per_seq, the base's choices for the GPU
    assert pa.engine.host.per_seq_s == ph.engine.host.per_seq_s > 0
    assert dict(ph.batching.params)["budget"] == 8192  # vllm_v1's on_gpu H100_SXM
    # its own on_gpu comes after the base's, and merges the same policy's parameters
    assert dict(pa.batching.params)["max_seqs"] == 64
    assert dict(pa.batching.params)["budget"] == 2048
    assert ph.engine.frontend.latency_s == 1e-3 and pa.engine.frontend.latency_s != 1e-3
    assert pa.engine.sources[0] == "fitted on my benchmark"
    assert pa.engine.sources[1:] == base.sources and pa.engine.version == base.version
    err = errors_of(LIB + "engine e from vllm_v9 { host { iteration 2 ms } }")
    assert "unknown engine `vllm_v9`" in err and "did you mean `vllm_v1`" in err


def test_on_gpu_by_memory_gives_a_gpu_of_ones_own_the_engines_defaults():
    # vLLM sets its batch by device memory (>= 70 GiB, not an A100) and SGLang its chunk
    # and CUDA graphs (< 35 GiB): GPUs a spec defines get them as the catalogue's do
    text = """
import "std/hardware"
import "std/engines"
import "std/models"
gpu small { memory 24 GiB; bandwidth 1 TB/s; host_link PCIE4; compute { bf16 100 TFLOPS } }
gpu big { memory 96 GiB; bandwidth 1 TB/s; host_link PCIE4; compute { bf16 100 TFLOPS } }
cluster { node s { gpus small x 2; link PCIE4 }
          node b { gpus big x 2; link PCIE4 }
          node a { gpus A100_80G x 1 } }
deployment { pool vs { model llama3_1_8b; on s[0] }
             pool vb { model llama3_1_8b; on b[0] }
             pool va { model llama3_1_8b; on a }
             pool ss { model llama3_1_8b; on s[1]; engine sglang }
             pool sb { model llama3_1_8b; on b[1]; engine sglang } }
"""
    pools = {p.name: p for p in compile_text(text).deployment.pools}
    params = {name: dict(p.batching.params) for name, p in pools.items()}
    assert params["vs"]["budget"] == 2048 and params["vs"]["max_seqs"] == 256
    assert params["vb"]["budget"] == 8192 and params["vb"]["max_seqs"] == 1024
    assert params["va"]["budget"] == 2048  # 80 GiB, but an A100: named after the rule
    assert params["ss"]["max_tokens"] == 2048 and pools["ss"].engine.cuda_graphs == 8
    assert params["sb"]["max_tokens"] == 8192 and pools["sb"].engine.cuda_graphs == 160
    assert params["ss"]["max_seqs"] == 2048  # the block merges into the engine's batching


def test_on_gpu_conditions_apply_in_the_order_written():
    text = (
        LIB.replace("memory 80 GB", "memory 48 GB")
        + """
engine e from ideal {
  on_gpu memory < 50 GB { scheduler_steps 2; cuda_graphs 8 tokens }
  on_gpu memory >= 48 GB { scheduler_steps 3 }
  on_gpu memory > 48 GB { cuda_graphs 99 tokens }
}
deployment { pool p { model m; on n0[0]; engine e } }
"""
    )
    pool = compile_text(text).deployment.pools[0]
    assert pool.engine.scheduler_steps == 3 and pool.engine.cuda_graphs == 8
    err = errors_of(LIB + "engine e { on_gpu memory = 5 GB { scheduler_steps 2 } }")
    assert "write `<`, `<=`, `>` or `>=`" in err
    err = errors_of(LIB + "engine e { on_gpu memory < 5 ms { scheduler_steps 2 } }")
    assert "expected a size in bytes" in err
    err = errors_of(LIB + "engine e { on_gpu memory { scheduler_steps 2 } }")
    assert "needs a comparison" in err


def test_set_reaches_an_engine_statement_of_a_pool_that_names_none():
    text = LIB + "deployment { pool p { model m; on n0[0] } }\n"
    sources = SourceMap()
    module = parse(text, "t.tsim", sources)
    changed = override(module, "deployment.p.engine.scheduler_steps", "4", sources)
    from tokensim.lang.check import check

    pool = check(changed, sources).deployment.pools[0]
    assert pool.engine.name == "vllm_v1" and pool.engine.scheduler_steps == 4


def test_engine_mistakes_are_located_errors():
    err = errors_of(LIB + "deployment { pool p { model m; engine vllm_v2 } }")
    assert "unknown engine `vllm_v2`" in err and "did you mean `vllm_v1`" in err
    err = errors_of(
        LIB.replace('import "std/engines"', "") + "deployment { pool p { model m; engine sglang } }"
    )
    assert 'add `import "std/engines"`' in err
    err = errors_of(LIB + "deployment { pool p { model m; engine sglang { schedular_steps 2 } } }")
    assert "unknown statement `schedular_steps`" in err and "did you mean `scheduler_steps`" in err
    assert err.count("error:") == 1  # reported once, not once per layer
    err = errors_of(LIB + "deployment { pool p { model m; engine { host { per_seq 2 GB } } } }")
    assert "expected a time" in err
    err = errors_of(LIB + "engine e { on_gpu H100_SMX { scheduler_steps 2 } }")
    assert "unknown gpu `H100_SMX`" in err and "did you mean `H100_SXM`" in err
    err = errors_of(LIB + "engine sglang\ndeployment { pool p { model m } }")
    assert "`engine` needs a { } block" in err  # a definition without its block


# -- the mechanisms -----------------------------------------------------------------------


ONE = "arrivals poisson 1/s; lengths fixed 1000 -> 1; requests 1"


def test_host_time_adds_to_an_iteration():
    base, cost = run("ideal", ONE)
    host, _ = run("ideal { host { iteration 3 ms; per_seq 1 ms; per_prefill_token 1 us } }", ONE)
    assert ttft(base)[0] == pytest.approx(cost.prefill_s(1000))
    assert ttft(host)[0] == pytest.approx(cost.prefill_s(1000) + 3e-3 + 1e-3 + 1000e-6)


def test_tp_ranks_add_host_time():
    spec = compile_text(
        LIB
        + "deployment { pool p { model m; tp 4; engine ideal { host { per_rank 2 ms } } } }\n"
        + f"workload {{ {ONE} }}"
    )
    graph = lower(spec)
    cost = for_pool(spec.deployment.pools[0], graph)
    assert ttft(simulate(graph))[0] == pytest.approx(cost.prefill_s(1000) + 3 * 2e-3)


DECODE = "arrivals poisson 1/s; lengths fixed 100 -> 51; requests 1"


def tpot(result) -> float:
    r = result.requests
    return float(((r["finish_s"] - r["first_token_s"]) / (r["output_tokens"] - 1))[0])


def test_async_scheduling_overlaps_host_time_with_the_gpu():
    _, cost = run("ideal", DECODE)
    step = cost.decode_step_s(1, 125)  # a step mid-way, for scale
    host = f"host {{ iteration {step * 0.5 * 1e3:.6f} ms }}"
    sync, _ = run(f"ideal {{ {host} }}", DECODE)
    over, _ = run(f"ideal {{ {host}; async_scheduling on }}", DECODE)
    gpu, _ = run("ideal", DECODE)
    assert tpot(sync) == pytest.approx(tpot(gpu) + step * 0.5, rel=1e-6)
    assert tpot(over) == pytest.approx(tpot(gpu), rel=1e-6)  # hidden behind the GPU
    slow = f"host {{ iteration {step * 3 * 1e3:.6f} ms }}; async_scheduling on"
    bound, _ = run(f"ideal {{ {slow} }}", DECODE)
    assert tpot(bound) == pytest.approx(step * 3, rel=1e-6)  # the CPU sets the pace


def test_eager_iterations_are_bound_by_kernel_launches():
    _, cost = run("ideal", DECODE)
    step = cost.decode_step_s(1, 125)
    per_layer = step * 2 / 10  # 10 layers launch in twice the GPU time
    eager = f"host {{ per_layer {per_layer * 1e3:.6f} ms }}"
    graphs, _ = run(f"ideal {{ {eager}; cuda_graphs 8 tokens; graph_prefill on }}", DECODE)
    no_graphs, _ = run(f"ideal {{ {eager}; cuda_graphs off }}", DECODE)
    gpu, _ = run("ideal", DECODE)
    assert tpot(graphs) == pytest.approx(tpot(gpu), rel=1e-6)
    assert tpot(no_graphs) == pytest.approx(step * 2, rel=1e-6)
    # a prompt runs eager without graph_prefill: its launches bound the prefill
    long = 10 * cost.prefill_s(1000)
    eager = f"host {{ per_layer {long * 100:.6f} ms }}; cuda_graphs 8 tokens"
    slow, _ = run(f"ideal {{ {eager} }}", ONE)
    assert ttft(slow)[0] == pytest.approx(long, rel=1e-6)


def test_a_decode_run_leaves_the_launch_floor_when_its_context_outgrows_it():
    _, cost = run("ideal", "arrivals poisson 1/s; lengths fixed 100 -> 2001; requests 1")
    early, late = cost.decode_step_s(1, 100), cost.decode_step_s(1, 2100)
    floor = (early + late) / 2
    spec = f"ideal {{ host {{ per_layer {floor / 10 * 1e3:.6f} ms }}; cuda_graphs off }}"
    result, _ = run(spec, "arrivals poisson 1/s; lengths fixed 100 -> 2001; requests 1")
    # each step: max(floor, GPU step); summed by hand
    # (step s reads the prompt, the first token and s - 1 more)
    steps = [max(floor, cost.decode_step_s(1, 101 + s)) for s in range(2000)]
    r = result.requests
    assert r["finish_s"][0] - r["first_token_s"][0] == pytest.approx(sum(steps), rel=1e-6)


def test_multi_step_windows_delay_joins_and_deliver_tokens_in_chunks():
    work = "arrivals constant 20/s; lengths fixed 200 -> 41; requests 2"
    one, _ = run("ideal", work)
    ten, _ = run("ideal { scheduler_steps 10 }", work)
    # the second request arrives while the first decodes: it waits for the window to end
    assert ttft(ten)[1] > ttft(one)[1]
    # tokens leave in chunks of 10: the client's gaps are 10 steps long
    assert np.average(ten.itl_s, weights=ten.itl_weights) == pytest.approx(
        10 * np.average(one.itl_s, weights=one.itl_weights), rel=0.2
    )
    # 45 decode steps end inside the fifth window: the last tokens leave when it ends
    alone = "arrivals poisson 1/s; lengths fixed 200 -> 46; requests 1"
    one, ten = run("ideal", alone)[0], run("ideal { scheduler_steps 10 }", alone)[0]
    assert tpot(ten) == pytest.approx(tpot(one) * 50 / 45, rel=0.01)


def test_a_multi_step_window_shares_its_scheduling_but_not_its_time_per_sequence():
    # 50 decode steps: five whole windows of 10
    gpu, _ = run("ideal { scheduler_steps 10 }", DECODE)
    sched, _ = run("ideal { scheduler_steps 10; host { iteration 10 ms } }", DECODE)
    per_seq, _ = run("ideal { scheduler_steps 10; host { per_seq 1 ms } }", DECODE)
    assert tpot(sched) - tpot(gpu) == pytest.approx(10e-3 / 10, rel=1e-6)
    # every step processes its sequences' outputs: a window does not share that
    assert tpot(per_seq) - tpot(gpu) == pytest.approx(1e-3, rel=1e-6)


def test_a_request_on_its_way_does_not_hold_up_tokens_made_before_it_arrives():
    fe = "ideal { frontend { per_request 10 ms; latency 50 ms } }"
    _, cost = run("ideal", ONE)
    made = 50e-3 + 10e-3 + cost.prefill_s(1000)  # the first request's token
    # the second is sent 30 ms before that token is made, and reaches the server 20 ms after
    gap = made - 30e-3
    two, _ = run(fe, f"arrivals constant {1 / gap:.9f}/s; lengths fixed 1000 -> 1; requests 2")
    assert ttft(two)[0] == pytest.approx(made, rel=1e-6)


def test_the_front_end_queues_a_burst():
    burst = "arrivals burst; lengths fixed 100 -> 1; requests 20"
    serial, _ = run("ideal { frontend { per_request 10 ms } }", burst)
    two, _ = run("ideal { frontend { per_request 10 ms; workers 2 } }", burst)
    gpu, _ = run("ideal", burst)
    # one server takes them in one after the other, two in pairs
    assert serial.requests["enqueued_s"].max() == pytest.approx(20 * 10e-3)
    assert two.requests["enqueued_s"].max() == pytest.approx(10 * 10e-3)
    assert gpu.requests["enqueued_s"].max() == 0
    assert ttft(serial).max() >= 20 * 10e-3
    late, _ = run("ideal { frontend { latency 50 ms } }", burst)
    assert (late.requests["enqueued_s"] == 50e-3).all()  # a delay, not a queue
    tokens, _ = run("ideal { frontend { per_input_token 100 us } }", ONE)
    alone, _ = run("ideal", ONE)
    assert ttft(tokens)[0] == pytest.approx(ttft(alone)[0] + 1000 * 100e-6, rel=1e-6)


def test_a_concurrent_front_end_takes_a_burst_in_together():
    """An asynchronous server shares itself among the requests it is taking in: a burst
    of 20 at 10 ms each reaches the engine together after 200 ms, where a server taking
    them one after another lets the first in after 10 ms."""
    burst = "arrivals burst; lengths fixed 100 -> 1; requests 20"
    shared, _ = run("ideal { frontend { per_request 10 ms; concurrent on } }", burst)
    assert shared.requests["enqueued_s"] == pytest.approx(np.full(20, 20 * 10e-3))
    two, _ = run("ideal { frontend { per_request 10 ms; workers 2; concurrent on } }", burst)
    assert two.requests["enqueued_s"] == pytest.approx(np.full(20, 10 * 10e-3))
    # a request taken in alone takes its own time, after the latency
    apart = "arrivals constant 10/s; lengths fixed 100 -> 1; requests 3"
    engine = "ideal { frontend { per_request 10 ms; latency 5 ms; concurrent on } }"
    alone, _ = run(engine, apart)
    waited = alone.requests["enqueued_s"] - alone.requests["arrival_s"]
    assert waited == pytest.approx(np.full(3, 15e-3))
    # two that overlap share the server: sent 5 ms apart, 10 ms of work each, the first is
    # done after 5 ms alone + 10 ms at half speed (5 ms of its work), the second 5 ms later
    pair = "arrivals constant 200/s; lengths fixed 100 -> 1; requests 2"
    both, _ = run("ideal { frontend { per_request 10 ms; concurrent on } }", pair)
    assert both.requests["enqueued_s"] == pytest.approx([15e-3, 20e-3])


def test_a_front_end_that_hands_requests_over_in_batches():
    """vLLM 0.5.5-0.6.1's API server forwards requests to the engine's process from a task
    of its event loop, which runs after every request handler that was ready: the engine
    gets none of a batch until the server has taken it all in. Requests sent 6 ms apart,
    10 ms of work each: the first is a batch of its own (in at 10 ms); the second came
    while the server worked on it and is the next batch (20 ms); the third and fourth came
    while that one was taken in, and go over together when both are in (40 ms)."""
    apart = "arrivals constant 166.666666667/s; lengths fixed 100 -> 2; requests 4"
    batched, _ = run("ideal { frontend { per_request 10 ms; batches on } }", apart)
    assert batched.requests["arrival_s"] == pytest.approx([0, 6e-3, 12e-3, 18e-3])
    assert batched.requests["enqueued_s"] == pytest.approx([10e-3, 20e-3, 40e-3, 40e-3])
    each, _ = run("ideal { frontend { per_request 10 ms } }", apart)
    assert each.requests["enqueued_s"] == pytest.approx([10e-3, 20e-3, 30e-3, 40e-3])
    # a burst goes over whole, and the engine is not held up meanwhile: it steps the
    # first batch while the server takes the next one in
    burst = "arrivals burst; lengths fixed 100 -> 2; requests 20"
    whole, _ = run("ideal { frontend { per_request 10 ms; batches on } }", burst)
    assert whole.requests["enqueued_s"] == pytest.approx(np.full(20, 20 * 10e-3))
    steps = batched.instances[0].work
    assert steps[0, 0] == pytest.approx(10e-3)  # the first batch's prefill ...
    assert steps[0, 1] < 20e-3  # ... ends while the server takes the second in


def test_a_front_end_takes_requests_in_one_way_only():
    engine = (
        "deployment {{ pool p {{ model m; engine ideal {{ frontend {{ per_request 1 ms; {} }} }} "
        "}} }}"
    )
    assert "it has no `batches` to hand to another" in errors_of(
        LIB + engine.format("shares_cpu on; batches on")
    )
    assert "it cannot hand them over in `batches` too" in errors_of(
        LIB + engine.format("concurrent on; batches on")
    )
    # a spec that asks vllm_0_6 (batches on) for another way is told how, at its own line
    mine = "deployment {{ pool p {{ model m; engine vllm_0_6 {{ frontend {{ {} }} }} }} }}"
    said = errors_of(LIB + mine.format("shares_cpu on"))
    assert "`vllm_0_6` has `batches on`: write `batches off` beside `shares_cpu on`" in said
    spec = compile_text(LIB + mine.format("shares_cpu on; batches off") + f"\nworkload {{ {ONE} }}")
    frontend = spec.deployment.pools[0].engine.frontend
    assert frontend.shares_cpu and not frontend.batches


def test_a_front_end_that_shares_the_engines_cpu_cannot_be_concurrent():
    errs = errors_of(
        LIB + "deployment { pool p { model m; engine ideal { frontend { per_request 1 ms; "
        "shares_cpu on; concurrent on } } } }"
    )
    assert "it cannot be `concurrent` too" in errs


def test_a_front_end_that_shares_the_engines_cpu_holds_the_engine_up():
    burst = "arrivals burst; lengths fixed 100 -> 2; requests 20"
    own, _ = run("ideal { frontend { per_request 10 ms } }", burst)
    shared, _ = run("ideal { frontend { per_request 10 ms; shares_cpu on } }", burst)

    def first_step(result) -> float:
        return min(inst.work[:, 0].min() for inst in result.instances if len(inst.work))

    # its own process: the engine prefills the first request as soon as it is in
    assert first_step(own) == pytest.approx(10e-3)
    # one process: no step starts before the whole burst is taken in (20 x 10 ms)
    assert first_step(shared) == pytest.approx(20 * 10e-3)
    assert ttft(shared).min() > 20 * 10e-3
    # a request taken in while another decodes stops it at its next step
    long = "arrivals constant 1/s; lengths fixed 100 -> 400; requests 2"
    work = "ideal { frontend { per_request 50 ms; shares_cpu on } }"
    alone, _ = run(work, "arrivals constant 1/s; lengths fixed 100 -> 400; requests 1")
    paused, _ = run(work, long)
    first = paused.requests["finish_s"][0] - alone.requests["finish_s"][0]
    assert alone.requests["finish_s"][0] > 1.0  # still decoding when the second arrives
    assert 50e-3 <= first < 50e-3 + 0.05  # about the intake, plus the second's prefill


def test_a_burst_reaches_a_server_that_shares_the_engines_cpu_whole():
    """The front end's latency (client, network) comes before its CPU time: ten requests
    sent together reach the server together, are taken in one after another, and the
    engine's first step has them all."""
    burst = "arrivals burst; lengths fixed 100 -> 2; requests 10"
    fe, _ = run("ideal { frontend { per_request 1 ms; latency 50 ms; shares_cpu on } }", burst)
    first = min(inst.work[:, 0].min() for inst in fe.instances if len(inst.work))
    assert first == pytest.approx(50e-3 + 10 * 1e-3)
    t = ttft(fe)
    assert t.max() == pytest.approx(t.min())  # one prefill for all ten
    # a request's own TTFT has its latency once, before the intake
    one, _ = run(
        "ideal { frontend { per_request 1 ms; latency 50 ms } }",
        "arrivals burst; lengths fixed 100 -> 2; requests 1",
    )
    alone, _ = run("ideal", "arrivals burst; lengths fixed 100 -> 2; requests 1")
    assert ttft(one)[0] == pytest.approx(ttft(alone)[0] + 51e-3)


def test_async_output_sends_a_prompts_first_token_when_the_next_step_ends():
    """vLLM V0's asynchronous output processor: a step's outputs leave with the next step.
    Two 1,000-token prompts under a 1,000-token budget take two prefill steps (prefill
    first); the first prompt's token leaves when the second's prefill ends, the second's
    when the decode step after it ends."""
    burst = "arrivals burst; lengths fixed 1000 -> 4; requests 2"
    pool = "batching continuous { max_tokens 1000 tokens }"
    sync, _ = run("ideal", burst, pool)
    lagged, _ = run("ideal { async_output on }", burst, pool)
    ends = np.sort(np.concatenate([i.work[:, 1] for i in lagged.instances if len(i.work)]))
    first_of = lambda result: np.sort(result.requests["first_token_s"])  # noqa: E731
    assert first_of(sync) == pytest.approx(ends[:2])  # each at the end of its own prefill
    assert first_of(lagged)[0] == pytest.approx(ends[1])  # the first waits for the second
    # the second waits for the first step of the decode run after it
    decode = lagged.instances[0].work
    run_start, steps = decode[2, 0], decode[2, 4]
    step = (decode[2, 1] - run_start) / steps
    assert first_of(lagged)[1] == pytest.approx(run_start + step, rel=1e-4)  # steps grow a little
    # the engine's own work and the requests' ends are unchanged
    assert np.array_equal(sync.instances[0].work, lagged.instances[0].work)
    assert sync.requests["finish_s"] == pytest.approx(lagged.requests["finish_s"])


def test_a_lagging_first_token_waits_for_a_request_the_server_took_in_before_it():
    """With ``async_output``, a prompt's first token reaches the API server when the next
    step ends, so a request that came to the server during that step is taken in first
    (first come, first served): the token leaves after its intake, not when the step ends."""
    engine = "ideal { async_output on; frontend { per_request 30 ms } }"
    _, cost = run("ideal", ONE)
    prefilled = 30e-3 + cost.prefill_s(1000)  # the first request's prefill ends
    sent = prefilled + 1e-3  # the second comes 1 ms into the decode step after it
    two, _ = run(engine, f"arrivals constant {1 / sent:.9f}/s; lengths fixed 1000 -> 4; requests 2")
    step = two.instances[0].work
    run_start = step[1, 0]
    assert run_start == pytest.approx(prefilled, rel=1e-6)
    assert (step[1, 1] - run_start) / step[1, 4] < 30e-3  # the step ends before the intake
    assert ttft(two)[0] == pytest.approx(sent + 30e-3, rel=1e-6)


def test_a_burst_holds_up_the_tokens_of_the_requests_taken_in_first():
    burst = "arrivals burst; lengths fixed 100 -> 5; requests 20"
    fe, _ = run("ideal { frontend { per_request 10 ms } }", burst)
    r = fe.requests
    # the engine has the first request after 10 ms and runs it at once ...
    assert r["admitted_s"].min() == pytest.approx(10e-3)
    # ... but the API server streams its tokens only after taking in the other 19
    assert ttft(fe).min() >= 20 * 10e-3 - 1e-9
    two, _ = run("ideal { frontend { per_request 10 ms; workers 2 } }", burst)
    assert ttft(two).min() >= 10 * 10e-3 - 1e-9 and ttft(two).max() < ttft(fe).min()


def test_every_instance_has_its_own_front_end():
    """Four instances at four times the rate, round robin, each see the load of one
    instance alone: each runs its own API server, so their requests wait as long (a front
    end shared by the pool would take in 100 requests a second of the 200 sent)."""

    def served(instances: int, rate: int, requests: int):
        spec = compile_text(
            LIB
            + f"deployment {{ pool p {{ model m; instances {instances}; on n0; "
            + "engine ideal { frontend { per_request 10 ms; per_output_token 0.1 ms } } }\n"
            + "route p by round_robin }\n"
            + f"workload {{ arrivals constant {rate}/s; lengths fixed 100 -> 20; "
            + f"requests {requests} }}"
        )
        return simulate(lower(spec))

    one, four = served(1, 50, 100), served(4, 200, 400)
    assert ttft(four).max() < 0.1
    assert ttft(four).mean() == pytest.approx(ttft(one).mean(), rel=1e-6)
    assert tpot(four) == pytest.approx(tpot(one), rel=1e-6)


def test_streaming_holds_up_the_requests_that_arrive_after_it():
    work = "arrivals constant 10/s; lengths fixed 100 -> 400; requests 2"
    gpu, cost = run("ideal", work)
    step = cost.decode_step_s(1, 300)
    slow = f"ideal {{ frontend {{ per_request 1 ms; per_output_token {5 * step * 1e3:.6f} ms }} }}"
    lag, _ = run(slow, work)
    r = lag.requests
    # the engine makes a token a step; streaming one takes five: by the time the second
    # request is sent (0.1 s) the server is far behind, and takes it in only then
    assert r["enqueued_s"][1] - r["arrival_s"][1] > 0.1
    assert gpu.requests["enqueued_s"][1] == pytest.approx(gpu.requests["arrival_s"][1])
    # the engine itself never waits: alone, a request's last token is made when the GPU
    # makes it, and its client sees it about five times later
    work = "arrivals constant 10/s; lengths fixed 100 -> 400; requests 1"
    (gpu, _), (lag, _) = run("ideal", work), run(slow, work)
    made = [t for t, event, _ in lag.transitions[0] if event == "finished"]
    taken_in = lag.requests["enqueued_s"][0]  # 1 ms after it was sent
    assert made == [pytest.approx(gpu.requests["finish_s"][0] + taken_in)]
    assert tpot(lag) == pytest.approx(5 * tpot(gpu), rel=0.05)


def test_native_fp8_gemms_take_the_16_bit_profile_with_the_8_bit_gain():
    def cost(engine: str, dtype: str):
        text = (
            'import "std/hardware"\nimport "std/models"\nimport "std/engines"\n'
            "cluster { node n { gpus H100_SXM x 1 } }\n"
            f"deployment {{ pool p {{ model llama3_1_8b {dtype}; engine {engine} }} }}\n"
        )
        spec = compile_text(text)
        pool = spec.deployment.pools[0]
        assert pool.cost.kind == "calibrated"
        return for_pool(pool, lower(spec)).breakdown(Batch(4096, Batch.pairs(4096, 0), samples=1))

    native = cost("vllm_v1 { fp8_gemm native }", "fp8")["gemm"]
    profiled = cost("vllm_v1 { fp8_gemm profiled }", "fp8")["gemm"]
    bf16 = cost("vllm_v1", "bf16")["gemm"]
    assert native < 0.75 * bf16 < profiled  # NVIDIA's vLLM fp8 rows are slower than bf16
    assert cost("vllm_v1 { fp8_gemm native }", "bf16")["gemm"] == pytest.approx(bf16)
    runs = {p.name: p.engine.fp8_gemm for p in spec_of("sglang", ONE).deployment.pools}
    assert runs == {"p": "native"}
    assert spec_of("vllm_v1", ONE).deployment.pools[0].engine.fp8_gemm == "profiled"


TIGHT = "kv { gpu_util 0.085; block 16 tokens }"  # a few hundred blocks: outputs compete


def test_reserving_the_output_at_admission_avoids_preemption():
    work = "arrivals burst; lengths fixed 400 -> 3000; requests 40"
    plain, _ = run("ideal", work, TIGHT)
    reserved, _ = run("ideal { reserve_output on }", work, TIGHT)
    assert plain.requests["preemptions"].sum() > 0
    assert reserved.requests["preemptions"].sum() == 0
    assert ~reserved.requests["rejected"].any()


# two requests of 400 -> 7000 tokens, 50 ms apart, in 13,952 tokens of KV: the second's
# prompt fits beside the first, but not both whole outputs
TWO_LONG = "arrivals constant 20/s; lengths fixed 400 -> 7000; requests 2"


def test_a_partial_reservation_holds_back_a_share_of_the_running_outputs():
    def admitted(engine: str) -> float:
        result, _ = run(engine, TWO_LONG, TIGHT)
        assert result.instances[0].kv_capacity_blocks * 16 == 13952
        return result.requests["admitted_s"][1], result.requests["finish_s"][0]

    plain, _ = admitted("ideal")
    assert plain == pytest.approx(0.05, abs=0.01)  # its prompt fits at once
    whole, first_done = admitted("ideal { reserve_output on }")
    assert whole == pytest.approx(first_done)  # 800 + 2 x 7000 tokens do not fit
    # 0.3 of the first's 7000 left, beside the second's whole 7000: they fit
    assert admitted("ideal { reserve_output on { share 0.3 } }")[0] == pytest.approx(plain)
    assert admitted("ideal { reserve_output on { share 0.9 } }") == pytest.approx((whole,) * 2)


def test_the_share_held_back_decays_with_each_decode_step():
    def admitted(steps: int) -> float:
        engine = f"ideal {{ reserve_output on {{ share 1; min_share 0; decay_steps {steps} }} }}"
        result, cost = run(engine, TWO_LONG, TIGHT)
        return result.requests["admitted_s"][1], cost.decode_step_s(1, 500)

    fast, step = admitted(200)
    slow, _ = admitted(800)
    # 7000 + s x 6970 tokens fit in the ~13,000 left once s < 0.86: after about 28 of 200
    # decode steps (looked at every 4), or 112 of 800 (every 16)
    assert 24 * step < fast - 0.05 < 36 * step
    assert 100 * step < slow - 0.05 < 130 * step


def test_the_share_held_back_returns_when_the_engine_idles(tmp_path):
    # a first request runs alone long enough for the share to fall to 0; the engine idles;
    # two more arrive as in TWO_LONG, 60 s later, and the second waits as it did there
    trace = tmp_path / "t.csv"
    rows = ("arrival_s,prompt_tokens,output_tokens", "0,400,7000", "60,400,7000", "60.05,400,7000")
    trace.write_text("\n".join(rows) + "\n")
    engine = "ideal { reserve_output on { share 1; min_share 0; decay_steps 200 } }"
    later, _ = run(engine, f'trace "{trace}"', TIGHT)
    fresh, _ = run(engine, TWO_LONG, TIGHT)
    assert later.requests["finish_s"][0] < 60  # it was done before the others came
    waited = later.requests["admitted_s"][2] - 60
    assert waited == pytest.approx(fresh.requests["admitted_s"][1])
    assert waited > 0.1


def test_running_out_of_kv_sets_the_share_to_what_the_batch_generated(monkeypatch):
    # 0.3 of the first's output lets the second in; at about 41.7 s their outputs outgrow
    # the KV, the second is preempted, and the share becomes the first's generated tokens
    # plus 20, over its 7000
    seen = []
    retract = Instance._retract_share

    def spy(self):
        retract(self)
        seen.append((self.share, self.batch.outputs - self.batch.tokens_left(), len(self.batch)))

    monkeypatch.setattr(Instance, "_retract_share", spy)
    result, _ = run("ideal { reserve_output on { share 0.3; retract_steps 20 } }", TWO_LONG, TIGHT)
    assert result.requests["preemptions"].tolist() == [0, 1]
    share, generated, n = seen[0]
    assert n == 1 and 6000 < generated < 7000
    assert share == pytest.approx((generated + 20) / 7000)


def test_reserve_output_off_takes_no_block():
    errs = errors_of(
        LIB + "deployment { pool p { model m; engine ideal { reserve_output off { share 1 } } } }"
    )
    assert "`reserve_output off` takes no block" in errs
    errs = errors_of(LIB + "deployment { pool p { model m; engine sglang { reserve_output "
                     "{ min_share 0.9 } } } }")  # fmt: skip
    assert "`min_share` 0.9 is above `share` 0.7" in errs  # sglang's share, merged


def test_sglang_holds_back_its_new_token_ratio():
    r = spec_of("sglang", ONE).deployment.pools[0].engine.reserve_output
    assert (r.share, r.min_share, r.decay_steps, r.clip_tokens) == (0.7, 0.098, 600, 4096)
    assert spec_of("vllm_v1", ONE).deployment.pools[0].engine.reserve_output is None


def test_memory_free_takes_its_share_after_the_weights():
    total = simulate(lower(spec_of("ideal { memory total }", ONE, "kv { gpu_util 0.5 };")))
    free = simulate(lower(spec_of("ideal { memory free }", ONE, "kv { gpu_util 0.5 };")))
    # 80 GB x 0.5 - weights  <  (80 GB - weights) x 0.5
    assert free.instances[0].kv_capacity_blocks > total.instances[0].kv_capacity_blocks


def test_memory_static_leaves_the_activations_out_of_its_share():
    # SGLang's mem_fraction_static holds the weights and the KV cache; vLLM's
    # gpu_memory_utilization holds the activations of its largest iteration too
    from tokensim.policies.memory import kv_geometry

    pools = {}
    for rule in ("total", "static"):
        spec = spec_of(f"ideal {{ memory {rule} }}", ONE, "kv { gpu_util 0.5 };")
        pools[rule] = spec.deployment.pools[0]
    static, total = kv_geometry(pools["static"]), kv_geometry(pools["total"])
    pool = pools["static"]
    assert static.usable_B == pytest.approx(80e9 * 0.5 - pool.weights_per_gpu_B)
    assert total.reserve_B > 0
    assert static.usable_B - total.usable_B == pytest.approx(total.reserve_B)
    text = LIB + "deployment { pool p { model m; on n0[0]; engine sglang } }"
    assert compile_text(text).deployment.pools[0].engine.memory == "static"


def test_kernel_factors_scale_the_cost_models_ops():
    base, cost = run("ideal", ONE)
    slow, _ = run("ideal { kernels { gemm 2 } }", ONE)
    gemm = cost.breakdown(Batch(1000, Batch.pairs(1000, 0), samples=1))
    extra = gemm["gemm"] + gemm["lm_head"]
    assert ttft(slow)[0] == pytest.approx(ttft(base)[0] + extra, rel=1e-6)


def test_a_closed_loop_keeps_its_clients_busy_and_no_more():
    result, _ = run("ideal", "arrivals closed 4; lengths fixed 300 -> 20; requests 30")
    r = result.requests
    order = np.argsort(r["arrival_s"], kind="stable")
    arrival, finish = r["arrival_s"][order], np.sort(r["finish_s"])
    assert (arrival[:4] == 0).all()
    # the k-th request after the first four arrives when the (k-4)-th finishes
    assert arrival[4:] == pytest.approx(finish[: len(arrival) - 4])
    for t in arrival:
        assert ((r["arrival_s"] <= t) & (r["finish_s"] > t)).sum() <= 4


# -- what a run says besides its figures ----------------------------------------------------


def test_a_static_batch_that_memory_cuts_short_is_reported(tmp_path):
    work = "arrivals burst; lengths fixed 3000 -> 200; requests 64"
    short = simulate(lower(spec_of("ideal", work, "batching static { max_seqs 32 }; " + TIGHT)))
    assert any("static batch" in w and "fewer than max_seqs 32" in w for w in short.warnings)
    roomy = simulate(lower(spec_of("ideal", work, "batching static { max_seqs 4 }")))
    assert roomy.warnings == []
    from tokensim.metrics import summarize
    from tokensim.report import summary_table

    assert "warning: p[0]:" in summary_table(summarize(short))


def test_a_run_that_serves_nothing_says_so():
    result, _ = run("ideal", "arrivals burst; lengths fixed 9000 -> 10; requests 3")
    assert result.warnings == ["every request (3) was rejected: nothing was served"]


def test_continuous_batching_can_chunk_prompts_prefill_first():
    work = "arrivals burst; lengths fixed 3000 -> 2; requests 2"
    whole, cost = run("ideal", work, "batching continuous { max_tokens 2048 }")
    split, _ = run("ideal", work, "batching continuous { max_tokens 2048; chunk on }")
    # whole prompts: each longer than the budget runs alone; split: 2048-token iterations
    work_of = split.instances[0].work
    assert [int(t) for t in work_of[:, 2] if t] == [2048, 2048, 1904]
    assert [int(t) for t in whole.instances[0].work[:, 2] if t] == [3000, 3000]
    assert ttft(split).max() > 0 and ~split.requests["rejected"].any()


def test_a_sweep_reaches_engines_and_their_statements():
    text = LIB + (
        "deployment { pool p { model m; on n0[0]; engine vllm_0_6 { scheduler_steps 4 } } }\n"
        f"workload {{ {ONE} }}\n"
        "sweep { deployment.p.engine in vllm_v1, sglang\n"
        "        deployment.p.engine.host.iteration in 1 ms, 3 ms }"
    )
    spec = compile_text(text)
    axes = {a.path: a.values for a in spec.sweep.axes}
    assert axes["deployment.p.engine"] == ("vllm_v1", "sglang")
    assert axes["deployment.p.engine.host.iteration"] == (1e-3, 3e-3)
    err = errors_of(text.replace("vllm_v1, sglang", "vllm_v1, sglng"))
    assert "unknown engine `sglng`" in err and "did you mean `sglang`" in err


def test_the_front_end_bounds_the_rate_tokens_reach_clients():
    work = "arrivals burst; lengths fixed 100 -> 51; requests 8"
    gpu, cost = run("ideal", work)
    step = cost.decode_step_s(8, 130)
    slow = step * 3 / 8  # 8 tokens a step take the front end three GPU steps
    bound, _ = run(f"ideal {{ frontend {{ per_output_token {slow * 1e3:.6f} ms }} }}", work)
    assert tpot(bound) == pytest.approx(step * 3, rel=1e-6)
    quick, _ = run(f"ideal {{ frontend {{ per_output_token {slow / 30 * 1e3:.6f} ms }} }}", work)
    assert tpot(quick) == pytest.approx(tpot(gpu), rel=1e-9)  # it keeps up: no change
