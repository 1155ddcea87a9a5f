"""The decode batch of one instance, kept on a step clock.

Every sequence in the batch gains one token per decode step, so its counts are a
function of the batch's step counter ``step``: a sequence that joined at step
``s0`` with ``c0`` KV tokens and ``g0`` generated holds ``c0 + step - s0`` and has
generated ``g0 + step - s0``. Nothing per sequence changes when the batch takes
``j`` steps; only the counter moves. What the engine asks of the batch is kept as
running totals or heaps, so it costs O(1) or O(log n), never O(n):

* the batch's KV context (``context``) and output tokens left (``tokens_left``);
* steps until the first sequence finishes (a heap of finish steps) and which ones
  have (``pop_done``);
* the KV blocks that future steps need. A sequence needs a new block on the step
  that takes it past a multiple of ``block_tokens``; those steps recur every
  ``block_tokens`` steps, so the batch counts its sequences by *phase* (their
  step number modulo ``block_tokens``) and the blocks needed for any range of
  steps is a sum over at most ``block_tokens`` phases (``blocks_through``).

The Request object is brought up to date (``remove``) when it leaves the batch.
Block bookkeeping is shared with the instance through ``reserved``: the last step
whose blocks the KV manager has already granted.
"""

from __future__ import annotations

import heapq

from tokensim.sim.request import Request


class _Row:
    __slots__ = ("seq", "s0", "c0", "g0", "phase")

    def __init__(self, seq: int, s0: int, c0: int, g0: int, phase: int):
        self.seq, self.s0, self.c0, self.g0, self.phase = seq, s0, c0, g0, phase


class DecodeBatch:
    """The decoding sequences of an instance, in the order they joined."""

    def __init__(self, block_tokens: int, clip: int = 0) -> None:
        self.block_tokens = block_tokens
        self.clip = clip  # left_clipped counts each sequence's tokens left up to this (0: all)
        self.outputs = 0  # sum of the sequences' output lengths
        self._long = 0  # sequences that joined with more than ``clip`` tokens left
        self.step = 0  # decode steps taken by this batch so far
        self.reserved = 0  # blocks are granted for every step up to this one
        self.last_step_s = -1.0  # when the last step ended
        self._rows: dict[Request, _Row] = {}
        self._seq = 0
        self._ctx = 0  # sum of c0 - s0: context = _ctx + n * step
        self._left = 0  # sum of output - g0 + s0: tokens left = _left - n * step
        self._phases: dict[int, int] = {}  # phase -> sequences with it
        self._finish: list[tuple[int, int, Request]] = []  # (finish step, seq, request)
        self._fresh: list[Request] = []  # joined since the last step

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def reqs(self) -> list[Request]:
        """The sequences, in the order they joined."""
        return list(self._rows)

    @property
    def context(self) -> int:
        """KV tokens the batch holds now (the sum over its sequences)."""
        return self._ctx + len(self._rows) * self.step

    def tokens_left(self) -> int:
        """Output tokens the batch still has to generate."""
        return self._left - len(self._rows) * self.step

    def left_clipped(self) -> int:
        """Output tokens the batch still has to generate, each sequence's counted up to
        ``clip``: O(1) unless some sequence joined with more than ``clip`` left."""
        clip = self.clip
        if not self._long:
            return self.tokens_left()
        step = self.step
        return sum(
            min(req.output - row.g0 - step + row.s0, clip) for req, row in self._rows.items()
        )

    def computed(self, req: Request) -> int:
        """KV tokens of a sequence in the batch, now."""
        row = self._rows[req]
        return row.c0 + self.step - row.s0

    # -- membership -------------------------------------------------------------------------

    def add(self, req: Request) -> None:
        """A request starts decoding (its object's counts are current).

        Its blocks must already cover its tokens, so it joins only when every step so far
        is granted (``reserved == step``).
        """
        if self.reserved != self.step:
            raise AssertionError("a sequence joined a batch with steps granted ahead")
        s0, c0 = self.step, req.computed
        # it needs a new block on the step s > s0 where c0 + (s - 1 - s0) is a multiple of
        # the block size: s = s0 + 1 - c0 (mod block size)
        phase = (s0 + 1 - c0) % self.block_tokens
        self._rows[req] = _Row(self._seq, s0, c0, req.generated, phase)
        heapq.heappush(self._finish, (s0 + req.output - req.generated, self._seq, req))
        self._seq += 1
        self._ctx += c0 - s0
        self._left += req.output - req.generated + s0
        self.outputs += req.output
        self._long += bool(self.clip) and req.output - req.generated > self.clip
        self._phases[phase] = self._phases.get(phase, 0) + 1
        self._fresh.append(req)

    def remove(self, req: Request) -> Request:
        """Take a sequence out of the batch, writing its counts back into the Request."""
        if self.reserved != self.step:
            raise AssertionError("a sequence left a batch with steps granted ahead")
        row = self._rows.pop(req)
        steps = self.step - row.s0
        req.computed = row.c0 + steps
        req.generated = row.g0 + steps
        if steps:
            req.last_token_s = self.last_step_s
        else:
            self._fresh.remove(req)
        self._ctx -= row.c0 - row.s0
        self._left -= req.output - row.g0 + row.s0
        self.outputs -= req.output
        self._long -= bool(self.clip) and req.output - row.g0 > self.clip
        count = self._phases[row.phase] - 1
        if count:
            self._phases[row.phase] = count
        else:
            del self._phases[row.phase]
        return req  # its finish-heap entry goes stale and is skipped

    # -- steps ------------------------------------------------------------------------------

    def _top(self) -> tuple[int, int, Request] | None:
        heap, rows = self._finish, self._rows
        while heap:
            f, seq, req = heap[0]
            row = rows.get(req)
            if row is not None and row.seq == seq:
                return heap[0]
            heapq.heappop(heap)
        return None

    def steps_to_finish(self) -> int:
        """Steps until the first sequence has all its output (the batch is not empty)."""
        return self._top()[0] - self.step

    def blocks_through(self, step: int) -> int:
        """New KV blocks the batch needs for its steps after ``reserved`` up to ``step``."""
        lo, b = self.reserved, self.block_tokens
        if step <= lo:
            return 0
        phases = self._phases
        if step - lo == 1:  # one step: the sequences whose phase it is need a block
            return phases.get(step % b, 0)
        return sum(n * ((step - p) // b - (lo - p) // b) for p, n in phases.items())

    def advance(self, steps: int, first_end_s: float, last_end_s: float) -> list:
        """Take ``steps`` decode steps, the first ending at ``first_end_s``, the last at
        ``last_end_s``; their blocks must be granted. Returns the gaps before the first
        step's tokens as ``(gap s, tokens)`` pairs."""
        self.step += steps
        if self.step > self.reserved:
            raise AssertionError("decode steps ran without their KV blocks")
        fresh = self._fresh
        gaps = [(first_end_s - req.last_token_s, 1) for req in fresh]
        if len(self._rows) > len(fresh):
            gaps.append((first_end_s - self.last_step_s, len(self._rows) - len(fresh)))
        fresh.clear()
        self.last_step_s = last_end_s
        return gaps

    def pop_done(self) -> list[Request]:
        """Remove and return the sequences that have generated all their output."""
        done = []
        while (top := self._top()) is not None and top[0] <= self.step:
            heapq.heappop(self._finish)
            done.append(self.remove(top[2]))
        return done
