"""The schema of every block of the language, as data (see :mod:`tokensim.lang.schema`).

This module is the single source of what a statement takes; the checker
binds against it and ``docs/reference`` is generated from it.
"""

from __future__ import annotations

import dataclasses
import operator
import re

from tokensim.ir import COST_KINDS, DTYPE_BYTES, SCALE_METRICS, TIER_KINDS, Efficiency
from tokensim.lang import ast, limits
from tokensim.lang.diagnostics import Note, did_you_mean
from tokensim.lang.schema import (
    BAD,
    Attr,
    Block,
    Bool,
    ListOf,
    Lit,
    Num,
    Opt,
    Ref,
    Shape,
    Slot,
    Str,
    Val,
    Word,
    _item,
    _word,
)
from tokensim.lang.units import Dim
from tokensim.policies import PolicySlot
from tokensim.policies.batching import BATCHING
from tokensim.policies.memory import PREEMPT
from tokensim.policies.routing import ROUTING, RouteSlot
from tokensim.policies.workload import ARRIVALS, LENGTHS, TRACE_FORMATS

DTYPES = tuple(DTYPE_BYTES)
ROLES = ("colocated", "prefill", "decode")
DEFAULT_ENGINE = "vllm_v1"  # the engine of a pool that names none
METRICS = ("ttft", "tpot", "itl", "e2e", "queue")


class Place(Slot):
    """A placement item: a node (all its GPUs) or ``node[i]`` / ``node[i..j]``."""

    name = "place"

    def usage(self) -> str:
        return "<node>[<first>..<last>]"

    def match(self, items, i, rep):
        item = _item(items, i)
        if isinstance(item, ast.Path) and len(item.parts) == 1:
            return Val((item.parts[0], None, None), item.span), i + 1
        if isinstance(item, ast.Slice):
            bounds = []
            for q in (item.first, item.last):
                if q.unit or not q.number.is_integer() or q.number < 0:
                    rep.error(f"a GPU index is a whole number >= 0, found `{q.text}`", q.span)
                    return BAD, i + 1
                bounds.append(int(q.number))
            if bounds[1] < bounds[0]:
                rep.error(f"empty GPU range `{item.first.text}..{item.last.text}`", item.span)
                return BAD, i + 1
            return Val((item.name, bounds[0], bounds[1]), item.span), i + 1
        raise Shape(item)


class Stat(Slot):
    """A statistic: ``mean``, ``p50``, ``p90``, ``p99``, ``p99.9``..."""

    name = "stat"
    _pattern = re.compile(r"p(\d{1,2}(\.\d+)?)$")

    def usage(self) -> str:
        return "mean|p50|p90|p99|p<N>"

    def match(self, items, i, rep):
        item = _item(items, i)
        word = item.parts[0] if isinstance(item, ast.Path) and len(item.parts) == 1 else None
        if word is None:
            raise Shape(item)
        if word == "mean" or self._pattern.match(word.replace("_", ".")):
            return word.replace("_", "."), i + 1
        rep.error(
            f"unknown statistic `{word}`",
            item.span,
            Note("expected `mean` or a percentile such as `p50`, `p90`, `p99`"),
            help=did_you_mean(word, ["mean", "p50", "p90", "p99"]),
        )
        return BAD, i + 1


class Compare(Slot):
    """``<`` or ``<=``."""

    name = "op"

    def usage(self) -> str:
        return "<|<="

    def match(self, items, i, rep):
        item = _item(items, i)
        if isinstance(item, ast.Symbol) and item.text in ("<", "<="):
            return item.text, i + 1
        if isinstance(item, ast.Symbol) and item.text in (">", ">="):
            rep.error("an SLO is an upper bound: write `<` or `<=`", item.span)
            return BAD, i + 1
        raise Shape(item)


@dataclasses.dataclass(frozen=True)
class GpuCondition:
    """Which GPUs an engine's ``on_gpu`` block holds on: those named (``gpus``), or those
    whose device memory compares with ``memory_B`` by ``op`` (``memory < 35 GiB``)."""

    gpus: tuple[str, ...] = ()
    op: str = ""
    memory_B: float = 0.0
    text: str = ""
    refs: tuple[Val, ...] = dataclasses.field(default=(), compare=False)  # names, where written

    def holds(self, name: str | None, memory_B: float | None) -> bool:
        """Whether a GPU called ``name`` with ``memory_B`` of device memory matches (None:
        no GPU known, which matches no condition)."""
        if self.gpus:
            return name in self.gpus
        if memory_B is None:
            return False
        return _OPS[self.op](memory_B, self.memory_B)


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class OnGpu(Slot):
    """``<gpu>, ...`` or ``memory <op> <bytes>``: the GPUs an ``on_gpu`` block holds on."""

    name = "gpus"

    def usage(self) -> str:
        return "<gpu>, ...|memory <|<=|>|>= <bytes>"

    def match(self, items, i, rep):
        first = _item(items, i)
        if isinstance(first, ast.Path) and first.text == "memory":
            if i + 1 >= len(items):
                rep.error(
                    "`on_gpu memory` needs a comparison, e.g. `on_gpu memory < 35 GiB`",
                    first.span,
                )
                return BAD, len(items)
            op = items[i + 1]
            if not isinstance(op, ast.Symbol) or op.text not in _OPS:
                rep.error(
                    "`on_gpu memory` compares the GPU's memory: write `<`, `<=`, `>` or `>=`",
                    op.span,
                )
                return BAD, len(items)
            size, j = Num("memory", Dim.BYTES, above=0).match(items, i + 2, rep)
            if size is BAD:
                return BAD, j
            text = f"memory {op.text} {items[i + 2].text}"
            return Val(GpuCondition(op=op.text, memory_B=float(size), text=text), first.span), j
        refs, j = ListOf("gpus", Ref("gpu", "gpu")).match(items, i, rep)
        span = refs[0].span
        names = tuple(r.value for r in refs)
        return Val(GpuCondition(gpus=names, text=", ".join(names), refs=refs), span), j


