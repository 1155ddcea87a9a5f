"""A model instance: its waiting queue, running batch, KV blocks and iterations.

Each iteration's batch comes from the pool's batching policy
(:mod:`tokensim.policies.batching`); its time from the cost model. A batch of
decode steps only, which cannot change until a request finishes, memory runs
short or a new request arrives, runs as one *decode run*: ``k`` steps whose
total time has a closed form (a step costs ``A + C * context`` and the context
grows by the batch size each step), so a decode step costs O(1) and the
simulator jumps over steps where nothing can change. The decode batch keeps its
sequences on a step clock (:class:`~tokensim.sim.batch.DecodeBatch`), so applying
``k`` steps to ``n`` sequences costs O(1) plus O(log n) per sequence that finishes,
and their KV blocks are granted in bulk (``BlockManager.reserve``). A run is cut at the next step
boundary when a request arrives, and brought up to date (``sync``) whenever
someone reads the instance's state.
"""

from __future__ import annotations

import math
from array import array
from enum import Enum

import numpy as np

from tokensim.perf import Batch, CostModel
from tokensim.sim.batch import DecodeBatch
from tokensim.sim.engine import EngineCost
from tokensim.sim.events import Kernel, Priority
from tokensim.sim.frontend import FrontEnd
from tokensim.sim.kv import BlockManager
from tokensim.sim.machine import step, table
from tokensim.sim.outages import Outages
from tokensim.sim.queue import WaitQueue
from tokensim.sim.request import Request, State


class Phase(Enum):
    """What an instance is doing: nothing, an iteration (prompt tokens in it), or a run of
    decode steps priced in closed form."""

    IDLE = 0
    ITERATION = 1
    DECODE_RUN = 2


# Every transition an instance may make: (state, event, next state, what causes it)
RULES: tuple[tuple[Phase, str, Phase, str], ...] = (
    (Phase.IDLE, "iterate", Phase.ITERATION, "a batch with prompt tokens is formed"),
    (Phase.IDLE, "decode_run", Phase.DECODE_RUN, "a batch of decoding sequences only"),
    (Phase.IDLE, "idle", Phase.IDLE, "nothing can run: it waits for an arrival or a KV copy"),
    (Phase.ITERATION, "end", Phase.IDLE, "the iteration's time is up: its tokens are out"),
    (Phase.DECODE_RUN, "cut", Phase.DECODE_RUN, "an arrival ends the run at its next step"),
    (Phase.DECODE_RUN, "end", Phase.IDLE, "the run's last step is done"),
)
MACHINE = table(RULES)


def _resume(req: Request, now: float, kv_tokens: int) -> None:
    """Account the time ``req`` spent preempted, now that it runs again with the KV of
    ``kv_tokens`` tokens in place."""
    paused = now - req.preempted_at_s
    req.preempted_s += paused
    if req.first_token_s < 0:
        req.preempted_early_s += paused
    req.preempted_at_s = -1.0
    req.log.append((now, "resumed", kv_tokens))


