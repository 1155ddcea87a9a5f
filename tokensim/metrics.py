"""Metrics of a run, defined as vLLM's serving benchmark defines them.

* TTFT: first token time - arrival; E2E: finish - arrival;
* TPOT: (E2E - TTFT) / (output tokens - 1), for requests with more than one output token;
* ITL: every gap between consecutive tokens of a request;
* queue: first admission - arrival;
* duration: last finish - first arrival; throughputs are totals over the duration;
* goodput: requests meeting every per-request SLO limit (``ttft``, ``tpot``, ``itl``,
  ``e2e``, ``queue`` <= its limit; ITL uses the request's mean gap) per second; attainment:
  their share of all requests (a rejected request misses). Each SLO target is also
  checked on its statistic.
* cost (when every GPU the pools run on has a ``price``): the deployment's GPUs rented for
  the duration, per million output tokens and per million tokens (prompt + output) completed.

Each latency has ``mean``, ``std``, ``p50``, ``p90``, ``p95``, ``p99`` and the spec's
``metrics { percentiles }`` in seconds. ``summarize`` returns plain data (dicts, floats)
for report/ to write; :func:`bench` is the same run as vLLM's ``bench serve`` names it.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

PERCENTILES = (50, 90, 95, 99)  # always reported; a spec's `metrics { percentiles }` adds more


def percentile_key(q: float) -> str:
    """``p50``, ``p99.9``: a percentile's name in metrics.json."""
    return f"p{q:g}"


def _stats(
    values: np.ndarray, weights: np.ndarray | None = None, more: tuple[float, ...] = ()
) -> dict[str, float]:
    """mean, std (population, as vLLM's numpy std) and the percentiles of ``values``."""
    qs = sorted(set(PERCENTILES) | set(more))
    if values.size == 0:
        return {k: float("nan") for k in ("mean", "std", *map(percentile_key, qs))}
    if weights is None:
        p = np.percentile(values, qs)
        mean, std = float(values.mean()), float(values.std())
        return {
            "mean": mean,
            "std": std,
            **{percentile_key(q): float(v) for q, v in zip(qs, p, strict=True)},
        }
    mean = float(np.average(values, weights=weights))
    std = float(np.sqrt(np.average((values - mean) ** 2, weights=weights)))
    return {
        "mean": mean,
        "std": std,
        **{percentile_key(q): weighted_percentile(values, weights, q) for q in qs},
    }


def stat(values: np.ndarray, name: str, weights: np.ndarray | None = None) -> float:
    """``mean`` or ``pNN`` (``p99.9`` too) of ``values``."""
    if values.size == 0:
        return float("nan")
    if name == "mean":
        return float(np.average(values, weights=weights))
    q = float(name[1:])
    if weights is None:
        return float(np.percentile(values, q))
    return weighted_percentile(values, weights, q)


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of ``values`` each counted ``weights`` times (inverted CDF)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    target = q / 100 * cum[-1]
    return float(v[min(int(np.searchsorted(cum, target, side="left")), len(v) - 1)])


def per_request(result) -> dict[str, np.ndarray]:
    """Latency columns per request (NaN where undefined, e.g. TPOT of one-token outputs)."""
    r = result.requests
    done = ~r["rejected"]
    nan = np.full(len(r["id"]), np.nan)
    ttft = np.where(done, r["first_token_s"] - r["arrival_s"], nan)
    e2e = np.where(done, r["finish_s"] - r["arrival_s"], nan)
    multi = done & (r["output_tokens"] > 1)
    tpot = np.where(multi, (e2e - ttft) / np.maximum(r["output_tokens"] - 1, 1), nan)
    queue = np.where(done, r["admitted_s"] - r["arrival_s"], nan)
    prefill = np.where(done, r["first_token_s"] - r["admitted_s"] - r["preempted_early_s"], nan)
    moved = done & (r["transfer_end_s"] >= 0)
    none = np.where(done, 0.0, nan)  # completed without a transfer: 0
    wait = np.where(moved, r["transfer_start_s"] - r["handoff_s"], none)
    transfer = np.where(moved, r["transfer_end_s"] - r["transfer_start_s"], none)
    decode = np.where(
        done,
        r["finish_s"]
        - r["first_token_s"]
        - (r["preempted_s"] - r["preempted_early_s"])
        - wait
        - transfer,
        nan,
    )
    return {
        "ttft_s": ttft,
        "tpot_s": tpot,
        "e2e_s": e2e,
        "queue_s": queue,
        "prefill_s": prefill,
        "transfer_wait_s": wait,
        "transfer_s": transfer,
        "decode_s": decode,
        "itl_mean_s": tpot,
    }


