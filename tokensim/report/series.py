"""Time series and samples cut down to what a page can draw.

Every function takes numpy columns (as :mod:`tokensim.report.load` reads them) and
returns a few hundred numbers, whatever the run's size: step functions are averaged
(or maximised) over fixed time bins, token counts are spread over the time they were
produced, and requests are sampled.
"""

from __future__ import annotations

import numpy as np

BINS = 300
PARTS = ("queue", "prefill", "KV wait", "KV copy", "decode", "preempted")
PART_COLUMNS = ("queue_s", "prefill_s", "transfer_wait_s", "transfer_s", "decode_s", "preempted_s")


def edges(end_s: float, bins: int = BINS) -> np.ndarray:
    """``bins`` equal time bins over [0, end_s] (one bin of 1 s when end_s is 0)."""
    return np.linspace(0.0, end_s if end_s > 0 else 1.0, bins + 1)


def _integral(t: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """∫_0^x of the step function that is 0 before t[0] and v[k] from t[k] to t[k+1]."""
    if t.size == 0:
        return np.zeros_like(x)
    at = np.concatenate([[0.0], np.cumsum(v[:-1] * np.diff(t))])  # integral up to t[k]
    k = np.searchsorted(t, x, side="right") - 1
    inside = k >= 0
    kk = np.maximum(k, 0)
    return np.where(inside, at[kk] + v[kk] * (x - t[kk]), 0.0)


def step_mean(t: np.ndarray, v: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Time-weighted mean of a step function (samples ``t``, ``v``) over each bin of ``e``."""
    integral = _integral(t, v.astype(np.float64), e)
    return np.diff(integral) / np.diff(e)


def step_max(t: np.ndarray, v: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Highest value a step function takes in each bin of ``e`` (0 before its first sample)."""
    out = np.zeros(len(e) - 1)
    if t.size == 0:
        return out
    k = np.searchsorted(t, e[:-1], side="right") - 1
    out = np.where(k >= 0, v[np.maximum(k, 0)], 0.0).astype(np.float64)
    lo = np.searchsorted(t, e[:-1], side="right")
    hi = np.searchsorted(t, e[1:], side="left")
    has = hi > lo
    if has.any():
        # a sentinel after the last sample keeps every start a valid index
        padded = np.append(v.astype(np.float64), -np.inf)
        bounds = np.column_stack([lo, hi]).ravel()  # max over padded[lo:hi], per bin
        peaks = np.maximum.reduceat(padded, bounds)[::2]
        out = np.where(has, np.maximum(out, peaks), out)
    return out


def per_second(times: np.ndarray, e: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """How many events (or how much weight) fall in each bin, per second."""
    counts, _ = np.histogram(times, bins=e, weights=weights)
    return counts / np.diff(e)


def token_rate(first: np.ndarray, finish: np.ndarray, outputs: np.ndarray, e: np.ndarray):
    """Output tokens per second in each bin: a request's first token at ``first``, the
    others spread evenly until ``finish``."""
    ok = ~(np.isnan(first) | np.isnan(finish))
    first, finish, outputs = first[ok], finish[ok], outputs[ok]
    rate = per_second(first, e)
    span = finish - first
    more = (outputs > 1) & (span > 0)
    f, d, r = first[more], finish[more], (outputs[more] - 1) / span[more]

    def cumulative(x: np.ndarray) -> np.ndarray:
        """Tokens after the first, produced by time x (a sum of ramps)."""
        total = np.zeros_like(x)
        for at, sign in ((f, 1.0), (d, -1.0)):
            order = np.argsort(at, kind="stable")
            a, w = at[order], r[order]
            n = np.searchsorted(a, x, side="right")
            cw = np.concatenate([[0.0], np.cumsum(w)])
            cwa = np.concatenate([[0.0], np.cumsum(w * a)])
            total += sign * (x * cw[n] - cwa[n])
        return total

    return rate + np.diff(cumulative(e)) / np.diff(e)


def binned_mean(times: np.ndarray, values: np.ndarray, weights: np.ndarray, e: np.ndarray):
    """Weighted mean of ``values`` over the events in each bin (NaN where none)."""
    total, _ = np.histogram(times, bins=e, weights=values * weights)
    count, _ = np.histogram(times, bins=e, weights=weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def breakdown(requests: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each completed request's E2E split into :data:`PARTS` (seconds), by column name."""
    done = requests["rejected"] == 0
    return {
        part: np.nan_to_num(requests[col][done])
        for part, col in zip(PARTS, PART_COLUMNS, strict=True)
    }


def sample_requests(requests: dict[str, np.ndarray], slowest: int = 15, sample: int = 15):
    """Indices of the ``slowest`` requests by E2E and a seeded sample of ``sample`` others,
    each group ordered by E2E, slowest first."""
    e2e = requests["e2e_s"]
    done = np.flatnonzero(~np.isnan(e2e))
    order = done[np.argsort(-e2e[done], kind="stable")]
    top = order[:slowest]
    rest = order[slowest:]
    if len(rest) > sample:
        picked = np.random.default_rng(0).choice(len(rest), size=sample, replace=False)
        rest = rest[np.sort(picked)]
    return top, rest


def window(starts: np.ndarray, end_s: float, most: int = 2500) -> tuple[float, float]:
    """A time window around the middle of the run holding about ``most`` iterations."""
    if starts.size == 0 or end_s <= 0:
        return 0.0, max(end_s, 1.0)
    if starts.size <= most:
        return 0.0, end_s
    s = np.sort(starts)
    mid = len(s) // 2
    lo, hi = s[max(0, mid - most // 2)], s[min(len(s) - 1, mid + most // 2)]
    return float(lo), float(hi)
