"""``tokensim profile``: measure operator timings on the local device and write a table.

A profiler for people who have GPUs: it times, with PyTorch, the operators one
transformer layer of a model runs on one tensor-parallel shard, over a grid of
sizes, and writes a tokensim table (:mod:`tokensim.perf.tables`) that calibrates
tokensim for that hardware:

* ``gemm``: the four per-layer GEMMs of a Llama-style layer (``qkv_proj``,
  ``o_proj``, ``up_proj`` -- gate and up fused when the MLP is gated --,
  ``down_proj``) for ``m`` tokens, sharded by ``tp``;
* ``attention_prefill``: causal ``scaled_dot_product_attention`` over
  ``batch`` prompts of ``length`` tokens;
* ``attention_decode``: one query token per sequence attending to ``length``
  cached tokens read through a paged KV cache (blocks of 16 tokens in one pool,
  gathered by a block table); the gather and the attention are timed together,
  since a paged decode kernel pays for both;
* ``elementwise``: RMSNorm (kernel ``norm``) over ``m`` tokens of the hidden size;
* ``allreduce``: NCCL all-reduce over 2, 4, ... of the local GPUs, when there
  are several.

Timing: warm-up runs, then the median of repeated runs; CUDA events on a GPU
(with the L2 cache flushed before each timed run), ``time.perf_counter`` on the
CPU. The table's ``#`` lines record the environment (device, driver, torch,
CUDA, clocks) and the grid, and nothing else that changes between runs.

PyTorch is optional for tokensim: it is imported inside the functions that
measure, so this module imports without it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

from tokensim.perf import tables
from tokensim.perf.shared import mla_projections

NEEDS_TORCH = "tokensim profile needs PyTorch: pip install 'tokensim[profile]'"
BLOCK = 16  # tokens per KV-cache block
KIB, MIB = 1024, 1024 * 1024
DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
DEFAULT_MODEL = "llama3_1_8b"

# torch's device name -> tokensim catalogue GPU name (std/hardware). Names not
# listed here are derived from the device name (see gpu_catalogue_name).
GPU_NAMES = {
    "NVIDIA H100 80GB HBM3": "H100_SXM",
    "NVIDIA H100 PCIe": "H100_PCIE",
    "NVIDIA H200": "H200",
    "NVIDIA B200": "B200",
    "NVIDIA A100-SXM4-80GB": "A100_80G",
    "NVIDIA A100-SXM4-40GB": "A100_40G",
    "NVIDIA L40S": "L40S",
    "AMD Instinct MI300X": "MI300X",
}


class ProfileError(ValueError):
    """A problem to report to the user as ``error: ...`` (no traceback)."""


# ---------------------------------------------------------------- shapes


@dataclass(frozen=True)
class ModelShape:
    """The shapes of one transformer layer that the profiler needs.

    ``ffn`` is the MLP's intermediate size (for an MoE model: one expert's);
    ``gated`` is a SwiGLU MLP, whose gate and up projections run as one GEMM.
    """

    name: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    gated: bool = True
    # multi-head latent attention: (kv_lora_rank, q_lora_rank, rope_dim, v_dim), or None
    mla: tuple[int, int, int, int] | None = None

    @classmethod
    def from_ir(cls, model) -> ModelShape:
        """The shapes of a checked :class:`tokensim.ir.Model`."""
        return cls(
            name=model.name,
            hidden=model.hidden,
            heads=model.heads,
            kv_heads=model.kv_heads,
            head_dim=model.head_dim,
            ffn=model.ffn,
            gated=model.mlp == "gated",
            mla=model.mla_shape,
        )

    def check_tp(self, tp: int) -> None:
        """Raise :class:`ProfileError` unless the layer shards ``tp`` ways."""
        if tp < 1:
            raise ProfileError(f"--tp must be at least 1, not {tp}")
        if self.heads % tp:
            raise ProfileError(f"{self.name} has {self.heads} heads, which {tp} GPUs cannot share")
        if self.kv_heads % tp and tp % self.kv_heads:
            raise ProfileError(
                f"{self.name} has {self.kv_heads} KV heads, which {tp} GPUs cannot share "
                "(tp must divide them or be a multiple of them)"
            )
        if self.ffn % tp:
            raise ProfileError(f"{self.name}'s ffn {self.ffn} does not split {tp} ways")

    def heads_per_gpu(self, tp: int) -> tuple[int, int]:
        """(query heads, KV heads) on one GPU; KV heads are replicated when tp exceeds them."""
        self.check_tp(tp)
        return self.heads // tp, max(1, self.kv_heads // tp)

    def gemms(self, tp: int) -> list[tuple[str, int, int]]:
        """``(kernel, n, k)`` of the layer's GEMMs on one of ``tp`` GPUs."""
        return self.projections(tp) + self.mlp(tp, self.ffn)

    def projections(self, tp: int) -> list[tuple[str, int, int]]:
        """``(kernel, n, k)`` of the attention's GEMMs on one of ``tp`` GPUs. MLA's
        down-projections (of the query and of the KV latent) run whole on every GPU, as
        vLLM replicates them; its up-projections and output split by heads."""
        heads, kv_heads = self.heads_per_gpu(tp)
        d = self.hidden
        if self.mla is not None:
            return mla_projections(d, self.heads, self.head_dim, self.mla, tp)
        return [
            ("qkv_proj", (heads + 2 * kv_heads) * self.head_dim, d),
            ("o_proj", d, heads * self.head_dim),
        ]

    def mlp(self, tp: int, ffn: int) -> list[tuple[str, int, int]]:
        """``(kernel, n, k)`` of an MLP of intermediate size ``ffn`` on one of ``tp`` GPUs."""
        part = ffn // tp
        return [
            ("up_proj", (2 if self.gated else 1) * part, self.hidden),
            ("down_proj", self.hidden, part),
        ]

    def elementwise(self, tp: int) -> list[tuple[str, int, int]]:
        """``(kernel, calls per layer, bytes per token)`` of the layer's elementwise ops on
        one of ``tp`` GPUs, with 16-bit activations read and written once per op."""
        heads, kv_heads = self.heads_per_gpu(tp)
        roped = (heads + kv_heads) * self.head_dim
        if self.mla is not None:  # the rotary parts: each query head's and the one key
            roped = (heads + 1) * self.mla[2]
        return [
            ("norm", 2, 4 * self.hidden),
            ("add", 2, 6 * self.hidden),
            ("rope", 1, 4 * roped),
            ("act", 1, (6 if self.gated else 4) * (self.ffn // tp)),
        ]

    def describe(self) -> str:
        return (
            f"hidden={self.hidden} heads={self.heads} kv_heads={self.kv_heads} "
            f"head_dim={self.head_dim} ffn={self.ffn} mlp={'gated' if self.gated else 'plain'}"
        )


@cache
def catalogue_models() -> dict:
    """The models of tokensim's std catalogue (``std/models``), by name, as checked IR."""
    from tokensim.lang.check import std_spec

    return {m.name: m for m in std_spec("models").models}


def catalogue_model(name: str) -> ModelShape:
    """The shapes of the catalogue model ``name``; :class:`ProfileError` if there is none."""
    from tokensim.lang.diagnostics import did_you_mean, one_of

    models = catalogue_models()
    if name not in models:
        hint = did_you_mean(name, models) or f"the catalogue has {one_of(models)}"
        raise ProfileError(f"unknown model {name!r}; {hint}")
    return ModelShape.from_ir(models[name])


# ---------------------------------------------------------------- grids


def _powers(first: int, last: int, base: int = 2) -> tuple[int, ...]:
    out, v = [], first
    while v <= last:
        out.append(v)
        v *= base
    return tuple(out)


@dataclass(frozen=True)
class Grid:
    """The sizes measured and how often.

    Prefill and decode points whose ``batch * length`` exceeds ``max_prefill_tokens``
    or ``max_decode_tokens`` are left out (they would not fit in memory).
    """

    m: tuple[int, ...] = _powers(1, 4096)
    prefill_batch: tuple[int, ...] = (1, 2, 4, 8, 16)
    prefill_length: tuple[int, ...] = _powers(128, 16384)
    decode_batch: tuple[int, ...] = _powers(1, 256)
    decode_length: tuple[int, ...] = _powers(128, 32768)
    allreduce_bytes: tuple[int, ...] = _powers(4 * KIB, 256 * MIB, 4)
    max_prefill_tokens: int = 65536
    max_decode_tokens: int = 1 << 20
    warmup: int = 5
    repeats: int = 25

    def prefill_points(self) -> list[tuple[int, int]]:
        return [
            (b, n)
            for b in self.prefill_batch
            for n in self.prefill_length
            if b * n <= self.max_prefill_tokens
        ]

    def decode_points(self) -> list[tuple[int, int]]:
        return [
            (b, n)
            for b in self.decode_batch
            for n in self.decode_length
            if b * n <= self.max_decode_tokens
        ]

    def describe(self) -> list[str]:
        def seq(values) -> str:
            return ",".join(str(v) for v in values)

        return [
            f"grid gemm/elementwise m: {seq(self.m)}",
            f"grid attention_prefill batch: {seq(self.prefill_batch)}; length: "
            f"{seq(self.prefill_length)}; batch*length <= {self.max_prefill_tokens}",
            f"grid attention_decode batch: {seq(self.decode_batch)}; length: "
            f"{seq(self.decode_length)}; batch*length <= {self.max_decode_tokens}",
            f"grid allreduce bytes: {seq(self.allreduce_bytes)}",
            f"repeats: {self.warmup} warm-up, then the median of {self.repeats}",
        ]


GPU_GRID = Grid()
CPU_GRID = Grid(
    m=_powers(1, 256),
    prefill_batch=(1, 2),
    prefill_length=(128, 256, 512, 1024),
    decode_batch=(1, 4, 16),
    decode_length=(256, 1024, 4096),
    max_prefill_tokens=2048,
    max_decode_tokens=16384,
    warmup=1,
    repeats=3,
)
QUICK_GRID = Grid(
    m=(1, 8, 64, 512),
    prefill_batch=(1,),
    prefill_length=(128, 512),
    decode_batch=(1, 8),
    decode_length=(256, 2048),
    allreduce_bytes=(4 * KIB, 256 * KIB, 16 * MIB),
    warmup=1,
    repeats=3,
)


def default_grid(device: str, quick: bool = False) -> Grid:
    """The grid ``tokensim profile`` uses on ``device`` (``--quick``: the small one)."""
    if quick:
        return QUICK_GRID
    return CPU_GRID if device == "cpu" else GPU_GRID


# ---------------------------------------------------------------- kernels


def sdpa(q, k, v, causal: bool = False, mask=None):
    """``scaled_dot_product_attention`` on ``[batch, heads, tokens, head_dim]`` tensors,
    with fewer KV heads than query heads (GQA) shared by consecutive query heads."""
    import torch.nn.functional as F  # noqa: N812

    heads, kv_heads = q.shape[1], k.shape[1]
    if heads == kv_heads:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    if heads % kv_heads:
        raise ValueError(f"{heads} query heads cannot share {kv_heads} KV heads")
    try:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True
        )
    except TypeError:  # torch < 2.5 has no enable_gqa
        group = heads // kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def paged_decode_attention(q, k_pool, v_pool, block_table, lengths):
    """Decode attention through a paged KV cache.

    ``q``: ``[batch, heads, 1, head_dim]``, one new token per sequence.
    ``k_pool``, ``v_pool``: ``[num_blocks, block, kv_heads, head_dim]``, every
    sequence's keys and values in blocks of ``block`` tokens.
    ``block_table``: ``[batch, blocks]`` integer tensor, the pool blocks of each
    sequence in order (token ``t`` lies in block ``block_table[s, t // block]`` at
    row ``t % block``).
    ``lengths``: the cached tokens of every sequence (an int when all are alike,
    else one per sequence; tokens past a sequence's length are masked out).

    Returns ``[batch, heads, 1, head_dim]``.
    """
    import torch

    batch, blocks = block_table.shape
    _, block, kv_heads, head_dim = k_pool.shape
    k = k_pool[block_table].reshape(batch, blocks * block, kv_heads, head_dim)
    v = v_pool[block_table].reshape(batch, blocks * block, kv_heads, head_dim)
    mask = None
    if isinstance(lengths, int):
        longest = lengths
    else:
        lens = torch.as_tensor(lengths, device=q.device)
        longest = int(lens.max())
        positions = torch.arange(longest, device=q.device)
        mask = (positions[None, :] < lens[:, None])[:, None, None, :]
    if longest > blocks * block:
        raise ValueError(f"{longest} tokens do not fit in {blocks} blocks of {block}")
    k = k[:, :longest].transpose(1, 2)
    v = v[:, :longest].transpose(1, 2)
    return sdpa(q, k, v, mask=mask)


def rmsnorm(x, weight, eps: float = 1e-6):
    """RMSNorm over the last dimension."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


# ---------------------------------------------------------------- timing


class Timer:
    """The median time of a callable after warm-up runs, on one device."""

    def __init__(self, device: str, warmup: int, repeats: int, flush_cache: bool = True):
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")
        self.warmup, self.repeats = max(0, warmup), max(1, repeats)
        self.flush = None
        if self.cuda and flush_cache:
            # Zeroing 256 MiB before each timed run evicts the L2 cache, as the rest
            # of a forward pass does between two calls of the same operator.
            self.flush = torch.empty(256 * MIB, dtype=torch.int8, device=device)

    def median(self, fn: Callable[[], object], before: Callable[[], object] | None = None):
        """Seconds of one call of ``fn`` (``before`` runs, untimed, ahead of each call)."""
        for _ in range(self.warmup):
            fn()
        times = []
        if self.cuda:
            torch = self.torch
            torch.cuda.synchronize()
            events = []
            for _ in range(self.repeats):
                if self.flush is not None:
                    self.flush.zero_()
                if before is not None:
                    before()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                events.append((start, end))
            torch.cuda.synchronize()
            times = [start.elapsed_time(end) / 1e3 for start, end in events]
        else:
            for _ in range(self.repeats):
                if before is not None:
                    before()
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        # A table's seconds must be above 0; no operator is faster than a nanosecond.
        return max(statistics.median(times), 1e-9)


# ---------------------------------------------------------------- environment


def gpu_catalogue_name(device_name: str) -> str:
    """The catalogue GPU name for a device name (``NVIDIA H100 80GB HBM3`` -> ``H100_SXM``).

    Names missing from :data:`GPU_NAMES` become upper-case words joined by ``_``,
    without the vendor (``NVIDIA A100 80GB PCIe`` -> ``A100_80GB_PCIE``).
    """
    if device_name in GPU_NAMES:
        return GPU_NAMES[device_name]
    if device_name.lower() == "cpu":
        return "CPU"
    words = re.sub(r"^(NVIDIA|AMD Instinct|AMD)\s+", "", device_name.strip())
    return re.sub(r"[^0-9A-Za-z]+", "_", words).strip("_").upper() or "GPU"


def _nvidia_smi(uuid: str | None, index: int) -> dict[str, str]:
    """driver, clocks of the GPU with ``uuid`` (or the ``index``-th) from nvidia-smi, if any."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    fields = "uuid,driver_version,clocks.sm,clocks.mem,clocks.max.sm"
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    rows = [r for r in rows if len(r) == 5]
    if not rows:
        return {}
    match = [r for r in rows if uuid and uuid.lower() in r[0].lower()]
    row = match[0] if match else rows[min(index, len(rows) - 1)]
    return {
        "driver": row[1],
        "clocks": f"sm {row[2]}, memory {row[3]}, max sm {row[4]}",
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine() or "n/a"


def environment(device: str) -> tuple[str, list[str]]:
    """(device name, comment lines describing the device and software) for ``device``."""
    import torch

    lines = [f"torch: {torch.__version__}", f"cuda: {torch.version.cuda or 'n/a'}"]
    if getattr(torch.version, "hip", None):
        lines.append(f"hip: {torch.version.hip}")
    if device.startswith("cuda"):
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        props = torch.cuda.get_device_properties(index)
        name = props.name
        smi = _nvidia_smi(str(getattr(props, "uuid", "") or ""), index)
        lines = [
            f"device: {name} (cuda:{index}, {props.total_memory / 2**30:.1f} GiB, "
            f"{props.multi_processor_count} SMs, compute capability {props.major}.{props.minor})",
            f"driver: {smi.get('driver', 'n/a')}",
            *lines,
            f"clocks: {smi.get('clocks', 'n/a')}",
        ]
    else:
        name = "cpu"
        lines = [
            f"device: cpu ({_cpu_model()}, {os.cpu_count() or 'n/a'} cores)",
            "driver: n/a",
            *lines,
            "clocks: n/a",
            f"threads: {torch.get_num_threads()}",
        ]
    return name, lines


# ---------------------------------------------------------------- profiling


@dataclass
class _Run:
    """State shared by one profile's measurements."""

    torch: object
    device: str
    dtype: object
    timer: Timer
    base: dict
    progress: Callable[[int, int, str], object] | None
    total: int
    done: int = 0
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def measure(self, what: str, op: str, cells: dict, build: Callable[[], Callable]) -> None:
        """Time the callable ``build()`` returns and add a row (skip it when out of memory)."""
        torch = self.torch
        oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
        try:
            seconds = self.timer.median(build())
        except oom:
            self.skipped.append(what)
            torch.cuda.empty_cache()
        else:
            self.rows.append({**self.base, "op": op, **cells, "seconds": seconds})
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, what)

    def randn(self, *shape):
        return self.torch.randn(*shape, device=self.device, dtype=self.dtype)


def profile(
    model: ModelShape,
    tp: int = 1,
    device: str = "cpu",
    *,
    grid: Grid | None = None,
    gpu_name: str | None = None,
    dtype: str | None = None,
    allreduce: bool = True,
    flush_cache: bool = True,
    threads: int | None = None,
    progress: Callable[[int, int, str], object] | None = None,
) -> tables.Table:
    """Measure ``model``'s operators, sharded ``tp`` ways, on ``device`` (``cpu``, ``cuda``
    or ``cuda:N``) and return them as a table.

    ``grid``: the sizes and repeat counts (default: :func:`default_grid`).
    ``gpu_name``: the ``gpu`` column (default: derived from the device name).
    ``dtype``: ``bf16``, ``fp16`` or ``fp32`` (default: bf16 on a GPU, fp32 on the CPU).
    ``allreduce``: also time NCCL all-reduce when the machine has several GPUs.
    ``flush_cache``: evict the GPU's L2 cache before each timed run.
    ``threads``: on the CPU, the threads torch computes with (default: torch's own).
    ``progress``: called as ``progress(done, total, what)`` after each measurement.

    Raises :class:`ProfileError` for a device or shape it cannot measure and
    ``ImportError`` when PyTorch is missing.
    """
    if model.mla is not None:  # its attention would be measured as multi-head attention
        raise ProfileError(
            f"{model.name} uses multi-head latent attention, whose kernels `tokensim profile` "
            "does not measure; its costs come from the roofline"
        )
    import torch

    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise ProfileError("PyTorch sees no CUDA device")
    if not cuda and device != "cpu":
        raise ProfileError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    if cuda and torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device))
    model.check_tp(tp)
    grid = grid or default_grid("cuda" if cuda else "cpu")
    dtype = dtype or ("bf16" if cuda else "fp32")
    if dtype not in DTYPES:
        raise ProfileError(f"unknown dtype {dtype!r}; one of {', '.join(DTYPES)}")
    if threads is not None and threads < 1:
        raise ProfileError(f"threads must be at least 1, not {threads}")
    saved_threads = torch.get_num_threads()
    if threads is not None and not cuda:
        torch.set_num_threads(threads)
    try:
        return _profile(
            torch, model, tp, device, grid, gpu_name, dtype, allreduce, flush_cache, progress
        )
    finally:
        torch.set_num_threads(saved_threads)


