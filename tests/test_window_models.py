"""Sliding-window attention and experts in their own precision (gpt-oss, Llama 4)."""

import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.perf import Batch, for_pool
from tokensim.sim.run import simulate

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def spec_text(model: str, gpus: int = 1, tp: int = 1, extra: str = "") -> str:
    return (
        HEAD
        + extra
        + f"cluster {{ node n {{ gpus H100_SXM x {gpus}; link NVLINK4 }} }}\n"
        + f"deployment {{ pool p {{ model {model}; tp {tp}; cost roofline }} }}\n"
        + "workload { arrivals poisson 4/s; lengths fixed 2000 -> 100; requests 40 }\n"
    )


def cost(model: str, extra: str = ""):
    spec = compile_text(spec_text(model, extra=extra))
    return for_pool(spec.deployment.pools[0], lower(spec)), spec.deployment.pools[0]


FULL = "model full from gpt_oss_20b { window 131072 }\n"  # a window no sequence outgrows


def test_window_layers_stop_paying_for_context_beyond_the_window():
    windowed, _ = cost("gpt_oss_20b")
    full, _ = cost("full", FULL)
    long = Batch(decode_seqs=64, decode_context=64 * 30000)
    short = Batch(decode_seqs=64, decode_context=64 * 100)  # inside the window: the same
    w, f = windowed.breakdown(long), full.breakdown(long)
    # half the layers read 128 keys instead of 30000: about half the attention
    assert w["attention_decode"] == pytest.approx(f["attention_decode"] / 2, rel=0.05)
    assert (
        windowed.breakdown(short)["attention_decode"] == full.breakdown(short)["attention_decode"]
    )
    prompt = Batch(prefill_tokens=8000, prefill_pairs=Batch.pairs(8000, 0), samples=1)
    assert (
        windowed.breakdown(prompt)["attention_prefill"]
        < 0.6 * full.breakdown(prompt)["attention_prefill"]
    )


def test_mxfp4_experts_let_gpt_oss_120b_fit_one_h100():
    _, pool = cost("gpt_oss_120b")
    model = pool.model
    assert pool.dtype == "bf16" and model.expert_dtype == "mxfp4"
    routed = model.routed_params * 4.25 / 8
    rest = (model.params - model.routed_params) * 2
    assert pool.weights_per_gpu_B == pytest.approx(routed + rest)
    assert 60e9 < pool.weights_per_gpu_B < 70e9  # the checkpoint is about 65 GB
    bf16 = errors_of(
        spec_text("all16", extra="model all16 from gpt_oss_120b { expert_dtype bf16 }\n")
    )
    assert "does not fit" in bf16


def test_the_experts_read_their_own_bytes():
    fp4, _ = cost("gpt_oss_20b")
    bf16, _ = cost("wide", "model wide from gpt_oss_20b { expert_dtype bf16 }\n")
    step = Batch(decode_seqs=8, decode_context=8 * 1000)
    assert fp4.breakdown(step)["gemm"] < bf16.breakdown(step)["gemm"]


@pytest.mark.parametrize("model, gpus", [("gpt_oss_20b", 1), ("llama4_scout", 4)])
def test_the_window_models_run(model, gpus):
    result = simulate(lower(compile_text(spec_text(model, gpus, gpus))))
    assert summarize(result)["requests"]["completed"] == 40


@pytest.mark.parametrize(
    "definition, says",
    [
        ("model m from llama3_1_8b { window_layers 4 }", "`window_layers` without `window`"),
        ("model m from llama3_1_8b { window 64; window_layers 40 }", "exceeds `layers` (32)"),
        ("model m from llama3_1_8b { expert_dtype fp4 }", "is dense: `expert_dtype`"),
    ],
)
def test_bad_window_or_expert_dtype_is_a_located_error(definition, says):
    out = errors_of(HEAD + definition + "\n")
    assert says in out and "test.tsim:3:" in out
