"""The ``faults`` block: what fails, and when."""

from __future__ import annotations

from tokensim import ir
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note, did_you_mean, one_of
from tokensim.lang.schema import BAD, Bodies


def faults(body: Bodies, cluster: ir.Cluster, env: Env) -> ir.Faults | None:
    """The fault events in time order (as written for equal times); None when one names a
    node or GPU the cluster lacks, or is otherwise wrong (reported)."""
    nodes = {n.name: n for n in cluster.nodes}
    networked = {n for net in cluster.networks for n in net.nodes}
    events = []
    for bound in body.all("at"):
        at, event = bound.get("at"), bound.get("event")
        if BAD in (at, event) or None in (at, event):
            return None
        kind, (node, first, last), action, share = event.value
        if node not in nodes:
            env.rep.error(
                f"unknown node `{node}`",
                event.span,
                Note(f"the cluster has {one_of(nodes, word='and')}"),
                help=did_you_mean(node, nodes),
            )
            return None
        gpus: tuple[int, ...] = ()
        if kind == "gpu":
            first, last = (0, nodes[node].count - 1) if first is None else (first, last)
            if last >= nodes[node].count:
                env.rep.error(
                    f"node `{node}` has GPUs 0..{nodes[node].count - 1}, not {last}", event.span
                )
                return None
            gpus = tuple(range(first, last + 1))
        if kind == "link" and node not in networked:
            env.rep.error(f"node `{node}` is on no network: it has no links to degrade", event.span)
            return None
        events.append(ir.Fault(at, kind, node, gpus, action, share, bound.span))
    events.sort(key=lambda e: e.at_s)
    policy = body.value("on_failure", default="recompute")
    if not events or policy is None:
        return None
    return ir.Faults(tuple(events), policy, body.span)
