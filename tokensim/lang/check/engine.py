"""Serving engines: ``engine`` definitions and the engine each pool runs.

An engine definition (``std/engines`` ships vLLM, SGLang and TensorRT-LLM) is kept
as its statements. A pool's engine is built from them in three layers, later ones
winning statement by statement: the definition, then its ``on_gpu`` blocks that
name the pool's GPU, then the statements the pool writes in braces after the
engine's name (``engine vllm_v1 { scheduler_steps 4 }``). ``kv``, ``host``,
``frontend`` and ``kernels`` merge statement by statement too, and so does
``batching`` when both layers name the same policy. The merged statements are
checked once against the engine schema, so an error points at the line that
wrote the bad value, wherever it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from tokensim import ir
from tokensim.lang import ast
from tokensim.lang.check import schemas
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note, did_you_mean
from tokensim.lang.schema import Bodies, Bound, Val, bind
from tokensim.lang.source import Span

# blocks merged statement by statement
NESTED = ("kv", "host", "frontend", "kernels", "reserve_output")
_HOST = {
    "iteration": "iteration_s",
    "per_seq": "per_seq_s",
    "per_prefill_token": "per_prefill_token_s",
    "per_rank": "per_rank_s",
    "per_layer": "per_layer_s",
}
_FRONTEND = {
    "per_request": "per_request_s",
    "per_input_token": "per_input_token_s",
    "latency": "latency_s",
    "per_output_token": "per_output_token_s",
    "shares_cpu": "shares_cpu",
    "concurrent": "concurrent",
    "batches": "batches",
}


# the ways a front end may take requests in beside the plain one, which exclude each other
_MODES = ("shares_cpu", "concurrent", "batches")
# why, for each pair (in the order of _MODES)
_CLASH = {
    ("shares_cpu", "concurrent"): "a front end that `shares_cpu` with the engine takes "
    "requests in one after another: it cannot be `concurrent` too",
    ("shares_cpu", "batches"): "a front end that `shares_cpu` with the engine runs in its "
    "process: it has no `batches` to hand to another",
    ("concurrent", "batches"): "a `concurrent` front end hands each request over when its "
    "own share of the work is done: it cannot hand them over in `batches` too",
}


def _clash(modes: list[str], body, overrides: Sequence[ast.Statement], name: str, env) -> None:
    """Report two ways of taking requests in switched on together: at the one the spec
    wrote in braces after the engine's name, if it wrote one, with how to switch the
    engine's own off."""
    written = {
        inner.key.text
        for stmt in overrides
        if stmt.key.text == "frontend" and stmt.body
        for inner in stmt.body
    }
    mine = next((m for m in modes if m in written), modes[1])
    other = next(m for m in modes if m != mine)
    bound = body.one("frontend").body.one(mine)
    hint = None
    if mine in written and other not in written:
        hint = f"`{name}` has `{other} on`: write `{other} off` beside `{mine} on`"
    env.rep.error(_CLASH[tuple(sorted((mine, other), key=_MODES.index))], bound.span, help=hint)


@dataclass(frozen=True)
class EngineDef:
    """An engine as defined: its statements (``on_gpu`` blocks apart) and where."""

    name: str
    version: str
    sources: tuple[str, ...]
    statements: tuple[ast.Statement, ...]
    on_gpu: tuple[tuple[schemas.GpuCondition, tuple[ast.Statement, ...]], ...]
    span: Span
    base: EngineDef | None = None  # `engine NAME from BASE`: the engine it changes

    def layers(self, gpu: ir.Gpu | None) -> list[ast.Statement]:
        """The statements for a pool on ``gpu``: the base's (with its ``on_gpu`` choices),
        then this definition's, then its own ``on_gpu`` choices that hold on ``gpu``, in
        the order written."""
        stmts = self.base.layers(gpu) if self.base is not None else []
        stmts = merge(stmts, self.statements)
        memory = gpu.memory_B if gpu is not None else None
        for when, extra in self.on_gpu:
            if any(when.holds(name, memory) for name in _names(gpu)):
                stmts = merge(stmts, extra)
        return stmts


def _names(gpu: ir.Gpu | None) -> tuple[str | None, ...]:
    """The names ``on_gpu`` knows ``gpu`` by: its own and, for a GPU made ``from`` another,
    the base's (None: no GPU)."""
    if gpu is None:
        return (None,)
    return tuple(n for n in (gpu.name, gpu.measured_as) if n)


