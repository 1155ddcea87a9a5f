"""End-to-end accuracy: tokensim against measured serving runs.

Simulates every usable run of ``../shared/data/serving`` (see ``bench/serving_runs.py`` for the
loaders and the caveats they apply) and prints, per source and per metric family (TTFT, TPOT,
ITL, E2E, throughput), the median and p90 of |relative error| = |sim - measured| / measured,
then the count of rows not simulated, by reason.

    python3 bench/e2e_accuracy.py [--source S] [--run-id ID] [--list] [--csv PATH] [-j N]
                                  [--engines auto|on|off] [--print-spec ID] [--max-requests N]

The whole set (213 runs, 2 processes) takes about 25 s, most of it in the 12,000-request
constant-rate BLIS stages; ``--max-requests 2000`` (steady-state runs cut short) about 15 s.

It is also a library, for fitting engine parameters (deterministic, in-process, parallel)::

    import e2e_accuracy as e2e                      # with bench/ on sys.path
    runs = e2e.load(["blis"]).runs
    ev = e2e.evaluate(runs, overrides={"host.iteration": "2 ms"}, processes=2)
    ev.rows                                          # one Row per (run, metric): .error
    e2e.evaluate(runs, e2e.per_engine({"vllm_v1": {"scheduler_steps": 4}}), max_requests=2000)

``spec_text(run, engine_overrides)`` writes the tokensim spec of a run; ``engine_statement``
is the one place that turns a run's engine and flags into pool statements. With the engine
language (``import "std/engines"``, ``engine vllm_v1 { ... }``) overrides go in the engine's
braces; without it (``--engines off``, or a checker that does not know engines) the engine's
scheduler defaults are written as ``batching`` and ``kv`` statements and only ``batching.*``
and ``kv.*`` overrides apply (where std/engines exists, such a pool still runs the default
engine's host and front-end times).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import fnmatch
import functools
import hashlib
import io
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import serving_runs as sr  # noqa: E402
from serving_runs import FAMILIES, SOURCES, MeasuredRun, Skip, load  # noqa: E402, F401

import tokensim  # noqa: E402
from tokensim.lang.diagnostics import CompileError  # noqa: E402
from tokensim.metrics import stat as _stat  # noqa: E402
from tokensim.workload.traces import TraceError  # noqa: E402

LINKS = {"A100_80G": "NVLINK3", "H100_SXM": "NVLINK4", "H200": "NVLINK4"}
BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}
GIB = 2**30

# ------------------------------------------------------------ what the checker knows


@functools.cache
def _accepts(text: str) -> bool:
    try:
        tokensim.load(text)
    except CompileError:
        return False
    return True


_PROBE = """import "std/hardware"
import "std/models"
{imports}
cluster {{ node n0 {{ gpus H100_SXM x 1 }} }}
deployment {{ pool p {{ model llama3_1_8b; {pool} }} }}
workload {{ arrivals {arrivals}; lengths fixed 16 -> 4; requests 4 }}
"""


def engines_available() -> bool:
    """Whether the checker knows the engine language (``std/engines``, ``engine vllm_v1``)."""
    return _accepts(
        _PROBE.format(imports='import "std/engines"', pool="engine vllm_v1", arrivals="burst")
    )


def closed_loop_available(engines: bool) -> bool:
    """Whether the checker knows closed-loop arrivals (``arrivals closed N``)."""
    imports = 'import "std/engines"' if engines else ""
    return _accepts(_PROBE.format(imports=imports, pool="tp 1", arrivals="closed 2"))


# ------------------------------------------------------------------ engines and flags


def engine_name(run: MeasuredRun) -> str:
    """The std/engines engine that models the run's server."""
    if run.engine == "vllm":
        version = run.engine_version
        if version.startswith(("0.5", "0.6")):
            return "vllm_0_6"
        # async scheduling is the default from 0.14 (std/engines: vllm_0_14), released
        # in 2026; a build of 2026 whose version is not stated has it too
        number = re.match(r"(\d+)\.(\d+)", version)
        newer = number is not None and (int(number[1]), int(number[2])) >= (0, 14)
        return "vllm_0_14" if newer or "2026" in version else "vllm_v1"
    if run.engine == "sglang":
        return "sglang"
    return "trtllm"  # TensorRT-LLM, and NIM (its backend profile is not stated)