def _parallel(name: str) -> Num:
    return Num(name, integer=True, min=1, max=limits.PARALLEL, limit=True)


def _words(name: str, choices, what: str) -> Word:
    return Word(name, tuple(choices), what)


def _named(key: str, body: Block, doc: str, required: bool = False) -> Attr:
    """``key <name> { body }``, repeatable: a definition, a node, a pool."""
    return Attr(
        key,
        (Word("name", what=f"{key} name"),),
        doc,
        body=body,
        body_required=True,
        repeat=True,
        required=required,
    )


@dataclasses.dataclass(frozen=True)
class ConfigFile:
    """``model NAME from "config.json"``: the Hugging Face config file a model is read from."""

    path: str


@dataclasses.dataclass(frozen=True)
class Base(Slot):
    """What a definition is made from: another definition's name, or (``files``) the path
    of a file it is read from, a :class:`Val` of :class:`ConfigFile`."""

    name: str
    kind: str
    files: bool = False

    def usage(self) -> str:
        return f"<{self.kind}>" + (' | "<config.json>"' if self.files else "")

    def match(self, items, i, rep):
        item = _item(items, i)
        if self.files and isinstance(item, ast.String):
            return Val(ConfigFile(item.value), item.span), i + 1
        return Ref(self.name, self.kind).match(items, i, rep)


def _derivable(key: str, body: Block, doc: str) -> Attr:
    """``key <name> [from <base>] { body }``: a definition, whole or as another's statements
    changed by these (a model: or read from a Hugging Face config.json)."""
    files = key == "model"
    also = ', or `from "config.json"`: read from a Hugging Face config' if files else ""
    return Attr(
        key,
        (Word("name", what=f"{key} name"), Opt((Lit("from"), Base("base", key, files)))),
        f"{doc} (`from <{key}>`: its statements, changed by these{also})",
        body=body,
        body_required=True,
        repeat=True,
    )


SOURCE = Attr(
    "source", (Str("source"),), "where the figures of this definition come from", repeat=True
)

LINK = Block(
    "link",
    (
        SOURCE,
        Attr(
            "bandwidth",
            (Num("bandwidth", Dim.BANDWIDTH, above=0),),
            "bandwidth per direction per endpoint",
            required=True,
        ),
        Attr("latency", (Num("latency", Dim.TIME, min=0),), "latency per hop", required=True),
    ),
    "A kind of link or network.",
)

COMPUTE = Block(
    "compute",
    tuple(Attr(d, (Num(d, Dim.COMPUTE, above=0),), f"dense peak {d} throughput") for d in DTYPES),
    "Dense peak throughput per data type.",
)

_EFF = {f.name: f.default for f in dataclasses.fields(Efficiency)}
_FRACTIONS = {
    "gemm": "achieved share of peak compute in large matrix multiplies",
    "attention": "achieved share of peak compute in prefill attention",
    "memory": "achieved share of memory bandwidth streaming weights",
    "kv_read": "achieved share of memory bandwidth reading the KV cache in decode",
    "network": "achieved share of link bandwidth in collectives and transfers",
}

EFFICIENCY = Block(
    "efficiency",
    (
        *(
            Attr(k, (Num(k, Dim.FRACTION, above=0, max=1),), doc, default=f"{_EFF[k]:g}")
            for k, doc in _FRACTIONS.items()
        ),
        Attr(
            "kernel",
            (Num("kernel", Dim.TIME, min=0),),
            "fixed time of every kernel an op launches (launch and ramp)",
            default=f"{_EFF['kernel_s'] * 1e6:g} us",
        ),
        Attr(
            "overhead",
            (Num("overhead", Dim.TIME, min=0),),
            "fixed time per iteration (scheduling, sampling)",
            default=f"{_EFF['overhead_s']:g} s",
        ),
    ),
    "Achieved fractions of peak: what the roofline cost model multiplies the peaks by.",
)


def _cost(doc: str, default: str) -> Attr:
    """``cost roofline`` / ``cost table "<path>"`` / ``cost calibrated "<path>"``."""
    return Attr(
        "cost",
        (_words("kind", COST_KINDS, "cost model"), Opt((Str("path"),))),
        doc,
        default=default,
    )


GPU = Block(
    "gpu",
    (
        SOURCE,
        Attr("memory", (Num("memory", Dim.BYTES, above=0),), "device memory", required=True),
        Attr(
            "bandwidth",
            (Num("bandwidth", Dim.BANDWIDTH, above=0),),
            "memory bandwidth",
            required=True,
        ),
        Attr(
            "compute",
            (),
            "dense peak throughput per data type",
            body=COMPUTE,
            body_required=True,
            required=True,
        ),
        Attr(
            "host_link", (Ref("host_link", "link"),), "the link to the host (PCIe)", required=True
        ),
        Attr(
            "efficiency",
            (),
            "achieved fractions of peak, for the cost model",
            body=EFFICIENCY,
            body_required=True,
            default="the efficiency block's defaults",
        ),
        _cost(
            "the cost model that times iterations: the roofline, measured operator tables "
            "(a CSV file) or the roofline calibrated by `tokensim calibrate` (a JSON file)",
            "roofline",
        ),
        Attr(
            "power",
            (Num("power", Dim.POWER, above=0),),
            "board power: what compute-bound work draws; in braces, what an idle GPU "
            "(initialised, running nothing) and memory-bound work draw, which energy needs",
            body=Block(
                "power",
                (
                    Attr(
                        "idle",
                        (Num("idle", Dim.POWER, min=0),),
                        "an initialised GPU running nothing (a serving engine's CUDA context up)",
                        required=True,
                    ),
                    Attr(
                        "memory_bound",
                        (Num("memory_bound", Dim.POWER, above=0),),
                        "memory-bound work: decode steps at small batches",
                        required=True,
                    ),
                ),
                "What the GPU draws besides its board power.",
            ),
        ),
        Attr("price", (Num("price", Dim.PRICE, min=0),), "price per GPU-hour"),
    ),
    "A kind of accelerator.",
)