def definition(bound: Bound, env: Env) -> EngineDef | None:
    """An ``engine NAME { ... }`` block as an :class:`EngineDef` (its statements are
    checked when a pool uses it; the definition alone is checked here too)."""
    body = bound.body
    base = None
    if bound.get("base") is not None:
        base = env.lookup("engine", bound.get("base"))
        if base is None:
            return None
    sources = tuple(
        b.get("source").value for b in body.all("source") if isinstance(b.get("source"), Val)
    )
    version = body.value("version")
    own = bound.stmt.body or ()  # `engine NAME from BASE` alone: the base, renamed
    plain = tuple(s for s in own if s.key.text not in ("source", "version", "on_gpu"))
    on_gpu = []
    known = set(env.defs.get("gpu", {})) | set(env.std_index.get("gpu", {}))
    for b in body.all("on_gpu"):
        when = b.get("gpus")
        if not isinstance(when, Val) or b.stmt.body is None:
            return None
        when = when.value
        for ref in when.refs:
            if ref.value not in known:
                env.rep.error(
                    f"unknown gpu `{ref.value}`",
                    ref.span,
                    Note("`on_gpu` names GPUs defined in scope or in std/hardware"),
                    help=did_you_mean(ref.value, known),
                )
                return None
        on_gpu.append((when, tuple(b.stmt.body)))
    if base is not None:
        sources += base.sources
        if not isinstance(version, Val):
            version = Val(base.version, bound.span)
    engine = EngineDef(
        bound.get("name"),
        version.value if isinstance(version, Val) else "",
        sources,
        plain,
        tuple(on_gpu),
        bound.span,
        base,
    )
    errors = len(env.rep.diagnostics)
    build(engine, None, (), env)  # report a bad value once, where it is defined
    return engine if len(env.rep.diagnostics) == errors else None


def merge(
    base: Sequence[ast.Statement], over: Sequence[ast.Statement], nested=NESTED
) -> list[ast.Statement]:
    """``base`` with the statements of ``over`` laid on top, key by key; the blocks of
    ``nested`` (an engine's by default) entry by entry."""
    out = list(base)
    for stmt in over:
        key = _identity(stmt)
        at = next((i for i, s in enumerate(out) if _identity(s) == key), None)
        if at is None:
            out.append(stmt)
            continue
        old = out[at]
        same_policy = key == "batching" and old.label is not None and old.label == stmt.label
        if (key in nested or same_policy) and old.body is not None and stmt.body is not None:
            stmt = dataclasses.replace(stmt, body=tuple(merge(old.body, stmt.body, nested)))
        elif same_policy and stmt.body is None:
            stmt = dataclasses.replace(stmt, body=old.body)
        out[at] = stmt
    return out


# statements that repeat, one per kind named by their first word (`tier host ...`)
BY_KIND = ("tier",)


def _identity(stmt: ast.Statement):
    """What a statement of ``over`` replaces in ``merge``: the one of the same key, or for
    :data:`BY_KIND`, of the same key and kind."""
    key = stmt.key.text
    if key in BY_KIND and stmt.items:
        return (key, getattr(stmt.items[0], "text", None))
    return key


@dataclass(frozen=True)
class PoolEngine:
    """What a pool takes from its engine: the engine, and the defaults of its batching
    (None: the language's) and KV statements."""

    engine: ir.Engine
    batching: object  # PolicyUse | None
    kv: tuple[ast.Statement, ...]
    batching_stmt: ast.Statement | None = None

    def batching_for(self, own: Bound | None, env: Env):
        """The pool's batching: its own ``batching`` statement over the engine's (the
        same policy keeps the engine's parameters the pool does not set)."""
        if own is None:
            return self.batching
        base = self.batching_stmt
        if base is None or base.label != own.stmt.label:
            return own.get("batching")
        merged = merge([base], [own.stmt])
        attr = schemas.POOL.attr("batching")
        bound = bind(merged, schemas.Block("pool", (attr,)), env.rep, "`batching`", None)
        return bound.value("batching", "batching")


