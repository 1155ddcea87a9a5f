"""How sure a run's figures are: the same spec run with independent seeds (replications),
and each headline figure's mean with a confidence interval over them.

A run's figures vary with its seed (arrivals, lengths, routing ties): a p99 from one run of
a few hundred requests can move by tens of percent. ``tokensim run --seeds K`` runs ``K``
replications, seeds ``s, s+1, ..., s+K-1`` (``s`` the run's own), and reports for each
figure of :data:`FIGURES` the mean over them, the Student-t interval of that mean at the
stated confidence (``mean ± t(K-1) · sd / sqrt(K)``, which narrows as ``1/sqrt(K)``), and
the spread (lowest and highest of the K). The interval is of the *mean* figure: the spread
says how far one run's figure may land from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# (name, where in metrics.json, unit: "s" for times, else the unit shown)
FIGURES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("throughput", ("throughput", "requests_per_s"), "req/s"),
    ("output tokens/s", ("throughput", "output_tokens_per_s"), "tok/s"),
    ("TTFT mean", ("ttft_s", "mean"), "s"),
    ("TTFT p90", ("ttft_s", "p90"), "s"),
    ("TTFT p99", ("ttft_s", "p99"), "s"),
    ("TPOT mean", ("tpot_s", "mean"), "s"),
    ("TPOT p90", ("tpot_s", "p90"), "s"),
    ("TPOT p99", ("tpot_s", "p99"), "s"),
    ("E2E p90", ("e2e_s", "p90"), "s"),
    ("SLO attainment", ("slo", "attainment"), "share"),
    ("goodput", ("slo", "goodput_requests_per_s"), "req/s"),
)


def _mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of ``values``, at least two."""
    n = len(values)
    if n < 2:
        raise ValueError("an interval needs at least two replications")
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)), n


def interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """The mean of ``values`` (one a replication, at least two), the Student-t interval of
    that mean at ``confidence``, their standard deviation and the lowest and highest."""
    from scipy.stats import t

    mean, sd, n = _mean_sd(values)
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "sd": sd,
        "min": min(values),
        "max": max(values),
    }


def bound(values: Sequence[float], confidence: float, upper: bool = True) -> float:
    """The one-sided Student-t bound of the mean of ``values`` at ``confidence``: the mean
    is below it (``upper``), or above it, with that confidence."""
    from scipy.stats import t

    mean, sd, n = _mean_sd(values)
    half = float(t.ppf(confidence, n - 1)) * sd / math.sqrt(n)
    return mean + half if upper else mean - half


def value_at(metrics: dict, path: tuple[str, ...]) -> float | None:
    """The number at ``path`` in ``metrics`` (None: absent, or not a finite number)."""
    value = metrics
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def intervals(runs: Sequence[dict], seeds: Sequence[int], confidence: float = 0.95) -> dict:
    """The ``intervals`` entry of metrics.json for the replications ``runs`` (their
    metrics, one a seed of ``seeds``): every figure of :data:`FIGURES` that each has."""
    figures = {}
    for name, path, unit in FIGURES:
        values = [value_at(m, path) for m in runs]
        if any(v is None for v in values):  # no SLO, or a statistic of nothing served
            continue
        figures[name] = {"path": ".".join(path), "unit": unit, **interval(values, confidence)}
    spread = {}
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        curves = [(m.get("cdf") or {}).get(key) for m in runs]
        if all(isinstance(c, list) for c in curves) and len({len(c) for c in curves}) == 1:
            spread[key] = {
                "levels": runs[0]["cdf"]["levels"],
                "low": [min(vs) for vs in zip(*curves, strict=True)],
                "high": [max(vs) for vs in zip(*curves, strict=True)],
            }
    return {
        "seeds": list(seeds),
        "confidence": confidence,
        "figures": figures,
        "cdf_spread": spread,
        "timeline_spread": _timeline_spread(runs),
    }


def _timeline_spread(runs: Sequence[dict]) -> dict:
    """The lowest and highest of the runs' timelines, bin by bin, over the bins they all
    have, in the widest bins of theirs (a narrower one's rates averaged into them)."""
    lines = [m.get("timeline") for m in runs]
    if not all(isinstance(t, dict) for t in lines):
        return {}
    width = max(t["bin_s"] for t in lines)
    out: dict = {"bin_s": width}
    for key in ("completed_per_s", "output_tokens_per_s"):
        series = [_rebinned(t[key], round(width / t["bin_s"])) for t in lines]
        n = min(len(v) for v in series)
        columns = list(zip(*(v[:n] for v in series), strict=True))
        out[key] = {"low": [min(c) for c in columns], "high": [max(c) for c in columns]}
    return out


def _rebinned(rates: Sequence[float], k: int) -> list[float]:
    """Per-second rates in bins ``k`` times as wide (their means; a last, partial group
    is left out)."""
    if k <= 1:
        return list(rates)
    return [sum(rates[i : i + k]) / k for i in range(0, len(rates) - k + 1, k)]


def shown(value: float, unit: str) -> str:
    """``value`` as a table shows it: times in ms (s from 1 s), shares in %, else its unit."""
    if unit == "s":
        return f"{value * 1e3:,.1f} ms" if abs(value) < 1 else f"{value:,.2f} s"
    if unit == "share":
        return f"{value:.1%}"
    return f"{value:,.2f} {unit}" if abs(value) < 100 else f"{value:,.0f} {unit}"


def table(entry: dict) -> str:
    """The ``intervals`` entry as the terminal prints it."""
    seeds = entry["seeds"]
    head = (
        f"over {len(seeds)} seeds ({seeds[0]}..{seeds[-1]}): the mean, its "
        f"{entry['confidence']:.0%} interval, and the spread of the runs\n"
    )
    rows = [("figure", "mean", "interval", "spread")]
    for name, f in entry["figures"].items():
        unit = f["unit"]
        rows.append(
            (
                name,
                shown(f["mean"], unit),
                f"{shown(f['low'], unit)} .. {shown(f['high'], unit)}",
                f"{shown(f['min'], unit)} .. {shown(f['max'], unit)}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"
