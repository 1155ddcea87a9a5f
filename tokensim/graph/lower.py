"""Lowering a checked spec into two networkx graphs.

*Topology* (undirected ``nx.Graph``): one vertex per GPU (``n0/gpu3``), per
node a switch for its GPU link (``n0/switch``), a host (``n0/host``) and its
NICs (``n0/nic0``...), and per network a fabric vertex (``net0:IB_400G``).
Edges carry ``bandwidth_Bps`` (per direction), ``latency_s`` and the ``link``:

* GPU - switch: the node's ``link`` (NVLink through NVSwitch, or PCIe);
* GPU - host: the ``host_link`` (swap traffic);
* GPU - NIC: the ``host_link`` (GPUDirect RDMA goes over PCIe). With ``nics N``
  on a node of ``G`` GPUs there are ``min(N, G)`` NIC vertices; GPU ``i`` uses
  NIC ``i * min(N, G) // G`` (rail-style: 8 NICs for 8 GPUs gives each its own);
* NIC - fabric: the network's link, times the NICs bundled in that vertex.

A switch or fabric vertex is not a second link: each of its edges carries half
the link's latency, so going GPU -> switch -> GPU costs the link's latency once.

*Dataflow* (``nx.DiGraph``): ``source`` -> ``router`` -> instances of the
entry pools (a pipelined instance is one vertex per batch it keeps in flight through
its stages, ``pool[i].v0``..., on the same GPUs); prefill instances ->
``router:<decode pool>`` -> decode instances (edges of kind ``transfer`` carry the KV
path per tp rank); instances -> ``sink``. A pool's lower KV tiers are vertices of kind
``tier``: ``decode[0]/host`` and ``decode[0]/disk`` of each instance, ``decode/remote``
shared by the pool, each reached by an ``offload`` edge from the instance that carries
the rate its blocks move at (:func:`tier_bandwidth`). An autoscaled pool has an
``autoscaler:<pool>`` vertex with a ``scale`` edge to each of its instances, and each fault
event a ``fault:<k>`` vertex with a ``fails`` edge to each instance it stops.

Every vertex and edge keeps the ``span`` of the statement it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from tokensim import ir


@dataclass(frozen=True)
class Path:
    """A route between two GPUs: vertices, links crossed, bottleneck and latency."""

    hops: tuple[str, ...]
    links: tuple[str, ...]
    bottleneck_Bps: float
    latency_s: float
    bottleneck_link: str = ""


# The message size that weighs bandwidth against latency when choosing a path:
# 1 MB, about one 16-token KV block of a 70B model over all layers.
PATH_PROBE_B = 1e6


def gpu_id(ref: ir.GpuRef) -> str:
    return f"{ref.node}/gpu{ref.index}"


def node_exits(hops: tuple[str, ...], node: str) -> list[tuple[str, str]]:
    """The edges of a path (its ``hops``) with an end in ``node``: a GPU's way out of its
    node (GPU link, NIC, the NIC's link to the fabric)."""
    mine = f"{node}/"
    return [
        (u, v)
        for u, v in zip(hops, hops[1:], strict=False)
        if u.startswith(mine) or v.startswith(mine)
    ]


def instance_id(pool: str, index: int, microbatch: int | None = None) -> str:
    """``decode[0]``; a pipelined instance's in-flight batches are ``decode[0].v1``..."""
    return f"{pool}[{index}]" + (f".v{microbatch}" if microbatch is not None else "")


def engines(pool: ir.Pool, inst: ir.Instance) -> list[str]:
    """The dataflow vertices of one instance: itself, or with micro-batches one per batch
    it keeps in flight (vLLM's virtual engines), on the same GPUs."""
    if pool.microbatches == 1:
        return [instance_id(pool.name, inst.index)]
    return [instance_id(pool.name, inst.index, v) for v in range(pool.microbatches)]


# Attributes of dataflow vertices and edges that carry what the simulator runs (the
# checked IR object and an instance's index) rather than what the graph shows: renderings
# leave them out.
RUNTIME = frozenset({"ir", "index"})


class Graph:
    """The lowered spec: ``topology``, ``dataflow`` and path queries between GPUs."""

    def __init__(self, spec: ir.Spec, topology: nx.Graph, dataflow: nx.DiGraph):
        self.spec = spec
        self.topology = topology
        self.dataflow = dataflow
        self._paths: dict[tuple[str, str], Path | None] = {}

    def path(self, a: ir.GpuRef | str, b: ir.GpuRef | str) -> Path | None:
        """The fastest path from GPU ``a`` to GPU ``b`` (None: unreachable).

        Each edge costs its latency plus the time to move :data:`PATH_PROBE_B`
        over it, so a wide link beats a narrow one unless its latency is far
        higher. Paths never pass through a third GPU. Equal costs keep the
        first path found; the graph is built in a fixed order, so the answer is
        deterministic.
        """
        src = a if isinstance(a, str) else gpu_id(a)
        dst = b if isinstance(b, str) else gpu_id(b)
        key = (src, dst)
        if key not in self._paths:
            self._paths[key] = self._find(src, dst)
        return self._paths[key]

    def _find(self, src: str, dst: str) -> Path | None:
        if src == dst:
            return Path((src,), (), float("inf"), 0.0)
        topo = self.topology

        def weight(u, v, data):
            for end in (u, v):
                if end not in (src, dst) and topo.nodes[end]["kind"] == "gpu":
                    return None
            return data["latency_s"] + PATH_PROBE_B / data["bandwidth_Bps"]

        try:
            hops = nx.dijkstra_path(topo, src, dst, weight=weight)
        except nx.NetworkXNoPath:
            return None
        edges = [topo.edges[u, v] for u, v in zip(hops, hops[1:], strict=False)]
        narrowest = min(range(len(edges)), key=lambda i: (edges[i]["bandwidth_Bps"], i))
        return Path(
            tuple(hops),
            tuple(e["link"] for e in edges),
            edges[narrowest]["bandwidth_Bps"],
            sum(e["latency_s"] for e in edges),
            edges[narrowest]["link"],
        )


def _topology(cluster: ir.Cluster) -> nx.Graph:
    g = nx.Graph()
    for node in cluster.nodes:
        host, switch = f"{node.name}/host", f"{node.name}/switch"
        g.add_node(host, kind="host", node=node.name, span=node.span)
        for k, lanes in enumerate(nic_lanes(node)):
            g.add_node(
                f"{node.name}/nic{k}", kind="nic", node=node.name, lanes=lanes, span=node.span
            )
        if node.link is not None:
            g.add_node(switch, kind="switch", node=node.name, span=node.span)
        groups = len(nic_lanes(node))
        for i in range(node.count):
            gpu = gpu_id(ir.GpuRef(node.name, i))
            g.add_node(gpu, kind="gpu", node=node.name, gpu=node.gpu.name, span=node.span)
            if node.link is not None:
                _edge(g, gpu, switch, node.link, 1, node.span, through=True)
            _edge(g, gpu, host, node.host_link, 1, node.span)
            _edge(
                g, gpu, f"{node.name}/nic{i * groups // node.count}", node.host_link, 1, node.span
            )
    nodes = {n.name: n for n in cluster.nodes}
    for k, net in enumerate(cluster.networks):
        fabric = f"net{k}:{net.link.name}"
        g.add_node(fabric, kind="fabric", span=net.span)
        for name in net.nodes:
            for j, lanes in enumerate(nic_lanes(nodes[name])):
                _edge(g, f"{name}/nic{j}", fabric, net.link, lanes, net.span, through=True)
    return g


def nic_lanes(node: ir.Node) -> list[int]:
    """How many NICs each NIC vertex of ``node`` bundles (``nics`` spread over the GPUs)."""
    groups = min(node.nics, node.count)
    return [node.nics // groups + (1 if k < node.nics % groups else 0) for k in range(groups)]


def _edge(
    g: nx.Graph, u: str, v: str, link: ir.Link, lanes: int, span, through: bool = False
) -> None:
    """An edge of ``link``; ``through`` marks half of a hop across a switch or fabric."""
    g.add_edge(
        u,
        v,
        link=link.name,
        bandwidth_Bps=link.bandwidth_Bps * lanes,
        latency_s=link.latency_s / 2 if through else link.latency_s,
        lanes=lanes,
        span=span,
    )


def _policy_text(policy) -> str:
    return getattr(policy, "text", None) or policy.name


def _dataflow(spec: ir.Spec, graph: Graph) -> nx.DiGraph:
    dep = spec.deployment
    d = nx.DiGraph()
    d.add_node(
        "source", kind="source", span=spec.workload.span if spec.workload else None,
        ir=spec.workload,
    )  # fmt: skip
    d.add_node("sink", kind="sink", span=None)
    routes = {r.pool: r for r in dep.routes}
    entry = dep.entry_pools
    arrival_route = routes.get(None) or routes.get(entry[0].name)
    d.add_node(
        "router", kind="router", policy=_policy_text(arrival_route.policy),
        span=arrival_route.span, ir=arrival_route,
    )  # fmt: skip
    d.add_edge("source", "router", kind="arrival", span=None)
    for pool in dep.pools:
        for inst in pool.instances:
            shape = {}  # how the instance's GPUs work together, beyond tp and pp
            if pool.dp > 1:
                shape["ranks"] = pool.dp  # attention ranks of tp GPUs each
            if pool.ep is not None:
                shape["ep"] = pool.ep.size  # GPUs of each stage's expert-parallel group
            if pool.speculative is not None:  # the proposer, on the instance's GPUs
                spec = pool.speculative
                shape["proposer"] = spec.draft.name if spec.draft else spec.method
            names = engines(pool, inst)
            for v, name in enumerate(names):
                if len(names) > 1:
                    shape["microbatch"] = v  # one of the batches in flight on its stages
                d.add_node(
                    name,
                    kind="instance",
                    pool=pool.name,
                    role=pool.role,
                    gpus=tuple(gpu_id(g) for g in inst.gpus),
                    span=pool.span,
                    ir=pool,
                    index=inst.index,
                    **shape,
                )
    for pool in dep.pools:
        _tiers(d, graph, pool)
    for a in dep.autoscale:  # what starts and stops a pool's instances
        scaler = f"autoscaler:{a.pool}"
        d.add_node(scaler, kind="autoscaler", pool=a.pool, min=a.min, max=a.max, span=a.span, ir=a)
        for inst in dep.pool(a.pool).instances:
            for name in engines(dep.pool(a.pool), inst):
                d.add_edge(scaler, name, kind="scale", span=a.span)
    for pool in entry:
        for inst in pool.instances:
            for name in engines(pool, inst):
                d.add_edge("router", name, kind="route", span=arrival_route.span)
    for pool in dep.pools:
        if pool.role != "prefill":
            for inst in pool.instances:
                for name in engines(pool, inst):
                    d.add_edge(name, "sink", kind="finish", span=None)
    for t in dep.transfers:
        src, dst = dep.pool(t.src), dep.pool(t.dst)
        router = f"router:{dst.name}"
        route = routes.get(dst.name)
        d.add_node(
            router, kind="router", policy=_policy_text(route.policy), span=route.span, ir=route
        )
        for inst in dst.instances:
            for name in engines(dst, inst):
                d.add_edge(router, name, kind="route", span=route.span)
        for a in src.instances:
            for a_name in engines(src, a):
                d.add_edge(a_name, router, kind="handoff", span=t.span, ir=t)
            for b in dst.instances:
                paths = tuple(
                    graph.path(ga, b.gpus[r % len(b.gpus)]) for r, ga in enumerate(a.gpus)
                )
                for a_name in engines(src, a):
                    for b_name in engines(dst, b):
                        d.add_edge(
                            a_name,
                            b_name,
                            kind="transfer",
                            paths=paths,
                            bottleneck_Bps=min(p.bottleneck_Bps for p in paths),
                            span=t.span,
                            ir=t,
                        )
    return d


def _tiers(d: nx.DiGraph, graph: Graph, pool: ir.Pool) -> None:
    """The vertices of ``pool``'s lower KV tiers and the ``offload`` edges to them."""
    for tier in pool.kv.tiers:
        shared = f"{pool.name}/remote"
        if tier.kind == "remote":
            d.add_node(
                shared, kind="tier", tier="remote", pool=pool.name, capacity_B=tier.capacity_B,
                span=tier.span, ir=tier,
            )  # fmt: skip
        for inst in pool.instances:
            rate = tier_bandwidth(graph, pool, inst, tier)
            for name in engines(pool, inst):
                vertex = shared
                if tier.kind != "remote":  # each batch in flight keeps its share
                    vertex = f"{name}/{tier.kind}"
                    d.add_node(
                        vertex, kind="tier", tier=tier.kind, pool=pool.name,
                        capacity_B=tier.capacity_B / pool.microbatches, span=tier.span, ir=tier,
                    )  # fmt: skip
                d.add_edge(name, vertex, kind="offload", bandwidth_Bps=rate, span=tier.span)


def tier_bandwidth(graph: Graph, pool: ir.Pool, inst: ir.Instance, tier: ir.KvTier) -> float:
    """Bytes a second one of ``inst``'s KV blocks moves at between its GPUs and ``tier``:
    each of the ``tp x pp`` GPUs holding a block moves its shard over its own link (to the
    host for ``host`` and ``disk``, to its NIC for ``remote``); a remote block also crosses
    the NICs of those GPUs into the network; and the tier's own ``bandwidth``, if given,
    bounds the whole."""
    topo = graph.topology
    gpus = [gpu_id(g) for g in inst.gpus[: pool.tp * pool.pp]]
    if tier.kind == "remote":
        nics = [next(n for n in topo[g] if topo.nodes[n]["kind"] == "nic") for g in gpus]
        per_gpu = min(topo.edges[g, n]["bandwidth_Bps"] for g, n in zip(gpus, nics, strict=True))
        out = sum(
            max(
                topo.edges[n, f]["bandwidth_Bps"]
                for f in topo[n]
                if topo.nodes[f]["kind"] == "fabric"
            )
            for n in dict.fromkeys(nics)
        )
        rate = min(per_gpu * len(gpus), out)
    else:
        host = [f"{topo.nodes[g]['node']}/host" for g in gpus]
        rate = min(topo.edges[g, h]["bandwidth_Bps"] for g, h in zip(gpus, host, strict=True))
        rate *= len(gpus)
    return rate if tier.bandwidth_Bps is None else min(rate, tier.bandwidth_Bps)


def _faults(d: nx.DiGraph, graph: Graph, spec: ir.Spec) -> None:
    """A ``fault:<k>`` vertex per fault event, with a ``fails`` edge to each instance it
    stops (the instances with a GPU it names), or, for a link, the topology edges it
    slows (both ways)."""
    if spec.faults is None:
        return
    topo = graph.topology
    for k, f in enumerate(spec.faults.events):
        name = f"fault:{k}"
        edges: tuple = ()
        if f.kind == "link":
            nics = [
                n for n, a in topo.nodes(data=True) if a["kind"] == "nic" and a["node"] == f.node
            ]
            edges = tuple(
                e for n in nics for m in topo[n] if topo.nodes[m]["kind"] == "fabric"
                for e in ((n, m), (m, n))
            )  # fmt: skip
        d.add_node(
            name, kind="fault", at_s=f.at_s, event=fault_text(f), edges=edges, span=f.span, ir=f
        )
        if f.kind == "link":
            continue
        gpus = {gpu_id(ir.GpuRef(f.node, i)) for i in f.gpus}
        for v, a in list(d.nodes(data=True)):
            if a["kind"] != "instance":
                continue
            on = [g for g in a["gpus"] if (g in gpus if f.gpus else g.startswith(f"{f.node}/"))]
            if on:
                d.add_edge(name, v, kind="fails", span=f.span)


def fault_text(f: ir.Fault) -> str:
    """``gpu n0[3] down``, ``node n1 drain``, ``link n0 50%``: a fault event as written."""
    if f.kind == "link":
        return f"link {f.node} {f.fraction:.0%}"
    if f.kind == "node":
        return f"node {f.node} {f.action}"
    where = f"{f.gpus[0]}" if len(f.gpus) == 1 else f"{f.gpus[0]}..{f.gpus[-1]}"
    return f"gpu {f.node}[{where}] {f.action}"


def lower(spec: ir.Spec) -> Graph:
    """Build the topology and dataflow graphs of a checked ``spec``.

    A spec without a cluster (a catalogue file) gives empty graphs.
    """
    topology = _topology(spec.cluster) if spec.cluster else nx.Graph()
    graph = Graph(spec, topology, nx.DiGraph())
    if spec.deployment is not None:
        graph.dataflow = _dataflow(spec, graph)
        _faults(graph.dataflow, graph, spec)
    return graph
