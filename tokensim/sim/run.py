"""Stage 4: ``simulate(graph, seed) -> Result``.

Executes the lowered graph (:mod:`tokensim.graph.lower`): one :class:`Instance` per
``instance`` vertex of the dataflow (its pool's cost model, KV block pool and batching
policy, its swap bandwidth from the topology's GPU-host edges), the arrival router of the
vertex the ``source`` feeds, and per prefill pool the routers its ``handoff`` edges lead to.
It generates the workload of the ``source`` vertex, routes each request on arrival (and,
under disaggregation, again when its prefill ends, copying its KV along the paths of the
``transfer`` edge as :mod:`tokensim.sim.network` flows) and runs the event kernel until
every request is done. What runs is what ``tokensim graph`` shows. All state is on the
:class:`Simulation` object; the random generator is seeded from the spec's
workload seed (or ``seed``), so the same spec and seed give identical results.
"""

from __future__ import annotations

import os
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokensim import ir
from tokensim.graph.lower import node_exits
from tokensim.lang.diagnostics import CompileError, Diagnostic
from tokensim.lang.source import Span
from tokensim.perf import for_pool
from tokensim.policies.batching import BATCHING
from tokensim.policies.memory import kv_geometry
from tokensim.policies.routing import count_requests, router_for
from tokensim.sim.autoscale import Autoscaler
from tokensim.sim.events import Kernel, Priority
from tokensim.sim.faults import FaultPlan
from tokensim.sim.instance import Instance
from tokensim.sim.kv import BlockManager
from tokensim.sim.network import Network
from tokensim.sim.request import Request, State
from tokensim.sim.tiers import Tier, tier_figures
from tokensim.workload import TraceError, generate


def _host_bandwidth(graph, gpus: tuple[str, ...]) -> float:
    """The bandwidth swap traffic of an instance on ``gpus`` moves at: their links to their
    host in the topology graph (a node's ``host_link``, else its GPU's), the slowest of
    them (each tensor-parallel rank swaps its own shard, all at once)."""
    topo = graph.topology
    return min(topo.edges[g, f"{topo.nodes[g]['node']}/host"]["bandwidth_Bps"] for g in gpus)


def _all_to_all_edges(graph, pool: ir.Pool, gpus: tuple[str, ...]) -> tuple | None:
    """The directed topology edges an expert-parallel instance on ``gpus`` sends and
    receives its all-to-all over out of each node: from each GPU to a GPU of its stage's
    group on another node, the edges in the GPU's node and out of it, both ways. None
    when its all-to-all stays within nodes (or it has none)."""
    if pool.ep is None or pool.dp == 1:
        return None
    size = pool.tp * pool.dp
    edges: dict[tuple[str, str], None] = {}
    for s in range(pool.pp):
        group = gpus[s * size : (s + 1) * size]
        for g in group:
            node = graph.topology.nodes[g]["node"]
            peer = next((p for p in group if graph.topology.nodes[p]["node"] != node), None)
            if peer is None:
                continue
            for u, v in node_exits(graph.path(g, peer).hops, node):
                edges[(u, v)] = edges[(v, u)] = None
    return tuple(edges) or None


class SimulationError(CompileError):
    """A spec that checks but cannot be simulated (reported like a compile error)."""


@dataclass
class InstanceResult:
    """What one instance did: its counters and its time series."""

    name: str
    pool: str
    gpus: tuple[str, ...]
    kv_capacity_blocks: int
    iterations: int
    busy_s: float
    preemptions: int
    # columns: time_s, running, waiting, kv_used_blocks, batch_tokens, kv_cached_blocks,
    # kv_swapped_blocks
    series: np.ndarray
    # one row per iteration or run of decode steps (see Instance.work)
    work: np.ndarray  # columns: start_s, end_s, prefill_tokens, decode_seqs, steps
    up_s: float | None = None  # autoscaled: seconds its GPUs were held (None: the whole run)


