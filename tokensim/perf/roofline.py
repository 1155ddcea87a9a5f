"""A roofline cost model of one transformer iteration on one instance.

Per layer and per GPU (tensor-parallel shard), each operation costs
``max(compute time, memory time)``:

* GEMMs (QKV, O, MLP up/gate/down, MoE experts): ``2 * tokens * k * n / tp`` FLOPs
  at ``peak(dtype) * efficiency.gemm``, against weight plus activation bytes at
  ``bandwidth * efficiency.memory``;
* attention: prefill ``4 * head_dim * heads / tp`` FLOPs per query-key pair
  (causal) at ``peak(bf16) * efficiency.attention``; decode reads every context
  token's K and V at ``bandwidth * efficiency.kv_read``; a model's sliding-window layers
  count at most ``window`` keys a token (their share of the layers' pairs and context);
* norms and residuals: activation bytes at ``bandwidth * efficiency.memory``;
* tensor-parallel all-reduce, twice per layer: a ring over the instance's GPUs,
  ``2 (tp - 1) / tp * bytes / (ring bandwidth * efficiency.network) + 2 (tp - 1) * latency``,
  where the ring's bandwidth and latency come from the topology graph;
* the LM head for every sequence that samples a token;
* with 8-bit compute (``fp8``, ``int8``: weights and activations), each GEMM's input is
  first quantized by a kernel of its own, as vLLM's W8A8 linear layers do (dynamic scales):
  reading the 16-bit activations and writing 8-bit ones, ``3`` bytes an element at
  ``bandwidth * efficiency.memory``, plus a kernel; the LM head and MoE experts are left
  as they are;
* ``efficiency.kernel`` for every kernel launched: each GEMM (the MLP's two) and
  all-reduce is one, attention two (the KV-cache write and the attention kernel), the
  elementwise ops six (two norms, two residual adds, rotary embedding and the MLP
  activation), MoE experts two, a pipeline hand-off one;
* pipeline parallelism: the stages run one after another with a hand-off of the
  activations between consecutive stages (an instance's pipelined batches in flight are
  the simulator's: :mod:`tokensim.sim.instance`);
* attention data parallelism (``dp``): each of the ``dp`` ranks computes attention, the
  dense GEMMs and its tp all-reduces over its share of the batch (the busiest rank's,
  ranks' batches taken as even), and the MoE layers see the whole batch;
* routed experts split over the stage's ``tp x dp`` GPUs: every GPU computes its slice of
  every expert for all tokens, which are gathered and scattered back by a ring all-reduce
  over the group (with ``dp 1`` that is the tp all-reduce);
* expert parallelism (``ep``): whole experts, ``(experts + redundant) / ep`` a GPU; the
  busiest GPU's tokens (``mean * imbalance`` plus the spread of a uniform router,
  ``sqrt(2 * mean * imbalance * ln ep)``) set the expert time. With ``dp`` > 1 the tokens
  are dispatched to the GPUs their ``top_k`` experts are on and combined back in 16 bit:
  two all-to-alls a MoE layer, each ``max(bytes in the node / intra bandwidth, bytes out
  of it / inter bandwidth)`` plus a kernel and the slowest path's latency, with the
  group's node-local and remote shares from the topology
  (:class:`~tokensim.perf.shared.MoeLinks`); ``direct`` sends a token to each such GPU,
  ``hierarchical`` once to each such node; ``overlap`` prices two half batches, one's
  all-to-all hidden behind the other's compute;
* plus ``efficiency.overhead`` once per iteration.

All times in seconds, sizes in bytes, rates in FLOP/s or B/s.
"""

from __future__ import annotations

import math

from tokensim import ir
from tokensim.perf.shared import (
    ACTIVATION_BYTES,
    ATTENTION_KERNELS,
    ELEMENTWISE_KERNELS,
    EXPERT_KERNELS,
    NORM_PASSES,
    QUANT_BYTES,
    QUANT_DTYPES,
    Batch,
    Gemm,
    MoeLinks,
    mla_projections,
)


