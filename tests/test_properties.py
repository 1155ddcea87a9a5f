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


# -- the request state machine over random runs ------------------------------------------


@st.composite
def serving_spec(draw) -> str:
    """A small deployment with random batching, memory pressure, preemption and layout."""
    batching = draw(
        st.sampled_from(
            [
                "continuous { max_seqs 16 }",
                "chunked { budget 512 tokens; max_seqs 32 }",
                "static { max_seqs 8 }",
            ]
        )
    )
    preempt = draw(st.sampled_from(["recompute", "swap; swap 8 GB"]))
    util = draw(st.sampled_from(["0.21", "0.22", "0.25", "0.9"]))
    prompt, output = draw(st.integers(16, 6000)), draw(st.integers(1, 600))
    rate = draw(st.sampled_from(["2/s", "20/s", "200/s"]))
    prefix = draw(st.sampled_from(["on", "off"]))
    kv = f"kv {{ gpu_util {util}; preempt {preempt}; prefix_cache {prefix} }}"
    if draw(st.booleans()):  # prefill/decode disaggregation
        pools = (
            f"pool p {{ model llama3_1_8b; on n0[0]; role prefill; batching {batching} }}\n"
            f"pool d {{ model llama3_1_8b; on n0[1]; role decode; {kv} }}\n"
            "transfer p -> d\n"
        )
    else:
        pools = f"pool s {{ model llama3_1_8b; instances 2; batching {batching}; {kv} }}\n"
    return (
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 2; link NVLINK4 } }\n"
        f"deployment {{\n{pools}}}\n"
        f"workload {{ arrivals poisson {rate}; lengths fixed {prompt} -> {output}; "
        f"requests 40; seed {draw(st.integers(0, 1000))} }}\n"
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(serving_spec())
def test_every_request_moves_only_as_its_state_machine_allows(text):
    """Every transition of every request is checked against MACHINE as it happens (an
    illegal one raises TransitionError); every request ends DONE."""
    from tokensim.sim.request import State
    from tokensim.sim.run import Simulation

    try:
        spec = check(parse(text, "random.tsim", SourceMap()))
    except CompileError:
        return  # a combination the language refuses (the model does not fit, ...)
    sim = Simulation(lower(spec), transitions=True)
    done = []  # every request as it is let go
    finished = sim.finished
    sim.finished = lambda req: (done.append(req), finished(req))
    result = sim.run()
    assert done and len(done) == len(result.requests["id"])
    assert sorted(r.id for r in done) == list(range(len(done)))  # each once
    assert all(r.state is State.DONE for r in done)
    assert all(r.log[-1][1] in ("finished", "rejected") for r in done)
    assert all(not inst.busy for inst in sim.instances)  # every instance ends idle


def test_an_illegal_transition_is_a_bug_report():
    from tokensim.sim.machine import TransitionError
    from tokensim.sim.request import Request, State

    req = Request(7, 0.0, 100, 10)
    req.move("queue", 0.5)
    assert req.state is State.QUEUED
    try:
        req.move("finish", 1.25)
    except TransitionError as err:
        assert "request 7 at t = 1.25 s: `finish` from QUEUED" in str(err)
        assert "admit, cancel, fail, reject" in str(err)
    else:
        raise AssertionError("QUEUED -> finish was allowed")


def test_an_instance_moves_only_as_its_machine_allows():
    from tokensim.sim.instance import MACHINE, Phase
    from tokensim.sim.machine import TransitionError, step

    assert step(MACHINE, Phase.IDLE, "iterate", "instance p[0]", 0.0) is Phase.ITERATION
    for state, event in (
        (Phase.IDLE, "end"),
        (Phase.ITERATION, "iterate"),
        (Phase.ITERATION, "cut"),
    ):
        try:
            step(MACHINE, state, event, "instance p[0]", 2.5)
        except TransitionError as err:
            assert f"instance p[0] at t = 2.5 s: `{event}` from {state.name}" in str(err)
        else:
            raise AssertionError(f"{state.name} -> {event} was allowed")
