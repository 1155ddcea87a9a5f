"""Lowering: topology paths and bottlenecks, dataflow wiring, spans on every element."""

import pytest
from conftest import compile_text

from tokensim import ir
from tokensim.graph import lower
from tokensim.graph.render import dot, text, to_json

LIB = """
link NVL { bandwidth 450 GB/s; latency 1 us }
link PCI { bandwidth 64 GB/s; latency 2 us }
link IB { bandwidth 400 Gb/s; latency 5 us }
link ETH { bandwidth 100 Gb/s; latency 10 us }
gpu G { memory 80 GB; bandwidth 3 TB/s; compute { bf16 1000 TFLOPS }; host_link PCI }
model m { layers 32; hidden 4096; heads 32; kv_heads 8; ffn 14336; vocab 128256; max_context 8192 }
"""


def two_nodes(nics_a=1, nics_b=1, net="IB") -> str:
    return (
        LIB
        + f"""
cluster {{
  node a {{ gpus G x 8; link NVL; nics {nics_a} }}
  node b {{ gpus G x 8; link NVL; nics {nics_b} }}
  network {net} between a, b
}}
deployment {{
  pool pre {{ model m; tp 2; on a; role prefill }}
  pool dec {{ model m; tp 2; on b; role decode }}
  transfer pre -> dec
}}
"""
    )


def test_intra_node_path_uses_the_gpu_link():
    g = lower(compile_text(two_nodes()))
    path = g.path(ir.GpuRef("a", 0), ir.GpuRef("a", 5))
    assert path.hops == ("a/gpu0", "a/switch", "a/gpu5")
    assert path.bottleneck_Bps == pytest.approx(450e9)
    assert path.latency_s == pytest.approx(1e-6)  # one NVL hop through the switch


def test_cross_node_path_bottleneck_is_the_network():
    g = lower(compile_text(two_nodes()))
    path = g.path("a/gpu1", "b/gpu1")
    assert path.hops == ("a/gpu1", "a/nic0", "net0:IB", "b/nic0", "b/gpu1")
    assert path.bottleneck_Bps == pytest.approx(50e9)  # 400 Gb/s
    assert path.bottleneck_link == "IB"
    assert path.latency_s == pytest.approx(2e-6 + 5e-6 + 2e-6)  # PCIe, one IB hop, PCIe


def test_nics_are_spread_over_the_gpus_rail_style():
    g = lower(compile_text(two_nodes(nics_a=2, nics_b=8)))
    # two NICs for eight GPUs: GPUs 0-3 share nic0, 4-7 share nic1
    assert [g.path(f"a/gpu{i}", "b/gpu0").hops[1] for i in range(8)] == ["a/nic0"] * 4 + [
        "a/nic1"
    ] * 4
    # eight NICs: each GPU has its own
    assert [g.path("a/gpu0", f"b/gpu{i}").hops[-2] for i in range(8)] == [
        f"b/nic{i}" for i in range(8)
    ]
    # one GPU's path is limited by its own NIC, not by all of the node's NICs together
    assert g.path("a/gpu0", "b/gpu0").bottleneck_Bps == pytest.approx(50e9)


def test_bundled_nics_add_up_until_pcie_is_narrower():
    g = lower(compile_text(two_nodes(nics_a=16, nics_b=16, net="ETH")))
    assert g.path("a/gpu0", "b/gpu0").bottleneck_Bps == pytest.approx(2 * 12.5e9)
    g = lower(compile_text(two_nodes(nics_a=16, nics_b=16)))
    assert g.path("a/gpu0", "b/gpu0").bottleneck_Bps == pytest.approx(64e9)
    assert g.path("a/gpu0", "b/gpu0").bottleneck_link == "PCI"


def test_a_wide_link_wins_over_a_narrow_one_with_less_latency():
    lib = LIB.replace(
        "link NVL { bandwidth 450 GB/s; latency 1 us }",
        "link NVL { bandwidth 450 GB/s; latency 5 us }",
    )
    g = lower(compile_text(two_nodes().replace(LIB, lib)))
    assert g.path("a/gpu0", "a/gpu1").hops[1] == "a/switch"  # not the 2 us PCIe host path


def test_halving_the_network_halves_the_bottleneck():
    fast = lower(compile_text(two_nodes(net="IB"))).path("a/gpu0", "b/gpu0")
    slow_lib = two_nodes().replace("400 Gb/s", "200 Gb/s")
    slow = lower(compile_text(slow_lib)).path("a/gpu0", "b/gpu0")
    assert slow.bottleneck_Bps == pytest.approx(fast.bottleneck_Bps / 2)


def test_paths_never_pass_through_another_gpu():
    g = lower(compile_text(two_nodes()))
    for a in range(8):
        for b in range(8):
            path = g.path(f"a/gpu{a}", f"b/gpu{b}")
            assert [h for h in path.hops if "/gpu" in h] == [f"a/gpu{a}", f"b/gpu{b}"]


def test_unreachable_gpus_have_no_path():
    spec = compile_text(LIB + "cluster { node a { gpus G x 1 }\n node b { gpus G x 1 } }\n")
    assert lower(spec).path("a/gpu0", "b/gpu0") is None


def test_dataflow_wires_source_router_instances_transfer_sink():
    g = lower(compile_text(two_nodes()))
    d = g.dataflow
    assert list(d.successors("source")) == ["router"]
    assert sorted(d.successors("router")) == ["pre[0]"]
    transfer = d.edges["pre[0]", "dec[0]"]
    assert transfer["kind"] == "transfer"
    assert [p.hops[0] for p in transfer["paths"]] == ["a/gpu0", "a/gpu1"]
    assert [p.hops[-1] for p in transfer["paths"]] == ["b/gpu0", "b/gpu1"]
    assert transfer["bottleneck_Bps"] == pytest.approx(50e9)
    assert list(d.successors("dec[0]")) == ["sink"]
    assert "sink" not in d.successors("pre[0]")


def test_every_graph_element_keeps_a_span_into_the_spec():
    source = two_nodes()
    g = lower(compile_text(source, "spans.tsim"))
    for _, attrs in g.topology.nodes(data=True):
        assert attrs["span"].file == "spans.tsim"
    for _, _, attrs in g.topology.edges(data=True):
        assert attrs["span"].file == "spans.tsim"
    transfer = g.dataflow.edges["pre[0]", "dec[0]"]
    line = source.splitlines().index("  transfer pre -> dec") + 1
    assert transfer["span"].line == line


def test_renderings():
    g = lower(compile_text(two_nodes()))
    summary = text(g)
    assert "pre[0] -> dec[0]: bottleneck 50 GB/s" in summary
    assert "rank 0: a/gpu0 -> a/nic0 -> net0:IB -> b/nic0 -> b/gpu0" in summary
    assert dot(g).startswith("digraph tokensim {")
    assert '"a/gpu0" -> "a/switch"' in dot(g)
    assert '"bottleneck_Bps": 50000000000.0' in to_json(g)
