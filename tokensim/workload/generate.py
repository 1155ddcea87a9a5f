"""The workload stage: a checked ``workload`` block becomes concrete requests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tokensim import ir
from tokensim.lang.diagnostics import Diagnostic, Note
from tokensim.workload.arrivals import arrival_times
from tokensim.workload.lengths import draw_lengths
from tokensim.workload.requests import Requests
from tokensim.workload.traces import TraceError, read_trace


def generate(workload: ir.Workload, base_dir: str | Path, rng: np.random.Generator) -> Requests:
    """:func:`requests` of ``workload``, each drawn into one of its request classes (if it
    has any) by their shares: a conversation as a whole, after every other draw; a class
    with its own ``lengths`` draws its requests' lengths again from them."""
    out = requests(workload, base_dir, rng)
    if workload.classes and out.klass is None:
        klass = _draw_classes(workload.classes, len(out), rng)
        prompt, output = out.prompt_tokens.copy(), out.output_tokens.copy()
        redrawn = _class_lengths(workload.classes, klass, prompt, output, rng)
        if workload.shared_prefix is not None:  # a redrawn prompt still starts with it
            prompt[redrawn] += workload.shared_prefix.tokens
        out = dataclasses.replace(out, prompt_tokens=prompt, output_tokens=output, klass=klass)
    return out


def _draw_classes(classes, n: int, rng: np.random.Generator) -> np.ndarray:
    """A class index for each of ``n`` requests (or conversations), by the shares."""
    shares = np.array([c.share for c in classes])
    return rng.choice(len(classes), size=n, p=shares / shares.sum()).astype(np.int64)


def _class_lengths(classes, klass, prompt, output, rng: np.random.Generator) -> np.ndarray:
    """Draw again, in place, the prompts and outputs of the requests of each class with
    its own ``lengths`` (class by class, in spec order); whether each request was."""
    redrawn = np.zeros(len(klass), dtype=bool)
    for k, c in enumerate(classes):
        mine = np.flatnonzero(klass == k)
        if c.lengths is not None and len(mine):
            prompt[mine], output[mine] = draw_lengths(c.lengths, len(mine), rng)
            redrawn[mine] = True
    return redrawn


def requests(workload: ir.Workload, base_dir: str | Path, rng: np.random.Generator) -> Requests:
    """The requests ``workload`` describes, in arrival order (deterministic given ``rng``).

    Arrival times (seconds, the first at 0) come from ``workload.arrivals`` if
    given, else from the trace: shifted so its first request arrives at 0 and
    multiplied by the trace's ``time_scale``. Lengths (tokens) come from
    ``workload.lengths`` if given, else from the trace; priorities come from
    the trace if there is one (else 0), prefix ids only with the trace's
    lengths. ``workload.requests`` caps the count (it truncates a trace, never
    extends it); ``workload.duration_s`` drops arrivals at or after it. A
    relative trace path is taken from ``base_dir``. Arrivals are drawn from
    ``rng`` before lengths. Raises :class:`TraceError` for a bad trace file.
    """
    trace = _read(workload.trace, base_dir) if workload.trace is not None else None
    if trace is not None and trace.session is not None:
        return _trace_conversations(workload, trace, rng)
    if workload.sessions is not None:
        return _conversations(workload, trace, rng)
    arrival = _starts(workload, trace, workload.requests, rng)
    n = len(arrival)
    trace = trace.head(n) if trace is not None else None
    if workload.lengths is not None:
        prompt, output = draw_lengths(workload.lengths, n, rng)
        hashes, block = None, 0
    else:
        prompt, output = trace.prompt_tokens, trace.output_tokens
        hashes, block = trace.prefix_hashes, trace.prefix_block_tokens
    if workload.shared_prefix is not None:
        if hashes is not None:
            raise TraceError(
                [
                    Diagnostic(
                        f"trace `{workload.trace.path}` gives its own prefix ids; "
                        "`shared_prefix` cannot add to them",
                        workload.shared_prefix.span,
                        help="remove `shared_prefix`, or give `lengths` so that the trace "
                        "supplies only the arrival times",
                    )
                ]
            )
        prompt, hashes, block = _shared_prefix(workload.shared_prefix, prompt, rng)
    priority = trace.priority if trace is not None else np.zeros(n, dtype=np.int64)
    return Requests(arrival, prompt, output, priority, hashes, block)


def _trace_conversations(
    workload: ir.Workload, trace: Requests, rng: np.random.Generator
) -> Requests:
    """A trace whose lines carry ``session`` ids, replayed as its conversations: their
    starts (scaled by ``time_scale``, cut by ``duration``), their turns' whole prompts and
    think times (scaled too); ``requests`` cuts the last conversation kept short."""
    for key in ("sessions", "arrivals", "lengths", "shared_prefix"):
        if getattr(workload, key) is not None:
            raise TraceError(
                [
                    Diagnostic(
                        f"trace `{workload.trace.path}` gives conversations (a `session` "
                        f"column): its own starts, turns and think times; `{key}` cannot "
                        "replace them",
                        getattr(workload, key).span,
                        help=f"remove `{key}`; `time_scale` stretches the trace's times",
                    )
                ]
            )
    count = len(trace) if workload.requests is None else min(workload.requests, len(trace))
    arrival = _trace_arrivals(trace, workload, count)
    trace = trace.head(len(arrival))
    klass = None
    if workload.classes:  # a conversation is of one class; its turns are the trace's
        own = next((c for c in workload.classes if c.lengths is not None), None)
        if own is not None:
            raise TraceError(
                [
                    Diagnostic(
                        f"trace `{workload.trace.path}` gives conversations, whose prompts "
                        f"are the trace's: class `{own.name}` cannot draw its own `lengths`",
                        own.span,
                        help="remove the class's `lengths`",
                    )
                ]
            )
        klass = _draw_classes(workload.classes, int(trace.session[-1]) + 1, rng)[trace.session]
    return Requests(
        arrival,
        trace.prompt_tokens,
        trace.output_tokens,
        trace.priority,
        trace.prefix_hashes,
        trace.prefix_block_tokens,
        True,
        trace.session,
        trace.think_s * workload.trace.time_scale,
        klass,
    )


