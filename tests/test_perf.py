"""The roofline cost model against hand-computed iterations."""

import pytest
from conftest import compile_text

from tokensim import ir
from tokensim.graph import lower
from tokensim.perf import Batch, for_pool

LIB = """
link NVL { bandwidth 400 GB/s; latency 2 us }
link PCI { bandwidth 50 GB/s; latency 2 us }
gpu G { memory 80 GB; bandwidth 2 TB/s; host_link PCI
        compute { bf16 1000 TFLOPS; fp8 2000 TFLOPS }
        efficiency { gemm 0.5; attention 0.25; memory 0.5; kv_read 0.25; network 0.5
                     kernel 0 us; overhead 1 ms } }
model m { layers 10; hidden 4096; heads 32; kv_heads 8; ffn 16384; vocab 32000; max_context 8192 }
model moe { layers 10; hidden 4096; heads 32; kv_heads 8; ffn 4096; vocab 32000; max_context 8192
            experts 8; top_k 2 }
cluster { node n0 { gpus G x 8; link NVL } }
"""

# bf16 bytes (= FLOPs per token) of one layer of `m`: QKV, O, gated MLP
LAYER = 2 * (4096 * (4096 + 2 * 1024) + 4096 * 4096 + 3 * 4096 * 16384)


def model_for(pool_text: str, lib: str = LIB):
    spec = compile_text(lib + f"deployment {{ pool p {{ {pool_text} }} }}")
    pool = spec.deployment.pools[0]
    return pool, for_pool(pool, lower(spec))


def test_decode_of_one_sequence_streams_the_weights():
    _, cm = model_for("model m")
    b = cm.breakdown(Batch(decode_seqs=1, decode_context=0))
    assert b["gemm"] == pytest.approx(10 * LAYER / 1e12, rel=0.01)  # 2 TB/s x 0.5
    assert b["lm_head"] == pytest.approx(2 * 4096 * 32000 / 1e12, rel=0.01)
    assert b["overhead"] == 1e-3
    assert b["allreduce"] == 0


def test_decode_attention_reads_the_kv_cache():
    _, cm = model_for("model m")
    b = cm.breakdown(Batch(decode_seqs=4, decode_context=4 * 1000))
    kv_bytes = 10 * 4000 * 2 * 8 * 128 * 2  # layers x tokens x (K,V) x kv heads x head_dim x bf16
    assert b["attention_decode"] == pytest.approx(kv_bytes / 0.5e12)  # 2 TB/s x 0.25


def test_large_prefill_is_compute_bound():
    _, cm = model_for("model m")
    tokens = 8192
    b = cm.breakdown(Batch(prefill_tokens=tokens, prefill_pairs=Batch.pairs(tokens, 0), samples=1))
    assert b["gemm"] == pytest.approx(10 * LAYER * tokens / 500e12, rel=0.01)  # FLOPs = 2 x params
    pairs = tokens * (tokens + 1) / 2
    assert b["attention_prefill"] == pytest.approx(10 * 4 * 4096 * pairs / 250e12)


def test_fp8_halves_the_weights_doubles_the_gemm_peak_and_quantizes_the_activations():
    _, bf16 = model_for("model m")
    _, fp8 = model_for("model m fp8")
    one = Batch(decode_seqs=1)
    assert fp8.breakdown(one)["gemm"] == pytest.approx(bf16.breakdown(one)["gemm"] / 2, rel=0.01)
    big = Batch(prefill_tokens=16384, prefill_pairs=0, samples=1)
    # plus the activations' quantization before each GEMM: read 16-bit, write 8-bit (3 bytes
    # an element) of each GEMM input (QKV: hidden, O: heads x head_dim, MLP: hidden + ffn)
    quant = 10 * 16384 * (4096 + 4096 + 4096 + 16384) * 3 / 1e12  # 2 TB/s x 0.5
    expected = bf16.breakdown(big)["gemm"] / 2 + quant
    assert fp8.breakdown(big)["gemm"] == pytest.approx(expected, rel=0.01)


def test_tensor_parallel_splits_the_work_and_pays_a_ring_all_reduce():
    _, tp1 = model_for("model m")
    _, tp4 = model_for("model m; tp 4")
    one = Batch(decode_seqs=8, decode_context=8 * 512)
    assert tp4.breakdown(one)["gemm"] == pytest.approx(tp1.breakdown(one)["gemm"] / 4, rel=0.02)
    # 2 all-reduces per layer of 8 tokens x 4096 x 2 bytes over a 4-GPU ring; a ring
    # hop is GPU -> switch -> GPU: 400 GB/s x 0.5, latency 2 us once.
    size = 8 * 4096 * 2
    per = 2 * 3 / 4 * size / 200e9 + 2 * 3 * 2e-6
    assert tp4.breakdown(one)["allreduce"] == pytest.approx(10 * 2 * per)


