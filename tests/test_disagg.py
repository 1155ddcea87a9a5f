"""Disaggregation: KV transfers timed over the topology, shared links, memory waits,
routing at handoff, and conservation across pools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import compile_text, errors_of
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensim.graph import lower
from tokensim.metrics import per_request, summarize
from tokensim.sim.events import Kernel
from tokensim.sim.network import Network
from tokensim.sim.run import Simulation, simulate

# One GPU type, links with round figures. The network efficiency 0.5 doubles the bytes
# on the wire. Model: 10 layers x 8 KV heads x 128 dims x (K, V) x 2 B = 40,960 B per
# token on one GPU; a 16-token block is 655,360 B.
# Pools run the `ideal` engine: these scenarios compute the GPU work and routing by hand.
LIB = """
import "std/engines"
link NVL { bandwidth 400 GB/s; latency 2 us }
link PCI { bandwidth 50 GB/s; latency 2 us }
link IB { bandwidth 25 GB/s; latency 5 us }
gpu G { memory 80 GB; bandwidth 2 TB/s; host_link PCI
        compute { bf16 1000 TFLOPS }
        efficiency { gemm 0.5; attention 0.25; memory 0.5; kv_read 0.25; network 0.5 } }
model m { layers 10; hidden 4096; heads 32; kv_heads 8; ffn 16384; vocab 32000; max_context 8192 }
"""
BLOCK_B = 10 * 8 * 128 * 2 * 2 * 16
ONE_NODE = "cluster { node n0 { gpus G x 8; link NVL } }"


def two_nodes(ib: str = "IB") -> str:
    return (
        "cluster { node n0 { gpus G x 8; link NVL; nics 8 }\n"
        "          node n1 { gpus G x 8; link NVL; nics 8 }\n"
        f"          network {ib} between n0, n1 }}"
    )


def disagg(cluster: str, workload: str, prefill="on n0[0]", decode="on n0[1]", extra=""):
    spec = compile_text(
        LIB
        + cluster
        + f"""
