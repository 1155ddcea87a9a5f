"""Fit an engine's undocumented figures to measured runs of one deployment.

What no engine documents is fitted: its CPU time per scheduling and per sequence, its API
server's time per request, per output token and its latency, and its kernels' speed against
the cost model's (a factor for GEMMs and one for attention). Everything else (schedulers,
budgets, block sizes, memory rules, CUDA graphs, multi-step) is the spec's.

The fit is a regularised least squares in the logs of the figures: every measured metric of
a run adds its log-ratio simulated / measured (each run weighs the same, however many
metrics it has; a robust loss so that one wild percentile does not drive the fit), and every
figure adds its log-ratio to where it started (the spec's engine), scaled by how far it may
plausibly move. With many runs the data decide; with one, the figures it cannot tell apart
stay near the engine's. Every figure stays within physical bounds. Medians, p90s and
throughputs count in full, means half and p99s a quarter (:data:`_WEIGHT`): on BLIS's
Mixtral runs, a TTFT p99 nine times the median (a handful of requests) had pulled one-run
fits' latency from about 25 ms to as much as 33 ms, and every prediction with it. In a run
sent at a constant rate, TTFT statistics other than the median count a quarter too
(:data:`_STEADY_TAIL`): such a run's slower first tokens waited behind the server's own
noise (a pause, a slow step; at Llama-2-70B's 20 req/s, near its 128-sequence cap, each one
queues for seconds), of which a replay of evenly spaced, equal requests has none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokensim import ir
from tokensim.replay import replay
from tokensim.replay.results import (
    FAMILIES,
    OPEN_LOOP,
    Observed,
    family,
    overloaded,
    served_of_sent,
)


@dataclass(frozen=True)
class Knob:
    """A fitted engine statement: its path in the engine's braces, the unit it is written
    in, its bounds and how far (a factor) it may plausibly move from the engine's figure."""

    path: str
    unit: str
    lo: float
    hi: float
    spread: float
    doc: str
    per_window: bool = False  # a time per scheduling: the bounds are per decode step

    def bounds(self, engine: ir.Engine) -> tuple[float, float]:
        """``lo``, ``hi``; for a time per scheduling, times the engine's multi-step window
        (vLLM 0.6's ``--num-scheduler-steps 10`` schedules once per 10 steps)."""
        k = engine.scheduler_steps if self.per_window else 1
        return self.lo, self.hi * k

    def start(self, engine: ir.Engine) -> float:
        """The engine's figure, in ``unit``."""
        block, name = self.path.split(".")
        if block == "kernels":
            return float(dict(engine.kernels).get(name, 1.0))
        value = getattr(getattr(engine, block), f"{name}_s")
        return value * {"ms": 1e3, "us": 1e6}[self.unit]

    def text(self, value: float) -> str:
        return f"{value:.4g} {self.unit}".strip()


KNOBS = (
    Knob("host.iteration", "ms", 0.02, 20.0, 10.0, "CPU time per scheduling", True),
    # per sequence: its error grows with the batch, so what one small batch says of it is
    # trusted least (it plausibly moves 2x, not 10x)
    Knob("host.per_seq", "us", 0.1, 300.0, 2.0, "CPU time per sequence per step"),
    Knob("frontend.per_request", "ms", 0.01, 100.0, 10.0, "API server time per request"),
    Knob("frontend.latency", "ms", 0.01, 300.0, 10.0, "API server latency (no queue)"),
    Knob("frontend.per_output_token", "us", 0.01, 300.0, 10.0, "API server time per token"),
    Knob("kernels.gemm", "", 0.5, 2.0, 2.0, "GEMM time against the cost model's"),
    Knob("kernels.attention", "", 0.5, 2.0, 2.0, "attention time against the cost model's"),
)
_CLIP = 3.0  # a log-ratio beyond e^3 (20x) counts as 20x: a run far off does not dominate
_ROBUST = 0.2  # log-ratios beyond about 20% count linearly, not squared (soft L1)
_STEP = 0.05  # the Jacobian's step in each figure's log
_PRIOR = 0.1  # the weight of the figures' pull back to the engine's: enough to break ties
# a statistic's weight against a median's: a run's few slowest requests (a pause, a retry,
# a stage's start) set its p99 and lift its mean, and the simulator has no cause for them
_WEIGHT = {"mean": 0.5, "p99": 0.25}
# a TTFT statistic's weight, but the median's, in a run sent at a constant rate: its slower
# first tokens queued behind noise the simulator does not have. Calibrated on BLIS's 20
# req/s stages alone, their TTFT p90 (3.7 and 1.5 times the median) had pulled the latency
# to 58 and 33 ms and the other stages' TTFT medians 18-72% high; counted so, one-run TTFT
# medians within 10% 90% -> 100%, p90s within 20% 85% -> 90% (bench/calibrate_accuracy.py)
_STEADY_TAIL = 0.25


