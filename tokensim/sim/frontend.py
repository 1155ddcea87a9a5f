"""The API server in front of an instance's engine: one CPU that takes requests in and
streams tokens out. Every instance has its own (:attr:`Instance.frontend`): a pool of
``n`` instances is ``n`` servers, each with its API server, behind the router.

A serving engine's front end (vLLM's API server, SGLang's tokenizer manager,
``trtllm-serve``) is a process of its own, beside the engine's: it parses and tokenizes
each request before the engine sees it, and detokenizes and streams every token the
engine makes. Both are work on the same CPU, first come first served, so a burst of new
requests holds up the tokens of the requests already running, and a flood of tokens
holds up new requests; the engine itself does not wait for it. A front end that
``shares_cpu`` with the engine (one process: vLLM before 0.5.4, or with
``--disable-frontend-multiprocessing``, whose engine loop adds new requests before each
step) holds up the engine
instead: no step starts while it is taking requests in (:attr:`FrontEnd.intake_until`).

:class:`FrontEnd` keeps one clock per server (``workers``; request ``r`` is handled by
server ``r mod workers``): the time its server is free. Taking in a request costs
``per_request + per_input_token * prompt``; the tokens of an engine step of ``n``
sequences cost ``n * per_output_token``, shared evenly by the servers. A request sees a
token when its server has streamed it, so its first token and its last reach the client
at :meth:`FrontEnd.seen`, never before the engine made them. A decode run of ``j`` steps
is streamed in closed form: the step ends ``t_1 .. t_j`` are convex in the step number,
so the server's clock after them is ``max(F + j w, t_j + w, t_1 + j w)``.

A front end that hands requests over in ``batches`` (an asynchronous server whose task
forwarding requests to the engine's process takes its turn only after every request
handler that was ready: vLLM 0.5.5-0.6.1's RPC front end) takes them in one after another
as above, but the engine gets none until the server has taken in every request that reached
it before it started on them: those that come while it works form the next batch, handed
over when that one is done (:meth:`FrontEnd.take_in_batch`). The engine is not held up.

A ``concurrent`` front end (an asynchronous server, whose request handlers run in turns)
takes requests in by processor sharing instead: the requests being taken in on a server
share it equally, so a burst of ``n`` reaches the engine together after ``n`` requests'
work. It keeps a virtual clock per server that runs at ``1 / requests in progress``; a
request is in when that clock reaches its mark (the clock when it came, plus its work), and
the instance is woken at the next mark (:meth:`FrontEnd.next_done`). Its intake does not
hold up the streaming, which keeps the clock above.
"""

from __future__ import annotations

import heapq

from tokensim import ir


class FrontEnd:
    """The front end of ``frontend`` (None: an engine without one, which costs nothing)."""

    def __init__(self, frontend: ir.Frontend | None):
        fe = frontend or ir.Frontend()
        self.take_s = fe.per_request_s
        self.token_in_s = fe.per_input_token_s
        self.latency_s = fe.latency_s
        self.servers = fe.workers
        self.token_out_s = fe.per_output_token_s / fe.workers  # per server, tokens shared
        self.free = [0.0] * fe.workers  # when each server is next free
        self.active = any((self.take_s, self.token_in_s, self.token_out_s))
        self.shares_cpu = fe.shares_cpu and bool(self.take_s or self.token_in_s)
        self.intake_until = 0.0  # when the requests taken in so far are all in
        # ``concurrent``: per server, the requests being taken in share it equally
        # (processor sharing, kept in virtual time: each request's work is done when the
        # server's virtual clock, which runs at 1 / requests in progress, reaches its mark)
        self.concurrent = fe.concurrent and bool(self.take_s or self.token_in_s)
        self._virtual = [0.0] * fe.workers  # virtual clock at _updated
        self._updated = [0.0] * fe.workers
        self._intake: list[list] = [[] for _ in range(fe.workers)]  # (mark, seq, request)
        self._seq = 0
        self.version = [0] * fe.workers  # bumped whenever a server's next completion moves
        # ``batches``: per server, the batch still open to newcomers: [start, end, requests]
        # (it starts when the one before it is done; a request that comes at its start, or
        # before it, joins it)
        self.batches = fe.batches and bool(self.take_s or self.token_in_s)
        self._open: list[list | None] = [None] * fe.workers

    def join(self, req, prompt: int, now: float) -> int:
        """``concurrent``: request ``req`` of ``prompt`` tokens starts being taken in at
        ``now``; returns its server (whose next completion, :meth:`next_done`, moved)."""
        s = req.id % self.servers
        jobs = self._intake[s]
        if jobs:
            self._virtual[s] += (now - self._updated[s]) / len(jobs)
        self._updated[s] = now
        work = self.take_s + self.token_in_s * prompt
        heapq.heappush(jobs, (self._virtual[s] + work, self._seq, req))
        self._seq += 1
        self.version[s] += 1
        return s

    def next_done(self, s: int) -> float | None:
        """When server ``s`` finishes its next request at the present sharing (None: it
        takes none in)."""
        jobs = self._intake[s]
        if not jobs:
            return None
        return self._updated[s] + (jobs[0][0] - self._virtual[s]) * len(jobs)

    def done(self, s: int, now: float) -> list:
        """The requests server ``s`` finishes taking in at ``now`` (its next completion:
        the first, and any whose work ends at the same virtual instant)."""
        jobs = self._intake[s]
        mark = jobs[0][0]
        out = []
        while jobs and jobs[0][0] == mark:
            out.append(heapq.heappop(jobs)[2])
        self._virtual[s], self._updated[s] = mark, now
        self.version[s] += 1
        return out

    def take_in(self, rid: int, prompt: int, now: float) -> float:
        """When request ``rid`` of ``prompt`` tokens, at the server at ``now`` (``latency``
        after it was sent), reaches the engine."""
        if not self.active:
            return now
        s = rid % self.servers
        done = max(now, self.free[s]) + self.take_s + self.token_in_s * prompt
        self.free[s] = done
        if done > self.intake_until:
            self.intake_until = done
        return done

    def take_in_batch(self, req, prompt: int, now: float) -> list:
        """``batches``: request ``req`` of ``prompt`` tokens is at its server at ``now``;
        returns its batch, ``[start, end, requests]``: it is handed over at ``end``, as far
        as that is known now (a later request may join it and move it)."""
        s = req.id % self.servers
        done = self.take_in(req.id, prompt, now)
        batch = self._open[s]
        if batch is None or (now > batch[0] and now >= batch[1]):
            batch = self._open[s] = [now, done, []]  # the server was idle: it starts now
        elif now > batch[0]:  # it came while the server worked on this batch: the next one
            batch = self._open[s] = [batch[1], done, []]
        batch[1] = done
        batch[2].append(req)
        return batch

    def stream(self, first_s: float, last_s: float, steps: int, tokens: int) -> None:
        """The engine made ``tokens`` tokens in each of ``steps`` steps, the first ending
        at ``first_s`` and the last at ``last_s``: the servers stream them."""
        if not self.active:
            return
        w = tokens * self.token_out_s
        free = self.free
        for s in range(self.servers):
            free[s] = max(free[s] + steps * w, last_s + w, first_s + steps * w)

    def seen(self, rid: int, made_s: float) -> float:
        """When the client of request ``rid`` sees a token the engine made at ``made_s``
        and the front end has been given (:meth:`stream`)."""
        if not self.active:
            return made_s
        return max(made_s, self.free[rid % self.servers])
