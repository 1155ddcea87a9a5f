"""Operator-level time models: the roofline per op class, its fitted form, and corrections.

Every op of a :mod:`tokensim.perf.tables` table is priced from its *work*, a
FLOP count and a byte count computed from its keys, against a GPU's peaks:

    seconds = overhead + (compute ** q + memory ** q + unit ** q) ** (1 / q)
    compute = flops / (peak FLOP/s x efficiency.compute)
    memory  = bytes / (peak bandwidth x efficiency.memory)
    unit    = unit bytes / (peak bandwidth x unit share)     (decode attention, fitted)

``q`` (the *sharpness*) is infinite in the plain roofline, where the sum is
``max(compute, memory)``; a calibration fits it, since real kernels bend
smoothly from one bound to the other. The datasheet's ``overhead`` is the
efficiency block's kernel time times the op's kernels (attention: two).
The *unit* bound is one sequence's context for one KV head, streamed by one
thread block at a share of the bandwidth: a decode kernel that does not split
the context takes that long however few sequences it has (1: no such bound).
Collectives use the link bandwidth instead of the memory's, a ring's traffic
``2 (g - 1) / g x bytes`` and a latency per ring step (the link's, or fitted).

:class:`Corrections` hold what a calibration's fitted formula still misses at
the measured shapes (``log(measured / fitted)``) and bring it to a new shape as
the inverse-distance mean of its nearest measured neighbours in log2 key space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tokensim import ir
from tokensim.perf import tables
from tokensim.perf.shared import ATTENTION_KERNELS, QUANT_BYTES, QUANT_DTYPES

ATTN_BYTES = 2  # activations in 16-bit (and the KV cache, unless a row's kv_dtype says not)
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
# which efficiency-block factors the datasheet roofline uses for each op class
DEFAULT_FACTORS = {
    "gemm": ("gemm", "memory"),
    "attention_prefill": ("attention", "memory"),
    "attention_decode": ("attention", "kv_read"),
    "elementwise": (None, "memory"),
    "allreduce": (None, "network"),
    "send_recv": (None, "network"),
}
# ops priced on the link between GPUs rather than on one GPU's memory
COLLECTIVES = ("allreduce", "send_recv")
# kernels one op launches, as the roofline counts them
KERNELS = {"attention_prefill": ATTENTION_KERNELS, "attention_decode": ATTENTION_KERNELS}
# key weights for the nearest-neighbour corrections (distance in log2 units)
KEY_WEIGHTS = {
    "gemm": {"m": 4.0, "n": 1.0, "k": 1.0},
    "attention_prefill": {"batch": 1.0, "length": 2.0, "heads": 1.0, "kv_heads": 1.0},
    "attention_decode": {"batch": 2.0, "length": 2.0, "heads": 1.0, "kv_heads": 1.0},
    "elementwise": {"m": 2.0, "bytes": 1.0},
    "allreduce": {"gpus": 4.0, "bytes": 1.0},
    "send_recv": {"gpus": 4.0, "bytes": 1.0},
}


@dataclass(frozen=True)
class Peaks:
    """What a GPU offers an op: FLOP/s per dtype, memory and link bandwidth, link latency."""

    flops: dict[str, float]
    memory_Bps: float
    link_Bps: float
    link_latency_s: float

    @staticmethod
    def of(gpu: ir.Gpu, link: ir.Link | None) -> Peaks:
        return Peaks(
            dict(gpu.compute_flops),
            gpu.bandwidth_Bps,
            link.bandwidth_Bps if link else math.inf,
            link.latency_s if link else 0.0,
        )

    def flops_for(self, dtypes: np.ndarray) -> np.ndarray:
        half = self.flops.get("bf16") or self.flops.get("fp16") or max(self.flops.values())
        return np.array([self.flops.get(d) or half for d in dtypes], float)


def kv_bytes(kv_dtypes: np.ndarray) -> np.ndarray:
    """Bytes of one KV-cache element per row (an empty ``kv_dtype``: 16-bit)."""
    return np.array([DTYPE_BYTES.get(d, ATTN_BYTES) if d else ATTN_BYTES for d in kv_dtypes])


def work(t: tables.Table, op: str):
    """(FLOPs, bytes, serial bytes, unit bytes) of each row of ``t`` (all rows of class
    ``op``). Serial bytes are moved by a memory-bound kernel before the op, not overlapped
    with it: an 8-bit GEMM's activation quantization, as the simulator prices it. Unit bytes
    are what one of the op's parallel units streams on its own: decode attention's context of
    one sequence and one KV head, which a kernel that does not split the context reads in
    one thread block, however idle the rest of the GPU is (0: no such bound). Attention's K
    and V bytes are those of the row's ``kv_dtype`` (an 8-bit cache reads half as many)."""
    if op == "gemm":
        m, n, k = t["m"], t["n"], t["k"]
        wb = np.array([DTYPE_BYTES.get(d, 2) for d in t["dtype"]], float)
        quant = np.isin(t["dtype"], QUANT_DTYPES) * m * k * QUANT_BYTES
        return 2 * m * n * k, n * k * wb + m * (n + k) * ATTN_BYTES, quant, 0.0
    if op in ("attention_prefill", "attention_decode"):
        b, length, h, kv, hd = t["batch"], t["length"], t["heads"], t["kv_heads"], t["head_dim"]
        kvb = kv_bytes(t["kv_dtype"])
        if op == "attention_prefill":
            pairs = length * (length + 1) / 2
            nbytes = b * length * (2 * h * ATTN_BYTES + 2 * kv * kvb) * hd
        else:
            pairs = length
            nbytes = b * (length * 2 * kv * kvb + 2 * h * ATTN_BYTES) * hd
        unit = length * 2 * hd * kvb if op == "attention_decode" else 0.0
        return b * 4 * h * hd * pairs, nbytes, 0.0, unit
    if op == "elementwise":
        return np.zeros(len(t)), t["bytes"], 0.0, 0.0
    if op == "allreduce":
        g = t["gpus"]
        return np.zeros(len(t)), 2 * (g - 1) / g * t["bytes"], 0.0, 0.0
    if op == "send_recv":
        return np.zeros(len(t)), t["bytes"], 0.0, 0.0
    raise ValueError(f"unknown op {op!r}")


