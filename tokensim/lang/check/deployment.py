"""The ``deployment`` block: pools placed on GPUs, transfers and routes."""

from __future__ import annotations

from tokensim import ir
from tokensim.lang.check import engine as engines
from tokensim.lang.check import schemas
from tokensim.lang.check.catalog import cost as check_cost
from tokensim.lang.check.cluster import components, place_gpus
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note, did_you_mean, one_of
from tokensim.lang.schema import BAD, Bodies, Bound, Val, bind
from tokensim.lang.source import Span
from tokensim.lang.units import Dim, format_quantity
from tokensim.perf.shared import QUANT_DTYPES
from tokensim.policies import PolicyUse
from tokensim.policies.batching import BATCHING
from tokensim.policies.memory import kv_geometry


def _gpus(n: int) -> str:
    return f"{n} GPU{'s' * (n != 1)}"


def _size(num_bytes: float) -> str:
    """``70.55 GB``: a byte count as messages show it."""
    return format_quantity(num_bytes, Dim.BYTES)


def deployment(body: Bodies, cluster: ir.Cluster, env: Env) -> ir.Deployment | None:
    free = [ir.GpuRef(n.name, i) for n in cluster.nodes for i in range(n.count)]
    owner: dict[ir.GpuRef, str] = {}
    pools: list[ir.Pool] = []
    names: dict[str, Span] = {}
    comp = components(cluster)
    for bound in body.all("pool"):
        name = bound.get("name")
        if name in (None, BAD) or bound.body is None:
            continue
        label_span = bound.stmt.items[0].span
        if name in names:
            env.rep.error(
                f"pool `{name}` is defined twice",
                label_span,
                Note("first defined here", names[name]),
            )
            continue
        names[name] = label_span
        pool = _pool(name, bound, cluster, free, owner, comp, body.one("engine"), env)
        if pool is not None:
            pools.append(pool)
    if len(pools) != len(names) or not all(_store_reached(p, cluster, env) for p in pools):
        return None
    if not _host_fits(pools, cluster, env):
        return None
    by_name = {p.name: p for p in pools}
    transfers = _transfers(body, by_name, comp, env)
    routes = _routes(body, by_name, env)
    scaling = _autoscale(body, by_name, env)
    if transfers is None or routes is None or scaling is None:
        return None
    return ir.Deployment(tuple(pools), transfers, routes, body.span, scaling)


def _host_fits(pools: list[ir.Pool], cluster: ir.Cluster, env: Env) -> bool:
    """Whether each node's ``host_memory``, where given, holds the host KV tiers and swap
    space of the instances on it (an instance's on the node of its first GPU); else
    reported at the tier (or swap) that overflows it."""
    used: dict[str, float] = {}
    for pool in pools:
        host = next((t for t in pool.kv.tiers if t.kind == "host"), None)
        per_instance = pool.kv.swap_B + (host.capacity_B if host else 0.0)
        for inst in pool.instances:
            node = next(n for n in cluster.nodes if n.name == inst.gpus[0].node)
            used[node.name] = used.get(node.name, 0.0) + per_instance
            if node.host_memory_B is not None and used[node.name] > node.host_memory_B:
                where = host.span if host else pool.kv.span
                env.rep.error(
                    f"node `{node.name}` has {format_quantity(node.host_memory_B, Dim.BYTES)} "
                    f"of host memory; its instances' host KV tiers and swap space take "
                    f"{format_quantity(used[node.name], Dim.BYTES)}",
                    where,
                    Note("the node's memory is given here", node.span),
                    help="shrink the `tier host` (or `swap`), or give the node more `host_memory`",
                )
                return False
    return True


def _store_reached(pool: ir.Pool, cluster: ir.Cluster, env: Env) -> bool:
    """Whether every instance of a pool with a ``remote`` KV tier can reach the store:
    the store is on the network, so each instance's node must be on one (else reported)."""
    remote = next((t for t in pool.kv.tiers if t.kind == "remote"), None)
    if remote is None:
        return True
    networked = {n for net in cluster.networks for n in net.nodes}
    for inst in pool.instances:
        node = inst.gpus[0].node
        if node not in networked:
            env.rep.error(
                f"`tier remote` is a store on the network, and node `{node}` (of "
                f"`{pool.name}[{inst.index}]`) is on none",
                remote.span,
                help=f"join it to a network, e.g. `network IB_400G between {node}, ...`, or "
                "use a `host` or `disk` tier",
            )
            return False
    return True


