"""The simulator on scenarios small enough to compute by hand, and its invariants."""

import numpy as np
import pytest
from conftest import compile_text

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.perf import Batch, for_pool
from tokensim.policies.routing import CountIndex, LeastRequests
from tokensim.report import write
from tokensim.sim.run import simulate

# Pools run the `ideal` engine: these scenarios compute the GPU work by hand.
LIB = """
import "std/engines"
link NVL { bandwidth 400 GB/s; latency 2 us }
link PCI { bandwidth 50 GB/s; latency 2 us }
gpu G { memory 80 GB; bandwidth 2 TB/s; host_link PCI
        compute { bf16 1000 TFLOPS }
        efficiency { gemm 0.5; attention 0.25; memory 0.5; kv_read 0.25; network 0.5
                     overhead 1 ms } }
model m { layers 10; hidden 4096; heads 32; kv_heads 8; ffn 16384; vocab 32000; max_context 8192 }
cluster { node n0 { gpus G x 8; link NVL } }
"""


def run(pool: str, workload: str, extra: str = "", seed=None, transitions=False):
    spec = compile_text(
        LIB
        + f"deployment {{ engine ideal; pool p {{ model m; {pool} }}\n {extra} }}\n"
        + f"workload {{ {workload} }}"
    )
    graph = lower(spec)
    result = simulate(graph, seed=seed, transitions=transitions)
    return result, for_pool(spec.deployment.pools[0], graph)


def col(result, name):
    return result.requests[name]


def test_one_request_on_an_idle_gpu_ttft_is_the_prefill_time():
    result, cost = run("on n0[0]", "arrivals poisson 1/s; lengths fixed 1000 -> 1; requests 1")
    ttft = col(result, "first_token_s")[0] - col(result, "arrival_s")[0]
    assert ttft == pytest.approx(cost.prefill_s(1000))
    assert col(result, "finish_s")[0] == col(result, "first_token_s")[0]  # one output token


def test_one_request_decodes_step_by_step():
    result, cost = run("on n0[0]", "arrivals poisson 1/s; lengths fixed 100 -> 5; requests 1")
    prefill = cost.prefill_s(100)
    # decode step i reads the KV of 100 + i tokens (i = 1..4)
    steps = [cost.iteration_s(Batch(decode_seqs=1, decode_context=100 + i)) for i in range(1, 5)]
    assert col(result, "finish_s")[0] - col(result, "arrival_s")[0] == pytest.approx(
        prefill + sum(steps)
    )
    assert summarize(result)["itl_s"]["mean"] == pytest.approx(sum(steps) / 4)


def test_two_simultaneous_requests_are_prefilled_together():
    result, cost = run("on n0[0]", "arrivals burst; lengths fixed 500 -> 2; requests 2")
    both = cost.iteration_s(
        Batch(prefill_tokens=1000, prefill_pairs=2 * Batch.pairs(500, 0), samples=2)
    )
    assert list(col(result, "first_token_s")) == pytest.approx([both, both])


def test_static_batching_makes_a_late_request_wait_for_the_whole_batch():
    workload = "arrivals constant 20/s; lengths fixed 200 -> 50; requests 2"
    static, _ = run("on n0[0]; batching static { max_seqs 8 }", workload)
    cont, _ = run("on n0[0]; batching continuous", workload)
    # the second request arrives at 50 ms, while the first is decoding
    assert col(static, "admitted_s")[1] == pytest.approx(col(static, "finish_s")[0])
    assert col(cont, "admitted_s")[1] < col(cont, "finish_s")[0]
    assert col(cont, "first_token_s")[1] < col(static, "first_token_s")[1]


def test_continuous_beats_static_on_ttft_at_high_load():
    workload = "arrivals poisson 30/s; lengths uniform 100..1000 -> 20..300; requests 300; seed 4"
    static = summarize(run("on n0[0]; batching static { max_seqs 32 }", workload)[0])
    cont = summarize(run("on n0[0]; batching continuous { max_seqs 32 }", workload)[0])
    assert cont["ttft_s"]["p90"] < static["ttft_s"]["p90"]


