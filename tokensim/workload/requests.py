"""The requests a workload produces: one frozen, columnar container.

Column ``i`` of every array is request ``i``; requests are in arrival order.
Numbers are in base units: seconds for times, tokens for lengths.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Requests:
    """A batch of requests in arrival order (columnar, read-only).

    - ``arrival_s``: float64 seconds, non-decreasing, the first at or after 0.
    - ``prompt_tokens`` / ``output_tokens``: int64 tokens, each at least 1.
    - ``priority``: int64, 0 unless a trace gives one (a smaller number is not
      implied to be more urgent here; the scheduler that reads it decides).
    - ``prefix_hashes``: per request, the ids of its prompt's prefix blocks in
      order (equal ids mean a shared prefix; ``()`` for a request without ids),
      or None when no request has any.
    - ``prefix_block_tokens``: tokens each prefix id stands for (Mooncake: 512);
      0 exactly when ``prefix_hashes`` is None.
    - ``has_arrivals``: False when the source (a Vidur length-only trace) gives
      no arrival times; ``arrival_s`` is then all zeros and an arrival process
      must supply the times.
    - ``session`` / ``think_s``: multi-turn conversations, or None for
      independent requests. ``session`` (int64, non-decreasing from 0) numbers
      each request's conversation; a conversation's turns are consecutive, in
      order, and share its start time in ``arrival_s``; each turn's prompt is the
      whole conversation so far. ``think_s`` (float64, >= 0) is how long after
      the answer to the turn before a turn is sent (0 for a first turn): the
      simulator sets the arrival of every later turn.
    - ``klass``: int64, each request's index among the workload's request
      classes, or None without classes.

    The arrays are made read-only. A violated rule raises ValueError: that is a
    bug in whoever built the object (user input is checked before, with located
    errors).
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    priority: np.ndarray
    prefix_hashes: tuple[tuple[int, ...], ...] | None = None
    prefix_block_tokens: int = 0
    has_arrivals: bool = True
    session: np.ndarray | None = None
    think_s: np.ndarray | None = None
    klass: np.ndarray | None = None  # per request, its class's index (None: no classes)

    def __post_init__(self) -> None:
        n = None
        for name, dtype in (
            ("arrival_s", np.float64),
            ("prompt_tokens", np.int64),
            ("output_tokens", np.int64),
            ("priority", np.int64),
        ):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                raise ValueError(f"Requests.{name} must be a 1-D {np.dtype(dtype)} array")
            if n is not None and len(arr) != n:
                raise ValueError(f"Requests.{name} has {len(arr)} entries, expected {n}")
            n = len(arr)
            arr.setflags(write=False)
        arrival = self.arrival_s
        if n:
            if not np.all(np.isfinite(arrival)) or arrival[0] < 0:
                raise ValueError("Requests.arrival_s must be finite and start at or after 0")
            if np.any(np.diff(arrival) < 0):
                raise ValueError("Requests.arrival_s must be non-decreasing")
            if self.prompt_tokens.min() < 1 or self.output_tokens.min() < 1:
                raise ValueError("Requests need at least 1 prompt and 1 output token")
        if not self.has_arrivals and np.any(arrival != 0):
            raise ValueError("Requests without arrivals must have arrival_s all zero")
        self._check_prefixes(n or 0)
        self._check_sessions(n or 0)
        if self.klass is not None:
            k = self.klass
            if not isinstance(k, np.ndarray) or k.dtype != np.int64 or k.shape != (n or 0,):
                raise ValueError(f"Requests.klass must be a 1-D int64 array of {n}")
            if len(k) and k.min() < 0:
                raise ValueError("Requests.klass must be class indices >= 0")
            k.setflags(write=False)

    def _check_sessions(self, n: int) -> None:
        if (self.session is None) != (self.think_s is None):
            raise ValueError("Requests.session and think_s come together")
        if self.session is None:
            return
        for name, dtype in (("session", np.int64), ("think_s", np.float64)):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != (n,):
                raise ValueError(f"Requests.{name} must be a 1-D {np.dtype(dtype)} array of {n}")
            arr.setflags(write=False)
        steps = np.diff(self.session)
        if n and (self.session[0] != 0 or np.any((steps != 0) & (steps != 1))):
            raise ValueError("Requests.session must number conversations 0, 1, ... in order")
        if n and (not np.all(np.isfinite(self.think_s)) or self.think_s.min() < 0):
            raise ValueError("Requests.think_s must be finite and >= 0")

    @property
    def first_turns(self) -> np.ndarray:
        """The index of every conversation's first turn (every request without sessions)."""
        if self.session is None:
            return np.arange(len(self))
        return np.flatnonzero(np.diff(self.session, prepend=-1) != 0)

    def _check_prefixes(self, n: int) -> None:
        hashes = self.prefix_hashes
        if hashes is None:
            if self.prefix_block_tokens != 0:
                raise ValueError("Requests.prefix_block_tokens must be 0 without prefix_hashes")
            return
        if not isinstance(hashes, tuple) or len(hashes) != n:
            raise ValueError(f"Requests.prefix_hashes must be a tuple of {n} tuples")
        if not isinstance(self.prefix_block_tokens, int) or self.prefix_block_tokens < 1:
            raise ValueError("Requests.prefix_block_tokens must be a positive int with hashes")
        if not set(map(type, hashes)) <= {tuple} or not set(
            map(type, itertools.chain.from_iterable(hashes))
        ) <= {int}:
            raise ValueError("Requests.prefix_hashes must hold tuples of ints")

    def __len__(self) -> int:
        """The number of requests."""
        return len(self.arrival_s)

    def head(self, count: int) -> Requests:
        """The first ``count`` requests (all of them if there are fewer)."""
        hashes = self.prefix_hashes[:count] if self.prefix_hashes is not None else None
        return Requests(
            self.arrival_s[:count],
            self.prompt_tokens[:count],
            self.output_tokens[:count],
            self.priority[:count],
            hashes,
            self.prefix_block_tokens,
            self.has_arrivals,
            self.session[:count] if self.session is not None else None,
            self.think_s[:count] if self.think_s is not None else None,
            self.klass[:count] if self.klass is not None else None,
        )

    @property
    def total_prompt_tokens(self) -> int:
        """Prompt tokens over all requests."""
        return int(self.prompt_tokens.sum())

    @property
    def total_output_tokens(self) -> int:
        """Output tokens over all requests."""
        return int(self.output_tokens.sum())
