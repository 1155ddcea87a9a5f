"""Arrival processes: when requests arrive, in seconds from the start.

Every process puts its first arrival at t = 0 (as a benchmark client that
sends its first request at once); the gaps after it follow the process.
"""

from __future__ import annotations

import math

import numpy as np

from tokensim.policies import PolicyUse


def arrival_times(
    policy: PolicyUse, count: int | None, duration_s: float | None, rng: np.random.Generator
) -> np.ndarray:
    """Arrival times (float64 seconds, non-decreasing, the first 0) from ``policy``.

    ``policy`` is an ``arrivals`` use: ``poisson`` (rate, 1/s: exponential gaps),
    ``step`` (poisson at ``rate``, at ``peak`` from ``at`` for ``lasting``),
    ``gamma`` (rate, 1/s, and cv: gamma gaps of mean 1/rate, shape 1/cv²),
    ``constant`` (rate: gaps of exactly 1/rate) or ``burst`` (all at 0); with ``exact``,
    poisson and gamma gaps are scaled to average exactly 1/rate over ``count``; ``closed``
    (a closed loop) gives 0 for all, and the simulator sends each when a client is free.
    Arrivals stop after ``count`` requests or before ``duration_s`` seconds
    (arrivals at or after it are dropped), whichever comes first; at least one
    of the two must be given. Draws from ``rng`` only for poisson and gamma.
    """
    if count is None and duration_s is None:
        raise ValueError("arrival_times needs a count or a duration")
    name = policy.name
    if name in ("burst", "closed"):  # closed: the simulator sets the times as clients free
        if count is None:
            raise ValueError(f"{name} arrivals need a count")
        return np.zeros(count)
    rate = float(policy.get("rate"))
    if name == "constant":
        n = count if duration_s is None else math.ceil(duration_s * rate) + 1
        if count is not None:
            n = min(n, count)
        times = np.arange(n) / rate
        return times if duration_s is None else times[times < duration_s]
    if name == "step":
        return _step(policy, count, duration_s, rng)
    if name == "poisson":
        scale = 1.0 / rate

        def draw(size: int) -> np.ndarray:
            return rng.exponential(scale, size)

    elif name == "gamma":
        shape = 1.0 / float(policy.get("cv")) ** 2

        def draw(size: int) -> np.ndarray:
            return rng.gamma(shape, 1.0 / (rate * shape), size)

    else:
        raise ValueError(f"unknown arrival process {name!r}")
    if not policy.get("exact"):
        return _accumulate(draw, rate, count, duration_s)
    if count is None:
        raise ValueError(f"`{name} {{ exact on }}` arrivals need a count")
    # the gaps scaled by one factor: the count spans (count - 1)/rate, as the rate says
    times = _accumulate(draw, rate, count, None)
    if count > 1 and times[-1] > 0:
        times *= (count - 1) / rate / times[-1]
    return times if duration_s is None else times[times < duration_s]


def _step(policy: PolicyUse, count, duration_s, rng: np.random.Generator) -> np.ndarray:
    """Poisson arrivals at ``rate``, at ``peak`` from ``at`` for ``lasting``: each stretch
    drawn on its own (the process is memoryless, so restarting at a boundary is exact;
    the arrival a stretch puts at its start is the first stretch's only)."""
    rate, peak = float(policy.get("rate")), float(policy.get("peak"))
    at, lasting = float(policy.get("at")), float(policy.get("lasting"))
    stretches = ((0.0, at, rate), (at, at + lasting, peak), (at + lasting, None, rate))
    out, left = [], count
    for start, end, r in stretches:
        if duration_s is not None:
            end = duration_s if end is None else min(end, duration_s)
        if (end is not None and end <= start) or left == 0:
            continue
        skip = 1 if start > 0 else 0
        want = None if left is None else left + skip
        span = None if end is None else end - start
        times = start + _accumulate(lambda n, r=r: rng.exponential(1.0 / r, n), r, want, span)
        times = times[skip:]
        out.append(times)
        left = None if left is None else left - len(times)
    times = np.concatenate(out) if out else np.zeros(0)
    return times if count is None else times[:count]


_CHUNK_MAX = 1e7  # arrivals drawn at once at most (a count or a duration ends the draws)


def _accumulate(draw, rate: float, count: int | None, duration_s: float | None) -> np.ndarray:
    """Sum gaps into times, a chunk at a time until ``count`` or ``duration_s``."""
    chunks = []
    have = 0
    t = 0.0  # the time of the next arrival
    while True:
        want = count - have if count is not None else None
        if duration_s is not None:
            expected = min(rate * (duration_s - t), _CHUNK_MAX)  # a rate beyond any count
            size = int(expected * 1.05 + 4 * math.sqrt(expected) + 16)
            want = size if want is None else min(want, size)
        gaps = draw(want)
        ends = np.cumsum(gaps)
        times = np.empty(want)
        times[0] = t
        times[1:] = t + ends[:-1]
        t += float(ends[-1])
        if duration_s is not None and t >= duration_s:
            times = times[times < duration_s]
            chunks.append(times)
            break
        chunks.append(times)
        have += want
        if count is not None and have >= count:
            break
    return np.concatenate(chunks)