@dataclass
class Result:
    """Plain data out of the simulator: per-request columns, per-instance results."""

    spec: ir.Spec
    seed: int
    requests: dict[str, np.ndarray]
    instances: list[InstanceResult]
    itl_s: np.ndarray
    itl_weights: np.ndarray
    simulated_s: float
    events: int
    wall_s: float
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the figures alone would hide
    # every request's state changes (time s, event, value), if simulate() was asked to keep them
    transitions: list[list[tuple[float, str, int]]] = field(default_factory=list)
    # per directed topology edge that carried KV: (time_s, flows, bytes in flight,
    # utilization) rows
    links: dict[str, np.ndarray] = field(default_factory=dict)
    link_bytes: dict[str, float] = field(default_factory=dict)  # bytes moved over each
    # per lower KV tier (dataflow vertex): kind, pool, capacity and what moved
    tiers: list[dict] = field(default_factory=list)
    # per autoscaled pool: its fleet at every change (time_s, serving, starting, stopping),
    # and its actions (time_s, add|remove, instance index)
    fleet: dict[str, np.ndarray] = field(default_factory=dict)
    scaling: dict[str, list] = field(default_factory=dict)
    # each fault that happened: time_s, event, the instances it hit, the requests they held
    faults: list[dict] = field(default_factory=list)


@dataclass
class _Handoff:
    """Where a prefill pool's requests go after prefill: the decode instances, the router
    choosing among them, and the prompt length below which they skip the prefill pool."""

    targets: list[Instance]
    router: object
    direct_below: int


