"""Lower KV tiers under the prefix cache (``kv { tier host|disk|remote ... }``): what the
GPU evicts falls through them, prompts load their blocks back, and a remote store is shared
by a pool's instances."""

import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.sim.kv import BlockManager
from tokensim.sim.run import SimulationError, simulate
from tokensim.sim.tiers import Tier

HEAD = 'import "std/hardware"\nimport "std/models"\n'
TWO_NODES = (
    "cluster {\n node n0 { gpus H100_SXM x 2; link NVLINK4; nics 2 }\n"
    " node n1 { gpus H100_SXM x 2; link NVLINK4; nics 2 }\n network IB_400G between n0, n1\n}\n"
)
CHAT = (
    "workload { arrivals poisson 6/s; lengths fixed 1500 -> 60\n"
    " sessions { turns 5; think 8 s }; requests 400 }\n"
)


def spec_text(tiers: str = "", cluster: str = TWO_NODES, route: str = "round_robin") -> str:
    return (
        HEAD
        + cluster
        + "deployment { pool p { model llama3_1_8b; cost roofline; instances 4\n"
        + f" kv {{ prefix_cache on; gpu_util 0.25\n{tiers} }} }}\n route by {route} }}\n"
        + CHAT
    )


def run(tiers: str = "", **kw):
    result = simulate(lower(compile_text(spec_text(tiers, **kw))))
    return result, summarize(result)


# -- the block manager -----------------------------------------------------------------


def test_evicted_blocks_fall_to_the_tier_and_load_back():
    host = Tier("host", "host", 10)
    kv = BlockManager(4, 16, prefix_cache=True, tiers=[host])
    kv.admit("a", 64, ["a0", "a1", "a2", "a3"])
    kv.release("a")
    kv.admit("b", 64, ["b0", "b1", "b2", "b3"])  # evicts a's four blocks into the tier
    assert len(host) == 4 and host.written_blocks == 4
    kv.release("b")
    hit = kv.admit("c", 64, ["a0", "a1", "a2", "a3"])  # its last token is computed
    assert hit == 48 and kv.loads == {host: 3}  # loaded, not computed
    assert host.hit_blocks == 3


def test_a_tier_evicts_into_the_one_below():
    host, disk = Tier("h", "host", 2), Tier("d", "disk", 10)
    host.below = disk
    for h in "abcd":
        host.put(h)
    assert len(host) == 2 and list("ab") == [h for h in "ab" if h in disk]
    assert host.evicted_blocks == 2


def test_write_through_keeps_blocks_as_they_are_computed():
    store = Tier("r", "remote", 10, through=True)
    kv = BlockManager(8, 16, prefix_cache=True, tiers=[store])
    kv.admit("a", 40, ["x0", "x1"])
    assert "x0" in store and "x1" in store  # before any eviction
    other = BlockManager(8, 16, prefix_cache=True, tiers=[store])  # another instance
    assert other.hit_tokens(["x0", "x1"], 40) == 32


def test_without_tiers_nothing_loads():
    kv = BlockManager(4, 16, prefix_cache=True)
    kv.admit("a", 64, ["a0", "a1", "a2", "a3"])
    kv.release("a")
    kv.admit("b", 64, ["b0", "b1", "b2", "b3"])
    kv.release("b")
    assert kv.admit("c", 64, ["a0", "a1", "a2", "a3"]) == 0 and kv.loads == {}


# -- whole runs --------------------------------------------------------------------------


def test_a_remote_tier_raises_hits_and_lowers_ttft_on_conversations():
    _, none = run()
    _, remote = run("tier remote 2 TB")
    assert remote["requests"]["cached_prompt_tokens"] > 3 * none["requests"]["cached_prompt_tokens"]
    assert remote["ttft_s"]["mean"] < 0.8 * none["ttft_s"]["mean"]
    (tier,) = remote["kv_tiers"]
    assert tier["name"] == "p/remote" and tier["hit_blocks"] > 0 and tier["loaded_bytes"] > 0


def test_a_host_tier_serves_its_own_instance():
    _, host = run("tier host 32 GB", route="prefix_affinity")
    assert {t["name"] for t in host["kv_tiers"]} == {f"p[{i}]/host" for i in range(4)}
    assert sum(t["hit_blocks"] for t in host["kv_tiers"]) > 0


def test_a_slower_tier_costs_time():
    _, fast = run("tier remote 2 TB")
    _, slow = run("tier remote 2 TB { bandwidth 0.5 GB/s }")
    assert slow["ttft_s"]["mean"] > fast["ttft_s"]["mean"]


def test_tiers_are_vertices_of_the_dataflow():
    graph = lower(compile_text(spec_text("tier host 32 GB; tier remote 2 TB")))
    d = graph.dataflow
    assert d.nodes["p/remote"]["kind"] == "tier"
    assert d.nodes["p[0]/host"]["tier"] == "host"
    out = {
        v: e["bandwidth_Bps"]
        for _, v, e in d.out_edges("p[0]", data=True)
        if e["kind"] == "offload"
    }
    assert set(out) == {"p[0]/host", "p/remote"}
    assert out["p[0]/host"] == pytest.approx(64e9)  # PCIE5, the H100's host link
    assert out["p/remote"] == pytest.approx(50e9)  # one IB_400G NIC


def test_tier_errors_are_located():
    text = errors_of(spec_text("tier disk 1 TB"))
    assert "needs its `bandwidth`" in text and "--> test.tsim:" in text
    text = errors_of(spec_text("tier host 1 TB; tier host 2 TB"))
    assert "`tier host` is given twice" in text
    text = errors_of(spec_text("tier hots 1 TB"))
    assert "hots" in text
    text = errors_of(spec_text("tier host 1 TB").replace("prefix_cache on", "prefix_cache off"))
    assert "needs `prefix_cache on`" in text
    single = "cluster { node n0 { gpus H100_SXM x 4; link NVLINK4 } }\n"
    text = errors_of(spec_text("tier remote 1 TB", cluster=single))
    assert "node `n0` (of `p[0]`) is on none" in text


def test_a_tier_smaller_than_a_block_is_an_error():
    with pytest.raises(SimulationError, match="holds no whole KV block"):
        simulate(lower(compile_text(spec_text("tier host 1 MB"))))


def test_host_tiers_must_fit_the_nodes_host_memory():
    small = TWO_NODES.replace("nics 2 }", "nics 2; host_memory 100 GB }")
    text = errors_of(spec_text("tier host 64 GB", cluster=small))
    assert "node `n0` has 100 GB of host memory" in text and "take 128 GB" in text
    compile_text(spec_text("tier host 48 GB", cluster=small))  # two instances a node: 96 GB


def test_a_kv_copy_into_a_decode_pool_is_not_loaded_from_its_tier():
    """A disaggregated request's KV comes from the prefill side, all of it that the decode
    instance's GPU cache lacks: a lower tier there takes no part (its load would be unpriced)."""
    text = (
        HEAD
        + TWO_NODES
        + "deployment {\n pool pre { model llama3_1_8b; cost roofline; role prefill; on n0 }\n"
        + " pool dec { model llama3_1_8b; cost roofline; role decode; on n1\n"
        + "  kv { prefix_cache on; gpu_util 0.25; tier host 32 GB } }\n transfer pre -> dec\n}\n"
        + CHAT
    )
    result = simulate(lower(compile_text(text)))
    (tier,) = result.tiers
    assert tier["name"] == "dec[0]/host" and tier["written_bytes"] > 0
    assert tier["hit_blocks"] == 0
