"""A server's launch command as spec settings: ``--serve-cmd "vllm serve ... --max-num-seqs 128"``.

The flags that change what the simulator models become ``--set``-style paths on each pool
(``tp``, ``batching.max_seqs``, ``kv.gpu_util``, ``engine.scheduler_steps`` ...), applied to
the spec as overrides; flags that change nothing it models (``--port``, ``--host``) are
ignored, and flags it does not know are listed, so that nothing is dropped silently.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field


class ServeError(Exception):
    """A serve command that cannot be read."""


@dataclass
class Settings:
    """What a serve command sets: the engine family it launches, spec paths under
    ``deployment.<pool>`` with their values, and the flags left out (by reason)."""

    engine: str
    paths: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # nothing the simulator models
    unknown: list[str] = field(default_factory=list)  # flags tokensim does not know


# flags that change nothing tokensim models, by engine family
_IGNORED = {
    "--host", "--port", "--model", "--model-path", "--served-model-name", "--tokenizer",
    "--trust-remote-code", "--api-key", "--download-dir", "--uvicorn-log-level",
    "--disable-log-requests", "--disable-log-stats", "--log-level", "--seed", "--dtype",
    "--context-length", "--max_seq_len", "--backend", "--revision",
    "--load-format", "--enable-auto-tool-choice", "--tool-call-parser", "--chat-template",
    "--swap-space",  # CPU space for swapped blocks: vLLM preempts by recomputing by default
}  # fmt: skip


def engine_family(command: str) -> str:
    """``vllm``, ``sglang`` or ``trtllm``, from the program the command runs."""
    text = command.lower()
    if "sglang" in text:
        return "sglang"
    if "trtllm" in text or "tensorrt_llm" in text:
        return "trtllm"
    if "vllm" in text:
        return "vllm"
    raise ServeError(
        "the serve command runs none of vllm (`vllm serve`, `vllm.entrypoints.openai."
        "api_server`), sglang (`sglang.launch_server`) or trtllm-serve"
    )


def flags(command: str) -> dict[str, str | bool]:
    """``--flag value``, ``--flag=value`` and bare ``--flag`` of a command line."""
    try:
        words = shlex.split(command.replace("\\\n", " "))
    except ValueError as e:
        raise ServeError(f"the serve command does not parse as a shell line: {e}") from None
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w == "-m" and i + 1 < len(words) and "." in words[i + 1]:  # python -m <module>
            i += 2
            continue
        if w.startswith("-") and len(w) > 1 and not re.fullmatch(r"-\d.*", w):
            if "=" in w:
                name, value = w.split("=", 1)
                out[name] = value
            elif i + 1 < len(words) and (
                not words[i + 1].startswith("-") or re.fullmatch(r"-\d[\d.]*", words[i + 1])
            ):
                out[w] = words[i + 1]
                i += 1
            else:
                out[w] = True
        i += 1
    return out


def _int(name: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ServeError(f"`{name}` takes a whole number, not {value!r}") from None


def _float(name: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ServeError(f"`{name}` takes a number, not {value!r}") from None


# set once the pool's policy is known
BUDGET, CHUNKED, MODEL_LEN = "<budget>", "<chunked prefill>", "<max model len>"
IN_PROCESS = "<API server in the engine's process>"  # vLLM's --disable-frontend-multiprocessing
DEFERRED = (BUDGET, CHUNKED, MODEL_LEN, IN_PROCESS)


def settings(command: str) -> Settings:
    """The spec settings of ``command``. A token budget and chunked prefill depend on the
    pool's batching policy: they stay under :data:`BUDGET` and :data:`CHUNKED` until
    :func:`for_policy` writes them."""
    family = engine_family(command)
    raw = flags(command)
    out = Settings(family)
    table = _VLLM if family == "vllm" else _SGLANG if family == "sglang" else _TRTLLM
    for name, value in raw.items():
        rule = table.get(name)
        if rule is None:
            (out.ignored if name in _IGNORED else out.unknown).append(name)
            continue
        rule(out, name, value)
    return out


def for_policy(paths: dict[str, str], policy: str) -> dict[str, str]:
    """``paths`` with the token budget and chunked prefill written for a pool whose
    batching policy is ``policy`` (``chunked``: a ``budget``; ``continuous``:
    ``max_tokens``, and chunked prefill is the ``chunked`` policy or SGLang's chunks). A
    vLLM ``--max-model-len`` sets the budget only where V0 derives it from the model length
    (``continuous``, no chunked prefill, no ``--max-num-batched-tokens``), and
    ``--disable-frontend-multiprocessing`` puts the API server in the engine's process only
    in V0 (``continuous``: ``shares_cpu``); vLLM V1 ignores it."""
    out = {k: v for k, v in paths.items() if k not in DEFERRED}
    if IN_PROCESS in paths and policy == "continuous":
        # vLLM V0's engine loop then takes requests in itself; V1 ignores the flag
        out["engine.frontend.shares_cpu"] = "on"
        out["engine.frontend.batches"] = "off"
    budget, chunked = paths.get(BUDGET), paths.get(CHUNKED)
    if policy == "continuous" and chunked == "on":  # vLLM V0's --enable-chunked-prefill
        out["batching"] = f"chunked {{ budget {budget or '512 tokens'} }}"  # V0's default
        return out
    if policy == "continuous" and not budget and MODEL_LEN in paths:
        # vLLM V0 without chunked prefill: max_num_batched_tokens = max(max_model_len, 2048)
        budget = f"{max(int(paths[MODEL_LEN]), 2048)} tokens"
    if budget:
        out["batching.budget" if policy == "chunked" else "batching.max_tokens"] = budget
    if chunked == "off" and policy in ("chunked", "continuous"):
        out["batching.chunk"] = "off"
    return out


def resolve(s: Settings, policy: str) -> None:
    """Write the deferred settings of ``s`` for a pool whose batching policy is ``policy``
    (:func:`for_policy`); a flag that engine ignores goes to ``s.ignored``."""
    if IN_PROCESS in s.paths and policy != "continuous":
        s.ignored.append("--disable-frontend-multiprocessing (vLLM V1 ignores it)")
    s.paths = for_policy(s.paths, policy)


def _set(path: str, convert=None, unit: str = ""):
    def rule(out: Settings, name: str, value) -> None:
        v = convert(name, value) if convert else value
        out.paths[path] = f"{v:g}{unit}" if isinstance(v, float) else f"{v}{unit}"

    return rule


def _const(path: str, text: str, *more: tuple[str, str]):
    def rule(out: Settings, name: str, value) -> None:
        out.paths[path] = text
        out.paths.update(more)

    return rule


def _kv_dtype(out: Settings, name: str, value) -> None:
    text = str(value).lower()
    if text.startswith("fp8"):
        out.paths["kv.dtype"] = "fp8"
    elif text not in ("auto", "true"):
        out.unknown.append(f"{name} {value}")


def _sglang_chunk(out: Settings, name: str, value) -> None:
    n = _int(name, value)
    if n <= 0:  # -1 turns chunked prefill off
        out.paths[CHUNKED] = "off"
    else:
        out.paths[BUDGET] = f"{n} tokens"


def _graphs(out: Settings, name: str, value) -> None:
    out.paths["engine.cuda_graphs"] = f"{_int(name, value)} tokens"


_VLLM = {
    "--tensor-parallel-size": _set("tp", _int),
    "-tp": _set("tp", _int),
    "--pipeline-parallel-size": _set("pp", _int),
    "-pp": _set("pp", _int),
    "--max-num-seqs": _set("batching.max_seqs", _int),
    "--max-num-batched-tokens": _set(BUDGET, _int, " tokens"),
    "--max-model-len": _set(MODEL_LEN, _int),  # V0's token budget without chunked prefill
    "--gpu-memory-utilization": _set("kv.gpu_util", _float),
    "--block-size": _set("kv.block", _int, " tokens"),
    "--kv-cache-dtype": _kv_dtype,
    "--enable-prefix-caching": _const("kv.prefix_cache", "on"),
    "--no-enable-prefix-caching": _const("kv.prefix_cache", "off"),
    "--enable-chunked-prefill": _const(CHUNKED, "on"),
    "--no-enable-chunked-prefill": _const(CHUNKED, "off"),
    "--num-scheduler-steps": _set("engine.scheduler_steps", _int),
    # vLLM V0 cannot process outputs asynchronously without CUDA graphs
    "--enforce-eager": _const("engine.cuda_graphs", "off", ("engine.async_output", "off")),
    "--disable-async-output-proc": _const("engine.async_output", "off"),
    "--disable-frontend-multiprocessing": _const(IN_PROCESS, "on"),
    "--max-cudagraph-capture-size": _graphs,
    "--async-scheduling": _const("engine.async_scheduling", "on"),
    "--no-async-scheduling": _const("engine.async_scheduling", "off"),
}
_SGLANG = {
    "--tp": _set("tp", _int),
    "--tp-size": _set("tp", _int),
    "--pp-size": _set("pp", _int),
    "--max-running-requests": _set("batching.max_seqs", _int),
    "--chunked-prefill-size": _sglang_chunk,
    "--mem-fraction-static": _set("kv.gpu_util", _float),
    "--mem-frac": _set("kv.gpu_util", _float),
    "--page-size": _set("kv.block", _int, " tokens"),
    "--kv-cache-dtype": _kv_dtype,
    "--disable-radix-cache": _const("kv.prefix_cache", "off"),
    "--cuda-graph-max-bs": _graphs,
    "--disable-cuda-graph": _const("engine.cuda_graphs", "off"),
}
_TRTLLM = {
    "--tp_size": _set("tp", _int),
    "--pp_size": _set("pp", _int),
    "--max_batch_size": _set("batching.max_seqs", _int),
    "--max_num_tokens": _set(BUDGET, _int, " tokens"),
    "--kv_cache_free_gpu_memory_fraction": _set("kv.gpu_util", _float),
}


def engine_matches(family: str, engine: str) -> bool:
    """Whether a pool's engine (``vllm_0_6``, ``sglang`` ...) is of ``family``."""
    return engine.startswith(family) or engine == "ideal"
