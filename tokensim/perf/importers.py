"""Importers: published operator timings into the tokensim table format.

* Vidur (microsoft/vidur) profiling data: ``compute/<gpu>/<org>/<model>/mlp.csv``
  (per-layer operators of a Llama-style block, ms, one GPU, one layer) and
  ``network/<node>/all_reduce.csv`` / ``send_recv.csv`` (NCCL, ms by size in fp16
  elements).
* NVIDIA's kernel tables (ai-dynamo/aiconfigurator, vLLM kernels):
  ``<gpu>/gemm_perf.csv``, ``context_attention_perf.csv``,
  ``generation_attention_perf.csv``, ``nccl_perf.csv``,
  ``custom_allreduce_perf.csv`` (ms; all-reduce message sizes in elements).

:func:`load` takes a file or a folder (searched recursively) and picks the
importer by file name. The GPU comes from the folder names the sources use;
``gpu=`` overrides it. Times become seconds; everything else keeps its value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from tokensim.perf import tables
from tokensim.perf.ops import DTYPE_BYTES
from tokensim.perf.profile import ModelShape

# folder names the sources use -> catalogue GPU names
GPU_NAMES = {
    "a100": "A100_80G",
    "h100": "H100_SXM",
    "a40": "A40",
    "a100_dgx": "A100_80G",
    "h100_dgx": "H100_SXM",
    "a100_sxm": "A100_80G",
    "h100_sxm": "H100_SXM",
    "h200_sxm": "H200",
}
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "fp8": "fp8", "fp8_block": "fp8"}
NVIDIA_FILES = (
    "gemm_perf.csv",
    "context_attention_perf.csv",
    "generation_attention_perf.csv",
    "nccl_perf.csv",
    "custom_allreduce_perf.csv",
)
VIDUR_FILES = ("mlp.csv", "all_reduce.csv", "send_recv.csv")
# Vidur's GEMM columns, in the order of ModelShape.gemms; its elementwise columns' kinds
VIDUR_GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
VIDUR_ELEMENTWISE = {
    "input_layernorm": "norm",
    "post_attention_layernorm": "norm",
    "attn_rope": "rope",
    "mlp_act": "act",
    "add": "add",
}

# Vidur's models whose norm is torch's LayerNorm (its model configs); the others use RMSNorm
VIDUR_NORMS = {"phi-2": "layer_norm"}


class SourceError(tables.TableError):
    """A source file that cannot be imported."""


def load(path: str | Path, gpu: str | None = None) -> tables.Table:
    """Import one source file, or every known file under a folder, as one table."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*.csv") if p.name in VIDUR_FILES or p.name in NVIDIA_FILES
        )
        if not files:
            raise SourceError(
                f"{path}: no Vidur ({', '.join(VIDUR_FILES)}) or NVIDIA "
                f"({', '.join(NVIDIA_FILES)}) timing files under this folder"
            )
        loaded, skipped = [], []
        for p in files:
            try:
                loaded.append(load(p, gpu))
            except SourceError as e:
                if "cannot tell the GPU" not in str(e):
                    raise
                skipped.append(str(p))
        table = tables.concat(loaded)
        table.comments += [f"skipped {p}: GPU not in the catalogue" for p in skipped]
        return table
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if path.name == "mlp.csv":
        rows = vidur_mlp(path, gpu)
        source = "Vidur per-layer operator profile (microsoft/vidur), medians"
    elif path.name in ("all_reduce.csv", "send_recv.csv"):
        rows = vidur_network(path, gpu)
        source = "Vidur NCCL collective profile (microsoft/vidur), medians"
    elif path.name in NVIDIA_FILES:
        rows = nvidia(path, gpu)
        source = "NVIDIA kernel timings (ai-dynamo/aiconfigurator), vLLM kernels"
    else:
        raise SourceError(
            f"{path}: not a known timing file; expected one of "
            f"{', '.join(VIDUR_FILES + NVIDIA_FILES)} or a tokensim table"
        )
    return tables.from_rows(list(rows), [f"imported from {path}: {source}"])


def _gpu_from_path(path: Path, gpu: str | None) -> str:
    if gpu:
        return gpu
    for part in reversed(path.parts[:-1]):
        if part in GPU_NAMES:
            return GPU_NAMES[part]
    raise SourceError(
        f"{path}: cannot tell the GPU from the path (known folders: "
        f"{', '.join(sorted(GPU_NAMES))}); give it with --gpu"
    )