class Simulation:
    """One run of one spec: kernel, instances, routers, requests."""

    def __init__(self, graph, seed: int | None = None, progress=None, transitions=False):
        spec = graph.spec
        self.spec = spec
        self.transitions = transitions  # keep every request's transition log
        if spec.deployment is None or spec.workload is None:
            missing = "deployment" if spec.deployment is None else "workload"
            start = Span(spec.file, 1, 1, 1, 2)
            raise SimulationError(
                [
                    Diagnostic(
                        f"the spec has no `{missing}` to simulate",
                        start,
                        help=f"add a `{missing} {{ ... }}` block",
                    )
                ]
            )
        flow = graph.dataflow  # what runs: every vertex and edge below is one of it
        self.workload = flow.nodes["source"]["ir"]
        self.seed = self.workload.seed if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        self.kernel = Kernel()
        self.graph = graph
        self.network = Network(self.kernel, graph.topology)
        self.progress = progress
        self.instances: list[Instance] = []
        self.by_name: dict[str, Instance] = {}
        self.tiers: dict[str, Tier] = {}  # lower KV tiers by dataflow vertex
        sizes: dict[str, tuple] = {}  # per pool: cost model, KV geometry
        for name, node in flow.nodes(data=True):
            if node["kind"] == "instance":
                pool = node["ir"]
                if pool.name not in sizes:
                    sizes[pool.name] = self._pool_sizes(pool)
                inst = self._instance(pool, name, node["index"], node["gpus"], *sizes[pool.name])
                inst.fabric = _all_to_all_edges(graph, pool, node["gpus"])
                self.instances.append(inst)
                self.by_name[name] = inst
        self.pools = tuple(dict.fromkeys(i.pool for i in self.instances))
        # prefix-cache block ids are made for the smallest block of the pools
        self.hash_block_tokens = min((p.kv.block_tokens for p in self.pools), default=0)
        self._caching = any(p.kv.prefix_cache for p in self.pools)
        # arrivals: the router the source feeds and the instances it routes to
        (first,) = flow.successors("source")
        self.router = router_for(flow.nodes[first]["ir"].policy)
        self.entry = [self.by_name[n] for n in flow.successors(first)]
        # disaggregation: per prefill pool, the routers its instances hand off to (in the
        # order of its `transfer` statements), and their instances
        self.sends_to: dict[str, _Handoff] = {}
        for name, node in flow.nodes(data=True):
            if node["kind"] != "instance" or node["ir"].name in self.sends_to:
                continue
            handoffs = [
                (r, e) for _, r, e in flow.out_edges(name, data=True) if e["kind"] == "handoff"
            ]
            if not handoffs:
                continue
            targets = [self.by_name[n] for r, _ in handoffs for n in flow.successors(r)]
            router = router_for(flow.nodes[handoffs[0][0]]["ir"].policy)
            below = max(e["ir"].direct_below for _, e in handoffs)
            self.sends_to[node["ir"].name] = _Handoff(targets, router, below)
        # autoscaled pools: the autoscaler vertices of the dataflow, and what they scale
        self.autoscalers = [
            Autoscaler(self, node["ir"], [self.by_name[v] for v in flow.successors(name)])
            for name, node in flow.nodes(data=True)
            if node["kind"] == "autoscaler"
        ]
        self.ended_s: float | None = None  # when the last request was done
        faults = graph.spec.faults
        self.faults = FaultPlan(self, faults) if faults is not None else None
        self.varies = bool(self.autoscalers) or self.faults is not None  # who may serve
        self.check = os.environ.get("TOKENSIM_CHECK") == "1"
        self.done = 0
        # a closed loop: how many clients, and the next request to send
        arrivals = self.workload.arrivals
        self.clients = arrivals.get("clients") if arrivals and arrivals.name == "closed" else 0
        self.sent = 0
        self.classes = self.workload.classes  # request classes (none: one class)

    def _pool_sizes(self, pool: ir.Pool) -> tuple:
        """(cost model, KV blocks, bytes a block, swap blocks) of an instance of ``pool``
        (of each batch a pipelined instance keeps in flight: its share of the memory)."""
        capacity, block_bytes, _, _ = kv_geometry(pool)
        capacity //= pool.microbatches
        if capacity < 1:
            raise SimulationError(
                [
                    Diagnostic(
                        f"pool `{pool.name}` has no memory left for the KV cache once "
                        "weights and activations are placed",
                        pool.span,
                    )
                ]
            )
        swap_blocks = int(pool.kv.swap_B / (pool.tp * pool.pp) // block_bytes)
        return for_pool(pool, self.graph), capacity, block_bytes, swap_blocks // pool.microbatches

    def _instance(
        self, pool, name, index, gpus, cost, capacity, block_bytes, swap_blocks
    ) -> Instance:
        """The dataflow vertex ``name``: instance ``index`` of ``pool`` (or one batch in
        flight through its stages) on the topology's ``gpus``."""
        kv = pool.kv
        tiers = self._tiers_of(name, pool, block_bytes)
        manager = BlockManager(
            capacity,
            kv.block_tokens,
            int(kv.watermark * capacity),
            kv.prefix_cache,
            swap_blocks,
            tiers=tiers,
        )
        host_Bps = _host_bandwidth(self.graph, gpus) * pool.gpu.efficiency.network
        policy = BATCHING.get(pool.batching.name).from_use(pool.batching)
        policy = policy.for_ranks(pool.dp, pool.microbatches)
        inst = Instance(self, pool, name, index, cost, manager, policy, host_Bps, block_bytes)
        inst.tier_s = {  # seconds to load one block from each tier
            t: t.block_B / (rate * pool.gpu.efficiency.network) for t, rate in tiers.items()
        }
        return inst

    def _tiers_of(self, name: str, pool: ir.Pool, block_bytes: float) -> dict:
        """The lower KV tiers of the dataflow vertex ``name`` (its ``offload`` edges),
        fastest first, with the bytes a second a block moves at to each; a shared remote
        tier is made once. Each tier falls through to the next."""
        flow = self.graph.dataflow
        edges = [(v, e) for _, v, e in flow.out_edges(name, data=True) if e["kind"] == "offload"]
        edges.sort(key=lambda ve: ir.TIER_KINDS.index(flow.nodes[ve[0]]["tier"]))
        whole_B = block_bytes * pool.tp * pool.pp  # a block: every GPU's shard of it
        out = {}
        for vertex, edge in edges:
            tier = self.tiers.get(vertex)
            if tier is None:
                node = flow.nodes[vertex]
                blocks = int(node["capacity_B"] // whole_B)
                if blocks < 1:
                    raise SimulationError(
                        [
                            Diagnostic(
                                f"`tier {node['tier']}` holds no whole KV block of pool "
                                f"`{pool.name}` ({whole_B:.3g} bytes)",
                                node["ir"].span,
                            )
                        ]
                    )
                tier = self.tiers[vertex] = Tier(
                    vertex, node["tier"], blocks, node["ir"].through, whole_B, pool.kv.block_tokens
                )
            out[tier] = edge["bandwidth_Bps"]
        chain = list(out)
        for upper, lower in zip(chain, chain[1:], strict=False):
            if upper.kind != "remote":
                upper.below = lower
        return out

    def _workload(self):
        try:
            work = generate(self.workload, Path(self.spec.file).parent, self.rng)
        except TraceError as err:
            raise err.to_compile_error() from None
        return work

    def _request(self, i: int, arrival_s: float | None = None) -> Request:
        """Request ``i`` of the workload, made when it is sent (``arrival_s``: when, if
        not the workload's time): only requests in flight are objects."""
        work = self.work
        prompt = int(work.prompt_tokens[i])
        hashes = None
        if self._caching and work.prefix_hashes is not None and work.prefix_hashes[i]:
            hashes = _kv_hashes(
                work.prefix_hashes[i], work.prefix_block_tokens, self.hash_block_tokens, prompt
            )
        session = -1
        if self.session is not None:
            session = int(self.session[i])
            if self._caching:  # its conversation so far: blocks past a shared prefix are its own
                shared = hashes or ()
                block = self.hash_block_tokens
                hashes = shared + tuple(
                    ("s", session, j) for j in range(len(shared), prompt // block)
                )
        req = Request(
            i,
            float(work.arrival_s[i]) if arrival_s is None else arrival_s,
            prompt,
            int(work.output_tokens[i]),
            int(work.priority[i]),
            hashes,
            self.transitions,
            session,
        )
        if work.klass is not None:  # its class's priority and deadline
            req.klass = int(work.klass[i])
            cls = self.classes[req.klass]
            req.priority = cls.priority
            if cls.deadline_s is not None:
                req.deadline_s = req.arrival_s + cls.deadline_s
        return req

    def answer_blocks(self, req: Request, block_tokens: int) -> tuple:
        """The ids of the full KV blocks a finished turn of a conversation computed past its
        prompt (its answer), which the next turn's prompt starts with: an instance's prefix
        cache keeps them (vLLM caches every full block). () for other requests."""
        if req.session < 0 or not self._caching or block_tokens != self.hash_block_tokens:
            return ()
        start = len(req.hashes) if req.hashes else 0
        return tuple(("s", req.session, j) for j in range(start, req.computed // block_tokens))

    def run(self) -> Result:
        """Simulate every request to the end; return the plain-data :class:`Result`."""
        started = time.perf_counter()
        self.work = self._workload()
        self.total = len(self.work)
        self.ledger = _Ledger(self.total, self.instances, self.transitions)
        self.max_context = min(p.model.max_context for p in self.pools)
        # conversations: the first turn of each (what the arrival process sends)
        self.session = self.work.session
        self.think_s = self.work.think_s
        self.starts = self.work.first_turns if self.session is not None else None
        if self.clients:
            self.sent = min(self.clients, self.total if self.starts is None else len(self.starts))
            for k in range(self.sent):
                i = k if self.starts is None else int(self.starts[k])
                self.kernel.at(0.0, Priority.ARRIVAL, self._arrive, i, False)
        elif self.total:
            first = float(self.work.arrival_s[0])
            self.kernel.at(first, Priority.ARRIVAL, self._arrive, 0)
        self.kernel.run(self._after_event if (self.check or self.progress) else None)
        if self.done != self.total:
            raise AssertionError(f"{self.total - self.done} requests never finished")
        for inst in self.instances:
            if not inst.kv.all_free():
                raise AssertionError(f"{inst.name} holds KV blocks after the run")
        return self._result(time.perf_counter() - started)

    def _arrive(self, index: int, chain: bool = True, arrival_s: float | None = None) -> None:
        """Request ``index`` is sent (``chain``: and the next one's arrival is scheduled)."""
        req = self._request(index, arrival_s)
        if chain:
            following = index + 1  # the next request the arrival process sends
            if self.starts is not None:  # the next conversation's first turn
                k = int(np.searchsorted(self.starts, index, side="right"))
                following = int(self.starts[k]) if k < len(self.starts) else self.total
            if following < self.total:
                nxt = float(self.work.arrival_s[following])
                self.kernel.at(nxt, Priority.ARRIVAL, self._arrive, following)
        max_context = self.max_context
        if req.prompt + req.output > max_context:
            total = req.prompt + req.output
            self.reject(req, f"prompt + output = {total} tokens > max_context {max_context}")
            return
        if req.klass >= 0 and self.classes[req.klass].timeout_s is not None:
            at = req.arrival_s + self.classes[req.klass].timeout_s
            self.kernel.at(at, Priority.ARRIVAL, self._time_out, req)
        self._route(req)

    def _route(self, req: Request) -> None:
        """Send ``req`` to an instance, whose front end takes it in (unless its class's
        ``max_queue`` sheds it there)."""
        target = self._choose(self.entry, self.router, req)
        sends = self.sends_to.get(target.pool.name) if target is not None else None
        if sends is not None and req.prompt < sends.direct_below:  # prefilled where it decodes
            target = self._choose(sends.targets, sends.router, req)
        if target is None:
            self.reject(req, "no instance could take it: every one had failed or stopped")
            return
        if req.klass >= 0:
            limit = self.classes[req.klass].max_queue
            if limit is not None and len(target.waiting) + len(target.accepting) >= limit:
                self.cancel(req, f"shed: {target.name} had {limit} or more waiting")
                return
        target.accept(req)

    def _time_out(self, req: Request) -> None:
        """``req``'s client gives up: it is dropped wherever it is, unless it is done."""
        if req.state is State.DONE:
            return
        cls = self.classes[req.klass]
        req.cancelled = f"timed out after {cls.timeout_s:g} s (class {cls.name})"
        req.host.cancel(req, req.cancelled)

    def _choose(self, candidates: list[Instance], router, req: Request) -> Instance | None:
        """The instance ``router`` picks for ``req`` among ``candidates`` (those that may
        take requests now; None when none may)."""
        if self.varies:  # only the instances serving now, not failed nor draining
            candidates = [inst for inst in candidates if inst.routable]
            if not candidates:
                return None
        if router.reads_state:
            for inst in candidates:
                inst.sync()
        return candidates[router.choose(candidates, req, self.rng)]

    def hand_off(self, req: Request, source: Instance) -> None:
        """``req`` was prefilled on ``source`` (a prefill instance): pick the decode
        instance its KV goes to."""
        sends = self.sends_to[source.pool.name]
        target = self._choose(sends.targets, sends.router, req)
        if target is None:
            source.sent(req)
            self.reject(req, "no decode instance could take it: every one had failed or stopped")
            return
        req.log.append((self.kernel.now, "handed_off", target.index))
        if not target.kv.fits(req.prompt + req.output):
            source.sent(req)
            self.reject(
                req,
                f"needs {target.kv.blocks_for(req.prompt + req.output)} KV blocks; an "
                f"instance of pool {target.pool.name} has "
                f"{target.kv.capacity_blocks - target.kv.watermark_blocks}",
            )
            return
        target.receive(req, source)

    def transfer(self, req: Request, source: Instance, target: Instance) -> None:
        """Copy ``req``'s KV from ``source`` to ``target``: every GPU of ``source`` sends its
        shard over its path (see :mod:`tokensim.graph.lower`); done when all have arrived."""
        edge = self.graph.dataflow.edges[source.name, target.name]
        paths = edge["paths"]
        # the blocks the decode side had cached (received before) are not copied again
        shard_B = source.kv.blocks_for(req.computed - req.received_hit) * source.block_bytes
        wire_B = shard_B / source.pool.gpu.efficiency.network
        if edge["ir"].layerwise and not req.kv_waited:
            wire_B -= self._streamed(req, source, wire_B, edge["bottleneck_Bps"])
        self.network.send(
            [(p.hops, p.latency_s) for p in paths], wire_B, lambda: target.arrived(req, source)
        )

    @staticmethod
    def _streamed(req: Request, source: Instance, wire_B: float, path_Bps: float) -> float:
        """Bytes of a layer-wise copy already sent when the prefill ends: each layer's KV
        leaves as the step that ends the prefill computes it (layers evenly through the
        step), at most at the path's pace, so all but the last layer's share can be gone.
        Only a copy whose decode memory was ready when the prefill ended streams (its
        blocks were free to receive it); earlier chunks of a chunked prefill are not
        counted."""
        layers = source.pool.model.layers
        step_s = req.handoff_s - req.prefill_step_s
        return min(wire_B * (layers - 1) / layers, step_s * path_Bps)

    def reject(self, req: Request, why: str) -> None:
        """``req`` can never run: it is done, with the reason kept for the metrics."""
        req.rejected = why
        req.move("reject", self.kernel.now)
        req.log.append((self.kernel.now, "rejected", 0))
        self.finished(req)

    def failed(self, req: Request, inst: Instance, held: bool) -> None:
        """``inst`` failed while it held ``req`` (``held``; else its front end was taking
        it in): it is sent again as a new arrival, its tokens so far kept and its KV
        computed anew (counted as a preemption), or lost, as the faults' ``on_failure``
        says."""
        now = self.kernel.now
        req.log.append((now, "failed", inst.index))
        if held:
            req.move("fail", now)
        if self.faults.faults.on_failure == "lose":
            self.cancel(req, f"lost: {inst.name} failed")
            return
        req.computed = 0
        req.preemptions += 1
        if req.preempted_at_s < 0:
            req.preempted_at_s = now
        self._route(req)

    def cancel(self, req: Request, why: str) -> None:
        """``req`` is dropped before its end (shed, or its client timed out): it is done,
        with the reason kept for the metrics; whoever held it has let it go."""
        req.rejected = why
        req.move("cancel", self.kernel.now)
        req.log.append((self.kernel.now, "cancelled", req.generated))
        self.finished(req)

    def finished(self, req: Request) -> None:
        """``req`` is done (served or rejected): its figures go into the ledger, and the
        object is let go."""
        self.done += 1
        self.ledger.record(req)
        if self.done == self.total:
            self.ended_s = self.kernel.now
        at = max(self.kernel.now, req.finish_s)  # when its client has the answer
        if self.session is not None:
            nxt = req.id + 1
            if nxt < self.total and self.session[nxt] == req.session:  # the next turn
                at += float(self.think_s[nxt])
                self.kernel.at(at, Priority.ARRIVAL, self._arrive, nxt, False, at)
            elif self.clients and self.sent < len(self.starts):  # the next conversation
                first = int(self.starts[self.sent])
                self.kernel.at(at, Priority.ARRIVAL, self._arrive, first, False, at)
                self.sent += 1
        elif self.clients and self.sent < self.total:  # its client sends the next request
            self.kernel.at(at, Priority.ARRIVAL, self._arrive, self.sent, False, at)
            self.sent += 1

    def _after_event(self) -> None:
        if self.check:
            for inst in self.instances:
                inst.kv.check()
                prefilling = [r for r in inst.running if r.state is State.PREFILL]
                if prefilling != inst.prefilling:
                    raise AssertionError(f"{inst.name}: its prefilling list is out of step")
                prefilling = len(prefilling)
                decoding = all(r.state is State.DECODE for r in inst.batch.reqs)
                if len(inst.running) != prefilling + len(inst.batch) or not decoding:
                    raise AssertionError(f"{inst.name}: running requests and decode batch differ")
                if inst.n_requests != count_requests(inst):
                    raise AssertionError(f"{inst.name}: its request count is out of step")
                holders = len(inst.running) + len(inst.sending) + len(inst.receiving)
                if inst.kv.running_requests != holders + len(inst.ready):
                    raise AssertionError(f"{inst.name}: KV holds blocks of other requests")
                kv, batch = inst.kv, inst.batch
                ahead = batch.reserved - batch.step
                owed = sum(
                    kv.blocks_for(batch.computed(r) + ahead) - kv.blocks_for(kv.tokens_of(r.id))
                    for r in batch.reqs
                )
                if owed != kv.unsettled_blocks:
                    raise AssertionError(
                        f"{inst.name}: decode batch owes {owed} blocks, "
                        f"{kv.unsettled_blocks} reserved"
                    )
        if self.progress is not None and self.kernel.events % 5000 == 0:
            self.progress(self.done, self.total, self.kernel.now)

    def _warnings(self) -> list[str]:
        out = [w for inst in self.instances for w in inst.warnings()]
        out += self._idle_prefix_caches()
        out += [
            f"pool {p.name}: speculative decoding is priced per token, so its ITL percentiles "
            "are of evenly spaced tokens, not of the bursts that accepted runs arrive in"
            for p in self.pools
            if p.speculative is not None
        ]
        rejected = len(self.ledger.rejected)
        if rejected and rejected == self.total:
            out.append(f"every request ({rejected}) was rejected: nothing was served")
        return out

    def _idle_prefix_caches(self) -> list[str]:
        """A warning per pool whose spec turns prefix caching on for a workload in which no
        two requests share a prefix id (so the cache can never hit)."""
        written = [p for p in self.pools if p.kv.prefix_cache and p.kv.prefix_cache_written]
        if self.session is not None:
            return []  # a conversation's turns share its history
        ids = set()
        for h in (self.work.prefix_hashes or ()) if written else ():
            if h and h[0] in ids:
                return []  # two requests share a first block: the cache can hit
            ids.update(h[:1])
        return [
            f"pool {p.name}: `prefix_cache on` ({p.kv.prefix_cache_written}) cannot hit: no two "
            "requests share a prefix; give the workload a `shared_prefix`, or a trace with "
            "prefix ids"
            for p in written
        ]

    def _result(self, wall_s: float) -> Result:
        ledger = self.ledger
        # the run ends when its last request is done: events after it (an autoscaler's look,
        # a client's timeout) do not lengthen it
        timed = self.varies or any(c.timeout_s for c in self.classes)
        end = self.ended_s if timed and self.ended_s is not None else self.kernel.now
        up: dict[Instance, float] = {}
        for scaler in self.autoscalers:
            scaler.close(end)
            up.update({i: scaler.up_s[k] for k, g in scaler.groups.items() for i in g})
        instances = [
            InstanceResult(
                i.name,
                i.pool.name,
                tuple(str(g) for g in i.pool.instances[i.index].gpus),
                i.kv.capacity_blocks,
                i.iterations,
                i.busy_s,
                i.preemptions,
                np.array(i.series, dtype=np.float64).reshape(-1, 7),
                np.array(i.work, dtype=np.float64).reshape(-1, 5),
                up.get(i),
            )
            for i in self.instances
        ]
        requests = ledger.columns()
        if self.session is not None:  # which conversation, and which of its turns
            requests["session"] = np.asarray(self.session)
            requests["turn"] = np.arange(self.total) - self.starts[self.session]
        if self.work.klass is not None:  # each request's class, by name
            names = np.array([c.name for c in self.classes], dtype=object)
            requests["class"] = names[self.work.klass]
        gaps = [i.gaps() for i in self.instances]
        values = [v for v, _ in gaps]
        weights = [w for _, w in gaps]
        return Result(
            spec=self.spec,
            seed=self.seed,
            requests=requests,
            instances=instances,
            itl_s=np.concatenate(values) if values else np.zeros(0),
            itl_weights=np.concatenate(weights) if weights else np.zeros(0),
            simulated_s=end,
            events=self.kernel.events,
            wall_s=wall_s,
            rejected=sorted(ledger.rejected),
            warnings=self._warnings(),
            links={
                f"{u}->{v}": np.array(points, dtype=np.float64).reshape(-1, 4)
                for (u, v), points in sorted(self.network.series.items())
            },
            link_bytes={f"{u}->{v}": b for (u, v), b in sorted(self.network.moved_B.items())},
            transitions=ledger.logs if self.transitions else [],
            tiers=tier_figures(self.tiers, self.graph.dataflow),
            fleet={
                s.rule.pool: np.array(s.series, dtype=np.float64).reshape(-1, 4)
                for s in self.autoscalers
            },
            scaling={s.rule.pool: list(s.actions) for s in self.autoscalers},
            faults=self.faults.happened if self.faults is not None else [],
        )


class _Ledger:
    """The figures of every finished request, appended as it finishes (in that order)
    to typed columns and put in request order at the end: a run keeps no object of a
    request that is done, so its memory grows by about 150 bytes a request."""

    FLOATS = (
        "arrival_s", "enqueued_s", "admitted_s", "first_token_s", "finish_s", "handoff_s",
        "transfer_start_s", "transfer_end_s", "preempted_s", "preempted_early_s",
    )  # fmt: skip

    def __init__(self, total: int, instances: list[Instance], transitions: bool):
        self.total = total
        self.names = [inst.name for inst in instances]
        self.slot = {inst: k for k, inst in enumerate(instances)}
        # one row per request, interleaved: the floats in FLOATS order; the ints id,
        # prompt, output, preemptions, prefix-cache hit, instance, decode instance
        self.floats = array("d")
        self.ints = array("q")
        self.rejected: list[tuple[int, str]] = []
        self.logs: list = [None] * total if transitions else []

    def record(self, r: Request) -> None:
        slot = self.slot
        self.floats.extend(
            (r.arrival_s, r.enqueued_s, r.admitted_s, r.first_token_s, r.finish_s, r.handoff_s,
             r.transfer_start_s, r.transfer_end_s, r.preempted_s, r.preempted_early_s)
        )  # fmt: skip
        self.ints.extend(
            (
                r.id,
                r.prompt,
                r.output,
                r.preemptions,
                r.hit_tokens,
                slot[r.instance] if r.instance is not None else -1,
                slot[r.decode_instance] if r.decode_instance is not None else -1,
            )
        )
        if r.rejected:
            self.rejected.append((r.id, r.rejected))
        if self.logs:
            self.logs[r.id] = r.log

    def columns(self) -> dict[str, np.ndarray]:
        """The requests' columns, in request order."""
        floats = np.frombuffer(self.floats, dtype=np.float64).reshape(-1, len(self.FLOATS))
        ints = np.frombuffer(self.ints, dtype=np.int64).reshape(-1, 7)
        order = np.argsort(ints[:, 0], kind="stable")  # finish order -> request order
        floats = {name: floats[order, j] for j, name in enumerate(self.FLOATS)}
        ints = [ints[order, j] for j in range(7)]
        names = np.array([*self.names, ""], dtype=object)  # slot -1: none
        rejected = np.zeros(self.total, dtype=bool)
        rejected[[rid for rid, _ in self.rejected]] = True
        return {
            "id": ints[0],
            "arrival_s": floats["arrival_s"],
            "prompt_tokens": ints[1],
            "output_tokens": ints[2],
            "instance": names[ints[5]],
            "decode_instance": names[ints[6]],
            "enqueued_s": floats["enqueued_s"],
            "admitted_s": floats["admitted_s"],
            "first_token_s": floats["first_token_s"],
            "finish_s": floats["finish_s"],
            "handoff_s": floats["handoff_s"],
            "transfer_start_s": floats["transfer_start_s"],
            "transfer_end_s": floats["transfer_end_s"],
            "preemptions": ints[3],
            "preempted_s": floats["preempted_s"],
            "preempted_early_s": floats["preempted_early_s"],
            "cached_tokens": ints[4],
            "rejected": rejected,
        }


def _kv_hashes(trace_ids, trace_block: int, block: int, prompt: int) -> tuple:
    """One id per full KV block of the prompt from a trace's prefix-block ids.

    KV block ``i`` lies in trace block ``j``; two prompts share it when they share
    trace blocks ``0..j`` (the ids are prefix-chained), so its id is ``(ids[j], i)``.
    """
    out = []
    for i in range(prompt // block):
        j = ((i + 1) * block - 1) // trace_block
        if j >= len(trace_ids):
            break
        out.append((trace_ids[j], i))
    return tuple(out)


def simulate(graph, seed: int | None = None, progress=None, transitions=False) -> Result:
    """Simulate the lowered spec ``graph``; ``seed`` overrides the workload's seed.

    ``progress(done, total, now_s)`` is called now and then on long runs. With
    ``transitions`` the result keeps every request's state changes (``Result.transitions``;
    a few hundred bytes a request), else none.
    Raises :class:`SimulationError` for a spec that checks but cannot run.
    """
    return Simulation(graph, seed, progress, transitions).run()
