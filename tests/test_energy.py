"""Energy: GPU draws from idle, memory-bound and compute-bound work, over a run."""

import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.sim.run import simulate

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def run(gpu="H100_SXM", workload="arrivals poisson 4/s; lengths chat; requests 300", extra=""):
    text = (
        HEAD
        + extra
        + f"cluster {{ node n0 {{ gpus {gpu} x 1 }} }}\n"
        + "deployment { pool serve { model llama3_1_8b; cost roofline } }\n"
        + f"workload {{ {workload}; seed 2 }}\n"
    )
    return summarize(simulate(lower(compile_text(text))))


def test_energy_per_token_falls_as_the_batch_grows():
    """More requests at once: each step decodes more tokens for about the same draw."""
    light = run(workload="arrivals poisson 1/s; lengths chat; requests 200")["energy"]
    heavy = run(workload="arrivals poisson 30/s; lengths chat; requests 2000")["energy"]
    assert heavy["joules_per_output_token"] < light["joules_per_output_token"] / 3
    assert light["average_power_W"] < heavy["average_power_W"] <= 700


def test_a_run_that_mostly_waits_draws_about_the_idle_power():
    """One short request, then nothing: the GPU idles at 121.7 W (H100 SXM)."""
    m = run(workload="arrivals poisson 0.01/s; lengths fixed 100 -> 2; requests 3")
    power = m["energy"]
    assert 121.7 <= power["average_power_W"] < 125
    assert power["joules"] == pytest.approx(power["average_power_W"] * m["sim"]["simulated_s"])


def test_busy_draw_lies_between_memory_bound_and_board_power():
    pool = run(workload="arrivals burst; lengths fixed 4000 -> 50; requests 200")["energy"]
    busy = pool["pools"]["serve"]["gpu_busy_power_W"]
    assert 380 < busy <= 700  # long prompts: near the board power
    decode = run(workload="arrivals poisson 1/s; lengths fixed 20 -> 500; requests 20")["energy"]
    assert 380 <= decode["pools"]["serve"]["gpu_busy_power_W"] < busy  # decode: memory bound


def test_a_gpu_without_power_draws_says_so_and_prints_nothing():
    m = run(gpu="H200")
    assert m["energy"] == {
        "missing": "H200 (pool serve) has no `power { idle; memory_bound }` in its catalogue entry"
    }
    derived = run(gpu="mine", extra="gpu mine from H100_SXM { price 1 $/h }\n")["energy"]
    assert derived["joules"] > 0  # the draws come with the base


def test_power_draws_must_rise_from_idle_to_the_board_power():
    text = HEAD + "gpu hot from H100_SXM { power 300 W { idle 50 W; memory_bound 380 W } }\n"
    out = errors_of(text)
    assert "power draws must rise from idle (50 W) to memory-bound (380 W)" in out
    assert "test.tsim:3:" in out