def test_chunked_prefill_mixes_decodes_with_prompt_chunks():
    result, cost = run(
        "on n0[0]; batching chunked { budget 256 }",
        "arrivals burst; lengths fixed 1000 -> 3; requests 1",
    )
    # a 1000-token prompt in chunks of 256, 256, 256, 232
    chunks = [(256, 0), (256, 256), (256, 512), (232, 768)]
    t = sum(
        cost.iteration_s(
            Batch(prefill_tokens=c, prefill_pairs=Batch.pairs(c, p), samples=int(p + c == 1000))
        )
        for c, p in chunks
    )
    assert col(result, "first_token_s")[0] == pytest.approx(t)


def test_chunked_without_chunks_admits_whole_prompts_beside_the_decodes():
    result, _ = run(
        "on n0[0]; batching chunked { budget 600; chunk off }",
        "arrivals burst; lengths fixed 400 -> 4; requests 3",
    )
    work = result.instances[0].work
    # one whole prompt per iteration: after the first, 599 tokens are left and the next
    # 400-token prompt fits, the third does not; no prompt is ever split
    assert list(work[:3, 2]) == [400, 400, 400]
    assert list(work[:3, 3]) == [0, 1, 2]
    firsts = col(result, "first_token_s")
    assert firsts[0] < firsts[1] < firsts[2]


def test_chunked_without_chunks_runs_a_prompt_longer_than_the_budget_alone():
    result, _ = run(
        "on n0[0]; batching chunked { budget 600; chunk off }",
        "arrivals burst; lengths fixed 1000 -> 2; requests 2",
    )
    work = result.instances[0].work
    assert list(work[:, 2][work[:, 2] > 0]) == [1000, 1000]
    assert summarize(result)["requests"]["completed"] == 2


def test_a_tiny_kv_budget_preempts_and_still_completes_everything(monkeypatch):
    monkeypatch.setenv("TOKENSIM_CHECK", "1")  # invariants after every event
    result, _ = run(
        "on n0[0]; kv { gpu_util 0.165 }",
        "arrivals poisson 50/s; lengths fixed 1500 -> 300; requests 120; seed 2",
    )
    m = summarize(result)
    assert m["requests"]["completed"] == 120
    assert m["requests"]["preemptions"] > 0
    assert m["kv"]["peak_utilization"] <= 1.0


def test_swap_preemption_completes_everything(monkeypatch):
    monkeypatch.setenv("TOKENSIM_CHECK", "1")
    result, _ = run(
        "on n0[0]; kv { gpu_util 0.165; preempt swap; swap 64 GB }",
        "arrivals poisson 50/s; lengths fixed 1500 -> 300; requests 120; seed 2",
    )
    assert summarize(result)["requests"]["completed"] == 120
    assert col(result, "preemptions").sum() > 0


def test_a_request_too_long_for_the_kv_cache_is_rejected_not_stuck():
    result, _ = run(
        "on n0[0]; kv { gpu_util 0.08 }",  # room for 4192 tokens
        "arrivals burst; lengths fixed 6000 -> 2000; requests 2",
    )
    m = summarize(result)
    assert m["requests"]["rejected"] == 2 and m["requests"]["completed"] == 0


