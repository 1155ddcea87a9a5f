"""Fault scenarios (``faults { at T gpu|node|link ... }``): instances that fail lose what
they hold, which is sent again or lost; drained ones finish their own; degraded links slow
the KV copies over them; each fault is a vertex of the dataflow."""

import numpy as np
import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.sim.run import simulate

HEAD = 'import "std/hardware"\nimport "std/models"\n'
DISAGG = (
    "cluster {\n node n0 { gpus H100_SXM x 2; link NVLINK4; nics 2 }\n"
    " node n1 { gpus H100_SXM x 2; link NVLINK4; nics 2 }\n network IB_200G between n0, n1\n}\n"
    "deployment {\n pool pre { model llama3_1_8b; cost roofline; role prefill; instances 2\n"
    "  on n0 }\n"
    " pool dec { model llama3_1_8b; cost roofline; role decode; instances 2; on n1\n"
    "  kv { gpu_util 0.4 } }\n transfer pre -> dec\n}\n"
)
ONE_NODE = (
    "cluster { node n0 { gpus H100_SXM x 4; link NVLINK4 } }\n"
    "deployment { pool serve { model llama3_1_8b; cost roofline; instances 4 }\n"
    " route by least_requests }\n"
)


def spec_text(faults: str, cluster: str = ONE_NODE, rate: str = "40/s", extra: str = "") -> str:
    duration = "120 s" if cluster is DISAGG else "240 s"
    return (
        HEAD
        + cluster
        + f"workload {{ arrivals poisson {rate}; lengths fixed 1000 -> 300; duration {duration}\n"
        + f" seed 4 {extra}}}\n"
        + f"faults {{\n{faults}\n}}\n"
    )


def run(faults: str, **kw):
    result = simulate(lower(compile_text(spec_text(faults, **kw))))
    return result, summarize(result)


@pytest.fixture(scope="module")
def outage():
    return run("at 60 s gpu n0[1] down\n at 150 s gpu n0[1] up")


def test_a_gpu_loss_shows_the_dip_and_recovery(outage):
    result, m = outage
    r = result.requests
    assert m["requests"]["completed"] == m["requests"]["total"]  # re-sent, none lost
    down, up = m["faults"]
    assert down["instances"] == ["serve[1]"] and down["requests"] > 0
    # the requests it held were sent again: each counts a preemption
    assert (r["preemptions"] > 0).sum() == down["requests"]
    # nothing was routed to it while it was down
    mine = (r["instance"] == "serve[1]") & (r["arrival_s"] > 60) & (r["arrival_s"] < 150)
    assert not mine.any()
    # it serves again once up
    assert ((r["instance"] == "serve[1]") & (r["arrival_s"] > 150)).any()
    # the dip: a second's completions right after the loss fall below the run's rate
    done = r["finish_s"][~r["rejected"]]
    rate = np.histogram(done, bins=np.arange(0, 240, 1.0))[0]
    assert rate[60:63].min() < 0.6 * np.median(rate[10:60])
    # the SLO impact: TTFT worse while it is down, better again once it is up
    assert down["ttft_p90_during_s"] > down["ttft_p90_before_s"]
    assert down["ttft_p90_after_s"] < down["ttft_p90_during_s"]
    assert down["ttft_p90_worst_s"] >= down["ttft_p90_during_s"]
    assert "ttft_p90_before_s" not in up


def test_requests_held_are_lost_by_policy():
    _, m = run("at 60 s gpu n0[1] down\n on_failure lose")
    (f,) = m["faults"]
    assert m["requests"]["lost"] == f["requests"] > 0
    assert m["requests"]["completed"] + m["requests"]["lost"] == m["requests"]["total"]


def test_a_drained_node_finishes_its_own_and_takes_nothing_new():
    result, m = run("at 60 s node n0 drain", rate="10/s")
    r = result.requests
    late = r["arrival_s"] > 60
    assert r["rejected"][late].all() and not r["rejected"][~late].any()
    assert m["faults"][0]["requests"] == 0  # nothing was lost: they finished


def test_failures_on_both_ends_of_kv_copies_keep_every_invariant(monkeypatch):
    monkeypatch.setenv("TOKENSIM_CHECK", "1")
    faults = (
        "at 30 s gpu n1[0] down\n at 45 s gpu n0[1] down\n at 70 s gpu n0[1] up\n"
        " at 80 s gpu n1[0] up\n at 100 s node n1 down\n at 110 s node n1 up"
    )
    result, m = run(faults, cluster=DISAGG, rate="20/s")
    held = sum(f["requests"] for f in m["faults"])
    assert held > 0
    # all served but those prefilled while no decode instance was up (100 s to 110 s)
    r = result.requests
    assert m["requests"]["rejected_why"] == [
        "no decode instance could take it: every one had failed or stopped"
    ]
    assert (r["handoff_s"][r["rejected"]] >= 100).all()


def test_a_degraded_link_slows_the_kv_copies_over_it():
    base = "at 1 s link n0 100%"
    _, fast = run(base, cluster=DISAGG, rate="20/s")
    _, slow = run("at 1 s link n0 5%", cluster=DISAGG, rate="20/s")
    assert (
        slow["pools"]["dec"]["transfer_s"]["mean"] > 5 * fast["pools"]["dec"]["transfer_s"]["mean"]
    )


def test_with_every_instance_down_requests_are_rejected():
    result, m = run("at 60 s node n0 down", rate="10/s")
    r = result.requests
    assert r["rejected"][r["arrival_s"] > 60].all()
    assert any("every one had failed" in why for why in m["requests"]["rejected_why"])


def test_faults_are_vertices_of_the_dataflow():
    d = lower(compile_text(spec_text("at 60 s gpu n0[1..2] down\n at 90 s node n0 drain"))).dataflow
    assert sorted(d.successors("fault:0")) == ["serve[1]", "serve[2]"]
    assert d.nodes["fault:0"]["event"] == "gpu n0[1..2] down"
    assert len(list(d.successors("fault:1"))) == 4


def test_fault_errors_are_located():
    text = errors_of(spec_text("at 60 s gpu n0[7] down"))
    assert "node `n0` has GPUs 0..3, not 7" in text and "--> test.tsim:" in text
    text = errors_of(spec_text("at 60 s node n9 down"))
    assert "unknown node `n9`" in text
    text = errors_of(spec_text("at 60 s link n0 50%"))
    assert "is on no network" in text
    text = errors_of(spec_text("at 60 s gpu n0[1] sideways"))
    assert "unknown GPU fault `sideways`" in text
    text = errors_of(spec_text("at 60 s link n0 0%", cluster=DISAGG))
    assert "0%" in text
    text = errors_of(spec_text("at 60 s rack n0 down"))
    assert "unknown fault target `rack`" in text


def test_a_repair_after_the_last_arrival_counts_as_none():
    """Found by fuzzing: a repair at an absurd time made the impact's bins overflow."""
    _, m = run("at 60 s gpu n0[1] down\n at 1e15 s gpu n0[1] up")
    (down,) = m["faults"]  # the repair never happened within the run
    assert down["ttft_p90_after_s"] is None and down["ttft_p90_during_s"] is not None
