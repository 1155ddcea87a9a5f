"""Views of a :class:`Graph`: a readable summary, Graphviz DOT, JSON, and the
deterministic dump that golden tests compare."""

from __future__ import annotations

import json

from tokensim.graph.lower import RUNTIME, Graph, Path, engines
from tokensim.lang.source import Span
from tokensim.lang.units import Dim, format_quantity


def _bw(bps: float) -> str:
    return format_quantity(bps, Dim.BANDWIDTH)


def _t(s: float) -> str:
    return format_quantity(s, Dim.TIME)


def _path_text(path: Path) -> str:
    return (
        f"{' -> '.join(path.hops)}: bottleneck {_bw(path.bottleneck_Bps)} "
        f"({path.bottleneck_link}), latency {_t(path.latency_s)}"
    )


def text(graph: Graph) -> str:
    """A summary a person reads: nodes, pools, routes and every transfer path."""
    spec = graph.spec
    out = [f"spec {spec.name}"]
    if spec.cluster is None:
        return out[0] + ": no cluster (a catalogue)\n"
    c = spec.cluster
    gpus = sum(n.count for n in c.nodes)
    out.append(
        f"topology: {len(c.nodes)} node{'s' * (len(c.nodes) != 1)}, {gpus} GPUs, "
        f"{len(c.networks)} network{'s' * (len(c.networks) != 1)}"
    )
    for n in c.nodes:
        link = f"{n.link.name} {_bw(n.link.bandwidth_Bps)}" if n.link else "no GPU link"
        out.append(
            f"  {n.name}: {n.count} x {n.gpu.name}, {link}, host {n.host_link.name} "
            f"{_bw(n.host_link.bandwidth_Bps)}, {n.nics} NIC{'s' * (n.nics != 1)}"
        )
    for k, net in enumerate(c.networks):
        out.append(
            f"  net{k}: {net.link.name} {_bw(net.link.bandwidth_Bps)} per NIC between "
            f"{', '.join(net.nodes)}"
        )
    if spec.deployment is None:
        return "\n".join(out) + "\n"
    d = graph.dataflow
    out.append("dataflow:")
    for pool in spec.deployment.pools:
        first = pool.instances[0].gpus
        out.append(
            f"  pool {pool.name} ({pool.role}): {len(pool.instances)} x {pool.model.name} "
            f"{pool.dtype}, {pool.parallelism()} on {pool.gpu.name}, "
            f"batching {pool.batching.name}; instance 0 on {', '.join(map(str, first))}"
        )
        zero = engines(pool, pool.instances[0])[0]
        for _, v, e in d.out_edges(zero, data=True):
            if e["kind"] == "offload":
                t = d.nodes[v]["ir"]
                where = "shared by the pool" if t.kind == "remote" else "each instance"
                out.append(
                    f"    kv tier {t.kind} {format_quantity(t.capacity_B, Dim.BYTES)} ({where}), "
                    f"write {'through' if t.through else 'back'}, at {_bw(e['bandwidth_Bps'])}"
                )
    for a in spec.deployment.autoscale:
        rules = "; ".join(
            f"{r.metric} {'>' if r.above else '<'} {r.value:g} for {r.for_s:g} s: "
            f"{'add' if r.add else 'remove'} {r.count}"
            for r in a.rules
        )
        out.append(
            f"  autoscaler:{a.pool}: {a.min}..{a.max} serving (from {a.initial}), startup "
            f"{a.startup_s:g} s, cooldown {a.cooldown_s:g} s; {rules}"
        )
    for node in sorted(n for n in d if d.nodes[n]["kind"] == "router"):
        targets = sorted(v for v in d.successors(node))
        out.append(f"  {node} by {d.nodes[node]['policy']} -> {_compact(targets)}")
    transfers = sorted((u, v, e) for u, v, e in d.edges(data=True) if e["kind"] == "transfer")
    if transfers:
        out.append("transfers (KV path per tp rank):")
    for u, v, e in transfers:
        out.append(f"  {u} -> {v}: bottleneck {_bw(e['bottleneck_Bps'])}")
        for rank, p in enumerate(e["paths"]):
            out.append(f"    rank {rank}: {_path_text(p)}")
    return "\n".join(out) + "\n"


def _compact(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 8 else ", ".join(names[:4]) + f", ... ({len(names)})"


def _attr(value) -> str:
    if isinstance(value, Span):
        return f"{value.file}:{value.line}:{value.col}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_attr(v) for v in value) + ")"
    if isinstance(value, Path):
        return (
            f"Path({' -> '.join(value.hops)}; {_bw(value.bottleneck_Bps)}; {_t(value.latency_s)})"
        )
    return str(value)


