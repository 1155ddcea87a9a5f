"""The checked intermediate representation: what ``check`` returns.

Frozen dataclasses, every number in a base unit named in the field
(``_B`` bytes, ``_Bps`` bytes/s, ``_s`` seconds, ``_flops`` FLOP/s, ``_W``,
``_per_h`` $/h), every object with the :class:`Span` of the statement it came
from. The IR *is* the configuration: later stages read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokensim.lang.source import Span
from tokensim.policies import PolicyUse
from tokensim.policies.routing import Rule

# Bytes per element of each data type the language knows.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4,
    "tf32": 4,
    "bf16": 2,
    "fp16": 2,
    "fp8": 1,
    "int8": 1,
    "fp4": 0.5,
    "int4": 0.5,
    # OCP microscaling fp4: 4-bit elements and an 8-bit scale a block of 32 (4.25 bits)
    "mxfp4": 4.25 / 8,
}


@dataclass(frozen=True)
class Link:
    """A kind of link: bandwidth per direction per endpoint, latency per hop."""

    is_definition = True  # dumped by name where used

    name: str
    bandwidth_Bps: float
    latency_s: float
    sources: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of a GPU's peaks, and fixed costs per kernel and per iteration.

    ``gemm``/``attention`` scale peak FLOP/s, ``memory``/``kv_read`` scale peak
    bandwidth, ``network`` scales link bandwidth; ``kernel_s`` is added for every
    kernel an op launches (launch and ramp: what a tiny op costs) and
    ``overhead_s`` once per iteration.
    """

    gemm: float = 0.8
    attention: float = 0.5
    memory: float = 0.8
    kv_read: float = 0.5
    network: float = 0.8
    kernel_s: float = 5e-6
    overhead_s: float = 0.0


COST_KINDS = ("roofline", "table", "calibrated")


@dataclass(frozen=True)
class CostSpec:
    """Which cost-model backend times a pool's iterations.

    ``roofline``: peaks times the efficiency factors; ``table``: measured operator
    timings (tokensim table format, CSV), interpolated; ``calibrated``: the roofline
    with efficiency factors fitted by ``tokensim calibrate`` (JSON). ``path`` is the
    file of ``table``/``calibrated``, absolute and resolved (None for ``roofline``);
    ``span`` is the ``cost`` statement (None when no statement chose it).
    """

    kind: str  # roofline | table | calibrated
    path: str | None
    span: Span | None = None


ROOFLINE = CostSpec("roofline", None, None)


@dataclass(frozen=True)
class Gpu:
    """A kind of accelerator. ``compute_flops`` maps a dtype to dense peak FLOP/s."""

    is_definition = True  # dumped by name where used

    name: str
    memory_B: float
    bandwidth_Bps: float
    compute_flops: tuple[tuple[str, float], ...]
    host_link: Link
    efficiency: Efficiency
    power_W: float | None  # board power: the draw of compute-bound work
    price_per_h: float | None
    sources: tuple[str, ...]
    span: Span
    cost: CostSpec = ROOFLINE  # the GPU's `cost`; pools on it use it unless they set their own
    # the draw of an initialised GPU running nothing, and of memory-bound work (decode)
    idle_power_W: float | None = None
    memory_power_W: float | None = None
    # the GPU whose measurements a calibration lists it under: a GPU made `from` another
    # is measured as its base (None: as itself)
    measured_as: str | None = None

    def flops(self, dtype: str) -> float | None:
        """Peak dense FLOP/s for ``dtype`` (None if the GPU has no such unit)."""
        return dict(self.compute_flops).get(dtype)


