"""The deployment diagram: valid SVG, one square per GPU, pools and KV transfers labelled,
deterministic, and no two labels on top of each other as the cluster grows."""

import json
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import ROOT, SPECS

from tokensim.cli import main
from tokensim.graph import lower
from tokensim.graph.render import to_json
from tokensim.lang.check import check
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap
from tokensim.lang.units import Dim, format_quantity
from tokensim.report.diagram import (
    IDLE_COLOR,
    NODES_PER_ROW,
    POOL_COLORS,
    deployment_svg,
    text_width,
)
from tokensim.report.manifest import pools as manifest_pools

NS = "{http://www.w3.org/2000/svg}"
KV_STROKE = "#9A6700"


def compiled(text: str, filename: str):
    """(graph as ``tokensim graph --format json`` prints it, parsed; pools as run.json has them)."""
    sources = SourceMap()
    spec = check(parse(text, filename, sources), sources)
    graph = json.loads(to_json(lower(spec)))
    pools = manifest_pools(spec)
    return graph, pools


def shipped(name: str):
    path = ROOT / "specs" / name
    return compiled(path.read_text("utf-8"), str(path))


def texts(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{NS}text"))


def labels(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in texts(svg)]


def text_box(t: ET.Element) -> tuple[float, float, float, float]:
    """Estimated (left, top, right, bottom) of a <text>, as the layout estimates it."""
    size = float(t.get("font-size", 12))
    width = text_width("".join(t.itertext()), size, bold=True)  # bold: the wider estimate
    x, y = float(t.get("x")), float(t.get("y"))
    left = {"start": x, "middle": x - width / 2, "end": x - width}[t.get("text-anchor", "start")]
    return left, y - 0.8 * size, left + width, y + 0.25 * size


def overlapping(svg: str) -> list[tuple[str, str]]:
    boxes = [(text_box(t), "".join(t.itertext())) for t in texts(svg)]
    out = []
    for i, (a, sa) in enumerate(boxes):
        for b, sb in boxes[i + 1 :]:
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                out.append((sa, sb))
    return out


def gpu_cells(svg: str) -> dict[str, str]:
    """GPU vertex id -> fill of its square."""
    out = {}
    for g in ET.fromstring(svg).iter(f"{NS}g"):
        if g.get("class") == "gpu":
            gpu = g.find(f"{NS}title").text.split(":")[0]
            out[gpu] = g.find(f"{NS}rect").get("fill")
    return out


DIAGRAMMED = [
    "disaggregated_8gpu.tsim",
    "disaggregated.tsim",
    "colocated_8gpu.tsim",
    "single_gpu_8b.tsim",
]


@pytest.fixture(params=[p.name for p in SPECS])
def spec(request):
    return shipped(request.param)


def test_is_one_valid_svg(spec):
    graph, pools = spec
    svg = deployment_svg(graph, pools)
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("width") == "100%" and root.get("role") == "img"
    assert re.fullmatch(r"0 0 \d+ \d+", root.get("viewBox"))
    assert root[0].tag == f"{NS}title" and graph["spec"] in root[0].text
    assert "<script" not in svg and "href" not in svg  # self-contained


def test_one_square_per_gpu_coloured_by_its_pool(spec):
    graph, pools = spec
    cells = gpu_cells(deployment_svg(graph, pools))
    gpus = {v["id"] for v in graph["topology"]["nodes"] if v["kind"] == "gpu"}
    assert set(cells) == gpus
    color = {p["name"]: POOL_COLORS[k % len(POOL_COLORS)] for k, p in enumerate(pools)}
    owner = {
        g: v["pool"]
        for v in graph["dataflow"]["nodes"]
        if v["kind"] == "instance"
        for g in v["gpus"]
    }
    for gpu, fill in cells.items():
        assert fill == color[owner[gpu]] if gpu in owner else fill == IDLE_COLOR


def test_every_pool_is_drawn_once(spec):
    graph, pools = spec
    svg = deployment_svg(graph, pools)
    bands = re.findall(r'<path d="M[^"]* A6,6 [^"]*" fill="(#[0-9A-F]{6})"/>', svg)
    assert bands == list(POOL_COLORS[: len(pools)])
    found = labels(svg)
    for p in pools:
        if p["name"] == p["role"]:  # the legend says the name too
            assert found.count(p["name"]) == 2
        else:
            assert found.count(f"{p['name']} · {p['role']}") == 1
            assert found.count(f"{p['name']} ({p['role']})") == 1  # the legend
        detail = f"{p['instances']} × {p['parallelism']} {p['model']} {p['dtype']}"
        assert p["parallelism"].startswith(f"tp{p['tp']}")
        assert detail in found
        assert f"on {p['gpu']} · {p['batching']}" in found


def test_deterministic(spec):
    graph, pools = spec
    first = deployment_svg(graph, pools)
    assert deployment_svg(json.loads(json.dumps(graph)), [dict(p) for p in pools]) == first
    coordinates = r'(?<![\w-])(x|y|x1|y1|x2|y2|cx|cy|width|height)="-?\d+\.\d+"'
    assert not re.search(coordinates, first)  # whole pixels
    for d in re.findall(r'\b(?:d|points)="([^"]*)"', first):
        assert "." not in d


def test_no_labels_overlap(spec):
    assert overlapping(deployment_svg(*spec)) == []


@pytest.mark.parametrize(
    ("name", "bandwidth", "link"),
    [("disaggregated.tsim", 50e9, "IB_400G"), ("disaggregated_8gpu.tsim", 450e9, "NVLINK4")],
)
def test_disaggregation_shows_the_kv_transfer(name, bandwidth, link):
    graph, pools = shipped(name)
    svg = deployment_svg(graph, pools)
    found = labels(svg)
    assert "KV transfer" in found
    assert format_quantity(bandwidth, Dim.BANDWIDTH) in found
    assert f"via {link}" in found
    assert f'stroke="{KV_STROKE}"' in svg
    decode = next(v for v in graph["dataflow"]["nodes"] if v["id"] == "router:decode")
    assert decode["policy"] in found and "decode router" in found
    assert {"prefill", "decode"} <= set(found)


@pytest.mark.parametrize("name", ["colocated_8gpu.tsim", "single_gpu_8b.tsim", "tp2_x4.tsim"])
def test_colocated_has_no_transfer(name):
    svg = deployment_svg(*shipped(name))
    assert "KV transfer" not in labels(svg)
    assert KV_STROKE not in svg


def test_topology_labels():
    graph, pools = shipped("disaggregated.tsim")
    found = labels(deployment_svg(graph, pools))
    assert "n0 · 8 × H100_SXM" in found and "n1 · 8 × H100_SXM" in found
    assert "NVLINK4 450 GB/s · 8 NICs" in found
    assert "IB_400G · 50 GB/s per NIC" in found
    assert "round_robin" in found
    single = labels(deployment_svg(*shipped("single_gpu_8b.tsim")))
    assert "no GPU link · PCIE5 64 GB/s to host" in single


LIBRARY = 'import "std/hardware"\nimport "std/models"\n'


def big_cluster(nodes: int, instances: int) -> str:
    names = ", ".join(f"n{k}" for k in range(nodes))
    node_lines = "\n".join(
        f"  node n{k} {{ gpus H100_SXM x 8; link NVLINK4; nics 8 }}" for k in range(nodes)
    )
    return (
        LIBRARY
        + f'name "{nodes} x 8 GPUs"\ncluster {{\n{node_lines}\n'
        + f"  network IB_400G between {names}\n}}\n"
        + f"deployment {{\n  pool chat {{ model llama3_1_8b; instances {instances}; on {names} }}\n"
        + "  route chat by least_requests\n}\n"
    )


def test_four_nodes_of_eight_gpus_and_32_instances(tmp_path):
    path = tmp_path / "big.tsim"
    path.write_text(big_cluster(4, 32), "utf-8")
    graph, pools = compiled(path.read_text("utf-8"), str(path))
    svg = deployment_svg(graph, pools)
    ET.fromstring(svg)
    positions = [(t.get("x"), t.get("y")) for t in texts(svg)]
    assert len(positions) == len(set(positions))
    assert overlapping(svg) == []
    cells = gpu_cells(svg)
    assert len(cells) == 32 and set(cells.values()) == {POOL_COLORS[0]}
    found = labels(svg)
    assert [str(k) for k in range(32)] == [t for t in found if t.isdigit()]
    assert "32 × tp1 llama3_1_8b bf16" in found


def test_more_nodes_than_a_row_wrap(tmp_path):
    path = tmp_path / "wrap.tsim"
    path.write_text(big_cluster(NODES_PER_ROW + 2, 12), "utf-8")
    graph, pools = compiled(path.read_text("utf-8"), str(path))
    svg = deployment_svg(graph, pools)
    boxes = [r for r in ET.fromstring(svg).iter(f"{NS}rect") if r.get("fill") == "#F6F8FA"]
    assert len(boxes) == NODES_PER_ROW + 2
    assert len({r.get("y") for r in boxes}) == 2
    assert len({r.get("x") for r in boxes}) == NODES_PER_ROW
    assert overlapping(svg) == []
    assert sum(fill == IDLE_COLOR for fill in gpu_cells(svg).values()) == 48 - 12
    assert "idle GPU" in labels(svg)


def test_transfer_bandwidth_range_over_instance_pairs(tmp_path):
    text = LIBRARY + (
        "cluster {\n"
        "  node n0 { gpus H100_SXM x 8; link NVLINK4; nics 8 }\n"
        "  node n1 { gpus H100_SXM x 8; link NVLINK4; nics 8 }\n"
        "  network IB_400G between n0, n1\n}\n"
        "deployment {\n"
        "  pool prefill { model llama3_1_70b fp8; instances 2; tp 2; on n0; role prefill }\n"
        "  pool decode { model llama3_1_70b fp8; instances 3; tp 2; on n0, n1; role decode }\n"
        "  transfer prefill -> decode\n"
        "  route prefill by round_robin\n  route decode by least_kv\n}\n"
    )
    graph, pools = compiled(text, str(tmp_path / "range.tsim"))
    edges = [e for e in graph["dataflow"]["edges"] if e["kind"] == "transfer"]
    assert len({e["bottleneck_Bps"] for e in edges}) == 2  # the setup: two kinds of pair
    found = labels(deployment_svg(graph, pools))
    assert "50 GB/s .. 450 GB/s" in found
    assert "via IB_400G, NVLINK4" in found
    assert found.count("KV transfer") == 1  # one per pool pair, not per instance pair


def test_text_is_escaped_and_odd_input_does_not_raise():
    graph = {
        "spec": 'a <b> & "c"',
        "topology": {
            "nodes": [
                {"id": "x<y/gpu0", "kind": "gpu", "node": "x<y", "gpu": "G&H"},
                {"id": "x<y/host", "kind": "host", "node": "x<y"},
            ],
            "edges": [{"source": "x<y/gpu0", "target": "x<y/host", "link": "L<1>"}],
        },
        "dataflow": {"nodes": [], "edges": []},
    }
    svg = deployment_svg(graph, [])
    root = ET.fromstring(svg)
    assert root[0].text == 'Deployment of a <b> & "c"'
    assert "x<y · 1 × G&H" in labels(svg) and "<y" not in svg
    assert "no deployment" in labels(svg)
    for empty in ({}, {"spec": "s", "topology": {}, "dataflow": {}}):
        ET.fromstring(deployment_svg(empty, []))
    graph, pools = shipped("disaggregated.tsim")
    sparse = [{"name": p["name"]} for p in pools]  # a pool dict missing its details
    assert "? × tp1 ? ?" in labels(deployment_svg(graph, sparse))


def test_pool_colours_follow_the_okabe_ito_order():
    assert POOL_COLORS == (
        "#0072B2",
        "#E69F00",
        "#009E73",
        "#CC79A7",
        "#56B4E9",
        "#D55E00",
        "#F0E442",
    )
    graph, pools = shipped("heterogeneous.tsim")
    cells = gpu_cells(deployment_svg(graph, pools))
    assert cells["hopper/gpu0"] == POOL_COLORS[0] and cells["ampere/gpu0"] == POOL_COLORS[1]


@pytest.mark.parametrize("name", DIAGRAMMED)
def test_draws_what_the_cli_prints(name, tmp_path):
    out = tmp_path / "graph.json"
    assert main(["graph", str(ROOT / "specs" / name), "--format", "json", "-o", str(out)]) == 0
    printed = json.loads(out.read_text("utf-8"))
    assert deployment_svg(printed, shipped(name)[1]) == deployment_svg(*shipped(name))
