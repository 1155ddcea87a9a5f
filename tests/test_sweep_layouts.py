"""Sweeping and setting what is more than one value: whole statements with their parameters
(`in { ... }`), whole blocks such as the deployment (layouts), routes, networks, and paths
with `*`."""

import json

import pytest
from conftest import compile_text, errors_of
from conftest import tokensim_cli as tokensim

from tokensim.explore.sweep import compiled, points
from tokensim.lang.check import check
from tokensim.lang.diagnostics import CompileError
from tokensim.lang.override import override, paths
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap

HEAD = 'import "std/hardware"\nimport "std/models"\n'
CLUSTER = """cluster {
  node n0 { gpus H100_SXM x 2; link NVLINK4 }
  node n1 { gpus H100_SXM x 2; link NVLINK4 }
  network IB_400G between n0, n1
}
"""
DEPLOYMENT = "deployment { pool p { model llama3_1_8b; instances 4 } }\n"
WORKLOAD = "workload { arrivals poisson 8/s; lengths fixed 300 -> 20; requests 40 }\n"
SPEC = HEAD + CLUSTER + DEPLOYMENT + WORKLOAD

SPLIT = """
    colocated { pool p { model llama3_1_8b; instances 4 } }
    split {
      pool pre { model llama3_1_8b; instances 2; role prefill }
      pool dec { model llama3_1_8b; instances 2; role decode }
      transfer pre -> dec
    }
"""


def module_of(text: str):
    sources = SourceMap()
    return parse(text, "s.tsim", sources), sources


def point_specs(text: str):
    """Each sweep point of ``text``, checked as a run of its own."""
    module, sources = module_of(text)
    spec = check(module, sources)
    return [compiled(module, point, sources)[1].spec for point in points(spec.sweep)]


def test_a_policy_is_swept_with_its_parameters():
    text = (
        SPEC
        + """sweep {
  deployment.p.batching in {
    static { max_seqs 8 }
    continuous { max_seqs 64 }
  }
}"""
    )
    (axis,) = compile_text(text).sweep.axes
    assert axis.texts == ("static { max_seqs 8 }", "continuous { max_seqs 64 }")
    used = [s.deployment.pools[0].batching for s in point_specs(text)]
    assert [(b.name, b.get("max_seqs")) for b in used] == [("static", 8), ("continuous", 64)]


def test_a_statement_of_several_values_is_swept_whole():
    text = SPEC + "sweep { deployment.p.model in { llama3_1_8b fp8; llama3_1_8b } }"
    pools = [s.deployment.pools[0] for s in point_specs(text)]
    assert [p.dtype for p in pools] == ["fp8", "bf16"]


def test_layouts_are_swept_as_whole_deployments():
    text = SPEC + "sweep {\n  deployment in {" + SPLIT + "  }\n}"
    (axis,) = compile_text(text).sweep.axes
    assert axis.labels == ("colocated", "split") and axis.values == ("colocated", "split")
    roles = [[(p.name, p.role) for p in s.deployment.pools] for s in point_specs(text)]
    assert roles == [[("p", "colocated")], [("pre", "prefill"), ("dec", "decode")]]