# quantile levels of the per-request latencies kept in metrics.json (``cdf``): 2% steps, and
# the tail
CDF_LEVELS = tuple(sorted({round(k / 50, 2) for k in range(51)} | {0.99, 0.999}))


def _quantiles(cols: dict) -> dict:
    """TTFT, TPOT and E2E at :data:`CDF_LEVELS` over the completed requests (None where
    there is none): enough to draw a run's CDFs, and to compare runs' (``run --seeds``)."""
    out: dict = {"levels": list(CDF_LEVELS)}
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        values = _finite(cols[key])
        out[key] = [float(v) for v in np.quantile(values, CDF_LEVELS)] if values.size else None
    return out


def _autoscale(result, held: dict[str, float]) -> dict:
    """Per autoscaled pool: its bounds, the fleet serving over time (time-weighted mean,
    peak), its starts and stops, and the GPU-hours it held."""
    out = {}
    end = result.simulated_s
    for pool, rows in result.fleet.items():
        rule = result.spec.deployment.autoscaler(pool)
        times = np.append(rows[:, 0], end)
        weights = np.diff(times)
        actions = result.scaling.get(pool, [])
        out[pool] = {
            "min": rule.min,
            "max": rule.max,
            "mean_serving": float((rows[:, 1] * weights).sum() / end) if end > 0 else 0.0,
            "peak_serving": int(rows[:, 1].max()),
            "starts": sum(a == "add" for _, a, _ in actions),
            "stops": sum(a == "remove" for _, a, _ in actions),
            "gpu_hours": held[pool] / 3600,
            "fleet": {  # at every change
                "time_s": rows[:, 0].tolist(),
                "serving": rows[:, 1].astype(int).tolist(),
                "starting": rows[:, 2].astype(int).tolist(),
                "stopping": rows[:, 3].astype(int).tolist(),
            },
            "actions": [{"time_s": t, "action": a, "instance": k} for t, a, k in actions],
        }
    return out


def _repairs(f) -> bool:
    """Whether fault event ``f`` undoes one: an ``up``, or a link at its full bandwidth."""
    return f.action == "up" or (f.kind == "link" and f.fraction >= 1.0)


def _repaired(faults, k: int) -> float | None:
    """When the ``k``-th fault event is undone: the first later event on the same target
    that :func:`_repairs`; None if none does."""
    f = faults.events[k]
    for g in faults.events[k + 1 :]:
        if (g.kind, g.node, g.gpus) == (f.kind, f.node, f.gpus) and _repairs(g):
            return g.at_s
    return None


IMPACT_BIN_S = 10.0  # the bins a fault's impact window is measured in
IMPACT_BEFORE_S = 60.0  # the baseline: requests arriving this long before it