deployment {{ engine ideal
  pool a {{ model m; role prefill; {prefill} }}
  pool b {{ model m; role decode; {decode} }}
  transfer a -> b {extra}
}}
workload {{ {workload} }}"""
    )
    return simulate(lower(spec))


def wire_s(prompt: int, bandwidth_Bps: float) -> float:
    """Seconds to copy a prompt's KV blocks at ``bandwidth_Bps`` with efficiency 0.5."""
    return -(-prompt // 16) * BLOCK_B / 0.5 / bandwidth_Bps


def breakdown(result):
    return per_request(result)


def test_one_transfer_over_nvlink_takes_bytes_over_bandwidth_plus_latency():
    result = disagg(ONE_NODE, "arrivals poisson 1/s; lengths fixed 1000 -> 4; requests 1")
    cols = breakdown(result)
    # GPU -> NVSwitch -> GPU: 400 GB/s, the link's 2 us once
    assert cols["transfer_s"][0] == pytest.approx(wire_s(1000, 400e9) + 2e-6, rel=1e-9)
    assert cols["transfer_wait_s"][0] == 0
    r = result.requests
    assert r["instance"][0] == "a[0]" and r["decode_instance"][0] == "b[0]"
    assert r["handoff_s"][0] == r["first_token_s"][0]


def test_a_transfer_across_nodes_pays_every_hop_and_the_narrowest_link():
    result = disagg(
        two_nodes(),
        "arrivals poisson 1/s; lengths fixed 1000 -> 4; requests 1",
        decode="on n1[0]",
    )
    # GPU -PCI-> NIC -IB-> fabric -IB-> NIC -PCI-> GPU: IB's 25 GB/s is the bottleneck;
    # latency 2 us + 5 us (the fabric's two halves) + 2 us
    expected = wire_s(1000, 25e9) + 9e-6
    assert breakdown(result)["transfer_s"][0] == pytest.approx(expected, rel=1e-9)


def test_two_equal_transfers_on_one_link_take_twice_as_long_as_one():
    one = disagg(ONE_NODE, "arrivals burst; lengths fixed 1000 -> 4; requests 1")
    two = disagg(ONE_NODE, "arrivals burst; lengths fixed 1000 -> 4; requests 2")
    alone = breakdown(one)["transfer_s"][0] - 2e-6
    both = breakdown(two)["transfer_s"] - 2e-6
    assert two.requests["transfer_start_s"][0] == two.requests["transfer_start_s"][1]
    assert list(both) == pytest.approx([2 * alone, 2 * alone], rel=1e-9)


def test_halving_the_network_bandwidth_doubles_the_copy_time():
    args = ("arrivals poisson 1/s; lengths fixed 3000 -> 4; requests 1",)
    fast = disagg(two_nodes("IB"), *args, decode="on n1[0]")
    slow_ib = "link IB_HALF { bandwidth 12.5 GB/s; latency 5 us }\n" + two_nodes("IB_HALF")
    slow = disagg(slow_ib, *args, decode="on n1[0]")
    fast_s = breakdown(fast)["transfer_s"][0] - 9e-6
    slow_s = breakdown(slow)["transfer_s"][0] - 9e-6
    assert slow_s / fast_s == pytest.approx(2.0, rel=1e-9)


def test_every_tp_rank_sends_its_shard_over_its_own_path():
    # tp 2 -> tp 2 across nodes: two ranks, each its own NIC and its half of the KV heads
    result = disagg(
        two_nodes(),
        "arrivals poisson 1/s; lengths fixed 1000 -> 4; requests 1",
        prefill="on n0[0..1]; tp 2",
        decode="on n1[0..1]; tp 2",
    )
    expected = wire_s(1000, 25e9) / 2 + 9e-6
    assert breakdown(result)["transfer_s"][0] == pytest.approx(expected, rel=1e-9)


def test_a_copy_waits_for_decode_memory_and_the_wait_is_visible(monkeypatch):
    monkeypatch.setenv("TOKENSIM_CHECK", "1")
    # the decode instance holds 2,703 blocks: 7 prompts of 6,000 tokens (375 blocks each)
    result = disagg(
        ONE_NODE,
        "arrivals burst; lengths fixed 6000 -> 200; requests 12",
        decode="on n0[1]; kv { gpu_util 0.1 }",
    )
    assert result.instances[1].kv_capacity_blocks == 2703
    cols = breakdown(result)
    r = result.requests
    assert not r["rejected"].any()
    start, end = r["transfer_start_s"], r["transfer_end_s"]
    assert (start >= r["handoff_s"]).all() and (end > start).all()
    # the first 7 copy at once (at most one decode iteration later); the rest wait for a
    # finish on the decode instance to free memory, and start at that very instant
    waited = cols["transfer_wait_s"] > 0.1
    assert waited.sum() == 5 and not waited[:7].any()
    assert set(start[waited]) <= set(r["finish_s"])


def test_short_prompts_go_straight_to_decode_when_asked():
    result = disagg(
        ONE_NODE,
        "arrivals poisson 5/s; lengths uniform 10 .. 400 -> 8 .. 8; requests 60; seed 3",
        extra="{ direct_below 200 tokens }",
    )
    r = result.requests
    short = r["prompt_tokens"] < 200
    assert short.any() and (~short).any()
    assert set(r["instance"][short]) == {"b[0]"} and set(r["instance"][~short]) == {"a[0]"}
    assert (r["transfer_end_s"][short] == -1).all() and (r["transfer_end_s"][~short] > 0).all()


@pytest.mark.parametrize("route", ["round_robin", "least_requests", "min(queued + kv_used)"])
def test_conservation_across_pools(monkeypatch, route):
    """Every request finishes exactly once, and neither side leaks a block (the engine
    checks every invariant after every event under TOKENSIM_CHECK)."""
    monkeypatch.setenv("TOKENSIM_CHECK", "1")
    spec = compile_text(
        LIB
        + ONE_NODE
        + f"""
deployment {{ engine ideal
  pool a {{ model m; role prefill; instances 2; batching chunked {{ budget 1024 }} }}
  pool b {{ model m; role decode; instances 3; kv {{ gpu_util 0.25; preempt swap; swap 8 GB }} }}
  transfer a -> b
  route b by {route}
}}
workload {{ arrivals poisson 30/s; lengths chat; requests 300; seed 4 }}"""
    )
    result = simulate(lower(spec))
    r = result.requests
    done = ~r["rejected"]
    assert done.sum() + len(result.rejected) == 300
    assert (r["finish_s"][done] >= r["first_token_s"][done]).all()
    moved = r["transfer_end_s"] >= 0
    assert (moved == done & (r["output_tokens"] > 1)).all()
    assert set(r["decode_instance"][moved]) == {"b[0]", "b[1]", "b[2]"}
    metrics = summarize(result)
    assert set(metrics["pools"]) == {"a", "b"}
    assert metrics["pools"]["a"]["requests"] == 300 - int((r["instance"] == "").sum())


def test_a_rule_with_a_typo_is_a_located_error():
    text = (
        LIB
        + ONE_NODE
        + """
deployment { engine ideal
  pool a { model m; role prefill; on n0[0] }
  pool b { model m; role decode; on n0[1] }
  transfer a -> b
  route b by min(kv_usd + queued)
}"""
    )
    err = errors_of(text)
    assert "unknown instance field `kv_usd`" in err and "did you mean `kv_used`" in err
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "kv_usd" in t)
    assert f"test.tsim:{line}:18" in err