class CostModel:
    """Iteration times of one pool's instances (all alike), from its IR and topology."""

    def __init__(
        self,
        pool: ir.Pool,
        ring_bandwidth_Bps: float = math.inf,
        ring_latency_s: float = 0.0,
        stage_bandwidth_Bps: float = math.inf,
        stage_latency_s: float = 0.0,
        *,
        moe: MoeLinks | None = None,
    ):
        m, gpu, eff = pool.model, pool.gpu, pool.gpu.efficiency
        tp, pp = pool.tp, pool.pp
        self.pool = pool
        w = ir.DTYPE_BYTES[pool.dtype]
        a = ACTIVATION_BYTES
        kvb = ir.DTYPE_BYTES[pool.kv.dtype]
        self.gemm_flops = gpu.flops(pool.dtype) * eff.gemm
        attn_peak = gpu.flops("bf16") or gpu.flops("fp16") or gpu.flops(pool.dtype)
        self.attn_flops = attn_peak * eff.attention
        self.mem_Bps = gpu.bandwidth_Bps * eff.memory
        self.kv_Bps = gpu.bandwidth_Bps * eff.kv_read
        d, hq, hkv = m.hidden, m.heads * m.head_dim, m.kv_heads * m.head_dim
        q = 1.0 if pool.dtype in QUANT_DTYPES else 0.0
        if m.mla:  # each (n, k) one GEMM
            gemms = [
                Gemm(2 * n * k, n * k * w, (n + k) * a, quant_per_token=q * k)
                for _, n, k in mla_projections(d, m.heads, m.head_dim, m.mla_shape, tp)
            ]
        else:
            gemms = [
                Gemm(
                    2 * d * (hq + 2 * hkv) / tp,
                    d * (hq + 2 * hkv) * w / tp,
                    (d + (hq + 2 * hkv) / tp) * a,
                    quant_per_token=q * d,
                ),
                Gemm(
                    2 * hq * d / tp, hq * d * w / tp, (hq / tp + d) * a, quant_per_token=q * hq / tp
                ),
            ]
        matrices = 3 if m.mlp == "gated" else 2

        def mlp(ffn: int, kernels: int = 2, quantized: bool = True) -> Gemm:
            return Gemm(
                2 * matrices * d * ffn / tp,
                matrices * d * ffn * w / tp,
                (d + ffn / tp) * a * 2,
                kernels=kernels,
                quant_per_token=q * (d + ffn / tp) if quantized else 0.0,
            )

        self.experts, self.top_k = m.experts, m.top_k
        # the share of layers with routed experts; the MoE layers' router and shared experts
        # and the dense layers' MLP are priced per layer in those shares
        self.moe_share = m.moe_layers / m.layers
        self.mixed: list[tuple[float, Gemm]] = []
        self.router = None
        if m.experts == 1:
            gemms.append(mlp(m.ffn))
            self.expert = None
        else:
            self.router = Gemm(2 * d * m.experts, d * m.experts * w, 0.0)
            self.mixed.append((self.moe_share, self.router))
            if m.shared_experts:
                self.mixed.append((self.moe_share, mlp(m.ffn * m.shared_experts)))
            if m.dense_layers:
                self.mixed.append((1 - self.moe_share, mlp(m.dense_ffn)))
            split = 1 if pool.ep else tp * pool.dp  # the GPUs each expert is split over
            we = ir.DTYPE_BYTES[m.expert_dtype or pool.dtype]
            self.expert = Gemm(
                2 * matrices * d * m.ffn / split,
                matrices * d * m.ffn * we / split,
                (d + m.ffn / split) * a * 2,
            )
        self.gemms = gemms
        self.dp, self.ep = pool.dp, pool.ep
        # sliding-window layers: the window, and their share of the layers
        self.window = (m.window, m.window_layers / m.layers) if m.window else None
        # whole experts a GPU holds, with expert parallelism; else every expert, split
        self.local_experts = (
            (m.experts + pool.ep.redundant) / pool.ep.size if pool.ep else m.experts
        )
        links = moe or MoeLinks()
        self.moe = MoeLinks(
            links.group_Bps * eff.network,
            links.group_latency_s,
            links.intra_Bps * eff.network,
            links.inter_Bps * eff.network,
            links.local,
            links.latency_s,
        )
        # the LM head stays in 16 bit when the layers are quantized (vLLM does not quantize it)
        head_w = max(w, ACTIVATION_BYTES)
        head_flops = (gpu.flops("bf16") or gpu.flops(pool.dtype)) * eff.gemm if w < 2 else 0.0
        self.head = Gemm(
            2 * d * m.vocab / tp,
            d * m.vocab * head_w / tp,
            (d + m.vocab / tp) * a,
            flops=head_flops,
        )
        self.layers_per_stage = math.ceil(m.layers / pp)
        self.pp = pp
        self.tp = tp
        self.hidden_bytes = d * a
        self.kv_bytes_per_token = m.kv_elements(tp) * kvb  # one layer
        if m.mla:
            # prefill decompresses keys and values per head: scores over head_dim + rope_dim,
            # values of v_dim; decode works on the latent (the up-projections absorbed into
            # the query and output): scores over kv_lora_rank + rope_dim, values of the rank
            heads = m.heads / tp
            self.attn_flops_per_pair = 2 * heads * (m.head_dim + m.rope_dim + m.v_dim)
            self.attn_flops_per_ctx = 2 * heads * (2 * m.kv_lora_rank + m.rope_dim)
        else:
            self.attn_flops_per_pair = 4 * hq / tp
            self.attn_flops_per_ctx = 4 * hq / tp
        self.ring_Bps = ring_bandwidth_Bps * eff.network
        self.ring_latency_s = ring_latency_s
        self.stage_Bps = stage_bandwidth_Bps * eff.network
        self.stage_latency_s = stage_latency_s
        self.kernel_s = eff.kernel_s
        self.overhead_s = eff.overhead_s

    def _gemm(self, g: Gemm, tokens: float) -> float:
        seconds = g.kernels * self.kernel_s + max(
            g.flops_per_token * tokens / (g.flops or self.gemm_flops),
            (g.weight_bytes + g.act_bytes_per_token * tokens) / self.mem_Bps,
        )
        if g.quant_per_token:  # the activations' quantization kernels
            quant = g.quant_per_token * tokens * QUANT_BYTES / self.mem_Bps
            seconds += g.kernels * self.kernel_s + quant
        return seconds

    def _ring_allreduce(
        self, gpus: int, nbytes: float, bandwidth_Bps: float, latency_s: float
    ) -> float:
        """A ring all-reduce of ``nbytes`` over ``gpus`` GPUs: ``2 (gpus - 1)`` steps, each
        moving ``nbytes / gpus`` and paying the ring's latency, plus a kernel."""
        steps = 2 * (gpus - 1)
        return self.kernel_s + steps / gpus * nbytes / bandwidth_Bps + steps * latency_s

    def _allreduce(self, nbytes: float) -> float:
        if self.tp == 1:
            return 0.0
        return self._ring_allreduce(self.tp, nbytes, self.ring_Bps, self.ring_latency_s)

    def _experts(self, tokens: int) -> float:
        """One MoE layer's routed experts over the whole batch's ``tokens``, on the busiest
        GPU."""
        e, ep = self.expert, self.ep
        pairs = tokens * self.top_k
        touched = 1 - (1 - self.top_k / self.experts) ** tokens  # the chance an expert works
        if ep is not None and ep.size > 1:
            mean = pairs / ep.size * ep.imbalance
            pairs = min(pairs, mean + math.sqrt(2 * mean * math.log(ep.size)))
        return EXPERT_KERNELS * self.kernel_s + max(
            e.flops_per_token * pairs / self.gemm_flops,
            (e.weight_bytes * self.local_experts * touched + e.act_bytes_per_token * pairs)
            / self.mem_Bps,
        )

    def _moe_exchange(self, tokens: int, prefill: bool) -> float:
        """One MoE layer's token exchange among the stage's GPUs, beyond the attention
        rank's own all-reduce: the dispatch and combine all-to-alls (``ep``; ``prefill``:
        the batch prefills, for ``all_to_all auto``), or the ring that gathers the ranks'
        tokens and scatters the experts' sums back (``dp`` > 1)."""
        links = self.moe
        if self.ep is None:
            return self._ring_allreduce(
                self.tp * self.dp,
                tokens * self.hidden_bytes,
                links.group_Bps,
                links.group_latency_s,
            )
        n, k, local = self.ep.size, self.top_k, links.local
        if n == 1:
            return 0.0
        sent = tokens / n  # a GPU's share of the tokens
        # elements (hidden states) a GPU sends within its node and out of it
        touch = 1 - (1 - 1 / n) ** k  # the chance a given GPU holds one of a token's experts
        nodes = n / local
        kind = self.ep.all_to_all
        if kind == "auto":
            kind = "hierarchical" if prefill else "direct"
        if kind == "hierarchical" and nodes > 1:
            # once to each other node with one of its experts, then on to the GPUs there
            remote = (nodes - 1) * (1 - (1 - 1 / nodes) ** k)
            per_node = local * touch / (1 - (1 - 1 / nodes) ** k)
            inside = sent * ((local - 1) * touch + remote * per_node)
            outside = sent * remote
        else:  # once to each other GPU with one of its experts
            inside = sent * (local - 1) * touch
            outside = sent * (n - local) * touch
        d = self.hidden_bytes / ACTIVATION_BYTES

        def all_to_all(nbytes: float) -> float:
            return (
                self.kernel_s
                + max(inside * nbytes / links.intra_Bps, outside * nbytes / links.inter_Bps)
                + links.latency_s
            )

        return all_to_all(d * self.ep.dispatch_bytes) + all_to_all(d * ACTIVATION_BYTES)

    def _dense_gemms(self, tokens: int) -> float:
        """One layer's projection and (dense) MLP GEMMs over ``tokens`` tokens; for a MoE
        model with shared experts or dense layers, a layer's average of those."""
        return sum(self._gemm(g, tokens) for g in self.gemms) + sum(
            share * self._gemm(g, tokens) for share, g in self.mixed
        )

    def _lm_head(self, samples: int) -> float:
        return self._gemm(self.head, samples)

    def _prefill_attention(self, pairs: float) -> float:
        """One layer's prefill attention over ``pairs`` causal query-key pairs."""
        if pairs <= 0:
            return 0.0
        return (
            ATTENTION_KERNELS * self.kernel_s + pairs * self.attn_flops_per_pair / self.attn_flops
        )

    def _decode_attention(self, context: int, seqs: int) -> float:
        """One layer's decode attention of ``seqs`` sequences over ``context`` tokens in all."""
        if seqs <= 0:
            return 0.0
        return ATTENTION_KERNELS * self.kernel_s + max(
            context * self.attn_flops_per_ctx / self.attn_flops,
            context * self.kv_bytes_per_token / self.kv_Bps,
        )

    def _norms(self, tokens: int) -> float:
        """One layer's norms and residual adds over ``tokens`` tokens."""
        return (
            ELEMENTWISE_KERNELS * self.kernel_s
            + NORM_PASSES * tokens * self.hidden_bytes / self.mem_Bps
        )

    def _layer(self, batch: Batch, tokens: int) -> dict[str, float]:
        """Seconds per operation class of one layer (the layers' average) for ``batch``."""
        dp = self.dp
        rank = -(-tokens // dp)  # the busiest attention rank's tokens
        gemm = self._dense_gemms(rank)
        if self.expert is not None:
            gemm += self.moe_share * self._experts(tokens)
        allreduce = 2 * self._allreduce(rank * self.hidden_bytes)
        exchange = 0.0
        if self.expert is not None and dp > 1:
            # a MoE layer's second all-reduce is the experts' exchange over the stage (with
            # one rank its tokens are on every GPU already: the all-reduce sums the experts')
            allreduce -= self.moe_share * allreduce / 2
            exchange = self.moe_share * self._moe_exchange(tokens, batch.prefill_tokens > 0)
        pairs, seqs = batch.prefill_pairs / dp, -(-batch.decode_seqs // dp)
        context = -(-batch.decode_context // dp)
        if self.window is not None:  # the window layers' share attends to the window only
            window, share = self.window
            prompt = -(-batch.prefill_tokens // dp)
            pairs += share * (min(pairs, prompt * window) - pairs)
            context = round(context + share * (min(context, seqs * window) - context))
        return {
            "gemm": gemm,
            "attention_prefill": self._prefill_attention(pairs),
            "attention_decode": self._decode_attention(context, seqs),
            "norms": self._norms(rank),
            "allreduce": allreduce,
            "alltoall": exchange,
        }

    def _overlapped(self, batch: Batch) -> dict[str, float]:
        """One layer with ``ep { overlap on }``: the batch in two halves, each half's
        all-to-all hidden behind the other's compute. The decode attention is left out of
        what hides it, which keeps a decode step linear in the context."""
        half = Batch(
            -(-batch.prefill_tokens // 2),
            batch.prefill_pairs / 2,
            -(-batch.decode_seqs // 2),
            -(-batch.decode_context // 2),
        )
        parts = {
            op: 2 * seconds
            for op, seconds in self._layer(half, half.prefill_tokens + half.decode_seqs).items()
        }
        behind = sum(v for op, v in parts.items() if op not in ("alltoall", "attention_decode"))
        parts["alltoall"] = max(0.0, parts["alltoall"] - behind)
        return parts

    def breakdown(self, batch: Batch) -> dict[str, float]:
        """Seconds per operation class for one iteration of ``batch`` (all layers and stages)."""
        tokens = batch.prefill_tokens + batch.decode_seqs
        samples = batch.decode_seqs if batch.samples is None else batch.samples
        if tokens == 0:
            return {"overhead": self.overhead_s}
        layers = self.layers_per_stage * self.pp
        if self.ep is not None and self.ep.overlap and tokens > 1:
            parts = self._overlapped(batch)
        else:
            parts = self._layer(batch, tokens)
        handoff = (
            (self.pp - 1)
            * (self.kernel_s + tokens * self.hidden_bytes / self.stage_Bps + self.stage_latency_s)
            if self.pp > 1
            else 0.0
        )
        return {op: layers * seconds for op, seconds in parts.items()} | {
            "lm_head": self._lm_head(-(-samples // self.dp)) if samples else 0.0,
            "pp_handoff": handoff,
            "overhead": self.overhead_s,
        }

    def iteration_s(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch`` on one instance."""
        return sum(self.breakdown(batch).values())

    def decode_step_s(self, seqs: int, context: int) -> float:
        """Seconds for a decode step of ``seqs`` sequences of ``context`` tokens each."""
        return self.iteration_s(Batch(decode_seqs=seqs, decode_context=seqs * context))

    def prefill_s(self, tokens: int) -> float:
        """Seconds to prefill one prompt of ``tokens`` tokens in one iteration."""
        return self.iteration_s(
            Batch(prefill_tokens=tokens, prefill_pairs=Batch.pairs(tokens, 0), samples=1)
        )