class _Run:
    """``k`` decode steps of the batch from ``t0``, of which the first ``done`` are
    applied to the batch's state.

    Step j (1-based) costs ``a + c * (ctx + j n)`` seconds: ``ctx`` is the batch's
    KV tokens before the run, and each step adds one token per sequence. Steps are
    counted from the run's start however often it is brought up to date, so its times do
    not depend on when, or whether, anyone read the instance mid-run.
    """

    __slots__ = ("t0", "n", "ctx", "a", "c", "k", "to_finish", "window_left", "done")

    def __init__(self, t0, n, ctx, a, c, k, to_finish):
        self.t0, self.n, self.ctx, self.a, self.c, self.k = t0, n, ctx, a, c, k
        self.to_finish = to_finish  # steps until the first sequence finishes
        self.window_left = 1  # steps left in the scheduling window at t0
        self.done = 0  # steps applied to the batch

    def boundary(self, j: int, window: int) -> int:
        """The first step >= ``j`` that ends a scheduling window of ``window`` steps."""
        if j <= self.window_left:
            return self.window_left
        return self.window_left + -(-(j - self.window_left) // window) * window

    def end(self, j: int) -> float:
        """Time at which step ``j`` ends."""
        return self.t0 + j * self.a + self.c * (j * self.ctx + self.n * j * (j + 1) / 2)

    def done_by(self, now: float) -> int:
        """Steps completed by ``now`` (at most ``k``)."""
        if now >= self.end(self.k):
            return self.k
        # solve end(j) <= now for j, then fix rounding by checking neighbours
        qa = self.c * self.n / 2
        qb = self.a + self.c * (self.ctx + self.n / 2)
        rhs = now - self.t0
        j = int(rhs / qb) if qa == 0 else int((-qb + math.sqrt(qb * qb + 4 * qa * rhs)) / (2 * qa))
        j = max(0, min(j, self.k))
        while j > 0 and self.end(j) > now:
            j -= 1
        while j < self.k and self.end(j + 1) <= now:
            j += 1
        return j


class Instance(Outages):
    """One replica of a pool's model on its GPUs (its cancellations and failures:
    :class:`~tokensim.sim.outages.Outages`)."""

    def __init__(
        self,
        sim,
        pool,
        name: str,
        index: int,
        cost: CostModel,
        kv: BlockManager,
        policy,
        swap_Bps: float,
        block_bytes: float,
    ):
        self.sim = sim
        self.kernel: Kernel = sim.kernel
        self.pool = pool
        self.index = index
        self.name = name  # its dataflow vertex: `decode[0]`, or `decode[0].v1` pipelined
        self.cost = cost
        self.timing = EngineCost(pool, cost)  # the engine around the cost model
        engine = pool.engine
        self.window = engine.scheduler_steps  # decode steps per scheduling
        self.window_left = 0  # steps left in the current multi-step window (0: at a boundary)
        self.stream = engine.stream_tokens
        # async_output: requests whose first token the last step made, which reach the front
        # end when the next step ends (or the engine goes idle)
        self.async_output = engine.async_output
        self.lagging: list[Request] = []
        # requests here whose clients gave up while they ran: dropped at the next boundary
        self.cancelling: list[tuple[Request, str]] = []
        # this instance's API server: takes its requests in, streams its tokens out
        self.frontend = FrontEnd(engine.frontend)
        self.accepting: list[Request] = []  # routed here, still in the front end
        # requests here, as routers count them: routed or handed off here, not yet finished
        # or handed on (queued, running, or their KV on its way in)
        self.n_requests = 0
        self.serving = True  # routers may send it requests (an autoscaler may stop it)
        self.down = False  # failed: it holds nothing and takes nothing until it is up
        self.draining = False  # a fault drains it: it takes nothing new, finishes its own
        # called with this instance whenever n_requests changes (routers' indexes)
        self.watchers: list = []
        # reserve_output: the share of the running requests' outputs held back when
        # admitting (it decays with decode steps), and the outputs of the requests admitted
        # in the scheduling at _round_s (they count whole)
        self.reservation = engine.reserve_output
        self.share = self.reservation.share if self.reservation else 0.0
        self._round_s, self._round_tokens = -1.0, 0
        self.kv = kv
        self.tier_s: dict = {}  # lower KV tier -> seconds to load one block from it
        self._load_s = 0.0  # loads of the admissions of the batch being formed
        self.policy = policy
        self.swap_Bps = swap_Bps  # host link bandwidth for swapping, per GPU
        self.block_bytes = block_bytes  # one KV block's bytes on one GPU
        self.waiting = WaitQueue(policy.order)
        # admitted (prefilling or decoding), in admission order (a dict: leaving is O(1))
        self.running: dict[Request, None] = {}
        self.prefilling: list[Request] = []  # those of them still prefilling, in that order
        clip = self.reservation.clip_tokens if self.reservation else 0
        self.batch = DecodeBatch(kv.block_tokens, clip)  # the decoding ones
        self.swapped: list[Request] = []
        # disaggregation: KV being sent from here, KV waiting for memory here, KV arrived
        self.sending: set[Request] = set()
        self.incoming: list[tuple[Request, Instance]] = []
        self.receiving: set[Request] = set()
        self._sources: dict[Request, Instance] = {}  # where each copy in flight comes from
        self.ready: list[Request] = []
        self.phase = Phase.IDLE
        self.run: _Run | None = None
        self.version = 0  # invalidates a scheduled end event when a run is cut
        self.plan = None  # the batch of the iteration in flight
        self.iteration_start = 0.0
        self._short_s = -1.0  # when a KV copy last found no memory to receive into
        # expert parallelism across nodes: the edges out of its nodes its all-to-all takes
        # a share of while it steps (set by the simulation; None: no such traffic)
        self.fabric: tuple | None = None
        self._lines: dict[int, tuple[float, float, float, float]] = {}
        self._schedule_pending = False
        # statistics
        self.iterations = 0
        self.busy_s = 0.0
        self.preemptions = 0
        self.short_batches: list[int] = []  # sizes of static batches memory cut short
        # Rows of numbers kept flat, as doubles (a row of tuple and number objects would
        # take four times the memory):
        # (time, running, waiting, kv_used_blocks, batch_tokens, kv_cached, kv_swapped)
        self.series = array("d")
        # one row per iteration, or per run of decode steps:
        # (start, end, prefill tokens, decode sequences, steps)
        self.work = array("d")
        self._run_first = 0  # self.iterations when the current run started
        # inter-token gaps: (gap s, how many tokens had it)
        self.itl_gaps = array("d")
        # the uniform steps of decode runs: (gap of step s = base + slope * s, s = 2..count+1)
        self.itl_steps: list[tuple[float, float, int, int]] = []

    # -- arrivals --------------------------------------------------------------------------

    def _count(self, change: int) -> None:
        """``n_requests`` changes by ``change``; the routers that index it are told."""
        self.n_requests += change
        for watch in self.watchers:
            watch(self)

    def accept(self, req: Request) -> None:
        """A request is routed here: it reaches the front end ``latency`` later, which takes
        it in, then it joins the waiting queue (:meth:`enqueue`); meanwhile routers count it
        as queued here."""
        self._count(1)
        req.host = self
        fe = self.frontend
        # its server takes it in once it is there, after the tokens made before then (and
        # not before them: reserving the server from now would hold up the tokens made
        # while the request is still on its way)
        if fe.latency_s:
            self.accepting.append(req)
            self.kernel.at(self.kernel.now + fe.latency_s, Priority.ARRIVAL, self._at_server, req)
        else:
            self._take_in(req)

    def _at_server(self, req: Request) -> None:
        self.accepting.remove(req)
        self._take_in(req)

    def _take_in(self, req: Request) -> None:
        """``req`` is at its server: the front end takes it in from now on."""
        fe, now = self.frontend, self.kernel.now
        if fe.concurrent:  # it shares its server with the others being taken in
            self.accepting.append(req)
            self._next_intake(fe.join(req, req.prompt, now))
            return
        if fe.token_out_s:  # the tokens made by now are streamed before it
            self.sync()
        if fe.batches:  # handed over with the batch it joins, when that is all in
            self.accepting.append(req)
            batch = fe.take_in_batch(req, req.prompt, now)
            self.kernel.at(batch[1], Priority.ARRIVAL, self._hand_batch, batch, batch[1])
            return
        done = fe.take_in(req.id, req.prompt, now)
        if fe.shares_cpu and self.run is not None:  # the engine stops at its next step
            self._cut_run()
        if done > now:
            self.accepting.append(req)
            self.kernel.at(done, Priority.ARRIVAL, self._taken_in, req)
        else:
            self.enqueue(req)

    def _next_intake(self, server: int) -> None:
        """``concurrent``: be woken when ``server`` next finishes taking a request in."""
        fe = self.frontend
        at = fe.next_done(server)
        if at is not None:
            self.kernel.at(at, Priority.ARRIVAL, self._intake_done, server, fe.version[server])

    def _intake_done(self, server: int, version: int) -> None:
        fe = self.frontend
        if version != fe.version[server]:
            return  # another request joined the server since: its next completion moved
        for req in fe.done(server, self.kernel.now):
            self.accepting.remove(req)
            self.enqueue(req)
        self._next_intake(server)

    def _hand_batch(self, batch: list, at: float) -> None:
        """``batches``: the front end's batch ``[start, end, requests]`` is all in, unless
        a request joined it since this was planned (``end`` moved past ``at``)."""
        if batch[1] != at:
            return
        for req in batch[2]:
            self.accepting.remove(req)
            self.enqueue(req)
        batch[2].clear()

    def _taken_in(self, req: Request) -> None:
        self.accepting.remove(req)
        self.enqueue(req)

    def enqueue(self, req: Request) -> None:
        """A request routed here joins the waiting queue (or, cancelled while the front
        end took it in, is dropped)."""
        if req.cancelled:
            self._count(-1)
            self.sim.cancel(req, req.cancelled)
            return
        if self.down:  # the front end took it in for an engine that has failed since
            self._count(-1)
            self.sim.failed(req, self, held=False)
            return
        if req.instance is None:  # where it was queued first
            req.instance = self
            req.enqueued_s = self.kernel.now
        req.log.append((self.kernel.now, "queued", self.index))
        req.move("queue", self.kernel.now)
        self.waiting.push(req)
        self._wake(self._may_admit_now())

    def _wake(self, cut: bool) -> None:
        """Something may join: start an idle instance, or (``cut``) end the current decode
        run at its next step boundary."""
        if self.run is not None and self.policy.joins_mid_batch and cut:
            self._cut_run()
        elif not self.busy and not self._schedule_pending:
            self._schedule_pending = True
            self.kernel.at(self.kernel.now, Priority.SCHEDULE, self._scheduled)

    # -- disaggregation --------------------------------------------------------------------

    def receive(self, req: Request, source: Instance) -> None:
        """A prefilled request's KV is to come here from ``source``. Its copy starts at this
        instance's next iteration boundary at which its blocks fit (``_pull``)."""
        req.decode_instance = self
        req.host = self
        self._count(1)
        self.incoming.append((req, source))
        self._wake(len(self.incoming) == 1)

    def _pull(self) -> None:
        """Reserve memory for the waiting KV copies that fit, first come first served, and
        start copying them."""
        kv = self.kv
        # received KV enters this side's prefix cache, where its blocks' ids fit our blocks
        caching = kv.prefix_cache and self.pool.kv.block_tokens == self.sim.hash_block_tokens
        while self.incoming:
            req, source = self.incoming[0]
            hashes = req.hashes if caching else None
            if not kv.can_admit(req.id, req.computed, hashes):
                self._short_s = self.kernel.now  # the copies queued now wait for memory
                return
            self.incoming.pop(0)
            req.kv_waited = self._short_s >= req.handoff_s
            # the whole of it is copied from the prefill side: none is loaded from a tier
            req.received_hit = kv.admit(req.id, req.computed, hashes, lower=False)
            self.receiving.add(req)
            self._sources[req] = source
            req.transfer_start_s = self.kernel.now
            req.log.append((self.kernel.now, "transfer_start", req.computed))
            self.sim.transfer(req, source, self)

    def arrived(self, req: Request, source: Instance) -> None:
        """``req``'s KV has arrived from ``source``: it joins the batch at the next step
        boundary, and ``source`` frees its copy."""
        if req not in self.receiving:
            return  # an end of the copy failed meanwhile: the request was sent again
        now = self.kernel.now
        req.transfer_end_s = now
        req.log.append((now, "transfer_end", req.computed))
        self.receiving.remove(req)
        del self._sources[req]
        source.sent(req)
        self.ready.append(req)
        self._wake(True)

    def sent(self, req: Request) -> None:
        """``req``'s KV has left this (prefill) instance: free its blocks."""
        self.sending.remove(req)
        self.kv.release(req.id)
        if len(self.waiting):
            self._wake(self._may_admit_now())

    def _abandon_step(self) -> None:
        """Drop the step in flight and what the batch being formed had (a failure): its
        end is ignored, and the instance is idle."""
        self.run = self.plan = None
        self._load_s = 0.0  # tier loads of a batch it will not run
        self.version += 1
        self.phase = Phase.IDLE
        self.window_left = 0

    def _join_ready(self) -> None:
        for req in self.ready:
            req.move("join", self.kernel.now)
            self.running[req] = None
            self.batch.add(req)
        self.ready.clear()

    def _may_admit_now(self) -> bool:
        """Whether a request that just arrived could join at the next step boundary.

        Not when the batch is full, nor (first come first served) when earlier requests
        already wait: they wait for memory or a slot, which only a finish frees, and a
        finish ends the run anyway. Skipping the cut changes no request's timing.
        """
        if len(self.running) >= self.policy.max_seqs:
            return False
        return self.waiting.order != "fcfs" or len(self.waiting) == 1

    @property
    def busy(self) -> bool:
        """Whether an iteration or a decode run is in flight."""
        return self.phase is not Phase.IDLE

    def _move(self, event: str) -> None:
        """Take the transition of ``event`` (see :data:`RULES`)."""
        nxt = MACHINE.get((self.phase, event))
        if nxt is None:  # not a transition: step() says which and raises
            step(MACHINE, self.phase, event, f"instance {self.name}", self.kernel.now)
        self.phase = nxt

    def _scheduled(self) -> None:
        self._schedule_pending = False
        if not self.busy:
            self._start()

    # -- what policies call ------------------------------------------------------------------

    def prompt_need(self, req: Request) -> int:
        """Tokens ``req`` would compute if admitted now (prefix-cache hits excluded)."""
        return req.tokens - self.kv.hit_tokens(req.hashes, req.tokens) if req.hashes else req.tokens

    def reject_impossible(self) -> None:
        """Reject waiting requests at the head whose prompt and output could not fit even in
        an empty instance's KV cache, instead of letting them wait forever."""
        room = self.kv.capacity_blocks - self.kv.watermark_blocks
        while len(self.waiting):
            req = self.waiting.peek()
            whole = self.kv.blocks_for(req.prompt + req.output)
            if whole <= room:
                return
            self.waiting.pop()
            self._count(-1)
            self.sim.reject(
                req, f"needs {whole} KV blocks; an instance of pool {self.pool.name} has {room}"
            )

    def try_admit(self, req: Request) -> bool:
        """Admit the head of the waiting queue if its KV fits (leaving the watermark); with
        the engine's ``reserve_output``, only if its whole output fits as well, beside the
        share held back for the running requests' outputs (:meth:`_output_fits`)."""
        if not self.kv.can_admit(req.id, req.tokens, req.hashes):
            return False
        if self.reservation is not None and not self._output_fits(req):
            return False
        self.waiting.pop()
        hit = self.kv.admit(req.id, req.tokens, req.hashes)
        if self.kv.loads:  # blocks a lower tier held: copied in before the step computes
            self._load_s += sum(n * self.tier_s[t] for t, n in self.kv.loads.items())
        req.hit_tokens = hit
        req.computed = hit
        now = self.kernel.now
        req.move("admit", now)
        if req.admitted_s < 0:
            req.admitted_s = now
        if req.preempted_at_s >= 0:
            _resume(req, now, hit)
        else:
            req.log.append((now, "scheduled", hit))
        self.running[req] = None
        self.prefilling.append(req)
        return True

    def _output_fits(self, req: Request) -> bool:
        """``reserve_output``: whether ``req``'s prompt and whole remaining output fit in
        the available KV beside ``share`` of the running requests' remaining outputs (the
        requests admitted in this same scheduling count whole); if so, it is counted in."""
        now = self.kernel.now
        if self._round_s != now:
            self._round_s, self._round_tokens = now, 0
        clip = self.reservation.clip_tokens

        def left(r: Request) -> int:  # output tokens still to come, up to the clip
            n = r.output - r.generated
            return min(n, clip) if clip else n

        mine = left(req)
        to_come = self.batch.left_clipped() + sum(map(left, self.prefilling))
        held = self.share * to_come + (1.0 - self.share) * self._round_tokens
        kv = self.kv
        room = kv.available_blocks - kv.watermark_blocks - kv.blocks_for(self.prompt_need(req))
        if mine + held > room * kv.block_tokens:
            return False
        self._round_tokens += mine
        return True

    def _decay_share(self, steps: int) -> None:
        """``reserve_output``: ``steps`` decode steps ran; the share held back falls."""
        r = self.reservation
        if r is not None and r.decay_steps:
            self.share = max(r.min_share, self.share - steps * r.decay)

    def _retract_share(self) -> None:
        """``reserve_output``: a decode step ran out of KV. The share becomes what the
        batch has generated plus ``retract_steps`` per sequence, over its outputs."""
        r, batch = self.reservation, self.batch
        if r is None or not len(batch) or not batch.outputs:
            return
        generated = batch.outputs - batch.tokens_left()
        self.share = min(1.0, (generated + r.retract_steps * len(batch)) / batch.outputs)

    def short_batch(self, size: int) -> None:
        """A static batch of ``size`` sequences started while requests waited: their KV
        did not fit beside it."""
        self.short_batches.append(size)

    def warnings(self) -> list[str]:
        """What a user should know about this instance's run that the figures hide."""
        out = []
        if self.short_batches:
            policy = self.policy
            out.append(
                f"{self.name}: {len(self.short_batches)} static batch"
                f"{'es' * (len(self.short_batches) > 1)} ran with fewer than max_seqs "
                f"{policy.max_seqs} sequences (as few as {min(self.short_batches)}) while "
                "requests waited: their prompts' KV did not fit"
            )
        if self.preemptions and not self.policy.joins_mid_batch:
            out.append(
                f"{self.name}: static batch members were preempted {self.preemptions} times "
                "as their outputs grew past the KV cache"
            )
        return out

    def prepare_decode(self) -> tuple[int, float]:
        """Give every decoding sequence KV for its next token, preempting the most recently
        admitted requests when blocks run out. Returns (sequences decoding, swap-out s)."""
        swap_s = 0.0
        batch = self.batch
        short = False
        while len(batch) and not self._grant(batch.step + 1):
            swap_s += self._preempt(next(reversed(self.running)))
            short = True
        if short:
            self._retract_share()
        return len(batch), swap_s

    def _grant(self, step: int) -> bool:
        """Reserve the KV blocks the decode batch needs up to ``step``; False if they do
        not fit (nothing changes)."""
        batch = self.batch
        if not self.kv.reserve(batch.blocks_through(step)):
            return False
        batch.reserved = max(batch.reserved, step)
        return True

    def _leave(self, req: Request) -> Request:
        """Take ``req`` out of the decode batch and give it the blocks its tokens fill."""
        self.batch.remove(req)
        self.kv.settle(req.id, req.computed)
        return req

    def resume_swapped(self) -> float:
        """Swap back in what fits, oldest first; return the seconds it takes."""
        seconds = 0.0
        while self.swapped and self.kv.swap_in(self.swapped[0].id):
            req = self.swapped.pop(0)
            req.move("swap_in", self.kernel.now)
            _resume(req, self.kernel.now, req.computed)
            self.running[req] = None
            self.batch.add(req)
            seconds += self.kv.blocks_for(req.computed) * self.block_bytes / self.swap_Bps
        return seconds

    def _preempt(self, victim: Request) -> float:
        del self.running[victim]
        if victim.state is State.DECODE:
            self._leave(victim)
        else:
            self.prefilling.remove(victim)
        victim.preemptions += 1
        self.preemptions += 1
        victim.preempted_at_s = self.kernel.now
        if (
            self.pool.kv.preempt == "swap"
            and victim.state is State.DECODE
            and self.kv.can_swap_out(victim.id)
        ):
            blocks = self.kv.swap_out(victim.id)
            victim.log.append((self.kernel.now, "swapped_out", victim.computed))
            victim.move("swap_out", self.kernel.now)
            victim.swapped_out += 1
            self.swapped.append(victim)
            return blocks * self.block_bytes / self.swap_Bps
        self.kv.release(victim.id)
        victim.log.append((self.kernel.now, "preempted", victim.computed))
        victim.computed = 0
        victim.move("preempt", self.kernel.now)
        self.waiting.push_front(victim)
        return 0.0

    # -- iterations ------------------------------------------------------------------------

    def _start(self) -> None:
        """Form and start the next iteration (or go idle). Inside a multi-step window the
        batch takes its next decode steps as it is: nothing joins until the window ends.
        A front end that shares the engine's CPU holds it up while taking requests in."""
        if self.down:
            return  # failed: it runs nothing until it is up
        if self.cancelling:
            self._drop_cancelled()
        fe = self.frontend
        if fe.shares_cpu and fe.intake_until > self.kernel.now:
            self._schedule_pending = True
            self.kernel.at(fe.intake_until, Priority.SCHEDULE, self._scheduled)
            return
        if self.window_left and len(self.batch):
            decode, swap_s = self.prepare_decode()
            if decode:
                self._move("decode_run")
                self._start_run(swap_s)
                return
            self.window_left = 0
        if self.ready and self.sim.classes:
            self._drop_arrived_cancelled()
        if self.incoming:
            self._pull()
        if self.ready:
            self._join_ready()
        plan = self.policy.plan(self)
        now = self.kernel.now
        if plan is None:
            self._load_fabric(None)
            if self.lagging:
                self._deliver()
            if self.reservation is not None and not self.running:
                self.share = self.reservation.share  # the engine idles
            self._move("idle")
            self._sample(0)
            return
        prefill, decode, extra_s = plan
        extra_s += self._load_s
        self._load_s = 0.0
        if not prefill:
            self._move("decode_run")
            self._start_run(extra_s)
            return
        self._move("iterate")
        tokens = sum(chunk for _, chunk in prefill)
        pairs = sum(Batch.pairs(chunk, req.computed) for req, chunk in prefill)
        completing = sum(1 for req, chunk in prefill if req.computed + chunk == req.tokens)
        ctx = self.batch.context + decode if decode else 0
        batch = Batch(tokens, pairs, decode, ctx, decode + completing)
        duration = self.timing.iteration_s(batch, len(prefill) + decode) + extra_s
        self._load_fabric(batch)
        self.plan = (prefill, decode, tokens, batch.samples)
        self.iteration_start = now
        self._sample(tokens + decode)
        self.version += 1
        self.kernel.at(now + duration, Priority.ITERATION_END, self._end_iteration, self.version)

    def _line(self, n: int) -> tuple[float, float, float, float]:
        """(H, F, a, c) of a decode step of ``n`` sequences: it takes
        ``H + max(F, a + c * context)`` seconds (see :mod:`tokensim.sim.engine`)."""
        line = self._lines.get(n)
        if line is None:
            gpu = self.timing.gpu_s
            a = gpu(Batch(decode_seqs=n, decode_context=0))
            big = 1_000_000
            c = (gpu(Batch(decode_seqs=n, decode_context=big)) - a) / big
            line = self._lines[n] = (*self.timing.decode_line(n), a, c)
        return line

    def _start_run(self, extra_s: float) -> None:
        now = self.kernel.now
        batch = self.batch
        n = len(batch)
        steps_to_finish = batch.steps_to_finish()
        k = self._steps_that_fit(steps_to_finish)
        r = self.reservation
        if r is not None and r.decay_steps and self.share > r.min_share and len(self.waiting):
            # the share held back falls each step: look at the queue again every 2% of it
            k = min(k, max(1, r.decay_steps // 50))
        h, f, a, c = self._line(n)
        ctx = batch.context
        if f > a + c * (ctx + n):  # the floor (launches, or async host time) sets the pace
            if c > 0:  # ... until the context has grown past it
                k = max(1, min(k, int((f - a - c * ctx) / (c * n))))
            a, c = h + f, 0.0
        else:
            a += h
        if not self.window_left:
            self.window_left = self.window  # a new scheduling window starts
        self.busy_s += extra_s  # swapping before the run
        self._load_fabric(Batch(decode_seqs=n, decode_context=ctx))
        self.run = _Run(now + extra_s, n, ctx, a, c, k, steps_to_finish)
        self.run.window_left = self.window_left
        if self.lagging:  # seen when the run's first step ends, after what comes before
            self.kernel.at(self.run.end(1), Priority.ITERATION_END, self._deliver_due, self.run)
        self.iteration_start = now
        self._run_first = self.iterations
        self._sample(n)
        self.version += 1
        self.kernel.at(self.run.end(k), Priority.ITERATION_END, self._end_run, self.version)

    def _load_fabric(self, batch: Batch | None) -> None:
        """Expert parallelism across nodes: while ``batch`` steps (None: idle), the
        all-to-all takes its share of the step's time from the bandwidth of the edges out
        of the instance's nodes, which KV copies over them share (rounded to a hundredth,
        so steps alike do not reshare the network)."""
        if self.fabric is None:
            return
        share = 0.0
        if batch is not None:
            parts = self.cost.breakdown(batch)
            total = sum(parts.values())
            share = round(parts.get("alltoall", 0.0) / total, 2) if total > 0 else 0.0
        self.sim.network.load(self, self.fabric, share)

    def _steps_that_fit(self, limit: int) -> int:
        """Most decode steps (<= limit, >= 1) whose KV growth fits the free blocks (the
        first step's blocks are granted already)."""
        batch = self.batch
        available = self.kv.available_blocks
        if available >= len(batch) * (limit // batch.block_tokens + 1):
            return limit  # even if every sequence crossed every boundary it could
        step = batch.step
        if batch.blocks_through(step + limit) <= available:
            return limit
        lo, hi = 1, limit  # step 1 needs nothing more
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if batch.blocks_through(step + mid) <= available:
                lo = mid
            else:
                hi = mid
        return lo

    def _apply_run_steps(self, run: _Run, j: int) -> None:
        """Bring the steps of ``run`` completed up to step ``j`` into the batch's state."""
        done = run.done
        m = j - done  # steps not applied yet
        if m <= 0:
            return
        batch = self.batch
        if not self._grant(batch.step + m):
            raise AssertionError("a decode run outgrew the blocks it was sized for")
        first_end, last_end = run.end(done + 1), run.end(j)
        self.frontend.stream(first_end, last_end, m, run.n)
        for gap in batch.advance(m, first_end, last_end):
            self.itl_gaps.extend(gap)
        if m > 1:  # steps done+2..j, each gap a + c (ctx + (done + s) n), for all n sequences
            base = run.a + run.c * (run.ctx + done * run.n)
            self.itl_steps.append((base, run.c * run.n, m - 1, run.n))
        self.iterations += m
        self._decay_share(m)
        self.busy_s += last_end - run.end(done)
        self.window_left = (self.window_left - m) % self.window
        run.done = j

    def sync(self) -> None:
        """Apply the steps of the current run completed by now (state reads are exact)."""
        run = self.run
        if run is None:
            return
        j = run.done_by(self.kernel.now)
        if j == run.k:
            return  # the end event applies it all
        self._apply_run_steps(run, j)

    def _cut_run(self) -> None:
        """End the current run at its next step boundary (a request arrived).

        The steps done by now and the one in flight are applied together when the
        shortened run ends, not now: one batch update instead of two.
        """
        run = self.run
        k = run.done_by(self.kernel.now) + 1
        if self.window > 1:  # a new request joins when the window ends
            k = run.boundary(k, self.window)
        if k < run.k:
            self._move("cut")
            run.k = k
            self.version += 1
            self.kernel.at(run.end(k), Priority.ITERATION_END, self._end_run, self.version)

    def _end_run(self, version: int) -> None:
        if version != self.version:
            return
        run = self.run
        self.run = None
        self._apply_run_steps(run, run.k)
        self.work.extend(
            (self.iteration_start, self.kernel.now, 0, run.n, self.iterations - self._run_first)
        )
        self._sample(len(self.batch))  # KV use peaks at the end of a run
        if run.k == run.to_finish:  # else the run was cut short: nobody is done
            # inside a multi-step window, the last tokens reach the client when it ends
            step_s = run.end(run.k) - run.end(run.k - 1)
            self._finish_done(self.window_left * step_s)
        self._move("end")
        self._start()

    def _finish_done(self, delivered_after_s: float = 0.0) -> None:
        """Finish every decoding sequence that has produced all its output tokens (its
        client has them ``delivered_after_s`` later)."""
        for req in self.batch.pop_done():
            self.kv.settle(req.id, req.computed)
            self._finish(req, delivered_after_s)

    def _end_iteration(self, version: int) -> None:
        if version != self.version:
            return
        now = self.kernel.now
        prefill, decode, tokens, samples = self.plan
        self.plan = None
        self.iterations += 1
        self.busy_s += now - self.iteration_start
        self.work.extend((self.iteration_start, now, tokens, decode, 1))
        batch = self.batch
        self.frontend.stream(now, now, 1, samples)  # the tokens this iteration made
        if self.lagging:  # the first tokens the step before made
            self._deliver()
        if decode:
            for gap in batch.advance(1, now, now):
                self.itl_gaps.extend(gap)
            self._decay_share(1)
            self._finish_done()
        for req, chunk in prefill:
            req.computed += chunk
            req.log.append((now, "prefill_chunk", chunk))
            if req.computed == req.tokens:
                req.generated += 1
                req.move("prefill_done", now)
                self.prefilling.remove(req)
                if req.first_token_s < 0:  # when its client sees it
                    req.first_token_s = self.frontend.seen(req.id, now)
                    req.log.append((now, "first_token", 1))
                    if self.async_output and req.generated < req.output:
                        self.lagging.append(req)  # seen when the next step ends
                else:
                    self.itl_gaps.extend((now - req.last_token_s, 1))
                req.last_token_s = now
                if req.generated >= req.output:
                    self._finish(req)
                elif self.pool.role == "prefill":
                    self._hand_off(req)
                else:
                    batch.add(req)
        self._move("end")
        self._start()

    def _deliver_due(self, run: _Run) -> None:
        """``async_output``: the first step of decode run ``run`` ends; the first tokens
        made before it reach the front end now, after whatever the front end was given
        while the step ran (unless the instance failed since: they were dropped)."""
        if self.run is run and self.lagging:
            self._deliver()

    def _deliver(self) -> None:
        """``async_output``: the first tokens made by the step before reach the front end
        now, when the step after it ends (vLLM V0 processes a step's outputs while the next
        step runs, and sends them when it returns)."""
        seen, now = self.frontend.seen, self.kernel.now
        for req in self.lagging:
            req.first_token_s = seen(req.id, now)
        self.lagging.clear()

    def _hand_off(self, req: Request) -> None:
        """Prefill done on a prefill instance: the request leaves the batch slots, its KV
        stays here until the copy to a decode instance completes."""
        req.move("hand_off", self.kernel.now)
        req.handoff_s = self.kernel.now
        req.prefill_step_s = self.iteration_start
        del self.running[req]
        self._count(-1)
        self.sending.add(req)
        self.sim.hand_off(req, self)

    def _finish(self, req: Request, delivered_after_s: float = 0.0) -> None:
        req.move("finish", self.kernel.now)
        made = self.kernel.now + delivered_after_s
        req.finish_s = self.frontend.seen(req.id, made)  # when its client has it all
        req.log.append((made, "finished", req.generated))
        self.kv.release(req.id, self.sim.answer_blocks(req, self.kv.block_tokens))
        del self.running[req]
        self._count(-1)
        self.sim.finished(req)

    def gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Every inter-token gap of this instance (s) and how many tokens had it."""
        pairs = np.array(self.itl_gaps, dtype=np.float64).reshape(-1, 2)
        values, weights = [pairs[:, 0]], [pairs[:, 1]]
        if self.itl_steps:
            base, slope, count, n = (np.array(x) for x in zip(*self.itl_steps, strict=True))
            seg = np.repeat(np.arange(len(count)), count)
            s = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count) + 2
            values.append(base[seg] + slope[seg] * s)
            weights.append(n[seg].astype(np.float64))
        values, weights = np.concatenate(values), np.concatenate(weights)
        if self.stream > 1:  # a client sees one gap per chunk of `stream` tokens
            return values * self.stream, weights / self.stream
        return values, weights

    # -- state for routing and time series ------------------------------------------------

    def _sample(self, batch_tokens: int) -> None:
        self.series.extend(
            (
                self.kernel.now,
                len(self.running),
                len(self.waiting) + len(self.swapped),
                self.kv.used_blocks,
                batch_tokens,
                self.kv.cached_blocks,
                self.kv.swapped_blocks,
            )
        )
