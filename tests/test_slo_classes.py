"""Request classes (``workload { class NAME { ... } }``): shares, priority and deadline
order, client timeouts that cancel a request wherever it is, admission control, and SLO
targets per class."""

import numpy as np
import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.sim.queue import WaitQueue
from tokensim.sim.request import Request
from tokensim.sim.run import simulate
from tokensim.workload import generate

HEAD = 'import "std/hardware"\nimport "std/models"\n'
CLASSES = (
    "class chat { share 0.75; priority 0; deadline 300 ms }\n"
    "class batch { share 0.25; priority 1; lengths fixed 3000 -> 300 }\n"
)


def spec_text(order="fcfs", classes=CLASSES, rate="14/s", slo="", extra="", pool="") -> str:
    return (
        HEAD
        + "cluster { node n { gpus H100_SXM x 1 } }\n"
        + "deployment { pool p { model llama3_1_8b; cost roofline\n"
        + f" batching chunked {{ order {order} }}\n{pool} }} }}\n"
        + f"workload {{ arrivals poisson {rate}; lengths fixed 300 -> 100; requests 1500\n"
        + f"{classes}{extra} seed 2 }}\n"
        + slo
    )


def run(**kw):
    result = simulate(lower(compile_text(spec_text(**kw))))
    return result, summarize(result)


def test_requests_are_drawn_into_classes_by_share():
    spec = compile_text(spec_text())
    work = generate(spec.workload, ".", np.random.default_rng(0))
    batch = work.klass == 1
    assert 0.2 < batch.mean() < 0.3
    assert (work.prompt_tokens[batch] == 3000).all() and (work.prompt_tokens[~batch] == 300).all()


def test_without_classes_nothing_is_drawn():
    """Specs without classes draw exactly as before: the same requests."""
    a = generate(compile_text(spec_text(classes="")).workload, ".", np.random.default_rng(0))
    assert a.klass is None


@pytest.mark.parametrize("order", ["priority", "deadline"])
def test_an_urgent_class_keeps_its_slo_while_the_batch_class_pays(order):
    slo = "slo { class chat { ttft p90 < 1 s } }\n"
    _, fcfs = run(slo=slo, rate="24/s")  # past what one GPU carries: a queue builds
    _, urgent = run(order=order, slo=slo, rate="24/s")
    chat, batch = urgent["classes"]["chat"], urgent["classes"]["batch"]
    assert not fcfs["slo"]["met"] and urgent["slo"]["met"]
    assert chat["ttft_s"]["p90"] < 0.5 * fcfs["classes"]["chat"]["ttft_s"]["p90"]
    assert batch["ttft_s"]["p90"] > fcfs["classes"]["batch"]["ttft_s"]["p90"]


def test_deadline_order_admits_the_earliest_due_first():
    q = WaitQueue("deadline")
    reqs = [Request(i, 0.0, 10, 5) for i in range(3)]
    for r, due in zip(reqs, (5.0, 1.0, float("inf")), strict=True):
        r.deadline_s = due
        q.push(r)
    assert [q.pop().id for _ in range(3)] == [1, 0, 2]


def test_a_timeout_cancels_requests_wherever_they_are():
    classes = CLASSES.replace("deadline 300 ms }", "deadline 300 ms; timeout 4 s }")
    result, m = run(classes=classes, rate="30/s")
    r = result.requests
    chat = r["class"] == "chat"
    assert m["classes"]["chat"]["timed_out"] > 0 and m["classes"]["batch"]["timed_out"] == 0
    served = chat & ~r["rejected"]
    assert (r["finish_s"][served] - r["arrival_s"][served]).max() <= 4.0 + 1e-9
    # cancelled while they waited, and after their first token (mid-decode, KV freed)
    cancelled = chat & r["rejected"]
    assert (r["first_token_s"][cancelled] > 0).any() and (r["first_token_s"][cancelled] < 0).any()
    assert m["requests"]["timed_out"] == m["classes"]["chat"]["timed_out"]


def test_timeouts_keep_every_invariant(monkeypatch):
    """Cancellations in every state (front end, queue, prefill, decode, swapped, KV on its
    way) under the simulator's own invariant checks, and every request accounted for."""
    from tokensim.sim import instance

    monkeypatch.setenv("TOKENSIM_CHECK", "1")
    states = []
    cancel = instance.Instance.cancel
    monkeypatch.setattr(
        instance.Instance,
        "cancel",
        lambda i, r, why: states.append(r.state.name) or cancel(i, r, why),
    )
    classes = (
        "class a { share 0.25; timeout 20 ms }\nclass b { share 0.25; timeout 300 ms }\n"
        "class c { share 0.25; timeout 1 s; lengths fixed 4000 -> 100 }\n"
        "class d { share 0.25; timeout 20 s; lengths fixed 2000 -> 1500 }\n"
    )
    text = (
        HEAD
        + "cluster { node n { gpus H100_SXM x 4; link NVLINK4 } }\n"
        + "deployment {\n pool pre { model llama3_1_8b; cost roofline; role prefill }\n"
        + " pool dec { model llama3_1_8b; cost roofline; role decode; instances 2\n"
        + "  kv { gpu_util 0.22; preempt swap; swap 4 GB } }\n transfer pre -> dec\n}\n"
        + "workload { arrivals poisson 40/s; lengths fixed 500 -> 300; requests 800\n"
        + f"{classes} }}\n"
    )
    m = summarize(simulate(lower(compile_text(text))))
    assert {"ARRIVED", "QUEUED", "PREFILL", "DECODE", "TRANSFER"} <= set(states)
    assert m["requests"]["timed_out"] == len(states)
    assert m["requests"]["completed"] + m["requests"]["rejected"] == 800


def test_max_queue_sheds_on_arrival():
    classes = CLASSES.replace(
        "lengths fixed 3000 -> 300 }", "lengths fixed 3000 -> 300; max_queue 2 }"
    )
    _, m = run(classes=classes, rate="40/s")
    assert m["classes"]["batch"]["shed"] > 0 and m["classes"]["chat"]["shed"] == 0
    assert m["requests"]["shed"] == m["classes"]["batch"]["shed"]


def test_a_class_target_holds_for_its_class_only():
    slo = "slo { class batch { ttft p99 < 1 ms } }\n"
    result, m = run(slo=slo)
    (target,) = m["slo"]["targets"]
    assert target["class"] == "batch" and not target["met"]
    # every chat request is good (no target holds for it), no batch request is
    chat = m["classes"]["chat"]
    assert chat["attainment"] == 1.0 and m["classes"]["batch"]["attainment"] == 0.0


def test_requests_csv_names_each_requests_class(tmp_path):
    from tokensim.report.files import write_requests

    result, _ = run()
    with open(tmp_path / "r.csv", "w") as f:
        write_requests(result, f)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].endswith(",class") and lines[1].split(",")[-1] in ("chat", "batch")


def test_class_errors_are_located():
    text = errors_of(spec_text(classes="class a { share 0.5 }\nclass b { share 0.3 }\n"))
    assert "the classes' shares add up to 0.8, not 1" in text and "--> test.tsim:8:" in text
    text = errors_of(spec_text(classes="class a { share 0.5 }\nclass a { share 0.5 }\n"))
    assert "class `a` is defined twice" in text
    text = errors_of(spec_text(classes="class a { priority 1 }\n"))
    assert "share" in text
    text = errors_of(spec_text(slo="slo { class chatt { ttft p90 < 1 s } }\n"))
    assert "the workload has no class `chatt`" in text and "chat" in text
    text = errors_of(spec_text(classes="class a { share 1; timeout 5 tokens }\n"))
    assert "timeout" in text