def _csv(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from enumerate(csv.DictReader(f), start=2)


def _num(row: dict, name: str, where: str) -> float:
    try:
        return float(row[name])
    except KeyError:
        raise SourceError(f"{where}: no column {name!r}") from None
    except (TypeError, ValueError):
        raise SourceError(f"{where}: {name} {row.get(name)!r} is not a number") from None


def vidur_mlp(path: Path, gpu: str | None = None) -> Iterator[dict]:
    """Rows of a Vidur ``mlp.csv``: four GEMMs and five elementwise ops per line."""
    gpu = _gpu_from_path(path, gpu)
    model = path.parent.name
    for number, r in _csv(path):
        where = f"{path}:{number}"
        tokens = int(_num(r, "num_tokens", where))
        tp = int(_num(r, "num_tensor_parallel_workers", where))
        d = int(_num(r, "n_embd", where))
        heads = int(_num(r, "n_head", where))
        kv = int(_num(r, "n_kv_head", where))
        ffn = int(_num(r, "n_expanded_embd", where))
        gated = str(r.get("use_gated_mlp")).strip().lower() == "true"
        shape = ModelShape(model, d, heads, kv, d // heads, ffn, gated)
        base = {"gpu": gpu, "model": model, "tp": tp, "dtype": "fp16"}
        for column, (_, n, k) in zip(VIDUR_GEMMS, shape.gemms(tp), strict=True):
            ms = _num(r, f"time_stats.{column}.median", where)
            yield {**base, "op": "gemm", "kernel": column, "m": tokens, "n": n, "k": k,
                   "seconds": ms * 1e-3}  # fmt: skip
        per_token = {kernel: nbytes for kernel, _, nbytes in shape.elementwise(tp)}
        # the kernels Vidur's block runs (vidur/profiling/mlp/mlp_impl.py): its own
        # RMSNorm and SiLU-and-mul, or torch's LayerNorm and GELU; a block without a
        # second norm runs attention and MLP side by side and adds both to the
        # residual: two adds in one timing, 12 bytes an element
        names = {"norm": VIDUR_NORMS.get(model, "norm"), "act": "act" if gated else "gelu"}
        if "time_stats.post_attention_layernorm.median" not in r:
            names["add"] = "add3"
            per_token["add3"] = 12 * d
        for column, kernel in VIDUR_ELEMENTWISE.items():
            if f"time_stats.{column}.median" not in r:
                continue  # not in every block (phi-2 has no second norm)
            ms = _num(r, f"time_stats.{column}.median", where)
            name = names.get(kernel, kernel)
            yield {**base, "op": "elementwise", "kernel": name, "m": tokens,
                   "bytes": per_token.get(name, per_token[kernel]) * tokens,
                   "seconds": ms * 1e-3}  # fmt: skip


def vidur_network(path: Path, gpu: str | None = None) -> Iterator[dict]:
    """Rows of Vidur's ``all_reduce.csv`` (collectives inside one node) or ``send_recv.csv``."""
    gpu = _gpu_from_path(path, gpu)
    collective = "allreduce" if path.name == "all_reduce.csv" else "send_recv"
    stat = (
        "time_stats.all_reduce.median"
        if collective == "allreduce"
        else "time_stats.send_recv.median"
    )
    for number, r in _csv(path):
        where = f"{path}:{number}"
        workers = int(_num(r, "num_workers", where))
        per_node = int(_num(r, "devices_per_node", where))
        if collective == "allreduce" and per_node != workers:
            continue  # spans nodes: a network measurement, not the GPU's
        kernel = "nccl" if collective == "allreduce" else (
            "nccl intra-node" if per_node > 1 else "nccl inter-node")  # fmt: skip
        yield {"gpu": gpu, "op": collective, "kernel": kernel, "dtype": "fp16", "gpus": workers,
               "bytes": _num(r, "size", where) * _element_bytes("fp16", where),
               "seconds": _num(r, stat, where) * 1e-3}  # fmt: skip


def nvidia(path: Path, gpu: str | None = None) -> Iterator[dict]:
    """Rows of one of NVIDIA's kernel tables (bf16/fp16/fp8 compute; attention with a
    16-bit or an fp8 KV cache, ``kv_dtype``: vLLM runs another kernel path for each)."""
    gpu = _gpu_from_path(path, gpu)
    name = path.name
    for number, r in _csv(path):
        where = f"{path}:{number}"
        seconds = _num(r, "latency", where) * 1e-3
        base = {"gpu": gpu, "kernel": r.get("kernel_source", ""), "seconds": seconds}
        if name == "gemm_perf.csv":
            dtype = DTYPES.get(r.get("gemm_dtype", ""))
            if dtype is None or r.get("gemm_dtype") == "fp8_block":
                continue
            yield {**base, "op": "gemm", "dtype": dtype, "m": _num(r, "m", where),
                   "n": _num(r, "n", where), "k": _num(r, "k", where)}  # fmt: skip
        elif name in ("context_attention_perf.csv", "generation_attention_perf.csv"):
            decode = name.startswith("generation")
            length = _num(r, "isl", where) + (_num(r, "step", where) if decode else 0)
            kv = r.get("kv_cache_dtype") or r.get("attn_dtype", "")
            yield {**base, "op": "attention_decode" if decode else "attention_prefill",
                   "dtype": DTYPES.get(r.get("attn_dtype", ""), r.get("attn_dtype", "")),
                   "kv_dtype": DTYPES.get(kv, kv),
                   "batch": _num(r, "batch_size", where), "length": length,
                   "heads": _num(r, "num_heads", where),
                   "kv_heads": _num(r, "num_key_value_heads", where),
                   "head_dim": _num(r, "head_dim", where)}  # fmt: skip
        else:  # all-reduce tables
            if r.get("op_name") != "all_reduce":
                continue
            backend = r.get("backend") or r.get("kernel_source", "")
            if name == "custom_allreduce_perf.csv" and backend != "vllm_graph":
                continue  # eager launches: not what a serving engine runs
            dtype = r.get("allreduce_dtype") or r.get("nccl_dtype") or ""
            dtype = DTYPES.get(dtype, dtype)
            size = _num(r, "message_size", where) * _element_bytes(dtype, where)
            yield {**base, "op": "allreduce", "kernel": backend, "dtype": dtype,
                   "gpus": _num(r, "num_gpus", where), "bytes": size}  # fmt: skip


def _element_bytes(dtype: str, where: str) -> float:
    """Bytes of one element: both sources give collective message sizes in elements
    (Vidur's buffers are ``size`` fp16 elements; NVIDIA's ``message_size`` is the
    byte size over the element size)."""
    if dtype not in DTYPE_BYTES:
        raise SourceError(f"{where}: unknown all-reduce dtype {dtype!r}")
    return DTYPE_BYTES[dtype]
