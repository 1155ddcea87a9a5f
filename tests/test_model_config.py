"""`model NAME from "config.json"`: a model read from its Hugging Face config file."""

from __future__ import annotations

import json

import pytest
from conftest import errors_of

import tokensim
from tokensim.lang.check import std_spec

# the fields of Llama-3.1-8B's and Qwen3-30B-A3B's config.json that tokensim reads (the
# values std/models cites), beside fields it ignores
LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "rope_theta": 500000.0,
}
QWEN_MOE = {
    "model_type": "qwen3_moe",
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "moe_intermediate_size": 768,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_hidden_layers": 48,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "tie_word_embeddings": False,
    "sliding_window": None,
    "use_sliding_window": False,
}


# DeepSeek-V3's config.json (the fields tokensim reads, beside some it ignores)
DEEPSEEK = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_shared_experts": 1,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
    "num_nextn_predict_layers": 1,
    "scoring_func": "sigmoid",
}


# gpt-oss-120b's config.json: alternating sliding-window layers, MXFP4 experts
GPT_OSS = {
    "architectures": ["GptOssForCausalLM"],
    "model_type": "gpt_oss",
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "num_hidden_layers": 36,
    "num_local_experts": 128,
    "num_experts_per_tok": 4,
    "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 18,
    "vocab_size": 201088,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "quantization_config": {"quant_method": "mxfp4"},
}
# Llama 4 Maverick's config.json: the text model under text_config, MoE every other layer,
# chunked attention on three layers in four
MAVERICK = {
    "architectures": ["Llama4ForConditionalGeneration"],
    "model_type": "llama4",
    "text_config": {
        "model_type": "llama4_text",
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "num_hidden_layers": 48,
        "num_local_experts": 128,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 2,
        "attention_chunk_size": 8192,
        "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(48)],
        "vocab_size": 202048,
        "max_position_embeddings": 1048576,
        "tie_word_embeddings": False,
    },
    "vision_config": {"hidden_size": 1408},
}


def spec(tmp_path, config: dict, line: str) -> str:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return 'import "std/hardware"\nimport "std/models"\n' + line + "\n"


def model(spec_, name):
    return next(m for m in spec_.models if m.name == name)


def std(name):
    return next(m for m in std_spec("models").models if m.name == name)


@pytest.mark.parametrize(
    "config, same",
    [
        (LLAMA, "llama3_1_8b"),
        (QWEN_MOE, "qwen3_30b_a3b"),
        (DEEPSEEK, "deepseek_v3"),
        (GPT_OSS, "gpt_oss_120b"),
        (MAVERICK, "llama4_maverick"),
    ],
)
def test_a_config_gives_the_shapes_the_catalogue_cites(tmp_path, config, same):
    path = tmp_path / "m.tsim"
    path.write_text(spec(tmp_path, config, 'model mine from "config.json"'))
    got, ref = model(tokensim.load(path), "mine"), std(same)
    shapes = ("layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab")
    shapes += ("kv_lora_rank", "q_lora_rank", "rope_dim", "v_dim")
    shapes += ("shared_experts", "dense_layers", "dense_ffn")
    shapes += ("window", "window_layers", "expert_dtype")
    for field in shapes:
        assert getattr(got, field) == getattr(ref, field), field
    assert (got.experts, got.top_k, got.mlp, got.params) == (
        ref.experts,
        ref.top_k,
        ref.mlp,
        ref.params,
    )
    assert got.sources[0] == "config.json: read from config.json"


def test_the_block_changes_what_the_config_says_and_the_model_runs(tmp_path):
    path = tmp_path / "m.tsim"
    path.write_text(
        spec(tmp_path, LLAMA, 'model mine from "config.json" { max_context 8192 }')
        + """
cluster { node n0 { gpus H100_SXM x 1 } }
deployment { pool p { model mine } }
workload { arrivals poisson 5/s; lengths fixed 500 -> 50; requests 40; seed 1 }
"""
    )
    run = tokensim.run(path)
    assert model(run.result.spec, "mine").max_context == 8192
    assert run.metrics["requests"]["completed"] == 40


@pytest.mark.parametrize(
    "config, says",
    [
        ({**LLAMA, "kv_lora_rank": 512}, "has `kv_lora_rank` (multi-head latent attention) but"),
        ({**DEEPSEEK, "shared_expert_intermediate_size": 3000}, "no whole number of experts"),
        ({**DEEPSEEK, "moe_layer_freq": 2}, "dense layers both first and among the MoE"),
        ({**GPT_OSS, "layer_types": ["linear_attention"] * 36}, "layers of kinds other than"),
        ({**GPT_OSS, "sliding_window": None}, "sliding-window layers but no `sliding_window`"),
        (
            {k: v for k, v in LLAMA.items() if k != "num_hidden_layers"},
            "has no `num_hidden_layers`",
        ),
        ([1, 2], "not an object"),
        ({**LLAMA, "num_hidden_layers": "32"}, "`num_hidden_layers` should be a number"),
        ({**LLAMA, "vocab_size": "1\nlayers 2"}, "`vocab_size` should be a number"),
        (
            {k: v for k, v in QWEN_MOE.items() if k != "num_experts_per_tok"},
            "no `num_experts_per_tok`",
        ),
    ],
)
def test_what_tokensim_cannot_read_is_an_error_at_the_path(tmp_path, config, says):
    out = errors_of(
        spec(tmp_path, config, 'model mine from "config.json"'), str(tmp_path / "m.tsim")
    )
    assert says in out and "m.tsim:3:17" in out, out
    assert out.count("error:") == 1


def test_a_missing_or_broken_file_is_an_error_at_the_path(tmp_path):
    text = 'model mine from "nope.json"\n'
    out = errors_of(text, str(tmp_path / "m.tsim"))
    assert "no such file `nope.json`" in out and "m.tsim:1:17" in out
    (tmp_path / "bad.json").write_text('{"hidden_size": 4096,\n oops}')
    out = errors_of('model mine from "bad.json"\n', str(tmp_path / "m.tsim"))
    assert "`bad.json` is not JSON" in out and "line 2" in out


def test_a_gpu_cannot_be_read_from_a_file():
    out = errors_of('gpu g from "config.json"\n')
    assert "error:" in out and "gpu" in out


@pytest.mark.parametrize(
    "config, expect",
    [
        ({**QWEN_MOE, "mlp_only_layers": [0, 1]}, {"dense_layers": 2, "dense_ffn": 6144}),
        ({**QWEN_MOE, "decoder_sparse_step": 2}, {"dense_layers": 24, "dense_ffn": 6144}),
        ({**LLAMA, "sliding_window": 4096}, {"window": 4096, "window_layers": 32}),
        ({**LLAMA, "sliding_window": 131072}, {"window": 0}),  # as long as any sequence
    ],
)
def test_dense_layers_among_moe_ones_and_windows_are_read(tmp_path, config, expect):
    path = tmp_path / "m.tsim"
    path.write_text(spec(tmp_path, config, 'model mine from "config.json"'))
    got = model(tokensim.load(path), "mine")
    assert {k: getattr(got, k) for k in expect} == expect
