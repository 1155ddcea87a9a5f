"""Autoscaling: how many of a pool's instances serve, by rules on their load.

A pool's instances are its GPUs; an :class:`Autoscaler` keeps between ``min`` and ``max``
of them serving (``ir.Autoscale``). Every ``interval`` it takes the mean of each rule's
metric over the serving instances; a rule whose metric has stayed past its value for its
time fires (the first in spec order, at most one per look, none within ``cooldown`` of the
last action). ``add`` starts off instances (a stopping one is taken back first: it is still
loaded), which serve ``startup`` later; ``remove`` stops the serving instances started last:
they take no new requests and are released when their last one is done. The GPUs of an
instance are held from its start until its release (``up_s``), which cost and energy count.
An instance that keeps several batches in flight (``microbatches``) scales as one.
"""

from __future__ import annotations

from array import array

from tokensim import ir
from tokensim.sim.events import Priority

OFF, STARTING, SERVING, STOPPING = "off", "starting", "serving", "stopping"


class Autoscaler:
    """The autoscaler of one pool: its instances (by index, each one or several engines)
    and their states, the rules' timers, and the fleet over time."""

    def __init__(self, sim, rule: ir.Autoscale, engines: list) -> None:
        self.sim = sim
        self.kernel = sim.kernel
        self.rule = rule
        self.groups: dict[int, list] = {}
        for inst in engines:
            self.groups.setdefault(inst.index, []).append(inst)
        self.order = sorted(self.groups)
        self.state = {k: OFF for k in self.order}
        self.since: dict[int, float] = {}  # when each held instance was started
        self.up_s = dict.fromkeys(self.order, 0.0)  # seconds its GPUs were held
        self.held: list[float | None] = [None] * len(rule.rules)
        self.last_action = float("-inf")
        self.actions: list[tuple[float, str, int]] = []  # (time, add|remove, instance)
        # (time, serving, starting, stopping) at every change
        self.series = array("d")
        for k in self.order[: rule.initial]:
            self.state[k] = SERVING
            self.since[k] = 0.0
        for k, group in self.groups.items():
            for inst in group:
                inst.serving = self.state[k] == SERVING
                inst.watchers.append(self._changed)
        self._sample()
        self.kernel.at(rule.interval_s, Priority.SCHEDULE, self._look)

    def _count(self, state: str) -> int:
        return sum(1 for s in self.state.values() if s == state)

    def _sample(self) -> None:
        self.series.extend(
            (self.kernel.now, self._count(SERVING), self._count(STARTING), self._count(STOPPING))
        )

    def _set(self, k: int, state: str) -> None:
        self.state[k] = state
        for inst in self.groups[k]:
            inst.serving = state == SERVING
        self._sample()

    def metric(self, name: str) -> float:
        """The mean of ``name`` over the serving instances' engines (0 with none)."""
        engines = [i for k in self.order if self.state[k] == SERVING for i in self.groups[k]]
        if not engines:
            return 0.0
        total = 0.0
        for inst in engines:
            if name in ("running", "kv_used"):
                inst.sync()
            if name == "queue":
                total += len(inst.waiting) + len(inst.accepting) + len(inst.incoming)
            elif name == "running":
                total += len(inst.running)
            elif name == "requests":
                total += inst.n_requests
            else:
                total += inst.kv.used_blocks / inst.kv.capacity_blocks
        return total / len(engines)

    def _look(self) -> None:
        """Evaluate the rules; act on the first that fires; look again ``interval`` on
        (while requests remain)."""
        sim, now, rule = self.sim, self.kernel.now, self.rule
        if sim.done >= sim.total:
            return
        fire = None
        for j, r in enumerate(rule.rules):
            value = self.metric(r.metric)
            if not (value > r.value if r.above else value < r.value):
                self.held[j] = None
                continue
            if self.held[j] is None:
                self.held[j] = now
            ready = now - self.held[j] >= r.for_s and now - self.last_action >= rule.cooldown_s
            if fire is None and ready:
                fire = r
        if fire is not None and (self._add(fire.count) if fire.add else self._remove(fire.count)):
            self.last_action = now
            self.held = [None] * len(rule.rules)
        self.kernel.at(now + rule.interval_s, Priority.SCHEDULE, self._look)

    def _add(self, count: int) -> bool:
        """Start up to ``count`` instances (within ``max``); whether any was."""
        room = self.rule.max - self._count(SERVING) - self._count(STARTING)
        done = 0
        for k in self.order:  # a stopping instance is still loaded: it serves again at once
            if done < min(count, room) and self.state[k] == STOPPING:
                self._set(k, SERVING)
                self.actions.append((self.kernel.now, "add", k))
                done += 1
        for k in self.order:
            if done < min(count, room) and self.state[k] == OFF:
                self._set(k, STARTING)
                self.since[k] = self.kernel.now
                self.actions.append((self.kernel.now, "add", k))
                self.kernel.at(self.kernel.now + self.rule.startup_s, Priority.ARRIVAL, self._up, k)
                done += 1
        return done > 0

    def _up(self, k: int) -> None:
        if self.state[k] == STARTING:
            self._set(k, SERVING)

    def _remove(self, count: int) -> bool:
        """Stop up to ``count`` serving instances, the last started first (keeping
        ``min``); whether any was."""
        room = self._count(SERVING) - self.rule.min
        serving = [k for k in self.order if self.state[k] == SERVING]
        serving.sort(key=lambda k: (self.since[k], k), reverse=True)
        for k in serving[: max(0, min(count, room))]:
            self._set(k, STOPPING)
            self.actions.append((self.kernel.now, "remove", k))
            self._changed(self.groups[k][0])
        return room > 0

    def _changed(self, inst) -> None:
        """An engine's request count changed: a stopping instance with none left is
        released."""
        k = inst.index
        if self.state[k] == STOPPING and all(i.n_requests == 0 for i in self.groups[k]):
            self._set(k, OFF)
            self.up_s[k] += self.kernel.now - self.since.pop(k)

    def close(self, end_s: float) -> None:
        """The run ended at ``end_s``: the instances still held are held until then."""
        for k, t in self.since.items():
            self.up_s[k] += max(0.0, end_s - t)
        self.since.clear()
