"""Fault scenarios: the ``fault:<k>`` vertices of the dataflow, happening at their times.

``down``: each instance the fault names fails (:meth:`Instance.fail`): it holds nothing and
is routed nothing until it is ``up``, and the requests it held are sent again (their tokens
so far kept, their KV computed anew) or lost, as ``on_failure`` says. ``drain``: its
instances take no new requests and finish theirs. ``up``: they serve again. A ``link`` fault
makes a node's network links carry a fraction of their bandwidth (KV copies over them
slow), until another sets it back.
"""

from __future__ import annotations

from tokensim.sim.events import Priority


class FaultPlan:
    """The faults of one run: their events on the kernel, and what each did."""

    def __init__(self, sim, faults) -> None:
        self.sim = sim
        self.faults = faults
        flow = sim.graph.dataflow
        self.vertices = [n for n, a in flow.nodes(data=True) if a["kind"] == "fault"]
        self.happened: list[dict] = []
        for k, name in enumerate(self.vertices):
            sim.kernel.at(flow.nodes[name]["at_s"], Priority.ITERATION_END, self._happen, k)

    def _happen(self, k: int) -> None:
        sim = self.sim
        if sim.done >= sim.total:
            return  # after the run's last request: outside the run
        flow = sim.graph.dataflow
        name = self.vertices[k]
        node = flow.nodes[name]
        fault = node["ir"]
        hit = [sim.by_name[v] for v in flow.successors(name)]
        entry = {
            "time_s": fault.at_s,
            "event": node["event"],
            "instances": [inst.name for inst in hit],
            "requests": 0,
        }
        if fault.action == "down":
            for inst in hit:
                if inst.down:
                    continue
                held = inst.fail()
                entry["requests"] += len(held)
                for req in held:
                    sim.failed(req, inst, held=True)
        elif fault.action == "up":
            for inst in hit:
                inst.down = inst.draining = False
        elif fault.action == "drain":
            for inst in hit:
                inst.draining = True
        else:  # a link runs at a fraction of its bandwidth
            sim.network.degrade(node["edges"], fault.fraction)
        self.happened.append(entry)