MLA = Block(
    "mla",
    tuple(
        Attr(k, (Num(k, integer=True, min=1),), doc, required=default is None, default=default)
        for k, doc, default in [
            ("kv_lora_rank", "the latent keys and values are cached as, per token and layer", None),
            (
                "rope_dim",
                "the rotary part of each query and key head, its key cached beside the latent",
                None,
            ),
            ("q_lora_rank", "the query's compression", "none: one full query projection"),
            ("v_dim", "each head's value size", "the model's head_dim"),
        ]
    ),
    "Multi-head latent attention (DeepSeek-V2/V3, Kimi K2): each head's query and key are "
    "`head_dim` (the model's, without rotary part) plus `rope_dim`.",
)

MODEL = Block(
    "model",
    (
        SOURCE,
        *(
            Attr(k, (Num(k, integer=True, min=1),), doc, required=req)
            for k, doc, req in [
                ("layers", "transformer layers", True),
                ("hidden", "hidden size", True),
                ("heads", "attention (query) heads", True),
                ("kv_heads", "key/value heads (GQA); equal to heads for MHA", False),
                ("head_dim", "size of one head; hidden / heads when absent", False),
                ("ffn", "MLP intermediate size (per expert)", True),
                ("vocab", "vocabulary size", True),
                ("max_context", "longest sequence (prompt + output) in tokens", True),
                ("experts", "MoE experts per layer (1: dense)", False),
                ("top_k", "experts each token uses", False),
                ("shared_experts", "MoE: experts every token also uses (each of `ffn`)", False),
                ("dense_layers", "MoE: the first layers, with a dense MLP of `dense_ffn`", False),
                ("dense_ffn", "MoE: the MLP intermediate size of the dense layers", False),
            ]
        ),
        Attr(
            "window",
            (Num("window", Dim.TOKENS, integer=True, min=1),),
            "sliding-window attention (or chunked, priced as a window of the chunk): the "
            "layers of `window_layers` attend to the last `window` tokens only",
            default="none: every layer attends to the whole context",
        ),
        Attr(
            "window_layers",
            (Num("window_layers", integer=True, min=1),),
            "how many of the layers attend within `window`",
            default="every layer, with `window`",
        ),
        Attr(
            "expert_dtype",
            (_words("expert_dtype", DTYPES, "data type"),),
            "the routed experts' weights, whatever the pool's dtype (gpt-oss ships them in "
            "4-bit MXFP4 beside 16-bit attention); they compute at the pool's dtype",
            default="the pool's dtype",
        ),
        Attr(
            "mla",
            (),
            "multi-head latent attention: keys and values cached as one latent per token",
            body=MLA,
            body_required=True,
            default="none: grouped-query attention",
        ),
        Attr(
            "mlp",
            (_words("mlp", ("gated", "plain"), "MLP kind"),),
            "gated: 3 matrices (SwiGLU); plain: 2",
            default="gated",
        ),
        Attr(
            "tie_embeddings",
            (Bool("tie_embeddings"),),
            "LM head shares the embedding",
            default="off",
        ),
        Attr("params", (Num("params", above=0),), "published parameter count, to cross-check"),
        Attr(
            "dtype",
            (_words("dtype", DTYPES, "data type"),),
            "default weight data type",
            default="bf16",
        ),
    ),
    "A transformer model's shapes.",
)

NODE = Block(
    "node",
    (
        Attr(
            "gpus",
            (
                Ref("gpu", "gpu"),
                Lit("x"),
                Num("count", integer=True, min=1, max=limits.GPUS_PER_NODE, limit=True),
            ),
            "the node's GPUs",
            required=True,
        ),
        Attr("link", (Ref("link", "link"),), "the link between the node's GPUs"),
        Attr(
            "host_link",
            (Ref("host_link", "link"),),
            "GPU-to-host link",
            default="the GPU's host_link",
        ),
        Attr(
            "nics",
            (Num("nics", integer=True, min=1, max=limits.NICS, limit=True),),
            "network interfaces",
            default="1",
        ),
        Attr("host_memory", (Num("host_memory", Dim.BYTES, above=0),), "host memory"),
    ),
    "A machine.",
)

CLUSTER = Block(
    "cluster",
    (
        _named("node", NODE, "a machine"),
        Attr(
            "network",
            (Ref("link", "link"), Lit("between"), ListOf("nodes", Ref("node", "node"))),
            "a network joining nodes",
            repeat=True,
        ),
    ),
    "The hardware.",
)

TIER = Block(
    "tier",
    (
        Attr(
            "bandwidth",
            (Num("bandwidth", Dim.BANDWIDTH, above=0),),
            "the tier's own rate, for an instance (a disk's read rate, a store's share); "
            "the links on the way bound it too",
            default="the links' (required for `disk`)",
        ),
        Attr(
            "write",
            (_words("write", ("back", "through"), "write policy"),),
            "`back`: a block enters when the tier above evicts it; `through`: as soon as it "
            "is computed (LMCache, Mooncake store)",
            default="back",
        ),
    ),
    "A lower KV tier.",
)

