"""Round trip: every shipped spec and std catalogue compiles, lowers and renders."""

import re

import pytest
from conftest import SPECS, compile_text

from tokensim.graph import lower
from tokensim.graph.render import text
from tokensim.lang.check import check_file, check_text, std_dir, std_engines, std_names


def test_there_are_the_promised_examples():
    names = {p.stem for p in SPECS}
    assert {"single_gpu_8b", "tp2_x4", "disaggregated", "heterogeneous"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_shipped_spec_compiles_and_lowers(path):
    spec = check_file(path)
    graph = lower(spec)
    assert graph.topology.number_of_nodes() > 0
    assert "dataflow:" in text(graph)


@pytest.mark.parametrize("name", std_names())
def test_std_catalogue_compiles(name):
    stem = name.removeprefix("std/")
    spec = check_text(std_dir().joinpath(stem + ".tsim").read_text("utf-8"), f"<std>/{stem}.tsim")
    assert spec.gpus or spec.models or spec.links or (stem == "engines" and std_engines())


def _std(stem):
    return check_text(std_dir().joinpath(stem + ".tsim").read_text("utf-8"), f"<std>/{stem}.tsim")


def test_every_std_definition_says_where_it_came_from():
    for stem in ("hardware", "models"):
        spec = _std(stem)
        for item in spec.gpus + spec.links + spec.models:
            assert item.sources, f"{item.name} in std/{stem} has no `source`"


def test_every_std_figure_line_is_sourced():
    # Each numeric line in a std block is covered by a `source` of its block or a comment.
    for stem in ("hardware", "models"):
        body = std_dir().joinpath(stem + ".tsim").read_text("utf-8")
        for block in re.findall(r"^(?:gpu|link|model) \w+ \{.*?^\}", body, re.M | re.S):
            assert 'source "' in block, block.splitlines()[0]


def test_std_has_the_promised_entries():
    hw, models = _std("hardware"), _std("models")
    gpus = {g.name for g in hw.gpus}
    links = {link.name for link in hw.links}
    assert {
        "H100_SXM",
        "H100_PCIE",
        "H200",
        "B200",
        "A100_80G",
        "A100_40G",
        "L40S",
        "MI300X",
        "RTX_4090",
        "RTX_5090",
        "RTX_3090",
        "RTX_A6000",
        "RTX_6000_ADA",
        "RTX_PRO_6000",
        "L4",
        "A10",
    } <= gpus
    assert {
        "NVLINK3",
        "NVLINK3_BRIDGE",
        "NVLINK4",
        "NVLINK5",
        "PCIE4",
        "PCIE5",
        "IB_200G",
        "IB_400G",
        "ETH_100G",
    } <= links
    assert {
        "llama2_7b",
        "llama2_13b",
        "llama2_70b",
        "llama3_1_8b",
        "llama3_1_70b",
        "llama3_1_405b",
        "mistral_7b",
        "mixtral_8x7b",
        "qwen2_5_7b",
        "qwen2_5_72b",
        "opt_13b",
        "llama3_2_1b",
        "llama3_2_3b",
        "qwen2_5_1_5b",
        "qwen2_5_3b",
        "qwen2_5_14b",
        "qwen2_5_32b",
        "qwen3_4b",
        "mistral_nemo_12b",
        "mistral_small_24b",
    } <= {m.name for m in models.models}


def test_std_models_match_their_published_parameter_counts():
    for m in _std("models").models:
        assert m.published_params, f"{m.name} has no published `params` to check its shapes against"
        assert abs(m.params - m.published_params) / m.published_params < 0.03, m.name


def test_geforce_cards_give_their_fp32_accumulate_rate():
    # GeForce cards run 16-bit tensor math with FP32 accumulation (what the engines' GEMMs
    # use) at half the FP16-accumulate rate their spec sheets lead with; the workstation
    # cards of the same chips do not halve it
    hw = {g.name: g for g in _std("hardware").gpus}
    assert hw["RTX_4090"].flops("bf16") == pytest.approx(165.2e12)  # not 330.3
    assert hw["RTX_4090"].flops("fp8") == pytest.approx(330.3e12)  # not 660.6
    assert hw["RTX_3090"].flops("bf16") == pytest.approx(71e12)  # not 142
    assert hw["RTX_6000_ADA"].flops("bf16") == pytest.approx(364.2e12)  # AD102, full rate
    assert hw["RTX_A6000"].flops("bf16") == pytest.approx(154.8e12)  # GA102, full rate


def test_engines_choose_their_defaults_by_the_cards_memory():
    text = """
import "std/hardware"
import "std/models"
import "std/engines"
cluster { node a { gpus RTX_4090 x 2; link PCIE4 }
          node b { gpus RTX_PRO_6000 x 1 } }
deployment { pool s { model llama3_1_8b; on a[0]; engine sglang }
             pool v { model llama3_1_8b; on a[1] }
             pool p { model llama3_1_8b; on b } }
"""
    pools = {p.name: p for p in compile_text(text).deployment.pools}
    assert dict(pools["s"].batching.params)["max_tokens"] == 2048  # SGLang: under 35 GiB
    assert pools["s"].engine.cuda_graphs == 8
    assert dict(pools["v"].batching.params)["budget"] == 2048  # vLLM: under 70 GiB
    assert dict(pools["p"].batching.params)["budget"] == 8192  # 96 GB


def test_well_known_figures():
    hw = {g.name: g for g in _std("hardware").gpus}
    assert hw["H100_SXM"].memory_B == 81559 * 2**20  # nvidia-smi's total, not 80e9
    assert hw["H100_SXM"].bandwidth_Bps == pytest.approx(3.35e12)
    assert hw["H100_SXM"].flops("bf16") == pytest.approx(989e12, rel=0.01)
    assert hw["A100_80G"].flops("bf16") == pytest.approx(312e12)
    assert hw["H200"].memory_B == 143771 * 2**20