# -- the network on its own ---------------------------------------------------------------------


class Topo:
    """A stand-in topology: ``edges[(u, v)]['bandwidth_Bps']``."""

    def __init__(self, bandwidths: dict[tuple[str, str], float]):
        self.edges = {e: {"bandwidth_Bps": b} for e, b in bandwidths.items()}


def finish_times(flows, bandwidths):
    """When each of ``flows`` ((start s, hops, bytes)) completes on a fresh network."""
    kernel = Kernel()
    net = Network(kernel, Topo(bandwidths))
    done: dict[int, float] = {}
    for i, (start, hops, size) in enumerate(flows):
        record = lambda i=i: done.__setitem__(i, kernel.now)  # noqa: E731
        kernel.at(start, 2, net.send, [(hops, 0.0)], size, record)
    kernel.run()
    return [done[i] for i in range(len(flows))]


def test_a_flow_limited_elsewhere_leaves_its_share_to_the_others():
    # x -> y is shared by f0 and f1; f1 is also limited to 1 B/s on y -> z, so f0 gets
    # 10 - 1 = 9 B/s on x -> y (max-min fairness), not 5. f1 (5 B) ends at 5 s; f0 has
    # 90 - 45 = 45 B left and takes all 10 B/s: 4.5 s more
    bw = {("x", "y"): 10.0, ("y", "z"): 1.0}
    t = finish_times([(0.0, ("x", "y"), 90.0), (0.0, ("x", "y", "z"), 5.0)], bw)
    assert t == pytest.approx([9.5, 5.0])


def test_a_late_flow_slows_the_first_down_from_when_it_starts():
    bw = {("x", "y"): 10.0}
    # f0 alone for 1 s (10 B), then both at 5 B/s: f1 (10 B) ends at 3 s; f0 has 30 B
    # left at 1 s, 20 B by 3 s, then 10 B/s alone: ends at 5 s
    t = finish_times([(0.0, ("x", "y"), 40.0), (1.0, ("x", "y"), 10.0)], bw)
    assert t == pytest.approx([5.0, 3.0])


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.floats(1e3, 1e9), min_size=1, max_size=6))
def test_flows_on_one_link_move_their_bytes_at_the_full_bandwidth(sizes):
    """However many flows share a link, the link never idles while one is in flight: the
    last ends when all the bytes have crossed at the link's bandwidth."""
    bw = {("x", "y"): 1e9}
    t = finish_times([(0.0, ("x", "y"), s) for s in sizes], bw)
    assert max(t) == pytest.approx(sum(sizes) / 1e9, rel=1e-6)
    # and smaller flows never finish after larger ones
    order = np.argsort(sizes, kind="stable")
    assert list(np.array(t)[order]) == sorted(t)


def test_the_shipped_8_gpu_layouts_show_the_disaggregation_trade():
    """Same GPUs, same workload: under load, prefill stalls colocated decodes (higher TPOT),
    while two prefill instances queue more than four colocated ones (higher TTFT)."""
    import tokensim

    root = Path(__file__).resolve().parent.parent / "specs"
    runs = {
        name: tokensim.run(
            tokensim.load(
                root / f"{name}_8gpu.tsim",
                {"workload.arrivals.rate": "18/s", "workload.requests": "1500"},
            )
        ).metrics
        for name in ("colocated", "disaggregated")
    }
    co, dis = runs["colocated"], runs["disaggregated"]
    assert dis["tpot_s"]["p90"] < 0.8 * co["tpot_s"]["p90"]
    assert dis["ttft_s"]["p90"] > co["ttft_s"]["p90"]
    assert dis["pools"]["decode"]["transfer_s"]["p50"] > 0


# -- routing balances as promised ------------------------------------------------------------


def routed_counts(policy: str, instances: int, requests: int, pool_text: str = "") -> list[int]:
    """Requests per instance of a colocated pool when ``requests`` equal requests arrive at
    once (nothing finishes between their routings)."""
    spec = compile_text(
        LIB
        + ONE_NODE
        + f"""
deployment {{ engine ideal; pool p {{ model m; instances {instances} {pool_text} }}
              route p by {policy} }}
workload {{ arrivals burst; lengths fixed 300 -> 4; requests {requests} }}"""
    )
    names = simulate(lower(spec)).requests["instance"]
    return [int((names == f"p[{i}]").sum()) for i in range(instances)]