KV = Block(
    "kv",
    (
        Attr(
            "block",
            (Num("block", Dim.TOKENS, integer=True, min=1),),
            "tokens per KV block",
            default="16 tokens",
        ),
        Attr(
            "gpu_util",
            (Num("gpu_util", Dim.FRACTION, above=0, max=1),),
            "share of GPU memory for weights + KV",
            default="0.9",
        ),
        Attr(
            "preempt",
            (_words("preempt", PREEMPT.names(), "preemption policy"),),
            "what happens when blocks run out",
            default="recompute",
        ),
        Attr(
            "prefix_cache", (Bool("prefix_cache"),), "reuse cached prompt prefixes", default="off"
        ),
        Attr(
            "swap", (Num("swap", Dim.BYTES, min=0),), "host swap space per instance", default="0 B"
        ),
        Attr(
            "dtype",
            (_words("dtype", DTYPES, "data type"),),
            "KV-cache data type",
            default="the pool's dtype; bf16 for 8- and 4-bit weights",
        ),
        Attr(
            "watermark",
            (Num("watermark", Dim.FRACTION, min=0, max=1),),
            "blocks kept free when admitting",
            default="0.01",
        ),
        Attr(
            "tier",
            (_words("kind", TIER_KINDS, "KV tier"), Num("size", Dim.BYTES, above=0)),
            "a lower tier under the prefix cache that keeps the KV blocks it evicts, and "
            "loads them back for a prompt that starts with them: `host` memory or a local "
            "`disk` per instance, reached over its GPUs' host links, or a `remote` store "
            "shared by the pool's instances, reached through their NICs (needs "
            "`prefix_cache on`)",
            body=TIER,
            repeat=True,
            default="none",
        ),
    ),
    "KV-cache memory policy of a pool.",
)


def _times(pairs) -> tuple[Attr, ...]:
    """Attributes that each take a time, 0 s unless written: ``(name, doc)`` pairs."""
    return tuple(Attr(k, (Num(k, Dim.TIME, min=0),), doc, default="0 s") for k, doc in pairs)


HOST = Block(
    "host",
    _times(
        [
            ("iteration", "CPU time per scheduling: schedule, prepare inputs, sample, outputs"),
            ("per_seq", "CPU time per sequence in the batch, every step (multi-step too)"),
            ("per_prefill_token", "CPU time per prompt token computed"),
            ("per_rank", "CPU time per GPU of the instance beyond the first (worker broadcast)"),
            ("per_layer", "launch time of one layer's kernels when an iteration runs eager"),
        ]
    ),
    "The serving engine's CPU time around each iteration.",
)

FRONTEND = Block(
    "frontend",
    (
        *_times(
            [
                (
                    "per_request",
                    "time to take in one request (HTTP, parsing, queueing to the engine)",
                ),
                ("per_input_token", "time per prompt token (tokenization)"),
            ]
        ),
        Attr(
            "workers",
            (Num("workers", integer=True, min=1),),
            "API servers (request r is handled by server r mod workers)",
            default="1",
        ),
        *_times(
            [
                (
                    "per_output_token",
                    "time per output token (detokenizing, streaming), on the same servers that "
                    "take requests in: a client sees a token when its server has streamed it",
                ),
                (
                    "latency",
                    "time every request takes before the servers take it in, holding up no "
                    "other one (the client, the network)",
                ),
            ]
        ),
        Attr(
            "shares_cpu",
            (Bool("shares_cpu"),),
            "the API server runs in the engine's process: the engine starts no step while "
            "it is taking requests in",
            default="off",
        ),
        Attr(
            "concurrent",
            (Bool("concurrent"),),
            "an asynchronous server: the requests being taken in share it equally (each "
            "request's handler runs in turns) instead of queueing, apart from the streaming; "
            "a burst of n requests reaches the engine together, n x a request's time after "
            "it arrived",
            default="off",
        ),
        Attr(
            "batches",
            (Bool("batches"),),
            "the server hands requests to the engine's process in batches: those that "
            "reached it before it started on them, once it has taken them all in (an "
            "asynchronous server whose task forwarding them takes its turn after every "
            "request handler that was ready: vLLM 0.5.5-0.6.1); the engine is not held up",
            default="off",
        ),
    ),
    "The API server in front of each instance's engine (every instance runs its own): "
    "servers that take requests in and stream tokens out, first come first served; the "
    "engine waits for them only when they share its CPU (`shares_cpu`).",
)

RESERVE = Block(
    "reserve_output",
    (
        Attr(
            "share",
            (Num("share", Dim.FRACTION, min=0, max=1),),
            "share of each running request's remaining output held back (a request "
            "admitted in the same scheduling counts whole)",
            default="1",
        ),
        Attr(
            "min_share",
            (Num("min_share", Dim.FRACTION, min=0, max=1),),
            "the share decays to this, one step of `decay_steps` per decode step, and "
            "returns to `share` when the engine idles",
            default="`share` (no decay)",
        ),
        Attr(
            "decay_steps",
            (Num("decay_steps", integer=True, min=1),),
            "decode steps the share takes to fall from `share` to `min_share`",
            default="none",
        ),
        Attr(
            "clip",
            (Num("clip", Dim.TOKENS, integer=True, min=1),),
            "a request's remaining output counts up to this many tokens",
            default="no limit",
        ),
        Attr(
            "retract_steps",
            (Num("retract_steps", integer=True, min=0),),
            "after a decode step runs out of KV, the share becomes the batch's generated "
            "tokens plus this many per sequence, over its outputs",
            default="0",
        ),
    ),
    "How much KV an engine holds back for the outputs to come when it admits a request.",
)

KERNELS = Block(
    "kernels",
    tuple(
        Attr(k, (Num(k, above=0),), f"multiplies the cost model's {what}", default="1")
        for k, what in [
            ("gemm", "GEMM times (projections, MLP, experts, LM head)"),
            ("attention", "attention times (prefill and decode)"),
            ("allreduce", "tensor-parallel all-reduce times"),
            ("elementwise", "norm, residual, rotary and activation times"),
        ]
    ),
    "This engine's kernels against the cost model's: a time multiplier per op class.",
)


