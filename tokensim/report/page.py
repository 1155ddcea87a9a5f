"""report.html: one self-contained page of a run, rendered from its result folder.

``render(results) -> str`` draws every chart as inline SVG (:mod:`tokensim.report.svg`),
the deployment (:mod:`tokensim.report.diagram`) and the spec
(:mod:`tokensim.report.highlight`), and fills the Jinja2 template
``templates/report.html.j2``. Nothing is fetched when the page opens: CSS and the
small zoom script are inline.
"""

from __future__ import annotations

import math
from importlib import resources

import jinja2
import numpy as np
from markupsafe import Markup

from tokensim.lang.units import Dim, format_quantity
from tokensim.report import series as ts
from tokensim.report import svg
from tokensim.report.load import Results
from tokensim.report.summary import cache_sources, fault_impact

PART_COLORS = ("#999999", "#0072B2", "#F0E442", "#E69F00", "#009E73", "#D55E00")
KINDS = {"prefill": "#0072B2", "mixed": "#CC79A7", "decode": "#009E73"}
MOST_LANES = 16
MOST_LINKS = 6
MOST_LINES = 8


def _asset(name: str) -> str:
    """A file of templates/ as text (CSS and the script go into the page verbatim)."""
    return resources.files("tokensim.report").joinpath("templates", name).read_text("utf-8")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tokensim.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["ms"] = _ms
    env.filters["pct"] = lambda x: "–" if x is None else f"{x:.1%}"
    env.filters["num"] = _num
    return env


def _ms(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):  # a statistic that rejected requests reach
        return "∞"
    if x >= 10:
        return f"{x:.1f} s"
    if x >= 1:
        return f"{x:.2f} s"
    return f"{x * 1e3:.1f} ms" if x >= 0.01 else f"{x * 1e3:.2f} ms"