def _impact(fault: dict, event, r, cols, done, repaired_s: float | None) -> dict:
    """What a fault did: the requests its instances held, and (but for a repair) its SLO
    impact, by the TTFT and TPOT p90 (requests not served count as the worst) of the
    requests arriving in the minute before it, from it to its repair (``repaired_s``: the
    ``up``, or the link at full bandwidth, that undoes it; else the last arrival), and from
    the repair on; and the TTFT p90 of the worst 10 s of arrivals before the repair.
    ``event`` is the fault as the spec gives it."""
    if _repairs(event):
        return dict(fault)  # a repair: the impact is the fault's it undoes
    t0 = fault["time_s"]
    arrival = r["arrival_s"]
    end = float(arrival.max(initial=t0)) + 1.0
    if repaired_s is not None and repaired_s >= end:
        repaired_s = None  # repaired after the last arrival: as if never
    fixed = end if repaired_s is None else repaired_s

    def p90(metric: str, lo: float, hi: float) -> float | None:
        values = cols[f"{metric}_s"]
        window = (arrival >= lo) & (arrival < hi)
        mine = window & done & ~np.isnan(values)
        lost = int((window & ~done).sum())
        if not mine.any() and not lost:
            return None
        return _with_missed(values[mine], "p90", lost)

    out = dict(fault)
    for metric in ("ttft", "tpot"):
        out[f"{metric}_p90_before_s"] = p90(metric, t0 - IMPACT_BEFORE_S, t0)
        out[f"{metric}_p90_during_s"] = p90(metric, t0, fixed)
        out[f"{metric}_p90_after_s"] = None if repaired_s is None else p90(metric, fixed, end)
    bins = [p90("ttft", lo, lo + IMPACT_BIN_S) for lo in np.arange(t0, fixed, IMPACT_BIN_S)]
    out["ttft_p90_worst_s"] = max((v for v in bins if v is not None), default=None)
    return out


def _classes(result, r, cols, done, good, rate) -> dict:
    """Per request class: how many, what became of them (served, timed out, shed), their
    latencies, and (with an ``slo``) the share that met every target holding for them."""
    why = dict(result.rejected)
    out = {}
    for c in result.spec.workload.classes:
        mine = r["class"] == c.name
        ids = r["id"][mine & ~done].tolist()
        served = mine & done
        entry = {
            "requests": int(mine.sum()),
            "completed": int(served.sum()),
            "timed_out": sum(why.get(i, "").startswith("timed out") for i in ids),
            "shed": sum(why.get(i, "").startswith("shed") for i in ids),
            "ttft_s": _stats(_finite(cols["ttft_s"][served])),
            "e2e_s": _stats(_finite(cols["e2e_s"][served])),
            "requests_per_s": rate(int(served.sum())),
        }
        if good is not None:
            entry["attainment"] = float(good[mine].mean()) if mine.any() else 0.0
            entry["goodput_requests_per_s"] = rate(int((good & mine).sum()))
        out[c.name] = entry
    return out


def _sessions(r, cols, done) -> dict:
    """Conversations: how many, their turns, and what a turn after the first gains from
    the history it shares (its TTFT beside first turns', its prompt's cached share)."""
    later = r["turn"] > 0
    out = {
        "conversations": int(r["session"].max()) + 1 if len(r["session"]) else 0,
        "turns": len(r["session"]),
    }
    for name, which in (("first_turns", ~later), ("later_turns", later)):
        served = which & done
        prompt = int(r["prompt_tokens"][served].sum())
        out[name] = {
            "requests": int(which.sum()),
            "ttft_s": _stats(_finite(cols["ttft_s"][served])),
            "mean_prompt_tokens": prompt / int(served.sum()) if served.any() else 0.0,
            "cached_share": int(r["cached_tokens"][served].sum()) / prompt if prompt else 0.0,
        }
    return out


TIMELINE_BINS = 30  # a run's timeline has 30 to 300 bins


def _bin_width(span_s: float) -> float:
    """A power of ten seconds giving :data:`TIMELINE_BINS` to ten times as many bins over
    ``span_s``: replications of a run share it, or differ by a power of ten."""
    return 10.0 ** math.floor(math.log10(max(span_s, 1e-9) / TIMELINE_BINS))