@dataclass(frozen=True)
class Params:
    """One op class's formula: efficiencies, a fixed time per call, sharpness, for
    collectives the latency of a ring step (None: the link's), and the share of the
    memory bandwidth one parallel unit streams at alone (1: no bound of its own)."""

    compute: float = 1.0
    memory: float = 1.0
    overhead_s: float = 0.0
    sharpness: float = math.inf
    step_s: float | None = None
    unit: float = 1.0

    @staticmethod
    def datasheet(eff: ir.Efficiency, op: str, quantized: bool = False) -> Params:
        """The roofline as the simulator's default cost model prices ``op`` (a GEMM of
        8-bit compute, ``quantized``, launches its activations' quantization too)."""
        c, m = DEFAULT_FACTORS[op]
        kernels = KERNELS.get(op, 1) + (op == "gemm" and quantized)
        return Params(getattr(eff, c) if c else 1.0, getattr(eff, m), kernels * eff.kernel_s)


def predict(
    t: tables.Table, op: str, peaks: Peaks, p: Params, corrections: Corrections | None = None
) -> np.ndarray:
    """Seconds for each row of ``t`` (all of class ``op``)."""
    seconds = combine(*work(t, op), op, t, peaks, p)
    if corrections is not None:
        seconds = seconds * np.exp(corrections(t))
    return seconds


def combine(flops, nbytes, serial, unit, op, t, peaks: Peaks, p: Params) -> np.ndarray:
    """The formula on precomputed :func:`work` (shared by :func:`predict` and the fitter)."""
    collective = op in COLLECTIVES
    bandwidth = peaks.link_Bps if collective else peaks.memory_Bps
    mem = nbytes / (bandwidth * p.memory)
    if collective:
        hops = 2 * (t["gpus"] - 1) if op == "allreduce" else np.ones(len(t))
        base = mem + hops * (peaks.link_latency_s if p.step_s is None else p.step_s)
    elif np.any(flops > 0):
        bounds = [flops / (peaks.flops_for(t["dtype"]) * p.compute), mem]
        if p.unit < 1.0:
            bounds.append(unit / (bandwidth * p.unit))
        hi = np.maximum.reduce(bounds)
        if math.isinf(p.sharpness):
            base = hi
        else:  # a smooth maximum, scaled by the largest bound to keep the powers finite
            q = p.sharpness
            base = hi * sum((b / hi) ** q for b in bounds) ** (1 / q)
    else:
        base = mem
    return p.overhead_s + base + serial / (peaks.memory_Bps * p.memory)


