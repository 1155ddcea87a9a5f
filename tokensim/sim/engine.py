"""The serving engine around the GPU work: how long one iteration takes on a pool.

The cost model prices the GPU work of an iteration (:mod:`tokensim.perf`); the engine
(:class:`tokensim.ir.Engine`) adds what the software around it costs:

* **host time** ``h`` per step: ``iteration + per_prefill_token * prompt tokens +
  per_rank * (GPUs - 1)`` per scheduling, and ``per_seq * sequences`` every step (each
  step's outputs are processed, even inside a multi-step window); with ``dp`` attention
  ranks each rank's scheduler works on its share side by side (GPUs: one rank's ``tp x
  pp``);
* **launch time** ``l`` when the iteration runs eager, not from a captured CUDA graph
  (more tokens than ``cuda_graphs``, or prompt tokens without ``graph_prefill``):
  ``per_layer * layers``. Kernels are launched while the GPU runs the ones before, so
  launching bounds the GPU work from below rather than adding to it;
* **kernel corrections**: the cost model's op times times the engine's ``kernels``
  factors.

An iteration of GPU time ``g`` then takes ``h + max(l, g)`` when the engine schedules
synchronously, and ``max(h + l, g)`` with ``async_scheduling`` (the CPU prepares the
next step while the GPU runs this one). With ``scheduler_steps N`` (multi-step) one
scheduling serves ``N`` decode steps, so a decode step carries ``1 / N`` of the time per
scheduling, and its own time per sequence. The front end
is a process of its own that the engine never waits for (:mod:`tokensim.sim.frontend`).

A decode step of ``n`` sequences over ``ctx`` context tokens costs ``a + c * ctx`` on
the GPU, so its whole time is ``H + max(F, a + c * ctx)`` (:meth:`EngineCost.decode_line`):
piecewise linear in the context, which keeps decode runs in closed form.
"""

from __future__ import annotations

from tokensim import ir
from tokensim.perf import Batch

# which breakdown entries each `kernels` factor scales
_FACTOR_OF = {
    "gemm": "gemm",
    "lm_head": "gemm",
    "attention_prefill": "attention",
    "attention_decode": "attention",
    "allreduce": "allreduce",
    "norms": "elementwise",
}


class EngineCost:
    """Iteration times of one pool's instances: the cost model's GPU time, the engine's
    host and launch time, combined as the engine schedules (all in seconds)."""

    def __init__(self, pool: ir.Pool, cost):
        self.cost = cost
        engine = pool.engine
        self.engine = engine
        self.host = engine.host
        self.factors = dict(engine.kernels)
        self.ranks = pool.tp * pool.pp  # the workers one scheduler drives
        self.dp = pool.dp  # schedulers, one an attention rank, scheduling side by side
        self.launch_s = engine.host.per_layer_s * pool.model.layers / pool.pp
        self.steps = engine.scheduler_steps
        # speculative decoding: a scheduling serves this many tokens a sequence on average
        spec = pool.speculative
        self.per_step = spec.expected_tokens if spec is not None else 1.0
        self._scaled = any(f != 1.0 for f in self.factors.values())

    def gpu_s(self, batch: Batch) -> float:
        """GPU seconds of ``batch``: the cost model's, with the engine's kernel factors."""
        if not self._scaled:
            return self.cost.iteration_s(batch)
        f = self.factors
        return sum(
            seconds * f.get(_FACTOR_OF.get(op, ""), 1.0)
            for op, seconds in self.cost.breakdown(batch).items()
        )

    def host_s(self, seqs: int, prefill_tokens: int, steps: int = 1) -> float:
        """CPU seconds of one step of ``seqs`` sequences computing ``prefill_tokens`` prompt
        tokens, in a scheduling that serves ``steps`` steps: the time per scheduling is
        shared by its steps, the time per sequence is every step's (with ``dp`` ranks, the
        busiest rank's scheduler's share)."""
        h, dp = self.host, self.dp
        scheduling = (
            h.iteration_s
            + h.per_prefill_token_s * -(-prefill_tokens // dp)
            + h.per_rank_s * (self.ranks - 1)
        )
        return scheduling / steps + h.per_seq_s * -(-seqs // dp)

    def eager(self, tokens: int, prefill_tokens: int) -> bool:
        """Whether an iteration of ``tokens`` tokens runs without a CUDA graph."""
        e = self.engine
        return tokens > e.cuda_graphs or (prefill_tokens > 0 and not e.graph_prefill)

    def iteration_s(self, batch: Batch, seqs: int) -> float:
        """Seconds of one iteration of ``batch`` over ``seqs`` sequences (a scheduling of
        its own: prompt-bearing iterations are never multi-step)."""
        tokens = batch.prefill_tokens + batch.decode_seqs
        h = self.host_s(seqs, batch.prefill_tokens)
        launch = self.launch_s if self.eager(tokens, batch.prefill_tokens) else 0.0
        g = self.gpu_s(batch)
        return max(h + launch, g) if self.engine.async_scheduling else h + max(launch, g)

    def decode_line(self, n: int) -> tuple[float, float]:
        """(H, F) of a decode step of ``n`` sequences whose GPU time is ``a + c * ctx``: the
        step takes ``H + max(F, a + c * ctx)``."""
        h = self.host_s(n, 0, self.steps) / self.per_step
        launch = (self.launch_s if self.eager(n, 0) else 0.0) / self.per_step
        if self.engine.async_scheduling:
            return 0.0, h + launch
        return h, launch
