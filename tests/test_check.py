"""The checker on valid specs: defaults, placement, routes, model arithmetic."""

import pytest
from conftest import compile_text, errors_of

from tokensim.lang.check.catalog import count_params

LIB = """
link NVL { bandwidth 450 GB/s; latency 1 us }
link PCI { bandwidth 64 GB/s; latency 2 us }
gpu G { memory 80 GB; bandwidth 3 TB/s; host_link PCI
        compute { bf16 1000 TFLOPS; fp8 2000 TFLOPS } }
gpu H { memory 40 GB; bandwidth 2 TB/s; compute { bf16 300 TFLOPS }; host_link PCI }
model m { layers 32; hidden 4096; heads 32; kv_heads 8; ffn 14336; vocab 128256; max_context 8192 }
cluster { node n0 { gpus G x 8; link NVL }
          node n1 { gpus H x 4; link PCI } }
"""


def test_documented_defaults_are_filled():
    spec = compile_text(LIB + "deployment { pool p { model m } }")
    pool = spec.deployment.pools[0]
    assert (len(pool.instances), pool.tp, pool.pp, pool.role, pool.dtype) == (
        1,
        1,
        1,
        "colocated",
        "bf16",
    )
    # the default engine, vLLM V1, on a GPU of 70 GiB or more (80 GB) it gives its large
    # defaults, as vLLM decides by the memory the device reports
    assert pool.engine.name == "vllm_v1"
    assert pool.batching.name == "chunked"
    assert dict(pool.batching.params) == {
        "max_seqs": 1024,
        "budget": 8192,
        "chunk": True,
        "order": "fcfs",
    }
    kv = pool.kv
    assert (kv.block_tokens, kv.gpu_util, kv.preempt, kv.prefix_cache, kv.swap_B) == (
        16,
        0.9,
        "recompute",
        True,
        0,
    )
    assert kv.dtype == "bf16"
    assert [(r.pool, r.policy.name) for r in spec.deployment.routes] == [("p", "round_robin")]


def test_pools_take_gpus_in_order_without_overlap():
    spec = compile_text(
        LIB
        + """deployment {
      pool a { model m; instances 2; tp 2; on n0 }
      pool b { model m; instances 2; tp 2; on n0 }
      pool c { model m; instances 2; on n1[2..3] }
    }"""
    )
    a, b, c = spec.deployment.pools
    assert [str(g) for i in a.instances for g in i.gpus] == [f"n0/gpu{k}" for k in range(4)]
    assert [str(g) for i in b.instances for g in i.gpus] == [f"n0/gpu{k}" for k in range(4, 8)]
    assert [str(i.gpus[0]) for i in c.instances] == ["n1/gpu2", "n1/gpu3"]
    assert c.gpu.name == "H"


def test_weights_per_gpu():
    spec = compile_text(LIB + "deployment { pool p { model m fp8; tp 4; on n0 } }")
    pool = spec.deployment.pools[0]
    assert pool.weights_per_gpu_B == pytest.approx(pool.model.params / 4)


def test_param_count_of_llama3_8b_shapes():
    # Llama-3.1-8B's shapes give its published 8.03B parameters.
    assert count_params(32, 4096, 32, 8, 128, 14336, 128256, "gated", False, 1) == pytest.approx(
        8.03e9, rel=0.001
    )


def test_moe_active_params():
    spec = compile_text("""model moe { layers 32; hidden 4096; heads 32; kv_heads 8; ffn 14336;
        vocab 32000; max_context 32768; experts 8; top_k 2 }""")
    m = spec.models[0]
    assert m.params == pytest.approx(46.7e9, rel=0.01)  # Mixtral 8x7B
    assert m.active_params == pytest.approx(12.9e9, rel=0.01)


def test_kv_bytes_per_token_is_gqa_aware():
    spec = compile_text(LIB + "deployment { pool p { model m } }")
    m = spec.models[0]
    assert m.kv_bytes_per_token(2) == 2 * 32 * 8 * 128 * 2  # 128 KiB per token in bf16


def test_several_entry_pools_share_one_arrival_route():
    spec = compile_text(
        LIB
        + """deployment {
      pool a { model m; on n0 }
      pool b { model m; on n1 }
      route by least_requests
    }"""
    )
    assert [(r.pool, r.policy.name) for r in spec.deployment.routes] == [(None, "least_requests")]


def test_route_rule_is_compiled_with_its_fields():
    spec = compile_text(
        LIB
        + "deployment { pool p { model m }\n route p by max(kv_free - 0.1 * (queued + running)) }"
    )
    rule = spec.deployment.routes[0].policy
    assert rule.goal == "max"
    assert rule.text == "max(kv_free - 0.1 * (queued + running))"
    assert rule.fields == ("kv_free", "queued", "running")


def test_sweep_ranges_and_points():
    spec = compile_text(
        LIB
        + """deployment { pool p { model m } }
    workload { arrivals poisson 1/s; lengths fixed 10 -> 10; requests 10 }
    sweep { workload.arrivals.rate in 2/s .. 10/s step 2/s; deployment.p.tp in 1, 2 }"""
    )
    axes = spec.sweep.axes
    assert axes[0].values == (2, 4, 6, 8, 10)
    assert axes[0].texts == ("2/s", "4/s", "6/s", "8/s", "10/s")
    assert axes[1].values == (1, 2)
    assert spec.sweep.points == 10


