"""Definitions made from another: `gpu NAME from BASE { ... }`, the same for models and
links: the base's statements with these laid on top."""

from __future__ import annotations

from conftest import ROOT, compile_text, errors_of

import tokensim
from tokensim.lang.check import std_spec

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def defined(spec, kind: str, name: str):
    return next(x for x in getattr(spec, kind) if x.name == name)


def test_a_derived_gpu_keeps_what_it_does_not_change():
    spec = compile_text(
        HEAD
        + """
gpu H100_slow from H100_SXM {
  source "my lab: GEMMs at 40% of peak"
  efficiency { gemm 0.4 }
  memory 40 GiB
}
"""
    )
    base = defined(std_spec("hardware"), "gpus", "H100_SXM")
    gpu = defined(spec, "gpus", "H100_slow")
    assert gpu.memory_B == 40 * 2**30
    assert (gpu.bandwidth_Bps, gpu.compute_flops, gpu.host_link) == (
        base.bandwidth_Bps,
        base.compute_flops,
        base.host_link,
    )
    assert gpu.efficiency.gemm == 0.4  # changed entry by entry: the others are the base's
    assert gpu.efficiency.attention == base.efficiency.attention
    assert gpu.sources == ("my lab: GEMMs at 40% of peak", *base.sources)
    assert gpu.cost == base.cost  # the shipped calibration, found from the std file


def test_definitions_derive_in_chains():
    spec = compile_text(
        HEAD
        + """
gpu A from H100_SXM { memory 40 GiB }
gpu B from A { bandwidth 1 TB/s }
"""
    )
    b = defined(spec, "gpus", "B")
    assert (b.memory_B, b.bandwidth_Bps) == (40 * 2**30, 1e12)


def test_a_model_that_changes_a_shape_drops_the_published_count():
    spec = compile_text(
        HEAD
        + """
model long from llama3_1_8b { max_context 16384 }
model deep from llama3_1_8b { layers 40 }
"""
    )
    base = defined(std_spec("models"), "models", "llama3_1_8b")
    long, deep = defined(spec, "models", "long"), defined(spec, "models", "deep")
    assert (long.max_context, long.params, long.layers) == (16384, base.params, base.layers)
    assert deep.layers == 40 and deep.params > base.params * 1.2
    assert deep.max_context == base.max_context


def test_a_slower_derived_gpu_runs_slower():
    def ttft(gpu: str) -> float:
        text = (
            HEAD
            + """
gpu H100_slow from H100_SXM { efficiency { gemm 0.2 } }
cluster { node n0 { gpus GPU x 1 } }
deployment { pool p { model llama3_1_8b; cost roofline } }
workload { arrivals poisson 2/s; lengths fixed 2000 -> 20; requests 50; seed 1 }
""".replace("GPU", gpu)
        )
        return tokensim.run(text).metrics["ttft_s"]["p50"]

    assert ttft("H100_slow") > 1.5 * ttft("H100_SXM")


def test_an_unknown_base_is_located_with_a_suggestion_and_does_not_cascade():
    out = errors_of(
        HEAD
        + """
gpu G from H100_SXMM { memory 10 GB }
gpu G2 from G { memory 20 GB }
model m from nosuch { layers 2 }
"""
    )
    assert "unknown gpu `H100_SXMM`" in out and "did you mean `H100_SXM`?" in out
    assert "unknown model `nosuch`" in out
    assert "G2" not in out and "needs" not in out  # neither the chain nor missing statements
    assert out.count("error:") == 2


def test_a_bad_value_in_the_changes_is_reported_once_where_written():
    out = errors_of(HEAD + "gpu G from H100_SXM { memory 10 furlongs }\n")
    assert out.count("error:") == 1 and "unknown unit `furlongs`" in out and "test.tsim:3" in out


def test_a_definition_without_a_base_still_needs_its_statements():
    out = errors_of("gpu G { memory 10 GB }\n")
    assert "gpu `G` needs `bandwidth`" in out


def test_a_gpu_made_from_a_calibrated_one_is_priced_by_its_measurements():
    def run(gpu: str):
        text = (
            HEAD
            + """
gpu H100_big from H100_SXM { memory 100 GiB }
cluster { node n0 { gpus GPU x 1 } }
deployment { pool p { model llama3_1_8b } }
workload { arrivals poisson 2/s; lengths fixed 2000 -> 20; requests 30; seed 1 }
""".replace("GPU", gpu)
        )
        return tokensim.run(text).metrics

    base, big = run("H100_SXM"), run("H100_big")
    assert big["ttft_s"] == base["ttft_s"] and big["tpot_s"] == base["tpot_s"]
    assert not any("nothing measured" in w for w in big.get("warnings", []))


def test_engine_choices_by_gpu_name_hold_on_a_gpu_made_from_it():
    from tokensim.lang.check import std_engines

    spec = compile_text(HEAD + "gpu A100_mine from A100_80G { price 1 $/h }\n")
    mine = defined(spec, "gpus", "A100_mine")
    names = {s.key.text: s for s in std_engines()["vllm_v1"].layers(mine)}
    budget = [i for i in names["batching"].body if i.key.text == "budget"][0]
    assert "2048" in str(budget)  # vLLM's A100 exception, not the 8192 of 70 GiB and up


def test_the_note_on_ops_priced_from_the_datasheet_names_each_once(tmp_path):
    from conftest import tokensim_cli

    spec = tmp_path / "s.tsim"
    spec.write_text(
        HEAD
        + """
gpu X from H100_SXM { memory 100 GiB }
cluster { node n0 { gpus X x 1 } }
deployment { pool p { model llama3_1_8b; cost calibrated "CAL" } }
workload { arrivals poisson 2/s; lengths chat; requests 20; seed 1 }
""".replace("CAL", str(ROOT / "dsl" / "std" / "calibrations" / "A100_80G.json"))
    )
    r = tokensim_cli("run", spec, "-o", tmp_path / "out", "--no-report")
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "nothing measured for" in x]
    ops = line.split("nothing measured for ")[1].split(" on ")[0].split(", ")
    assert "gemm" in ops and len(ops) == len(set(ops))
