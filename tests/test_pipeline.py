"""Pipeline parallelism with micro-batches: a pp instance keeps up to pp batches in flight
(vLLM's virtual engines), each a dataflow vertex of its own on the instance's GPUs."""

import pytest
from conftest import compile_text, errors_of

from tokensim.graph import lower
from tokensim.metrics import summarize
from tokensim.policies.memory import kv_geometry
from tokensim.sim.run import simulate

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def spec_text(pool: str, workload: str = "") -> str:
    return (
        HEAD
        + "cluster { node n { gpus H100_SXM x 4; link NVLINK4 } }\n"
        + f"deployment {{ pool p {{ model llama3_1_8b; cost roofline\n {pool} }} }}\n"
        + (workload or "workload { arrivals burst; lengths fixed 500 -> 100; requests 600 }")
        + "\n"
    )


def throughput(pool: str) -> float:
    result = simulate(lower(compile_text(spec_text(pool))))
    return summarize(result)["throughput"]["requests_per_s"]


def test_a_pipelined_instance_is_one_vertex_per_batch_in_flight():
    graph = lower(compile_text(spec_text("pp 2")))
    vertices = [n for n, d in graph.dataflow.nodes(data=True) if d["kind"] == "instance"]
    assert vertices == ["p[0].v0", "p[0].v1"]
    gpus = {graph.dataflow.nodes[v]["gpus"] for v in vertices}
    assert gpus == {("n/gpu0", "n/gpu1")}
    assert {d["index"] for _, d in graph.dataflow.nodes(data=True) if "index" in d} == {0}
    flat = lower(compile_text(spec_text("pp 2\n microbatches 1")))
    assert [n for n, d in flat.dataflow.nodes(data=True) if d["kind"] == "instance"] == ["p[0]"]


def test_pp_2_raises_a_saturated_bursts_throughput_over_pp_1():
    one, two = throughput("pp 1"), throughput("pp 2")
    assert two > 1.6 * one
    # without micro-batches the stages take turns: no faster than one GPU
    assert throughput("pp 2\n microbatches 1") < 1.1 * one


def test_the_batches_in_flight_share_the_kv_cache_and_the_running_limit():
    spec = compile_text(spec_text("pp 2\n batching continuous { max_seqs 8 }"))
    result = simulate(lower(spec))
    blocks = kv_geometry(spec.deployment.pools[0]).blocks
    assert [i.kv_capacity_blocks for i in result.instances] == [blocks // 2] * 2
    assert [int(i.series[:, 1].max()) for i in result.instances] == [4, 4]


def test_the_batches_overlap_in_time():
    """Both batches in flight at once: their iterations' intervals intersect."""
    result = simulate(lower(compile_text(spec_text("pp 2"))))
    a, b = (i.work[:, :2] for i in result.instances)
    overlap = sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a[:50] for s2, e2 in b[:50])
    assert overlap > 0.5 * sum(e - s for s, e in a[:50])


def test_more_microbatches_than_stages_is_an_error():
    text = errors_of(spec_text("pp 2\n microbatches 3"))
    assert "microbatches 3 exceeds pp 2" in text
    assert "--> test.tsim:6:2" in text


@pytest.mark.parametrize("pp", [2, 4])
def test_every_request_finishes_once(pp):
    result = simulate(lower(compile_text(spec_text(f"pp {pp}"))))
    assert summarize(result)["requests"]["completed"] == 600