def build(
    engine: EngineDef, gpu: ir.Gpu | None, overrides: Sequence[ast.Statement], env: Env
) -> PoolEngine | None:
    """The engine a pool on ``gpu`` runs, with the statements a spec wrote in braces
    after its name (``overrides``); None after reporting an error."""
    stmts = merge(engine.layers(gpu), overrides)
    errors = len(env.rep.diagnostics)
    body = bind(stmts, schemas.ENGINE_OVERRIDES, env.rep, "`engine`", engine.span)
    if len(env.rep.diagnostics) > errors:
        return None
    host = _sub(body, "host", _HOST)
    frontend = _sub(body, "frontend", _FRONTEND)
    modes = [m for m in _MODES if frontend.get(m)]
    if len(modes) > 1:
        _clash(modes, body, overrides, engine.name, env)
        return None
    kernels = _sub(body, "kernels", {})
    steps = body.value("scheduler_steps", default=1)
    value = ir.Engine(
        name=engine.name,
        version=engine.version,
        sources=engine.sources,
        memory=body.value("memory", default="total"),
        cuda_graphs=body.value("cuda_graphs", default=0),
        graph_prefill=body.value("graph_prefill", default=False),
        scheduler_steps=steps,
        async_scheduling=body.value("async_scheduling", default=False),
        reserve_output=_reservation(body, env),
        async_output=body.value("async_output", default=False),
        stream_tokens=body.value("stream", default=steps),
        host=ir.HostTime(**host),
        frontend=ir.Frontend(**frontend),
        kernels=tuple(sorted(kernels.items())),
        span=engine.span,
        overrides=tuple(sorted({s.key.text for s in overrides})),
        fp8_gemm=body.value("fp8_gemm", default="profiled"),
    )
    kv = body.one("kv")
    batching = body.one("batching")
    return PoolEngine(
        value,
        body.value("batching", "batching"),
        tuple(kv.stmt.body) if kv is not None and kv.stmt.body else (),
        batching.stmt if batching is not None else None,
    )


def _reservation(body: Bodies, env: Env) -> ir.Reservation | None:
    """The engine's ``reserve_output``: None when off (or not written); ``on`` alone holds
    back every running request's whole remaining output."""
    bound = body.one("reserve_output")
    if bound is None:
        return None
    if body.value("reserve_output") is False:
        if bound.stmt.body:
            env.rep.error(
                "`reserve_output off` takes no block",
                bound.stmt.body[0].key.span,
                help="write `reserve_output on { ... }`, or drop the block",
            )
        return None
    got = _sub(body, "reserve_output", {"clip": "clip_tokens"})
    share = got.get("share", 1.0)
    if got.setdefault("min_share", share) > share:
        inner = bound.body.one("min_share")
        env.rep.error(
            f"`min_share` {got['min_share']:g} is above `share` {share:g}: the share held "
            "back only falls",
            inner.span if inner is not None else bound.stmt.span,
        )
        return None
    return ir.Reservation(**got)


def _sub(body: Bodies, key: str, names: dict[str, str]) -> dict:
    """The values of the sub-block ``key`` by IR field name."""
    bound = body.one(key)
    if bound is None or bound.body is None:
        return {}
    return {
        names.get(k, k): bound.body.value(k)
        for k in bound.body.by_key
        if bound.body.value(k) is not None
    }


def for_pool(pb: Bodies, deployment: Bound | None, gpu: ir.Gpu, env: Env) -> PoolEngine | None:
    """The engine of the pool whose body is ``pb`` on ``gpu``.

    The deployment's ``engine`` statement (``deployment``) sets the engine of every pool
    that names none; a pool's ``engine NAME`` replaces it, and a pool's ``engine { ... }``
    without a name changes some of its statements. With neither, pools run
    ``std/engines``'s ``vllm_v1`` (found even when the spec does not import it).
    """
    ref, overrides = None, []
    for bound in (deployment, pb.one("engine")):
        if bound is None:
            continue
        if isinstance(bound.get("engine"), Val):
            ref, overrides = bound.get("engine"), []
        overrides += bound.stmt.body or ()
    if ref is not None:
        engine = env.lookup("engine", ref)
        if engine is None:
            return None
    else:
        engine = default_engine(env)
    return build(engine, gpu, overrides, env)


def default_engine(env: Env) -> EngineDef:
    """The default engine: the spec's own ``vllm_v1`` if it defines or imports one, else
    the std catalogue's."""
    found = env.defs.get("engine", {}).get(schemas.DEFAULT_ENGINE)
    if found is not None:
        return found[0]
    from tokensim.lang.check import std_engines

    return std_engines()[schemas.DEFAULT_ENGINE]