@dataclass
class Fit:
    """The figures before and after, and each run's simulated metrics with both."""

    knobs: tuple[Knob, ...]
    start: np.ndarray
    values: np.ndarray
    before: list[dict[str, float]]
    after: list[dict[str, float]]
    evaluations: int = 0
    held_out: list[dict[str, float]] | None = None  # each run predicted by a fit without it
    warnings: list[str] = field(default_factory=list)

    def overrides(self) -> dict[str, str]:
        """The fitted figures as engine statements: ``{"host.iteration": "0.7 ms"}``."""
        return overrides_of(self.knobs, self.values)


def overrides_of(knobs: tuple[Knob, ...], values: np.ndarray) -> dict[str, str]:
    return {k.path: k.text(x) for k, x in zip(knobs, values, strict=True)}


def residuals(runs: list[Observed], sims: list[dict[str, float]]) -> np.ndarray:
    """Each metric's log-ratio simulated / measured, clipped, weighted by its statistic
    (:data:`_WEIGHT`, :data:`_STEADY_TAIL`) and scaled so that every run weighs the same."""
    out = []
    for obs, sim in zip(runs, sims, strict=True):
        keys = [k for k in obs.metrics if obs.metrics[k] > 0]
        weights = [_weight(obs, k) for k in keys]
        norm = math.sqrt(sum(x * x for x in weights))
        w = 1 / norm if norm else 0.0  # every run weighs the same
        for k, wk in zip(keys, weights, strict=True):
            s = sim.get(k, float("nan"))
            r = math.log(s / obs.metrics[k]) if s > 0 and math.isfinite(s) else _CLIP
            out.append(w * wk * _robust(max(-_CLIP, min(_CLIP, r))))
    return np.asarray(out)


def _weight(obs: Observed, key: str) -> float:
    """How much metric ``key`` (``<name>_<stat>``) of ``obs`` counts against a median."""
    name, stat = key.split("_", 1)
    w = _WEIGHT.get(stat, 1.0)
    if name == "ttft" and stat != "p50" and _constant_rate(obs):
        w *= _STEADY_TAIL
    return w


def _constant_rate(obs: Observed) -> bool:
    """Whether ``obs`` was sent at evenly spaced times (its replay then has no arrival
    noise to queue on)."""
    return obs.arrivals.startswith("constant")


def _robust(r: float) -> float:
    """``r`` rescaled so that its square is the soft-L1 loss of ``r`` (quadratic near 0,
    linear beyond ``_ROBUST``)."""
    c = _ROBUST
    return math.copysign(c * math.sqrt(2 * (math.sqrt(1 + (r / c) ** 2) - 1)), r)


def fit(
    dep: replay.Deployment | list[replay.Deployment],
    runs: list[Observed],
    folder: Path,
    knobs: tuple[Knob, ...] = KNOBS,
    max_evaluations: int = 120,
    progress: Callable[[str], None] | None = None,
    held_out: bool = False,
) -> Fit:
    """Fit ``knobs`` on ``runs`` replayed on ``dep`` (or each on its own deployment of a
    list, all of one engine: one set of figures for that engine on several GPUs or
    models)."""
    deps = dep if isinstance(dep, list) else [dep] * len(runs)
    engine = deps[0].engine
    bounds = [k.bounds(engine) for k in knobs]
    start = np.array(
        [min(max(k.start(engine), lo), hi) for k, (lo, hi) in zip(knobs, bounds, strict=True)]
    )
    on = {obs.name: d for obs, d in zip(runs, deps, strict=True)}

    # replays by run and figures as written: the fit's first point is the engine's, which
    # the "before" column and every held-out fit replay again
    done: dict[tuple[str, tuple[str, ...]], dict[str, float]] = {}

    def sims(values: np.ndarray, which: list[Observed]) -> list[dict[str, float]]:
        over = overrides_of(knobs, values)
        key = tuple(over.values())
        out = []
        for obs in which:
            sim = done.get((obs.name, key))
            if sim is None:
                sim = replay.simulate(on[obs.name], obs, over, folder)
                done[(obs.name, key)] = sim
            out.append(sim)
        return out

    values, evaluations = _solve(knobs, bounds, start, runs, sims, max_evaluations)
    result = Fit(knobs, start, values, sims(start, runs), sims(values, runs), evaluations)
    if len(runs) == 1 and overloaded(runs[0]):
        result.warnings.append(
            f"{runs[0].label} {served_of_sent(runs[0])}: the server was overloaded, and its "
            "latencies are those of a queue that grew with the run's length; a fit on it "
            "alone transfers poorly to loads the server keeps up with (calibrate on a run it "
            "kept up with, or on several)"
        )
    elif len(runs) == 1 and _queueing(runs[0]):
        m = runs[0].metrics
        said = (
            f"{runs[0].label} was sent at a steady rate and its TTFT p90 is "
            f"{m['ttft_p90'] / m['ttft_p50']:.1f}x its median: the server was queueing, near "
            "saturation, where every small error becomes TTFT; "
        )
        if _constant_rate(runs[0]):
            said += (
                "sent at a constant rate, it queued on the server's own pauses and slow "
                "steps, which a replay of evenly spaced requests does not have, so the fit "
                "counts its TTFT beyond the median a quarter and the simulated tail falls "
                "short of it"
            )
        else:
            said += (
                "a fit on it alone transfers poorly to lighter loads (calibrate on a lighter "
                "run, or on several)"
            )
        result.warnings.append(said)
    if len(runs) == 1:
        result.warnings.append(
            "one run cannot tell apart time per scheduling from time per sequence, nor the "
            "front end's queue from its latency, nor slower kernels from a slower front end: "
            "the kernel factors keep the engine's figures, and the figures it does not pin "
            "down stay near the engine's; calibrate on runs at several rates, concurrencies "
            "or lengths"
        )
    if held_out and len(runs) > 1:
        result.held_out = []
        for i, obs in enumerate(runs):
            if progress:
                progress(f"holding out {obs.name} ({i + 1}/{len(runs)})")
            others = runs[:i] + runs[i + 1 :]
            v, _ = _solve(knobs, bounds, start, others, sims, max_evaluations)
            result.held_out.append(sims(v, [obs])[0])
    return result


