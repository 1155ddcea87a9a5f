"""KV-cache memory policies: what happens when an instance runs out of KV blocks."""

from __future__ import annotations

import math
from typing import NamedTuple

from tokensim import ir
from tokensim.perf.shared import ACTIVATION_BYTES
from tokensim.policies import Policy, Registry
from tokensim.policies.batching import BATCHING

PREEMPT = Registry("preempt", "preemption policy")


@PREEMPT.register("recompute")
class Recompute(Policy):
    """Free the preempted request's blocks and requeue it; its prompt and the tokens
    generated so far are prefilled again when it resumes."""


@PREEMPT.register("swap")
class Swap(Policy):
    """Copy the preempted request's blocks to host memory over the host link (timed),
    and back when it resumes; needs ``swap`` space in the pool's ``kv`` block."""


class KvGeometry(NamedTuple):
    """An instance's KV cache: ``blocks`` of ``block_bytes`` each on each GPU of the
    attention rank holding it, in the ``usable_B`` bytes a GPU has left once the weights and
    ``reserve_B`` of activations are placed (an instance of ``dp`` ranks has ``dp`` times a
    rank's blocks)."""

    blocks: int
    block_bytes: float
    reserve_B: float
    usable_B: float


def kv_geometry(pool: ir.Pool) -> KvGeometry:
    """The KV cache of an instance of ``pool``: what the checker requires to hold at least
    one block and the simulator sizes each instance's cache by."""
    m, gpu, kv = pool.model, pool.gpu, pool.kv
    policy = BATCHING.get(pool.batching.name).from_use(pool.batching)
    batch_tokens = getattr(policy, "max_tokens", None) or getattr(policy, "budget", None) or 8192
    max_seqs = policy.max_seqs
    # Activations of the largest iteration (vLLM profiles this peak before sizing the cache):
    # hidden states and the MLP intermediate in 16 bit, plus fp32 logits of every sequence.
    widest = max(m.ffn, m.dense_ffn)  # a MoE model's dense layers may be wider than an expert
    reserve = batch_tokens * (4 * m.hidden + 2 * widest / pool.tp) * ACTIVATION_BYTES
    reserve += max_seqs * m.vocab * 4 / pool.tp
    if pool.engine is not None:
        usable = pool.engine.kv_room_bytes(
            gpu.memory_B, kv.gpu_util, pool.weights_per_gpu_B, reserve
        )
    else:  # a pool built outside the checker: a share of the device
        usable = gpu.memory_B * kv.gpu_util - pool.weights_per_gpu_B - reserve
    elements = math.ceil(m.layers / pool.pp) * m.kv_elements(pool.tp)
    spec = pool.speculative
    if spec is not None:  # the proposer keeps its own keys and values beside the model's
        if spec.draft is not None:  # on the pool's GPUs, split as the model is
            elements += math.ceil(spec.draft.layers / pool.pp) * spec.draft.kv_elements(pool.tp)
        else:  # an MTP head: one layer of the model's
            elements += m.kv_elements(pool.tp)
    per_token = elements * ir.DTYPE_BYTES[kv.dtype]
    block_bytes = per_token * kv.block_tokens
    return KvGeometry(max(0, int(usable // block_bytes)) * pool.dp, block_bytes, reserve, usable)