def _timeline(r, done) -> dict:
    """Completed requests and output tokens per second over time, in round bins from 0
    to the last finish: what ``run --seeds`` bands across replications."""
    from tokensim.report import series as ts

    finish = r["finish_s"][done]
    width = _bin_width(float(finish.max()) if finish.size else 0.0)
    edges = np.arange(0.0, (finish.max() if finish.size else 0.0) + width, width)
    if len(edges) < 2:
        edges = np.array([0.0, width])
    tokens = ts.token_rate(r["first_token_s"][done], finish, r["output_tokens"][done], edges)
    return {
        "bin_s": width,
        "completed_per_s": ts.per_second(finish, edges).tolist(),
        "output_tokens_per_s": tokens.tolist(),
    }


def within(value, op: str, limit: float):
    """Whether ``value`` (a number or an array) meets an SLO limit: ``value op limit``."""
    return value <= limit if op == "<=" else value < limit


def summarize(result) -> dict:
    """The metrics.json content for ``result`` (a :class:`tokensim.sim.run.Result`)."""
    from tokensim import __version__

    r = result.requests
    cols = per_request(result)
    done = ~r["rejected"]
    completed = int(done.sum())
    if completed:
        duration = float(r["finish_s"][done].max() - r["arrival_s"].min())
    else:
        duration = 0.0
    rate = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    out_tokens = int(r["output_tokens"][done].sum())
    in_tokens = int(r["prompt_tokens"][done].sum())
    metrics: dict = {
        "spec": result.spec.name,
        "seed": result.seed,
        "tokensim_version": __version__,
        "requests": {
            "total": len(r["id"]),
            "completed": completed,
            "rejected": int((~done).sum()),
            "preempted": int((r["preemptions"] > 0).sum()),
            "preemptions": int(r["preemptions"].sum()),
            "prompt_tokens": in_tokens,
            "cached_prompt_tokens": int(r["cached_tokens"][done].sum()),
            "rejected_why": sorted({why for _, why in result.rejected})[:5],
        },
        "warnings": list(result.warnings),
    }
    more = result.spec.percentiles
    for key in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        metrics[key] = _stats(_finite(cols[key]), more=more)
    metrics["itl_s"] = _stats(result.itl_s, result.itl_weights, more)
    metrics["cdf"] = _quantiles(cols)
    metrics["timeline"] = _timeline(r, done)
    metrics["throughput"] = {
        "duration_s": duration,
        "requests_per_s": rate(completed),
        "output_tokens_per_s": rate(out_tokens),
        "total_tokens_per_s": rate(out_tokens + in_tokens),
    }
    slo = result.spec.slo
    good = done.copy()  # requests that meet every target that holds for them
    if slo is not None:
        targets = []
        for t in slo.targets:
            mine = r["class"] == t.cls if t.cls is not None else np.ones(len(done), dtype=bool)
            missed = int((~done & mine).sum())  # a request not served misses every limit
            column = cols["itl_mean_s" if t.metric == "itl" else f"{t.metric}_s"]
            ok = within(column, t.op, t.limit_s)
            good &= ~mine | ok | np.isnan(column) & done & (t.metric in ("tpot", "itl"))
            if t.metric == "itl" and t.cls is None:
                value = stat(result.itl_s, t.stat, result.itl_weights)
                share = missed / len(done) if len(done) else 0.0
                if share and (t.stat == "mean" or share > 1 - float(t.stat[1:]) / 100):
                    value = math.inf
            else:  # a class's ITL: over its requests' mean gaps
                value = _with_missed(_finite(column[done & mine]), t.stat, missed)
            met = within(value, t.op, t.limit_s)
            target = {
                "metric": t.metric,
                "stat": t.stat,
                "op": t.op,
                "limit_s": t.limit_s,
                "value_s": value,
                "met": bool(met),
            }
            if t.cls is not None:
                target["class"] = t.cls
            targets.append(target)
        metrics["slo"] = {
            "attainment": float(good.sum() / len(r["id"])) if len(r["id"]) else 0.0,
            "goodput_requests_per_s": rate(int(good.sum())),
            "met": all(t["met"] for t in targets),
            "targets": targets,
        }
    if "class" in r:
        metrics["classes"] = _classes(result, r, cols, done, good if slo else None, rate)
        for key in ("timed_out", "shed"):  # of the requests not served
            metrics["requests"][key] = sum(c[key] for c in metrics["classes"].values())
    held = _held(result)
    cost = _cost(result.spec, duration, out_tokens, in_tokens, held)
    if cost is not None:
        metrics["cost"] = cost
    from tokensim.energy import energy

    metrics["energy"] = energy(result)
    metrics["kv"] = {"peak_utilization": max(_peak(i) for i in result.instances)}
    if "session" in r:
        metrics["sessions"] = _sessions(r, cols, done)
    if result.fleet:
        metrics["autoscale"] = _autoscale(result, held)
    if result.faults:  # those that happened: the first of the spec's events, in order
        events = result.spec.faults.events
        metrics["faults"] = [
            _impact(f, events[k], r, cols, done, _repaired(result.spec.faults, k))
            for k, f in enumerate(result.faults)
        ]
        why = dict(result.rejected)
        metrics["requests"]["lost"] = sum(w.startswith("lost") for w in why.values())
    if result.tiers:
        metrics["kv_tiers"] = [
            {**t, "hit_share": t["hit_tokens"] / in_tokens if in_tokens else 0.0}
            for t in result.tiers
        ]
    metrics["links"] = {
        name: {"bytes": moved, "peak_flows": int(result.links[name][:, 1].max())}
        for name, moved in result.link_bytes.items()
    }
    metrics["pools"] = _pools(result, cols)
    # requests per instance: prefilled or decoded there (once if both), counted in one pass
    served = Counter(r["instance"].tolist())
    elsewhere = r["decode_instance"] != r["instance"]
    served.update(r["decode_instance"][elsewhere].tolist())
    metrics["instances"] = [
        {
            "name": i.name,
            "pool": i.pool,
            "gpus": list(i.gpus),
            "requests": served[i.name],
            "iterations": i.iterations,
            "busy_fraction": i.busy_s / result.simulated_s if result.simulated_s else 0.0,
            "preemptions": i.preemptions,
            "kv_capacity_blocks": i.kv_capacity_blocks,
            "kv_peak_utilization": _peak(i),
        }
        for i in result.instances
    ]
    metrics["sim"] = {
        "wall_s": result.wall_s,
        "simulated_s": result.simulated_s,
        "events": result.events,
    }
    return metrics