def _engine_block(kind: str, with_gpus: bool) -> Block:
    """The statements of an engine definition (``with_gpus``: also ``on_gpu``), or of the
    overrides a pool writes after ``engine <name>``."""
    attrs = [
        Attr(
            "batching",
            (PolicySlot("batching", BATCHING),),
            "the local scheduler pools of this engine use unless they set their own",
            default="continuous",
            body=Block("batching", ()),
            custom_body=True,
        ),
        Attr(
            "kv",
            (),
            "KV-cache defaults (a pool's `kv` statements override them)",
            body=KV,
            body_required=True,
        ),  # fmt: skip
        Attr(
            "memory",
            (_words("memory", ("total", "static", "free"), "memory rule"),),
            "what `kv.gpu_util` is a share of: `total` device memory, holding the weights, "
            "the activations and the KV cache (vLLM); `static`: of the device too, holding "
            "the weights and the KV cache, the activations using the rest (SGLang's "
            "mem_fraction_static); or the memory `free` once weights and activations are "
            "placed (TensorRT-LLM)",
            default="total",
        ),
        Attr(
            "cuda_graphs",
            (CudaGraphs(),),
            "the most tokens an iteration may have to run from a captured CUDA graph "
            "(larger ones run eager); `off`: always eager",
            default="off",
        ),
        Attr(
            "graph_prefill",
            (Bool("graph_prefill"),),
            "iterations with prompt tokens may run from graphs (piecewise graphs)",
            default="off",
        ),
        Attr(
            "scheduler_steps",
            (Num("scheduler_steps", integer=True, min=1),),
            "decode steps per scheduling (multi-step): new requests join, and tokens "
            "leave, at the end of a window",
            default="1",
        ),
        Attr(
            "async_scheduling",
            (Bool("async_scheduling"),),
            "the next step is scheduled while the GPU runs this one (host time overlaps)",
            default="off",
        ),
        Attr(
            "async_output",
            (Bool("async_output"),),
            "a step's outputs are processed while the next step runs and reach the front "
            "end when it ends: a prompt's first token waits for the step after its prefill "
            "(vLLM V0's asynchronous output processor)",
            default="off",
        ),
        Attr(
            "reserve_output",
            (Opt((Bool("reserve_output"),)),),
            "admit a request only when the KV of its whole output fits too, beside the "
            "outputs still to come of the requests running (`on`: all of them, so nothing "
            "is ever preempted; a block says how much of them)",
            default="off",
            body=RESERVE,
        ),
        Attr(
            "fp8_gemm",
            (_words("fp8_gemm", ("profiled", "native"), "8-bit GEMM path"),),
            "how 8-bit (fp8, int8) GEMMs are priced from a measured cost profile: "
            "`profiled`, as its 8-bit rows (vLLM's own path, which NVIDIA's tables measure "
            "slower than bf16); `native`, as its 16-bit rows scaled by the roofline's 8-bit "
            "gain (dedicated 8-bit kernels, as TensorRT-LLM and SGLang run)",
            default="profiled",
        ),
        Attr(
            "stream",
            (Num("stream", Dim.TOKENS, integer=True, min=1),),
            "tokens a client receives at once",
            default="`scheduler_steps` tokens",
        ),
        Attr("host", (), "CPU time around each iteration", body=HOST, body_required=True),
        Attr("frontend", (), "the API server's queue", body=FRONTEND, body_required=True),
        Attr("kernels", (), "time multipliers per op class", body=KERNELS, body_required=True),
    ]
    if with_gpus:
        attrs.insert(0, SOURCE)
        attrs.insert(1, Attr("version", (Str("version"),), "the engine version described"))
        attrs.append(
            Attr(
                "on_gpu",
                (OnGpu(),),
                "engine statements that hold on these GPUs only, named or by their memory"
                " (defaults that depend on the GPU)",
                repeat=True,
                body=Block("on_gpu", tuple(attrs[2:])),
                body_required=True,
            )
        )
    return Block(kind, tuple(attrs), "A serving engine: scheduler semantics and host costs.")


class CudaGraphs(Slot):
    """``cuda_graphs 512`` (tokens) or ``cuda_graphs off``."""

    name = "cuda_graphs"

    def usage(self) -> str:
        return "<tokens>|off"

    def match(self, items, i, rep):
        item = _item(items, i)
        if isinstance(item, ast.Path) and item.parts == ("off",):
            return 0, i + 1
        return Num("cuda_graphs", Dim.TOKENS, integer=True, min=1).match(items, i, rep)


ENGINE = _engine_block("engine", with_gpus=True)
ENGINE_OVERRIDES = _engine_block("engine", with_gpus=False)


def _engine_use(doc: str, default: str) -> Attr:
    """``engine [<name>] [{ statements }]`` in a deployment or a pool."""
    return Attr(
        "engine", (Opt((Ref("engine", "engine"),)),), doc, default=default, body=ENGINE_OVERRIDES
    )


SPECULATIVE = Block(
    "speculative",
    (
        Attr(
            "tokens",
            (Num("tokens", integer=True, min=1, max=64),),
            "tokens proposed a step (vLLM's num_speculative_tokens)",
            required=True,
        ),
        Attr(
            "acceptance",
            (ListOf("acceptance", Num("acceptance", Dim.FRACTION, min=0, below=1)),),
            "the chance that a proposed token is accepted, given the ones before it were: "
            "one for every position, or one a position (`tokens` of them)",
            required=True,
        ),
    ),
    "Speculative decoding.",
)

EXPERT_PARALLEL = Block(
    "ep",
    (
        Attr(
            "imbalance",
            (Num("imbalance", min=1, max=16),),
            "the busiest GPU's routed tokens over the mean's, beyond the spread a uniform "
            "router gives (measured expert skew; EPLB brings it toward 1)",
            default="1",
        ),
        Attr(
            "redundant",
            (Num("redundant", integer=True, min=0, max=4096),),
            "extra copies of hot experts (EPLB), spread with the others: each GPU holds "
            "(experts + redundant) / ep",
            default="0",
        ),
        Attr(
            "dispatch",
            (_words("dispatch", ("fp8", "bf16"), "dispatch data type"),),
            "the data type tokens are dispatched to their experts in (the combine is bf16)",
            default="fp8 when the pool computes in 8 bits, else bf16",
        ),
        Attr(
            "all_to_all",
            (_words("all_to_all", ("auto", "hierarchical", "direct"), "all-to-all kind"),),
            "`hierarchical`: a token crosses the network once for each other node its experts "
            "are on, then the GPU link (DeepEP normal); `direct`: once for each GPU (DeepEP "
            "low-latency); `auto`: hierarchical for batches that prefill, direct for decode",
            default="auto",
        ),
        Attr(
            "overlap",
            (Bool("overlap"),),
            "split each batch in two and hide one half's all-to-all behind the other's "
            "compute (SGLang's two-batch overlap)",
            default="off",
        ),
    ),
    "Expert parallelism.",
)

