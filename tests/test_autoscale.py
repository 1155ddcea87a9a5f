"""Autoscaling (``deployment { autoscale POOL { ... } }``): the serving fleet follows the
load, instances serve ``startup`` after they are started, stopped ones drain, and the GPUs
are paid for while held. Also the ``step`` arrival process that drives it."""

import numpy as np
import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.policies import PolicyUse
from tokensim.sim.run import simulate
from tokensim.workload.arrivals import arrival_times

HEAD = 'import "std/hardware"\nimport "std/models"\n'
RULES = (
    "min 1\n when queue > 2 for 5 s add 1\n when requests < 6 for 30 s remove 1\n"
    " cooldown 10 s\n startup 20 s\n"
)


def spec_text(rules: str = RULES, instances: int = 4, extra: str = "") -> str:
    scale = f" autoscale serve {{\n {rules} }}\n" if rules else ""
    return (
        HEAD
        + "cluster { node n { gpus H100_SXM x 4; link NVLINK4 } }\n"
        + "deployment {\n pool serve { model llama3_1_8b; cost roofline\n"
        + f"  instances {instances} }}\n"
        + scale
        + f" route by least_requests\n{extra}}}\n"
        + "workload { arrivals step 3/s { peak 40/s; at 60 s; lasting 120 s }\n"
        + " lengths fixed 1000 -> 200; duration 400 s; seed 3 }\n"
    )


@pytest.fixture(scope="module")
def scaled():
    result = simulate(lower(compile_text(spec_text())))
    return result, summarize(result)


def serving_at(fleet: np.ndarray, t: float) -> int:
    return int(fleet[fleet[:, 0] <= t][-1, 1])


def test_the_fleet_follows_a_load_step(scaled):
    result, m = scaled
    fleet = result.fleet["serve"]
    assert serving_at(fleet, 55) == 1  # before the step, the minimum
    assert serving_at(fleet, 170) >= 3  # during it, grown
    assert serving_at(fleet, fleet[-1, 0]) < serving_at(fleet, 170)  # after it, shrunk
    a = m["autoscale"]["serve"]
    assert a["starts"] >= 2 and a["stops"] >= 1 and a["peak_serving"] >= 3


def test_an_instance_serves_startup_after_it_is_started(scaled):
    result, _ = scaled
    fleet = result.fleet["serve"]
    t_start, _, k = next(a for a in result.scaling["serve"] if a[1] == "add")
    assert fleet[fleet[:, 0] == t_start][-1, 2] >= 1  # starting
    ready = np.flatnonzero(fleet[:, 0] == t_start + 20.0)
    assert len(ready) and fleet[ready[0], 1] == fleet[ready[0] - 1, 1] + 1  # serving 20 s on
    # nothing was routed to it before it served
    r = result.requests
    mine = r["instance"] == f"serve[{k}]"
    assert mine.any() and r["arrival_s"][mine].min() >= t_start + 20.0


def test_gpus_are_paid_for_while_held(scaled):
    result, m = scaled
    fixed = summarize(simulate(lower(compile_text(spec_text(rules="")))))
    a = m["autoscale"]["serve"]
    held = sum(i.up_s for i in result.instances) / 3600
    assert a["gpu_hours"] == pytest.approx(held)
    assert a["gpu_hours"] < 4 * result.simulated_s / 3600  # fewer than four all along
    assert m["energy"]["joules"] < fixed["energy"]["joules"]


def test_a_stopped_instance_finishes_what_it_holds(scaled):
    result, m = scaled
    assert m["requests"]["completed"] == m["requests"]["total"]
    stopped = {k for _, a, k in result.scaling["serve"] if a == "remove"}
    r = result.requests
    for k in stopped:
        stops = [t for t, a, kk in result.scaling["serve"] if a == "remove" and kk == k]
        mine = r["instance"] == f"serve[{k}]"
        # it took requests while it served; none arrived between its stop and a restart
        restarts = [t for t, a, kk in result.scaling["serve"] if a == "add" and kk == k]
        for t in stops:
            nxt = min([x for x in restarts if x > t], default=np.inf)
            assert not ((r["arrival_s"][mine] > t) & (r["arrival_s"][mine] < nxt)).any()


def test_the_autoscaler_is_a_vertex_of_the_dataflow():
    d = lower(compile_text(spec_text())).dataflow
    assert d.nodes["autoscaler:serve"]["kind"] == "autoscaler"
    assert sorted(d.successors("autoscaler:serve")) == [f"serve[{i}]" for i in range(4)]


def test_the_same_seed_scales_the_same_way(scaled):
    result, _ = scaled
    again = simulate(lower(compile_text(spec_text())))
    assert again.scaling == result.scaling


def test_step_arrivals_step():
    pol = PolicyUse(
        "arrivals", "step", (("rate", 5.0), ("peak", 40.0), ("at", 100.0), ("lasting", 200.0)), None
    )
    t = arrival_times(pol, None, 500.0, np.random.default_rng(0))
    rates = np.histogram(t, bins=[0, 100, 300, 500])[0] / np.array([100, 200, 200])
    assert rates[0] == pytest.approx(5, rel=0.25) and rates[1] == pytest.approx(40, rel=0.1)
    assert rates[2] == pytest.approx(5, rel=0.25)
    assert len(arrival_times(pol, 1234, None, np.random.default_rng(0))) == 1234


def test_autoscale_errors_are_located():
    text = errors_of(spec_text(rules=RULES + " max 6\n"))
    assert "`max 6` is more instances than pool `serve` has (4)" in text
    text = errors_of(spec_text(rules=RULES.replace(" startup 20 s\n", "")))
    assert "needs `startup`" in text
    text = errors_of(spec_text(rules=RULES.replace("queue > 2 for", "queue > 2 s for")))
    assert "`when`" in text or "threshold" in text
    text = errors_of(spec_text(rules=RULES.replace("queue > 2", "queues > 2")))
    assert "unknown scaling metric `queues`" in text
    text = errors_of(spec_text(rules=RULES + " initial 3\n min 4\n").replace("min 1\n", ""))
    assert "min <= initial <= max" in text
    text = errors_of(spec_text().replace("autoscale serve", "autoscale serv"))
    assert "unknown pool `serv`" in text


def test_a_floor_above_the_pools_instances_is_a_located_error():
    """Found by fuzzing: with `initial` not written, a floor above the pool's instances
    crashed the checker."""
    text = errors_of(spec_text(rules=RULES.replace("min 1", "min 6")))
    assert "`min 6` is more instances than pool `serve` has (4)" in text
    assert "--> test.tsim:" in text