def _placement(bound: Bound, cluster: ir.Cluster, env: Env) -> list[ir.GpuRef] | None:
    on = bound.body.value("on")
    if on is None:
        return [ir.GpuRef(n.name, i) for n in cluster.nodes for i in range(n.count)]
    out: list[ir.GpuRef] = []
    ok = True
    for place in on:
        gpus = place_gpus(place, cluster, env) if place is not BAD else None
        if gpus is None:
            ok = False
            continue
        out.extend(gpus)
    return out if ok else None


def _pool(
    name, bound: Bound, cluster, free, owner, comp, engine_bound: Bound | None, env: Env
) -> ir.Pool | None:
    pb, rep = bound.body, env.rep
    model_bound = pb.one("model")
    model = env.lookup("model", model_bound.get("model")) if model_bound else None
    dtype = pb.value("dtype") or (model_bound.get("dtype") if model_bound else None)
    if pb.one("dtype") and model_bound and model_bound.get("dtype"):
        rep.error("the dtype is given twice (in `model` and in `dtype`)", pb.one("dtype").span)
    instances = pb.value("instances", default=1)
    tp, pp = pb.value("tp", default=1), pb.value("pp", default=1)
    role = pb.value("role", default="colocated")
    placement = _placement(bound, cluster, env)
    batching = pb.value("batching", "batching")
    own_cost = check_cost(pb.one("cost"), env)
    if model is None or placement is None or BAD in (instances, tp, pp, role, batching, dtype):
        return None
    dtype = dtype or model.dtype
    where = pb.one("model").span
    ok = own_cost is not BAD  # reported; the pool's other checks still run
    if model.heads % tp or not (model.kv_heads % tp == 0 or tp % model.kv_heads == 0):
        rep.error(
            f"tp {tp} does not divide the heads of `{model.name}` "
            f"({model.heads} heads, {model.kv_heads} kv heads)",
            pb.one("tp").span,
            help=f"tp must divide {model.heads}: try {_divisors(model.heads, model.kv_heads)}",
        )
        ok = False
    if pp > model.layers:
        rep.error(f"pp {pp} exceeds the {model.layers} layers of `{model.name}`", pb.one("pp").span)
        ok = False
    experts = _experts(pb, model, tp, dtype or model.dtype, rep)
    if experts is BAD:
        return None
    dp, ep = experts
    microbatches = pb.value("microbatches", default=pp)
    if microbatches > pp:
        rep.error(
            f"microbatches {microbatches} exceeds pp {pp}: a pipeline of {pp} stage"
            f"{'s' * (pp > 1)} works on at most {pp} batch{'es' * (pp > 1)} at once",
            pb.one("microbatches").span,
            help=f"microbatches 1 to {pp} (pp {pp} keeps {pp} in flight by default)",
        )
        ok = False
    # Take GPUs from the placement that no earlier pool took.
    size = tp * dp * pp
    need = instances * size
    available = [g for g in placement if g not in owner]
    if need > len(available):
        taken = sorted({owner[g] for g in placement if g in owner})
        notes = (
            [
                Note(
                    f"its placement has {_gpus(len(placement))}; {len(placement) - len(available)}"
                    f" are taken by pool{'s' * (len(taken) > 1)} {one_of(taken)}"
                )
            ]
            if taken
            else []
        )
        span = pb.one("on").span if pb.one("on") else bound.stmt.items[0].span
        rep.error(
            f"pool `{name}` needs {_gpus(need)} ({instances} instance{'s' * (instances > 1)}"
            f" x {ir.parallelism(tp, dp, 1, pp, join=' x ')}) but its placement has "
            f"{len(available)} free",
            span,
            *notes,
        )
        return None
    gpus = available[:need]
    for g in gpus:
        owner[g] = name
    nodes = {n.name: n for n in cluster.nodes}
    kinds = sorted({nodes[g.node].gpu.name for g in gpus})
    if len(kinds) > 1:
        rep.error(
            f"pool `{name}` spans GPUs of different kinds ({', '.join(kinds)})",
            pb.one("on").span if pb.one("on") else bound.span,
            help="give each GPU kind its own pool",
        )
        return None
    gpu = nodes[gpus[0].node].gpu
    run_by = engines.for_pool(pb, engine_bound, gpu, env)
    if run_by is None:
        return None
    batching = run_by.batching_for(pb.one("batching"), env)
    if batching is BAD:
        return None
    if batching is None:
        batching = PolicyUse(
            "batching",
            "continuous",
            tuple(sorted((p.name, p.default) for p in BATCHING.get("continuous").params)),
            None,
        )
    instances_ir = []
    for i in range(instances):
        mine = tuple(gpus[i * size : (i + 1) * size])
        if len({comp[g.node] for g in mine}) > 1:
            rep.error(
                f"instance {i} of pool `{name}` spans nodes with no network between them "
                f"({', '.join(sorted({g.node for g in mine}))})",
                bound.stmt.items[0].span,
            )
            ok = False
        instances_ir.append(ir.Instance(i, mine))
    if gpu.flops(dtype) is None:
        have = [d for d, _ in gpu.compute_flops]
        rep.error(
            f"{gpu.name} has no {dtype} compute",
            (pb.one("dtype") or pb.one("model")).span,
            Note(f"{gpu.name} computes in {one_of(have)}"),
        )
        ok = False
    kv = _kv(pb, run_by.kv, dtype, env)
    speculative = _speculative(pb, env)
    if kv is None or not ok or speculative is BAD:
        return None
    weights, total = weights_per_gpu(
        model, dtype, _proposer_params(model, speculative), tp, dp, pp, ep
    )
    usable = gpu.memory_B * (kv.gpu_util if run_by.engine.memory != "free" else 1.0)
    if weights >= usable:
        rep.error(
            f"`{model.name}` in {dtype} does not fit: {_size(weights)} of weights per GPU "
            f"but {gpu.name} gives {_size(usable)} ({_size(weights - usable)} short)",
            where,
            Note(
                f"{_size(total)} of weights over "
                f"{ir.parallelism(tp, dp, ep.size if ep else 1, pp, join=' x ')} = {_gpus(size)};"
                f" usable memory is {_size(gpu.memory_B)}"
                + (f" x gpu_util {kv.gpu_util:g}" if run_by.engine.memory != "free" else "")
            ),
            help=(
                "raise ep (its experts spread thinner) or pp, or use a smaller dtype"
                if ep
                else f"raise tp or pp, or use a smaller dtype; tp {_fits(total, usable, model)}"
            ),
        )
        return None
    pool = ir.Pool(
        name,
        model,
        dtype,
        tuple(instances_ir),
        tp,
        pp,
        gpu,
        role,
        batching,
        kv,
        weights,
        bound.span,
        own_cost or gpu.cost,
        run_by.engine,
        speculative,
        dp,
        ep,
        microbatches,
    )
    blocks, block_bytes, reserve, left = kv_geometry(pool)
    if blocks < 1:
        rep.error(
            f"`{model.name}` leaves no room for the KV cache on {gpu.name}: "
            + (f"{_size(left)} left, " if left > 0 else "nothing left, ")
            + f"one block needs {_size(block_bytes)}",
            where,
            Note(
                (
                    f"{_size(weights)} of weights per GPU, of {_size(gpu.memory_B)} x gpu_util"
                    f" {kv.gpu_util:g} (the engine's static share: activations use the rest)"
                )
                if run_by.engine.memory == "static"
                else f"{_size(weights)} of weights and {_size(reserve)} of activations per GPU "
                "(the largest iteration's, which the engine reserves before sizing the cache)"
                + (
                    f", of {_size(gpu.memory_B)} x gpu_util {kv.gpu_util:g}"
                    if run_by.engine.memory == "total"
                    else ""
                )
            ),  # fmt: skip
            help="raise `gpu_util`, tp or pp, lower the batch's token budget, or use a smaller "
            "dtype",
        )
        return None
    return pool