def _profile(torch, model, tp, device, grid, gpu_name, dtype, allreduce, flush_cache, progress):
    cuda = device.startswith("cuda")
    torch_dtype = getattr(torch, DTYPES[dtype])
    device_name, env_lines = environment(device)
    gpu = gpu_name or gpu_catalogue_name(device_name)

    gpus = torch.cuda.device_count() if cuda else 0
    groups = _powers(2, gpus) if allreduce and gpus > 1 else ()
    if groups and groups[-1] != gpus:
        groups = (*groups, gpus)

    heads, kv_heads = model.heads_per_gpu(tp)
    gemms = model.gemms(tp)
    prefill, decode = grid.prefill_points(), grid.decode_points()
    total = (
        len(gemms) * len(grid.m)
        + len(prefill)
        + len(decode)
        + len(grid.m)
        + (1 if groups and grid.allreduce_bytes else 0)
    )
    run = _Run(
        torch=torch,
        device=device,
        dtype=torch_dtype,
        timer=Timer(device, grid.warmup, grid.repeats, flush_cache),
        base={"gpu": gpu, "model": model.name, "tp": tp, "dtype": dtype},
        progress=progress,
        total=total,
    )
    with torch.inference_mode():
        for kernel, n, k in gemms:
            weight = run.randn(n, k) / k**0.5  # nn.Linear's layout: [out, in]
            for m in grid.m:
                run.measure(
                    f"gemm {kernel} m={m} n={n} k={k}",
                    "gemm",
                    {"kernel": kernel, "m": m, "n": n, "k": k},
                    lambda m=m, k=k, weight=weight: _gemm(run, weight, m, k),
                )
            del weight
        shape = {"heads": heads, "kv_heads": kv_heads, "head_dim": model.head_dim}
        for batch, length in prefill:
            run.measure(
                f"attention_prefill batch={batch} length={length}",
                "attention_prefill",
                {"kernel": "sdpa_causal", "batch": batch, "length": length, **shape},
                lambda b=batch, n=length: _prefill(run, b, n, heads, kv_heads, model.head_dim),
            )
        for batch, length in decode:
            run.measure(
                f"attention_decode batch={batch} length={length}",
                "attention_decode",
                {"kernel": "paged_sdpa", "batch": batch, "length": length, **shape},
                lambda b=batch, n=length: _decode(run, b, n, heads, kv_heads, model.head_dim),
            )
        for m in grid.m:
            run.measure(
                f"elementwise norm m={m}",
                "elementwise",
                {"kernel": "norm", "m": m, "bytes": 2 * m * model.hidden * DTYPE_BYTES[dtype]},
                lambda m=m: _rmsnorm(run, m, model.hidden),
            )
    if groups and grid.allreduce_bytes:
        for g, size, seconds in _allreduce(groups, grid):
            run.rows.append(
                {"gpu": gpu, "op": "allreduce", "kernel": "nccl", "dtype": "bf16"}
                | {"gpus": g, "bytes": size, "seconds": seconds}
            )
        run.done += 1
        if progress is not None:
            progress(run.done, total, "allreduce")

    if not cuda:
        allreduce_note = "allreduce: skipped (measured on the CPU)"
    elif gpus < 2:
        allreduce_note = "allreduce: skipped (one GPU)"
    elif not allreduce or not grid.allreduce_bytes:
        allreduce_note = "allreduce: skipped (not asked for)"
    else:
        allreduce_note = (
            f"allreduce: torch.distributed NCCL over {', '.join(map(str, groups))} GPUs"
        )
    if not cuda:
        timing = "time.perf_counter around each call"
    elif flush_cache:
        timing = "torch.cuda.Event around each call, L2 cache flushed before each"
    else:
        timing = "torch.cuda.Event around each call"
    comments = [
        "tokensim operator timings, measured by `tokensim profile` with PyTorch",
        f"gpu: {gpu}",
        *env_lines,
        f"model: {model.name} ({model.describe()}), tp {tp}: {heads} heads, "
        f"{kv_heads} kv_heads per GPU",
        f"dtype: {dtype}",
        *grid.describe(),
        f"timing: {timing}",
        "gemm: torch.nn.functional.linear, m x k input, [n, k] weight",
        "attention_prefill: scaled_dot_product_attention, is_causal",
        f"attention_decode: gather through a block table (block {BLOCK} tokens) "
        "+ scaled_dot_product_attention, timed together",
        "elementwise: rms_norm over m x hidden; bytes = 2 * m * hidden * element size",
        allreduce_note,
    ]
    if run.skipped:
        comments.append(f"skipped (out of memory): {'; '.join(run.skipped)}")
    return tables.from_rows(run.rows, comments)


