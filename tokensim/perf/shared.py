"""What the cost model's backends share: the shape of an iteration (:class:`Batch`), the
constants of its kernels, a GEMM's terms (:class:`Gemm`) and the notes they print.

The roofline (``roofline.py``), the measured-table and calibrated backends
(``backend.py``) and the op formulas (``ops.py``) import these; nothing here imports them.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass

ACTIVATION_BYTES = 2  # activations stay in 16-bit, whatever the weight dtype
NORM_PASSES = 6  # activation reads and writes per layer for 2 norms and 2 residual adds
ATTENTION_KERNELS = 2  # KV-cache write and attention
ELEMENTWISE_KERNELS = 6  # 2 norms, 2 residual adds, rotary embedding, MLP activation
EXPERT_KERNELS = 2  # fused MoE: the up/gate and the down grouped GEMMs
QUANT_DTYPES = ("fp8", "int8")  # 8-bit compute: a GEMM's activations are quantized first
QUANT_BYTES = 3  # per element quantized: a 16-bit read and an 8-bit write


def mla_projections(hidden: int, heads: int, head_dim: int, mla, tp: int) -> list:
    """``(kernel, n, k)`` of multi-head latent attention's GEMMs on one of ``tp`` GPUs, for
    ``mla`` = (kv_lora_rank, q_lora_rank, rope_dim, v_dim). The down-projections (of the
    query and of the KV latent) run whole on every GPU, as vLLM replicates them; the
    up-projections and the output split by heads."""
    rank, q_rank, rope, v = mla
    per_gpu = heads // tp
    qk = per_gpu * (head_dim + rope)
    query = [("q_proj", qk, hidden)]
    if q_rank:
        query = [("q_a_proj", q_rank, hidden), ("q_b_proj", qk, q_rank)]
    return query + [
        ("kv_a_proj", rank + rope, hidden),
        ("kv_b_proj", per_gpu * (head_dim + v), rank),
        ("o_proj", hidden, per_gpu * v),
    ]


@dataclass(frozen=True)
class Batch:
    """What one iteration computes.

    ``prefill_tokens``: prompt tokens computed (all chunks together).
    ``prefill_pairs``: causal query-key pairs of those chunks: for a chunk of
    ``c`` tokens after ``p`` cached ones, ``c * p + c * (c + 1) / 2``.
    ``decode_seqs``: sequences generating one token; ``decode_context``: the sum
    of their context lengths (tokens whose K and V are read).
    ``samples``: sequences that produce a token (decode ones plus prompts whose
    last chunk ran); defaults to ``decode_seqs``.
    """

    prefill_tokens: int = 0
    prefill_pairs: float = 0.0
    decode_seqs: int = 0
    decode_context: int = 0
    samples: int | None = None

    @staticmethod
    def pairs(chunk: int, cached: int) -> float:
        """Causal query-key pairs of a chunk of ``chunk`` tokens after ``cached`` tokens."""
        return chunk * cached + chunk * (chunk + 1) / 2


@dataclass(frozen=True)
class Gemm:
    """One weight GEMM of a layer, per token and per GPU."""

    flops_per_token: float
    weight_bytes: float
    act_bytes_per_token: float
    kernels: int = 1  # the dense MLP is two (up/gate, down)
    quant_per_token: float = 0.0  # input elements quantized per token (8-bit compute)
    flops: float = 0.0  # the peak it computes at (FLOP/s, efficiency applied); 0: the pool's


@dataclass(frozen=True)
class MoeLinks:
    """Where a MoE layer's tokens travel among a stage's ``tp x dp`` GPUs, read off the
    topology. Experts split by tensor parallelism: a ring over all of them (``group_Bps``,
    ``group_latency_s``). Expert parallelism: an all-to-all in which a GPU reaches the
    group's GPUs in its own node at ``intra_Bps`` and the others at ``inter_Bps`` (its share
    of the way out of the node, which the group's GPUs on that NIC share); ``local``: the
    group's GPUs in its node, itself included; ``latency_s``: the slowest path's."""

    group_Bps: float = math.inf
    group_latency_s: float = 0.0
    intra_Bps: float = math.inf
    inter_Bps: float = math.inf
    local: int = 1
    latency_s: float = 0.0


_said: set[str] = set()
_collecting: list[list[str]] = []  # while notes_collected() is open: where notes go


def note(message: str) -> None:
    """Print ``message`` to stderr once per process (inside :func:`notes_collected`: keep
    it for the caller instead)."""
    if _collecting:
        if message not in _collecting[-1]:
            _collecting[-1].append(message)
        return
    if message not in _said:
        _said.add(message)
        print(f"note: {message}", file=sys.stderr)


@contextmanager
def notes_collected():
    """Keep the notes said inside the block in the list it yields, unprinted: a worker
    process hands them back with its result, and the parent says each once."""
    said: list[str] = []
    _collecting.append(said)
    try:
        yield said
    finally:
        _collecting.pop()