def _queueing(obs: Observed) -> bool:
    """Whether an open-loop run queued: its TTFT p90 more than twice its median (a burst's
    spread is its own, not queueing)."""
    m = obs.metrics
    p50, p90 = m.get("ttft_p50", 0.0), m.get("ttft_p90", 0.0)
    return obs.arrivals.startswith(OPEN_LOOP) and p50 > 0 and p90 > 2 * p50


def free_knobs(knobs: tuple[Knob, ...], runs: int) -> list[int]:
    """Which of ``knobs`` a fit on ``runs`` runs moves: with one run, not the kernel
    factors (a single run's TTFT cannot tell slower prefills from a slower front end, and
    a slower GEMM would slow its decode steps too); they keep the engine's figures."""
    if runs > 1:
        return list(range(len(knobs)))
    return [i for i, k in enumerate(knobs) if not k.path.startswith("kernels.")]


def _solve(knobs, bounds, start, runs, sims, max_evaluations) -> tuple[np.ndarray, int]:
    from scipy.optimize import least_squares

    free = free_knobs(knobs, len(runs))
    if not free:
        return start.copy(), 0
    lo = np.log([bounds[i][0] for i in free])
    hi = np.log([bounds[i][1] for i in free])
    x0 = np.log(start[free])
    spread = np.log([knobs[i].spread for i in free])
    count = [0]

    def full(x: np.ndarray) -> np.ndarray:
        values = start.copy()
        values[free] = np.exp(x)
        return values

    def f(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        prior = _PRIOR * (x - x0) / spread
        return np.concatenate([residuals(runs, sims(full(x), runs)), prior])

    def jac(x: np.ndarray) -> np.ndarray:
        # steps of 5% in each figure (a simulation is piecewise constant at small scales),
        # inward at a bound; scipy's relative steps would be 0 for a figure of 1 (log 0)
        f0 = f(x)
        out = np.empty((f0.size, x.size))
        for i in range(x.size):
            step = _STEP if x[i] + _STEP <= hi[i] else -_STEP
            moved = x.copy()
            moved[i] += step
            out[:, i] = (f(moved) - f0) / step
        return out

    sol = least_squares(
        f,
        x0,
        jac=jac,
        bounds=(lo, hi),
        max_nfev=max(1, max_evaluations // (len(free) + 1)),  # each costs a Jacobian
        x_scale=1.0,
    )
    return full(sol.x), count[0]


def errors(
    runs: list[Observed], sims: list[dict[str, float]]
) -> dict[str, tuple[float, float, int]]:
    """Median and p90 of |simulated - measured| / measured per family (and ``all``)."""
    by: dict[str, list[float]] = {f: [] for f in (*FAMILIES, "all")}
    for obs, sim in zip(runs, sims, strict=True):
        for k, v in obs.metrics.items():
            s = sim.get(k, float("nan"))
            e = abs(s - v) / v if math.isfinite(s) and v > 0 else float("inf")
            by[family(k)].append(e)
            by["all"].append(e)
    return {
        f: (float(np.median(e)), float(np.percentile(e, 90)), len(e)) for f, e in by.items() if e
    }
