"""Speculative decoding: a decode step drafts `tokens` tokens a sequence and the model
verifies them, yielding (1 - a^(k+1)) / (1 - a) tokens on average."""

import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.perf import Batch, for_pool
from tokensim.sim.run import simulate

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def spec_text(speculative: str = "", workload: str = "") -> str:
    return (
        HEAD
        + "cluster { node n { gpus H100_SXM x 1 } }\n"
        + f"deployment {{ pool p {{ model llama3_1_8b; cost roofline\n {speculative} }} }}\n"
        + (workload or "workload { arrivals closed 4; lengths fixed 500 -> 300; requests 24 }")
        + "\n"
    )


def tpot(speculative: str = "") -> float:
    result = simulate(lower(compile_text(spec_text(speculative))))
    return summarize(result)["tpot_s"]["mean"]


@pytest.mark.parametrize(
    "acceptance, tokens, expected", [(0.8, 1, 1.8), (0.7, 4, (1 - 0.7**5) / 0.3), (0.0, 3, 1.0)]
)
def test_a_step_yields_the_expected_run_of_accepted_tokens(acceptance, tokens, expected):
    text = spec_text(f"speculative mtp {{ tokens {tokens}; acceptance {acceptance} }}")
    spec = compile_text(text).deployment.pools[0].speculative
    assert spec.expected_tokens == pytest.approx(expected)


def test_a_decode_step_costs_the_proposals_and_the_verification_over_the_tokens_it_yields():
    spec = compile_text(spec_text("speculative draft llama3_2_1b { tokens 4; acceptance 0.7 }"))
    graph = lower(spec)
    pool = spec.deployment.pools[0]
    cost = for_pool(pool, graph)
    plain, draft = cost.cost, cost.draft
    step = Batch(decode_seqs=8, decode_context=8 * 1000)
    check = Batch(
        prefill_tokens=32, prefill_pairs=4 * 8000 + 8 * 4 * 5 / 2, decode_seqs=8,
        decode_context=8000, samples=40,
    )  # fmt: skip
    expected = (plain.iteration_s(check) + 4 * draft.iteration_s(step)) / (1 - 0.7**5) * 0.3
    assert cost.iteration_s(step) == pytest.approx(expected)
    prefill = Batch(prefill_tokens=100, prefill_pairs=5050, decode_seqs=8, decode_context=8000)
    assert cost.iteration_s(prefill) == plain.iteration_s(prefill)  # steps that prefill: as is


def test_tpot_falls_as_acceptance_rises_and_rises_past_the_break_even():
    """A draft of 4 tokens from a 1B model: at a low acceptance its work costs more than the
    tokens it wins (slower than not speculating), at a high one it pays."""
    plain = tpot()
    times = [
        tpot(f"speculative draft llama3_2_1b {{ tokens 4; acceptance {a} }}")
        for a in (0.1, 0.5, 0.9)
    ]
    assert times[0] > times[1] > times[2]
    assert times[0] > plain > times[2]


def test_a_speculating_run_says_its_itl_is_of_evenly_spaced_tokens():
    spec = compile_text(spec_text("speculative mtp { tokens 2; acceptance 0.6 }"))
    (warning,) = simulate(lower(spec)).warnings
    assert "pool p: speculative decoding is priced per token" in warning
    assert simulate(lower(compile_text(spec_text()))).warnings == []


def test_the_proposer_takes_memory_from_the_kv_cache():
    from tokensim.policies.memory import kv_geometry

    def blocks(text):
        return kv_geometry(compile_text(text).deployment.pools[0])[0]

    alone = blocks(spec_text())
    drafted = blocks(spec_text("speculative draft llama3_2_1b { tokens 4; acceptance 0.7 }"))
    assert drafted < alone


def test_the_proposer_keeps_its_own_kv_beside_the_models():
    """A token's block holds the model's 32 layers and the draft's 16 (Llama-3.2-1B: 8 KV
    heads of 64 against the 8B's 8 of 128), or one more layer for an MTP head."""
    from tokensim.policies.memory import kv_geometry

    def block(speculative=""):
        return kv_geometry(compile_text(spec_text(speculative)).deployment.pools[0]).block_bytes

    alone = block()
    drafted = block("speculative draft llama3_2_1b { tokens 4; acceptance 0.7 }")
    assert drafted == pytest.approx(alone * (32 * 128 + 16 * 64) / (32 * 128))
    assert block("speculative mtp { tokens 1; acceptance 0.7 }") == pytest.approx(alone * 33 / 32)


@pytest.mark.parametrize(
    "speculative, says",
    [
        ("speculative draft { tokens 4; acceptance 0.7 }", "needs the draft model"),
        ("speculative mtp llama3_2_1b { tokens 1; acceptance 0.7 }", "takes no draft model"),
        ("speculative mtp { tokens 1; acceptance 1 }", "`acceptance` must be < 1"),
        ("speculative mtp { tokens 0; acceptance 0.5 }", "`tokens` must be >= 1"),
        ("speculative mtp { acceptance 0.5 }", "needs `tokens`"),
        ("speculative eagle { tokens 1; acceptance 0.5 }", "unknown speculative method"),
        ("speculative draft llama9 { tokens 1; acceptance 0.5 }", "unknown model `llama9`"),
    ],
)
def test_a_bad_speculative_statement_is_a_located_error(speculative, says):
    out = errors_of(spec_text(speculative))
    assert says in out and "test.tsim:5:" in out, out


def test_acceptance_may_be_given_a_position():
    """DeepSeek's MTP heads accept less the further they look: 0.9, then 0.7 of those."""
    text = spec_text("speculative mtp { tokens 2; acceptance 0.9, 0.7 }")
    spec = compile_text(text).deployment.pools[0].speculative
    assert spec.expected_tokens == pytest.approx(1 + 0.9 + 0.9 * 0.7)
    falling = tpot("speculative mtp { tokens 2; acceptance 0.9, 0.2 }")
    steady = tpot("speculative mtp { tokens 2; acceptance 0.9, 0.9 }")
    assert falling > steady


def test_acceptance_chances_must_match_the_tokens():
    out = errors_of(spec_text("speculative mtp { tokens 3; acceptance 0.9, 0.7 }"))
    assert "2 acceptance chances for 3 proposed tokens" in out


def test_the_instance_vertex_names_its_proposer():
    text = spec_text("speculative draft llama3_2_1b { tokens 4; acceptance 0.7 }")
    assert lower(compile_text(text)).dataflow.nodes["p[0]"]["proposer"] == "llama3_2_1b"
    text = spec_text("speculative mtp { tokens 1; acceptance 0.7 }")
    assert lower(compile_text(text)).dataflow.nodes["p[0]"]["proposer"] == "mtp"