POOL = Block(
    "pool",
    (
        Attr(
            "model",
            (Ref("model", "model"), Opt((_words("dtype", DTYPES, "data type"),))),
            "the model served, optionally with its dtype",
            required=True,
        ),
        Attr(
            "dtype",
            (_words("dtype", DTYPES, "data type"),),
            "weight and compute data type",
            default="the model's dtype",
        ),
        Attr(
            "instances",
            (Num("instances", integer=True, min=1, max=limits.INSTANCES, limit=True),),
            "replicas",
            default="1",
        ),
        Attr("tp", (_parallel("tp"),), "tensor-parallel degree", default="1"),
        Attr("pp", (_parallel("pp"),), "pipeline-parallel degree", default="1"),
        Attr(
            "microbatches",
            (_parallel("microbatches"),),
            "batches an instance keeps in flight through its `pp` stages (vLLM's virtual "
            "engines): each stage works on one while the others are on the rest, each batch "
            "with its own sequences and share of the KV cache; 1 runs a batch through every "
            "stage before the next starts",
            default="pp",
        ),
        Attr(
            "dp",
            (_parallel("dp"),),
            "attention data-parallel ranks in an instance (MoE models): each rank of `tp` "
            "GPUs holds its own sequences and KV cache, and the ranks step together through "
            "the MoE layers, whose experts span all `tp x dp` GPUs",
            default="1, or `ep / tp` with `ep`",
        ),
        Attr(
            "ep",
            (_parallel("ep"),),
            "expert parallelism over `ep` GPUs (`tp x dp`): each holds whole experts, and "
            "tokens reach them by an all-to-all priced on the topology",
            default="off: each expert split over the `tp x dp` GPUs",
            body=EXPERT_PARALLEL,
        ),
        Attr(
            "on",
            (ListOf("on", Place()),),
            "GPUs the pool may use",
            default="any free GPU, in node order",
        ),
        Attr(
            "role", (_words("role", ROLES, "role"),), "what the instances do", default="colocated"
        ),
        Attr(
            "batching",
            (PolicySlot("batching", BATCHING, default="continuous"),),
            "local scheduler",
            default="continuous",
            body=Block("batching", ()),
            custom_body=True,
        ),
        Attr("kv", (), "KV-cache memory policy", body=KV, body_required=True),
        Attr(
            "speculative",
            (
                _words("method", ("mtp", "draft"), "speculative method"),
                Opt((Ref("draft", "model"),)),
            ),
            "speculative decoding: the model's multi-token-prediction head (`mtp`) or a "
            "`draft <model>` proposes `tokens` tokens a step, which the model verifies",
            default="none",
            body=SPECULATIVE,
            body_required=True,
        ),
        _cost("the cost model, overriding its GPU's `cost`", "the GPU's cost, else roofline"),
        _engine_use(
            "the serving engine, optionally with some of its statements changed in braces; "
            "without a name, changes to the deployment's engine",
            "the deployment's `engine`",
        ),
    ),
    "Identical instances of one model.",
)

TRANSFER = Block(
    "transfer",
    (
        Attr(
            "direct_below",
            (Num("direct_below", Dim.TOKENS, integer=True, min=0),),
            "prompts shorter than this skip the prefill pool: they are routed to the decode "
            "pool when they arrive and prefilled there",
            default="0 tokens (every prompt goes through the prefill pool)",
        ),
        Attr(
            "layerwise",
            (Bool("layerwise"),),
            "stream each layer's KV as its prefill computes it (Mooncake, NIXL layer-wise "
            "connectors), overlapping the copy with the prefill's last step",
            default="off (the copy starts when the prefill ends)",
        ),
    ),
    "Options of a prefill -> decode transfer.",
)


class Side(Slot):
    """``>`` or ``<``: which side of a threshold a scaling rule fires on."""

    name = "side"

    def usage(self) -> str:
        return ">|<"

    def match(self, items, i, rep):
        item = _item(items, i)
        if isinstance(item, ast.Symbol) and item.text in (">", "<"):
            return item.text, i + 1
        raise Shape(item)


class Threshold(Slot):
    """``<number> for``: a rule's threshold, a plain number (the word `for` after it is
    read with it, as a unit would be)."""

    name = "value"

    def usage(self) -> str:
        return "<number> for"

    def match(self, items, i, rep):
        item = _item(items, i)
        if not isinstance(item, ast.Quantity):
            raise Shape(item)
        if item.unit != "for":
            rep.error(
                f"a scaling threshold is a plain number followed by `for`, found `{item.text}`",
                item.span,
                help="e.g. `when queue > 32 for 30 s add 1`",
            )
            return BAD, i + 1
        if item.number < 0:
            rep.error(f"a scaling threshold is at least 0, found `{item.text}`", item.span)
            return BAD, i + 1
        return item.number, i + 1


def _count(key: str, doc: str, default: str | None = None, required: bool = False) -> Attr:
    return Attr(
        key,
        (Num(key, integer=True, min=1, max=limits.INSTANCES, limit=True),),
        doc,
        default=default,
        required=required,
    )


