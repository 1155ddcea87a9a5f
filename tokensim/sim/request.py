"""A request's state machine and the times of its transitions.

``ARRIVED`` (sent, not yet at an instance) -> ``QUEUED`` (at an instance, waiting) ->
``PREFILL`` (admitted; prompt being computed, maybe in chunks) -> ``DECODE`` (a token
sampled) -> ``DONE``; from ``PREFILL``/``DECODE`` a preemption returns it to ``QUEUED``
(recompute) or ``SWAPPED``. Under disaggregation a request prefilled on a prefill instance
is ``TRANSFER`` from its first token until its KV has reached the decode instance (waiting
there for memory, then copying), and ``DECODE`` after. A request that can never run is
``DONE`` (rejected) from where it was.

:data:`RULES` is the whole machine: every (state, event) a request may take, the state it
leads to and what causes it (:data:`MACHINE` is its lookup). :meth:`Request.move` checks each
transition against it; any other is a bug of the simulator, raised as
:class:`TransitionError` naming the request, the time and the states. Every transition time
is kept: they make the latency breakdown.
"""

from __future__ import annotations

from enum import IntEnum

from tokensim.sim.machine import step, table


class State(IntEnum):
    QUEUED = 0
    PREFILL = 1
    DECODE = 2
    SWAPPED = 3
    TRANSFER = 4
    DONE = 5
    ARRIVED = 6


# Every transition a request may make: (state, event, next state, what causes it)
RULES: tuple[tuple[State, str, State, str], ...] = (
    (State.ARRIVED, "queue", State.QUEUED, "routed, and taken in by its instance's front end"),
    (State.ARRIVED, "reject", State.DONE, "prompt + output exceed the model's context"),
    (State.QUEUED, "admit", State.PREFILL, "its KV fits: scheduled, or resumed"),
    (State.QUEUED, "reject", State.DONE, "its KV can never fit the instance"),
    (State.PREFILL, "prefill_done", State.DECODE, "its last chunk ran: a token is out"),
    (State.PREFILL, "preempt", State.QUEUED, "out of blocks: dropped, recomputed later"),
    (State.DECODE, "preempt", State.QUEUED, "out of blocks: dropped, recomputed later"),
    (State.DECODE, "swap_out", State.SWAPPED, "out of blocks: its KV to host memory"),
    (State.SWAPPED, "swap_in", State.DECODE, "its KV is back from host memory"),
    (State.DECODE, "hand_off", State.TRANSFER, "prefilled on a prefill instance"),
    (State.TRANSFER, "join", State.DECODE, "its KV reached the decode instance"),
    (State.TRANSFER, "reject", State.DONE, "its KV can never fit a decode instance"),
    (State.DECODE, "finish", State.DONE, "its last token is out"),
    (State.QUEUED, "fail", State.ARRIVED, "its instance failed: sent again"),
    (State.PREFILL, "fail", State.ARRIVED, "its instance failed: sent again"),
    (State.DECODE, "fail", State.ARRIVED, "its instance failed: sent again"),
    (State.SWAPPED, "fail", State.ARRIVED, "its instance failed: sent again"),
    (State.TRANSFER, "fail", State.ARRIVED, "an instance its KV was on failed: sent again"),
    (State.ARRIVED, "cancel", State.DONE, "its client timed out (or it was shed on arrival)"),
    (State.QUEUED, "cancel", State.DONE, "its client timed out while it waited"),
    (State.PREFILL, "cancel", State.DONE, "its client timed out: dropped at the step's end"),
    (State.DECODE, "cancel", State.DONE, "its client timed out: dropped at the step's end"),
    (State.SWAPPED, "cancel", State.DONE, "its client timed out while it was swapped out"),
    (State.TRANSFER, "cancel", State.DONE, "its client timed out: dropped when its KV arrives"),
)
MACHINE = table(RULES)  # (state, event) -> state


class _NoLog:
    """The transition log of a run that keeps none: takes every entry, holds nothing."""

    __slots__ = ()

    def append(self, entry) -> None:
        pass


NO_LOG = _NoLog()


class Request:
    """One request. Token counts are tokens; times are seconds of simulated time.
    ``log`` (False: :data:`NO_LOG`) keeps every transition."""

    __slots__ = (
        "id",
        "arrival_s",
        "prompt",
        "output",
        "priority",
        "hashes",
        "state",
        "instance",
        "decode_instance",
        "handoff_s",
        "transfer_start_s",
        "transfer_end_s",
        "computed",
        "generated",
        "hit_tokens",
        "enqueued_s",
        "admitted_s",
        "first_token_s",
        "finish_s",
        "preemptions",
        "preempted_at_s",
        "preempted_s",
        "swapped_out",
        "last_token_s",
        "rejected",
        "preempted_early_s",
        "log",
        "prefill_step_s",
        "kv_waited",
        "received_hit",
        "session",
        "klass",
        "deadline_s",
        "cancelled",
        "host",
    )

    def __init__(
        self,
        rid: int,
        arrival_s: float,
        prompt: int,
        output: int,
        priority: int = 0,
        hashes: tuple | None = None,
        log: bool = True,
        session: int = -1,
    ):
        self.id = rid
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.priority = priority
        self.hashes = hashes
        self.session = session  # the conversation it is a turn of (-1: none)
        self.klass = -1  # its request class (-1: none)
        self.deadline_s = float("inf")  # when its first token is due (`order deadline`)
        self.cancelled = ""  # why its client gave up: it is dropped at the next boundary
        self.host = None  # the instance that holds it now
        self.state = State.ARRIVED
        self.instance = None  # where it was queued first
        self.decode_instance = None  # where its KV went after prefill (disaggregation)
        self.handoff_s = -1.0  # prefill done, KV to move
        self.prefill_step_s = -1.0  # when the step that ended its prefill began
        self.kv_waited = False  # its copy waited for decode memory
        self.received_hit = 0  # prompt tokens the decode side had cached: not copied
        self.transfer_start_s = -1.0  # decode memory reserved, copy starts
        self.transfer_end_s = -1.0  # KV arrived
        self.computed = 0  # tokens whose KV is computed (prompt, then prompt + generated)
        self.generated = 0  # output tokens produced
        self.hit_tokens = 0  # prompt tokens served from the prefix cache (last admission)
        self.enqueued_s = -1.0
        self.admitted_s = -1.0  # first admission
        self.first_token_s = -1.0
        self.finish_s = -1.0
        self.preemptions = 0
        self.preempted_at_s = -1.0
        self.preempted_s = 0.0  # total time spent preempted
        self.preempted_early_s = 0.0  # of which before the first token
        # every transition: (time s, event, value), as transitions.csv (docs/metrics.md)
        self.log: list[tuple[float, str, int]] = [(arrival_s, "arrived", prompt)] if log else NO_LOG
        self.swapped_out = 0  # times swapped out
        self.last_token_s = -1.0
        self.rejected = ""  # why the request could never run, if it could not

    def move(self, event: str, now: float) -> None:
        """Take the transition of ``event`` (see :data:`MACHINE`) at ``now`` seconds."""
        nxt = MACHINE.get((self.state, event))
        if nxt is None:  # not a transition: step() says which and raises
            step(MACHINE, self.state, event, f"request {self.id}", now)
        self.state = nxt

    @property
    def tokens(self) -> int:
        """Tokens in the sequence now (prompt plus generated)."""
        return self.prompt + self.generated

    @property
    def to_compute(self) -> int:
        """Tokens still to prefill before the next token can be sampled."""
        return self.tokens - self.computed
