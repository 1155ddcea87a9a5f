"""`tokensim list`: every catalogue entry and policy, with its figures and sources."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from tokensim.lang.check import std_engines, std_spec
from tokensim.policies.batching import BATCHING
from tokensim.policies.routing import ROUTING
from tokensim.policies.workload import ARRIVALS, LENGTHS


def listed(*args) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-m", "tokensim", "list", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def first_words(lines: list[str]) -> list[str]:
    return [line.split()[0] for line in lines[1:] if not line.startswith(" ")]


@pytest.mark.parametrize(
    "kind, names",
    [
        ("gpus", lambda: [g.name for g in std_spec("hardware").gpus]),
        ("models", lambda: [m.name for m in std_spec("models").models]),
        ("links", lambda: [x.name for x in std_spec("hardware").links]),
        ("engines", lambda: list(std_engines())),
    ],
)
def test_every_entry_is_listed_once_with_its_first_source(kind, names):
    lines = listed(kind)
    assert sorted(first_words(lines)) == sorted(names())
    assert lines[0].split()[-1] == "source"
    assert all(len(line.split("  ")) > 2 for line in lines[1:])


def test_a_gpu_line_has_its_catalogue_figures():
    (h100,) = [line for line in listed("gpus") if line.startswith("H100_SXM ")]
    gpu = next(g for g in std_spec("hardware").gpus if g.name == "H100_SXM")
    assert f"{gpu.memory_B / 2**30:.1f}" in h100 and " 989 " in h100 and " 1979 " in h100
    assert gpu.sources[0] in h100


def test_sources_lists_every_source_of_an_entry():
    lines = listed("engines", "--sources")
    total = sum(len(e.sources) for e in std_engines().values())
    assert len(lines) - 1 == total  # a row per engine, a line per further source
    assert sum(line.startswith("    source: ") for line in lines) == total - len(std_engines())


def test_every_policy_is_listed_by_family():
    lines = listed("policies")
    got = {(line.split()[0], line.split()[1]) for line in lines[1:]}
    for registry in (BATCHING, ROUTING, ARRIVALS, LENGTHS):
        assert {(registry.family, cls.name) for cls in registry} <= got


@pytest.mark.parametrize(
    "name, model",
    [
        ("meta-llama/Llama-3.1-70B-Instruct", "llama3_1_70b"),
        ("llama-3.1-70b", "llama3_1_70b"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3_8b"),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507", "qwen3_235b_a22b"),
        ("mistralai/Mistral-Nemo-Instruct-2407", "mistral_nemo_12b"),
        ("codellama/CodeLlama-34b-Instruct-hf", "codellama_34b"),
        ("qwen2_5_7b", "qwen2_5_7b"),
        ("openai/gpt-oss-120b", "gpt_oss_120b"),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama4_scout"),
        ("deepseek-ai/DeepSeek-V2-Lite", None),
        ("llama", None),
    ],
)
def test_a_model_is_found_by_its_hugging_face_name(name, model):
    from tokensim.lang.catalogue import model_named

    assert model_named(name) == model


def test_every_catalogue_model_is_found_by_the_repository_it_cites():
    import re

    from tokensim.lang.catalogue import model_named

    for m in std_spec("models").models:
        repo = next(re.search(r"huggingface\.co/([^/]+/[^/\s]+)", s) for s in m.sources)
        assert repo is not None and model_named(repo.group(1)) == m.name