def _held(result) -> dict[str, float]:
    """Per autoscaled pool, the seconds its instances' GPUs were held (each instance once,
    however many batches it keeps in flight), times their GPUs: GPU-seconds."""
    out: dict[str, float] = {}
    seen = set()
    for i in result.instances:
        key = (i.pool, i.gpus)
        if i.up_s is None or key in seen:
            continue
        seen.add(key)
        pool = result.spec.deployment.pool(i.pool)
        out[i.pool] = out.get(i.pool, 0.0) + i.up_s * pool.gpus_per_instance
    return out


def _cost(
    spec, duration_s: float, out_tokens: int, in_tokens: int, held: dict[str, float]
) -> dict | None:
    """Rental cost of the GPUs the deployment's pools run on, over the run, when every one
    has a ``price``. GPUs of the cluster that no pool uses are not counted: a sweep over
    instances or tp prices what each point uses. An autoscaled pool's GPUs are paid for
    while held (``held``: GPU-seconds), from an instance's start to its release."""
    pools = spec.deployment.pools if spec.deployment else ()
    if not pools or any(p.gpu.price_per_h is None for p in pools):
        return None
    gpus = spec.deployment.gpus
    per_h = sum(len(p.instances) * p.gpus_per_instance * p.gpu.price_per_h for p in pools)

    def gpu_hours(p) -> float:
        if p.name in held:
            return held[p.name] / 3600
        return len(p.instances) * p.gpus_per_instance * duration_s / 3600

    spent = sum(gpu_hours(p) * p.gpu.price_per_h for p in pools)

    def per_million(tokens: int) -> float:
        return spent / tokens * 1e6 if tokens else float("nan")

    return {
        "gpus": gpus,
        "usd_per_hour": per_h,
        "usd": spent,
        "usd_per_million_output_tokens": per_million(out_tokens),
        "usd_per_million_tokens": per_million(out_tokens + in_tokens),
    }


