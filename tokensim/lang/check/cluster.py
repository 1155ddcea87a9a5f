"""The ``cluster`` block: nodes and networks, and which nodes can reach which."""

from __future__ import annotations

from tokensim import ir
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note, did_you_mean, one_of
from tokensim.lang.schema import BAD, Bodies, Val


def place_gpus(place: Val, cluster: ir.Cluster, env: Env) -> list[ir.GpuRef] | None:
    """The GPUs a place names (``n0``: all of the node's; ``n0[2]``, ``n0[0..3]``: those),
    or None when the node is unknown or lacks them (reported at the place)."""
    nodes = {n.name: n for n in cluster.nodes}
    node_name, first, last = place.value
    node = nodes.get(node_name)
    if node is None:
        _unknown_node(node_name, place.span, nodes, env)
        return None
    if first is None:
        first, last = 0, node.count - 1
    if last >= node.count:
        env.rep.error(f"node `{node_name}` has GPUs 0..{node.count - 1}, not {last}", place.span)
        return None
    return [ir.GpuRef(node_name, i) for i in range(first, last + 1)]


def cluster(body: Bodies, env: Env) -> ir.Cluster | None:
    """The cluster's IR, or None when a node or network could not be built."""
    nodes: list[ir.Node] = []
    ok = True
    seen: dict[str, object] = {}
    for bound in body.all("node"):
        name = bound.get("name")
        if name is BAD or name is None or bound.body is None:
            ok = False
            continue
        if name in seen:
            env.rep.error(
                f"node `{name}` is defined twice",
                bound.stmt.items[0].span,
                Note("first defined here", seen[name]),
            )
            ok = False
            continue
        seen[name] = bound.stmt.items[0].span
        nb = bound.body
        gpus = nb.one("gpus")
        gpu = env.lookup("gpu", gpus.get("gpu")) if gpus else None
        count = gpus.get("count") if gpus else None
        link = env.lookup("link", nb.value("link")) if nb.one("link") else None
        host_link_ref = nb.value("host_link")
        host_link = (
            env.lookup("link", host_link_ref) if host_link_ref else (gpu.host_link if gpu else None)
        )
        if gpu is None or count in (None, BAD) or host_link is None:
            ok = False
            continue
        if count > 1 and nb.one("link") is None:
            env.rep.error(
                f"node `{name}` has {count} GPUs but no `link` between them",
                bound.stmt.items[0].span,
                help=f"add e.g. `link NVLINK4`, or `link {host_link.name}` (its host link) for "
                "GPUs without NVLink",
            )
            ok = False
            continue
        if nb.one("link") is not None and link is None:
            ok = False
            continue
        nics = nb.value("nics", default=1)
        nodes.append(
            ir.Node(name, gpu, count, link, host_link, nics, nb.value("host_memory"), bound.span)
        )
    networks: list[ir.Network] = []
    names = {n.name for n in nodes}
    for bound in body.all("network"):
        link = env.lookup("link", bound.get("link"))
        refs = bound.get("nodes") or ()
        net_ok = link is not None
        listed: set[str] = set()
        for ref in refs:
            if ref.value not in seen:
                _unknown_node(ref.value, ref.span, seen, env)
                net_ok = False
            elif ref.value in listed:
                env.rep.error(f"node `{ref.value}` is listed twice", ref.span)
                net_ok = False
            listed.add(ref.value)
        if net_ok and len(refs) < 2:
            env.rep.error("a network joins at least two nodes", bound.span)
            net_ok = False
        if net_ok and listed <= names:
            networks.append(ir.Network(link, tuple(r.value for r in refs), bound.span))
        else:
            ok = False
    if not ok:
        return None
    return ir.Cluster(tuple(nodes), tuple(networks), body.span)


def _unknown_node(name: str, span, seen, env: Env) -> None:
    env.rep.error(
        f"unknown node `{name}`",
        span,
        Note(f"the cluster has {one_of(seen, word='and')}")
        if seen
        else Note("the cluster has no nodes"),
        help=did_you_mean(name, seen),
    )


def components(cluster: ir.Cluster) -> dict[str, int]:
    """Each node's connected component (nodes joined by networks share a number)."""
    parent = {n.name: n.name for n in cluster.nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for net in cluster.networks:
        for other in net.nodes[1:]:
            parent[find(other)] = find(net.nodes[0])
    roots = sorted({find(n) for n in parent})
    return {n: roots.index(find(n)) for n in parent}
