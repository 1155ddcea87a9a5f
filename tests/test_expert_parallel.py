"""Expert parallelism and attention data parallelism: a MoE pool's experts spread over
``ep`` GPUs, its attention split into ``dp`` ranks that step together, the all-to-all
priced on the topology."""

import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.perf import Batch, for_pool
from tokensim.perf.choose import moe_links
from tokensim.policies.memory import kv_geometry
from tokensim.sim.run import simulate

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def spec_text(pool: str, network: str = "IB_400G", nodes: int = 2, workload: str = "") -> str:
    cluster = "".join(
        f"  node n{i} {{ gpus H100_SXM x 8; link NVLINK4; nics 8 }}\n" for i in range(nodes)
    )
    if nodes > 1:
        cluster += f"  network {network} between {', '.join(f'n{i}' for i in range(nodes))}\n"
    return (
        HEAD
        + f"cluster {{\n{cluster}}}\n"
        + f"deployment {{ pool p {{ model deepseek_v3 fp8; cost roofline\n {pool} }} }}\n"
        + (workload or "workload { arrivals closed 64; lengths fixed 1000 -> 100; requests 128 }")
        + "\n"
    )


def pool_of(text: str):
    spec = compile_text(text)
    return spec, spec.deployment.pools[0]


def cost_of(text: str):
    spec, pool = pool_of(text)
    return for_pool(pool, lower(spec)), pool


DECODE = Batch(decode_seqs=2048, decode_context=2048 * 2000)


def test_ep_alone_makes_the_attention_data_parallel_over_its_gpus():
    _, pool = pool_of(spec_text("ep 16"))
    assert (pool.tp, pool.dp, pool.ep.size, pool.gpus_per_instance) == (1, 16, 16, 16)
    _, pool = pool_of(spec_text("tp 8\n ep 16"))
    assert (pool.tp, pool.dp) == (8, 2)


def test_each_gpu_holds_its_experts_only():
    """DeepSeek-V3's routed experts are ~97% of its weights: over 16 GPUs each holds 16 of
    them, and everything else whole."""
    _, ep = pool_of(spec_text("ep 16"))
    model = ep.model
    routed = model.routed_params  # fp8: a byte each
    assert ep.weights_per_gpu_B == pytest.approx(model.params - routed + routed / 16)
    _, redundant = pool_of(spec_text("ep 16 { redundant 16 }"))
    extra = redundant.weights_per_gpu_B - ep.weights_per_gpu_B
    assert extra == pytest.approx(routed / 256)  # one more expert a GPU


