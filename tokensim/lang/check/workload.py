"""The ``workload`` and ``slo`` blocks."""

from __future__ import annotations

from tokensim import ir
from tokensim.lang import limits
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note, did_you_mean, one_of
from tokensim.lang.schema import BAD, Bodies
from tokensim.lang.source import Span


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
    if arrivals is not None and dict(arrivals.params).get("exact") and requests is None:
        rep.error(
            f"`arrivals {arrivals.name} {{ exact on }}` needs `requests`: the rate is made "
            "exact over a count of requests",
            body.one("arrivals").span,
            help="add `requests N`, or drop `exact`",
        )
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
    classes = _classes(body, env)
    if classes is None:
        return None
    return ir.Workload(
        arrivals,
        lengths,
        trace,
        requests,
        duration,
        seed,
        body.span,
        prefix,
        seeds,
        sessions,
        classes,
    )


def _classes(body: Bodies, env: Env) -> tuple[ir.RequestClass, ...] | None:
    """The workload's request classes (none: one class); None when one is wrong."""
    out: list[ir.RequestClass] = []
    seen: dict[str, Span] = {}
    for bound in body.all("class"):
        name, cb = bound.get("name"), bound.body
        if name in (None, BAD) or cb is None:
            return None
        label = bound.stmt.items[0].span
        if name in seen:
            env.rep.error(
                f"class `{name}` is defined twice", label, Note("first defined here", seen[name])
            )
            return None
        seen[name] = label
        values = [
            cb.value(k)
            for k in ("share", "priority", "deadline", "timeout", "max_queue", "lengths")
        ]
        if any(v is BAD for v in values) or values[0] is None:
            return None  # reported (`share` is required)
        share, priority, deadline, timeout, max_queue, lengths = values
        out.append(
            ir.RequestClass(
                name, share, priority or 0, deadline, timeout, max_queue, lengths, bound.span
            )
        )
    total = sum(c.share for c in out)
    if out and abs(total - 1.0) > 1e-9:
        env.rep.error(
            f"the classes' shares add up to {total:g}, not 1",
            out[0].span,
            help="each request is drawn into one class: give shares that sum to 1",
        )
        return None
    return tuple(out)


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


def _targets(body: Bodies, cls: str | None, targets: list, env: Env) -> bool:
    """Add the targets of an ``slo`` block (or of its ``class`` block ``cls``) to
    ``targets``; False when one is wrong (reported)."""
    seen = {}
    ok = True
    for key in body.block.keys:
        if key == "class":
            continue
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
            targets.append(ir.SloTarget(key, stat, op, limit, bound.span, cls))
    return ok


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


def slo(body: Bodies, env: Env, workload: ir.Workload | None = None) -> ir.Slo | None:
    targets: list[ir.SloTarget] = []
    ok = _targets(body, None, targets, env)
    names = [c.name for c in workload.classes] if workload is not None else None
    for bound in body.all("class"):
        name = bound.get("name")
        if name in (None, BAD) or bound.body is None:
            ok = False
            continue
        if names is not None and name not in names:
            env.rep.error(
                f"the workload has no class `{name}`",
                bound.stmt.items[0].span,
                Note(f"its classes are {one_of(names, word='and')}")
                if names
                else Note("the workload defines no `class`"),
                help=did_you_mean(name, names),
            )
            ok = False
            continue
        ok = _targets(bound.body, name, targets, env) and ok
    if not targets and ok:
        env.rep.error("the slo block sets no target", body.span, help="e.g. `ttft p90 < 500 ms`")
        return None
    return ir.Slo(tuple(targets), body.span) if ok else None
