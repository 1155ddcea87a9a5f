"""The ``faults`` block: what fails, and when."""

from __future__ import annotations

from tokensim import ir
from tokensim.lang.check.cluster import place_gpus
from tokensim.lang.check.env import Env
from tokensim.lang.schema import BAD, Bodies, Val


def faults(body: Bodies, cluster: ir.Cluster, env: Env) -> ir.Faults | None:
    """The fault events in time order (as written for equal times); None when one names a
    node or GPU the cluster lacks, or is otherwise wrong (reported)."""
    networked = {n for net in cluster.networks for n in net.nodes}
    events = []
    for bound in body.all("at"):
        at, event = bound.get("at"), bound.get("event")
        if BAD in (at, event) or None in (at, event):
            return None
        kind, where, action, share = event.value
        gpus = place_gpus(Val(where, event.span), cluster, env)
        if gpus is None:
            return None
        node = where[0]
        if kind == "link" and node not in networked:
            env.rep.error(f"node `{node}` is on no network: it has no links to degrade", event.span)
            return None
        named = tuple(g.index for g in gpus) if kind == "gpu" else ()  # a node or link: none
        events.append(ir.Fault(at, kind, node, named, action, share, bound.span))
    events.sort(key=lambda e: e.at_s)
    policy = body.value("on_failure", default="recompute")
    if not events or policy is None:
        return None
    return ir.Faults(tuple(events), policy, body.span)