def _shown(attrs: dict) -> list:
    """The attributes a rendering shows: all but the span and what the simulator takes
    from a vertex or edge to run it (:data:`RUNTIME`)."""
    return [(k, v) for k, v in sorted(attrs.items()) if k != "span" and k not in RUNTIME]


def dump(graph: Graph) -> str:
    """Every vertex and edge with its attributes, sorted: the golden-file form."""
    lines = ["topology:"]
    t = graph.topology
    for n in sorted(t.nodes):
        attrs = ", ".join(f"{k}={_attr(v)}" for k, v in sorted(t.nodes[n].items()) if k != "span")
        lines.append(f"  {n} [{attrs}]")
    for u, v in sorted(tuple(sorted(e)) for e in t.edges):
        e = t.edges[u, v]
        lines.append(f"  {u} -- {v} [{e['link']} {_bw(e['bandwidth_Bps'])} {_t(e['latency_s'])}]")
    lines.append("dataflow:")
    d = graph.dataflow
    for n in sorted(d.nodes):
        attrs = ", ".join(f"{k}={_attr(v)}" for k, v in _shown(d.nodes[n]))
        lines.append(f"  {n} [{attrs}]")
    for u, v in sorted(d.edges):
        attrs = ", ".join(f"{k}={_attr(x)}" for k, x in _shown(d.edges[u, v]))
        lines.append(f"  {u} -> {v} [{attrs}]")
    return "\n".join(lines) + "\n"


def _q(s: str) -> str:
    return '"' + s.replace('"', '\\"') + '"'


def dot(graph: Graph) -> str:
    """Graphviz DOT: one cluster box per node, the dataflow drawn beside it."""
    t, d = graph.topology, graph.dataflow
    out = ["digraph tokensim {", "  rankdir=LR;", "  node [fontname=Helvetica, fontsize=10];"]
    by_node: dict[str, list[str]] = {}
    for n, a in sorted(t.nodes(data=True)):
        by_node.setdefault(a.get("node", ""), []).append(n)
    for k, (machine, members) in enumerate(sorted(by_node.items())):
        if machine:
            out.append(f"  subgraph cluster_{k} {{ label={_q(machine)};")
        for n in members:
            shape = {"gpu": "box", "switch": "diamond", "host": "house", "nic": "circle"}.get(
                t.nodes[n]["kind"], "ellipse"
            )
            out.append(f"    {_q(n)} [shape={shape}];")
        if machine:
            out.append("  }")
    for u, v in sorted(tuple(sorted(e)) for e in t.edges):
        e = t.edges[u, v]
        label = f"{e['link']} {_bw(e['bandwidth_Bps'])}"
        out.append(f"  {_q(u)} -> {_q(v)} [dir=none, color=gray, label={_q(label)}];")
    out.append('  subgraph cluster_dataflow { label="dataflow"; style=dashed;')
    for n, a in sorted(d.nodes(data=True)):
        label = n + (f"\\n{a['policy']}" if a.get("policy") else "")
        out.append(f"    {_q('flow:' + n)} [label={_q(label)}, shape=box, style=rounded];")
    out.append("  }")
    for u, v, e in sorted(d.edges(data=True), key=lambda x: (x[0], x[1])):
        style = ", color=blue, style=bold" if e["kind"] == "transfer" else ""
        label = f", label={_q(_bw(e['bottleneck_Bps']))}" if e["kind"] == "transfer" else ""
        out.append(f"  {_q('flow:' + u)} -> {_q('flow:' + v)} [{style.lstrip(', ')}{label}];")
    out.append("}")
    return "\n".join(out).replace("[, ", "[").replace(" [];", ";") + "\n"


def _jsonable(value):
    if isinstance(value, Span):
        return f"{value.file}:{value.line}:{value.col}"
    if isinstance(value, Path):
        return {
            "hops": list(value.hops),
            "links": list(value.links),
            "bottleneck_Bps": value.bottleneck_Bps,
            "latency_s": value.latency_s,
            "bottleneck_link": value.bottleneck_link,
        }
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value == float("inf"):
        return None
    return value


def to_json(graph: Graph) -> str:
    """Both graphs as JSON (vertices and edges with attributes; spans as 'file:line:col')."""

    def part(g, directed: bool):
        return {
            "directed": directed,
            "nodes": [
                {"id": n, **{k: _jsonable(v) for k, v in sorted(a.items()) if k not in RUNTIME}}
                for n, a in sorted(g.nodes(data=True))
            ],
            "edges": [
                {
                    "source": u,
                    "target": v,
                    **{k: _jsonable(x) for k, x in sorted(a.items()) if k not in RUNTIME},
                }
                for u, v, a in sorted(g.edges(data=True), key=lambda e: (e[0], e[1]))
            ],
        }

    data = {
        "spec": graph.spec.name,
        "topology": part(graph.topology, False),
        "dataflow": part(graph.dataflow, True),
    }
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