def _starts(workload: ir.Workload, trace: Requests | None, count: int | None, rng) -> np.ndarray:
    """When the requests (or conversations) start: from the arrival process, else the
    trace's times; at most ``count`` of them, and at most the trace's lines."""
    if trace is not None:
        count = len(trace) if count is None else min(count, len(trace))
    if workload.arrivals is not None:
        return arrival_times(workload.arrivals, count, workload.duration_s, rng)
    return _trace_arrivals(trace, workload, count)


def _conversations(
    workload: ir.Workload, trace: Requests | None, rng: np.random.Generator
) -> Requests:
    """``sessions``: conversations started by the arrival process (or at the trace's
    times), each of ``turns`` turns (``requests`` counts turns; the last conversation may be
    cut short). Turn k's prompt is the conversation so far: every earlier turn's new tokens
    and answer, then its own new tokens, drawn from ``lengths`` (a ``shared_prefix`` is
    drawn once per conversation and starts all its turns). Think times are drawn for every
    turn but the first. Draws: arrivals, lengths, the classes (each conversation's, then
    the lengths of those with their own), think times, then the shared prefix."""
    sessions = workload.sessions
    turns = sessions.turns
    count = None if workload.requests is None else -(-workload.requests // turns)
    starts = _starts(workload, trace, count, rng)
    n = len(starts) * turns
    if workload.requests is not None:
        n = min(n, workload.requests)
    session = np.repeat(np.arange(len(starts), dtype=np.int64), turns)[:n]
    turn = np.tile(np.arange(turns, dtype=np.int64), len(starts))[:n]
    new, output = draw_lengths(workload.lengths, n, rng)
    klass = None
    if workload.classes:  # a conversation is of one class, its turns of its lengths
        klass = _draw_classes(workload.classes, len(starts), rng)[session]
        _class_lengths(workload.classes, klass, new, output, rng)
    if sessions.think == "constant":
        think = np.full(n, float(sessions.think_s))
    else:
        think = rng.exponential(sessions.think_s, n) if sessions.think_s > 0 else np.zeros(n)
    think[turn == 0] = 0.0
    before = np.cumsum(new + output) - (new + output)  # tokens of all requests before
    prompt = before - before[np.flatnonzero(turn == 0)][session] + new
    hashes, block = None, 0
    if workload.shared_prefix is not None:
        first = np.zeros(len(starts), dtype=np.int64)
        _, firsts, block = _shared_prefix(workload.shared_prefix, first, rng)
        hashes = tuple(firsts[s] for s in session)
        prompt = prompt + workload.shared_prefix.tokens
    priority = np.zeros(n, dtype=np.int64)
    arrival = starts[session]
    return Requests(arrival, prompt, output, priority, hashes, block, True, session, think, klass)


def _shared_prefix(prefix: ir.SharedPrefix, prompt: np.ndarray, rng: np.random.Generator):
    """Prompts lengthened by the prefix, their prefix ids, and the tokens one id stands for.

    Every prompt grows by ``prefix.tokens``; a ``prefix.fraction`` of the requests (drawn
    from ``rng``, then the prefix each of them starts with, uniformly among
    ``prefix.groups``) share those tokens with the others of their group, the rest own them.
    Keeping every prompt's length independent of the fraction lets a sweep over it change
    what can be cached, not the work asked.
    """
    n = len(prompt)
    shares = rng.random(n) < prefix.fraction
    group = rng.integers(prefix.groups, size=n)
    hashes = tuple((int(g),) if s else () for s, g in zip(shares, group, strict=True))
    return prompt + prefix.tokens, hashes, prefix.tokens


def _read(trace: ir.Trace, base_dir: str | Path) -> Requests:
    """Read the trace; its errors also point at the spec's ``trace`` statement."""
    try:
        return read_trace(Path(base_dir) / trace.path, trace.format)
    except TraceError as err:
        raise err.with_note(Note("the trace is named here", trace.span)) from None


def _trace_arrivals(trace: Requests | None, workload: ir.Workload, count: int) -> np.ndarray:
    """The trace's arrival times: shifted to start at 0, scaled, capped."""
    if trace is None:
        raise ValueError("a workload without arrivals needs a trace")
    if not trace.has_arrivals:
        raise TraceError(
            [
                Diagnostic(
                    f"trace `{workload.trace.path}` has no arrival times",
                    workload.trace.span,
                    help="give them with an arrival process, e.g. `arrivals poisson 10/s`",
                )
            ]
        )
    times = trace.arrival_s[:count]
    times = (times - times[0]) * workload.trace.time_scale
    if workload.duration_s is not None:
        times = times[times < workload.duration_s]
    return times
