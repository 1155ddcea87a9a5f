"""Models of the DeepSeek-V3 kind: multi-head latent attention (the KV cache holds one
latent per token), shared experts and dense first layers in a MoE."""

import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.perf import Batch, for_pool
from tokensim.policies.memory import kv_geometry

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def pool_of(model: str, tp: int = 8, defs: str = ""):
    """The pool of ``model`` at ``tp`` on eight H200s, priced by the roofline, and its
    cost model."""
    spec = compile_text(
        HEAD
        + defs
        + "cluster { node n { gpus H200 x 8; link NVLINK4 } }\n"
        + f"deployment {{ pool p {{ model {model}; tp {tp}; cost roofline }} }}\n"
    )
    pool = spec.deployment.pools[0]
    return pool, for_pool(pool, lower(spec))


def test_deepseek_v3_counts_its_published_parameters():
    pool, _ = pool_of("deepseek_v3")
    m = pool.model
    assert m.params == pytest.approx(671e9, rel=0.001)
    assert m.active_params == pytest.approx(37e9, rel=0.03)  # the report's 37B activated
    assert (m.moe_layers, m.kv_elements(8)) == (58, 512 + 64)


def test_kimi_k2_counts_its_published_active_parameters():
    from tokensim.lang.check import std_spec

    (kimi,) = [m for m in std_spec("models").models if m.name == "kimi_k2"]
    assert kimi.active_params == pytest.approx(32e9, rel=0.05)  # the card's 32B activated
    assert (kimi.moe_layers, kimi.heads, kimi.experts) == (60, 64, 384)


@pytest.mark.parametrize(
    "name, active, moe_layers",
    [("glm4_5_air", 12e9, 45), ("glm4_5", 32e9, 89), ("glm4_6", 32e9, 89)],
)
def test_glm_counts_its_published_active_parameters(name, active, moe_layers):
    from tokensim.lang.check import std_spec

    (glm,) = [m for m in std_spec("models").models if m.name == name]
    embeddings = 2 * glm.vocab * glm.hidden  # the card's active count leaves them out
    assert glm.active_params - embeddings == pytest.approx(active, rel=0.03)
    assert (glm.moe_layers, glm.shared_experts, glm.kv_heads) == (moe_layers, 1, 8)


def test_glm_4_5_air_in_bf16_needs_more_than_two_h100s():
    spec = (
        HEAD
        + "cluster {{ node n {{ gpus H100_SXM x 4; link NVLINK4 }} }}\n"
        + "deployment {{ pool p {{ model glm4_5_air; tp {tp} }} }}\n"
    )
    assert "does not fit" in errors_of(spec.format(tp=2))
    assert compile_text(spec.format(tp=4)).deployment.pools[0].tp == 4


def test_the_mla_latent_is_whole_on_every_gpu_where_gqa_heads_split():
    """A token's KV on one GPU: MLA's latent and rotary key (576 elements a layer) at any
    tp; a GQA model's K and V shrink with tp."""
    per_gpu = {}
    defs = "model small_v3 from deepseek_v3 { layers 20 }\n"  # fits at tp 4
    for model in ("small_v3", "llama3_1_70b"):
        for tp in (4, 8):
            pool, _ = pool_of(model, tp, defs)
            geometry = kv_geometry(pool)
            per_gpu[model, tp] = geometry.block_bytes / pool.kv.block_tokens / pool.model.layers
    assert per_gpu["small_v3", 4] == per_gpu["small_v3", 8] == 576 * 2  # bf16 cache
    assert per_gpu["llama3_1_70b", 4] == 2 * per_gpu["llama3_1_70b", 8]


def test_mla_decode_reads_the_latent_not_a_key_and_value_per_head():
    """Decode attention over a long context is memory-bound: with MLA it reads 576
    elements a token and layer, where the same heads as multi-head attention would read
    2 x 16 x 128 on each of 8 GPUs."""
    _, mla = pool_of("deepseek_v3")
    spec = compile_text(
        HEAD + "model mha {\n  layers 61; hidden 7168; heads 128; head_dim 128; ffn 2048\n"
        "  experts 256; top_k 8; shared_experts 1; dense_layers 3; dense_ffn 18432\n"
        "  vocab 129280; max_context 163840 }\n"
        + "cluster { node n { gpus H200 x 8; link NVLINK4 } }\n"
        + "deployment { pool p { model mha fp8; tp 8; cost roofline } }\n"
    )
    mha = for_pool(spec.deployment.pools[0], lower(spec))
    long = Batch(decode_seqs=64, decode_context=64 * 32768)
    ratio = mha.breakdown(long)["attention_decode"] / mla.breakdown(long)["attention_decode"]
    assert ratio == pytest.approx(2 * 16 * 128 / 576, rel=0.05)


def test_shared_experts_and_dense_layers_are_priced():
    """A one-token decode step reads the weights it uses: three more shared experts in
    each of the 58 MoE layers, or a dense MLP four times as wide in the 3 dense layers,
    cost those weights' bytes (fp8, an eighth on each GPU) at the memory's pace."""
    batch = Batch(decode_seqs=1, decode_context=2000)
    times = {}
    for name, change in (
        ("as published", ""),
        ("more shared", "shared_experts 4"),
        ("wider dense", "dense_ffn 73728"),
    ):
        defs = f"model variant from deepseek_v3 {{ {change} }}\n"
        _, cost = pool_of("variant", defs=defs)
        times[name] = cost.breakdown(batch)["gemm"]
    matrix = 3 * 7168 / 8 / cost.mem_Bps  # seconds per unit of ffn: gate, up, down, fp8
    shared = times["more shared"] - times["as published"]
    dense = times["wider dense"] - times["as published"]
    assert shared == pytest.approx(58 * 3 * 2048 * matrix, rel=0.02)
    assert dense == pytest.approx(3 * (73728 - 18432) * matrix, rel=0.02)


def test_deepseek_v3_runs_on_eight_h200s():
    from tokensim.sim.run import simulate

    spec = compile_text(
        HEAD
        + "cluster { node n { gpus H200 x 8; link NVLINK4 } }\n"
        + "deployment { pool p { model deepseek_v3; tp 8 } }\n"
        + "workload { arrivals poisson 2/s; lengths fixed 2000 -> 100; requests 30 }\n"
    )
    result = simulate(lower(spec))
    assert (~result.requests["rejected"]).sum() == 30


@pytest.mark.parametrize(
    "block, says",
    [
        ("experts 1; shared_experts 1", "`shared_experts` is for a MoE model"),
        ("experts 8; top_k 2; dense_layers 4", "must leave MoE layers of the 4"),
        ("experts 8; top_k 2; dense_layers 1", "`dense_layers` needs `dense_ffn`"),
        ("mla { kv_lora_rank 64 }", "`mla` needs `rope_dim`"),
        ("mla { kv_lora_rank 64; rope_dim 16; q_rank 8 }", "unknown statement `q_rank`"),
    ],
)
def test_what_a_model_cannot_be_is_a_located_error(block, says):
    text = (
        "model m { layers 4; hidden 256; heads 4; ffn 512; vocab 1000; max_context 4096; "
        + block
        + " }"
    )
    out = errors_of(text)
    assert says in out, out


def test_profile_refuses_mla_rather_than_measure_it_as_mha():
    from tokensim.perf.profile import ProfileError, catalogue_model, profile

    with pytest.raises(ProfileError, match="multi-head latent attention"):
        profile(catalogue_model("deepseek_v3"), 8)