def test_same_seed_same_files_other_seed_other_results(tmp_path):
    workload = "arrivals poisson 20/s; lengths chat; requests 200"
    a = run("instances 2", workload, "route p by least_requests", seed=5)[0]
    b = run("instances 2", workload, "route p by least_requests", seed=5)[0]
    c = run("instances 2", workload, "route p by least_requests", seed=6)[0]
    write(a, tmp_path / "a")
    write(b, tmp_path / "b")
    for name in ("requests.csv", "timeseries.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    ma = (tmp_path / "a" / "metrics.json").read_text().splitlines()
    mb = (tmp_path / "b" / "metrics.json").read_text().splitlines()
    assert [x for x in ma if "wall_s" not in x] == [x for x in mb if "wall_s" not in x]
    assert not np.array_equal(col(a, "arrival_s"), col(c, "arrival_s"))


@pytest.mark.parametrize(
    "policy",
    [
        "round_robin",
        "random",
        "least_requests",
        "least_tokens",
        "least_kv",
        "min(requests + 0.5 * kv_used)",
    ],
)
def test_routing_spreads_load_over_instances(policy):
    result, _ = run(
        "instances 4",
        "arrivals poisson 40/s; lengths fixed 200 -> 50; requests 400",
        f"route p by {policy}",
    )
    counts = np.unique(col(result, "instance"), return_counts=True)[1]
    assert len(counts) == 4 and counts.min() >= 40


def test_round_robin_is_exactly_balanced():
    result, _ = run(
        "instances 4",
        "arrivals poisson 40/s; lengths fixed 200 -> 50; requests 400",
        "route p by round_robin",
    )
    assert list(np.unique(col(result, "instance"), return_counts=True)[1]) == [100] * 4


class _Counted:
    """What the request-count index reads of an instance."""

    def __init__(self, n):
        self.n_requests, self.watchers = n, []

    def change(self, delta):
        self.n_requests += delta
        for watch in self.watchers:
            watch(self)


def test_the_request_count_index_chooses_as_a_look_at_every_instance():
    rng = np.random.default_rng(3)
    instances = [_Counted(int(n)) for n in rng.integers(0, 4, 16)]
    index = CountIndex(instances)
    for _ in range(5000):  # many changes between choices, stale entries rebuilt away
        loads = [i.n_requests for i in instances]
        assert index.least() == loads.index(min(loads))
        for _ in range(int(rng.integers(0, 4))):
            inst = instances[int(rng.integers(16))]
            inst.change(1 if inst.n_requests == 0 or rng.random() < 0.5 else -1)
    assert len(index.heap) <= 4 * len(instances) + 64


def test_least_requests_routes_as_before_when_another_list_is_given():
    router = LeastRequests()
    bound = [_Counted(n) for n in (3, 1, 1)]
    assert router.choose(bound, None, None) == 1
    other = [_Counted(n) for n in (2, 5, 0)]  # not the indexed list: looked at in full
    assert router.choose(other, None, None) == 2
    bound[2].change(-1)
    assert router.choose(bound, None, None) == 2


def test_latency_breakdown_adds_up_to_e2e(tmp_path):
    result, _ = run(
        "on n0[0]; kv { gpu_util 0.165 }",
        "arrivals poisson 50/s; lengths fixed 1500 -> 300; requests 120; seed 2",
    )
    write(result, tmp_path)
    import csv

    for row in csv.DictReader(open(tmp_path / "requests.csv")):
        keys = ("queue_s", "prefill_s", "transfer_wait_s", "transfer_s", "decode_s", "preempted_s")
        parts = sum(float(row[k]) for k in keys)
        assert parts == pytest.approx(float(row["e2e_s"]), abs=1e-6)


def admission_order(tmp_path, csv_text: str, order: str) -> list[int]:
    """Request ids in the order one single-slot instance admits the trace's requests."""
    trace = tmp_path / "t.csv"
    trace.write_text(csv_text)
    spec = compile_text(
        LIB + "deployment { engine ideal; pool p { model m; on n0[0]\n"
        f"  batching continuous {{ max_seqs 1; order {order} }} }} }}\n"
        f'workload {{ trace "{trace}" }}',
        str(tmp_path / "s.tsim"),
    )
    result = simulate(lower(spec))
    return list(col(result, "id")[np.argsort(col(result, "admitted_s"), kind="stable")])


def test_shortest_prompt_first_admits_short_prompts_first(tmp_path):
    rows = "arrival_s,prompt_tokens,output_tokens\n0,900,2\n0,300,2\n0,600,2\n0,100,2\n"
    # all arrive at once and are queued before the instance schedules: shortest first
    assert admission_order(tmp_path, rows, "spf") == [3, 1, 2, 0]  # 100, 300, 600, 900 tokens
    assert admission_order(tmp_path, rows, "fcfs") == [0, 1, 2, 3]


def test_priority_classes_admit_lower_classes_first(tmp_path):
    rows = (
        "arrival_s,prompt_tokens,output_tokens,priority\n"
        "0,100,2,5\n0,100,2,2\n0,100,2,9\n0,100,2,0\n"
    )
    assert admission_order(tmp_path, rows, "priority") == [3, 1, 0, 2]  # priorities 0, 2, 5, 9


@pytest.mark.parametrize("batching", ["static { max_seqs 256 }", "chunked { budget 512 }"])
def test_every_policy_survives_a_tiny_kv_cache(monkeypatch, batching):
    monkeypatch.setenv("TOKENSIM_CHECK", "1")
    result, _ = run(
        f"on n0[0]; batching {batching}; kv {{ gpu_util 0.13 }}",
        "arrivals poisson 50/s; lengths fixed 1500 -> 300; requests 120; seed 2",
    )
    m = summarize(result)
    assert m["requests"]["completed"] == 120 and m["requests"]["preemptions"] > 0


def test_every_transition_is_recorded_in_order(tmp_path):
    args = (
        "on n0[0]; batching chunked { budget 512 }; kv { gpu_util 0.13 }",
        "arrivals poisson 50/s; lengths fixed 1500 -> 300; requests 120; seed 2",
    )
    result, _ = run(*args, transitions=True)
    # kept only when asked for; the run is the same either way
    plain, _ = run(*args)
    assert plain.transitions == [] and len(result.transitions) == 120
    for name, values in result.requests.items():
        np.testing.assert_array_equal(values, plain.requests[name], err_msg=name)
    write(result, tmp_path, transitions=True)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "transitions.csv")))
    by_id: dict[int, list] = {}
    for row in rows:
        by_id.setdefault(int(row["id"]), []).append(row)
    preemptions = col(result, "preemptions")
    for rid, log in by_id.items():
        times = [float(r["time_s"]) for r in log]
        events = [r["event"] for r in log]
        assert times == sorted(times)
        assert events[:3] == ["arrived", "queued", "scheduled"] and events[-1] == "finished"
        assert events.count("first_token") == 1
        assert events.count("preempted") + events.count("swapped_out") == preemptions[rid]
        assert events.count("resumed") == preemptions[rid]
        chunks = [int(r["value"]) for r in log if r["event"] == "prefill_chunk"]
        assert max(chunks) <= 512 and sum(chunks) >= 1500  # re-prefills after preemption add
        assert int(log[-1]["value"]) == 300