def weights_per_gpu(model, dtype: str, proposer: float, tp, dp, pp, ep) -> tuple[float, float]:
    """(bytes on one GPU of an instance, bytes in all) of the model's weights and its
    speculative proposer's (``proposer`` parameters) in ``dtype``: split over tp and pp,
    except the routed experts (in the model's ``expert_dtype`` if it has one), which split
    over the stage's ``tp x dp`` GPUs, or with ``ep`` are whole on their GPUs, redundant
    copies included."""
    dtype_B = ir.DTYPE_BYTES[dtype]
    routed = model.routed_params * ir.DTYPE_BYTES[model.expert_dtype or dtype]
    rest = (model.params - model.routed_params + proposer) * dtype_B
    if ep is None:
        return rest / (tp * pp) + routed / (tp * dp * pp), rest + routed
    copies = (model.experts + ep.redundant) / model.experts
    return rest / (tp * pp) + routed * copies / (ep.size * pp), rest + routed * copies


def _experts(pb: Bodies, model: ir.Model, tp: int, dtype: str, rep):
    """The pool's ``dp`` and ``ep`` as (dp, ExpertParallel or None); BAD after an error."""
    dp_given, bound = pb.value("dp"), pb.one("ep")
    if bound is not None and bound.get("ep") in (None, BAD):  # malformed: reported
        return BAD
    if (dp_given or bound) and model.experts == 1:
        rep.error(
            f"`{model.name}` is dense: `{'ep' if bound else 'dp'}` spreads a MoE model's "
            "experts over the GPUs of its attention ranks",
            (bound or pb.one("dp")).span,
            help="for more replicas of a dense model, raise `instances`",
        )
        return BAD
    if bound is None:
        return dp_given or 1, None
    size = bound.get("ep")
    if size % tp or (dp_given and size != tp * dp_given):
        want = (
            f"tp {tp} x dp {dp_given} = {tp * dp_given}" if dp_given else f"a multiple of tp {tp}"
        )
        rep.error(
            f"ep {size} must span each stage's GPUs: {want}",
            bound.span,
            help="experts spread over the GPUs of every attention rank of a stage: "
            "ep = tp x dp (without `dp`, dp is ep / tp)",
        )
        return BAD
    body = bound.body
    imbalance = body.value("imbalance", default=1.0) if body else 1.0
    redundant = body.value("redundant", default=0) if body else 0
    dispatch = body.value("dispatch") if body else None
    kind = body.value("all_to_all", default="auto") if body else "auto"
    overlap = body.value("overlap", default=False) if body else False
    if BAD in (imbalance, redundant, dispatch, kind, overlap):
        return BAD
    if (model.experts + redundant) % size:
        rep.error(
            f"ep {size} does not divide the {model.experts} experts of `{model.name}`"
            + (f" and {redundant} redundant ones" if redundant else ""),
            bound.span,
            help="each GPU holds the same number of experts: choose ep, or `redundant`, so "
            "that ep divides experts + redundant",
        )
        return BAD
    dispatch = dispatch or ("fp8" if dtype in QUANT_DTYPES else "bf16")
    return size // tp, ir.ExpertParallel(
        size, float(imbalance), redundant, ir.DTYPE_BYTES[dispatch], bound.span, kind, overlap
    )


