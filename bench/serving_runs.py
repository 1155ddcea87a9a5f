"""Measured serving runs, as records the end-to-end accuracy harness can simulate.

Each loader reads one source of ``../shared/data/serving`` (see its README: sources, units,
caveats) and returns ``(runs, skips)``: :class:`MeasuredRun` records for what tokensim can
represent, and a :class:`Skip` with a reason for every row it cannot (or should not) use.

Units, everywhere in the records: latencies in seconds, throughputs per second (requests/s,
output tokens/s), lengths in tokens. The sources write milliseconds in most summaries; the
loaders convert.

Caveats applied (README of the data folder):

* GPUStack ``guidellm`` rows: TPOT/ITL are not per token; the per-token time is derived as
  (mean E2E - mean TTFT) / (mean output - 1) (metric ``tpot_e2e``).
* GPUStack rows whose median ITL is under 1 ms (TensorRT-LLM streaming several tokens a
  message) keep only the mean ITL.
* ShareGPT rows of GPUStack and DataCrunch: only the totals are known; lengths are drawn
  from the shape of ShareGPT lengths (:data:`SHAREGPT_SHAPE`) scaled to the run's mean input
  and output tokens per request.
* LambdaLabs: requests with ``output_lens`` 0 failed (prompt + output > max_model_len) and are
  dropped; vLLM's summaries include them, so TTFT is recomputed from the per-request array,
  request throughput counts the successful ones, and E2E is corrected (see the loader). ITL is
  per streamed chunk (multi-step scheduling, ~10 tokens a chunk): vLLM 0.6 with
  ``num_scheduler_steps 10`` is assumed.
* BLIS: inference-perf's TPOT is not per token and its ITL is per chunk: the per-token time is
  derived from E2E and TTFT; the overloaded ``reasoning`` runs and the all-stage summary rows
  are skipped; output lengths are the requested ones (``ignore_eos``; the reported
  ``output_len`` is re-tokenized text).
* NIM: genai-perf's "ITL" is (E2E - TTFT) / (output - 1) per request, i.e. vLLM's TPOT, and
  is recorded as ``tpot``.

``python3 bench/serving_runs.py`` lists what each source yields and why rows are skipped.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tokensim.replay import serve

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("TOKENSIM_SERVING_DATA", ROOT.parent / "shared" / "data" / "serving"))

SOURCES = ("gpustack", "lambdalabs", "nim", "blis", "datacrunch")
FAMILIES = ("TTFT", "TPOT", "ITL", "E2E", "throughput")

# The shape of ShareGPT lengths: the 0, 5, ..., 100th percentiles of prompt and output tokens
# divided by their means, from the 303 successful requests of LambdaLabs' 320-prompt ShareGPT
# sample (vLLM benchmark_serving.py, seed 0, Llama-3 tokenizer; 1xH100 run). Prompts are
# close to log-normal (median/mean 0.34); outputs are not (median/mean 0.85: a lump of short
# answers and a broad body), so a log-normal matched to the mean would put the median output
# at a third of the mean. Runs with only totals draw from this shape scaled to their means.
SHAREGPT_SHAPE = (
    (0.021, 0.041, 0.052, 0.062, 0.079, 0.103, 0.129, 0.163, 0.215, 0.273, 0.34,
     0.466, 0.737, 1.084, 1.331, 1.697, 1.868, 2.455, 3.184, 3.586, 4.812),
    (0.014, 0.037, 0.057, 0.079, 0.107, 0.123, 0.195, 0.287, 0.459, 0.681, 0.853,
     1.003, 1.159, 1.329, 1.493, 1.635, 1.807, 1.963, 2.247, 2.657, 3.618),
)  # fmt: skip
# vLLM's and SGLang's ShareGPT samplers keep prompts of 4..1024 tokens and prompt + output
# <= 2048 tokens.
SHAREGPT_LIMITS = (4, 1024, 2048)


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Metric:
    """One measured figure. ``name`` is ``ttft``, ``tpot``, ``itl``, ``e2e``, ``tpot_e2e``
    (per-token time derived as (E2E - TTFT) / (output - 1) from the ``stat`` of each) or
    ``throughput``; ``stat`` is ``mean``, ``p50``, ``p90``, ``p95``, ``p99`` (latencies) or
    ``requests_per_s``, ``output_tokens_per_s`` (throughput). ``value`` is in ``unit``: seconds
    for latencies, 1/s for request throughput, tokens/s for token throughput."""

    name: str
    stat: str
    value: float
    unit: str

    @property
    def key(self) -> str:
        return f"{self.name}_{self.stat}"

    @property
    def family(self) -> str:
        return {
            "ttft": "TTFT",
            "tpot": "TPOT",
            "tpot_e2e": "TPOT",
            "itl": "ITL",
            "e2e": "E2E",
            "throughput": "throughput",
        }[self.name]


def _latency(name: str, stat: str, seconds: float) -> Metric:
    return Metric(name, stat, float(seconds), "s")


@dataclass(frozen=True)
class Flags:
    """The serving flags that matter to a simulation; None where the run leaves the engine's
    default of its version. ``gpu_memory_utilization`` is vLLM's share of the whole device
    (SGLang ``--mem-fraction-static``); TensorRT-LLM's ``free_gpu_memory_fraction`` (a share
    of what is left after loading) is kept in ``kv_free_fraction``."""

    tp: int = 1
    pp: int = 1
    dp: int = 1  # attention ranks of tp GPUs each (SGLang --enable-dp-attention)
    ep: int = 1  # expert parallelism over the instance's GPUs
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    kv_free_fraction: float | None = None
    kv_cache_dtype: str | None = None  # fp8, or None for the model's dtype
    quantization: str | None = None
    chunked_prefill: bool | None = None
    num_scheduler_steps: int | None = None
    enable_prefix_caching: bool | None = None
    enforce_eager: bool | None = None  # True: no CUDA graphs
    cuda_graph_max_bs: int | None = None
    async_scheduling: bool | None = None
    torch_compile: bool | None = None
    attention_backend: str | None = None
    extra: tuple[tuple[str, str], ...] = ()  # other flags as written, for the record


@dataclass(frozen=True)
class PromptSet:
    """A load that cycles through ``groups x per_group`` distinct prompts, shuffled once;
    the prompts of a group open with the same ``shared``-token system prompt
    (inference-perf's ``shared_prefix`` data: request ``i`` sends prompt ``i mod n``)."""

    groups: int
    per_group: int
    shared: int

    @property
    def distinct(self) -> int:
        return self.groups * self.per_group


@dataclass(frozen=True)
class Workload:
    """The load a run put on the server.

    ``arrival``: ``burst`` (every request at t=0), ``closed`` (``concurrency`` clients, each
    sending its next request when its previous one finished), ``constant`` or ``poisson``
    (``rate`` requests/s). ``lengths``: ``fixed`` (``prompt`` -> ``output``), ``uniform``
    (``prompt_range`` -> ``output_range``, inclusive), ``list`` (``prompt_lens`` /
    ``output_lens``, one per request, in arrival order) or ``sharegpt`` (only the mean
    tokens per request ``mean_prompt`` / ``mean_output`` are known; lengths are drawn from
    :data:`SHAREGPT_SHAPE` scaled to them).

    ``prompts``: the load cycles through a fixed set of distinct prompts (a benchmark's
    shared-prefix dataset), so a prefix cache sees repeats; see :class:`PromptSet`."""

    arrival: str
    requests: int
    lengths: str
    rate: float | None = None
    concurrency: int | None = None
    prompt: int | None = None
    output: int | None = None
    prompt_range: tuple[int, int] | None = None
    output_range: tuple[int, int] | None = None
    prompt_lens: tuple[int, ...] = ()
    output_lens: tuple[int, ...] = ()
    mean_prompt: float | None = None
    mean_output: float | None = None
    seed: int = 1
    prompts: PromptSet | None = None


@dataclass(frozen=True)
class MeasuredRun:
    """One measured serving run: its setup, its load and what was measured."""

    id: str
    source: str
    engine: str  # vllm, sglang, trtllm or nim
    engine_version: str
    flags: Flags
    gpu: str  # catalogue name: A100_80G, H100_SXM, H200
    gpus: int  # GPUs the serving instance uses (tp x pp)
    model: str  # catalogue name in std/models
    dtype: str  # weight data type: bf16 or fp8
    workload: Workload
    metrics: tuple[Metric, ...]
    notes: tuple[str, ...] = ()
    origin: str = ""  # file (and line or row) it came from, relative to the data folder

    @property
    def measured(self) -> dict[str, Metric]:
        return {m.key: m for m in self.metrics}


@dataclass(frozen=True)
class Skip:
    """A row that is not simulated, and why (``reason`` is one of a few fixed phrases, to
    count by; ``detail`` says more)."""

    id: str
    source: str
    reason: str
    detail: str = ""


@dataclass
class Loaded:
    runs: list[MeasuredRun] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


# Skip reasons (the harness counts runs per reason).
ASCEND = "Ascend NPU"
SPECULATIVE = "speculative decoding"
FAILURES = "failed requests"
DOC_SLIP = "doc slip"
OVERLOADED = "overloaded (BLIS reasoning run)"
DUPLICATE = "duplicate of other rows"
NO_SETUP = "summary table without a per-run setup"
FP8_A100 = "fp8 weights on A100 (weight-only FP8)"
INT4 = "4-bit weight-only quantization (AWQ)"
EXPERT_PARALLEL = "expert or data parallelism"
CLOSED_LOOP = "closed loop not supported yet"


def model_reason(kind: str) -> str:
    return f"model not representable: {kind}"


# ------------------------------------------------------------------- name mappings

GPUS = (
    ("A100", "A100_80G"),
    ("H100", "H100_SXM"),
    ("H200", "H200"),
)


def gpu_name(text: str) -> str | None:
    """Catalogue name of a GPU as a source writes it (None for Ascend and unknowns)."""
    for key, name in GPUS:
        if key in text.upper():
            return name
    return None


# (pattern in the served model's name, catalogue model, or None and why not)
MODELS: tuple[tuple[str, str | None, str], ...] = (
    ("qwen3.5", None, "hybrid linear attention (Gated DeltaNet), Qwen3.5"),
    ("qwen3-235b-a22b", "qwen3_235b_a22b", ""),
    ("qwen3-30b-a3b", "qwen3_30b_a3b", ""),
    ("qwen3-32b", "qwen3_32b", ""),
    ("qwen3-14b", "qwen3_14b", ""),
    ("qwen3-8b", "qwen3_8b", ""),
    ("deepseek-v3.2", None, "DeepSeek Sparse Attention (DeepSeek-V3.2)"),
    ("deepseek-r1", "deepseek_v3", ""),  # DeepSeek-V3's shapes
    ("deepseek-v3", "deepseek_v3", ""),
    ("deepseek", None, "a DeepSeek model not in the catalogue"),
    ("gpt-oss", None, "MXFP4 MoE with sliding-window attention and sinks (gpt-oss)"),
    ("glm-5", None, "sparse latent attention MoE (GLM-5)"),
    ("glm-4.5-air", "glm4_5_air", ""),
    ("glm-4.6", "glm4_6", ""),
    ("glm-4.5", "glm4_5", ""),
    ("glm-4", None, "a GLM-4 model not in the catalogue"),
    ("meta-llama-3.1-8b", "llama3_1_8b", ""),
    ("llama-3.1-8b", "llama3_1_8b", ""),
    ("meta-llama-3-8b", "llama3_8b", ""),
    ("meta-llama-3-70b", "llama3_70b", ""),
    ("llama-3.3-70b", "llama3_3_70b", ""),
    ("llama-3.1-405b", "llama3_1_405b", ""),
    ("llama-2-70b", "llama2_70b", ""),
    ("llama-2-7b", "llama2_7b", ""),
    ("mixtral-8x7b", "mixtral_8x7b", ""),
    ("codellama-34b", "codellama_34b", ""),
)


# the weights' precision where a source writes "checkpoint default": the published checkpoint's
CHECKPOINT_DTYPE = {"deepseek_v3": "fp8"}  # DeepSeek-V3 and R1 ship block-quantized fp8


def model_name(text: str) -> tuple[str | None, str]:
    """(catalogue model, '') or (None, why it cannot be simulated)."""
    low = text.lower()
    for pattern, name, why in MODELS:
        if pattern in low:
            return name, why
    return None, f"not in the catalogue ({text})"


def _f(text: str | None) -> float | None:
    """A CSV cell as a float (None when empty)."""
    if text is None or not str(text).strip():
        return None
    return float(text)


def _ms(text) -> float | None:
    v = _f(text)
    return None if v is None else v / 1000.0


# ---------------------------------------------------------------- serve flags


def parse_flags(command: str) -> dict[str, str | bool]:
    """``--flag value`` / ``--flag=value`` / bare ``--flag`` of a serve command (the
    product's reader, :func:`tokensim.replay.serve.flags`); a line that does not parse as
    shell words is split on blanks."""
    try:
        return serve.flags(command)
    except serve.ServeError:
        return serve.flags(shlex.join(command.split()))


_INT = int


def flags_from(engine: str, command: str, tp: int = 1, pp: int = 1) -> Flags:
    """The :class:`Flags` a serve command sets (vLLM, SGLang or TensorRT-LLM spelling)."""
    raw = parse_flags(command)
    kw: dict = {"tp": tp, "pp": pp}
    known: set[str] = set()

    def take(names: tuple[str, ...], key: str, conv=_INT) -> None:
        for n in names:
            if n in raw:
                known.add(n)
                v = raw[n]
                kw[key] = conv(v) if v is not True else True

    if engine == "vllm":
        take(("--max-num-seqs",), "max_num_seqs")
        take(("--max-num-batched-tokens",), "max_num_batched_tokens")
        take(("--max-model-len",), "max_model_len")
        take(("--gpu-memory-utilization",), "gpu_memory_utilization", float)
        take(("--kv-cache-dtype",), "kv_cache_dtype", str)
        take(("--quantization", "-q"), "quantization", str)
        take(("--num-scheduler-steps",), "num_scheduler_steps")
        take(("--max-cudagraph-capture-size",), "cuda_graph_max_bs")
        for name, key, value in (
            ("--enable-chunked-prefill", "chunked_prefill", True),
            ("--no-enable-chunked-prefill", "chunked_prefill", False),
            ("--enable-prefix-caching", "enable_prefix_caching", True),
            ("--no-enable-prefix-caching", "enable_prefix_caching", False),
            ("--enforce-eager", "enforce_eager", True),
            ("--async-scheduling", "async_scheduling", True),
        ):
            if name in raw:
                known.add(name)
                kw[key] = value
    elif engine == "sglang":
        take(("--max-running-requests",), "max_num_seqs")
        take(("--chunked-prefill-size",), "max_num_batched_tokens")
        take(("--context-length",), "max_model_len")
        take(("--mem-fraction-static", "--mem-frac"), "gpu_memory_utilization", float)
        take(("--kv-cache-dtype",), "kv_cache_dtype", str)
        take(("--quantization",), "quantization", str)
        take(("--cuda-graph-max-bs",), "cuda_graph_max_bs")
        take(("--attention-backend",), "attention_backend", str)
        for name, key, value in (
            ("--disable-radix-cache", "enable_prefix_caching", False),
            ("--enable-torch-compile", "torch_compile", True),
            ("--disable-cuda-graph", "enforce_eager", True),
        ):
            if name in raw:
                known.add(name)
                kw[key] = value
        if "max_num_batched_tokens" in kw:
            kw["chunked_prefill"] = kw["max_num_batched_tokens"] > 0
    elif engine == "trtllm":
        take(("--max_num_tokens",), "max_num_batched_tokens")
        take(("--max_batch_size",), "max_num_seqs")
        take(("--max_seq_len",), "max_model_len")
        take(("--kv_cache_free_gpu_memory_fraction",), "kv_free_fraction", float)
        if "--enable_chunked_prefill" in raw:
            known.add("--enable_chunked_prefill")
            kw["chunked_prefill"] = True
    skip = {"--tp", "--tp-size", "-tp", "--tensor-parallel-size", "--tp_size", "--host", "--port"}
    skip |= {"--model", "--model-path", "-m"}
    kw["extra"] = tuple(
        (k, "" if v is True else str(v))
        for k, v in sorted(raw.items())
        if k not in known and k not in skip
    )
    if isinstance(kw.get("kv_cache_dtype"), str):
        kv = kw["kv_cache_dtype"].lower()
        kw["kv_cache_dtype"] = "fp8" if kv.startswith("fp8") else None
    return Flags(**kw)


# ------------------------------------------------------------------ ShareGPT lengths


def sharegpt_lengths(
    n: int, mean_prompt: float, mean_output: float, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) lengths drawn independently from :data:`SHAREGPT_SHAPE`,
    clipped as ShareGPT samplers clip (prompt 4..1024, prompt + output <= 2048, output >= 4)
    and scaled so that the means of the rounded lengths match ``mean_prompt`` and
    ``mean_output``. Deterministic in ``seed``."""
    lo, hi, total = SHAREGPT_LIMITS
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, len(SHAREGPT_SHAPE[0]))
    shape_p = np.interp(rng.random(n), grid, SHAREGPT_SHAPE[0])
    shape_o = np.interp(rng.random(n), grid, SHAREGPT_SHAPE[1])

    def fit(shape, mean, upper):
        a, b = 0.0, 64.0 * mean  # the scale: the mean of the unclipped lengths
        x = None
        for _ in range(80):
            scale = (a + b) / 2
            x = np.clip(np.rint(scale * shape), lo, upper)
            a, b = (scale, b) if x.mean() < mean else (a, scale)
        return x.astype(np.int64)

    prompt = fit(shape_p, mean_prompt, np.full(n, hi))
    output = fit(shape_o, mean_output, np.maximum(lo, total - prompt))
    return prompt, output


PREFIX_BLOCK = 16  # tokens per prefix id: vLLM's KV block, the unit its prefix cache shares


def prefix_ids(w: Workload, prompts: np.ndarray) -> list[tuple[int, ...]] | None:
    """Per request, one id per full 16-token block of its prompt (equal ids: equal
    content, prefix-chained), for a workload with a :class:`PromptSet`; else None.

    Blocks wholly inside the group's system prompt carry the group's ids; the rest carry
    the prompt's own. Which prompt request ``i`` sends is ``order[i mod n]``, with the
    one shuffle drawn from the workload's seed."""
    ps = w.prompts
    if ps is None:
        return None
    order = np.random.default_rng(w.seed).permutation(ps.distinct)
    shared_blocks = ps.shared // PREFIX_BLOCK
    stride = 1 + int(np.max(prompts, initial=0)) // PREFIX_BLOCK  # ids of one owner apart
    out = []
    for i, length in enumerate(prompts):
        p = int(order[i % ps.distinct])
        group, own = p // ps.per_group, ps.groups + p  # owners: the groups, then the prompts
        ids = [
            (group if j < shared_blocks else own) * stride + j
            for j in range(int(length) // PREFIX_BLOCK)
        ]
        out.append(tuple(ids))
    return out


def request_lengths(w: Workload) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-request (prompt, output) lengths of a workload given as a list or ShareGPT
    totals; None for the distributions a spec writes directly."""
    if w.lengths == "list":
        return np.asarray(w.prompt_lens, np.int64), np.asarray(w.output_lens, np.int64)
    if w.lengths == "sharegpt":
        return sharegpt_lengths(w.requests, w.mean_prompt, w.mean_output, w.seed)
    if w.lengths == "fixed" and w.prompts is not None:  # written out, to carry prefix ids
        return np.full(w.requests, w.prompt, np.int64), np.full(w.requests, w.output, np.int64)
    return None


# ------------------------------------------------------------------------ GPUStack

ENGINES = {"vLLM": "vllm", "SGLang": "sglang", "TensorRT-LLM": "trtllm"}


def load_gpustack(data: Path = DATA) -> Loaded:
    """GPUStack performance lab: one run per benchmark report (``gpustack/results.csv``)."""
    out = Loaded()
    with open(data / "gpustack" / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        rid = f"gpustack/{r['row_id']}"
        served = r["model_served"] or r["model_doc"]
        label = f"{r['doc']} {r['engine']} {r['case_label']}".strip()

        def skip(reason: str, detail: str = "", rid=rid, label=label) -> None:
            out.skips.append(Skip(rid, "gpustack", reason, f"{label}: {detail}".rstrip(": ")))

        gpu = gpu_name(r["gpu"])
        command = r["serve_args_effective"] or r["serve_command"]
        notes = r["derivation_notes"]
        if "Ascend" in r["gpu"] or r["engine"] not in ENGINES:
            skip(ASCEND, r["gpu"])
            continue
        model, why = model_name(served)
        if model is None:
            skip(model_reason(why), served)
            continue
        if r["speculative_decoding"] == "yes" or "--speculative" in command:
            skip(SPECULATIVE)
            continue
        if "slip" in notes or "names" in notes and "but the doc" in notes:
            skip(DOC_SLIP, notes)
            continue
        quant = r["weight_quantization"]
        if quant.startswith("awq") or "int4" in quant:
            skip(INT4, quant)
            continue
        dtype = "fp8" if quant.startswith("fp8") else "bf16"
        if "checkpoint default" in quant:
            dtype = CHECKPOINT_DTYPE.get(model, dtype)
        if dtype == "fp8" and gpu == "A100_80G":
            skip(FP8_A100, served)
            continue
        dp, ep = int(r["dp"] or 1), int(r["ep"] or 1)
        if dp > 1 and r["dp_attention"] != "yes":
            skip(EXPERT_PARALLEL, f"dp {dp} engines, ep {ep}")
            continue
        sent, ok = int(r["num_prompts"]), int(r["successful_requests"])
        if ok < sent:
            skip(FAILURES, f"{ok} of {sent} succeeded")
            continue
        engine = ENGINES[r["engine"]]
        tp, pp = int(r["tp"] or 1), int(r["pp"] or 1)
        flags = flags_from(engine, command, tp // dp, pp)
        flags = replace(flags, dp=dp, ep=ep)  # SGLang's --tp counts the dp attention ranks' GPUs
        if r["kv_cache_dtype"].startswith("fp8"):
            flags = replace(flags, kv_cache_dtype="fp8")
        guidellm = r["doc_format"] == "guidellm"
        run_notes = []
        mean_in = float(r["total_input_tokens"]) / ok
        mean_out = float(r["total_generated_tokens"]) / ok
        if r["dataset"] == "random":
            lengths = {
                "lengths": "fixed",
                "prompt": max(1, round(mean_in)),
                "output": max(1, round(mean_out)),
            }
            if r["output_len"] and round(mean_out) != int(r["output_len"]):
                run_notes.append(
                    f"some outputs stopped early (no --ignore-eos): fixed output = mean "
                    f"{mean_out:.1f} of {r['output_len']} requested"
                )
        else:
            lengths = {"lengths": "sharegpt", "mean_prompt": mean_in, "mean_output": mean_out}
            run_notes.append(
                f"ShareGPT, totals only: ShareGPT-shaped lengths with means {mean_in:.1f} -> "
                f"{mean_out:.1f} tokens"
            )
        if guidellm:
            workload = Workload("constant", ok, rate=float(r["request_rate_req_per_s"]), **lengths)
        elif r["max_concurrency"]:
            workload = Workload("closed", ok, concurrency=int(r["max_concurrency"]), **lengths)
        else:
            workload = Workload("burst", ok, **lengths)
        metrics = _gpustack_metrics(r, guidellm)
        out.runs.append(
            MeasuredRun(
                id=rid,
                source="gpustack",
                engine=engine,
                engine_version=r["engine_version"],
                flags=flags,
                gpu=gpu,
                gpus=tp * pp,
                model=model,
                dtype=dtype,
                workload=workload,
                metrics=tuple(metrics),
                notes=tuple(run_notes),
                origin=f"gpustack/raw/{r['doc']}:{r['doc_line']} ({label})",
            )
        )
    return out


def _gpustack_metrics(r: dict, guidellm: bool) -> list[Metric]:
    m: list[Metric] = []
    if guidellm:
        # TPOT/ITL of these reports are not per token: keep TTFT, E2E, throughputs and
        # the per-token time derived from E2E and TTFT.
        for stat, col in (("mean", "mean"), ("p50", "median"), ("p95", "p95"), ("p99", "p99")):
            if _f(r[f"{col}_ttft_ms"]) is not None:
                m.append(_latency("ttft", stat, _ms(r[f"{col}_ttft_ms"])))
            if _f(r[f"{col}_e2e_latency_s"]) is not None:
                m.append(_latency("e2e", stat, _f(r[f"{col}_e2e_latency_s"])))
        e2e, ttft = _f(r["mean_e2e_latency_s"]), _ms(r["mean_ttft_ms"])
        if e2e is not None and ttft is not None:
            out = float(r["total_generated_tokens"]) / int(r["successful_requests"])
            m.append(_latency("tpot_e2e", "mean", (e2e - ttft) / (out - 1)))
    else:
        # a median ITL under 1 ms is no decode step: tokens arrive several to a message
        # (TensorRT-LLM streams so), and only the mean ITL is per token
        bursty = (_ms(r["median_itl_ms"]) or 1.0) < 1e-3
        for name in ("ttft", "tpot", "itl"):
            for stat, col in (("mean", "mean"), ("p50", "median"), ("p99", "p99")):
                v = _ms(r[f"{col}_{name}_ms"])
                if v is not None and not (bursty and name == "itl" and stat != "mean"):
                    m.append(_latency(name, stat, v))
    m.append(
        Metric("throughput", "requests_per_s", float(r["request_throughput_req_per_s"]), "1/s")
    )
    m.append(
        Metric(
            "throughput",
            "output_tokens_per_s",
            float(r["output_token_throughput_tok_per_s"]),
            "tokens/s",
        )
    )
    return m


# ---------------------------------------------------------------------- LambdaLabs


def load_lambdalabs(data: Path = DATA) -> Loaded:
    """LambdaLabs vLLM benchmark: the result files with per-request lengths (``index.csv``
    lists them); the two summary tables of their report are skipped (no GPU or per-request
    setup)."""
    out = Loaded()
    folder = data / "lambdalabs"
    with open(folder / "index.csv", newline="", encoding="utf-8") as f:
        index = list(csv.DictReader(f))
    for row in index:
        result = json.loads((folder / row["local_file"]).read_text("utf-8"))
        gpu = gpu_name(row["gpu"])
        k = int(row["tp"])
        model_id = result["model_id"]
        model, why = model_name(model_id)
        rid = f"lambdalabs/p{row['num_prompts']}-{row['num_gpus']}x{gpu}-{model_id.split('/')[-1]}"
        if model is None:
            out.skips.append(Skip(rid, "lambdalabs", model_reason(why), model_id))
            continue
        origin = f"lambdalabs/{row['local_file']}"
        out.runs.append(
            lambdalabs_run(result, rid, model, gpu, k, int(row["max_model_len"]), origin)
        )
    for table in ("benchmark_v0_vllm054_vs_060.csv", "benchmark_v0_tp_scaling_320_prompts.csv"):
        with open(folder / table, newline="", encoding="utf-8") as f:
            for i, _ in enumerate(csv.DictReader(f), 2):
                out.skips.append(
                    Skip(
                        f"lambdalabs/{table}:{i}",
                        "lambdalabs",
                        NO_SETUP,
                        "report table: GPU or per-request lengths not given",
                    )
                )
    return out


def lambdalabs_run(
    result: dict, rid: str, model: str, gpu: str, tp: int, max_model_len: int, origin: str = ""
) -> MeasuredRun:
    """One LambdaLabs ``benchmark_serving.py`` result (a JSON object) as a run: failed
    requests (``output_lens`` 0) dropped, TTFT from the per-request array, E2E corrected."""
    inputs = np.asarray(result["input_lens"], np.int64)
    outputs = np.asarray(result["output_lens"], np.int64)
    ttfts = np.asarray(result["ttfts"], np.float64)
    ok = outputs > 0
    n, failed = len(outputs), int((~ok).sum())
    duration = float(result["duration"])
    notes = [
        "vLLM 0.5.4-0.6.0 as released with multi-step scheduling: num_scheduler_steps 10 "
        "assumed (ITL per ~10-token chunk)"
    ]
    m: list[Metric] = []
    t = ttfts[ok]
    m.append(_latency("ttft", "mean", t.mean()))
    for q in (50, 90, 99):
        m.append(_latency("ttft", f"p{q}", np.percentile(t, q)))
    for name, key in (("tpot", "tpot"), ("itl", "itl")):
        for stat, col in (("mean", "mean"), ("p50", "median"), ("p99", "p99")):
            m.append(_latency(name, stat, result[f"{col}_{key}_ms"] / 1000.0))
    itls = result.get("itls")
    if failed == 0:
        for stat, col in (("mean", "mean"), ("p50", "median"), ("p99", "p99")):
            m.append(_latency("e2e", stat, result[f"{col}_latency_ms"] / 1000.0))
    elif itls is not None:
        e2e = np.array([a + sum(b) for a, b, good in zip(ttfts, itls, ok, strict=True) if good])
        m.append(_latency("e2e", "mean", e2e.mean()))
        for q in (50, 99):
            m.append(_latency("e2e", f"p{q}", np.percentile(e2e, q)))
        notes.append("E2E of the successful requests: TTFT + the sum of their ITLs")
    else:
        # the failed requests were rejected at once: their latencies are ~0 and the mean
        # over the successful ones is the reported mean x n / (n - failed)
        m.append(_latency("e2e", "mean", result["mean_latency_ms"] / 1000.0 * n / (n - failed)))
        notes.append(f"E2E mean corrected for {failed} failed requests (latency ~0)")
    m.append(Metric("throughput", "requests_per_s", (n - failed) / duration, "1/s"))
    m.append(
        Metric("throughput", "output_tokens_per_s", float(outputs.sum()) / duration, "tokens/s")
    )
    if failed:
        notes.append(f"{failed} of {n} requests failed (output 0) and are dropped")
    flags = Flags(
        tp=tp,
        max_num_seqs=1024,
        max_model_len=max_model_len,
        gpu_memory_utilization=0.95,
        chunked_prefill=False,
        num_scheduler_steps=10,
        enable_prefix_caching=False,
    )
    dtype = "fp8" if "fp8" in result["model_id"].lower() else "bf16"
    return MeasuredRun(
        id=rid,
        source="lambdalabs",
        engine="vllm",
        engine_version="0.5.4-0.6.0 (V0; multi-step 10 assumed)",
        flags=flags,
        gpu=gpu,
        gpus=tp,
        model=model,
        dtype=dtype,
        workload=Workload(
            "burst",
            int(ok.sum()),
            "list",
            prompt_lens=tuple(int(x) for x in inputs[ok]),
            output_lens=tuple(int(x) for x in outputs[ok]),
        ),
        metrics=tuple(m),
        notes=tuple(notes),
        origin=origin,
    )


# ----------------------------------------------------------------------------- NIM


def load_nim(data: Path = DATA) -> Loaded:
    """NVIDIA NIM concurrency sweeps: closed loop at a fixed concurrency, fixed ISL/OSL."""
    out = Loaded()
    with open(data / "nim" / "nim_llm_benchmarking_concurrency_sweeps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows, 2):
        model, why = model_name(r["model"])
        isl, osl, c = int(r["input_tokens"]), int(r["output_tokens"]), int(r["concurrency"])
        rid = f"nim/{r['model'].split('/')[-1]}/{isl}-{osl}/c{c}"
        if model is None:
            out.skips.append(Skip(rid, "nim", model_reason(why), r["model"]))
            continue
        dtype, tp = re.match(r"(\w+) TP(\d+)", r["precision_parallelism"]).groups()
        tp = int(tp)
        m = [
            _latency("ttft", "mean", _ms(r["mean_ttft_ms"])),
            # genai-perf's inter-token latency is (E2E - TTFT) / (output - 1) per request
            _latency("tpot", "mean", _ms(r["mean_itl_ms"])),
            Metric(
                "throughput",
                "output_tokens_per_s",
                float(r["output_throughput_tok_per_s"]),
                "tokens/s",
            ),
        ]
        out.runs.append(
            MeasuredRun(
                id=rid,
                source="nim",
                engine="nim",
                engine_version=r["nim_version"],
                # NIM builds its fp8 profiles from NVIDIA Model Optimizer checkpoints, whose
                # hf_quant_config.json quantizes the KV cache too (kv_cache_quant_algo FP8)
                flags=Flags(tp=tp, kv_cache_dtype="fp8" if dtype == "fp8" else None),
                gpu=gpu_name(r["gpu"]),
                gpus=tp,
                model=model,
                dtype=dtype,
                # the request count per point is not published: enough for a steady state
                workload=Workload(
                    "closed", max(100, 5 * c), "fixed", concurrency=c, prompt=isl, output=osl
                ),
                metrics=tuple(m),
                notes=(
                    "NIM backend profile not stated (TensorRT-LLM assumed, with an fp8 KV "
                    "cache in fp8 profiles, as ModelOpt's fp8 checkpoints set); request count "
                    "per point not published (max(100, 5 x concurrency) simulated); "
                    "genai-perf ITL recorded as TPOT",
                ),
                origin=f"nim/nim_llm_benchmarking_concurrency_sweeps.csv:{i}",
            )
        )
    return out


# ---------------------------------------------------------------------------- BLIS


def load_blis(data: Path = DATA) -> Loaded:
    """inference-sim (BLIS) training runs: one run per constant-rate load stage."""
    out = Loaded()
    with open(data / "blis_training" / "summary.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows, 2):
        exp = r["experiment"].split("-", 2)[-1]
        rid = f"blis/{exp}/{r['stage']}"
        if r["stage"] == "summary":
            out.skips.append(Skip(rid, "blis", DUPLICATE, "all-stage summary of the stages"))
            continue
        if r["workload_profile"] == "reasoning":
            out.skips.append(
                Skip(rid, "blis", OVERLOADED, f"{r['failures']} of {r['requests_sent']} failed")
            )
            continue
        if int(r["failures"]):
            out.skips.append(Skip(rid, "blis", FAILURES, f"{r['failures']} failed"))
            continue
        model, why = model_name(r["model"])
        if model is None:
            out.skips.append(Skip(rid, "blis", model_reason(why), r["model"]))
            continue
        tp = int(r["tp"])
        output = int(r["sp_output_len"])
        prompt = round(float(r["prompt_len_mean"]))
        m: list[Metric] = []
        for stat, col in (("mean", "mean"), ("p50", "median"), ("p90", "p90"), ("p99", "p99")):
            m.append(_latency("ttft", stat, _ms(r[f"ttft_ms_{col}"])))
            m.append(_latency("e2e", stat, _f(r[f"e2e_latency_s_{col}"])))
        for stat, col in (("mean", "mean"), ("p50", "median")):
            e2e, ttft = _f(r[f"e2e_latency_s_{col}"]), _ms(r[f"ttft_ms_{col}"])
            m.append(_latency("tpot_e2e", stat, (e2e - ttft) / (output - 1)))
        m.append(Metric("throughput", "requests_per_s", _f(r["req_per_s"]), "1/s"))
        flags = Flags(
            tp=tp,
            max_num_seqs=int(r["max_num_seqs"]),
            max_num_batched_tokens=int(r["max_num_batched_tokens"]),
            max_model_len=int(r["max_model_len"]),
            chunked_prefill=True,
        )
        out.runs.append(
            MeasuredRun(
                id=rid,
                source="blis",
                engine="vllm",
                engine_version="V1 (instrumented build, early 2026; version not stated)",
                flags=flags,
                gpu="H100_SXM",
                gpus=tp,
                model=model,
                dtype="bf16",
                workload=Workload(
                    "constant",
                    int(r["requests_sent"]),
                    "fixed",
                    rate=float(r["requested_rate_req_per_s"]),
                    prompt=prompt,
                    output=output,
                    prompts=PromptSet(
                        int(r["sp_num_groups"]),
                        int(r["sp_num_prompts_per_group"]),
                        int(r["sp_system_prompt_len"]),
                    ),
                ),
                metrics=tuple(m),
                notes=(
                    f"prompt = mean prompt length {float(r['prompt_len_mean']):.1f}; "
                    f"{r['sp_num_groups']} x {r['sp_num_prompts_per_group']} distinct prompts "
                    "sent in turn (inference-perf shared_prefix), each group's "
                    f"{r['sp_system_prompt_len']}-token system prompt shared: the prefix "
                    "cache sees every prompt again after the first round",
                    "output = the requested sp_output_len (ignore_eos); reported output "
                    "lengths are re-tokenized text, so output tokens/s is not compared",
                ),
                origin=f"blis_training/summary.csv:{i}",
            )
        )
    return out


# ---------------------------------------------------------------------- DataCrunch


def load_datacrunch(data: Path = DATA) -> Loaded:
    """DataCrunch SGLang runs on H200 (``datacrunch_h200_sglang/results.csv``)."""
    out = Loaded()
    with open(data / "datacrunch_h200_sglang" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        name = Path(r["file"]).stem.removesuffix("_output")
        rid = f"datacrunch/{name}/{r['line']}"
        model, why = model_name(r["model"] + " " + r["launch_command"])
        if model is None:
            out.skips.append(Skip(rid, "datacrunch", model_reason(why), r["model"]))
            continue
        tp = int(r["tp"])
        n = int(r["completed"])
        if r["dataset_name"] == "random":
            lo = max(1, int(int(r["random_input_len"]) * float(r["random_range_ratio"])))
            lo_out = max(1, int(int(r["random_output_len"]) * float(r["random_range_ratio"])))
            lengths = {
                "lengths": "uniform",
                "prompt_range": (lo, int(r["random_input_len"])),
                "output_range": (lo_out, int(r["random_output_len"])),
            }
            note = "SGLang random dataset: lengths uniform in [1, L]"
        else:
            lengths = {
                "lengths": "sharegpt",
                "mean_prompt": int(r["total_input_tokens"]) / n,
                "mean_output": int(r["total_output_tokens"]) / n,
            }
            note = "ShareGPT, totals only: ShareGPT-shaped lengths matched to the means"
        rate = r["request_rate_req_per_s"]
        if rate == "inf":
            workload = Workload("burst", n, **lengths)
        else:
            workload = Workload("poisson", n, rate=float(rate), **lengths)
        duration = float(r["duration_s"])
        m = [
            _latency("ttft", "p50", _ms(r["median_ttft_ms"])),
            _latency("itl", "p50", _ms(r["median_itl_ms"])),
            _latency("e2e", "mean", _ms(r["mean_e2e_latency_ms"])),
            _latency("e2e", "p50", _ms(r["median_e2e_latency_ms"])),
            Metric("throughput", "requests_per_s", n / duration, "1/s"),
            Metric(
                "throughput",
                "output_tokens_per_s",
                float(r["output_throughput_tok_per_s"]),
                "tokens/s",
            ),
        ]
        out.runs.append(
            MeasuredRun(
                id=rid,
                source="datacrunch",
                engine="sglang",
                engine_version="Dec 2024 docker image (about 0.4.0)",
                flags=flags_from("sglang", r["launch_command"], tp),
                gpu="H200",
                gpus=tp,
                model=model,
                dtype=r["dtype"],
                workload=workload,
                metrics=tuple(m),
                notes=(note,),
                origin=f"datacrunch_h200_sglang/{r['file']}:{r['line']}",
            )
        )
    return out


# --------------------------------------------------------------------------- all

LOADERS = {
    "gpustack": load_gpustack,
    "lambdalabs": load_lambdalabs,
    "nim": load_nim,
    "blis": load_blis,
    "datacrunch": load_datacrunch,
}


def load(sources: tuple[str, ...] | list[str] | None = None, data: Path = DATA) -> Loaded:
    """Every source's runs and skips, in :data:`SOURCES` order."""
    out = Loaded()
    for name in sources or SOURCES:
        part = LOADERS[name](data)
        out.runs += part.runs
        out.skips += part.skips
    return out


def skip_counts(skips: list[Skip]) -> Counter:
    """(source, reason) -> count."""
    return Counter((s.source, s.reason) for s in skips)


def main(argv: list[str] | None = None) -> int:
    if not DATA.is_dir():
        print(f"error: {DATA}: the measured serving data is not here", file=sys.stderr)
        return 2
    loaded = load()
    per = Counter(r.source for r in loaded.runs)
    for source in SOURCES:
        print(f"{source}: {per[source]} runs")
    for (source, reason), n in sorted(skip_counts(loaded.skips).items()):
        print(f"  skip {source}: {reason}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