def test_a_layout_sweep_runs_and_tables_show_the_layouts_by_name(tmp_path):
    (tmp_path / "s.tsim").write_text(
        SPEC + "sweep {\n  deployment in {" + SPLIT + "  }\n  workload.arrivals.rate in 4/s, 8/s\n}"
    )
    result = tokensim("run", "s.tsim", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    info = json.loads((out / "sweep.json").read_text())
    assert info["axes"][0]["texts"] == ["colocated", "split"]
    assert [p["values"]["deployment"] for p in info["points"]] == ["colocated"] * 2 + ["split"] * 2
    assert "split" in result.stdout and "pool pre" not in result.stdout
    (split,) = [
        p["folder"] for p in info["points"] if p["folder"].endswith("deployment=split,rate=8_s")
    ]
    run = json.loads((out / split / "run.json").read_text())
    assert [p["role"] for p in run["pools"]] == ["prefill", "decode"]


def test_an_inner_path_is_set_after_the_block_that_holds_it():
    text = (
        SPEC
        + """sweep {
  deployment.p.batching.max_seqs in 16
  deployment in { one { pool p { model llama3_1_8b; instances 2 } } }
}"""
    )
    (spec,) = point_specs(text)
    pool = spec.deployment.pools[0]
    assert len(pool.instances) == 2 and pool.batching.get("max_seqs") == 16
    assert spec.sweep is None  # a point is one run


@pytest.mark.parametrize(
    "sweep, message, line",
    [
        # a typo inside an alternative is found where it was written, before anything runs
        (
            "deployment.p.batching in {\n  static { max_seq 8 }\n}",
            "unknown parameter `max_seq`",
            11,
        ),
        (
            "deployment in {\n  split { pool q { model llama3_1_8b; tpp 2 } }\n}",
            "unknown statement `tpp`",
            11,
        ),
        ("deployment.p.model in { llama9 }", "unknown model `llama9`", 10),
        ("deployment in { split }", "a name and its content", 10),
        ("deployment.p.batching in { }", "needs alternatives", 10),
        ("deployment.p.batching in { static; static }", "`static` is given twice", 10),
        ("deployment.q.batching in { static }", "the spec has no `deployment.q`", 10),
        # a pool is swept by its statements or with its whole deployment, and the error says so
        (
            "deployment.p in { a { model llama3_1_8b } }",
            "`deployment.p` is a `pool` block: sweep its statements (`deployment.p.tp in 1, 2`)"
            ", or whole alternatives of `deployment`",
            10,
        ),
    ],
)
def test_bad_alternatives_are_located_errors(sweep, message, line):
    errors = errors_of(SPEC + f"sweep {{ {sweep} }}")
    assert message in errors and f"test.tsim:{line}:" in errors


def test_routes_are_set_and_swept_by_pool():
    text = (
        HEAD
        + CLUSTER
        + (
            "deployment {\n  pool pre { model llama3_1_8b; instances 2; role prefill }\n"
            "  pool dec { model llama3_1_8b; instances 2; role decode }\n"
            "  transfer pre -> dec\n  route dec by least_requests\n}\n"
        )
        + WORKLOAD
    )
    module, sources = module_of(text)
    assert {"deployment.route", "deployment.route.dec"} <= set(paths(module))
    module = override(module, "deployment.route", "random", sources)
    module = override(module, "deployment.route.dec", "prefix_affinity { load_cap 2 }", sources)
    routes = {r.pool: r.policy for r in check(module, sources).deployment.routes}
    assert routes["pre"].name == "random"  # the arrivals' route, to the entry pool
    assert (routes["dec"].name, routes["dec"].get("load_cap")) == ("prefix_affinity", 2)
    swept = text + "sweep { deployment.route.dec in least_kv, round_robin }"
    names = [{r.pool: r.policy.name for r in s.deployment.routes} for s in point_specs(swept)]
    assert [n["dec"] for n in names] == ["least_kv", "round_robin"]
    with pytest.raises(CompileError, match="unknown pool `nope`"):
        check(override(module, "deployment.route.nope", "random", sources), sources)


def test_a_network_written_once_is_set_and_swept_by_its_link():
    module, sources = module_of(SPEC)
    (net,) = check(
        override(module, "cluster.network", "ETH_100G", sources), sources
    ).cluster.networks
    assert net.link.name == "ETH_100G" and net.nodes == ("n0", "n1")  # `between` is kept
    specs = point_specs(SPEC + "sweep { cluster.network in IB_400G, IB_200G }")
    assert [s.cluster.networks[0].link.name for s in specs] == ["IB_400G", "IB_200G"]
    two = SPEC.replace(
        "network IB_400G between n0, n1",
        "network IB_400G between n0, n1\n  network ETH_100G between n0, n1",
    )
    assert "cluster.network" not in paths(module_of(two)[0])  # which of the two?


def test_a_star_in_a_sweep_path_sets_every_match():
    specs = point_specs(SPEC + "sweep { cluster.*.gpus in H100_SXM, H200 }")
    assert [{n.gpu.name for n in s.cluster.nodes} for s in specs] == [{"H100_SXM"}, {"H200"}]
    errors = errors_of(SPEC + "sweep { cluster.*.gpu in H200 }")
    assert "matches nothing" in errors and "`cluster.n0.gpus`" in errors