def _speculative(pb: Bodies, env: Env):
    """The pool's ``speculative`` statement: None without one, BAD after an error."""
    bound = pb.one("speculative")
    if bound is None:
        return None
    method, ref = bound.get("method"), bound.get("draft")
    sb = bound.body
    if BAD in (method, ref) or sb is None:
        return BAD
    tokens, acceptance = sb.value("tokens"), sb.value("acceptance")
    if None in (tokens, acceptance):
        return BAD
    if len(acceptance) == 1:
        acceptance = acceptance[0]
    elif len(acceptance) != tokens:
        env.rep.error(
            f"{len(acceptance)} acceptance chances for {tokens} proposed tokens",
            sb.one("acceptance").span,
            help="give one chance for every position, or one a position",
        )
        return BAD
    draft = None
    if method == "draft":
        if ref is None:
            env.rep.error(
                "`speculative draft` needs the draft model",
                bound.span,
                help="e.g. `speculative draft llama3_2_1b { tokens 4; acceptance 0.7 }`",
            )
            return BAD
        draft = env.lookup("model", ref)
        if draft is None:
            return BAD
    elif ref is not None:
        env.rep.error(
            "`speculative mtp` proposes with the model's own head: it takes no draft model",
            ref.span,
        )
        return BAD
    return ir.Speculative(method, tokens, acceptance, draft, bound.span)