def test_catalogue_only_file_checks():
    spec = compile_text(LIB.split("cluster")[0])
    assert spec.deployment is None and {g.name for g in spec.gpus} == {"G", "H"}


def test_errors_are_all_collected_across_blocks():
    text = errors_of(
        LIB
        + """deployment { pool p { model m; tp 3 } }
    workload { arrivals poisson 5 GB; lengths fixed 10 -> 10; requests 10 }
    slo { ttft p90 < 5 }"""
    )
    assert text.count("error:") == 3
    assert "tp 3 does not divide" in text
    assert "expected a rate" in text
    assert "missing unit: expected a time" in text


def test_sweep_ranges_of_plain_numbers_and_policy_names():
    spec = compile_text(
        LIB
        + """deployment { pool p { model m } }
    sweep { deployment.p.batching.max_seqs in 64 .. 256 step 64
            deployment.p.batching in static, chunked }"""
    )
    assert spec.sweep.axes[0].values == (64, 128, 192, 256)
    assert spec.sweep.axes[1].values == ("static", "chunked")


def test_policy_parameters_may_all_go_in_the_body():
    spec = compile_text(
        LIB
        + """deployment { pool p { model m } }
    workload { arrivals poisson { rate 12/s }; lengths fixed 1 -> 1; requests 1 }"""
    )
    assert spec.workload.arrivals.get("rate") == 12


def test_a_broken_definition_is_reported_once_not_at_every_use():
    text = errors_of(
        LIB.replace("model m {", "model m { bogus 1;") + "deployment { pool p { model m } }"
    )
    assert text.count("error:") == 1
    assert "unknown statement `bogus` in model `m`" in text


def test_ir_keeps_only_the_definitions_the_spec_uses():
    spec = compile_text(
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 1 } }\n"
        "deployment { pool p { model llama3_1_8b } }"
    )
    assert [g.name for g in spec.gpus] == ["H100_SXM"]
    assert [m.name for m in spec.models] == ["llama3_1_8b"]
    assert {link.name for link in spec.links} == {"PCIE5"}


def test_slo_percentiles_may_have_decimals():
    spec = compile_text(
        LIB + "deployment { pool p { model m } }\nslo { ttft p99.9 < 1 s; tpot p50 <= 20 ms }"
    )
    assert [(t.metric, t.stat, t.op, t.limit_s) for t in spec.slo.targets] == [
        ("ttft", "p99.9", "<", 1.0),
        ("tpot", "p50", "<=", 0.02),
    ]


def test_swept_model_names_are_checked_and_kept_in_the_ir():
    base = (
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 1 } }\n"
        "deployment { pool p { model llama3_1_8b } }\n"
    )
    spec = compile_text(base + "sweep { deployment.p.model in llama3_1_8b, qwen2_5_7b }")
    assert {m.name for m in spec.models} == {"llama3_1_8b", "qwen2_5_7b"}
    assert "unknown model `qwen9`" in errors_of(base + "sweep { deployment.p.model in qwen9 }")


def test_a_range_with_units_needs_a_step_with_a_unit():
    text = errors_of(
        LIB + "deployment { pool p { model m } }\n"
        "sweep { deployment.p.kv.gpu_util in 80% .. 95% step 5 }"
    )
    assert "the step needs a unit, like the range (`%`)" in text and "write `step 5%`" in text


def test_a_node_with_a_broken_gpu_does_not_cascade_into_the_deployment():
    text = errors_of(
        LIB.replace("gpu G {", "gpu G { bogus 1;") + "deployment { pool p { model m; on n0 } }"
    )
    assert text.count("error:") == 1 and "unknown statement `bogus` in gpu `G`" in text


@pytest.mark.parametrize(
    "path, value, why",
    [
        ("cluster.n0.nics", "2", None),
        ("deployment.p.kv.block", "32", None),
        ("deployment.p", "2", "`deployment.p` is a block"),
        ("deployment.p.batching.budget", "2", "has no parameter `budget`"),
        ("deployment.q.tp", "2", "has no `q`"),
    ],
)
def test_sweep_paths(tmp_path, path, value, why):
    text = LIB + f"deployment {{ pool p {{ model m }} }}\nsweep {{ {path} in {value} }}"
    if why is None:
        assert compile_text(text).sweep.axes[0].path == path
    else:
        assert why in errors_of(text)


def test_sweep_into_a_statement_body(tmp_path):
    (tmp_path / "t.csv").write_text("")
    spec = compile_text(
        LIB + "deployment { pool p { model m } }\n"
        'workload { trace "t.csv" { time_scale 2 } }\n'
        "sweep { workload.trace.time_scale in 0.5, 1 }",
        str(tmp_path / "s.tsim"),
    )
    assert spec.sweep.axes[0].values == (0.5, 1)


def test_the_kv_cache_of_8_bit_weights_stays_16_bit_unless_asked():
    # vLLM's `--kv-cache-dtype auto`: an fp8 checkpoint keeps a 16-bit cache
    spec = compile_text(LIB + "deployment { pool a { model m fp8 }\n pool b { model m fp8; "
                        "kv { dtype fp8 } }\n pool c { model m } }")  # fmt: skip
    a, b, c = spec.deployment.pools
    assert (a.kv.dtype, b.kv.dtype, c.kv.dtype) == ("bf16", "fp8", "bf16")
