"""run.json: what was simulated, in words and plain data, so a result folder can be
read (and its page re-rendered) without the spec's imports or traces at hand."""

from __future__ import annotations

from tokensim.lang.units import Dim, format_quantity


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _policy(use) -> str:
    """``poisson 12/s``, ``chat``: a policy's name, and its rate if it has one."""
    if use is None:
        return "from the trace"
    rate = dict(use.params).get("rate")
    return use.name + (f" {format_quantity(rate, Dim.RATE)}" if rate is not None else "")


def pools(spec) -> list[dict]:
    """One dict per pool: what runs on it and where."""
    if spec.deployment is None:
        return []
    out = []
    for p in spec.deployment.pools:
        pool = {
            "name": p.name,
            "role": p.role,
            "model": p.model.name,
            "dtype": p.dtype,
            "instances": len(p.instances),
            "tp": p.tp,
            "pp": p.pp,
            "parallelism": p.parallelism(""),
            "gpu": p.gpu.name,
            "batching": p.batching.name,
        }
        scaler = spec.deployment.autoscaler(p.name)
        if scaler is not None:  # how many of its instances may serve
            pool["autoscale"] = f"{scaler.min}..{scaler.max}"
        if p.kv.tiers:  # lower KV tiers, fastest first
            pool["kv_tiers"] = " · ".join(
                f"{t.kind} {format_quantity(t.capacity_B, Dim.BYTES)}" for t in p.kv.tiers
            )
        out.append(pool)
    return out


def sentence(spec) -> str:
    """The deployment in one sentence: models, pools, GPUs, nodes, how KV moves."""
    d, c = spec.deployment, spec.cluster
    if d is None or c is None:
        return "a catalogue (no deployment)"
    parts = []
    for p in d.pools:
        par = p.parallelism("")
        role = "" if p.role == "colocated" else f" {p.role}"
        parts.append(
            f"{len(p.instances)} × {par} {p.model.name} {p.dtype}{role} instance"
            f"{'s' * (len(p.instances) != 1)} on {p.gpu.name} (pool {p.name})"
        )
    used = d.gpus
    total = sum(n.count for n in c.nodes)
    where = f"{_plural(used, 'GPU')}" + (f" of {total}" if total != used else "")
    where += f" in {_plural(len(c.nodes), 'node')}"
    text = f"{'; '.join(parts)}: {where}"
    if d.transfers:
        moves = ", ".join(f"{t.src} → {t.dst}" for t in d.transfers)
        nets = ", ".join(sorted({n.link.name for n in c.networks}))
        text += f"; KV moves {moves}" + (f" over {nets}" if nets else " within the node")
    return text + "."


def workload(spec, requests: int | None = None) -> str:
    """``4000 requests, poisson 12/s arrivals, chat lengths, seed 11``: ``requests`` is how
    many the run simulated (a trace may hold fewer than the spec asks for); without it,
    what the spec asks for."""
    w = spec.workload
    if w is None:
        return "no workload"
    count = requests if requests is not None else w.requests
    if count is not None:
        size = _plural(count, "request")
    elif w.duration_s is not None:
        size = f"{format_quantity(w.duration_s, Dim.TIME)} of arrivals"
    else:  # a trace read to its end
        size = "every request"
    if w.trace is not None and w.arrivals is None and w.lengths is None:
        return f"{size} from the trace {w.trace.path.rsplit('/', 1)[-1]}"
    if w.classes:  # each request drawn into a class
        shares = ", ".join(f"{c.name} {c.share:.0%}" for c in w.classes)
        size += f" in {len(w.classes)} classes ({shares})"
    if w.sessions is not None:  # the arrivals start conversations; requests are turns
        c = w.sessions
        size = size.replace("request", "turn")
        think = format_quantity(c.think_s, Dim.TIME)
        return (
            f"{size} in conversations of {c.turns} (think {think}), started by "
            f"{_policy(w.arrivals)} arrivals, {_policy(w.lengths)} lengths"
        )
    return f"{size}, {_policy(w.arrivals)} arrivals, {_policy(w.lengths)} lengths"


def manifest(spec, seed: int, overrides: list[str], requests: int | None = None) -> dict:
    """run.json's content (``requests``: how many the run simulated)."""
    from tokensim import __version__

    gpus = {}
    for n in spec.cluster.nodes if spec.cluster else ():
        gpus[n.gpu.name] = {
            "count": gpus.get(n.gpu.name, {}).get("count", 0) + n.count,
            "price_per_h": n.gpu.price_per_h,
        }
    return {
        "spec": spec.name,
        "spec_file": spec.file,
        "seed": seed,
        "tokensim_version": __version__,
        "overrides": list(overrides),
        "deployment": sentence(spec),
        "workload": workload(spec, requests),
        "pools": pools(spec),
        "gpus": gpus,
    }