AUTOSCALE = Block(
    "autoscale",
    (
        _count("min", "fewest instances serving", default="1"),
        _count("max", "most instances serving", default="the pool's `instances`"),
        _count("initial", "instances serving at the start", default="min"),
        Attr(
            "when",
            (
                _words("metric", tuple(SCALE_METRICS), "scaling metric"),
                Side(),
                Threshold(),
                Num("for", Dim.TIME, min=0),
                _words("action", ("add", "remove"), "scaling action"),
                Num("count", integer=True, min=1, max=limits.INSTANCES, limit=True),
            ),
            "a rule: when the mean of the metric over the serving instances stays past the "
            "value for the time, start (`add`) or stop (`remove`) that many instances; "
            "metrics: " + "; ".join(f"`{k}` {v}" for k, v in SCALE_METRICS.items()),
            repeat=True,
            required=True,
        ),
        Attr(
            "interval",
            (Num("interval", Dim.TIME, above=0),),
            "how often the rules look at the instances",
            default="5 s",
        ),
        Attr(
            "cooldown",
            (Num("cooldown", Dim.TIME, min=0),),
            "after an instance is started or stopped, how long before the next",
            default="60 s",
        ),
        Attr(
            "startup",
            (Num("startup", Dim.TIME, min=0),),
            "from start to serving: the model's load and warm-up (its GPUs are paid for "
            "from the start)",
            required=True,
        ),
    ),
    "Autoscaling of one pool.",
)

DEPLOYMENT = Block(
    "deployment",
    (
        _engine_use(
            "the serving engine of the pools that name none, optionally with some of its "
            "statements changed in braces",
            f"`{DEFAULT_ENGINE}` (std/engines)",
        ),
        _named("pool", POOL, "a pool of instances", required=True),
        Attr(
            "transfer",
            (Ref("src", "pool"), Lit("->"), Ref("dst", "pool")),
            "KV moves from a prefill pool to a decode pool",
            repeat=True,
            body=TRANSFER,
        ),
        Attr(
            "autoscale",
            (Ref("pool", "pool"),),
            "vary how many of a pool's instances serve, by rules on their load; the pool's "
            "`instances` are the GPUs it may use",
            body=AUTOSCALE,
            body_required=True,
            repeat=True,
            default="none: every instance serves throughout",
        ),
        Attr(
            "route",
            (Opt((Ref("pool", "pool", exclude=("by",)),)), Lit("by"), RouteSlot("policy", ROUTING)),
            "how a pool (or, without one, the arrivals) picks an instance",
            repeat=True,
            default="round_robin",
            body=Block("route", ()),
            custom_body=True,
        ),
    ),
    "How models are laid out on the cluster.",
)

TRACE = Block(
    "trace",
    (
        Attr(
            "format",
            (_words("format", TRACE_FORMATS, "trace format"),),
            "file format",
            default="auto",
        ),
        Attr(
            "time_scale",
            (Num("time_scale", above=0),),
            "multiply arrival gaps by this",
            default="1",
        ),
    ),
    "A request trace.",
)

SHARED_PREFIX = Block(
    "shared_prefix",
    (
        Attr(
            "fraction",
            (Num("fraction", Dim.FRACTION, min=0, max=1),),
            "share of requests that start with a shared prefix",
            default="1",
        ),
        Attr(
            "groups",
            (Num("groups", integer=True, min=1, max=limits.REQUESTS, limit=True),),
            "distinct prefixes; each sharing request picks one at random",
            default="1",
        ),
    ),
    "Prompts that start with a shared prefix (a system prompt, a RAG document).",
)

SESSIONS = Block(
    "sessions",
    (
        Attr(
            "turns",
            (Num("turns", integer=True, min=1, max=limits.REQUESTS, limit=True),),
            "turns per conversation (the last one may be cut short by `requests`)",
            required=True,
        ),
        Attr(
            "think",
            (Num("think", Dim.TIME, min=0),),
            "mean time from an answer's last token to the next turn (a user reading and "
            "typing, or an agent's tool call)",
            default="0 s",
        ),
        Attr(
            "think_dist",
            (_words("think_dist", ("exponential", "constant"), "distribution"),),
            "how think times are drawn around their mean",
            default="exponential",
        ),
    ),
    "Multi-turn conversations: the arrival process starts conversations, and each turn's "
    "prompt is the conversation so far (the turns before, their answers) plus its own new "
    "tokens, drawn from `lengths`.",
)

REQUEST_CLASS = Block(
    "class",
    (
        Attr(
            "share",
            (Num("share", Dim.FRACTION, above=0, max=1),),
            "its share of the requests (the classes' shares add up to 1)",
            required=True,
        ),
        Attr(
            "priority",
            (Num("priority", integer=True, min=-limits.WHOLE, max=limits.WHOLE),),
            "priority class: `order priority` admits a smaller number first",
            default="0",
        ),
        Attr(
            "deadline",
            (Num("deadline", Dim.TIME, above=0),),
            "time from arrival to first token it asks for: `order deadline` admits the "
            "earliest arrival + deadline first",
            default="none (admitted after every request that has one)",
        ),
        Attr(
            "timeout",
            (Num("timeout", Dim.TIME, above=0),),
            "its client gives up on a request not finished this long after it was sent: "
            "the request is cancelled wherever it is, and its KV freed",
            default="none",
        ),
        Attr(
            "max_queue",
            (Num("max_queue", integer=True, min=0, max=limits.REQUESTS, limit=True),),
            "admission control: a request is shed on arrival when the instance it is routed "
            "to already has this many requests waiting",
            default="none",
        ),
        Attr(
            "lengths",
            (PolicySlot("lengths", LENGTHS),),
            "its prompt and output lengths",
            body=Block("lengths", ()),
            custom_body=True,
            default="the workload's",
        ),
    ),
    "A class of requests.",
)