def test_rejected_requests_miss_every_slo_target():
    # about a third of the prompts cannot fit the KV cache: served ones meet any limit
    spec = compile_text(
        LIB
        + "deployment { engine ideal; pool p { model m; on n0[0]; kv { gpu_util 0.08 } } }\n"
        + "workload { arrivals poisson 2/s; lengths uniform 1000..6000 -> 10..20; requests 40 }\n"
        + "slo { ttft p50 < 100 s; ttft p90 < 100 s; e2e mean < 100 s }"
    )  # room for 4192 tokens
    result = simulate(lower(spec))
    m = summarize(result)
    rejected = m["requests"]["rejected"]
    assert 0.1 * 40 < rejected < 0.5 * 40
    by = {(t["metric"], t["stat"]): t for t in m["slo"]["targets"]}
    # the p50 is a served request's: the rejected count as the worst, not as absent
    ttft = result.requests["first_token_s"] - result.requests["arrival_s"]
    served = ttft[~result.requests["rejected"]]
    whole = np.concatenate([served, np.full(rejected, 1e9)])
    assert by["ttft", "p50"]["value_s"] == pytest.approx(np.percentile(whole, 50))
    assert by["ttft", "p50"]["met"]
    # more than a tenth rejected: the p90 is a rejection, and so is any mean
    assert by["ttft", "p90"]["value_s"] == np.inf and not by["ttft", "p90"]["met"]
    assert by["e2e", "mean"]["value_s"] == np.inf and not m["slo"]["met"]
    assert m["slo"]["attainment"] == pytest.approx(1 - rejected / 40)


def test_a_nodes_host_link_sets_the_swap_time(tmp_path):
    """Swap traffic moves over the topology's GPU-host edges: a node whose `host_link`
    overrides its GPU's swaps at that link's speed (it was drawn, and ignored)."""
    import tokensim

    text = """import "std/hardware"
import "std/models"
link SLOW { bandwidth 2 GB/s; latency 5 us }
cluster { node n0 { gpus H100_SXM x 1 } }
deployment { pool serve { model llama3_1_8b; batching continuous { max_seqs 64 }
  kv { gpu_util 0.25; preempt swap; swap 64 GB } } }
workload { arrivals poisson 3/s; lengths fixed 2000 -> 500; requests 120; seed 5 }
"""
    fast = tokensim.run(text)
    slow = tokensim.run(text.replace("x 1 }", "x 1; host_link SLOW }"))
    assert fast.metrics["requests"]["preemptions"] > 0
    swapped = [r.requests["preempted_s"].sum() for r in (fast, slow)]
    assert swapped[1] > 1.1 * swapped[0]
    same = tokensim.run(text.replace("x 1 }", "x 1; host_link PCIE5 }"))  # the GPU's own
    assert np.array_equal(same.requests["e2e_s"], fast.requests["e2e_s"])