def _num(x, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


# -- the parts of the page -----------------------------------------------------------------


def _cards(m: dict) -> list[dict]:
    """Headline figures: label, value, detail, and a state (ok / miss / plain)."""
    tput = m["throughput"]
    req = m["requests"]
    cards = [
        {
            "label": "Throughput",
            "value": f"{tput['requests_per_s']:.2f} req/s",
            "detail": f"{tput['output_tokens_per_s']:,.0f} output tok/s · "
            f"{tput['total_tokens_per_s']:,.0f} total tok/s",
            "state": "plain",
        }
    ]
    targets = {t["metric"]: t for t in m.get("slo", {}).get("targets", []) if "class" not in t}
    for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")):
        s = m[key]
        t = targets.get(key[:-2])
        stat = t["stat"] if t else "p90"  # the statistic the SLO limits, if any
        value = t["value_s"] if t else s["p90"]
        others = " · ".join(f"{k} {_ms(s[k])}" for k in ("p50", "p90", "p99") if k != stat)
        if m["requests"]["rejected"]:  # the latencies are the served requests' alone
            others += f" · of the {m['requests']['completed']:,} served"
        slo = f" · SLO {stat} {t['op']} {_ms(t['limit_s'])}" if t else ""
        shown = _ms(value)
        if t and value is None and not t["met"] and m["requests"]["rejected"]:
            shown = "∞"  # the statistic reaches the rejected requests (null in metrics.json)
        cards.append(
            {
                "label": f"{label} {stat}",
                "value": shown,
                "detail": others + slo,
                "state": ("ok" if t["met"] else "miss") if t else "plain",
            }
        )
    slo = m.get("slo")
    if slo:
        cards.append(
            {
                "label": "SLO attainment",
                "value": f"{slo['attainment']:.1%}",
                "detail": f"goodput {slo['goodput_requests_per_s']:.2f} req/s · "
                + ("every target met" if slo["met"] else "a target is missed"),
                "state": "ok" if slo["met"] else "miss",
            }
        )
    cards.append(
        {
            "label": "Preemptions",
            "value": f"{req['preemptions']:,}",
            "detail": f"{req['preempted']:,} of {req['total']:,} requests preempted",
            "state": "plain",
        }
    )
    if req["rejected"]:
        why = req.get("rejected_why") or []
        dropped = req.get("timed_out", 0) + req.get("shed", 0)
        cards.append(
            {
                "label": "Not served" if dropped else "Rejected",
                "value": f"{req['rejected']:,}",
                "detail": (
                    f"of {req['total']:,} requests timed out, were shed or could never run"
                    if dropped
                    else f"of {req['total']:,} requests could never run"
                )
                + (f": {why[0]}" if why else ""),
                "state": "miss",
            }
        )
    cards += _reuse_cards(m)
    cards.append(
        {
            "label": "Peak KV use",
            "value": f"{m['kv']['peak_utilization']:.1%}",
            "detail": "highest share of any instance's KV blocks",
            "state": "plain",
        }
    )
    power = m.get("energy") or {}
    if "joules" in power:
        per_token = power["joules_per_output_token"]
        cards.append(
            {
                "label": "Energy",
                "value": "–" if per_token is None else f"{per_token:.3g} J/token",
                "detail": f"{power['kwh']:.3g} kWh over the run · "
                f"{power['average_power_W'] / power['gpus']:.0f} W a GPU on average"
                + (
                    f" · {power['kwh_per_million_output_tokens']:.3g} kWh per 1M output tokens"
                    if per_token is not None
                    else ""
                ),
                "state": "plain",
            }
        )
    cost = m.get("cost")
    if cost:
        dollars = lambda x: "–" if x is None else f"${x:.2f}"  # noqa: E731  (nothing served)
        cards.append(
            {
                "label": "Cost per 1M output tokens",
                "value": dollars(cost["usd_per_million_output_tokens"]),
                "detail": f"{cost['gpus']} GPUs at ${cost['usd_per_hour']:.2f}/h · "
                f"{dollars(cost['usd_per_million_tokens'])} per 1M tokens with prompts",
                "state": "plain",
            }
        )
    return cards


def _reuse_cards(m: dict) -> list[dict]:
    """Cards for prefix reuse (the prefix cache's share of prompt tokens, split by where
    it came from: the GPU or a lower KV tier), for each request class (what became of its
    requests), and for conversations (how later turns fare)."""
    req, cards = m["requests"], []
    cached, prompt = req["cached_prompt_tokens"], req["prompt_tokens"]
    if cached and prompt:
        parts = [
            f"{where} {tokens / prompt:.1%}"
            + (f" ({format_quantity(loaded, Dim.BYTES)} loaded)" if where != "GPU" else "")
            for where, (tokens, loaded) in cache_sources(m).items()
        ]
        cards.append(
            {
                "label": "Prefix cache",
                "value": f"{cached / prompt:.1%}",
                "detail": "of prompt tokens not computed · " + " · ".join(parts),
                "state": "plain",
            }
        )
    for name, c in (m.get("classes") or {}).items():
        lost = [f"{c[k]:,} {k.replace('_', ' ')}" for k in ("timed_out", "shed") if c[k]]
        cards.append(
            {
                "label": f"Class {name}",
                "value": f"{c['attainment']:.1%} good"
                if "attainment" in c
                else f"{c['completed']:,} served",
                "detail": f"{c['completed']:,} of {c['requests']:,} served"
                + (f" ({', '.join(lost)})" if lost else "")
                + f" · TTFT p90 {_ms(c['ttft_s'].get('p90'))}"
                + f" · E2E p90 {_ms(c['e2e_s'].get('p90'))}",
                "state": "plain",
            }
        )
    for f in (m.get("faults") or [])[:6]:
        held = f" · {f['requests']:,} requests held, sent again or lost" if f["requests"] else ""
        impact = "".join(f" · {p}" for p in fault_impact(f, _ms))
        cards.append(
            {
                "label": f"Fault at {f['time_s']:g} s",
                "value": f["event"],
                "detail": (", ".join(f["instances"]) or "no instance") + held + impact,
                "state": "plain",
            }
        )
    conv = m.get("sessions")
    if conv:
        first, later = conv["first_turns"], conv["later_turns"]
        p90 = lambda t: _ms(t["ttft_s"].get("p90"))  # noqa: E731
        cards.append(
            {
                "label": "Conversations",
                "value": f"{conv['conversations']:,}",
                "detail": f"{conv['turns']:,} turns · TTFT p90 {p90(later)} after the first "
                f"turn, {p90(first)} at it · later prompts {later['mean_prompt_tokens']:,.0f} "
                f"tokens on average, {later['cached_share']:.0%} cached",
                "state": "plain",
            }
        )
    return cards


def _intervals(m: dict) -> dict | None:
    """The rows of the replications' table (``run --seeds K``), or None for one run."""
    entry = m.get("intervals")
    if not entry:
        return None
    from tokensim.intervals import shown, value_at

    rows = []
    for name, f in entry["figures"].items():
        unit, this = f["unit"], value_at(m, tuple(f["path"].split(".")))
        rows.append(
            {
                "name": name,
                "run": "–" if this is None else shown(this, unit),
                "mean": shown(f["mean"], unit),
                "interval": f"{shown(f['low'], unit)} – {shown(f['high'], unit)}",
                "spread": f"{shown(f['min'], unit)} – {shown(f['max'], unit)}",
            }
        )
    seeds = entry["seeds"]
    return {
        "runs": len(seeds),
        "seeds": f"{seeds[0]} to {seeds[-1]}",
        "confidence": f"{entry['confidence']:.0%}",
        "rows": rows,
    }


def _time_parts(r: Results) -> tuple[list[dict], str]:
    """The table of where the time goes (per part: mean, p50, p90, p99, share of the
    mean E2E) and a stacked-bar chart: all requests, the slowest 10 % and 1 %."""
    parts = ts.breakdown(r.requests)
    e2e = r.requests["e2e_s"][r.requests["rejected"] == 0]
    total = float(np.nansum(list(parts.values()), axis=0).mean()) if e2e.size else 0.0
    rows = []
    for name, v in parts.items():
        if not v.size:
            continue
        p = np.percentile(v, [50, 90, 99])
        rows.append(
            {
                "part": name,
                "mean": float(v.mean()),
                "p50": float(p[0]),
                "p90": float(p[1]),
                "p99": float(p[2]),
                "share": float(v.mean()) / total if total > 0 else 0.0,
            }
        )
    groups = []
    if e2e.size:
        order = np.argsort(-np.nan_to_num(e2e), kind="stable")
        for label, share in (("all", 1.0), ("slowest 10%", 0.1), ("slowest 1%", 0.01)):
            pick = order[: max(1, int(round(len(order) * share)))]
            groups.append((label, [float(v[pick].mean()) for v in parts.values()]))
    chart = svg.breakdown_chart(
        groups,
        list(ts.PARTS),
        id="parts",
        title="Where a request's time goes: mean over all, the slowest 10% and 1% by E2E",
        colors=list(PART_COLORS),
        row_height=22,
    )
    return rows, chart


def _request_bars(r: Results) -> str:
    req = r.requests
    top, sample = ts.sample_requests(req)
    cols = [np.nan_to_num(req[c]) for c in ts.PART_COLUMNS]

    def rows(indices, tag):
        return [(f"{tag} {int(float(req['id'][i]))}", [float(c[i]) for c in cols]) for i in indices]

    return svg.breakdown_chart(
        rows(top, "slowest") + rows(sample, "sample"),
        list(ts.PARTS),
        id="requests",
        title=f"The {len(top)} slowest requests and {len(sample)} sampled ones (E2E split)",
        colors=list(PART_COLORS),
    )


def _cdfs(r: Results) -> list[str]:
    m = r.metrics
    targets = m.get("slo", {}).get("targets", [])
    entered = _pool_of_requests(r)
    pools = [p["name"] for p in r.run.get("pools", []) if p["role"] != "decode"]
    out = []
    for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")):
        values = r.requests[key]
        rules = [
            svg.Rule(
                t["limit_s"],
                (f"{t['class']}: " if "class" in t else "")
                + f"SLO {t['stat']} {t['op']} {_ms(t['limit_s'])}",
                axis="x",
            )
            for t in targets
            if t["metric"] == key[:-2]
        ]
        samples = {"all requests": values[~np.isnan(values)]}
        if len(pools) > 1:
            for pool in pools:
                v = values[entered == pool]
                samples[pool] = v[~np.isnan(v)]
        band = (m.get("intervals") or {}).get("cdf_spread", {}).get(key)
        spread = None
        if band:
            runs = len(m["intervals"]["seeds"])
            spread = (f"spread of {runs} seeds", band["levels"], band["low"], band["high"])
        out.append(
            svg.cdf_chart(
                samples,
                id=f"cdf-{key[:-2]}",
                title=f"{label} CDF",
                x_label=label,
                rules=rules,
                spread=spread,
            )
        )
    return out


def _pool_of_requests(r: Results) -> np.ndarray:
    pool_of = {i["name"]: i["pool"] for i in r.metrics.get("instances", [])}
    return np.array([pool_of.get(n, "") for n in r.requests["instance"]], dtype=object)


def _pools(r: Results) -> dict[str, list[str]]:
    """Pool name -> its instance names, in the order of the spec."""
    out: dict[str, list[str]] = {}
    for inst in r.metrics.get("instances", []):
        out.setdefault(inst["pool"], []).append(inst["name"])
    return out


def _timeline(r: Results, *args, **kw) -> str:
    """A chart over the run's time, with a line at each fault (``faults``)."""
    marks = [svg.Rule(f["time_s"], f["event"], axis="x") for f in r.metrics.get("faults") or []]
    return svg.line_chart(*args, rules=[*kw.pop("rules", ()), *marks], **kw)


def _load_charts(r: Results, e: np.ndarray) -> list[str]:
    """Running and waiting requests per pool; throughput over time."""
    x = e[:-1]
    lines = []
    for k, (pool, names) in enumerate(_pools(r).items()):
        color = svg.PALETTE[k % len(svg.PALETTE)]
        for col, dash in (("running", False), ("waiting", True)):
            total = sum(
                (ts.step_mean(r.series[n]["time_s"], r.series[n][col], e) for n in names),
                start=np.zeros(len(x)),
            )
            lines.append(svg.Series(f"{col} ({pool})", x, total, color=color, dash=dash))
    running = _timeline(
        r,
        lines,
        id="load",
        title="Requests running and waiting (mean over each interval)",
        x_label="time",
        y_label="requests",
    )
    req = r.requests
    done = req["rejected"] == 0
    tokens = ts.token_rate(
        req["first_token_s"][done], req["finish_s"][done], req["output_tokens"][done], e
    )
    arrived = ts.per_second(req["arrival_s"], e)
    finished = ts.per_second(req["finish_s"][done], e)
    rates = _timeline(
        r,
        [svg.Series("arrived", x, arrived, dash=True), svg.Series("completed", x, finished)],
        bands=_spread(r, "completed_per_s", svg.PALETTE[1]),
        id="rates",
        title="Requests per second, arriving and completed",
        x_label="time",
        y_label="requests/s",
    )
    tok = _timeline(
        r,
        [svg.Series("output tokens/s", x, tokens)],
        bands=_spread(r, "output_tokens_per_s", svg.PALETTE[0]),
        id="tokens",
        title="Output tokens per second (a request's tokens spread between its first and last)",
        x_label="time",
        y_label="tokens/s",
    )
    return [running, rates, tok] + _fleet_chart(r, e)


def _spread(r: Results, key: str, color: str) -> list:
    """With ``run --seeds``: the band of the replications' ``key`` over time (their lowest
    to highest, bin by bin); none for one run."""
    spread = (r.metrics.get("intervals") or {}).get("timeline_spread") or {}
    band = spread.get(key)
    if not band:
        return []
    x = np.arange(len(band["low"])) * spread["bin_s"]
    runs = len(r.metrics["intervals"]["seeds"])
    return [svg.Band(f"spread of {runs} seeds", x, band["low"], band["high"], color=color)]


def _fleet_chart(r: Results, e: np.ndarray) -> list[str]:
    """Autoscaled pools: instances serving, and starting, over time."""
    scaled = r.metrics.get("autoscale") or {}
    if not scaled:
        return []
    x, lines = e[:-1], []
    for k, (pool, a) in enumerate(scaled.items()):
        color = svg.PALETTE[k % len(svg.PALETTE)]
        f = a["fleet"]
        times = np.array(f["time_s"], dtype=np.float64)
        for col, dash in (("serving", False), ("starting", True)):
            y = ts.step_mean(times, np.array(f[col], dtype=np.float64), e)
            lines.append(svg.Series(f"{col} ({pool})", x, y, color=color, dash=dash))
    return [
        _timeline(
            r,
            lines,
            id="fleet",
            title="Autoscaled instances serving and starting (mean over each interval)",
            x_label="time",
            y_label="instances",
        )
    ]


def _kv_charts(r: Results, e: np.ndarray) -> list[str]:
    """KV blocks used per instance (peak in each interval), one chart per pool."""
    x = e[:-1]
    caps = {i["name"]: i["kv_capacity_blocks"] for i in r.metrics.get("instances", [])}
    out = []
    for pool, names in _pools(r).items():
        peaks = [
            ts.step_max(r.series[n]["time_s"], r.series[n]["kv_used_blocks"], e) for n in names
        ]
        cap = max(caps[n] for n in names)
        rules = [svg.Rule(cap, f"capacity {cap:,} blocks", color="#555555")]
        if len(names) <= MOST_LINES:
            lines = [svg.Series(n, x, p, step=True) for n, p in zip(names, peaks, strict=True)]
            bands = []
        else:
            stack = np.vstack(peaks)
            lines = [svg.Series(f"mean of {len(names)} instances", x, stack.mean(axis=0))]
            bands = [svg.Band("min .. max", x, stack.min(axis=0), stack.max(axis=0))]
        out.append(
            _timeline(
                r,
                lines,
                id=f"kv-{pool}",
                title=f"KV blocks used, pool {pool} (peak in each interval)",
                x_label="time",
                y_label="blocks",
                rules=rules,
                bands=bands,
            )
        )
        holders = _kv_holders(r, names, e)
        if holders:
            out.append(
                _timeline(
                    r,
                    holders,
                    id=f"kv-holders-{pool}",
                    title=f"KV blocks by holder, pool {pool} (all its instances, mean in each "
                    "interval)",
                    x_label="time",
                    y_label="blocks",
                )
            )
    return out


def _kv_holders(r: Results, names: list[str], e: np.ndarray) -> list:
    """Blocks held by running requests, by the prefix cache only, free, and swapped out
    to host memory, summed over ``names``; none when nothing was ever cached or swapped
    (the used blocks say it all then)."""
    x = e[:-1]
    cols = ("kv_used_blocks", "kv_cached_blocks", "kv_free_blocks", "kv_swapped_blocks")
    sums = {
        c: sum(
            (ts.step_mean(r.series[n]["time_s"], r.series[n][c], e) for n in names),
            start=np.zeros(len(x)),
        )
        for c in cols
    }
    cached = any(np.nanmax(r.series[n]["kv_cached_blocks"], initial=0) > 0 for n in names)
    swapped = any(np.nanmax(r.series[n]["kv_swapped_blocks"], initial=0) > 0 for n in names)
    if not (cached or swapped):
        return []
    lines = [
        svg.Series("held by running requests", x, sums["kv_used_blocks"]),
        svg.Series("prefix cache only (evictable)", x, sums["kv_cached_blocks"]),
        svg.Series("free", x, sums["kv_free_blocks"], dash=True),
    ]
    if swapped:
        lines.append(svg.Series("swapped out (host memory)", x, sums["kv_swapped_blocks"]))
    return lines


def _batch_charts(r: Results, e: np.ndarray) -> list[str]:
    """Per pool: sequences decoded and prompt tokens prefilled per iteration."""
    x = e[:-1]
    out = []
    for pool, names in _pools(r).items():
        w = {c: np.concatenate([r.work[n][c] for n in names]) for c in r.work[names[0]]}
        steps = w["steps"]
        seqs = ts.binned_mean(w["start_s"], w["decode_seqs"], steps, e)
        prompt = ts.binned_mean(w["start_s"], w["prefill_tokens"] / np.maximum(steps, 1), steps, e)
        # sequences (tens) and prompt tokens (thousands) each on an axis of its own; a
        # prefill pool decodes nothing and a decode pool prefills nothing: no chart of it
        for key, y, what, unit, color in (
            ("seqs", seqs, "sequences decoded", "sequences", svg.PALETTE[0]),
            ("tokens", prompt, "prompt tokens prefilled", "tokens", svg.PALETTE[1]),
        ):
            if not np.nansum(y) > 0:
                continue
            out.append(
                _timeline(
                    r,
                    [svg.Series(what, x, y, color=color)],
                    id=f"batch-{pool}-{key}",
                    title=f"{what.capitalize()} per iteration, pool {pool} (mean over each "
                    "interval)",
                    x_label="time",
                    y_label=unit,
                )
            )
    return out


def _link_chart(r: Results, e: np.ndarray) -> tuple[str | None, int]:
    """Utilization of the links that moved most KV (and how many others moved some)."""
    if not r.links:
        return None, 0
    moved = r.metrics.get("links", {})
    names = sorted(r.links, key=lambda n: (-moved.get(n, {}).get("bytes", 0.0), n))
    shown = names[:MOST_LINKS]
    x = e[:-1]
    lines = [
        svg.Series(n, x, ts.step_mean(r.links[n]["time_s"], r.links[n]["utilization"], e))
        for n in shown
    ]
    chart = _timeline(
        r,
        lines,
        id="links",
        title="Links that carried the most KV: share of bandwidth in use (mean over intervals)",
        x_label="time",
        y_label="utilization",
        y_percent=True,
    )
    return chart, len(names) - len(shown)


def _transfer_cdf(r: Results) -> str:
    """How long requests waited for decode memory and how long their KV copy took."""
    req = r.requests
    moved = ~np.isnan(req["transfer_s"]) & (req["decode_instance"] != "")
    samples = {
        "KV wait": req["transfer_wait_s"][moved],
        "KV copy": req["transfer_s"][moved],
        "KV wait + copy": req["transfer_wait_s"][moved] + req["transfer_s"][moved],
    }
    return svg.cdf_chart(samples, id="cdf-transfer", title="KV wait and copy CDF", x_label="time")


def _gantt(r: Results) -> tuple[str, int, int]:
    """Iterations per instance in a window of the run (zoomable)."""
    names = [n for names in _pools(r).values() for n in names]
    lanes = names[:MOST_LANES]
    starts = np.concatenate([r.work[n]["start_s"] for n in lanes]) if lanes else np.zeros(0)
    end_s = r.metrics["sim"]["simulated_s"]
    t0, t1 = ts.window(starts, end_s)
    bars = []
    for lane, n in enumerate(lanes):
        w = r.work[n]
        inside = (w["end_s"] >= t0) & (w["start_s"] <= t1)
        for s, f, p, d, k in zip(
            w["start_s"][inside],
            w["end_s"][inside],
            w["prefill_tokens"][inside],
            w["decode_seqs"][inside],
            w["steps"][inside],
            strict=True,
        ):
            p, d, k = int(p), int(d), int(k)
            kind = "decode" if p == 0 else "mixed" if d > 0 else "prefill"
            what = (
                f"{k} decode step{'s' * (k != 1)} × {d} seqs"
                if kind == "decode"
                else f"prefill {p} tokens" + (f" + decode {d} seqs" if d else "")
            )
            bars.append((lane, float(s), float(f), kind, f"{n}: {what}, {_ms(f - s)}"))
    chart = svg.gantt_chart(
        lanes,
        bars,
        id="gantt",
        title="Iterations per instance (scroll to zoom, drag to pan, double-click to reset)",
        kinds=KINDS,
        window=(t0, t1),
        width=1100,
    )
    return chart, len(lanes), len(names)


def _tables(m: dict) -> tuple[list[dict], list[dict]]:
    pools = [{"name": k, **v} for k, v in m.get("pools", {}).items()]
    return pools, m.get("instances", [])


def render(r: Results) -> str:
    """The page of the result folder ``r``."""
    from tokensim.report.diagram import deployment_svg
    from tokensim.report.highlight import CSS as SPEC_CSS
    from tokensim.report.highlight import highlight

    m = r.metrics
    e = ts.edges(m["sim"]["simulated_s"])
    parts, parts_chart = _time_parts(r)
    link_chart, more_links = _link_chart(r, e)
    gantt, lanes, instances = _gantt(r)
    pools, insts = _tables(m)
    env = environment()
    diagram = deployment_svg(r.graph, r.run.get("pools", [])) if r.graph else ""
    from tokensim.report.summary import runs_on

    page = env.get_template("report.html.j2").render(
        m=m,
        run=r.run,
        runs_on=[(name, runs_on(p)) for name, p in m.get("pools", {}).items() if runs_on(p)],
        cards=_cards(m),
        intervals=_intervals(m),
        diagram=Markup(diagram),
        parts=parts,
        parts_chart=Markup(parts_chart),
        request_chart=Markup(_request_bars(r)),
        cdfs=[Markup(c) for c in _cdfs(r)],
        load=[Markup(c) for c in _load_charts(r, e)],
        kv=[Markup(c) for c in _kv_charts(r, e)],
        batch=[Markup(c) for c in _batch_charts(r, e)],
        links=Markup(link_chart) if link_chart else None,
        transfer_cdf=Markup(_transfer_cdf(r)) if link_chart else None,
        more_links=more_links,
        gantt=Markup(gantt),
        lanes=lanes,
        instance_count=instances,
        pools=pools,
        instances=insts,
        spec=Markup(highlight(r.spec_text)) if r.spec_text is not None else None,
        spec_css=Markup(SPEC_CSS),
        css=Markup(_asset("style.css")),
        script=Markup(_asset("gantt.js")),
    )
    return page