@functools.cache
def _catalogue_params() -> dict[str, float]:
    """Parameter counts of the std models."""
    import tokensim.dsl

    path = Path(tokensim.dsl.__file__).parent / "std" / "models.tsim"
    return {m.name: m.params for m in tokensim.load(path).models}


@functools.cache
def _gpu_memory(gpu: str) -> float:
    spec = tokensim.load(
        f'import "std/hardware"\nimport "std/models"\ncluster {{ node n0 {{ gpus {gpu} x 1 }} }}'
    )
    return spec.cluster.nodes[0].gpu.memory_B


def _scheduler_defaults(run: MeasuredRun) -> dict:
    """The run's batching and KV settings, written out: its flags, else its engine's
    defaults for that version (without the engine language only)."""
    f, engine = run.flags, engine_name(run)
    a100 = run.gpu == "A100_80G"
    kv: dict[str, str] = {"block": "16 tokens"}
    if engine in ("vllm_v1", "vllm_0_14"):
        # vllm/engine/arg_utils.py (V1): 8192 tokens / 1024 seqs on >= 70 GiB GPUs not named
        # A100, else 2048 / 256; chunked prefill and prefix caching on
        batching = {
            "_policy": "chunked",
            "budget": f"{f.max_num_batched_tokens or (2048 if a100 else 8192)} tokens",
            "max_seqs": str(f.max_num_seqs or (256 if a100 else 1024)),
        }
        util, prefix = f.gpu_memory_utilization or 0.9, f.enable_prefix_caching is not False
    elif engine == "vllm_0_6":
        # V0 without chunked prefill: max_num_batched_tokens = max(max_model_len, 2048)
        if f.chunked_prefill:
            budget = f.max_num_batched_tokens or 512  # V0's chunked-prefill default
            batching = {"_policy": "chunked", "budget": f"{budget} tokens"}
        else:
            tokens = f.max_num_batched_tokens or max(2048, f.max_model_len or 2048)
            batching = {"_policy": "continuous", "max_tokens": f"{tokens} tokens"}
        batching["max_seqs"] = str(f.max_num_seqs or 256)
        util, prefix = f.gpu_memory_utilization or 0.9, bool(f.enable_prefix_caching)
    elif engine == "sglang":
        # prefill-first batches of at most max_prefill_tokens 16384 (chunked_prefill_size
        # when given), up to 1024 running requests; mem_fraction_static about 0.88
        batching = {
            "_policy": "continuous",
            "max_tokens": f"{f.max_num_batched_tokens or 16384} tokens",
            "max_seqs": str(f.max_num_seqs or 1024),
        }
        util, prefix = f.gpu_memory_utilization or 0.88, f.enable_prefix_caching is not False
    else:
        # TensorRT-LLM 1.x: max_num_tokens 8192, max_batch_size 2048, 32-token blocks, and
        # free_gpu_memory_fraction 0.9 of the memory left after the weights
        batching = {
            "_policy": "chunked",
            "budget": f"{f.max_num_batched_tokens or 8192} tokens",
            "max_seqs": str(f.max_num_seqs or 2048),
        }
        kv["block"] = "32 tokens"
        total = _gpu_memory(run.gpu)
        weights = _catalogue_params()[run.model] * BYTES[run.dtype] / run.gpus
        free = f.kv_free_fraction or 0.9
        util = min(0.99, (weights + free * (total - weights)) / total)
        prefix = False
    kv["gpu_util"] = f"{util:.4g}"
    kv["prefix_cache"] = "on" if prefix else "off"
    if f.kv_cache_dtype == "fp8":
        kv["dtype"] = "fp8"
    return {"batching": batching, "kv": kv}