def _proposer_params(model: ir.Model, speculative: ir.Speculative | None) -> float:
    """Parameters the proposer adds on the pool's GPUs: the draft model's, or for an MTP
    head one layer of the model's (DeepSeek-V3's is one layer beside the shared embedding)."""
    if speculative is None:
        return 0.0
    if speculative.draft is not None:
        return speculative.draft.params
    embeddings = model.vocab * model.hidden * (1 if model.tie_embeddings else 2)
    return (model.params - embeddings) / model.layers


def _fits(total: float, usable: float, model: ir.Model) -> str:
    """The smallest tp that leaves at least a fifth of usable memory for the KV cache."""
    for tp in (1, 2, 4, 8, 16, 32, 64):
        if model.heads % tp == 0 and total / tp <= 0.8 * usable:
            return f"{tp} would leave {_size(usable - total / tp)} per GPU for the KV cache"
    return "alone cannot make it fit"


def _divisors(heads: int, kv_heads: int) -> str:
    good = [
        t
        for t in range(1, heads + 1)
        if heads % t == 0 and (kv_heads % t == 0 or t % kv_heads == 0)
    ]
    return ", ".join(str(t) for t in good[:8])


def _kv(pb: Bodies, engine_kv, dtype: str, env: Env) -> ir.KvConfig | None:
    """The pool's KV policy: its own ``kv`` statements over its engine's."""
    bound = pb.one("kv")
    kb = bound.body if bound else None
    if engine_kv:
        own = bound.stmt.body if bound and bound.stmt.body else ()
        kb = bind(engines.merge(engine_kv, own), schemas.KV, env.rep, "`kv`", None)

    def get(key, default):
        return kb.value(key, default=default) if kb else default

    values = dict(
        block_tokens=get("block", 16),
        gpu_util=get("gpu_util", 0.9),
        preempt=get("preempt", "recompute"),
        prefix_cache=get("prefix_cache", False),
        swap_B=get("swap", 0.0),
        # like vLLM's `--kv-cache-dtype auto`: the activations' 16-bit type for 8- and 4-bit
        # weights (their GEMMs quantize 16-bit activations), else the weights' own
        dtype=get("dtype", dtype if ir.DTYPE_BYTES[dtype] >= 2 else "bf16"),
        watermark=get("watermark", 0.01),
    )
    if any(v is BAD for v in values.values()):
        return None
    if values["preempt"] == "swap" and values["swap_B"] == 0:
        env.rep.error(
            "`preempt swap` needs swap space",
            kb.one("preempt").span,
            help="add e.g. `swap 64 GB` to the kv block",
        )
        return None
    written = bound.body.one("prefix_cache") if bound and bound.body else None
    if written is not None and written.values.get("prefix_cache") is not True:
        written = None
    # the pool's own tiers over its engine's, kind by kind (each kind once in each)
    own = bound.body if bound else None
    if _twice(own.all("tier") if own else [], env):
        return None
    if kb is not None and kb is not own and _twice(kb.all("tier"), env):
        return None
    tiers = _tiers(kb.all("tier") if kb else [], values["prefix_cache"], env)
    if tiers is None:
        return None
    return ir.KvConfig(
        span=bound.span if bound else None,
        prefix_cache_written=written.span if written else None,
        tiers=tiers,
        **values,
    )


def _twice(bounds, env: Env) -> bool:
    """Whether a kind of tier is given twice among ``bounds`` (reported)."""
    seen: dict[str, Span] = {}
    for b in bounds:
        kind = b.get("kind")
        if kind in seen:
            env.rep.error(
                f"`tier {kind}` is given twice", b.span, Note("first given here", seen[kind])
            )
            return True
        if kind not in (None, BAD):
            seen[kind] = b.span
    return False


