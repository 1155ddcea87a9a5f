"""Multi-turn conversations (``workload { sessions { ... } }``): turns sent after the
answer before them, prompts that carry the conversation so far, and the prefix reuse that
follows."""

import numpy as np
import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.sim.run import simulate
from tokensim.workload import generate

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def spec_text(workload: str, kv: str = "prefix_cache on", pool: str = "") -> str:
    return (
        HEAD
        + "cluster { node n { gpus H100_SXM x 2; link NVLINK4 } }\n"
        + "deployment { pool p { model llama3_1_8b; cost roofline\n"
        + f" kv {{ {kv} }}\n{pool} }} }}\n"
        + f"workload {{\n{workload}\n}}\n"
    )


CHAT = "arrivals poisson 2/s\nlengths fixed 300 -> 50\nsessions { turns 4; think 2 s }\nrequests 40"


def run(workload: str = CHAT, kv: str = "prefix_cache on", pool: str = ""):
    result = simulate(lower(compile_text(spec_text(workload, kv, pool))))
    return result, summarize(result)


def test_a_turns_prompt_is_the_conversation_so_far():
    spec = compile_text(spec_text("arrivals poisson 1/s\nlengths uniform 10..90 -> 5..60\n"
                                  "sessions { turns 3 }\nrequests 10"))  # fmt: skip
    work = generate(spec.workload, ".", np.random.default_rng(0))
    assert work.session.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]  # the last one cut short
    p, o = work.prompt_tokens, work.output_tokens
    for first in (0, 3, 6):
        new1 = p[first + 1] - p[first] - o[first]
        new2 = p[first + 2] - p[first + 1] - o[first + 1]
        assert 10 <= new1 <= 90 and 10 <= new2 <= 90  # each turn adds its own new tokens
    assert work.first_turns.tolist() == [0, 3, 6, 9]
    assert (work.think_s[work.first_turns] == 0).all()
    assert len(set(work.arrival_s[:3])) == 1  # a conversation's turns share its start


def test_a_turn_is_sent_think_after_the_answer_before_it():
    workload = CHAT.replace("think 2 s", "think 2 s; think_dist constant")
    result, _ = run(workload)
    r = result.requests
    for i in range(len(r["id"]) - 1):
        if r["session"][i + 1] == r["session"][i]:
            assert r["arrival_s"][i + 1] == pytest.approx(r["finish_s"][i] + 2.0)
    assert r["turn"].tolist()[:5] == [0, 1, 2, 3, 0]


def test_later_turns_reuse_their_history_through_the_prefix_cache():
    _, on = run()
    _, off = run(kv="prefix_cache off")
    later = on["sessions"]["later_turns"]
    assert later["cached_share"] > 0.6  # the earlier prompts and their answers' full blocks
    assert on["sessions"]["first_turns"]["cached_share"] == 0
    assert off["requests"]["cached_prompt_tokens"] == 0
    assert later["ttft_s"]["mean"] < off["sessions"]["later_turns"]["ttft_s"]["mean"]


def test_the_answer_is_cached_for_the_next_turn():
    """A turn hits its earlier prompt and its answer's full blocks: with 16-token blocks, a
    300-token prompt and a 50-token answer (349 tokens computed) leave 21 full blocks."""
    result, _ = run(CHAT.replace("poisson 2/s", "poisson 0.01/s"))
    r = result.requests
    second = np.flatnonzero(r["turn"] == 1)[0]
    assert r["cached_tokens"][second] == 21 * 16


def test_closed_clients_run_one_conversation_after_another():
    result, m = run("arrivals closed 2\nlengths fixed 200 -> 20\nsessions { turns 3 }\n"
                    "requests 12")  # fmt: skip
    r = result.requests
    assert m["requests"]["completed"] == 12
    # never more than two conversations in flight at once
    for t in r["arrival_s"]:
        live = (r["arrival_s"] <= t) & (r["finish_s"] > t)
        assert len(set(r["session"][live].tolist())) <= 2


