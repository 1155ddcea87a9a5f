"""Property tests: no input makes the front end raise anything but a diagnostic."""

from pathlib import Path

from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensim.graph import lower
from tokensim.lang.check import check
from tokensim.lang.diagnostics import CompileError
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap


def compile_or_diagnose(text: str, name: str = "fuzz.tsim") -> None:
    """Compile ``text``; a CompileError (with located, renderable diagnostics) is fine."""
    sources = SourceMap()
    try:
        lower(check(parse(text, name, sources), sources))
    except CompileError as err:
        assert err.diagnostics
        rendered = str(err)
        assert rendered.startswith("error: ")
        for d in err.diagnostics:
            assert d.span is None or d.span.line >= 1


TOKENS = [
    "cluster",
    "node",
    "deployment",
    "pool",
    "workload",
    "slo",
    "sweep",
    "model",
    "gpus",
    "link",
    "x",
    "tp",
    "pp",
    "instances",
    "on",
    "role",
    "prefill",
    "decode",
    "transfer",
    "route",
    "by",
    "min(",
    ")",
    "kv_used",
    "+",
    "*",
    "->",
    "..",
    "{",
    "}",
    ";",
    "\n",
    ",",
    "[",
    "]",
    '"std/hardware"',
    "import",
    "8",
    "0.5",
    "80 GB",
    "12/s",
    "500 ms",
    "n0",
    "H100_SXM",
    "llama3_1_8b",
    "NVLINK4",
    "batching",
    "continuous",
    "kv",
    "block",
    "16 tokens",
    "in",
    "step",
    "p90",
    "<",
    "ttft",
    "#c\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_only_gives_diagnostics(text):
    compile_or_diagnose(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup_only_gives_diagnostics(text):
    compile_or_diagnose(text)


SPEC_TEXTS = [p.read_text("utf-8") for p in SPECS]


@st.composite
def mutated_spec(draw):
    text = draw(st.sampled_from(SPEC_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = min(len(text), i + draw(st.integers(0, 12)))
        action = draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = draw(
            st.sampled_from(TOKENS + ["", "9", "-1", "0", "1e99", "1e999", "0.0001", "zz"])
        )
        if action == "delete":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + piece + text[i:]
        else:
            text = text[:i] + piece + text[j:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_spec())
def test_mutated_specs_only_give_diagnostics(text):
    compile_or_diagnose(text, str(Path(SPECS[0]).parent / "mutated.tsim"))