def _tiers(bounds, prefix_cache: bool, env: Env) -> tuple[ir.KvTier, ...] | None:
    """The pool's lower KV tiers, fastest first; None when one is wrong (reported)."""
    tiers: dict[str, ir.KvTier] = {}
    for b in bounds:
        kind, size = b.get("kind"), b.get("size")
        body = b.body
        bandwidth = body.value("bandwidth") if body else None
        write = body.value("write", default="back") if body else "back"
        if BAD in (kind, size, bandwidth, write) or None in (kind, size):
            return None
        if kind == "disk" and bandwidth is None:
            env.rep.error(
                "a `disk` tier needs its `bandwidth`: the drive's read rate, which no link "
                "of the topology says",
                b.span,
                help="e.g. `tier disk 4 TB { bandwidth 6 GB/s }` (a PCIe 4.0 NVMe drive)",
            )
            return None
        if not prefix_cache:
            env.rep.error(
                f"`tier {kind}` keeps prefix blocks: it needs `prefix_cache on`",
                b.span,
                help="add `prefix_cache on` to the kv block",
            )
            return None
        tiers[kind] = ir.KvTier(kind, size, bandwidth, write == "through", b.span)
    return tuple(tiers[k] for k in ir.TIER_KINDS if k in tiers)


def _unconnected(a: ir.Pool, b: ir.Pool, comp):
    """The first instance of ``a`` and of ``b`` (index, node) with no path between them: a
    prefill instance hands its KV to any decode instance, so each pair needs one."""
    for ia in a.instances:
        for ib in b.instances:
            na, nb = ia.gpus[0].node, ib.gpus[0].node
            if comp[na] != comp[nb]:
                return (ia.index, na), (ib.index, nb)
    return None


def _transfers(body: Bodies, pools: dict[str, ir.Pool], comp, env: Env):
    rep = env.rep
    out: list[ir.Transfer] = []
    seen: dict[tuple[str, str], Span] = {}
    ok = True
    for bound in body.all("transfer"):
        src, dst = bound.get("src"), bound.get("dst")
        if not isinstance(src, Val) or not isinstance(dst, Val):
            ok = False
            continue
        a, b = _pool_ref(src, pools, env), _pool_ref(dst, pools, env)
        if a is None or b is None:
            ok = False
            continue
        if a.role != "prefill":
            rep.error(
                f"a transfer starts at a prefill pool; `{a.name}` is {a.role}",
                src.span,
                help=f"give pool `{a.name}` `role prefill`",
            )
            ok = False
        if b.role != "decode":
            rep.error(
                f"a transfer ends at a decode pool; `{b.name}` is {b.role}",
                dst.span,
                help=f"give pool `{b.name}` `role decode`",
            )
            ok = False
        key = (a.name, b.name)
        if key in seen:
            rep.error(
                f"transfer `{a.name} -> {b.name}` is given twice",
                bound.span,
                Note("first given here", seen[key]),
            )
            ok = False
        seen[key] = bound.span
        cut = _unconnected(a, b, comp)
        if cut is not None:
            (ia, na), (ib, nb) = cut
            rep.error(
                f"no path from pool `{a.name}` to pool `{b.name}`: instance {ia} of "
                f"`{a.name}` is on {na}, instance {ib} of `{b.name}` on {nb}",
                bound.span,
                help=f"add a network, e.g. `network IB_400G between {na}, {nb}`, or place "
                "both pools where a link joins them",
            )
            ok = False
        direct = bound.body.value("direct_below", default=0) if bound.body else 0
        layerwise = bound.body.value("layerwise", default=False) if bound.body else False
        if BAD in (direct, layerwise):
            ok = False
            continue
        out.append(ir.Transfer(a.name, b.name, bound.span, direct, layerwise))
    for pool in pools.values():
        if pool.role == "prefill" and not any(t.src == pool.name for t in out) and ok:
            rep.error(
                f"prefill pool `{pool.name}` sends its KV nowhere",
                pool.span,
                help=f"add `transfer {pool.name} -> <decode pool>` to the deployment",
            )
            ok = False
        if pool.role == "decode" and not any(t.dst == pool.name for t in out) and ok:
            rep.error(
                f"decode pool `{pool.name}` receives no transfer",
                pool.span,
                help=f"add `transfer <prefill pool> -> {pool.name}` to the deployment",
            )
            ok = False
    return tuple(out) if ok else None