def _peak(inst) -> float:
    """Highest share of an instance's KV blocks in use at any sample."""
    if not len(inst.series):
        return 0.0
    return float((inst.series[:, 3] / inst.kv_capacity_blocks).max())


def _pools(result, cols: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per pool: its instances' work, and the latencies of the stage it serves.

    Requests *entering* a pool (queued there first) give its TTFT; requests *decoding*
    in it (after a transfer, or in the pool they entered when it is not a prefill pool)
    give its TPOT, and, after a transfer, the copy and the wait for decode memory.
    """
    r = result.requests
    pool_of = {i.name: i.pool for i in result.instances}
    entered = np.array([pool_of.get(name, "") for name in r["instance"]], dtype=object)
    decoded_at = np.where(r["decode_instance"] != "", r["decode_instance"], r["instance"])
    decoded = np.array([pool_of.get(name, "") for name in decoded_at], dtype=object)
    moved = r["transfer_end_s"] >= 0
    out: dict[str, dict] = {}
    for pool in dict.fromkeys(i.pool for i in result.instances):
        insts = [i for i in result.instances if i.pool == pool]
        into, here = entered == pool, decoded == pool
        role = result.spec.deployment.pool(pool).role
        if role == "prefill":
            here = np.zeros_like(here)
        entry: dict = {
            "role": role,
            "instances": len(result.spec.deployment.pool(pool).instances),
            "requests": int((into | here).sum()),
            "iterations": sum(i.iterations for i in insts),
            "busy_fraction": (
                float(np.mean([i.busy_s for i in insts])) / result.simulated_s
                if result.simulated_s
                else 0.0
            ),
            "preemptions": sum(i.preemptions for i in insts),
            "kv_peak_utilization": max(_peak(i) for i in insts),
            **_runs_on(result.spec.deployment.pool(pool)),
        }
        if role != "decode" or into.any():
            entry["ttft_s"] = _stats(_finite(cols["ttft_s"][into]))
        if here.any():
            entry["tpot_s"] = _stats(_finite(cols["tpot_s"][here]))
        if (here & moved).any():
            entry["transfer_s"] = _stats(_finite(cols["transfer_s"][here & moved]))
            entry["transfer_wait_s"] = _stats(_finite(cols["transfer_wait_s"][here & moved]))
        out[pool] = entry
    return out


def _runs_on(pool) -> dict:
    """What prices a pool's iterations: its engine (and the statements the spec changed
    in it) and its cost model (a shipped calibration is named as such)."""
    from tokensim.lang.check import std_dir

    std = Path(str(std_dir()))
    out: dict = {}
    if pool.engine is not None:
        e = pool.engine
        out["engine"] = {"name": e.name, "version": e.version, "changed": list(e.overrides)}
    path = pool.cost.path
    shipped = path is not None and Path(path).is_relative_to(std)
    out["cost"] = {
        "kind": pool.cost.kind,
        "file": (f"std/{Path(path).relative_to(std).as_posix()}" if shipped else path),
        "shipped": shipped,
    }
    return out


def _with_missed(values: np.ndarray, name: str, missed: int) -> float:
    """``mean`` or ``pNN`` of ``values`` with ``missed`` more values worse than any limit
    (rejected requests): infinite once the statistic reaches them; else the percentile of
    the whole, interpolated as :func:`numpy.percentile` does."""
    if not missed:
        return stat(values, name)
    if name == "mean" or values.size == 0:
        return math.inf
    pos = float(name[1:]) / 100 * (values.size + missed - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if hi >= values.size:
        return math.inf
    v = np.sort(values)
    return float(v[lo] + (v[hi] - v[lo]) * (pos - lo))


def _finite(v: np.ndarray) -> np.ndarray:
    """``v`` without its NaNs (values undefined for some requests)."""
    return v[~np.isnan(v)]


# vLLM's names for the latencies it reports in `vllm bench serve --save-result`
_VLLM_METRICS = (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("itl", "itl_s"), ("e2el", "e2e_s"))


def bench(result, metrics: dict) -> dict:
    """The run as vLLM's ``vllm bench serve --save-result`` writes one (bench.json): its
    keys, milliseconds for latencies, the mean, median, std and percentiles of TTFT, TPOT,
    ITL and E2EL (p99, vLLM's default ``--metric-percentiles``, and the spec's
    ``metrics { percentiles }``), ``request_goodput`` from the spec's SLO, and per
    completed request ``input_lens``, ``output_lens`` and ``ttfts`` (seconds, as vLLM
    keeps them). Nothing on the client side is simulated, so the figures are the server's."""
    r = result.requests
    done = ~r["rejected"]
    through = metrics["throughput"]
    out: dict = {
        "backend": "tokensim",
        "model_id": ", ".join(sorted({p.model.name for p in result.spec.deployment.pools})),
        "duration": through["duration_s"],
        "completed": metrics["requests"]["completed"],
        "failed": metrics["requests"]["rejected"],
        "total_input_tokens": int(r["prompt_tokens"][done].sum()),
        "total_output_tokens": int(r["output_tokens"][done].sum()),
        "request_throughput": through["requests_per_s"],
        "request_goodput": (metrics.get("slo") or {}).get("goodput_requests_per_s"),
        "output_throughput": through["output_tokens_per_s"],
        "total_token_throughput": through["total_tokens_per_s"],
    }
    out.update(_load(result.spec))
    qs = sorted({99, *result.spec.percentiles})  # metrics.json has them all: p99 always
    for name, key in _VLLM_METRICS:
        got = metrics[key]
        out[f"mean_{name}_ms"] = got["mean"] * 1e3
        out[f"median_{name}_ms"] = got["p50"] * 1e3
        out[f"std_{name}_ms"] = got["std"] * 1e3
        for q in qs:
            word = str(int(q)) if q == int(q) else str(q)  # vLLM's p_word
            out[f"p{word}_{name}_ms"] = got[percentile_key(q)] * 1e3
    out["input_lens"] = r["prompt_tokens"][done]  # arrays: report.files writes them compactly
    out["output_lens"] = r["output_tokens"][done]
    out["ttfts"] = (r["first_token_s"] - r["arrival_s"])[done]
    return out


def _load(spec) -> dict:
    """The workload's arrivals as vLLM's result names its load: ``request_rate`` ("inf"
    for a burst or a closed loop), ``burstiness`` (the gamma shape, 1/cv²; Poisson is 1,
    constant gaps 1e6) and ``max_concurrency``; nothing for a trace's own times."""
    arrivals = spec.workload.arrivals if spec.workload is not None else None
    if arrivals is None:
        return {}
    params = dict(arrivals.params)
    if arrivals.name in ("burst", "closed"):
        out = {"request_rate": "inf", "burstiness": 1.0}
        if arrivals.name == "closed":
            out["max_concurrency"] = int(params["clients"])
        return out
    if "rate" not in params:
        return {}
    # constant gaps: vLLM's gamma gaps at shape 1e6 (cv 0.001, the language's smallest)
    cv = {"gamma": params.get("cv", 1.0), "constant": 0.001}.get(arrivals.name, 1.0)
    return {"request_rate": float(params["rate"]), "burstiness": 1 / cv**2}