def test_pipeline_stages_add_a_handoff():
    _, pp2 = model_for("model m; pp 2")
    b = pp2.breakdown(Batch(decode_seqs=8, decode_context=8 * 512))
    assert b["pp_handoff"] == pytest.approx(8 * 4096 * 2 / 200e9 + 2e-6)


def test_moe_reads_only_the_experts_it_touches():
    _, cm = model_for("model moe")
    one = cm.breakdown(Batch(decode_seqs=1))["gemm"]
    many = cm.breakdown(Batch(decode_seqs=256))["gemm"]
    expert = 2 * 3 * 4096 * 4096  # bytes of one expert's weights (bf16)
    # one token touches top_k = 2 experts; 256 tokens touch (almost) all 8
    assert many - one == pytest.approx(10 * 6 * expert / 1e12, rel=0.05)


@pytest.mark.parametrize("field", ["decode_seqs", "decode_context", "prefill_tokens"])
def test_more_work_never_takes_less_time(field):
    _, cm = model_for("model m; tp 2")
    base = dict(decode_seqs=4, decode_context=4096, prefill_tokens=256, prefill_pairs=0)
    times = []
    for scale in (1, 2, 4, 8):
        args = dict(base)
        args[field] = base[field] * scale
        times.append(cm.iteration_s(Batch(**args)))
    assert times == sorted(times) and times[0] < times[-1]


def test_an_empty_iteration_costs_only_the_overhead():
    _, cm = model_for("model m")
    assert cm.iteration_s(Batch()) == 1e-3


def test_a_gpu_without_an_efficiency_block_uses_the_documented_defaults():
    start = LIB.index("efficiency {")
    lib = LIB[:start] + LIB[LIB.index("overhead 1 ms }") + len("overhead 1 ms }") :]
    pool, cm = model_for("model m", lib)
    eff = ir.Efficiency()
    assert pool.gpu.efficiency == eff
    assert cm.iteration_s(Batch()) == 0.0
    b = cm.breakdown(Batch(decode_seqs=1))
    streamed = 10 * LAYER / (2e12 * eff.memory)
    assert b["gemm"] == pytest.approx(streamed + 10 * 4 * eff.kernel_s, rel=0.01)


def test_every_kernel_pays_the_kernel_time():
    _, none = model_for("model m; tp 2")
    _, some = model_for("model m; tp 2", LIB.replace("kernel 0 us", "kernel 10 us"))
    batch = Batch(prefill_tokens=64, prefill_pairs=Batch.pairs(64, 0), decode_seqs=2,
                  decode_context=2 * 100, samples=3)  # fmt: skip
    a, b = none.breakdown(batch), some.breakdown(batch)
    # per layer: QKV, O, the MLP's up/gate and down (one kernel each); prefill and
    # decode attention (two each: KV-cache write and attention); six elementwise;
    # two all-reduces
    per_layer = {"gemm": 4, "attention_prefill": 2, "attention_decode": 2, "norms": 6,
                 "allreduce": 2}  # fmt: skip
    for term, kernels in per_layer.items():
        assert b[term] - a[term] == pytest.approx(10 * kernels * 10e-6), term
    assert b["lm_head"] - a["lm_head"] == pytest.approx(10e-6)


def test_a_tp_instance_spanning_two_nodes_pays_the_network():
    lib = LIB.replace(
        "cluster { node n0 { gpus G x 8; link NVL } }",
        """link IB { bandwidth 25 GB/s; latency 5 us }
cluster { node n0 { gpus G x 1; link NVL; nics 1 }
          node n1 { gpus G x 1; link NVL; nics 1 }
          network IB between n0, n1 }""",
    )
    _, tp2 = model_for("model m; tp 2; on n0, n1", lib)
    one = Batch(decode_seqs=8, decode_context=8 * 512)
    # a ring hop is GPU -PCI-> NIC -IB-> fabric -IB-> NIC -PCI-> GPU: IB's 25 GB/s x 0.5
    # is the bottleneck; latency 2 + 5 + 2 us
    size = 8 * 4096 * 2
    per = 2 * 1 / 2 * size / 12.5e9 + 2 * 1 * 9e-6
    assert tp2.breakdown(one)["allreduce"] == pytest.approx(10 * 2 * per)