WORKLOAD = Block(
    "workload",
    (
        Attr(
            "arrivals",
            (PolicySlot("arrivals", ARRIVALS),),
            "arrival process",
            body=Block("arrivals", ()),
            custom_body=True,
            default="from the trace",
        ),
        Attr(
            "lengths",
            (PolicySlot("lengths", LENGTHS),),
            "prompt and output lengths",
            body=Block("lengths", ()),
            custom_body=True,
            default="from the trace",
        ),
        Attr("trace", (Str("trace"),), "a trace file (arrivals and lengths)", body=TRACE),
        Attr(
            "shared_prefix",
            (Num("shared_prefix", Dim.TOKENS, integer=True, min=1, max=limits.TOKENS, limit=True),),
            "put a prefix of this many tokens, shared with other requests, before each prompt",
            body=SHARED_PREFIX,
            default="none",
        ),
        Attr(
            "sessions",
            (),
            "send the requests as multi-turn conversations",
            body=SESSIONS,
            body_required=True,
            default="none: every request stands alone",
        ),
        _named(
            "class",
            REQUEST_CLASS,
            "a class of requests with its own priority, deadline, timeout and lengths; each "
            "request (each conversation) is drawn into one by the shares",
        ),
        Attr(
            "requests",
            (Num("requests", integer=True, min=1, max=limits.REQUESTS, limit=True),),
            "how many requests (with `sessions`: turns, over all conversations)",
        ),
        Attr("duration", (Num("duration", Dim.TIME, above=0),), "stop arrivals after"),
        Attr(
            "seed",
            (Num("seed", integer=True, min=0, max=limits.SEED, limit=True),),
            "random seed",
            default="0",
        ),
        Attr(
            "seeds",
            (Num("seeds", integer=True, min=1, max=1000),),
            "replications: `tokensim run` runs the spec with seeds `seed` to `seed + seeds - "
            "1` and reports each figure's mean with its interval; `tokensim search` runs each "
            "configuration that many times",
            default="1 (run), 3 (search)",
        ),
    ),
    "The requests.",
)

_TARGETS = tuple(
    Attr(m, (Stat(), Compare(), Num("limit", Dim.TIME, above=0)), f"a target on {m}", repeat=True)
    for m in METRICS
)
SLO_CLASS = Block("class", _TARGETS, "Targets for one class of requests.")
SLO = Block(
    "slo",
    _TARGETS
    + (_named("class", SLO_CLASS, "targets for one `class` of the workload's requests only"),),
    "Service-level objectives.",
)

METRICS_BLOCK = Block(
    "metrics",
    (
        Attr(
            "percentiles",
            (ListOf("percentiles", Num("percentile", above=0, max=100, what="percentile")),),
            "more percentiles of every latency in metrics.json and bench.json, beside "
            "the p50, p90, p95 and p99 always there (e.g. `percentiles 75, 99.9`)",
        ),
    ),
    "What the result files report.",
)

# `sweep` bodies are paths, checked by tokensim.lang.check.sweep.
SWEEP = Block("sweep", ())


class FaultEvent(Slot):
    """What happens at a fault's time: ``gpu <node>[<i>] down|up``, ``node <node>
    down|up|drain`` or ``link <node> <fraction>``."""

    name = "event"

    def usage(self) -> str:
        return "gpu <node>[<i>] down|up | node <node> down|up|drain | link <node> <fraction>"

    def match(self, items, i, rep):
        kind = _word(_item(items, i))
        if kind not in ("gpu", "node", "link"):
            item = _item(items, i)
            if kind is not None:
                rep.error(
                    f"unknown fault target `{kind}`",
                    item.span,
                    Note("expected `gpu`, `node` or `link`"),
                    help=did_you_mean(kind, ["gpu", "node", "link"]),
                )
                return BAD, len(items)
            raise Shape(item)
        if kind == "gpu":
            place, j = Place().match(items, i + 1, rep)
            action, j = Word("action", ("down", "up"), "GPU fault").match(items, j, rep)
            if BAD in (place, action):
                return BAD, j
            return Val((kind, place.value, action, 1.0), place.span), j
        where = _item(items, i + 1)
        node = _word(where)
        if node is None:
            raise Shape(where)
        if kind == "node":
            action, j = Word("action", ("down", "up", "drain"), "node fault").match(
                items, i + 2, rep
            )
            if action is BAD:
                return BAD, j
            return Val((kind, (node, None, None), action, 1.0), where.span), j
        share, j = Num("fraction", Dim.FRACTION, above=0, max=1).match(items, i + 2, rep)
        if share is BAD:
            return BAD, j
        return Val((kind, (node, None, None), "degrade", share), where.span), j


FAULTS = Block(
    "faults",
    (
        Attr(
            "at",
            (Num("at", Dim.TIME, min=0), FaultEvent()),
            "at a time: GPUs or a node fail (`down`: the instances on them stop, and what they "
            "held is sent again or lost), come back (`up`), or stop taking requests and "
            "finish theirs (`drain`); or a node's network links run at a fraction of their "
            "bandwidth (`link n0 50%`; `100%` restores them)",
            repeat=True,
            required=True,
        ),
        Attr(
            "on_failure",
            (_words("on_failure", ("recompute", "lose"), "failure policy"),),
            "what becomes of the requests a failed instance held: sent again and computed "
            "anew elsewhere (their tokens so far kept), or lost",
            default="recompute",
        ),
    ),
    "Faults and what they do to the deployment.",
)

TOP = Block(
    "file",
    (
        Attr("import", (Str("path"),), "bring in definitions from another file", repeat=True),
        Attr("name", (Str("name"),), "the spec's title", default="the file name"),
        _derivable("gpu", GPU, "define a GPU"),
        _derivable("link", LINK, "define a link"),
        _derivable("model", MODEL, "define a model"),
        Attr(
            "engine",
            (Word("name", what="engine name"), Opt((Lit("from"), Ref("base", "engine")))),
            "define a serving engine (`from <engine>`: its statements, changed by these)",
            body=ENGINE,
            body_required=True,
            repeat=True,
        ),
        Attr("cluster", (), "the hardware", body=CLUSTER, body_required=True),
        Attr("deployment", (), "the pools and their wiring", body=DEPLOYMENT, body_required=True),
        Attr("workload", (), "the requests", body=WORKLOAD, body_required=True),
        Attr("slo", (), "latency targets", body=SLO, body_required=True),
        Attr("faults", (), "failures over time", body=FAULTS, body_required=True),
        Attr("metrics", (), "what the result files report", body=METRICS_BLOCK, body_required=True),
        Attr("sweep", (), "values to vary", body=SWEEP, body_required=True, custom_body=True),
    ),
    "A .tsim file.",
)