def test_sessions_appear_in_requests_csv(tmp_path):
    from tokensim.report.files import write_requests

    result, _ = run()
    with open(tmp_path / "r.csv", "w") as f:
        write_requests(result, f)
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["session", "turn"]


def test_the_same_seed_gives_the_same_conversations():
    a, _ = run()
    b, _ = run()
    assert a.requests["arrival_s"].tolist() == b.requests["arrival_s"].tolist()


def test_sessions_need_lengths_and_turns():
    text = errors_of(spec_text('trace "x.csv"\nsessions { turns 3 }'))
    assert "not found" in text or "`sessions` draw each turn" in text
    text = errors_of(spec_text("arrivals poisson 1/s\nlengths chat\nsessions { think 1 s }\n"
                               "requests 5"))  # fmt: skip
    assert "turns" in text
    text = errors_of(spec_text("arrivals poisson 1/s\nlengths chat\nsessions\nrequests 5"))
    assert "sessions" in text


def test_sessions_without_lengths_is_a_located_error(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,10,5\n")
    text = errors_of(spec_text(f'trace "{trace}"\nsessions {{ turns 3 }}'))
    assert "`sessions` draw each turn's new prompt tokens" in text
    assert "--> test.tsim:9:1" in text


CONV_TRACE = """arrival_s,prompt_tokens,output_tokens,session,think_s
0,300,40,7,
0.5,200,30,9,
1.0,700,50,7,3.0
2.0,100,10,,
3.0,900,20,9,1.5
"""


def trace_spec(tmp_path, extra: str = "") -> str:
    (tmp_path / "conv.csv").write_text(CONV_TRACE)
    return spec_text(f'trace "{tmp_path / "conv.csv"}"\n{extra}')


def test_a_trace_with_session_ids_replays_its_conversations(tmp_path):
    result = simulate(lower(compile_text(trace_spec(tmp_path))))
    r = result.requests
    # conversations in order of their first line; a line without a session stands alone
    assert r["session"].tolist() == [0, 0, 1, 1, 2]
    assert r["prompt_tokens"].tolist() == [300, 700, 200, 900, 100]
    # the second turn is sent its think_s after the first one's answer, not at its line's time
    assert r["arrival_s"][1] == pytest.approx(r["finish_s"][0] + 3.0)
    assert r["arrival_s"][3] == pytest.approx(r["finish_s"][2] + 1.5)
    assert r["cached_tokens"][1] == 21 * 16  # 339 tokens of its history computed


def test_time_scale_stretches_think_times(tmp_path):
    text = trace_spec(tmp_path).replace('conv.csv"', 'conv.csv" { time_scale 2 }')
    r = simulate(lower(compile_text(text))).requests
    assert r["arrival_s"][2] == 1.0  # the second conversation's start, scaled
    assert r["arrival_s"][1] == pytest.approx(r["finish_s"][0] + 6.0)


def test_a_conversation_trace_round_trips(tmp_path):
    from tokensim.workload import read_trace, write_trace

    (tmp_path / "conv.csv").write_text(CONV_TRACE)
    trace = read_trace(tmp_path / "conv.csv", "auto")
    for name in ("again.csv", "again.jsonl"):
        write_trace(trace, tmp_path / name)
        back = read_trace(tmp_path / name, "auto")
        assert back.session.tolist() == trace.session.tolist()
        assert back.think_s.tolist() == trace.think_s.tolist()
        assert back.prompt_tokens.tolist() == trace.prompt_tokens.tolist()


def test_a_conversation_trace_keeps_its_own_turns(tmp_path):
    from tokensim.lang.diagnostics import CompileError

    for extra, key in (("lengths chat", "lengths"), ("arrivals poisson 1/s", "arrivals")):
        with pytest.raises(CompileError) as info:  # found when the trace is read
            simulate(lower(compile_text(trace_spec(tmp_path, extra))))
        text = str(info.value)
        assert "gives conversations" in text and f"`{key}` cannot replace them" in text
        assert "--> test.tsim:9:" in text
