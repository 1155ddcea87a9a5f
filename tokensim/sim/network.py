"""Data moving over the topology: flows that share links.

A *flow* moves a number of bytes along a path of topology edges. Every edge has a
bandwidth per direction; the flows crossing an edge in one direction share it. The
rates are max-min fair (progressive filling): the most contended edge splits its
bandwidth equally among its flows, those flows are fixed at that rate, their share
is taken off the other edges they cross, and so on. So two equal flows on one link
each get half of it and take twice as long as one alone, while a flow limited
elsewhere leaves its unused share to the others.

Rates change only when a flow starts or ends; between those moments each flow drains at
a constant rate, so the network needs one pending event (the next flow to drain) and
O(flows x path length x log edges) work per change (the edges wait in a heap by their
fair share; the flows along each path, the paths over each edge and the flows on each
edge are kept as flows start and end, not rebuilt per change). A flow ends at the *time*
its rate says (``finish_s``, set whenever rates change), not when its bytes left reach
some threshold: bytes are ``rate x time`` products, and at large simulated times the
clock cannot resolve the time a leftover byte takes, so a byte test could wait for an
instant that never comes. A flow's last byte arrives the path's latency after it leaves,
and then ``on_done`` is called.

Traffic that is not a flow of bytes to move but a share of a link's time, an
expert-parallel instance's all-to-all while it steps, is *background*: :meth:`Network.load`
takes that share of the edges' bandwidth away from the flows on them (at most
:data:`MOST_TAKEN`, so a copy always moves), until it is set again.

Each directed edge that has carried a flow keeps a time series of (time, flows,
bytes in flight, utilization: the share of its bandwidth the flows and the background use)
for the result files.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable

from tokensim.sim.events import Kernel, Priority

Edge = tuple[str, str]  # (from vertex, to vertex): one direction of a topology link
MOST_TAKEN = 0.9  # the largest share of an edge background traffic takes from the flows


class Flow:
    """``bytes`` along ``edges``; ``rate`` (B/s) while it drains."""

    __slots__ = ("edges", "left", "rate", "latency_s", "on_done", "finish_s")

    def __init__(self, edges, size_B, latency_s, on_done):
        self.edges: tuple[Edge, ...] = edges
        self.left = float(size_B)
        self.rate = 0.0
        self.latency_s = latency_s
        self.on_done = on_done
        self.finish_s = 0.0  # when it drains at its rate (set with the rate)


class Network:
    """The flows in flight on a topology graph (edges with ``bandwidth_Bps``)."""

    def __init__(self, kernel: Kernel, topology) -> None:
        self.kernel = kernel
        self.topology = topology
        self.flows: list[Flow] = []
        self.updated_s = 0.0
        self.version = 0
        # per edge, its rows (time, flows, bytes in flight, utilization) laid flat
        self.series: dict[Edge, array] = {}
        self.moved_B: dict[Edge, float] = {}
        self._capacity: dict[Edge, float] = {}
        # kept as flows come and go: the flows along each path, the paths over each edge
        # and the flows on each edge
        self._paths: dict[tuple[Edge, ...], list[Flow]] = {}
        self._users: dict[Edge, dict[tuple[Edge, ...], None]] = {}
        self._count: dict[Edge, int] = {}
        # background traffic: per owner, the edges it loads and the share it takes; per
        # edge, the share all owners take together
        self._loads: dict[object, tuple[tuple[Edge, ...], float]] = {}
        self._raw: dict[Edge, float] = {}  # the owners' shares summed
        self._taken: dict[Edge, float] = {}  # that, at most MOST_TAKEN

    def load(self, owner, edges: tuple[Edge, ...], share: float) -> None:
        """From now on ``owner``'s background traffic takes ``share`` of each of ``edges``
        (0: none), in place of what it took before; the flows on them are reshared."""
        old_edges, old = self._loads.get(owner, ((), 0.0))
        if old == share and old_edges == edges:
            return
        raw = self._raw
        for e in old_edges:
            raw[e] -= old
        for e in edges:
            raw[e] = raw.get(e, 0.0) + share
        if share > 0:
            self._loads[owner] = (edges, share)
        else:
            self._loads.pop(owner, None)
        flowing = False
        for e in (*old_edges, *edges):
            if raw[e] > 1e-12:
                self._taken[e] = min(MOST_TAKEN, raw[e])
            else:
                raw[e] = 0.0
                self._taken.pop(e, None)
            flowing = flowing or e in self._count
        if flowing:
            self._drain()
            self._reshare()

    def degrade(self, edges: tuple[Edge, ...], fraction: float) -> None:
        """From now on each of ``edges`` (directed) carries ``fraction`` of its bandwidth
        (1: all of it again); the flows on them are reshared."""
        self._drain()
        for e in edges:
            self._capacity[e] = self.topology.edges[e]["bandwidth_Bps"] * fraction
        if any(e in self._count for e in edges):
            self._reshare()

    def capacity(self, edge: Edge) -> float:
        """Bandwidth of one direction of a topology edge (B/s)."""
        bw = self._capacity.get(edge)
        if bw is None:
            bw = self._capacity[edge] = self.topology.edges[edge]["bandwidth_Bps"]
        return bw

    def send(
        self, paths: list[tuple[tuple[str, ...], float]], size_B: float, on_done: Callable[[], None]
    ) -> None:
        """Start moving ``size_B`` bytes along each of ``paths`` (vertices, latency s) at
        once; ``on_done()`` is called when the last byte of every one has arrived."""
        left = [len(paths)]

        def one_done() -> None:
            left[0] -= 1
            if left[0] == 0:
                on_done()

        now = self.kernel.now
        self._drain()
        added = False
        for hops, latency_s in paths:
            edges = tuple(zip(hops, hops[1:], strict=False))
            if not edges or size_B <= 0:  # same GPU, or nothing to move
                self.kernel.at(now + latency_s, Priority.TRANSFER_END, one_done)
                continue
            flow = Flow(edges, size_B, latency_s, one_done)
            self.flows.append(flow)
            self._join(flow)
            for e in edges:
                self.moved_B[e] = self.moved_B.get(e, 0.0) + size_B
            added = True
        if added:
            self._reshare()

    # -- internals --------------------------------------------------------------------------

    def _join(self, flow: Flow) -> None:
        """Count a new flow in on its path and edges."""
        edges = flow.edges
        same = self._paths.get(edges)
        if same is None:
            self._paths[edges] = [flow]
            for e in edges:
                self._users.setdefault(e, {})[edges] = None
                self.capacity(e)  # known from now on
        else:
            same.append(flow)
        count = self._count
        for e in edges:
            count[e] = count.get(e, 0) + 1

    def _leave(self, flow: Flow) -> None:
        """Count a drained flow out of its path and edges."""
        edges = flow.edges
        same = self._paths[edges]
        same.remove(flow)
        if not same:
            del self._paths[edges]
            for e in edges:
                users = self._users[e]
                del users[edges]
                if not users:
                    del self._users[e]
        count = self._count
        for e in edges:
            n = count[e] - 1
            if n:
                count[e] = n
            else:
                del count[e]

    def _drain(self) -> None:
        """Bring every flow's bytes left up to now."""
        now = self.kernel.now
        dt = now - self.updated_s
        if dt > 0:
            for f in self.flows:
                f.left -= f.rate * dt
        self.updated_s = now

    def _reshare(self) -> None:
        """Max-min fair rates for the flows in flight; schedule the next to drain.

        Flows along the same edges are alike and get the same rate, so the filling works
        on paths: an edge's fair share counts the flows on it, and fixing a path fixes
        all its flows at once (the room they take is subtracted flow by flow, so the
        figures are those of filling flow by flow)."""
        flows = self.flows
        paths = dict(self._paths)  # the paths not yet fixed
        users = self._users
        flows_on = self._count
        count = dict(flows_on)  # flows on each edge not yet fixed
        in_flight: dict[Edge, float] = dict.fromkeys(flows_on, 0.0)  # their bytes left
        for f in flows:
            left = f.left
            for e in f.edges:
                in_flight[e] += left
        cap, taken = self._capacity, self._taken
        room = {e: cap[e] * (1.0 - taken.get(e, 0.0)) for e in flows_on}
        # the edges by their fair share (room / flows not yet fixed), lowest first; an
        # entry whose share is no longer the edge's is passed over when it comes up
        heap = [(r / count[e], e) for e, r in room.items()]
        heapq.heapify(heap)
        while paths:  # the paths not yet fixed
            share, edge = heapq.heappop(heap)
            if not count[edge] or share != room[edge] / count[edge]:
                continue
            touched: dict[Edge, None] = {}
            for path in users[edge]:
                same = paths.pop(path, None)
                if same is None:
                    continue  # fixed already
                for f in same:
                    f.rate = share
                n = len(same)
                for e in path:
                    left = room[e]
                    for _ in range(n):
                        left -= share
                    room[e] = left
                    count[e] -= n
                    touched[e] = None
            for e in touched:
                if count[e]:
                    heapq.heappush(heap, (room[e] / count[e], e))
        now = self.kernel.now
        series = self.series
        for e, n in flows_on.items():
            rows = series.get(e)
            if rows is None:
                rows = series[e] = array("d")
            rows.extend((now, n, in_flight[e], 1.0 - room[e] / cap[e]))
        self.version += 1
        if flows:
            first = flows[0]  # the flows are in start order: of equal times, the first
            for f in flows:
                f.finish_s = t = now + max(0.0, f.left / f.rate)
                if t < first.finish_s:
                    first = f
            self.kernel.at(first.finish_s, Priority.TRANSFER_END, self._drained, self.version)

    def _drained(self, version: int) -> None:
        if version != self.version:
            return
        self._drain()
        now = self.kernel.now
        # done: the flows whose time is up (at least the one this event was set for)
        done = [f for f in self.flows if f.finish_s <= now]
        self.flows = [f for f in self.flows if f.finish_s > now]
        for f in done:
            self._leave(f)
        for e in {e for f in done for e in f.edges}:
            if e not in self._count:  # no flow left on it
                self.series[e].extend((now, 0, 0.0, 0.0))
        self._reshare()
        for f in done:
            self.kernel.at(now + f.latency_s, Priority.TRANSFER_END, f.on_done)
