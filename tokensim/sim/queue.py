"""Waiting queues in admission order: first come first served, shortest prompt
first, or priority classes. Preempted requests go back to the front."""

from __future__ import annotations

import heapq
from collections import deque

from tokensim.sim.request import Request


class WaitQueue:
    """Requests waiting at an instance. ``order`` is fcfs, spf, priority or deadline."""

    def __init__(self, order: str):
        self.order = order
        self._front: deque[Request] = deque()  # preempted requests, resumed first
        self._fifo: deque[Request] = deque()
        self._heap: list[tuple[int, int, int, Request]] = []
        self._seq = 0
        self.tokens = 0  # tokens the waiting requests still have to prefill
        self.output_tokens = 0  # output tokens they still have to generate

    def __len__(self) -> int:
        return len(self._front) + len(self._fifo) + len(self._heap)

    def __iter__(self):
        yield from self._front
        yield from self._fifo
        yield from (entry[-1] for entry in sorted(self._heap))

    def _count(self, req: Request, sign: int) -> None:
        self.tokens += sign * req.to_compute
        self.output_tokens += sign * (req.output - req.generated)

    def push(self, req: Request) -> None:
        """Add a newly arrived request."""
        self._count(req, 1)
        if self.order == "fcfs":
            self._fifo.append(req)
            return
        if self.order == "spf":
            key = req.prompt
        elif self.order == "deadline":
            key = req.deadline_s
        else:
            key = req.priority
        self._seq += 1
        heapq.heappush(self._heap, (key, self._seq, req.id, req))

    def push_front(self, req: Request) -> None:
        """Put back a preempted request; the most recently preempted goes first."""
        self._count(req, 1)
        self._front.appendleft(req)

    def peek(self) -> Request:
        if self._front:
            return self._front[0]
        if self._fifo:
            return self._fifo[0]
        return self._heap[0][-1]

    def remove(self, req: Request) -> None:
        """Take ``req`` out wherever it waits (a cancellation: O(waiting))."""
        if req in self._front:
            self._front.remove(req)
        elif req in self._fifo:
            self._fifo.remove(req)
        else:
            self._heap = [e for e in self._heap if e[-1] is not req]
            heapq.heapify(self._heap)
        self._count(req, -1)

    def __contains__(self, req: Request) -> bool:
        return req in self._front or req in self._fifo or any(e[-1] is req for e in self._heap)

    def pop(self) -> Request:
        if self._front:
            req = self._front.popleft()
        elif self._fifo:
            req = self._fifo.popleft()
        else:
            req = heapq.heappop(self._heap)[-1]
        self._count(req, -1)
        return req
