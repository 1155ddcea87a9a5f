"""Which cost model prices a pool: the roofline, or a measured table or calibration
(``cost`` in the spec), with the pool's collectives priced on the topology graph."""

from __future__ import annotations

import math

from tokensim import ir
from tokensim.graph.lower import node_exits
from tokensim.perf.roofline import CostModel
from tokensim.perf.shared import MoeLinks, note


def for_pool(pool: ir.Pool, graph) -> CostModel:
    """A :class:`CostModel` for ``pool`` with its collectives priced on ``graph``'s topology.

    The tp ring of each pipeline stage runs over consecutive GPUs of instance 0 (its first
    attention rank; all instances of a pool are placed alike); its bandwidth is the
    narrowest hop's and its latency the slowest hop's. Stage hand-offs use the path from
    the last GPU of one stage to the first of the next. A MoE layer's exchange among a
    stage's ``tp x dp`` GPUs is read off the first stage (:func:`moe_links`). A pool priced
    by the roofline because nothing chose a cost model (its GPU has no calibration) gets
    a note on stderr, once.
    """
    gpus = pool.instances[0].gpus
    tp, pp, size = pool.tp, pool.pp, pool.tp * pool.dp
    ring_bw, ring_lat = math.inf, 0.0
    stage_bw, stage_lat = math.inf, 0.0
    for s in range(pp):
        stage = gpus[s * size : (s + 1) * size]
        if tp > 1:
            bw, lat = _ring(graph, stage[:tp])
            ring_bw, ring_lat = min(ring_bw, bw), max(ring_lat, lat)
        if s + 1 < pp:
            path = graph.path(stage[-1], gpus[(s + 1) * size])
            stage_bw = min(stage_bw, path.bottleneck_Bps)
            stage_lat = max(stage_lat, path.latency_s)
    if pool.speculative is not None:
        from dataclasses import replace

        from tokensim.perf.speculative import Speculating

        spec = pool.speculative
        plain = replace(pool, speculative=None)
        draft = None
        if spec.draft:  # the draft model is dense, on each attention rank's GPUs
            draft = for_pool(replace(plain, model=spec.draft, dp=1, ep=None), graph)
        return Speculating(for_pool(plain, graph), draft, spec, pool.model.layers)
    moe = moe_links(graph, gpus[:size]) if pool.model.experts > 1 and size > 1 else None
    links = (ring_bw, ring_lat, stage_bw, stage_lat)
    if pool.cost.kind == "roofline":
        if pool.cost.span is None:  # nobody chose it: the GPU has no calibration
            note(
                f"pool {pool.name}: no calibration for {pool.gpu.name}: every op priced from "
                "its datasheet figures and efficiency block (cost roofline)"
            )
        return CostModel(pool, *links, moe=moe)
    from tokensim.perf.backend import measured  # numpy tables, loaded when a pool needs them

    return measured(pool, *links, moe=moe)


def _ring(graph, gpus) -> tuple[float, float]:
    """(narrowest hop's bandwidth, slowest hop's latency) of a ring over ``gpus`` in order."""
    paths = [graph.path(a, b) for a, b in zip(gpus, gpus[1:] + gpus[:1], strict=True)]
    return min(p.bottleneck_Bps for p in paths), max(p.latency_s for p in paths)


def moe_links(graph, group: tuple) -> MoeLinks:
    """How a MoE layer's tokens travel among ``group``, a stage's GPUs, seen from its first.

    The ring over the whole group: its narrowest hop and slowest latency. The all-to-all:
    the path to another of the group's GPUs in the first one's node (``intra_Bps``), and
    out of the node to the first GPU elsewhere, divided by how many of the group's GPUs in
    the node cross the same link on their way there (GPUs sharing a NIC share its
    bandwidth): ``inter_Bps``.
    """
    ring_bw, ring_lat = _ring(graph, group)
    first = group[0]
    local = [g for g in group if g.node == first.node]
    remote = [g for g in group if g.node != first.node]
    intra, latency = math.inf, 0.0
    if len(local) > 1:
        path = graph.path(first, local[1])
        intra, latency = path.bottleneck_Bps, path.latency_s
    inter = math.inf
    if remote:
        load: dict[tuple[str, str], int] = {}  # the node's GPUs crossing each edge out
        paths = [graph.path(g, remote[0]) for g in local]
        for path in paths:
            for edge in node_exits(path.hops, first.node):
                load[edge] = load.get(edge, 0) + 1
        out = paths[0]
        inter = min(
            graph.topology.edges[edge]["bandwidth_Bps"] / load[edge]
            for edge in node_exits(out.hops, first.node)
        )
        inter = min(inter, out.bottleneck_Bps)
        latency = max(latency, out.latency_s)
    return MoeLinks(ring_bw, ring_lat, intra, inter, len(local), latency)