@dataclass(frozen=True)
class Model:
    """A transformer's shapes. ``ffn`` is per expert for MoE; ``params`` is computed."""

    is_definition = True  # dumped by name where used

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    max_context: int
    mlp: str  # gated | plain
    tie_embeddings: bool
    experts: int  # 1 for a dense model
    top_k: int
    params: int  # from the shapes
    published_params: float | None
    dtype: str  # the default weight dtype
    sources: tuple[str, ...]
    span: Span
    # multi-head latent attention (DeepSeek-V2/V3): keys and values are cached as one latent
    # of `kv_lora_rank` plus a shared rotary key of `rope_dim` per token and layer; each
    # head's query and key are `head_dim` (no rotary part) + `rope_dim`, its value `v_dim`
    kv_lora_rank: int = 0  # 0: no MLA (grouped-query attention of kv_heads x head_dim)
    q_lora_rank: int = 0  # the query's compression (0: one full query projection)
    rope_dim: int = 0
    v_dim: int = 0
    # MoE: experts every token also goes through, and dense first layers
    shared_experts: int = 0  # each of `ffn`, beside the top_k routed ones
    dense_layers: int = 0  # the first layers have a dense MLP of `dense_ffn` instead
    dense_ffn: int = 0
    # sliding-window or chunked attention: `window_layers` of the layers attend to the last
    # `window` tokens only (0: every layer attends to the whole context)
    window: int = 0
    window_layers: int = 0
    expert_dtype: str | None = None  # the routed experts' weights, if not the pool's dtype

    @property
    def mla(self) -> bool:
        """Whether attention is multi-head latent attention."""
        return self.kv_lora_rank > 0

    @property
    def mla_shape(self) -> tuple[int, int, int, int] | None:
        """(kv_lora_rank, q_lora_rank, rope_dim, v_dim) with MLA, else None."""
        if not self.mla:
            return None
        return (self.kv_lora_rank, self.q_lora_rank, self.rope_dim, self.v_dim)

    @property
    def moe_layers(self) -> int:
        """Layers with routed experts (none for a dense model)."""
        return self.layers - self.dense_layers if self.experts > 1 else 0

    def kv_elements(self, tp: int) -> int:
        """KV-cache elements one token takes in one layer on one of ``tp`` GPUs: the MLA
        latent and rotary key (whole on every GPU: each needs it for all its heads), or K
        and V of the GPU's share of the KV heads (replicated where tp exceeds them)."""
        if self.mla:
            return self.kv_lora_rank + self.rope_dim
        return 2 * max(1, self.kv_heads // tp) * self.head_dim

    def kv_bytes_per_token(self, dtype_bytes: float) -> float:
        """KV-cache bytes one token takes over all layers, on one GPU of a tp 1 instance."""
        return self.layers * self.kv_elements(1) * dtype_bytes

    @property
    def routed_params(self) -> int:
        """Parameters of the routed experts, all layers (0 for a dense model): what expert
        parallelism spreads over its GPUs."""
        if self.experts == 1:
            return 0
        per_expert = (3 if self.mlp == "gated" else 2) * self.hidden * self.ffn
        return self.moe_layers * self.experts * per_expert

    @property
    def active_params(self) -> int:
        """Parameters touched per token (MoE: only ``top_k`` experts)."""
        if self.experts == 1:
            return self.params
        per_expert = (3 if self.mlp == "gated" else 2) * self.hidden * self.ffn
        return self.params - self.moe_layers * (self.experts - self.top_k) * per_expert


@dataclass(frozen=True)
class GpuRef:
    """One physical GPU: node name and index within the node."""

    node: str
    index: int

    def __str__(self) -> str:
        return f"{self.node}/gpu{self.index}"

    def dump_text(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Node:
    """A machine: ``count`` GPUs of one kind joined by ``link``, a host link, NICs."""

    name: str
    gpu: Gpu
    count: int
    link: Link | None
    host_link: Link
    nics: int
    host_memory_B: float | None
    span: Span


@dataclass(frozen=True)
class Network:
    """A network of one link kind joining ``nodes``."""

    link: Link
    nodes: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]
    networks: tuple[Network, ...]
    span: Span | None

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


@dataclass(frozen=True)
class HostTime:
    """CPU time of the serving engine around each iteration's GPU work (seconds).

    ``iteration_s`` once per scheduling (schedule, prepare inputs, sample, process
    outputs); ``per_seq_s`` per sequence in the batch, every step (a multi-step window
    shares the time per scheduling among its steps, not this); ``per_prefill_token_s`` per
    prompt token computed (input preparation, block tables); ``per_rank_s`` per GPU
    of the instance beyond the first (broadcasting the step to the workers);
    ``per_layer_s`` the launch time of one layer's kernels when the iteration runs
    eager (not from a captured CUDA graph).
    """

    iteration_s: float = 0.0
    per_seq_s: float = 0.0
    per_prefill_token_s: float = 0.0
    per_rank_s: float = 0.0
    per_layer_s: float = 0.0


@dataclass(frozen=True)
class Frontend:
    """The API server in front of an instance's engine (every instance runs its own, as
    every vLLM or SGLang server does): ``workers`` servers (request ``r`` is
    handled by server ``r mod workers``), each a first-come-first-served CPU doing two
    kinds of work: taking a request in (parsing, tokenizing, queueing to the engine), in
    ``per_request_s + per_input_token_s * prompt tokens``, from ``latency_s`` after it was
    sent (the client, the network: time that holds up no other request); and streaming the
    tokens the engine makes, ``per_output_token_s`` each (a step's tokens shared by the
    servers). Clients see a token when its server has streamed it. The engine does not
    wait for the front end, unless ``shares_cpu``: then the front end runs on the engine's
    CPU (one process), and the engine starts no step while it is taking requests in
    (:mod:`tokensim.sim.frontend`). With ``concurrent`` (an asynchronous server) the
    requests being taken in share their server equally instead of queueing for it, and
    that work is apart from the streaming: a burst of ``n`` requests reaches the engine
    together, ``n`` times a request's work after it arrived. With ``batches`` the server
    takes requests in one after another but hands them to the engine together: those that
    reached it before it started on them, once it has taken them all in."""

    per_request_s: float = 0.0
    per_input_token_s: float = 0.0
    workers: int = 1
    latency_s: float = 0.0
    per_output_token_s: float = 0.0  # detokenizing and streaming, on the same servers
    shares_cpu: bool = False
    concurrent: bool = False  # requests being taken in share a server (processor sharing)
    batches: bool = False  # handed to the engine together, once the server has them all


@dataclass(frozen=True)
class Reservation:
    """How an engine holds back KV for the outputs still to come when it admits a request
    (``reserve_output``): a request is admitted only when its prompt and its whole output
    fit in the free KV beside ``share`` of every running request's remaining output (each
    counted up to ``clip_tokens``; 0: no clip). A request admitted in the same scheduling
    counts whole. ``share`` decays by ``(share - min_share) / decay_steps`` each decode step
    down to ``min_share`` and returns to ``share`` when the engine idles; after a decode
    step runs out of KV (requests preempted), it becomes the decode batch's generated
    tokens plus ``retract_steps`` per sequence, over its outputs (at most 1). With
    ``share`` 1 and no decay this is TensorRT-LLM's GUARANTEED_NO_EVICT (no preemption
    ever); SGLang's admission (``new_token_ratio``) decays from 0.7 to 0.098."""

    share: float = 1.0
    min_share: float = 1.0
    decay_steps: int = 0
    clip_tokens: int = 0
    retract_steps: int = 0

    @property
    def decay(self) -> float:
        """The share's fall per decode step."""
        return (self.share - self.min_share) / self.decay_steps if self.decay_steps else 0.0


@dataclass(frozen=True)
class Engine:
    """A serving engine's semantics and host costs, as one pool runs it.

    ``batching`` and ``kv`` are the defaults the pool's own statements override
    (already applied in :class:`Pool`); ``memory`` says what ``kv.gpu_util`` is a share
    of (``total`` device memory, or the memory ``free`` after weights and activations);
    ``cuda_graphs`` is the most tokens an iteration may have to run from a captured
    graph (0: never), ``graph_prefill`` whether iterations with prompt tokens may;
    ``scheduler_steps`` decode steps per scheduling (multi-step); ``async_scheduling``
    overlaps the host time with the previous step's GPU time; ``reserve_output`` (a
    :class:`Reservation`, or None) holds KV back for the outputs to come when admitting;
    ``async_output`` sends a
    step's first tokens when the step after it ends; ``stream_tokens`` is how
    many tokens a client receives at once; ``kernels`` multiplies the cost model's
    op times by class; ``fp8_gemm`` says how a measured cost profile prices 8-bit GEMMs
    (``profiled``: its own 8-bit rows; ``native``: its 16-bit rows times the roofline's
    8-bit gain).
    """

    name: str
    version: str
    sources: tuple[str, ...]
    memory: str  # total | static | free
    cuda_graphs: int
    graph_prefill: bool
    scheduler_steps: int
    async_scheduling: bool
    reserve_output: Reservation | None
    stream_tokens: int
    host: HostTime
    frontend: Frontend
    kernels: tuple[tuple[str, float], ...]
    span: Span | None
    overrides: tuple[str, ...] = ()  # engine statements the spec changed (pool or deployment)
    fp8_gemm: str = "profiled"  # profiled | native: how a measured profile prices 8-bit GEMMs
    async_output: bool = False  # a step's first tokens reach the front end when the next step ends

    def kv_room_bytes(
        self, memory_B: float, gpu_util: float, weights_B: float, activations_B: float
    ) -> float:
        """Bytes left for the KV cache on a GPU of ``memory_B`` holding ``weights_B`` of
        weights and ``activations_B`` of activations, by the ``memory`` rule: ``total``
        takes ``gpu_util`` of the device for all three, ``static`` that share for the
        weights and the cache (the activations use the rest), ``free`` that share of what
        is left once weights and activations are placed."""
        if self.memory == "free":
            return (memory_B - weights_B - activations_B) * gpu_util
        if self.memory == "static":
            return memory_B * gpu_util - weights_B
        return memory_B * gpu_util - weights_B - activations_B


TIER_KINDS = ("host", "disk", "remote")  # fastest first: the order blocks fall through


@dataclass(frozen=True)
class KvTier:
    """``tier KIND SIZE { bandwidth; write }``: a lower KV tier under the prefix cache.
    ``host`` and ``disk`` belong to each instance, ``remote`` is one store shared by the
    pool's instances; ``bandwidth_Bps`` caps the tier's own rate (None: only the topology's
    links bound it); ``through``: blocks are written as computed, not when evicted."""

    kind: str
    capacity_B: float
    bandwidth_Bps: float | None
    through: bool
    span: Span


@dataclass(frozen=True)
class KvConfig:
    """A pool's KV-cache memory policy."""

    block_tokens: int
    gpu_util: float
    preempt: str
    prefix_cache: bool
    swap_B: float
    dtype: str
    watermark: float
    span: Span | None
    # where the pool's own `kv` block turns prefix caching on (None: not written there)
    prefix_cache_written: Span | None = None
    tiers: tuple[KvTier, ...] = ()  # lower tiers, fastest first


@dataclass(frozen=True)
class Instance:
    """One model replica: its index in the pool and its GPUs (tp x dp x pp, tp-major)."""

    index: int
    gpus: tuple[GpuRef, ...]


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding: ``method`` ``mtp`` (the model's own next-token head) or
    ``draft`` (the model ``draft``) proposes ``tokens`` tokens a decode step; each is
    accepted with probability ``acceptance`` given the ones before it were (one chance for
    every position, or one a position)."""

    method: str
    tokens: int
    acceptance: float | tuple[float, ...]
    draft: Model | None
    span: Span

    @property
    def expected_tokens(self) -> float:
        """Tokens a verification step yields a sequence on average: the accepted run of
        proposals plus the one the model adds, ``(1 - a^(k+1)) / (1 - a)``."""
        a, k = self.acceptance, self.tokens
        if isinstance(a, tuple):  # a chance a position: 1 + a1 + a1 a2 + ...
            expected, run = 1.0, 1.0
            for chance in a:
                run *= chance
                expected += run
            return expected
        return (1 - a ** (k + 1)) / (1 - a)


@dataclass(frozen=True)
class ExpertParallel:
    """Expert parallelism: the routed experts spread over ``size`` GPUs (each stage's
    ``tp x dp``), each holding ``(experts + redundant) / size`` whole experts; tokens reach
    them by an all-to-all dispatch (``dispatch_bytes`` an element) and come back by a 16-bit
    combine. ``imbalance``: the busiest GPU's share of the routed tokens over the mean's,
    beyond the spread of a uniform router. ``all_to_all``: ``hierarchical`` sends a token
    once to each other node its experts are on and forwards it there over the GPU link
    (DeepEP's normal kernels), ``direct`` once to each GPU (its low-latency kernels),
    ``auto`` the first for batches that prefill and the second for decode-only ones (SGLang's
    ``--deepep-mode auto``). ``overlap``: two micro-batches, one's all-to-all hidden behind
    the other's compute (SGLang's two-batch overlap, DeepSeek's dual micro-batch)."""

    size: int
    imbalance: float
    redundant: int
    dispatch_bytes: float
    span: Span | None = None
    all_to_all: str = "auto"
    overlap: bool = False


@dataclass(frozen=True)
class Pool:
    """Identical instances of one model with one role, batching and KV policy.

    An instance is ``tp x dp x pp`` GPUs: ``pp`` stages, each of ``dp`` attention ranks of
    ``tp`` GPUs (GPUs in that order, tp-major). The ``dp`` ranks hold their own sequences and
    KV and step together through the MoE layers, whose experts span the stage's ``tp x dp``
    GPUs: split by tensor parallelism, or whole by expert parallelism (``ep``).
    """

    name: str
    model: Model
    dtype: str
    instances: tuple[Instance, ...]
    tp: int
    pp: int
    gpu: Gpu
    role: str  # colocated | prefill | decode
    batching: PolicyUse
    kv: KvConfig
    weights_per_gpu_B: float
    span: Span
    cost: CostSpec = ROOFLINE  # the effective choice: the pool's `cost`, else its GPU's
    engine: Engine | None = None  # None only for pools built outside the checker
    speculative: Speculative | None = None
    dp: int = 1  # attention data-parallel ranks in an instance
    ep: ExpertParallel | None = None
    # batches an instance keeps in flight through its pipeline stages (vLLM's virtual
    # engines): each its own sequences and share of the KV cache
    microbatches: int = 1

    @property
    def gpus_per_instance(self) -> int:
        return self.tp * self.dp * self.pp

    def parallelism(self, sep: str = " ", join: str = " ") -> str:
        """How an instance's GPUs split: see :func:`parallelism`."""
        return parallelism(self.tp, self.dp, self.ep.size if self.ep else 1, self.pp, sep, join)


def parallelism(tp: int, dp: int, ep: int, pp: int, sep: str = " ", join: str = " ") -> str:
    """How an instance's GPUs split, as a spec says it: tp, then the degrees that are not 1:
    ``tp 8``, ``tp 1 dp 16 ep 16``, ``tp 4 pp 2`` (``sep=""``: ``tp4 pp2``)."""
    parts = (("tp", tp), ("dp", dp), ("ep", ep), ("pp", pp))
    return join.join(f"{key}{sep}{n}" for i, (key, n) in enumerate(parts) if i == 0 or n > 1)


@dataclass(frozen=True)
class Transfer:
    """KV moves from pool ``src`` (prefill) to pool ``dst`` (decode)."""

    src: str
    dst: str
    span: Span
    direct_below: int = 0  # prompts shorter than this are prefilled on the decode pool
    layerwise: bool = False  # each layer's KV leaves as the prefill computes it


@dataclass(frozen=True)
class Route:
    """How ``pool`` (None: arrivals across every entry pool) picks an instance."""

    pool: str | None
    policy: PolicyUse | Rule
    span: Span | None


SCALE_METRICS = {
    "queue": "requests waiting at an instance (its front end's included)",
    "running": "requests in an instance's running batch",
    "requests": "queued + running at an instance",
    "kv_used": "fraction of an instance's KV blocks in use (0..1)",
}


@dataclass(frozen=True)
class ScaleRule:
    """``when METRIC >|< VALUE for T add|remove N``: the mean of ``metric`` over the pool's
    serving instances past ``value`` for ``for_s`` seconds starts or drains ``count``."""

    metric: str
    above: bool  # `>` (else `<`)
    value: float
    for_s: float
    add: bool  # add (else remove)
    count: int
    span: Span


@dataclass(frozen=True)
class Autoscale:
    """``autoscale POOL { min; max; initial; when ...; interval; cooldown; startup }``: the
    pool's instances (its GPUs) are a ceiling; between ``min`` and ``max`` of them serve,
    as the rules say; one started serves ``startup_s`` later (model load, warm-up), one
    stopped takes no new requests and is released when its last one is done."""

    pool: str
    min: int
    max: int
    initial: int
    rules: tuple[ScaleRule, ...]
    interval_s: float
    cooldown_s: float
    startup_s: float
    span: Span


@dataclass(frozen=True)
class Deployment:
    pools: tuple[Pool, ...]
    transfers: tuple[Transfer, ...]
    routes: tuple[Route, ...]
    span: Span
    autoscale: tuple[Autoscale, ...] = ()  # pools whose serving instances vary

    def autoscaler(self, pool: str) -> Autoscale | None:
        """The autoscale rules of pool ``pool``, if it has any."""
        return next((a for a in self.autoscale if a.pool == pool), None)

    def pool(self, name: str) -> Pool:
        return next(p for p in self.pools if p.name == name)

    @property
    def gpus(self) -> int:
        """GPUs the pools run on (GPUs of the cluster no pool uses are not counted)."""
        return sum(len(p.instances) * p.gpus_per_instance for p in self.pools)

    @property
    def entry_pools(self) -> tuple[Pool, ...]:
        """Pools that receive arriving requests (colocated or prefill)."""
        return tuple(p for p in self.pools if p.role != "decode")


@dataclass(frozen=True)
class Trace:
    """A request trace file: path as resolved, format, time scale."""

    path: str
    format: str
    time_scale: float
    span: Span


@dataclass(frozen=True)
class SharedPrefix:
    """``shared_prefix TOKENS { fraction F; groups G }``: a ``fraction`` of the requests
    start with one of ``groups`` prefixes of ``tokens`` tokens, put before their prompts."""

    tokens: int
    fraction: float
    groups: int
    span: Span


@dataclass(frozen=True)
class Sessions:
    """``sessions { turns N; think T }``: requests come as conversations of ``turns``
    turns; each turn is sent ``think_s`` (mean) after the answer to the one before, and its
    prompt is the conversation so far plus its own new tokens."""

    turns: int
    think_s: float
    think: str  # how think times are drawn: exponential (mean think_s) or constant
    span: Span


@dataclass(frozen=True)
class RequestClass:
    """``class NAME { share; priority; deadline; timeout; max_queue; lengths }``: a share
    of the requests with its own priority, deadline, client timeout, admission limit and
    (optionally) lengths."""

    name: str
    share: float
    priority: int
    deadline_s: float | None  # `order deadline` admits the earliest arrival + deadline first
    timeout_s: float | None  # its client cancels it when unfinished this long after arrival
    max_queue: int | None  # shed at arrival when its instance has this many waiting
    lengths: PolicyUse | None  # None: the workload's
    span: Span


@dataclass(frozen=True)
class Workload:
    arrivals: PolicyUse | None  # None: arrival times from the trace
    lengths: PolicyUse | None  # None: lengths from the trace
    trace: Trace | None
    requests: int | None
    duration_s: float | None
    seed: int
    span: Span
    shared_prefix: SharedPrefix | None = None
    seeds: int | None = None  # replications the spec asks for (None: the command's default)
    sessions: Sessions | None = None  # multi-turn conversations (None: independent requests)
    classes: tuple[RequestClass, ...] = ()  # request classes (none: one class of all)


@dataclass(frozen=True)
class Fault:
    """``at T gpu NODE[i] down|up``, ``at T node NODE down|up|drain``, ``at T link NODE F``:
    at ``at_s`` GPUs or a node fail, come back, or stop taking requests; or a node's
    network links run at ``fraction`` of their bandwidth."""

    at_s: float
    kind: str  # gpu, node, link
    node: str
    gpus: tuple[int, ...]  # the GPUs of `gpu` (empty for a node or a link)
    action: str  # down, up, drain (gpu, node); degrade (link)
    fraction: float  # link: the share of bandwidth left (1: restored)
    span: Span


@dataclass(frozen=True)
class Faults:
    """The ``faults`` block: its events in time order, and what becomes of the requests an
    instance holds when it fails (``recompute``: sent again and computed anew; ``lose``)."""

    events: tuple[Fault, ...]
    on_failure: str
    span: Span


@dataclass(frozen=True)
class SloTarget:
    """``metric stat op limit``: e.g. ttft p90 < 0.5 s."""

    metric: str
    stat: str
    op: str
    limit_s: float
    span: Span
    cls: str | None = None  # the request class it holds for (None: every request)


@dataclass(frozen=True)
class Slo:
    targets: tuple[SloTarget, ...]
    span: Span


@dataclass(frozen=True)
class Axis:
    """One swept value: a path into the spec and the values it takes (as written)."""

    path: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]
    names: str | None  # the kind of definition the values name ('model'), if any
    span: Span
    # what tables show of each value, where not its text (`in { name { ... } }`: the name)
    labels: tuple[str, ...] = ()

    def shown(self, text: str) -> str:
        """How tables show the value written ``text``."""
        return self.labels[self.texts.index(text)] if self.labels else text


@dataclass(frozen=True)
class Sweep:
    """Axes combined as a grid; each group in ``zipped`` varies together."""

    axes: tuple[Axis, ...]
    zipped: tuple[tuple[Axis, ...], ...]
    points: int
    span: Span


@dataclass(frozen=True)
class Spec:
    """A whole checked spec."""

    name: str
    file: str
    gpus: tuple[Gpu, ...]
    links: tuple[Link, ...]
    models: tuple[Model, ...]
    cluster: Cluster
    deployment: Deployment
    workload: Workload | None
    slo: Slo | None
    sweep: Sweep | None
    percentiles: tuple[float, ...] = ()  # `metrics { percentiles ... }`: beyond p50/p90/p99
    faults: Faults | None = None  # what fails, and when