@settings(max_examples=25, deadline=None)
@given(instances=st.integers(1, 6), requests=st.integers(1, 40))
@pytest.mark.parametrize(
    "policy", ["round_robin", "least_requests", "least_tokens", "min(requests)", "max(-queued)"]
)
def test_balancing_policies_spread_a_burst_within_one_request(policy, instances, requests):
    counts = routed_counts(policy, instances, requests)
    assert sum(counts) == requests
    assert max(counts) - min(counts) <= 1


@settings(max_examples=15, deadline=None)
@given(instances=st.integers(2, 6), requests=st.integers(10, 60))
def test_least_kv_sends_each_request_to_an_emptiest_instance(instances, requests):
    # blocks are allocated at admission, after the burst is routed: every instance looks
    # empty, so least_kv keeps choosing the first (ties go to the lowest index), which is
    # what it promises; least_requests is the policy that balances a burst
    counts = routed_counts("least_kv", instances, requests)
    assert counts[0] == requests


def test_a_flow_ends_at_its_time_however_late_the_clock():
    # at 2^15 s the clock's step (7e-12 s) is longer than a byte takes at 400 GB/s: a flow
    # that ends by bytes left never did (the same instant was scheduled forever)
    bw = {("x", "y"): 400e9}
    for start in (0.0, 32768.3, 1e9):
        kernel = Kernel()
        net = Network(kernel, Topo(bw))
        done: list[int] = []
        for tag, size in ((1, 655_360.0 * 3), (2, 123_457.0)):
            end = lambda tag=tag, done=done: done.append(tag)  # noqa: E731
            kernel.at(start, 2, net.send, [(("x", "y"), 0.0)], size, end)

        def bounded(kernel=kernel):
            if kernel.events > 100:
                raise AssertionError(f"the network livelocks at t = {kernel.now}")

        kernel.run(bounded)
        assert sorted(done) == [1, 2]
        one_alone = (655_360.0 * 3 - 123_457.0) / 400e9 + 2 * 123_457.0 / 400e9
        assert kernel.now == pytest.approx(start + one_alone, abs=max(1e-9, start * 1e-12))


def test_a_disaggregated_run_late_in_simulated_time_finishes():
    # the smallest case that livelocked: requests 10^7 s apart, KV copied over NVLink
    spec = compile_text(
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 2; link NVLINK4 } }\n"
        "deployment { pool p { model llama3_1_8b; role prefill; on n0[0] }\n"
        "             pool d { model llama3_1_8b; role decode; on n0[1] }\n"
        "             transfer p -> d }\n"
        "workload { arrivals constant 1e-7/s; lengths fixed 100 -> 10; requests 3 }"
    )

    def runaway(done, total, now):  # called every 5,000 events: a few dozen are enough
        raise AssertionError(f"{done}/{total} requests after 5,000 events, t = {now} s")

    result = simulate(lower(spec), progress=runaway)
    assert (result.requests["finish_s"] > 2e7).sum() == 1
    assert ~result.requests["rejected"].any()


def test_a_layerwise_copy_overlaps_the_prefill_step_that_computes_the_kv():
    """With `layerwise on`, the KV of each layer leaves as the prefill's step computes it:
    by the hand-off, the step's length at the path's pace is gone, at most all layers but
    the last (10 layers: 90%); the copy then moves the rest."""
    args = ("arrivals poisson 1/s; lengths fixed 3000 -> 4; requests 1",)
    whole = disagg(two_nodes(), *args, decode="on n1[0]")
    streamed = disagg(two_nodes(), *args, decode="on n1[0]", extra="{ layerwise on }")
    r = streamed.requests
    step_s = r["handoff_s"][0] - r["admitted_s"][0]  # its one prefill step
    wire_B = wire_s(3000, 25e9) * 25e9
    left_B = wire_B - min(0.9 * wire_B, step_s * 25e9)
    assert breakdown(streamed)["transfer_s"][0] == pytest.approx(left_B / 25e9 + 9e-6, rel=1e-6)
    assert breakdown(whole)["transfer_s"][0] == pytest.approx(wire_B / 25e9 + 9e-6, rel=1e-9)
    assert left_B < wire_B  # it overlapped
    # on a fast link the whole copy outruns the step: only the last layer is left
    fast = disagg(ONE_NODE, *args, extra="{ layerwise on }")
    assert breakdown(fast)["transfer_s"][0] == pytest.approx(wire_s(3000, 400e9) / 10 + 2e-6)


