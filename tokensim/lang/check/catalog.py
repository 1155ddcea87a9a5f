"""Definitions: ``link``, ``gpu`` and ``model`` blocks into IR."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from tokensim import ir
from tokensim.lang import ast
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note
from tokensim.lang.schema import BAD, Bodies, Bound, Val
from tokensim.lang.source import Span


def _sources(body: Bodies) -> tuple[str, ...]:
    return tuple(
        b.get("source").value for b in body.all("source") if isinstance(b.get("source"), Val)
    )


def _ok(*values) -> bool:
    return all(v is not BAD and v is not None for v in values)


def link(bound: Bound, env: Env) -> ir.Link | None:
    body = bound.body
    bw, lat = body.value("bandwidth"), body.value("latency")
    if not _ok(bw, lat):
        return None
    return ir.Link(bound.get("name"), bw, lat, _sources(body), bound.span)


# efficiency statements whose IR field carries a unit suffix
TIMES = {"overhead": "overhead_s", "kernel": "kernel_s"}
_COST_FILES = {"table": "an operator-timing table (CSV)", "calibrated": "a calibration (JSON)"}
_MAKE = {
    "table": "`tokensim import` and `tokensim profile` write tables tokensim reads",
    "calibrated": "`tokensim calibrate` writes calibrations tokensim reads",
}


def cost(bound: Bound | None, env: Env):
    """The :class:`ir.CostSpec` of a ``cost`` statement; None when there is none, BAD
    after reporting an error. A path is taken from the folder of the file it is in
    (a ``std/`` catalogue's: ``dsl/std``, shipped as the package ``tokensim.dsl``)."""
    if bound is None:
        return None
    kind, ref = bound.get("kind"), bound.get("path")
    if kind in (None, BAD):
        return BAD  # reported when the statement was matched
    if kind == "roofline":
        if ref is not None:
            env.rep.error(
                "`cost roofline` takes no file",
                ref.span,
                help='remove the path, or write `cost table "<csv>"` or `cost calibrated "<json>"`',
            )
            return BAD
        return ir.CostSpec("roofline", None, bound.span)
    if ref is None:
        end = bound.stmt.items[-1].span
        env.rep.error(
            f"`cost {kind}` needs a file: {_COST_FILES[kind]}",
            Span(end.file, end.end_line, end.end_col, end.end_line, end.end_col + 1),
            Note(f'usage: cost {kind} "<path>"'),
        )
        return BAD
    written = env.folder_of(ref.span) / ref.value  # as the user can find it, for messages
    path = written.resolve()
    if not path.is_file():
        env.rep.error(
            f"`{ref.value}` is a folder, not a file"
            if path.is_dir()
            else f"no such file `{ref.value}` for `cost {kind}`",
            ref.span,
            help=f"looked for {written}; a relative path is taken from the folder of the file "
            "the `cost` statement is in",
        )
        return BAD
    problem = _unusable(kind, path)
    if problem:
        env.rep.error(
            f"`{ref.value}` is not {_COST_FILES[kind]} tokensim can use: {problem}",
            ref.span,
            help=_MAKE[kind],
        )
        return BAD
    return ir.CostSpec(kind, str(path), bound.span)


def _unusable(kind: str, path: Path) -> str | None:
    """Why the file of ``cost <kind>`` cannot be used (it is read as the run will read it,
    once per process); None when it can. The shipped catalogues' files are tested with the
    package and not read here, so that a check stays fast."""
    if path.is_relative_to(Path(str(resources.files("tokensim.dsl")))):
        return None
    from tokensim.perf import backend, calibrate, tables

    try:
        backend.read_cost_file(kind, str(path))
    except (tables.TableError, calibrate.CalibrationError) as err:
        message = str(err)
        for prefix in (str(path), path.name):  # the error names the file; the span does here
            if message.startswith(prefix):
                message = message[len(prefix) :].lstrip(":").strip()
                if message[:1].isdigit():
                    message = "line " + message
                break
        return message
    return None


def gpu(bound: Bound, env: Env) -> ir.Gpu | None:
    body = bound.body
    memory, bandwidth = body.value("memory"), body.value("bandwidth")
    compute_body = body.one("compute")
    host_link = env.lookup("link", body.value("host_link"))
    compute: dict[str, float] = {}
    if compute_body is not None and compute_body.body is not None:
        for key, found in compute_body.body.by_key.items():
            value = found[0].get(key)
            if value is not BAD and value is not None:
                compute[key] = value
        if not compute_body.body.by_key:
            env.rep.error("`compute` lists no data type", compute_body.span)
    cost_spec = cost(body.one("cost"), env)
    if not _ok(memory, bandwidth, host_link) or not compute or cost_spec is BAD:
        return None
    power = body.one("power")
    draws = power.body if power is not None and power.body is not None else None
    idle = draws.value("idle") if draws else None
    memory_bound = draws.value("memory_bound") if draws else None
    top = body.value("power")
    if top is not None and memory_bound is not None and not idle <= memory_bound <= top:
        env.rep.error(
            f"gpu `{bound.get('name')}`: power draws must rise from idle ({idle:g} W) to "
            f"memory-bound ({memory_bound:g} W) to the board power ({top:g} W)",
            power.span,
        )
        return None
    eff = body.one("efficiency")
    given = {}
    if eff is not None and eff.body is not None:
        given = {key: eff.body.value(key) for key in eff.body.by_key}
        given = {TIMES.get(k, k): v for k, v in given.items() if v is not None}
    return ir.Gpu(
        name=bound.get("name"),
        memory_B=memory,
        bandwidth_Bps=bandwidth,
        compute_flops=tuple(sorted(compute.items())),
        host_link=host_link,
        efficiency=ir.Efficiency(**given),
        power_W=top,
        price_per_h=body.value("price"),
        sources=_sources(body),
        span=bound.span,
        cost=cost_spec or ir.ROOFLINE,
        measured_as=_measured_as(bound, env),
        idle_power_W=idle,
        memory_power_W=memory_bound,
    )


def _measured_as(bound: Bound, env: Env) -> str | None:
    """The GPU a derived GPU's calibration rows are under: its base's (None: its own)."""
    ref = bound.get("base")
    if not isinstance(ref, Val):
        return None
    base = env.lookup("gpu", ref)
    return None if base is None else base.measured_as or base.name


def count_params(
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    ffn: int,
    vocab: int,
    mlp: str,
    tied: bool,
    experts: int,
    mla: tuple[int, int, int, int] | None = None,
    shared_experts: int = 0,
    dense: tuple[int, int] = (0, 0),
) -> int:
    """Parameters implied by a model's shapes (norms included, biases ignored).

    ``mla``: (kv_lora_rank, q_lora_rank, rope_dim, v_dim) of multi-head latent attention
    (its down-projections, their norms, the up-projections and the output projection);
    ``shared_experts`` beside the routed ones in each MoE layer; ``dense``: (layers,
    ffn) of the dense first layers of a MoE model.
    """
    if mla:
        rank, q_rank, rope, v = mla
        qk = heads * (head_dim + rope)
        query = hidden * q_rank + q_rank + q_rank * qk if q_rank else hidden * qk
        latent = hidden * (rank + rope) + rank + rank * heads * (head_dim + v)
        attention = query + latent + heads * v * hidden
    else:
        attention = hidden * heads * head_dim * 2 + 2 * hidden * kv_heads * head_dim
    matrices = 3 if mlp == "gated" else 2
    dense_layers, dense_ffn = dense
    if experts > 1:
        moe = matrices * hidden * ffn * (experts + shared_experts) + hidden * experts
        mlps = (layers - dense_layers) * moe + dense_layers * matrices * hidden * dense_ffn
    else:
        mlps = layers * matrices * hidden * ffn
    embeddings = vocab * hidden * (1 if tied else 2)
    return embeddings + layers * (attention + 2 * hidden) + mlps + hidden


def model(bound: Bound, env: Env) -> ir.Model | None:
    body, rep = bound.body, env.rep
    name = bound.get("name")
    v = {k: body.value(k) for k in ("layers", "hidden", "heads", "ffn", "vocab", "max_context")}
    if not _ok(*v.values()):
        return None
    kv_heads = body.value("kv_heads", default=v["heads"])
    experts = body.value("experts", default=1)
    top_k = body.value("top_k", default=1 if experts == 1 else None)
    if not _ok(kv_heads, experts):
        return None
    head_dim = body.value("head_dim")
    if head_dim is None:
        if v["hidden"] % v["heads"]:
            rep.error(
                f"model `{name}`: hidden {v['hidden']} is not a multiple of heads {v['heads']}",
                bound.span,
                help="give `head_dim` explicitly",
            )
            return None
        head_dim = v["hidden"] // v["heads"]
    ok = head_dim is not BAD
    if kv_heads is not BAD and v["heads"] % kv_heads:
        rep.error(
            f"`heads` ({v['heads']}) must be a multiple of `kv_heads` ({kv_heads})",
            body.one("kv_heads").span,
        )
        ok = False
    if experts > 1 and top_k is None:
        rep.error(f"model `{name}` has {experts} experts but no `top_k`", bound.span)
        ok = False
    elif top_k is not BAD and top_k is not None and top_k > experts:
        rep.error(f"`top_k` ({top_k}) exceeds `experts` ({experts})", body.one("top_k").span)
        ok = False
    moe = _moe_extras(body, name, experts, v["layers"], rep)
    mla = _mla(body, head_dim)
    if not ok or moe is None or mla is BAD:
        return None
    shared, dense_layers, dense_ffn = moe
    window = body.value("window", default=0)
    window_layers = body.value("window_layers", default=v["layers"] if window else 0)
    expert_dtype = body.value("expert_dtype")
    if window_layers and not window:
        rep.error(
            "`window_layers` without `window`: how many tokens do those layers attend to?",
            body.one("window_layers").span,
            help="add `window <tokens>`",
        )
        return None
    if window_layers > v["layers"]:
        rep.error(
            f"`window_layers` ({window_layers}) exceeds `layers` ({v['layers']})",
            body.one("window_layers").span,
        )
        return None
    if expert_dtype and experts == 1:
        rep.error(
            f"model `{name}` is dense: `expert_dtype` is for a MoE model's routed experts",
            body.one("expert_dtype").span,
        )
        return None
    if mla:  # every head has its own key and value, decompressed from the shared latent
        kv_heads = v["heads"]
    mlp = body.value("mlp", default="gated")
    tied = body.value("tie_embeddings", default=False)
    params = count_params(
        v["layers"],
        v["hidden"],
        v["heads"],
        kv_heads,
        head_dim,
        v["ffn"],
        v["vocab"],
        mlp,
        tied,
        experts,
        mla,
        shared,
        (dense_layers, dense_ffn),
    )
    published = body.value("params")
    if published:
        off = abs(params - published) / published
        if off > 0.03:
            rep.error(
                f"model `{name}`: its shapes give {params / 1e9:.3g}B parameters, "
                f"but `params` says {published / 1e9:.3g}B ({off:.0%} off)",
                body.one("params").span,
                Note("shapes count embeddings, attention, MLP (x experts) and norms"),
                help="check layers, hidden, ffn, vocab, kv_heads and tie_embeddings",
            )
            return None
    return ir.Model(
        name=name,
        layers=v["layers"],
        hidden=v["hidden"],
        heads=v["heads"],
        kv_heads=kv_heads,
        head_dim=head_dim,
        ffn=v["ffn"],
        vocab=v["vocab"],
        max_context=v["max_context"],
        mlp=mlp,
        tie_embeddings=tied,
        experts=experts,
        top_k=top_k,
        params=params,
        published_params=published,
        dtype=body.value("dtype", default="bf16"),
        sources=_sources(body),
        span=bound.span,
        kv_lora_rank=mla[0] if mla else 0,
        q_lora_rank=mla[1] if mla else 0,
        rope_dim=mla[2] if mla else 0,
        v_dim=mla[3] if mla else 0,
        shared_experts=shared,
        dense_layers=dense_layers,
        dense_ffn=dense_ffn,
        window=window,
        window_layers=window_layers,
        expert_dtype=expert_dtype,
    )


def _moe_extras(body: Bodies, name: str, experts: int, layers: int, rep):
    """(shared experts, dense layers, their ffn) of a MoE model; None after an error."""
    shared = body.value("shared_experts", default=0)
    dense_layers = body.value("dense_layers", default=0)
    dense_ffn = body.value("dense_ffn", default=0)
    if BAD in (shared, dense_layers, dense_ffn):
        return None
    for key in ("shared_experts", "dense_layers", "dense_ffn"):
        if body.one(key) is not None and experts == 1:
            rep.error(f"`{key}` is for a MoE model; `{name}` has no `experts`", body.one(key).span)
            return None
    if dense_layers >= layers:
        rep.error(
            f"`dense_layers` ({dense_layers}) must leave MoE layers of the {layers}",
            body.one("dense_layers").span,
        )
        return None
    if bool(dense_layers) != bool(dense_ffn):
        given = "dense_layers" if dense_layers else "dense_ffn"
        other = "dense_ffn" if dense_layers else "dense_layers"
        rep.error(f"`{given}` needs `{other}`", body.one(given).span)
        return None
    return shared, dense_layers, dense_ffn


def _mla(body: Bodies, head_dim: int):
    """(kv_lora_rank, q_lora_rank, rope_dim, v_dim) of the model's ``mla`` block, None
    without one, BAD after an error."""
    bound = body.one("mla")
    if bound is None:
        return None
    mb = bound.body
    if mb is None:
        return BAD
    got = (
        mb.value("kv_lora_rank"),
        mb.value("q_lora_rank", default=0),
        mb.value("rope_dim"),
        mb.value("v_dim", default=head_dim),
    )
    if None in got or BAD in got:
        return BAD
    return got


# blocks whose statements a derived definition changes one by one (the rest it replaces)
_NESTED = {"compute", "efficiency", "mla"}
# a model's shapes: changing one makes the base's `params` (published count) not apply
_SHAPES = {"layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab", "experts", "mlp"}
_SHAPES |= {"tie_embeddings", "mla", "shared_experts", "dense_layers", "dense_ffn"}


def derive(
    kind: str, base: Sequence[ast.Statement], own: Sequence[ast.Statement]
) -> list[ast.Statement]:
    """The statements of ``kind NAME from BASE { own }``: ``base``'s with ``own`` laid on
    top key by key (``compute`` and ``efficiency`` entry by entry), the sources of both
    (its own first), and without the base's ``params`` when ``own`` changes a shape."""

    from tokensim.lang.check.engine import merge

    def keyed(stmts):
        return [x for x in stmts if x.key.text != "source"]

    kept = keyed(base)
    own_keys = {x.key.text for x in own}
    if kind == "model" and own_keys & _SHAPES and "params" not in own_keys:
        kept = [x for x in kept if x.key.text != "params"]
    sources = [x for x in own if x.key.text == "source"] + [
        x for x in base if x.key.text == "source"
    ]
    return sources + merge(kept, keyed(own), _NESTED)


# -- a model from a Hugging Face config.json ------------------------------------------------

# what a config.json names each statement (the first key present wins)
_CONFIG_KEYS = {
    "layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "hidden": ("hidden_size", "n_embd", "d_model"),
    "heads": ("num_attention_heads", "n_head"),
    "kv_heads": ("num_key_value_heads",),
    "head_dim": ("head_dim",),
    "vocab": ("vocab_size",),
    "max_context": ("max_position_embeddings", "n_positions", "max_sequence_length"),
}
# every key whose value must be a number (the shapes, the MLP width, the routing)
_CONFIG_NUMBERS = {k for keys in _CONFIG_KEYS.values() for k in keys} | {
    "intermediate_size",
    "ffn_dim",
    "n_inner",
    "moe_intermediate_size",
    "num_experts_per_tok",
    "n_routed_experts",
    "n_shared_experts",
    "shared_expert_intermediate_size",
    "first_k_dense_replace",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "intermediate_size_mlp",
    "attention_chunk_size",
}
_CONFIG_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
# what tokensim does not model, by the config key that says a model has it
_CONFIG_UNSUPPORTED = (
    ("layer_types", "layers of kinds other than full and sliding-window attention"),
    ("linear_num_value_heads", "linear attention"),
)
# the keys that say one MoE layer in so many: Qwen2-MoE's, DeepSeek's, Llama 4's
_CONFIG_MOE_STEP = ("decoder_sparse_step", "moe_layer_freq", "interleave_moe_layer_step")


def config_statements(ref: Val, env: Env, sources) -> list[ast.Statement] | None:
    """The statements of a model read from the Hugging Face ``config.json`` that ``ref``
    (a path string) names, as text tokensim parsed; None after reporting why not."""
    import json

    from tokensim.lang.diagnostics import CompileError
    from tokensim.lang.parse import parse

    path = (env.folder_of(ref.span) / ref.value).resolve()
    try:
        config = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        env.rep.error(
            f"no such file `{ref.value}`",
            ref.span,
            help=f"looked for {path}; a relative path is taken from the spec's folder",
        )
        return None
    except (OSError, UnicodeDecodeError) as err:
        env.rep.error(
            f"cannot read `{ref.value}`: {getattr(err, 'strerror', None) or err}", ref.span
        )
        return None
    except json.JSONDecodeError as err:
        env.rep.error(
            f"`{ref.value}` is not JSON: {err.msg} at line {err.lineno}, column {err.colno}",
            ref.span,
        )
        return None
    if not isinstance(config, dict):
        env.rep.error(f"`{ref.value}` is not a model's config.json (not an object)", ref.span)
        return None
    if isinstance(config.get("text_config"), dict):  # a multimodal model: its text model
        config = {
            **config["text_config"],
            "model_type": config["text_config"].get("model_type", config.get("model_type")),
        }
    for key, what in _CONFIG_UNSUPPORTED:
        if config.get(key) not in (None, 0, False, [], {}) and not _uniform(key, config):
            env.rep.error(
                f"`{ref.value}` describes {what}, which tokensim does not model",
                ref.span,
                Note(f"its config has `{key}`"),
            )
            return None
    interleaved = [k for k in _CONFIG_MOE_STEP if isinstance(config.get(k), int) and config[k] > 1]
    interleaved += ["mlp_only_layers"] * bool(config.get("mlp_only_layers"))
    if interleaved and config.get("first_k_dense_replace"):
        env.rep.error(
            f"`{ref.value}` describes dense layers both first and among the MoE layers, "
            "which tokensim does not model",
            ref.span,
            Note(f"its config has `{interleaved[0]}` and `first_k_dense_replace`"),
        )
        return None
    lines, missing = [], []
    for key in sorted(_CONFIG_NUMBERS & set(config)):
        value = config[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            env.rep.error(
                f"`{ref.value}`: `{key}` should be a number, found {json.dumps(value)[:40]}",
                ref.span,
            )
            return None
    for stmt, keys in _CONFIG_KEYS.items():
        value = next((config[k] for k in keys if config.get(k) is not None), None)
        if value is not None:
            lines.append(f"{stmt} {value}")
        elif stmt not in ("kv_heads", "head_dim"):
            missing.append(keys[0])
    experts = (
        config.get("num_local_experts")
        or config.get("num_experts")
        or config.get("n_routed_experts")
        or 1
    )
    if not isinstance(experts, int) or isinstance(experts, bool):
        env.rep.error(f"`{ref.value}`: the expert count should be a whole number", ref.span)
        return None
    if experts > 1 and not config.get("num_experts_per_tok"):
        env.rep.error(f"`{ref.value}` has {experts} experts but no `num_experts_per_tok`", ref.span)
        return None
    ffn = (config.get("moe_intermediate_size") if experts > 1 else None) or next(
        (config[k] for k in ("intermediate_size", "ffn_dim", "n_inner") if config.get(k)), None
    )
    if ffn is None:
        missing.append("intermediate_size")
    else:
        lines.append(f"ffn {ffn}")
    if missing:
        env.rep.error(
            f"`{ref.value}` has no `{missing[0]}`: not a config.json tokensim can read",
            ref.span,
            help="write the model's shapes in the block instead (see the language reference)",
        )
        return None
    if experts > 1:
        lines += [f"experts {experts}", f"top_k {config['num_experts_per_tok']}"]
        extra = _moe_config(ref, config, ffn, env)
        if extra is None:
            return None
        lines += extra
    window = _window_config(ref, config, env)
    if window is None:
        return None
    lines += window
    quant = config.get("quantization_config")
    if experts > 1 and isinstance(quant, dict) and quant.get("quant_method") == "mxfp4":
        lines.append("expert_dtype mxfp4")  # gpt-oss: the experts only
    if config.get("kv_lora_rank"):
        need = [k for k in ("qk_rope_head_dim", "qk_nope_head_dim") if not config.get(k)]
        if need:
            env.rep.error(
                f"`{ref.value}` has `kv_lora_rank` (multi-head latent attention) but no "
                f"`{need[0]}`",
                ref.span,
            )
            return None
        lines = [line for line in lines if not line.startswith("head_dim ")]
        lines += _mla_config(config)
    gated = config.get("model_type") not in ("opt", "gpt2", "gpt_neox", "bloom", "falcon")
    lines.append(f"mlp {'gated' if gated else 'plain'}")
    lines.append(f"tie_embeddings {'on' if config.get('tie_word_embeddings') else 'off'}")
    dtype = _CONFIG_DTYPES.get(str(config.get("torch_dtype") or config.get("dtype")))
    if dtype:
        lines.append(f"dtype {dtype}")
    lines.append(f'source "{path.name}: read from {ref.value}"')
    name = f"{ref.value} (as tokensim reads it)"
    try:
        return list(parse("\n".join(lines) + "\n", name, sources).statements)
    except CompileError as err:  # a value no statement takes (a float layer count...)
        env.rep.extend(err.diagnostics)
        return None


def _moe_config(ref: Val, config: dict, ffn: int, env: Env) -> list[str] | None:
    """The shared-expert and dense-layer statements of a MoE config; None after an error."""
    out = []
    shared = config.get("n_shared_experts") or 0
    width = config.get("shared_expert_intermediate_size") or 0
    if width:  # one shared expert of its own width (Qwen2-MoE): as that many routed widths
        if width % ffn:
            env.rep.error(
                f"`{ref.value}`: a shared expert of {width} is no whole number of experts of "
                f"{ffn}, which tokensim's `shared_experts` needs",
                ref.span,
            )
            return None
        shared = width // ffn
    if str(config.get("model_type", "")).startswith("llama4"):
        shared = 1  # every Llama 4 MoE layer has one shared expert beside the routed ones
    if shared:
        out.append(f"shared_experts {shared}")
    layers = config["num_hidden_layers"]
    dense = config.get("first_k_dense_replace") or 0
    step = next((config[k] for k in _CONFIG_MOE_STEP if isinstance(config.get(k), int)), 1)
    if step > 1:  # one MoE layer in `step`, the others dense
        dense = layers - layers // step
    only = config.get("mlp_only_layers")
    if isinstance(only, list) and only:
        dense = len(set(only))
    if dense:
        width = config.get("intermediate_size_mlp") or config.get("intermediate_size")
        out += [f"dense_layers {dense}", f"dense_ffn {width}"]
    return out


def _window_config(ref: Val, config: dict, env: Env) -> list[str] | None:
    """The ``window`` statements of a config with sliding-window or chunked attention
    (gpt-oss's ``layer_types``, Mistral's ``sliding_window``, Llama 4's
    ``attention_chunk_size``); None after an error."""
    layers = config["num_hidden_layers"]
    kinds = config.get("layer_types")
    chunk = config.get("attention_chunk_size")
    window = config.get("sliding_window")
    if isinstance(chunk, int) and chunk > 0:
        # Llama 4: the layers with rotary embedding attend within chunks; no_rope_layers
        # marks them 1 (default: every fourth layer is global)
        marks = config.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(layers)]
        return [f"window {chunk}", f"window_layers {sum(1 for m in marks if m)}"]
    if isinstance(kinds, list) and "sliding_attention" in kinds:
        if not isinstance(window, int) or window <= 0:
            env.rep.error(
                f"`{ref.value}` has sliding-window layers but no `sliding_window` size",
                ref.span,
            )
            return None
        return [f"window {window}", f"window_layers {kinds.count('sliding_attention')}"]
    if config.get("use_sliding_window", window is not None) and window:
        if not isinstance(window, int) or window <= 0:
            env.rep.error(f"`{ref.value}`: `sliding_window` should be a whole number", ref.span)
            return None
        if window >= config.get("max_position_embeddings", 0):
            return []  # a window as long as any sequence: full attention
        return [f"window {window}"]
    return []


def _mla_config(config: dict) -> list[str]:
    """The model statements of a config with multi-head latent attention (DeepSeek's keys);
    its ``head_dim`` is each head's part without rotary embedding."""
    out = [f"head_dim {config['qk_nope_head_dim']}"]
    block = [f"kv_lora_rank {config['kv_lora_rank']}", f"rope_dim {config['qk_rope_head_dim']}"]
    if config.get("q_lora_rank"):
        block.append(f"q_lora_rank {config['q_lora_rank']}")
    if config.get("v_head_dim"):
        block.append(f"v_dim {config['v_head_dim']}")
    return out + ["mla { " + "; ".join(block) + " }"]


def _uniform(key: str, config: dict) -> bool:
    """Whether ``key`` says nothing tokensim misses: every layer of one plain kind."""
    if key != "layer_types":
        return False
    return set(config[key]) <= {"full_attention", "sliding_attention"}