def test_each_attention_rank_keeps_its_own_kv_cache():
    """With dp ranks an instance holds dp times the blocks one rank's GPUs have room for;
    tp 8 ranks split the attention's weights, so a GPU has more room than a tp 1 rank's."""
    _, wide = pool_of(spec_text("tp 8\n dp 2\n ep 16"))
    _, narrow = pool_of(spec_text("tp 1\n ep 16"))
    for pool in (wide, narrow):
        geometry = kv_geometry(pool)
        assert geometry.blocks == pool.dp * int(geometry.usable_B // geometry.block_bytes)
    assert kv_geometry(wide).blocks / 2 > kv_geometry(narrow).blocks / 16


def test_the_all_to_all_time_rises_when_the_fabric_halves():
    fast, _ = cost_of(spec_text("ep 16", network="IB_400G"))
    slow, _ = cost_of(spec_text("ep 16", network="IB_200G"))
    a, b = fast.breakdown(DECODE)["alltoall"], slow.breakdown(DECODE)["alltoall"]
    assert a > 0
    assert b == pytest.approx(2 * a, rel=0.15)  # the inter-node bytes set it
    assert fast.breakdown(DECODE)["gemm"] == slow.breakdown(DECODE)["gemm"]


def test_gpus_sharing_a_nic_share_its_bandwidth():
    spec, _ = pool_of(spec_text("ep 16"))
    graph = lower(spec)
    group = spec.deployment.pools[0].instances[0].gpus
    rails = moe_links(graph, group)
    shared, _ = pool_of(spec_text("ep 16").replace("nics 8", "nics 2"))
    shared_links = moe_links(lower(shared), group)
    assert rails.local == 8
    assert shared_links.inter_Bps == pytest.approx(rails.inter_Bps / 4)


def test_expert_parallelism_within_a_node_is_priced_on_nvlink():
    """EP 8 on one node: no inter-node share, the all-to-all far cheaper than over IB."""
    one, _ = cost_of(spec_text("tp 1\n ep 8", nodes=1).replace("deepseek_v3", "qwen3_30b_a3b"))
    two, _ = cost_of(spec_text("tp 2\n ep 16").replace("deepseek_v3", "qwen3_30b_a3b"))
    assert one.moe.local == 8 and one.moe.inter_Bps == float("inf")
    per_token_one = one.breakdown(DECODE)["alltoall"]
    per_token_two = two.breakdown(DECODE)["alltoall"]
    assert per_token_one < per_token_two


def test_imbalance_slows_the_busiest_gpu():
    even, _ = cost_of(spec_text("ep 16"))
    skewed, _ = cost_of(spec_text("ep 16 { imbalance 1.5 }"))
    assert skewed.breakdown(DECODE)["gemm"] > even.breakdown(DECODE)["gemm"]
    assert skewed.breakdown(DECODE)["alltoall"] == even.breakdown(DECODE)["alltoall"]


def test_fp8_dispatch_sends_half_the_bytes_of_bf16():
    fp8, _ = cost_of(spec_text("ep 16 { dispatch fp8 }"))
    bf16, _ = cost_of(spec_text("ep 16 { dispatch bf16 }"))
    assert fp8.breakdown(DECODE)["alltoall"] < bf16.breakdown(DECODE)["alltoall"]


def test_dp_attention_prices_attention_per_rank():
    """The same 16 GPUs as tp 8 x dp 2 or tp 1 x dp 16: each rank's attention reads its
    own sequences' KV, so more ranks read less each."""
    tp, _ = cost_of(spec_text("tp 8\n ep 16"))
    dp, _ = cost_of(spec_text("tp 1\n ep 16"))
    assert dp.breakdown(DECODE)["attention_decode"] < tp.breakdown(DECODE)["attention_decode"]
    assert dp.breakdown(DECODE)["allreduce"] == 0.0 < tp.breakdown(DECODE)["allreduce"]


def test_dp_without_ep_splits_every_expert_and_gathers_the_tokens():
    cost, pool = cost_of(spec_text("tp 4\n dp 4"))
    assert pool.ep is None and pool.gpus_per_instance == 16
    assert cost.breakdown(DECODE)["alltoall"] > 0  # the ring over all 16
    assert pool.weights_per_gpu_B == pytest.approx(
        (pool.model.params - pool.model.routed_params) / 4 + pool.model.routed_params / 16
    )


def test_a_dp_instance_batches_dp_times_a_ranks_limits():
    text = spec_text("ep 16\n batching continuous { max_seqs 8 }")
    result = simulate(lower(compile_text(text)))
    running = result.instances[0].series[:, 1]
    assert running.max() == 64  # all 64 clients: 8 a rank x 16 ranks >= 64
    text = spec_text("ep 16\n batching continuous { max_seqs 2 }")
    result = simulate(lower(compile_text(text)))
    assert result.instances[0].series[:, 1].max() == 32


def test_an_ep_deployment_runs_end_to_end():
    result = simulate(lower(compile_text(spec_text("ep 16 { redundant 16 }"))))
    summary = summarize(result)
    assert summary["requests"]["completed"] == 128
    assert summary["tpot_s"]["mean"] > 0


@pytest.mark.parametrize(
    "pool, message",
    [
        ("ep 12", "ep 12 does not divide the 256 experts"),
        ("dp 2; ep 8", "ep 8 must span each stage's GPUs: tp 1 x dp 2 = 2"),
        ("ep 6\n tp 4", "ep 6 must span each stage's GPUs: a multiple of tp 4"),
        ("ep 16 { imbalance 0.5 }", "`imbalance` must be >= 1"),
        ("ep 16 16", "unexpected `16` in `ep`"),  # found by bench/fuzz.py: was a TypeError
    ],
)
def test_a_bad_ep_is_a_located_error(pool, message):
    text = errors_of(spec_text(pool))
    assert message in text
    assert text.count("error:") == 1
    assert "--> test.tsim:9:" in text  # the line of the `ep` statement


def test_a_dense_model_takes_no_ep():
    text = errors_of(spec_text("ep 2").replace("deepseek_v3 fp8", "llama3_1_70b"))
    assert "`llama3_1_70b` is dense" in text
    assert "raise `instances`" in text


def test_a_model_too_big_for_its_ep_says_to_raise_ep():
    text = errors_of(spec_text("ep 8", nodes=1))
    assert "does not fit" in text
    assert "raise ep" in text


PREFILL = Batch(prefill_tokens=16 * 4096, prefill_pairs=16 * Batch.pairs(4096, 0), samples=16)


def test_a_hierarchical_all_to_all_crosses_the_network_once_a_node():
    """Over 4 nodes a token's 8 experts are on ~5.4 other GPUs out of its node but on ~2.7
    other nodes: sending once a node and forwarding over NVLink halves the network bytes."""
    text = spec_text("ep 32", nodes=4)
    direct, _ = cost_of(text.replace("ep 32", "ep 32 { all_to_all direct }"))
    hierarchical, _ = cost_of(text.replace("ep 32", "ep 32 { all_to_all hierarchical }"))
    auto, _ = cost_of(text)
    d = direct.breakdown(PREFILL)["alltoall"]
    h = hierarchical.breakdown(PREFILL)["alltoall"]
    assert h == pytest.approx(d / 2, rel=0.1)
    # auto: hierarchical for a batch that prefills, direct for decode
    assert auto.breakdown(PREFILL)["alltoall"] == h
    assert auto.breakdown(DECODE)["alltoall"] == direct.breakdown(DECODE)["alltoall"]


def test_overlap_hides_the_all_to_all_of_big_batches_and_costs_small_ones():
    """SGLang measured two-batch overlap at +25.5% decode throughput with 256 sequences a
    GPU and -27% with 32."""
    off, _ = cost_of(spec_text("ep 16"))
    on, _ = cost_of(spec_text("ep 16 { overlap on }"))
    big = Batch(decode_seqs=4096, decode_context=4096 * 2000)  # 256 a GPU
    assert on.iteration_s(big) < off.iteration_s(big)
    assert on.breakdown(PREFILL)["alltoall"] < off.breakdown(PREFILL)["alltoall"]
    small = Batch(decode_seqs=16, decode_context=16 * 2000)
    assert on.iteration_s(small) > off.iteration_s(small)  # each half reads the weights


def test_ep_within_one_rank_needs_no_all_to_all():
    """tp 8 x ep 8: every GPU has every token; the tp all-reduce sums the experts."""
    ep, _ = cost_of(spec_text("tp 8\n ep 8", nodes=1).replace("deepseek_v3", "qwen3_30b_a3b"))
    split, _ = cost_of(spec_text("tp 8", nodes=1).replace("deepseek_v3", "qwen3_30b_a3b"))
    assert ep.breakdown(DECODE)["alltoall"] == 0.0
    assert ep.breakdown(DECODE)["allreduce"] == split.breakdown(DECODE)["allreduce"]


def test_the_instance_vertex_says_its_ranks_and_expert_group():
    graph = lower(compile_text(spec_text("ep 16")))
    node = graph.dataflow.nodes["p[0]"]
    assert (node["ranks"], node["ep"], len(node["gpus"])) == (16, 16, 16)