def test_a_layerwise_copy_that_waited_for_decode_memory_moves_whole():
    """Memory that was not free while the prefill ran could not receive its layers: the
    five copies that wait for a finish take as long as without streaming."""
    args = ("arrivals burst; lengths fixed 6000 -> 200; requests 12",)
    decode = "on n0[1]; kv { gpu_util 0.1 }"
    whole = breakdown(disagg(ONE_NODE, *args, decode=decode))["transfer_s"]
    streamed = breakdown(disagg(ONE_NODE, *args, decode=decode, extra="{ layerwise on }"))
    waited = streamed["transfer_wait_s"] > 0.1
    assert waited.sum() == 5
    assert streamed["transfer_s"][waited] == pytest.approx(whole[waited], rel=1e-6)
    assert (streamed["transfer_s"][~waited] < whole[~waited] / 2).all()


def test_received_kv_enters_the_decode_sides_prefix_cache_and_is_not_copied_again():
    """Three prompts of 2000 tokens sharing their first 1600: the decode side keeps what it
    received by its prefix ids, so the later copies move only the 400 tokens it lacks."""
    work = "arrivals constant 1/s; lengths fixed 400 -> 4; requests 3; shared_prefix 1600"
    cached = "on n0[1]; kv { prefix_cache on }"
    result = disagg(ONE_NODE, work, decode=cached)
    copy = breakdown(result)["transfer_s"] - 2e-6
    assert copy[0] == pytest.approx(wire_s(2000, 400e9), rel=1e-9)
    assert list(copy[1:]) == pytest.approx([wire_s(400, 400e9)] * 2, rel=1e-9)
    # without a prefix cache on the decode side every copy is whole
    plain = breakdown(disagg(ONE_NODE, work))["transfer_s"] - 2e-6
    assert list(plain) == pytest.approx([wire_s(2000, 400e9)] * 3, rel=1e-9)


def test_background_traffic_takes_its_share_of_a_link_from_the_flows():
    """An expert-parallel all-to-all taking half of x -> y while it steps: a 100 B flow at
    10 B/s runs at 5 B/s from 2 s to 6 s (20 B), and at 10 B/s again after: 20 + 20 + 60
    bytes by 2 + 4 + 6 = 12 s."""
    kernel = Kernel()
    net = Network(kernel, Topo({("x", "y"): 10.0}))
    done: list[float] = []
    kernel.at(0.0, 2, net.send, [(("x", "y"), 0.0)], 100.0, lambda: done.append(kernel.now))
    owner = object()
    kernel.at(2.0, 2, net.load, owner, (("x", "y"),), 0.5)
    kernel.at(6.0, 2, net.load, owner, (("x", "y"),), 0.0)
    kernel.run()
    assert done == [pytest.approx(12.0)]


def test_an_expert_parallel_pools_all_to_all_slows_the_kv_copies_over_its_nics():
    """Decode on two nodes as ep 16: its all-to-all crosses the NICs the KV arrives by."""
    from tokensim.sim import instance as inst

    text = (
        'import "std/hardware"\nimport "std/models"\n'
        "cluster {\n"
        + "".join(f"  node n{i} {{ gpus H200 x 8; link NVLINK4; nics 8 }}\n" for i in range(3))
        + "  network IB_400G between n0, n1, n2\n}\n"
        "deployment {\n"
        "  pool pre { model deepseek_v3 fp8; tp 8; on n0; role prefill; cost roofline }\n"
        "  pool dec { model deepseek_v3 fp8; ep 16; on n1, n2; role decode; cost roofline }\n"
        "  transfer pre -> dec\n}\n"
        "workload { arrivals poisson 4/s; lengths fixed 4000 -> 200; requests 60; seed 3 }\n"
    )
    graph = lower(compile_text(text))
    sim = Simulation(graph)
    dec = next(i for i in sim.instances if i.pool.name == "dec")
    pre = next(i for i in sim.instances if i.pool.name == "pre")
    assert dec.fabric and pre.fabric is None
    assert ("n1/nic0", "net0:IB_400G") in dec.fabric and ("net0:IB_400G", "n1/nic0") in dec.fabric
    loaded = summarize(sim.run())["pools"]["dec"]["transfer_s"]["mean"]
    quiet = inst.Instance._load_fabric
    try:
        inst.Instance._load_fabric = lambda self, batch: None
        free = summarize(simulate(graph))["pools"]["dec"]["transfer_s"]["mean"]
    finally:
        inst.Instance._load_fabric = quiet
    assert loaded > 1.05 * free
