"""The ``workload`` and ``slo`` blocks."""

from __future__ import annotations

from tokensim import ir
from tokensim.lang import limits
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note
from tokensim.lang.schema import BAD, Bodies


def workload(body: Bodies, env: Env) -> ir.Workload | None:
    rep = env.rep
    trace = None
    trace_bound = body.one("trace")
    if trace_bound is not None:
        trace = _trace(trace_bound, env)
        if trace is None:
            return None
    arrivals, lengths = body.value("arrivals"), body.value("lengths")
    for key in ("arrivals", "lengths"):
        if body.one(key) is None and trace_bound is None:
            rep.error(
                f"the workload needs `{key}` (or a `trace` to take them from)",
                body.span,
                help="e.g. `arrivals poisson 10/s`" if key == "arrivals" else "e.g. `lengths chat`",
            )
    requests, duration = body.value("requests"), body.value("duration")
    if body.one("requests") is not None and requests is None:
        return None  # its error is reported
    if requests is None and duration is None and trace_bound is None:
        rep.error(
            "the workload needs `requests` or `duration` to end",
            body.span,
            help="e.g. `requests 1000` or `duration 10 min`",
        )
        return None
    if arrivals is not None and arrivals.name in ("burst", "closed") and requests is None:
        rep.error(f"`arrivals {arrivals.name}` needs `requests`", body.one("arrivals").span)
        return None
    if None in (arrivals, lengths) and trace is None:
        return None  # reported above, or by the statement's own error
    rate = None
    if arrivals is not None and arrivals.name not in ("burst", "closed"):
        rate = arrivals.get("rate")
    if rate and duration is not None and requests is None and rate * duration > limits.REQUESTS:
        rep.error(
            f"`arrivals {arrivals.name}` at {rate:g}/s for {duration:g} s makes about "
            f"{rate * duration:.3g} requests: beyond what tokensim simulates, at most "
            f"{limits.REQUESTS:,}",
            body.one("duration").span,
            help="lower the rate or the duration, or end the workload with `requests`",
        )
        return None
    if lengths is not None and lengths.name == "uniform":
        for side in ("prompt", "output"):
            if lengths.get(f"{side}_min") > lengths.get(f"{side}_max"):
                rep.error(f"the {side} range of `uniform` is empty", body.one("lengths").span)
                return None
    seed = body.value("seed", default=0)
    shared = body.one("shared_prefix")
    prefix = None
    if shared is not None:
        prefix = _shared_prefix(shared)
        if prefix is None:
            return None
    seeds = body.value("seeds")
    sessions = None
    bound = body.one("sessions")
    if bound is not None:
        sessions = _sessions(bound, body, env)
        if sessions is None:
            return None
    return ir.Workload(
        arrivals, lengths, trace, requests, duration, seed, body.span, prefix, seeds, sessions
    )


def _sessions(bound, body: Bodies, env: Env) -> ir.Sessions | None:
    """``sessions { ... }``: conversations whose turns' new tokens come from ``lengths``."""
    sb = bound.body
    if sb is None:
        return None  # its error (the braces are required) is reported
    turns = sb.value("turns")
    think = sb.value("think", default=0.0)
    dist = sb.value("think_dist", default="exponential")
    if sb.one("turns") is None or None in (turns, think, dist):
        return None  # reported: `turns` is required, or a value is wrong
    if body.one("lengths") is None:
        env.rep.error(
            "`sessions` draw each turn's new prompt tokens and its answer from `lengths`",
            bound.span,
            help="add e.g. `lengths chat`; a trace's lengths are whole prompts, not turns",
        )
        return None
    return ir.Sessions(turns, think, dist, bound.span)


def _shared_prefix(bound) -> ir.SharedPrefix | None:
    tokens = bound.get("shared_prefix")
    sb = bound.body
    fraction = sb.value("fraction", default=1.0) if sb else 1.0
    groups = sb.value("groups", default=1) if sb else 1
    if BAD in (tokens, fraction, groups) or tokens is None:
        return None
    return ir.SharedPrefix(tokens, fraction, groups, bound.span)


def _trace(bound, env: Env) -> ir.Trace | None:
    ref = bound.get("trace")
    if ref in (None, BAD):
        return None
    written = env.base_dir / ref.value  # as the user can find it, for messages
    path = written.resolve()
    tb = bound.body
    fmt = tb.value("format", default="auto") if tb else "auto"
    scale = tb.value("time_scale", default=1.0) if tb else 1.0
    if not path.is_file():
        env.rep.error(
            f"trace file `{ref.value}` is a folder, not a file"
            if path.is_dir()
            else f"trace file `{ref.value}` not found",
            ref.span,
            help=f"looked for {written}; a relative path is taken from the spec's folder",
        )
        return None
    if BAD in (fmt, scale):
        return None
    return ir.Trace(str(path), fmt, scale, bound.span)


def slo(body: Bodies, env: Env) -> ir.Slo | None:
    targets = []
    seen = {}
    ok = True
    for key in body.block.keys:
        for bound in body.all(key):
            stat, op, limit = bound.get("stat"), bound.get("op"), bound.get("limit")
            if BAD in (stat, op, limit) or None in (stat, op, limit):
                ok = False
                continue
            if (key, stat) in seen:
                env.rep.error(
                    f"`{key} {stat}` is given twice",
                    bound.span,
                    Note("first given here", seen[(key, stat)]),
                )
                ok = False
                continue
            seen[(key, stat)] = bound.span
            targets.append(ir.SloTarget(key, stat, op, limit, bound.span))
    if not targets and ok:
        env.rep.error("the slo block sets no target", body.span, help="e.g. `ttft p90 < 500 ms`")
        return None
    return ir.Slo(tuple(targets), body.span) if ok else None
