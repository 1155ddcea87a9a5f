"""The table the terminal shows at the end of a run."""

from __future__ import annotations

import math
from collections.abc import Sequence


def aligned(
    head: Sequence[str], rows: Sequence[Sequence[str]], left=(0,), indent: str = "  "
) -> list[str]:
    """``head`` and ``rows`` as lines of columns two spaces apart: the columns at the
    indexes ``left`` left-aligned, the others right-aligned (figures)."""
    widths = [max(len(c) for c in col) for col in zip(head, *rows, strict=True)]
    return [
        (
            indent
            + "  ".join(
                c.ljust(w) if j in left else c.rjust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        ).rstrip()
        for row in [head, *rows]
    ]


def _ms(x) -> str:
    return "-" if x is None or x != x else f"{x * 1e3:.1f}"


def _row(label: str, stats: dict) -> str:
    """One latency line: the label, then mean, p50, p90 and p99 in ms."""
    return f"{label:<14}" + "".join(f"{_ms(stats[k]):>10}" for k in ("mean", "p50", "p90", "p99"))


def runs_on(pool: dict) -> str:
    """``engine vllm_v1 (0.10-0.11), cost calibrated (shipped std/calibrations/H100.json)``."""
    parts = []
    engine = pool.get("engine")
    if engine:
        text = f"engine {engine['name']}" + (f" ({engine['version']})" if engine["version"] else "")
        if engine["changed"]:
            text += f" with {', '.join(engine['changed'])} changed"
        parts.append(text)
    cost = pool.get("cost")
    if cost:
        where = f" ({'shipped ' if cost['shipped'] else ''}{cost['file']})" if cost["file"] else ""
        parts.append(f"cost {cost['kind']}{where}")
    return ", ".join(parts)


def cache_sources(metrics: dict) -> dict[str, tuple[int, float]]:
    """Prompt tokens the prefix cache served, by where they came from, with the bytes
    loaded: ``GPU`` (the cached tokens no lower tier loaded), then each kind of tier."""
    kinds: dict[str, tuple[int, float]] = {}
    for t in metrics.get("kv_tiers") or []:
        tokens, loaded = kinds.get(t["kind"], (0, 0.0))
        kinds[t["kind"]] = (tokens + t["hit_tokens"], loaded + t["loaded_bytes"])
    gpu = max(0, metrics["requests"]["cached_prompt_tokens"] - sum(v for v, _ in kinds.values()))
    return {"GPU": (gpu, 0.0), **kinds}


def fault_impact(fault: dict, time) -> list[str]:
    """A fault's SLO impact (metrics.json ``faults``), a phrase per metric: its p90 before,
    until repaired and (if repaired) after, each time written by ``time``; none for a repair."""
    if "ttft_p90_before_s" not in fault:
        return []
    out = []
    for m in ("ttft", "tpot"):
        before, during, after = (fault[f"{m}_p90_{w}_s"] for w in ("before", "during", "after"))
        out.append(
            f"{m.upper()} p90 {time(before)} before, {time(during)} until repaired"
            + ("" if after is None else f", {time(after)} after")
        )
    return out


def summary_table(metrics: dict) -> str:
    """A short aligned table: counts, throughput, latencies, SLO."""
    req, tput = metrics["requests"], metrics["throughput"]
    why = "".join(f"\n  not served: {w}" for w in req.get("rejected_why", []))
    dropped = [
        f"{req[k]} {k.replace('_', ' ')}" for k in ("timed_out", "shed", "lost") if req.get(k)
    ]
    lines = [
        f"{metrics['spec']}: {req['completed']} of {req['total']} requests completed"
        + (
            f", {req['rejected']} not served" + (f" ({', '.join(dropped)})" if dropped else "")
            if req["rejected"]
            else ""
        )
        + f", {req['preemptions']} preemptions, seed {metrics['seed']}"
        + why
        + "".join(f"\nwarning: {w}" for w in metrics.get("warnings", [])),
        f"throughput  {tput['requests_per_s']:.2f} req/s"
        f"  {tput['output_tokens_per_s']:.0f} output tok/s"
        f"  {tput['total_tokens_per_s']:.0f} total tok/s over {tput['duration_s']:.1f} s",
        "",
        f"{'latency (ms)':<14}{'mean':>10}{'p50':>10}{'p90':>10}{'p99':>10}",
    ]
    for key, label in (
        ("ttft_s", "TTFT"),
        ("tpot_s", "TPOT"),
        ("itl_s", "ITL"),
        ("e2e_s", "E2E"),
        ("queue_s", "queue"),
    ):
        lines.append(_row(label, metrics[key]))
    pools = metrics.get("pools", {})
    if any("transfer_s" in p for p in pools.values()):
        for name, p in pools.items():
            if "transfer_s" in p:
                for key, label in (("transfer_wait_s", "KV wait"), ("transfer_s", "KV copy")):
                    lines.append(_row(label, p[key]) + f"  -> {name}")
        lines.append("")
        lines.append(f"{'pool':<14}{'role':>10}{'busy':>10}{'peak KV':>10}{'requests':>10}")
        for name, p in pools.items():
            lines.append(
                f"{name:<14}{p['role']:>10}{p['busy_fraction']:>10.1%}"
                f"{p['kv_peak_utilization']:>10.1%}{p['requests']:>10}"
            )
    slo = metrics.get("slo")
    if slo:
        lines.append("")
        for t in slo["targets"]:
            mark = "ok " if t["met"] else "MISS"
            v = t["value_s"]
            shown = f"{_ms(v)} ms"
            if v is not None and math.isinf(v):
                shown = "none: rejected requests count as misses, and reach this statistic"
            who = f"class {t['class']}: " if "class" in t else ""
            lines.append(
                f"SLO {mark} {who}{t['metric']} {t['stat']} {t['op']} {_ms(t['limit_s'])} ms: "
                f"{shown}"
            )
        lines.append(
            f"attainment {slo['attainment']:.1%}, goodput {slo['goodput_requests_per_s']:.2f} req/s"
        )
    classes = metrics.get("classes")
    if classes:
        lines.append("")
        lines.append(
            f"{'class (ms)':<14}{'requests':>10}{'served':>10}{'timed out':>11}{'shed':>8}"
            f"{'TTFT p90':>10}{'E2E p90':>10}" + (f"{'attained':>10}" if slo else "")
        )
        for name, c in classes.items():
            lines.append(
                f"{name:<14}{c['requests']:>10}{c['completed']:>10}{c['timed_out']:>11}"
                f"{c['shed']:>8}{_ms(c['ttft_s'].get('p90')):>10}{_ms(c['e2e_s'].get('p90')):>10}"
                + (f"{c['attainment']:>10.1%}" if "attainment" in c else "")
            )
    for f in metrics.get("faults") or []:
        hit = ", ".join(f["instances"]) or "no instance"
        impact = "".join(f"; {p}" for p in fault_impact(f, lambda x: f"{_ms(x)} ms"))
        lines.append(
            f"fault at {f['time_s']:g} s, {f['event']}: {hit}"
            + (f" ({f['requests']} requests held)" if f["requests"] else "")
            + impact
        )
    for name, a in (metrics.get("autoscale") or {}).items():
        lines.append(
            f"pool {name} autoscaled {a['min']}..{a['max']}: {a['peak_serving']} serving at "
            f"most, {a['mean_serving']:.2f} on average; {a['starts']} starts, {a['stops']} "
            f"stops; {a['gpu_hours']:.3g} GPU-hours held"
        )
    for name, p in pools.items():
        lines.append(f"pool {name}: {runs_on(p)}")
    power = metrics.get("energy") or {}
    if "joules" in power:
        per_token = power["joules_per_output_token"]
        lines.append(
            f"energy {power['kwh']:.3g} kWh, {power['average_power_W'] / 1e3:.3g} kW on average "
            f"over {power['gpus']} GPU{'s' * (power['gpus'] != 1)}"
            + (
                f", {per_token:.3g} J per output token "
                f"({power['kwh_per_million_output_tokens']:.3g} kWh per 1M)"
                if per_token is not None
                else ""
            )
        )
    cached, prompt = req["cached_prompt_tokens"], req.get("prompt_tokens", 0)
    hits = f"prefix cache served {cached / prompt:.1%} of prompt tokens; " if cached else ""
    if metrics.get("kv_tiers") and prompt:
        shares = ", ".join(f"{k} {v / prompt:.1%}" for k, (v, _) in cache_sources(metrics).items())
        hits = f"prefix cache served {cached / prompt:.1%} of prompt tokens ({shares}); "
    lines.append(
        f"{hits}peak KV use {metrics['kv']['peak_utilization']:.1%}; simulated "
        f"{metrics['sim']['simulated_s']:.1f} s in {metrics['sim']['wall_s']:.2f} s wall, "
        f"{metrics['sim']['events']} events"
    )
    return "\n".join(lines) + "\n"