def _pool_ref(ref: Val, pools: dict[str, ir.Pool], env: Env) -> ir.Pool | None:
    if ref.value in pools:
        return pools[ref.value]
    env.rep.error(
        f"unknown pool `{ref.value}`",
        ref.span,
        Note(f"the deployment has {one_of(pools)}"),
        help=did_you_mean(ref.value, pools),
    )
    return None


def _autoscale(body: Bodies, pools: dict[str, ir.Pool], env: Env):
    """The deployment's autoscaled pools; None when a block is wrong (reported)."""
    out: dict[str, ir.Autoscale] = {}
    for bound in body.all("autoscale"):
        ref, ab = bound.get("pool"), bound.body
        if ref in (None, BAD) or ab is None:
            return None
        pool = _pool_ref(ref, pools, env)
        if pool is None:
            return None
        if pool.name in out:
            env.rep.error(
                f"pool `{pool.name}` is autoscaled twice",
                bound.span,
                Note("first here", out[pool.name].span),
            )
            return None
        n = len(pool.instances)
        low = ab.value("min", default=1)
        high = ab.value("max", default=n)
        start = ab.value("initial", default=low)
        times = [ab.value(k, default=d) for k, d in (("interval", 5.0), ("cooldown", 60.0))]
        startup = ab.value("startup")
        if BAD in (low, high, start, startup, *times) or startup is None:
            return None  # reported (`startup` is required)
        for key, value in (("min", low), ("max", high), ("initial", start)):
            if value > n:
                env.rep.error(
                    f"`{key} {value}` is more instances than pool `{pool.name}` has ({n})",
                    (ab.one(key) or bound).span,
                    help=f"the pool's `instances` are the most it may scale to: make them {value}",
                )
                return None
        if not low <= start <= high:
            env.rep.error(
                f"autoscaling of `{pool.name}` needs min <= initial <= max; it has "
                f"{low} <= {start} <= {high}",
                bound.span,
            )
            return None
        rules = []
        for rb in ab.all("when"):
            v = rb.values
            if BAD in v.values() or len(v) < 6:
                return None  # reported where it failed to match
            rules.append(
                ir.ScaleRule(
                    v["metric"],
                    v["side"] == ">",
                    v["value"],
                    v["for"],
                    v["action"] == "add",
                    v["count"],
                    rb.span,
                )  # fmt: skip
            )
        if not rules:
            return None  # reported: `when` is required
        out[pool.name] = ir.Autoscale(
            pool.name, low, high, start, tuple(rules), *times, startup, bound.span
        )
    return tuple(out.values())


def _default_route(pool: str | None) -> ir.Route:
    return ir.Route(pool, PolicyUse("routing", "round_robin", (), None), None)


def _routes(body: Bodies, pools: dict[str, ir.Pool], env: Env):
    rep = env.rep
    entry = [p for p in pools.values() if p.role != "decode"]
    given: dict[str | None, ir.Route] = {}
    ok = True
    for bound in body.all("route"):
        policy = bound.get("policy")
        ref = bound.get("pool")
        if policy in (None, BAD):
            ok = False
            continue
        pool = None
        if isinstance(ref, Val):
            target = _pool_ref(ref, pools, env)
            if target is None:
                ok = False
                continue
            pool = target.name
            if len(entry) > 1 and target.role != "decode":
                rep.error(
                    f"pool `{pool}` is one of {len(entry)} pools that receive arrivals; "
                    "they share one route",
                    ref.span,
                    help="write `route by <policy>` to route arrivals across all their instances",
                )
                ok = False
                continue
        elif len(entry) == 1:
            pool = entry[0].name
        if pool in given:
            rep.error(
                f"a route for {f'pool `{pool}`' if pool else 'arrivals'} is given twice",
                bound.span,
                Note("first given here", given[pool].span),
            )
            ok = False
            continue
        given[pool] = ir.Route(pool, policy, bound.span)
    if not ok:
        return None
    routes = [given.get(None) or _default_route(None)] if len(entry) > 1 else []
    routes += [
        given.get(p) or _default_route(p)
        for p in sorted(pools)
        if len(entry) == 1 or pools[p].role == "decode"
    ]
    return tuple(routes)
