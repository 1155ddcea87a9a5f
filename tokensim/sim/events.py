"""The discrete-event kernel: a heap of ``(time, priority, seq, callback, args)``.

``seq`` comes from a per-simulation counter, so events at the same time and
priority run in the order they were scheduled: ties are never broken by
accident. All state lives on the :class:`Kernel` instance (no globals).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from enum import IntEnum


class Priority(IntEnum):
    """Order of events that fall on the same instant (lower runs first)."""

    ITERATION_END = 0  # work that finished frees memory and slots first
    TRANSFER_END = 1
    ARRIVAL = 2  # then new requests are routed, seeing the freed state
    SCHEDULE = 3  # then idle instances form their next batch


class Kernel:
    """A heap of timed callbacks; ``run`` pops them in (time, priority, seq) order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Callable, tuple]] = []
        self._seq = 0
        self.events = 0

    def at(self, time: float, priority: Priority, callback: Callable, *args) -> None:
        """Run ``callback(*args)`` at ``time`` (seconds; never before now)."""
        if time < self.now:
            raise AssertionError(f"event scheduled in the past: {time} < {self.now}")
        self._seq += 1
        heapq.heappush(self._heap, (time, priority, self._seq, callback, args))

    def run(self, after_each: Callable[[], None] | None = None) -> None:
        """Run events until none is left; ``after_each`` runs after every event (checks)."""
        heap = self._heap
        while heap:
            time, _, _, callback, args = heapq.heappop(heap)
            self.now = time
            self.events += 1
            callback(*args)
            if after_each is not None:
                after_each()