def _engine_flags(run: MeasuredRun) -> dict:
    """The statements in an engine's braces that the run's own flags set."""
    f, engine = run.flags, engine_name(run)
    out: dict = {}
    batching: dict[str, str] = {}
    if engine == "vllm_0_6" and f.chunked_prefill:
        batching["_policy"] = "chunked"
    policy = batching.get("_policy", _ENGINE_POLICY[engine])
    if f.max_num_batched_tokens:
        key = "max_tokens" if policy == "continuous" else "budget"
        batching[key] = f"{f.max_num_batched_tokens} tokens"
    if f.max_num_seqs:
        batching["max_seqs"] = str(f.max_num_seqs)
    if batching:
        batching["_policy"] = policy
        out["batching"] = batching
    kv: dict[str, str] = {}
    if f.gpu_memory_utilization:
        kv["gpu_util"] = f"{f.gpu_memory_utilization:g}"
    if f.kv_free_fraction:
        kv["gpu_util"] = f"{f.kv_free_fraction:g}"
    if f.enable_prefix_caching is not None:
        kv["prefix_cache"] = "on" if f.enable_prefix_caching else "off"
    if f.kv_cache_dtype == "fp8":
        kv["dtype"] = "fp8"
    if kv:
        out["kv"] = kv
    if f.num_scheduler_steps:
        out["scheduler_steps"] = str(f.num_scheduler_steps)
    if f.async_scheduling:
        out["async_scheduling"] = "on"
    if f.enforce_eager:
        out["cuda_graphs"] = "off"
    elif f.cuda_graph_max_bs:
        out["cuda_graphs"] = f"{f.cuda_graph_max_bs} tokens"
    return out


_ENGINE_POLICY = {
    "vllm_v1": "chunked",
    "vllm_0_14": "chunked",
    "vllm_0_6": "continuous",
    "sglang": "continuous",
    "trtllm": "chunked",
}


def _set(tree: dict, path: str, value) -> None:
    """Set ``a.b.c`` in a nested dict; a string value at ``batching`` names the policy."""
    keys = path.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if keys[-1] == "batching" and not isinstance(value, dict):
        node.setdefault("batching", {})["_policy"] = str(value)
    else:
        node[keys[-1]] = value