class Corrections:
    """Residual log-ratios at measured shapes, carried to new shapes by nearest neighbours."""

    NEIGHBOURS = 4

    def __init__(self, op: str, keys: np.ndarray, residuals: np.ndarray):
        self.op = op
        self.weights = KEY_WEIGHTS[op]
        self.keys = keys  # log2 keys, unscaled, one row per measured shape
        self.residuals = residuals
        scale = np.sqrt(np.array(list(self.weights.values())))
        self.scale = scale
        self.points = keys * scale
        self._asked: dict[bytes, np.ndarray] = {}  # queries -> answers: pools repeat them
        names = list(self.weights)
        # attention's (kv_heads, batch, heads) columns and the most KV heads measured (log2)
        self._heads = (
            (names.index("kv_heads"), names.index("batch"), names.index("heads"))
            if "kv_heads" in names and len(keys)
            else None
        )
        self._top_kv = keys[:, self._heads[0]].max() if self._heads else 0.0

    @classmethod
    def fit(cls, t: tables.Table, op: str, log_residual: np.ndarray) -> Corrections:
        """Average ``log_residual`` over rows with equal keys, and index them."""
        keys = log2_keys(t, op)
        uniq, inverse = np.unique(np.round(keys, 6), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        sums = np.bincount(inverse, weights=log_residual, minlength=len(uniq))
        counts = np.bincount(inverse, minlength=len(uniq))
        return cls(op, uniq, sums / counts)

    def __call__(self, t: tables.Table) -> np.ndarray:
        if not len(self.keys) or len(t) == 0:
            return np.zeros(len(t))
        q = self._fold(log2_keys(t, self.op)) * self.scale
        key = q.tobytes()
        known = self._asked.get(key)
        if known is None:
            k = min(self.NEIGHBOURS, len(self.keys))
            mean, nearest = neighbour_mean(self.points, self.residuals, q, k)
            # far from every measured shape the correction fades out
            known = self._asked[key] = mean / (1.0 + (nearest / 2.0) ** 2)
            known.setflags(write=False)
        return known.copy()

    def _fold(self, q: np.ndarray) -> np.ndarray:
        """Attention beyond the most KV heads measured, looked up as the measured kernel of
        as many (sequence, KV head) pairs: its kernels run one block of work per sequence
        and KV head, so a shape of ``b`` sequences and ``kv`` heads (``h`` query heads)
        is corrected as ``b * kv / m`` sequences of ``m`` heads (``h * m / kv`` query
        heads), ``m`` the most measured. Folded so, a decode of 32 KV heads reads the
        bandwidth NVIDIA's tables measure for kernels as large, not for 8 heads' smaller
        ones (their tables stop at 8; Llama-2-7B has 32). Those tables time the same
        pairs alike: 4 heads x 256 sequences 2.83 TB/s, 8 x 128 2.84 (H100, 1,024 tokens)."""
        if self._heads is None:
            return q
        kv, b, h = self._heads
        over = np.maximum(q[:, kv] - self._top_kv, 0.0)
        if not over.any():
            return q
        q = q.copy()
        q[:, kv] -= over
        q[:, b] += over
        q[:, h] -= over
        return q

    def to_json(self) -> dict:
        return {
            "keys": list(self.weights),
            "points": [
                [*(round(float(v), 4) for v in row), round(float(r), 5)]
                for row, r in zip(self.keys, self.residuals, strict=True)
            ],
        }

    @classmethod
    def from_json(cls, op: str, data: dict) -> Corrections:
        pts = np.array(data["points"], float).reshape(-1, len(KEY_WEIGHTS[op]) + 1)
        return cls(op, pts[:, :-1], pts[:, -1])


def neighbour_mean(points: np.ndarray, values: np.ndarray, q: np.ndarray, k: int):
    """For each row of ``q``: the mean of ``values`` over its ``k`` nearest ``points``,
    weighted by ``1 / (distance + 0.25)``, and the distance to the nearest. Every point
    as near as the ``k``-th is in the mean, so that the answer does not depend on the
    order of the points when several are equally near (measured shapes lie on grids,
    where they often are). Exhaustive, in blocks of queries: a run asks a few thousand
    queries of a few thousand points, where a tree would cost more to build than to ask."""
    mean = np.empty(len(q))
    nearest = np.empty(len(q))
    block = max(1, 2**22 // max(len(points), 1))
    for lo in range(0, len(q), block):
        qb = q[lo : lo + block]
        d2 = np.zeros((len(qb), len(points)))
        for j in range(points.shape[1]):
            d2 += (qb[:, j, None] - points[None, :, j]) ** 2
        parted = np.partition(d2, [0, k - 1], axis=1)
        # equal distances reached by different sums may differ in the last bits
        rows, cols = np.nonzero(d2 <= parted[:, k - 1, None] * (1 + 1e-9))
        w = 1.0 / (np.sqrt(d2[rows, cols]) + 0.25)
        total = np.bincount(rows, weights=w * values[cols], minlength=len(qb))
        mean[lo : lo + block] = total / np.bincount(rows, weights=w, minlength=len(qb))
        nearest[lo : lo + block] = np.sqrt(parted[:, 0])
    return mean, nearest


def log2_keys(t: tables.Table, op: str) -> np.ndarray:
    names = list(KEY_WEIGHTS[op])
    return np.log2(np.maximum(np.column_stack([t[c] for c in names]), 1.0))