def _gemm(run: _Run, weight, m: int, k: int):
    import torch.nn.functional as F  # noqa: N812

    x = run.randn(m, k)
    return lambda: F.linear(x, weight)


def _prefill(run: _Run, batch: int, length: int, heads: int, kv_heads: int, head_dim: int):
    q = run.randn(batch, heads, length, head_dim)
    k = run.randn(batch, kv_heads, length, head_dim)
    v = run.randn(batch, kv_heads, length, head_dim)
    return lambda: sdpa(q, k, v, causal=True)


def _decode(run: _Run, batch: int, length: int, heads: int, kv_heads: int, head_dim: int):
    torch = run.torch
    blocks = -(-length // BLOCK)
    k_pool = run.randn(batch * blocks, BLOCK, kv_heads, head_dim)
    v_pool = run.randn(batch * blocks, BLOCK, kv_heads, head_dim)
    # Scattered blocks, as a cache that has served many requests holds them.
    generator = torch.Generator().manual_seed(0)
    table = torch.randperm(batch * blocks, generator=generator).view(batch, blocks)
    table = table.to(run.device)
    q = run.randn(batch, heads, 1, head_dim)
    return lambda: paged_decode_attention(q, k_pool, v_pool, table, length)


def _rmsnorm(run: _Run, m: int, hidden: int):
    x = run.randn(m, hidden)
    weight = run.randn(hidden)
    return lambda: rmsnorm(x, weight)


def _allreduce(groups: Sequence[int], grid: Grid) -> list[tuple[int, int, float]]:
    """(gpus, bytes, seconds) of NCCL all-reduce over the first ``g`` local GPUs, each ``g``."""
    import json

    import torch.multiprocessing as mp

    world = max(groups)
    with tempfile.TemporaryDirectory(prefix="tokensim-profile-") as tmp:
        out = Path(tmp) / "allreduce.json"
        mp.spawn(
            _allreduce_worker,
            args=(world, f"file://{Path(tmp) / 'rendezvous'}", str(out), tuple(groups), grid),
            nprocs=world,
            join=True,
        )
        return [tuple(r) for r in json.loads(out.read_text("utf-8"))]


def _allreduce_worker(rank: int, world: int, init: str, out: str, groups, grid: Grid) -> None:
    """One process of the all-reduce measurement (one per GPU); rank 0 writes the results."""
    import json

    import torch
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    device = f"cuda:{rank}"
    options = {"init_method": init, "rank": rank, "world_size": world}
    try:
        dist.init_process_group("nccl", device_id=torch.device(device), **options)
    except TypeError:  # torch < 2.3 has no device_id
        dist.init_process_group("nccl", **options)
    timer = Timer(device, grid.warmup, grid.repeats)
    results = []
    try:
        for g in groups:
            group = dist.new_group(list(range(g)))  # every rank takes part in creating it
            for size in grid.allreduce_bytes:
                if rank < g:
                    x = torch.ones(max(1, size // 2), dtype=torch.bfloat16, device=device)
                    seconds = timer.median(
                        lambda x=x, group=group: dist.all_reduce(x, group=group),
                        before=lambda group=group: dist.barrier(group=group),
                    )
                    results.append((g, size, seconds))
                    del x
                dist.barrier()
        if rank == 0:
            Path(out).write_text(json.dumps(results), "utf-8")
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- output and CLI


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``profile`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "profile",
        help="measure operator timings on this machine and write a table",
        description="Time the GEMMs, attention, RMSNorm and (with several GPUs) all-reduce "
        "of one layer of MODEL with PyTorch on this machine's GPU (or CPU) and write them "
        "as a tokensim operator-timing table. Needs PyTorch: pip install 'tokensim[profile]'.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--gpu", action="store_true", help="measure on the CUDA GPU")
    where.add_argument("--cpu", action="store_true", help="measure on the CPU (the default)")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"a model of the std catalogue whose shapes to measure (default: {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--tp", type=int, default=1, metavar="N", help="tensor-parallel degree (default: 1)"
    )
    p.add_argument("--quick", action="store_true", help="a small grid, for a first look")
    p.add_argument(
        "--gpu-name",
        metavar="NAME",
        help="the gpu column: a catalogue GPU name such as H100_SXM "
        "(default: derived from the device name)",
    )
    p.add_argument("--repeats", type=int, metavar="N", help="timed runs per point")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed runs before them")
    p.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads torch uses (default: its own)"
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the table to write")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """``tokensim profile``: returns the exit status (0 ok, 2 usage error, 130 interrupted)."""
    try:
        return _run(args)
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nerror: interrupted; nothing written", file=sys.stderr)
        return 130


def _run(args) -> int:
    shape = catalogue_model(args.model)
    shape.check_tp(args.tp)
    out = Path(args.output)
    if out.is_dir():
        raise ProfileError(f"{out} is a folder; -o takes the table file to write")
    if not out.parent.is_dir():
        raise ProfileError(f"no such folder: {out.parent}")
    for name, least in (("repeats", 1), ("warmup", 0), ("threads", 1)):
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise ProfileError(f"--{name} must be at least {least}, not {value}")
    try:
        import torch
    except ImportError:
        raise ProfileError(NEEDS_TORCH) from None
    device = "cuda" if args.gpu else "cpu"
    if args.gpu and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ProfileError(f"--gpu: PyTorch {torch.__version__} ({build}) sees no CUDA device")
    grid = default_grid(device, args.quick)
    if args.repeats is not None:
        grid = replace(grid, repeats=args.repeats)
    if args.warmup is not None:
        grid = replace(grid, warmup=args.warmup)
    from tokensim.progress import progress_bar

    progress = None if args.quiet else progress_bar(sys.stderr, "timings", "op")
    table = profile(
        shape,
        args.tp,
        device,
        grid=grid,
        gpu_name=args.gpu_name,
        threads=args.threads,
        progress=progress,
    )
    if progress is not None:
        progress.close()
    tables.write_atomic(table, out)
    if not args.quiet:
        print(f"wrote {out}: {len(table)} timings of {shape.name}, tp {args.tp}", file=sys.stderr)
    return 0
