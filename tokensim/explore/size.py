"""``tokensim size``: the fewest GPUs that serve a workload within its SLO, over layouts.

A question names a model, a GPU, an arrival rate, request lengths and the SLO. Each
*layout* is a way to deploy it: colocated instances of one tensor-parallel degree, of one
expert-parallel degree for a MoE model (across nodes), or a prefill pool and a decode pool,
each with its own degree. For every layout a walk finds the
fewest instances that meet the SLO at the rate: colocated, by doubling then bisecting the
count; disaggregated, by doubling the side whose targets fail (TTFT and queueing: prefill;
TPOT and ITL: decode; a busy pool: that pool), then bisecting each side down while the
other stays. The walks of all layouts advance together, a round of simulations at a time,
so a round uses every worker. A layout that does not deploy (the model does not fit at its
degree) is dropped with the checker's reason.

The answer is the search's :class:`~tokensim.explore.search.Outcome` per layout, ranked as
``tokensim search --goal min-gpus`` ranks them, so the same tables and page draw it.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

from tokensim.explore import search as s

# the tensor-parallel degrees tried: powers of two up to a node's GPUs
DEGREES = (1, 2, 4, 8, 16)
# the expert-parallel degrees tried for a MoE model (attention data-parallel over the same
# GPUs), across nodes: those that divide its experts, up to --max-gpus
EP_DEGREES = (8, 16, 32, 64, 128)

# the link between the GPUs of a node, by catalogue GPU, as the GPU is sold in servers of
# several (HGX baseboards for the SXM parts; PCIe cards otherwise, where the host link is
# the one between them); --link overrides it
NODE_LINKS = {
    "A100_80G": "NVLINK3",  # HGX A100: NVLink 3, 600 GB/s per GPU
    "A100_40G": "NVLINK3",
    "H100_SXM": "NVLINK4",  # HGX H100: NVLink 4, 900 GB/s per GPU
    "H200": "NVLINK4",  # HGX H200
    "B200": "NVLINK5",  # HGX B200: NVLink 5, 1.8 TB/s per GPU
    "MI300X": "XGMI",  # AMD Instinct platform: Infinity Fabric between the 8 GPUs
    "MI325X": "XGMI",
    "H20": "NVLINK4",  # HGX H20: NVLink 4, 900 GB/s per GPU
    "GB200": "NVLINK5",  # an NVL72 rack: one NVLink 5 domain (--gpus-per-node 72)
}

# which side of a disaggregated layout an SLO metric grows
PREFILL_METRICS = {"ttft", "queue"}
DECODE_METRICS = {"tpot", "itl"}
BUSY = 0.85  # a pool busier than this is grown too


class SizeError(Exception):
    """A question that cannot be asked (a bad rate, lengths or limit)."""


@dataclass(frozen=True)
class Question:
    """What ``tokensim size`` is asked. ``lengths`` and ``trace`` are spec text."""

    model: str
    gpu: str
    rate: float | None  # None: a trace's own arrival times
    slo: str
    lengths: str = "chat"
    trace: str | None = None
    dtype: str | None = None
    engine: str | None = None
    max_gpus: int = 16
    gpus_per_node: int = 8
    link: str | None = None
    network: str = "IB_400G"
    duration_s: float = 60.0
    seed: int = 1
    disaggregated: bool = True
    imports: tuple[str, ...] = ()
    experts: int = 1  # the model's routed experts, if the catalogue knows it (EP layouts)

    @property
    def requests(self) -> int | None:
        """Requests in a run: ``duration_s`` of arrivals at the rate, 200 to 20,000 (None:
        the whole trace, at its own times)."""
        if self.rate is None:
            return None
        return max(200, min(20_000, round(self.rate * self.duration_s)))

    @property
    def at(self) -> str:
        """The load, in words."""
        return "the trace's arrival times" if self.rate is None else f"{self.rate:g} requests/s"

    @property
    def node_link(self) -> str:
        return self.link or NODE_LINKS.get(self.gpu, "")


@dataclass(frozen=True)
class Layout:
    """Colocated instances of degree ``tp`` (``decode_tp`` None), or ``tp`` prefill
    instances beside ``decode_tp`` decode ones; ``ep``: colocated instances of ``tp`` GPUs
    with the experts spread over them and the attention data-parallel (``ep tp``)."""

    tp: int
    decode_tp: int | None = None
    ep: bool = False

    @property
    def disaggregated(self) -> bool:
        return self.decode_tp is not None

    @property
    def kind(self) -> str:
        return "ep" if self.ep else "tp"

    def gpus(self, n: int, m: int = 0) -> int:
        return n * self.tp + m * (self.decode_tp or 0)

    def label(self, n: int, m: int = 0) -> str:
        if not self.disaggregated:
            return f"{n} x {self.kind}{self.tp}"
        return f"prefill {n} x tp{self.tp} : decode {m} x tp{self.decode_tp}"

    @property
    def name(self) -> str:
        if not self.disaggregated:
            return f"colocated {self.kind}{self.tp}"
        return f"prefill tp{self.tp} / decode tp{self.decode_tp}"


def parse_rate(text: str) -> float:
    """``20/s``, ``20`` or ``1200/min`` as requests per second."""
    from tokensim.lang.units import Dim, parse_quantity

    try:
        value = parse_quantity(text, Dim.RATE, bare="/s")
    except ValueError:
        raise SizeError(f"--rate takes requests per second, like 20/s; got {text!r}") from None
    if not value > 0:
        raise SizeError(f"--rate must be above 0; got {text!r}")
    return value


def layouts(q: Question) -> list[Layout]:
    """Every layout of ``q``: colocated at each degree, then each prefill/decode pair."""
    degrees = [t for t in DEGREES if t <= min(q.gpus_per_node, q.max_gpus)]
    out = [Layout(t) for t in degrees]
    if q.experts > 1:
        out += [Layout(d, ep=True) for d in EP_DEGREES if d <= q.max_gpus and q.experts % d == 0]
    if q.disaggregated:
        out += [Layout(a, b) for a in degrees for b in degrees if a + b <= q.max_gpus]
    return out


def spec_text(q: Question, layout: Layout, n: int, m: int = 0) -> str:
    """The spec of ``layout`` with ``n`` instances (``n`` prefill, ``m`` decode)."""
    gpus = layout.gpus(n, m)
    nodes = max(1, math.ceil(gpus / q.gpus_per_node))
    per = min(q.gpus_per_node, gpus)
    link = f"; link {q.node_link}" if per > 1 and q.node_link else ""
    model = f"{q.model} {q.dtype}" if q.dtype else q.model
    lines = [f'name "{model} on {layout.label(n, m)} {q.gpu}"', ""]
    lines += ['import "std/hardware"', 'import "std/models"', 'import "std/engines"']
    lines += [f'import "{path}"' for path in q.imports]
    lines += ["", "cluster {"]
    lines += [f"  node n{i} {{ gpus {q.gpu} x {per}{link} }}" for i in range(nodes)]
    if nodes > 1:
        lines.append(f"  network {q.network} between {', '.join(f'n{i}' for i in range(nodes))}")
    lines += ["}", "", "deployment {"]
    engine = f"; engine {q.engine}" if q.engine else ""
    if layout.disaggregated:
        lines.append(
            f"  pool prefill {{ model {model}; instances {n}; tp {layout.tp}; "
            f"role prefill{engine} }}"
        )
        lines.append(
            f"  pool decode {{ model {model}; instances {m}; tp {layout.decode_tp}; "
            f"role decode{engine} }}"
        )
        lines += ["  transfer prefill -> decode", "  route prefill by least_tokens"]
        lines.append("  route decode by least_kv")
    else:
        lines.append(
            f"  pool serve {{ model {model}; instances {n}; {layout.kind} {layout.tp}{engine} }}"
        )
        if n > 1:
            lines.append("  route serve by least_tokens")
    lines += ["}", "", "workload {"]
    if q.trace is not None:
        lines.append(f"  {q.trace}")
    if q.rate is not None:
        lines.append(f"  arrivals poisson {q.rate:g}/s")
    if q.lengths and q.trace is None:
        lines.append(f"  lengths {q.lengths}")
    if q.requests is not None:
        lines.append(f"  requests {q.requests}")
    lines += [f"  seed {q.seed}", "}", ""]
    targets = [t.strip() for t in q.slo.split(";") if t.strip()]
    lines += ["slo {", *(f"  {t}" for t in targets), "}", ""]
    return "\n".join(lines)


# -- the walks ------------------------------------------------------------------------


def colocated_walk(cap: int) -> Generator[tuple[int, int], s.Trial, None]:
    """Instance counts to try, from 1 up to ``cap``: double while it fails, then bisect
    between the last failing and the first passing count."""
    lo, hi, n = 0, None, 1
    while True:
        trial = yield (n, 0)
        if trial.passed:
            hi = n
        else:
            lo = n
        if hi is None:
            if n >= cap:
                return
            n = min(cap, n * 2)
        else:
            if hi - lo <= 1:
                return
            n = (lo + hi) // 2


def sides(trial: s.Trial) -> tuple[bool, bool]:
    """Which pools a failing trial says to grow: (prefill, decode)."""
    grow_p = grow_d = False
    for m in trial.metrics:
        if m["requests"]["rejected"]:
            return True, True
        for target in (m.get("slo") or {}).get("targets", []):
            if not target["met"]:
                grow_p |= target["metric"] in PREFILL_METRICS
                grow_d |= target["metric"] in DECODE_METRICS
                if target["metric"] not in PREFILL_METRICS | DECODE_METRICS:
                    grow_p = grow_d = True
        pools = m.get("pools") or {}
        grow_p |= (pools.get("prefill") or {}).get("busy_fraction", 0.0) > BUSY
        grow_d |= (pools.get("decode") or {}).get("busy_fraction", 0.0) > BUSY
    if not (grow_p or grow_d):
        return True, True
    return grow_p, grow_d


def disaggregated_walk(layout: Layout, cap: int) -> Generator[tuple[int, int], s.Trial, None]:
    """(prefill, decode) counts to try within ``cap`` GPUs: from one each, double the sides
    that fail until it passes; then bisect the prefill count down with the decode count
    kept, and the decode count down with the prefill count kept."""
    n = m = 1
    if layout.gpus(n, m) > cap:
        return
    while True:
        trial = yield (n, m)
        if trial.passed:
            break
        grow_p, grow_d = sides(trial)
        n2, m2 = (n * 2 if grow_p else n), (m * 2 if grow_d else m)
        if layout.gpus(n2, m2) > cap:  # grow what still fits, one side at a time
            n2 = min(n2, (cap - layout.gpus(0, m)) // layout.tp)
            m2 = min(m2, (cap - layout.gpus(n2, 0)) // layout.decode_tp)
        if (n2, m2) == (n, m) or n2 < n or m2 < m:
            return
        n, m = n2, m2
    for side in (0, 1):  # bisect the prefill count, then the decode count
        lo, hi = 0, (n, m)[side]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            trial = yield ((mid, m) if side == 0 else (n, mid))
            if trial.passed:
                hi = mid
            else:
                lo = mid
        n, m = (hi, m) if side == 0 else (n, hi)


# -- the search -----------------------------------------------------------------------


@dataclass
class Walk:
    """One layout's walk and what it found: the passing trial with the fewest GPUs (else
    the last one tried) and its counts."""

    layout: Layout
    steps: Generator
    best: tuple[int, int] | None = None
    best_trial: s.Trial | None = None
    last: tuple[int, int] | None = None
    last_trial: s.Trial | None = None
    error: str | None = None


def size(q: Question, run_on, cache, seeds, bar=True, tally=None) -> list[s.Outcome]:
    """Walk every layout of ``q``; an :class:`~tokensim.explore.search.Outcome` per layout
    (its configuration at the fewest passing GPUs found), ranked fewest GPUs first."""
    from tokensim.explore.execute import Job, metrics_of
    from tokensim.explore.sweep import compiled
    from tokensim.lang.diagnostics import CompileError
    from tokensim.lang.parse import parse
    from tokensim.lang.source import SourceMap

    walks = []
    for layout in layouts(q):
        steps = (
            disaggregated_walk(layout, q.max_gpus)
            if layout.disaggregated
            else colocated_walk(q.max_gpus // layout.tp)
        )
        walks.append(Walk(layout, steps))
    pending: dict[int, tuple[int, int]] = {}
    for i, w in enumerate(walks):
        try:
            pending[i] = next(w.steps)
        except StopIteration:
            w.error = f"needs more than {q.max_gpus} GPUs"
    modules: dict[tuple[int, int, int], tuple] = {}

    def build(i: int, counts: tuple[int, int]):
        """(module, graph, text) of walk ``i`` at ``counts``; CompileError raises."""
        key = (i, *counts)
        if key not in modules:
            text = spec_text(q, walks[i].layout, *counts)
            sources = SourceMap()
            module = parse(text, "<size>", sources)
            modules[key] = (module, compiled(module, [], sources)[1], text)
        return modules[key]

    round_no = 0
    while pending:
        round_no += 1
        order, graphs = [], []
        for i in sorted(pending):
            try:
                _, graph, _ = build(i, pending[i])
            except CompileError as err:
                # the first count of a layout that does not deploy: drop it, with the reason
                walks[i].error = err.diagnostics[0].message if err.diagnostics else str(err)
                continue
            order.append(i)
            graphs.append(graph)
        jobs = [Job(g, seed).keyed() for g in graphs for seed in seeds]
        label = f"round {round_no}, {len(order)} layout{'s' * (len(order) != 1)} at {q.at}"
        got = metrics_of(jobs, run_on, cache, bar, tally, label)
        following: dict[int, tuple[int, int]] = {}
        for k, i in enumerate(order):
            metrics = got[k * len(seeds) : (k + 1) * len(seeds)]
            trial = s.Trial(q.rate, metrics, all(s.passes(m, None) for m in metrics))
            w, counts = walks[i], pending[i]
            w.last, w.last_trial = counts, trial
            if trial.passed and (w.best is None or w.layout.gpus(*counts) < w.layout.gpus(*w.best)):
                w.best, w.best_trial = counts, trial
            try:
                following[i] = w.steps.send(trial)
            except StopIteration:
                pass
        pending = following
    outcomes = []
    for index, w in enumerate(walks):
        counts = w.best or w.last
        lay = w.layout
        config = s.Config(index, {}, None, names=(lay.name,))
        config.family = (lay.disaggregated, lay.ep, lay.tp, lay.decode_tp or 0)
        config.shown = {"layout": lay.name}
        if counts is None:
            config.error = w.error or "does not deploy"
            outcomes.append(s.Outcome(config))
            continue
        module, graph, text = build(index, counts)
        config.module, config.graph, config.text = module, graph, text
        label = w.layout.label(*counts)
        config.names = (label if w.best else f"{w.layout.name} at {label}",)
        config.gpus = w.layout.gpus(*counts)
        config.rate = q.rate
        trial = w.best_trial or w.last_trial
        outcome = s.Outcome(config, [trial])
        outcomes.append(outcome)
    s.mark_pareto(outcomes, "min-gpus")
    outcomes = ranked(outcomes)
    for k, o in enumerate(outcomes):  # the search's tables break ties by index: by this order
        o.config.index = k
    return outcomes


def ranked(outcomes: list[s.Outcome]) -> list[s.Outcome]:
    """Passing first, fewest GPUs, then cheapest, then the most headroom (the smallest
    margin of any target, largest first); then those that fail, then those that do not
    deploy."""

    def key(o: s.Outcome):
        state = 0 if o.answer is not None else 1 if o.trials else 2
        usd = (o.answer and o.answer.mean("cost", "usd_per_hour")) or math.inf
        headroom = min((m for _, _, m in margins(o)), default=-math.inf)
        return (state, o.config.gpus or math.inf, usd, -headroom, o.config.index)

    return sorted(outcomes, key=key)


def margins(o: s.Outcome) -> list[tuple[str, float, float]]:
    """(target, value, margin) per SLO target of ``o``'s shown trial, means over the seeds;
    the margin is the share of the limit left over (negative: missed by that much)."""
    t = o.shown
    if t is None:
        return []
    out = []
    first = t.metrics[0].get("slo") or {}
    for k, target in enumerate(first.get("targets", [])):
        values = [m["slo"]["targets"][k]["value_s"] for m in t.metrics]
        value = sum(values) / len(values)
        limit = target["limit_s"]
        margin = (limit - value) / limit
        if not target["op"].startswith("<"):  # a floor, not a ceiling
            margin = -margin
        out.append((f"{target['metric']} {target['stat']}", value, margin))
    return out


EACH = "the fewest GPUs that meet the SLO, or the most tried"


def table(outcomes: list[s.Outcome], top: int) -> str:
    """The best ``top`` layouts that pass, then one line per layout that does not."""
    passing = [o for o in outcomes if o.answer is not None][:top]
    from tokensim.report.summary import aligned

    lines = []
    if passing:
        head = ["layout", "GPUs", "$/h"]
        targets = [name for name, _, _ in margins(passing[0])]
        head += targets
        body = []
        for o in passing:
            r = s.row(o, "min-gpus")
            usd = "" if r["usd_per_hour"] is None else f"{r['usd_per_hour']:.2f}"
            cells = [o.config.label, str(o.config.gpus), usd]
            cells += [f"{s._seconds(v)} ({margin:+.0%})" for _, v, margin in margins(o)]
            body.append(cells)
        lines += aligned(head, body)
    if len(outcomes) > len(passing):
        lines.append("")
        lines.append(f"  every layout by degree: {EACH}")
        body = []
        undeployed: dict[str, list[str]] = {}  # why -> the layouts it stops, in order
        for o in sorted(outcomes, key=lambda o: o.config.family):
            name = o.config.shown["layout"]
            if o.config.error:
                undeployed.setdefault(o.config.error, []).append(name)
                continue
            if o.answer is not None:
                got = f"{o.config.gpus} GPUs ({o.config.label}), meets the SLO"
            else:
                at = o.config.label.removeprefix(f"{name} at ")
                got = f"{o.config.gpus} GPUs ({at}) {s.note(o, 'min-gpus')}"
            body.append([f"{name}:", got])
        if body:
            lines += ["  " + line for line in aligned(["", ""], body, left=(0, 1))[1:]]
        if undeployed:
            lines.append("  do not deploy:")
            lines += [f"    {', '.join(names)}: {why}" for why, names in undeployed.items()]
    return "\n".join(lines) + "\n"