def test_the_kv_series_splits_blocks_by_holder(tmp_path):
    """timeseries.csv: used + prefix-cached + free = capacity at every row; swapped-out
    blocks show while requests sit in host memory; cached ones once prompts share."""
    import csv

    from tokensim.cli import main

    trace = tmp_path / "t.csv"
    rows = ["arrival_s,prompt_tokens,output_tokens,prefix_hashes,prefix_block_tokens"]
    for i in range(60):  # a shared 800-token system prompt, then the request's own
        ids = list(range(50)) + [1000 * (i + 1) + k for k in range(75)]
        rows.append(f"{i * 0.2},2000,400,{' '.join(map(str, ids))},16")
    trace.write_text("\n".join(rows) + "\n")
    spec = tmp_path / "s.tsim"
    spec.write_text(
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 1 } }\n"
        "deployment { pool serve { model llama3_1_8b; batching continuous { max_seqs 64 }\n"
        "  kv { gpu_util 0.22; preempt swap; swap 64 GB; prefix_cache on } } }\n"
        'workload { arrivals poisson 5/s; trace "t.csv"; requests 60 }\n'
    )
    assert (
        main(
            [str(spec), "-o", str(tmp_path / "out"), "--no-report", "-q"][:0]
            + ["run", str(spec), "-o", str(tmp_path / "out"), "--no-report", "-q"]
        )
        == 0
    )
    with open(tmp_path / "out" / "timeseries.csv", newline="") as f:
        inst = [r for r in csv.DictReader(f) if r["instance"]]
    for r in inst:
        used, cached, free = (
            int(r[k]) for k in ("kv_used_blocks", "kv_cached_blocks", "kv_free_blocks")
        )
        assert used + cached + free == int(r["kv_capacity_blocks"])
    assert max(int(r["kv_cached_blocks"]) for r in inst) > 0
    assert max(int(r["kv_swapped_blocks"]) for r in inst) > 0


def test_the_simulator_runs_what_the_dataflow_graph_carries():
    """Instances, routers and hand-offs come from the lowered graph, not from the spec: an
    instance whose route edge is taken out of the graph gets no request."""
    import tokensim
    from tokensim.graph import lower
    from tokensim.sim.run import simulate

    spec = tokensim.load(
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 2; link NVLINK4 } }\n"
        "deployment { pool s { model llama3_1_8b; instances 2 }\n route s by round_robin }\n"
        "workload { arrivals poisson 4/s; lengths fixed 100 -> 10; requests 40 }\n"
    )
    graph = lower(spec)
    both = simulate(graph).requests["instance"]
    assert set(both) == {"s[0]", "s[1]"}
    graph.dataflow.remove_edge("router", "s[1]")
    one = simulate(graph).requests["instance"]
    assert set(one) == {"s[0]"}


def test_a_shared_prefix_is_served_from_the_prefix_cache():
    """Every request after the first of its group hits the prefix's whole KV blocks only: a
    100-token prefix in 16-token blocks shares 96 tokens."""
    work = "arrivals constant 2/s; lengths fixed 50 -> 4; requests 40; shared_prefix 100 {{ {} }}"
    result, _ = run("kv { prefix_cache on }", work.format("groups 2"))
    hits = col(result, "cached_tokens")
    assert sorted(set(hits.tolist())) == [0, 96] and (hits == 0).sum() == 2
    assert result.warnings == []
    alone, _ = run("kv { prefix_cache on }", work.format("fraction 0"))
    assert col(alone, "cached_tokens").sum() == 0
    assert (col(alone, "prompt_tokens") == 150).all()


def test_prefix_caching_written_on_warns_when_nothing_can_hit():
    work = "arrivals constant 2/s; lengths fixed 50 -> 4; requests 10"
    result, _ = run("kv { prefix_cache on }", work)
    (warning,) = result.warnings
    assert "pool p: `prefix_cache on`" in warning and "no two requests share a prefix" in warning
    # on from the engine (vLLM V1's default, not written in the pool), or off: no warning
    engine_on, _ = run("engine vllm_v1", work)
    assert engine_on.spec.deployment.pools[0].kv.prefix_cache and engine_on.warnings == []
    assert run("kv { prefix_cache off }", work)[0].warnings == []
    assert run("", work + "; shared_prefix 32")[0].warnings == []