def _value(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _render(tree: dict) -> list[str]:
    """Statements of a nested dict: ``key value`` or ``key [policy] { ... }``."""
    out = []
    for key, v in tree.items():
        if isinstance(v, dict):
            policy = v.get("_policy")
            inner = "; ".join(_render({k: x for k, x in v.items() if k != "_policy"}))
            head = f"{key} {policy}" if policy else key
            out.append(f"{head} {{ {inner} }}" if inner else head)
        else:
            out.append(f"{key} {_value(v)}")
    return out


def engine_statement(
    run: MeasuredRun, overrides: dict | None = None, engines: bool | None = None
) -> list[str]:
    """The pool statements that model the run's serving engine.

    With the engine language: ``engine NAME { flags...; overrides... }``, where the flags are
    what the run sets explicitly (the engine's defaults of its version cover the rest) and
    ``overrides`` maps paths inside the engine's braces (``scheduler_steps``,
    ``host.iteration``, ``kv.gpu_util``, ``batching.budget``...) to values as written in a
    spec (``"1 ms"``, ``10``). Without it: ``batching`` and ``kv`` statements with the
    engine's defaults written out; only ``batching.*`` and ``kv.*`` overrides apply.
    """
    if engines is None:
        engines = engines_available()
    overrides = overrides or {}
    if engines:
        tree = _engine_flags(run)
        policy = tree.get("batching", {}).get("_policy", _ENGINE_POLICY[engine_name(run)])
        for path, value in overrides.items():
            _set(tree, path, value)
        if "batching" in tree:
            tree["batching"].setdefault("_policy", policy)
        inner = "; ".join(_render(tree))
        name = engine_name(run)
        return [f"engine {name} {{ {inner} }}" if inner else f"engine {name}"]
    tree = _scheduler_defaults(run)
    for path, value in overrides.items():
        if path.split(".")[0] not in ("batching", "kv"):
            raise ValueError(
                f"override `{path}` needs the engine language (std/engines); "
                "without it only batching.* and kv.* apply"
            )
        _set(tree, path, value)
    return _render(tree)


# ------------------------------------------------------------------------ spec text


def trace_folder() -> Path:
    """Where per-request traces are written (``TOKENSIM_E2E_CACHE``, else the temp dir)."""
    env = os.environ.get("TOKENSIM_E2E_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / "tokensim-e2e"


def write_trace(
    prompts: np.ndarray, outputs: np.ndarray, prefixes: list[tuple[int, ...]] | None = None
) -> Path:
    """A tokensim CSV trace (every arrival at 0: the spec's ``arrivals`` set the times),
    with each prompt's prefix-block ids when given (:func:`serving_runs.prefix_ids`),
    named by its content so that it is written once and shared by processes."""
    if prefixes is None:
        lines = ["arrival_s,prompt_tokens,output_tokens"]
        lines += [f"0.0,{int(p)},{int(o)}" for p, o in zip(prompts, outputs, strict=True)]
    else:
        lines = ["arrival_s,prompt_tokens,output_tokens,prefix_hashes,prefix_block_tokens"]
        lines += [
            f"0.0,{int(p)},{int(o)},{' '.join(map(str, ids))},{sr.PREFIX_BLOCK}"
            for p, o, ids in zip(prompts, outputs, prefixes, strict=True)
        ]
    text = "\n".join(lines) + "\n"
    folder = trace_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"trace-{hashlib.sha1(text.encode()).hexdigest()[:16]}.csv"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, path)
    return path


def _arrivals(w: sr.Workload) -> str:
    if w.arrival == "burst":
        return "burst"
    if w.arrival == "closed":
        return f"closed {w.concurrency}"
    return f"{w.arrival} {w.rate:g}/s"


def workload_block(run: MeasuredRun) -> str:
    w = run.workload
    lines = [f"arrivals {_arrivals(w)}"]
    per_request = sr.request_lengths(w)
    if per_request is not None:
        prefixes = sr.prefix_ids(w, per_request[0])
        lines.append(f'trace "{write_trace(*per_request, prefixes)}"')
    elif w.lengths == "fixed":
        lines.append(f"lengths fixed {w.prompt} -> {w.output}")
    elif w.lengths == "uniform":
        (p0, p1), (o0, o1) = w.prompt_range, w.output_range
        lines.append(f"lengths uniform {p0}..{p1} -> {o0}..{o1}")
    else:
        raise ValueError(f"unknown lengths {w.lengths!r}")
    lines += [f"requests {w.requests}", f"seed {w.seed}"]
    return "workload {\n" + "".join(f"  {s}\n" for s in lines) + "}\n"


def spec_text(
    run: MeasuredRun, engine_overrides: dict | None = None, engines: bool | None = None
) -> str:
    """The tokensim spec of ``run`` (``engine_overrides``: see :func:`engine_statement`)."""
    if engines is None:
        engines = engines_available()
    imports = ["std/hardware", "std/models"] + (["std/engines"] if engines else [])
    link = f"; link {LINKS[run.gpu]}" if run.gpus > 1 else ""
    pool = [f"model {run.model} {run.dtype}"]
    if run.flags.tp > 1:
        pool.append(f"tp {run.flags.tp}")
    if run.flags.pp > 1:
        pool.append(f"pp {run.flags.pp}")
    if run.flags.dp > 1:
        pool.append(f"dp {run.flags.dp}")
    if run.flags.ep > 1:
        pool.append(f"ep {run.flags.ep}")
    pool += engine_statement(run, engine_overrides, engines)
    return (
        f"// {run.id}: {run.origin}\n"
        f'name "{run.id}"\n\n'
        + "".join(f'import "{i}"\n' for i in imports)
        + f"\ncluster {{ node n0 {{ gpus {run.gpu} x {run.gpus}{link} }} }}\n\n"
        + "deployment {\n  pool serve {\n"
        + "".join(f"    {s}\n" for s in pool)
        + "  }\n}\n\n"
        + workload_block(run)
    )


# ----------------------------------------------------------------------- simulation


@dataclass
class Simulated:
    """What tokensim made of one run: the simulated value of each measured metric."""

    run_id: str
    values: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    completed: int = 0
    rejected: int = 0
    error: str | None = None  # a compile or simulation error (the run is then not scored)
    notes: tuple[str, ...] = ()  # what tokensim printed to stderr (cost-model notes)


def sim_values(run: MeasuredRun, result) -> dict[str, float]:
    """The simulated counterpart of each of ``run``'s metrics, from a tokensim Run."""
    req = result.requests
    done = ~req["rejected"]
    outputs = req["output_tokens"][done]
    cols = {k: v[np.isfinite(v)] for k, v in req.items() if k in ("ttft_s", "tpot_s", "e2e_s")}
    res = result.result
    out: dict[str, float] = {}
    for m in run.metrics:
        if m.name == "throughput":
            out[m.key] = float(result.metrics["throughput"][m.stat])
        elif m.name == "itl":
            out[m.key] = _stat(res.itl_s, m.stat, res.itl_weights)
        elif m.name == "tpot_e2e":
            mean_out = float(outputs.mean()) if outputs.size else float("nan")
            e2e, ttft = _stat(cols["e2e_s"], m.stat), _stat(cols["ttft_s"], m.stat)
            out[m.key] = (e2e - ttft) / (mean_out - 1)
        else:
            out[m.key] = _stat(cols[f"{m.name}_s"], m.stat)
    return out


def simulate(
    run: MeasuredRun, overrides: dict | None = None, engines: bool | None = None
) -> Simulated:
    """Simulate ``run`` in this process (what tokensim prints to stderr is kept in
    ``notes``)."""
    start = time.perf_counter()
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            text = spec_text(run, overrides, engines)
            result = tokensim.run(tokensim.load(text))
    except (CompileError, TraceError) as err:
        first = str(err).strip().splitlines()[0]
        return Simulated(run.id, error=first, wall_s=time.perf_counter() - start)
    r = result.metrics["requests"]
    if not r["completed"]:
        why = "; ".join(r["rejected_why"]) or "no request completed"
        return Simulated(run.id, error=f"tokensim rejected every request: {why}")
    values = sim_values(run, result)
    notes = tuple(line for line in said.getvalue().splitlines() if line.strip())
    return Simulated(
        run.id, values, time.perf_counter() - start, r["completed"], r["rejected"], None, notes
    )


def _task(args) -> Simulated:
    return simulate(*args)


# ----------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Row:
    """One (run, metric): measured, simulated, relative error (sim - measured) / measured."""

    run: MeasuredRun
    metric: sr.Metric
    simulated: float

    @property
    def error(self) -> float:
        return (self.simulated - self.metric.value) / self.metric.value


@dataclass
class Evaluation:
    rows: list[Row]
    simulated: dict[str, Simulated]
    skips: list[Skip]  # rows skipped here (closed loop, compile errors)
    wall_s: float


def per_engine(overrides: dict[str, dict]) -> Callable[[MeasuredRun], dict | None]:
    """Overrides by std/engines engine name (``{"vllm_v1": {...}, "sglang": {...}}``), as
    :func:`evaluate` takes them."""
    return lambda run: overrides.get(engine_name(run))


def truncate(run: MeasuredRun, n: int | None) -> MeasuredRun:
    """``run`` with at most ``n`` requests when its load is a steady state (constant,
    Poisson or closed loop: the measured latencies are averages over a long stage); burst
    runs are kept whole (their queue is the measurement). A load that cycles through a set
    of prompts keeps five rounds of it, so that its prefix-cache hits are not lost in the
    first round's misses."""
    w = run.workload
    if n is not None and w.prompts is not None:
        n = max(n, 5 * w.prompts.distinct)
    if n is None or w.requests <= n or w.arrival == "burst":
        return run
    short = replace(w, requests=n, prompt_lens=w.prompt_lens[:n], output_lens=w.output_lens[:n])
    return replace(run, workload=short)


def evaluate(
    runs: Iterable[MeasuredRun],
    overrides: dict | Callable[[MeasuredRun], dict | None] | None = None,
    processes: int = 2,
    engines: bool | None = None,
    max_requests: int | None = None,
) -> Evaluation:
    """Simulate ``runs`` (``processes`` at a time) and compare each measured metric.
    ``overrides``: one dict for every run, or a function of the run (e.g. per engine).
    ``max_requests``: simulate steady-state runs with at most this many requests (faster;
    see :func:`truncate`)."""
    start = time.perf_counter()
    if engines is None:
        engines = engines_available()
    closed_ok = closed_loop_available(engines)
    runs = list(runs)
    todo, skips = [], []
    for run in runs:
        if run.workload.arrival == "closed" and not closed_ok:
            skips.append(Skip(run.id, run.source, sr.CLOSED_LOOP, "`arrivals closed` unknown"))
            continue
        over = overrides(run) if callable(overrides) else overrides
        todo.append((truncate(run, max_requests), over, engines))
    # longest first, so that the processes finish together
    todo.sort(key=lambda t: -_cost(t[0]))
    if processes > 1 and len(todo) > 1:
        ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        with ctx.Pool(processes) as pool:
            done = list(pool.imap_unordered(_task, todo, chunksize=1))
    else:
        done = [_task(t) for t in todo]
    sims = {s.run_id: s for s in done}
    rows = []
    for run in runs:
        sim = sims.get(run.id)
        if sim is None:
            continue
        if sim.error:
            rejected = sim.error.startswith("tokensim rejected")
            reason = sim.error.split(":")[0] if rejected else "tokensim error"
            skips.append(Skip(run.id, run.source, reason, sim.error))
            continue
        for m in run.metrics:
            rows.append(Row(run, m, sim.values[m.key]))
    return Evaluation(rows, sims, skips, time.perf_counter() - start)


def _cost(run: MeasuredRun) -> float:
    w = run.workload
    out = w.output or (w.output_range[1] / 2 if w.output_range else 200)
    return w.requests * out


# ---------------------------------------------------------------------- aggregation


def summary(rows: list[Row], key: Callable[[Row], tuple]) -> dict[tuple, tuple[float, float, int]]:
    """key -> (median |error|, p90 |error|, n)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if np.isfinite(r.error):
            groups[key(r)].append(abs(r.error))
    return {
        k: (float(np.median(v)), float(np.percentile(v, 90)), len(v)) for k, v in groups.items()
    }


def _cell(s: tuple[float, float, int] | None) -> str:
    if s is None:
        return "—"
    med, p90, n = s
    return f"{med:.0%} / {p90:.0%} ({n})"


def error_table(rows: list[Row]) -> str:
    """Markdown: per source and overall, per family, median / p90 |relative error| (n)."""
    by = summary(rows, lambda r: (r.run.source, r.metric.family))
    by_source = summary(rows, lambda r: (r.run.source,))
    by_family = summary(rows, lambda r: (r.metric.family,))
    total = summary(rows, lambda r: ())
    runs = Counter(r.run.source for r in {r.run.id: r for r in rows}.values())
    head = ["source", "runs", *FAMILIES, "all"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in SOURCES:
        if not runs[s]:
            continue
        cells = [_cell(by.get((s, f))) for f in FAMILIES]
        lines.append(f"| {s} | {runs[s]} | " + " | ".join(cells) + f" | {_cell(by_source[(s,)])} |")
    cells = [_cell(by_family.get((f,))) for f in FAMILIES]
    all_cell = _cell(total.get(()))
    lines.append(f"| **all** | {sum(runs.values())} | " + " | ".join(cells) + f" | {all_cell} |")
    return "\n".join(lines)


def metric_table(rows: list[Row]) -> str:
    """Markdown: per metric (family and statistic), median / p90 |error|, and the median
    signed error (over- or under-prediction)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if np.isfinite(r.error):
            groups[r.metric.key].append(r.error)
    lines = [
        "| metric | n | median \\|err\\| | p90 \\|err\\| | median signed err |",
        "|---|---|---|---|---|",
    ]
    for k in sorted(groups, key=lambda k: (FAMILIES.index(_family(k)), k)):
        v = np.array(groups[k])
        lines.append(
            f"| {k} | {len(v)} | {np.median(abs(v)):.0%} | {np.percentile(abs(v), 90):.0%} | "
            f"{np.median(v):+.0%} |"
        )
    return "\n".join(lines)


def _family(key: str) -> str:
    name = key.rsplit("_", 1)[0] if not key.startswith("throughput") else "throughput"
    if key.startswith("tpot_e2e"):
        name = "tpot_e2e"
    return sr.Metric(name, "", 0.0, "").family


def skip_table(runs: list[MeasuredRun], skips: list[Skip], scored: set[str]) -> str:
    """Markdown: per source, runs simulated and rows skipped by reason."""
    per = Counter(r.source for r in runs if r.id in scored)
    lines = ["| source | simulated | not simulated: reason | rows |", "|---|---|---|---|"]
    counts = sr.skip_counts(skips)
    for s in SOURCES:
        reasons = sorted((reason, n) for (src, reason), n in counts.items() if src == s)
        if not reasons:
            lines.append(f"| {s} | {per[s]} | — | 0 |")
        for i, (reason, n) in enumerate(reasons):
            lines.append(f"| {s if i == 0 else ''} | {per[s] if i == 0 else ''} | {reason} | {n} |")
    return "\n".join(lines)


CSV_COLUMNS = (
    "run_id", "source", "engine", "engine_version", "tokensim_engine", "gpu", "gpus", "model",
    "dtype", "arrival", "requests", "metric", "family", "unit", "measured", "simulated",
    "rel_error", "sim_wall_s", "sim_rejected",
)  # fmt: skip


def write_csv(ev: Evaluation, path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in ev.rows:
            sim = ev.simulated[r.run.id]
            w.writerow(
                [
                    r.run.id, r.run.source, r.run.engine, r.run.engine_version,
                    engine_name(r.run), r.run.gpu, r.run.gpus, r.run.model, r.run.dtype,
                    r.run.workload.arrival, r.run.workload.requests, r.metric.key,
                    r.metric.family, r.metric.unit, f"{r.metric.value:.6g}",
                    f"{r.simulated:.6g}", f"{r.error:.4f}", f"{sim.wall_s:.3f}", sim.rejected,
                ]
            )  # fmt: skip


# ------------------------------------------------------------------------------ CLI


def select(runs: list[MeasuredRun], patterns: list[str] | None) -> list[MeasuredRun]:
    if not patterns:
        return runs
    return [r for r in runs if any(fnmatch.fnmatch(r.id, p) or r.id == p for p in patterns)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=SOURCES, action="append", help="only these sources")
    ap.add_argument("--run-id", action="append", help="only these runs (glob patterns)")
    ap.add_argument("--list", action="store_true", help="list the runs and skips; simulate none")
    ap.add_argument("--csv", help="write the per-run errors here")
    ap.add_argument("-j", "--processes", type=int, default=2)
    ap.add_argument("--engines", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--print-spec", metavar="ID", help="print the spec of a run and stop")
    ap.add_argument(
        "--max-requests",
        type=int,
        help="simulate steady-state (constant, Poisson, closed-loop) runs with at most N requests",
    )
    ap.add_argument(
        "--loso",
        action="store_true",
        help="fit the engines (bench/fit_engines.py) and print the error in sample and "
        "leave-one-source-out, per source and metric family",
    )
    args = ap.parse_args(argv)
    if args.loso:
        import fit_engines

        extra = ["--max-requests", str(args.max_requests)] if args.max_requests else []
        return fit_engines.main(["--loso", "-j", str(args.processes), *extra])
    if not sr.DATA.is_dir():
        print(f"error: {sr.DATA}: the measured serving data is not here", file=sys.stderr)
        return 2
    engines = {"auto": None, "on": True, "off": False}[args.engines]
    if engines is None:
        engines = engines_available()
    loaded = load(args.source)
    runs = select(loaded.runs, args.run_id)
    skips = [s for s in loaded.skips if not args.run_id or select_skip(s, args.run_id)]
    if args.print_spec:
        for run in select(loaded.runs, [args.print_spec]):
            print(spec_text(run, None, engines))
        return 0
    if args.list:
        for run in runs:
            w = run.workload
            print(
                f"{run.id}\t{run.engine} {run.engine_version}\t{run.model} {run.dtype}\t"
                f"{run.gpus}x{run.gpu}\t{w.arrival} {w.requests} {w.lengths}\t"
                f"{','.join(m.key for m in run.metrics)}"
            )
        for s in skips:
            print(f"{s.id}\tSKIP {s.reason}\t{s.detail}")
        return 0
    ev = evaluate(runs, processes=args.processes, engines=engines, max_requests=args.max_requests)
    mode = "engine language (std/engines)" if engines else "no engine language (batching/kv only)"
    scored = {r.run.id for r in ev.rows}
    finite = sum(np.isfinite(r.error) for r in ev.rows)
    print(f"## tokensim vs measured serving runs: {len(scored)} runs, {finite} metrics\n")
    print(f"Specs written with: {mode}. Cells: median / p90 of |sim - measured| / measured (n).\n")
    print(error_table(ev.rows))
    print("\n### per metric\n")
    print(metric_table(ev.rows))
    print("\n### runs not simulated\n")
    print(skip_table(runs, skips + ev.skips, scored))
    slow = sorted(ev.simulated.values(), key=lambda s: -s.wall_s)[:3]
    print(
        f"\n({ev.wall_s:.1f} s with {args.processes} processes; slowest runs: "
        + ", ".join(f"{s.run_id} {s.wall_s:.1f} s" for s in slow)
        + ")"
    )
    notes = sorted({n for s in ev.simulated.values() for n in s.notes})
    if notes:
        print("\ntokensim said:\n" + "\n".join(f"- {n}" for n in notes))
    if args.csv:
        write_csv(ev, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0


def select_skip(skip: Skip, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(skip.id, p) or skip.id == p for p in patterns)


if __name__ == "__main__":
    sys.exit(main())
