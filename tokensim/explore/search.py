"""``tokensim search``: answers to capacity questions, over the choices of a spec's sweep.

The configurations are the points of the spec's ``sweep`` (GPU type, tp, instances, a
prefill:decode split...), or the spec itself when it has none. A configuration *passes* at
a rate when, in every one of the seeds, it meets the spec's SLO (every target's statistic;
with ``attainment``, that share of requests meeting every limit instead) and rejects no
request. Finite runs are noisy near the limit; several seeds and enough requests make the
answer one that holds.

Goals:

* ``max-rate``: per configuration, the highest ``workload.arrivals.rate`` that passes,
  by doubling or halving from the spec's rate until the pass/fail boundary is bracketed,
  then bisection until the bracket is within ``tolerance``;
* ``min-cost`` / ``min-gpus``: every configuration at the spec's rate; the answer is the
  cheapest (by $/h of the GPUs its pools use) or smallest one that passes.

Either way the result holds every configuration's figures, and the Pareto front of those
that pass: cost, TTFT p90, TPOT p90 (lower is better) and throughput (higher).

All runs of a round go to the executor together and land in the cache, so a search that
was stopped resumes and a repeated one costs nothing.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Generator
from dataclasses import dataclass, field

from tokensim.explore.execute import Job, Tally, metrics_of
from tokensim.explore.sweep import cell, compiled, folder_name, points, shown
from tokensim.report.sweep_data import labels

RATE_PATH = "workload.arrivals.rate"
# Doublings and halvings from the spec's rate before a search gives up on a bracket. A run
# keeps its arrival window, so 64 times the rate is 64 times the requests: the cap up is lower.
UP_STEPS = 6
DOWN_STEPS = 10


class SearchError(Exception):
    """A search that cannot be made from this spec (no SLO, no rate to vary)."""


@dataclass
class Config:
    """One choice: a sweep point's values (none for a spec without a sweep), its syntax
    tree, and the reason it does not deploy, if it does not."""

    index: int
    values: dict[str, str]
    module: object
    error: str | None = None
    gpus: int | None = None
    names: tuple[str, ...] = ()  # its values as ``name=value`` (sweep.labels)
    rate: float | None = None  # its arrival rate (None: a trace's times)
    span: tuple[int, float] | None = None  # its :func:`window`
    graph: object = None  # compiled as written (None: it does not deploy)
    text: str | None = None  # its own spec text, where it is not the searched spec's
    shown: dict[str, str] | None = None  # its values as tables show them (sweep.shown)
    family: tuple = ()  # where it sorts among its kind (size: its layout: kind, then degrees)

    @property
    def label(self) -> str:
        return ", ".join(self.names) or "spec"

    @property
    def folder(self) -> str:
        return folder_name(self.index, list(self.names))


@dataclass
class Trial:
    """A configuration at one rate (None: the spec's), over every seed."""

    rate: float | None
    metrics: list[dict]
    passed: bool

    def mean(self, *path) -> float | None:
        values = []
        for m in self.metrics:
            for key in path:
                m = m.get(key) if isinstance(m, dict) else None
            if m is None:
                return None
            values.append(float(m))
        return sum(values) / len(values) if values else None


@dataclass
class Outcome:
    config: Config
    trials: list[Trial] = field(default_factory=list)
    pareto: bool = False

    @property
    def answer(self) -> Trial | None:
        """The passing trial at the highest rate (the only trial, for cost goals)."""
        passed = [t for t in self.trials if t.passed]
        return max(passed, key=lambda t: t.rate or 0.0) if passed else None

    @property
    def shown(self) -> Trial | None:
        """The trial whose figures the table shows: the answer, else the lowest rate tried."""
        if self.answer is not None or not self.trials:
            return self.answer
        return min(self.trials, key=lambda t: t.rate or 0.0)

    @property
    def failed_at(self) -> float | None:
        rates = [t.rate for t in self.trials if not t.passed and t.rate is not None]
        return min(rates) if rates else None


@dataclass(frozen=True)
class Settings:
    goal: str = "min-cost"
    seeds: tuple[int, ...] = (0, 1, 2)
    attainment: float | None = None
    tolerance: float = 0.02
    confidence: float | None = None  # pass when the mean meets the SLO at this confidence


def configurations(module, sources, spec) -> list[Config]:
    """Every point of ``spec``'s sweep as a :class:`Config` (the spec alone without one);
    a point that does not compile keeps its first error as the reason."""
    from tokensim.lang.diagnostics import CompileError

    pts = points(spec.sweep) if spec.sweep is not None else [[]]
    out = []
    seen = [shown(spec.sweep, p) for p in pts]
    for k, (point, names) in enumerate(zip(pts, labels(seen), strict=True)):
        config = Config(k, dict(point), module, names=tuple(names), shown=dict(seen[k]))
        try:
            m, graph = compiled(module, point, sources)
        except CompileError as err:
            config.error = err.diagnostics[0].message if err.diagnostics else str(err)
        else:
            config.module, config.graph = m, graph
            config.gpus = graph.spec.deployment.gpus
            config.rate, config.span = arrival_rate(graph.spec), window(graph.spec)
        out.append(config)
    return out


def window(spec) -> tuple[int, float] | None:
    """(requests, rate) of a workload given as a count of requests at a rate: a rate
    search keeps its arrival window (requests / rate) at every rate it tries, so a fast
    rate is not judged on a run too short to fill the queues. None for a ``duration``."""
    rate = arrival_rate(spec)
    if not rate or not spec.workload.requests:
        return None
    return spec.workload.requests, rate


def graph_at(config: Config, rate: float | None, sources, span=None):
    """``config`` at ``rate`` (None: as written), compiled; ``span`` is :func:`window`'s
    (requests, rate), to keep the arrival window."""
    values = rate_values(rate, span)
    if not values:
        return config.graph  # compiled once, by :func:`configurations`
    return compiled(config.module, values, sources)[1]


def rate_values(rate: float | None, span) -> list[tuple[str, str]]:
    """The ``--set`` values that run at ``rate`` with the arrival window of ``span``."""
    if rate is None:
        return []
    out = [(RATE_PATH, f"{rate:g}/s")]
    if span is not None:
        out.append(("workload.requests", str(max(1, round(span[0] * rate / span[1])))))
    return out


def _round(rate: float) -> float:
    return float(f"{rate:.4g}")


def bracket(start: float, tolerance: float) -> Generator[float, bool, None]:
    """The rates to try, given whether each passed: from ``start``, double while it
    passes (halve while it fails), then bisect the bracket until its width is at most
    ``tolerance`` of its lower end."""
    lo = hi = None
    rate = _round(start)
    while True:
        passed = yield rate
        lo, hi = (rate, hi) if passed else (lo, rate)
        if lo is None:
            if rate <= start / 2**DOWN_STEPS:
                return
            rate = _round(rate / 2)
        elif hi is None:
            if rate >= start * 2**UP_STEPS:
                return
            rate = _round(rate * 2)
        else:
            if hi - lo <= tolerance * lo:
                return
            rate = _round((lo + hi) / 2)
            if rate in (lo, hi):
                return


def trial_passes(metrics: list[dict], settings: Settings) -> bool:
    """Whether a configuration's runs at one rate (one a seed) pass: every run meets the SLO
    (each target's statistic, or with ``attainment`` that share of requests); or with
    ``confidence``, each target's statistic's mean over the runs is within its limit at
    that confidence (the one-sided Student-t bound), and with ``attainment`` the
    attainment's mean is at least it. A rejected request fails the trial either way."""
    if settings.confidence is None:
        return all(passes(m, settings.attainment) for m in metrics)
    from tokensim.intervals import bound
    from tokensim.metrics import within

    if any(m["requests"]["rejected"] for m in metrics):
        return False
    slos = [m.get("slo") or {} for m in metrics]
    if settings.attainment is not None:
        shares = [s.get("attainment", 0.0) for s in slos]
        return bound(shares, settings.confidence, upper=False) >= settings.attainment
    if not slos[0].get("targets"):
        return False
    for j, target in enumerate(slos[0]["targets"]):
        values = [s["targets"][j]["value_s"] for s in slos]
        if any(v is None or not math.isfinite(v) for v in values):
            return False
        top = bound(values, settings.confidence)
        if not within(top, target["op"], target["limit_s"]):
            return False
    return True


def passes(metrics: dict, attainment: float | None) -> bool:
    slo = metrics.get("slo") or {}
    if metrics["requests"]["rejected"]:
        return False
    if attainment is not None:
        return slo.get("attainment", 0.0) >= attainment
    return bool(slo.get("met"))


def arrival_rate(spec) -> float | None:
    """The spec's arrival rate in requests per second (None: a trace sets the times)."""
    arrivals = spec.workload.arrivals if spec.workload else None
    rate = dict(arrivals.params).get("rate") if arrivals is not None else None
    return float(rate) if rate is not None else None


def spec_rate(spec) -> float:
    """The spec's arrival rate, for ``max-rate`` to start from."""
    rate = arrival_rate(spec)
    if rate is None:
        raise SearchError(
            "--goal max-rate varies workload.arrivals.rate, and this spec's workload has "
            "no arrival rate (a trace sets its own times)"
        )
    return rate


def search(
    module,
    sources,
    spec,
    settings: Settings,
    run_on,
    cache,
    bar: bool = True,
    tally: Tally | None = None,
) -> list[Outcome]:
    """Run the search ``settings`` describe over ``spec``'s configurations; return an
    :class:`Outcome` per configuration, in sweep order, with the Pareto front marked."""
    if spec.slo is None:
        raise SearchError("a search needs an slo block: the targets a configuration must meet")
    rating = settings.goal == "max-rate"
    if rating:
        spec_rate(spec)
        sweep = spec.sweep
        axes = [*sweep.axes, *(a for g in sweep.zipped for a in g)] if sweep is not None else []
        if RATE_PATH in {a.path for a in axes}:
            raise SearchError(
                f"--goal max-rate varies {RATE_PATH} itself: take it out of the sweep"
            )
    configs = configurations(module, sources, spec)
    outcomes = [Outcome(c) for c in configs]
    walks: dict[int, Generator] = {}
    pending: dict[int, float | None] = {}
    for o in outcomes:
        if o.config.error is not None:
            continue
        if rating and o.config.rate is None:
            o.config.error = "its workload has no arrival rate to vary"
        elif rating:
            walks[o.config.index] = bracket(o.config.rate, settings.tolerance)
            pending[o.config.index] = next(walks[o.config.index])
        else:  # its own rate, named so that the table shows it (None: a trace's times)
            pending[o.config.index] = o.config.rate
    round_no = 0
    while pending:
        round_no += 1
        order = sorted(pending)
        graphs = [
            graph_at(configs[i], pending[i], sources, configs[i].span)
            if rating
            else graph_at(configs[i], None, sources)  # as written: its own rate
            for i in order
        ]
        jobs = [Job(g, seed).keyed() for g in graphs for seed in settings.seeds]
        if rating:
            rates = [pending[i] for i in order]
            tried = f"{min(rates):.3g}/s" + (
                f" to {max(rates):.3g}/s" if max(rates) > min(rates) else ""
            )
            label = f"round {round_no}, at {tried}"
        else:
            label = "configurations"
        got = metrics_of(jobs, run_on, cache, bar, tally, label)
        n = len(settings.seeds)
        following: dict[int, float | None] = {}
        for k, i in enumerate(order):
            metrics = got[k * n : (k + 1) * n]
            trial = Trial(pending[i], metrics, trial_passes(metrics, settings))
            outcomes[i].trials.append(trial)
            if i in walks:
                try:
                    following[i] = walks[i].send(trial.passed)
                except StopIteration:
                    pass
        pending = following
    mark_pareto(outcomes, settings.goal)
    return outcomes


def objectives(o: Outcome, goal: str) -> tuple[float, ...] | None:
    """What the Pareto front minimises: cost ($/h, else GPUs), TTFT p90, TPOT p90 and minus
    the throughput (the highest passing rate for ``max-rate``, else output tokens/s)."""
    t = o.answer
    if t is None:
        return None
    cost = t.mean("cost", "usd_per_hour")
    throughput = t.rate if goal == "max-rate" else t.mean("throughput", "output_tokens_per_s")
    values = (
        cost if cost is not None else o.config.gpus,
        t.mean("ttft_s", "p90"),
        t.mean("tpot_s", "p90"),
        -(throughput or 0.0),
    )
    return tuple(math.inf if v is None or math.isnan(v) else v for v in values)


def mark_pareto(outcomes: list[Outcome], goal: str) -> None:
    """Mark the configurations no other passing one beats on every objective."""
    scored = [(o, objectives(o, goal)) for o in outcomes]
    scored = [(o, v) for o, v in scored if v is not None]
    for o, v in scored:
        o.pareto = not any(
            all(a <= b for a, b in zip(w, v, strict=True)) and w != v for _, w in scored
        )


def ranked(outcomes: list[Outcome], goal: str) -> list[Outcome]:
    """Best first: passing before failing before not deploying; then by the goal."""

    def key(o: Outcome):
        t = o.answer
        state = 0 if t is not None else 1 if o.trials else 2
        gpus = o.config.gpus or math.inf
        usd = (t and t.mean("cost", "usd_per_hour")) or math.inf
        dominated = not o.pareto  # among equals, one on the front first
        if goal == "max-rate":
            rate = -(t.rate if t is not None else 0.0)
            per = usd / -rate if t is not None and usd != math.inf and rate else math.inf
            return (state, rate, per, dominated, o.config.index)
        if goal == "min-gpus":
            return (state, gpus, usd, dominated, o.config.index)
        return (state, usd, dominated, gpus, o.config.index)

    return sorted(outcomes, key=key)


COLUMNS = (
    ("usd_per_hour", ("cost", "usd_per_hour")),
    ("ttft_p90_s", ("ttft_s", "p90")),
    ("tpot_p90_s", ("tpot_s", "p90")),
    ("e2e_p90_s", ("e2e_s", "p90")),
    ("slo_attainment", ("slo", "attainment")),
    ("requests_per_s", ("throughput", "requests_per_s")),
    ("output_tokens_per_s", ("throughput", "output_tokens_per_s")),
    ("usd_per_million_output_tokens", ("cost", "usd_per_million_output_tokens")),
)


def row(o: Outcome, goal: str) -> dict:
    """One configuration's figures: means over the seeds of its shown trial."""
    t = o.shown
    out: dict = {"config": o.config.label, **(o.config.shown or o.config.values)}
    out["passes"] = o.answer is not None
    out["gpus"] = o.config.gpus
    out["rate_per_s"] = t.rate if t is not None else None
    out["fails_at_per_s"] = o.failed_at if goal == "max-rate" else None
    for name, path in COLUMNS:
        out[name] = t.mean(*path) if t is not None else None
    usd = out["usd_per_hour"]
    out["usd_per_hour_per_rate"] = (
        usd / out["rate_per_s"] if usd is not None and out["rate_per_s"] else None
    )
    out["pareto"] = o.pareto
    out["note"] = note(o, goal)
    return out


def note(o: Outcome, goal: str) -> str:
    if o.config.error is not None:
        return f"does not deploy: {o.config.error}"
    t = o.answer
    if t is None:
        if not o.trials:
            return ""
        why = _why(o.trials[-1])  # the last tried: for max-rate, the lowest rate
        if goal == "max-rate":
            return f"fails even at {_rate(o.trials[-1].rate)}" + (f" ({why})" if why else "")
        return f"fails: {why}" if why else "fails"
    if goal == "max-rate" and o.failed_at is None:
        return f"passes up to {_rate(t.rate)}, the highest rate tried"
    return ""


def _why(trial: Trial) -> str:
    """The first target a failing trial misses, or its rejections."""
    for m in trial.metrics:
        if m["requests"]["rejected"]:
            return f"rejects {m['requests']['rejected']} requests"
        for target in (m.get("slo") or {}).get("targets", []):
            if not target["met"]:
                return (
                    f"{target['metric']} {target['stat']} is {_seconds(target['value_s'])} "
                    f"(needs {target['op']} {_seconds(target['limit_s'])})"
                )
    return "attainment below the target"


def _seconds(x) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s"


def _rate(r: float | None) -> str:
    return "the spec's rate" if r is None else f"{r:g}/s"


def table(outcomes: list[Outcome], goal: str, paths: list[str]) -> str:
    """search.csv: one row per configuration, best first."""
    rows = [row(o, goal) for o in ranked(outcomes, goal)]
    names = ["config", *paths, "passes", "rate_per_s"]
    if goal == "max-rate":
        names += ["fails_at_per_s", "usd_per_hour_per_rate"]
    names += ["gpus", *(n for n, _ in COLUMNS), "pareto", "note"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(names)
    for r in rows:
        w.writerow([cell(r.get(n)) for n in names])
    return out.getvalue()


def answer(outcomes: list[Outcome], goal: str, spec) -> str:
    """The answer in a sentence."""
    best = ranked(outcomes, goal)
    ok = [o for o in best if o.answer is not None]
    at = "" if goal == "max-rate" else f" at {_spec_rate_text(spec)}"
    if not ok:
        return f"No configuration meets the SLO{at}."
    o = ok[0]
    t = o.answer
    if goal != "max-rate" and t.rate is not None:  # a sweep may set the rate per point
        at = f" at {_rate(t.rate)}"
    r = row(o, goal)
    figures = []
    if r["gpus"] is not None:
        figures.append(f"{r['gpus']} GPUs")
    if r["usd_per_hour"] is not None:
        figures.append(f"${r['usd_per_hour']:.2f}/h")
    figures.append(f"TTFT p90 {_seconds(r['ttft_p90_s'])}")
    figures.append(f"TPOT p90 {_seconds(r['tpot_p90_s'])}")
    what = {
        "max-rate": f"Highest rate that meets the SLO: {_rate(t.rate)}, with {o.config.label}",
        "min-cost": f"Cheapest configuration that meets the SLO{at}: {o.config.label}",
        "min-gpus": f"Fewest GPUs that meet the SLO{at}: {o.config.label}",
    }[goal]
    if goal == "max-rate" and o.failed_at is not None:
        figures.append(f"fails at {_rate(o.failed_at)}")
    return f"{what} ({', '.join(figures)})."


def _spec_rate_text(spec) -> str:
    rate = arrival_rate(spec)
    return f"{rate:g}/s" if rate is not None else "the spec's workload"


def tail_warnings(spec, settings: Settings) -> list[str]:
    """Targets decided by too few requests to be stable (fewer than 20 beyond the
    percentile in one run)."""
    w = spec.workload
    if w is None or not w.requests or spec.slo is None:
        return []
    out = []
    for t in spec.slo.targets:
        if not t.stat.startswith("p"):
            continue
        beyond = w.requests * (100 - float(t.stat[1:])) / 100
        if beyond < 20:
            out.append(
                f"{t.metric} {t.stat} is decided by the slowest {beyond:.0f} of "
                f"{w.requests} requests in each run: give the workload more requests"
            )
    return out
