"""Benchmark results a user measured on a real server, read into :class:`Observed` runs.

Formats (detected from the content, not the file name):

* **vLLM** ``vllm bench serve --save-result`` (and the older ``benchmarks/benchmark_serving.py``):
  one JSON object a file; with ``--save-detailed`` it holds per-request ``input_lens``,
  ``output_lens``, ``ttfts`` and ``itls``.
* **SGLang** ``python -m sglang.bench_serving --output-file``: JSON Lines, one run a line
  (``--output-details`` adds the same per-request arrays).
* **GenAI-Perf** (NVIDIA): ``profile_export_genai_perf.json``, the statistics of each metric
  (``avg``, ``p50``, ``p90``, ``p99`` ...) and the arguments it ran with (``input_config``).
* **guidellm** ``guidellm benchmark --output-path report.json``: a report of benchmarks, one
  run each (a sweep's rates, concurrencies), with every request's lengths and latencies
  (``requests.successful``) and the scheduling strategy it ran (``config.strategy``, or
  ``args.strategy`` before guidellm 0.4).
* **inference-perf** (llm-d, used by BLIS): a ``stage_<n>_lifecycle_metrics.json`` per load
  stage, read with the ``config.yaml`` beside it (the load and the data it generated); a
  results folder stands for its stages.

Every latency is kept in seconds. A run's requests are its successful ones: vLLM marks a
failed request with an output length of 0 (and an entry in ``errors``); its summary counts
it, so the figures that the arrays allow are recomputed from the successful requests alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

FAMILIES = ("TTFT", "TPOT", "ITL", "E2E", "throughput")
_FAMILY = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2e": "E2E", "throughput": "throughput"}


class ResultError(Exception):
    """A benchmark result that cannot be read: the message names the file (and line)."""


@dataclass(frozen=True)
class Observed:
    """One measured benchmark run.

    ``arrivals`` is the tokensim arrival process that sent its requests (``burst``,
    ``closed 32``, ``poisson 4/s``, ``gamma 4/s { cv 0.7 }``). ``prompts`` and ``outputs``
    are the successful requests' lengths when the file lists them; otherwise ``lengths``
    is a tokensim ``lengths`` statement built from what the file says. ``metrics`` maps
    ``<name>_<stat>`` (``ttft_p90``, ``tpot_mean``, ``throughput_requests_per_s`` ...) to
    its measured value (seconds, 1/s, tokens/s). ``ttfts``, ``e2es`` and ``tpots`` are
    per request, and ``itls`` per streamed chunk, when known (for the CDFs of ``tokensim
    validate --bench``)."""

    name: str
    format: str
    model: str
    arrivals: str
    requests: int
    metrics: dict[str, float]
    prompts: np.ndarray | None = None
    outputs: np.ndarray | None = None
    lengths: str | None = None
    ttfts: np.ndarray | None = None
    e2es: np.ndarray | None = None
    tpots: np.ndarray | None = None
    notes: tuple[str, ...] = field(default=())
    # per request, one id per full block of ``prefix_block`` prompt tokens (equal ids:
    # equal content), when the benchmark's prompts repeat (a shared-prefix dataset)
    prefixes: tuple[tuple[int, ...], ...] | None = None
    prefix_block: int = 16
    itls: np.ndarray | None = None  # every streamed chunk's gap, when the file lists them
    # when each request was sent (s from the first), for an open-loop run whose file has
    # them: the replay sends at these times rather than drawing its own from ``arrivals``
    sent: np.ndarray | None = None

    @property
    def label(self) -> str:
        """A short name for tables: the file's name (and line)."""
        return self.name.rsplit("/", 1)[-1]


OPEN_LOOP = ("poisson", "constant", "gamma")  # arrival processes that do not depend on the server


OVERLOADED = 0.8  # an open-loop run that served under this share of the rate it was sent at


def sent_rate(obs: Observed) -> float | None:
    """The rate (requests/s) an open-loop run was sent at; ``None`` for the others."""
    if not obs.arrivals.startswith(OPEN_LOOP):
        return None
    return float(obs.arrivals.split()[1].removesuffix("/s"))


def served_of_sent(obs: Observed) -> str:
    """How much of an open-loop run's rate its server served, in words."""
    served = obs.metrics["throughput_requests_per_s"]
    return f"served {served:.3g} requests/s of the {sent_rate(obs):g}/s sent"


def overloaded(obs: Observed) -> bool:
    """Whether an open-loop run's server fell behind: it served under ``OVERLOADED`` of the
    rate the requests were sent at, so its queue grew for the whole run."""
    rate = sent_rate(obs)
    served = obs.metrics.get("throughput_requests_per_s")
    return rate is not None and served is not None and served < OVERLOADED * rate


def truncate(obs: Observed, requests: int) -> Observed:
    """``obs`` replayed with its first ``requests`` requests only, when its requests were
    sent at a rate (a steady state: the figures of a long run are those of its start);
    bursts and closed loops are kept whole, since their load depends on their size, and so
    is a run whose server fell behind (:func:`overloaded`), whose queue grew to its end."""
    if overloaded(obs):
        note = (
            f"{served_of_sent(obs)}: the server fell behind and its queue grew for the whole "
            "run, so the run is replayed whole"
        )
        return replace(obs, notes=(*obs.notes, note))
    if obs.requests <= requests or sent_rate(obs) is None:
        return obs
    cut = {}
    if obs.prompts is not None:
        cut = {"prompts": obs.prompts[:requests], "outputs": obs.outputs[:requests]}
    if obs.prefixes is not None:
        cut["prefixes"] = obs.prefixes[:requests]
    if obs.sent is not None:
        cut["sent"] = obs.sent[:requests]
    note = f"replayed with its first {requests} of {obs.requests} requests (a steady rate)"
    return replace(obs, requests=requests, notes=(*obs.notes, note), **cut)


def family(key: str) -> str:
    """The family (``TTFT``, ``TPOT`` ...) of a metric key."""
    return _FAMILY[key.split("_", 1)[0]]


def read(path: str | Path) -> list[Observed]:
    """The runs of one result file (a vLLM JSON holds one, an SGLang JSONL one a line, an
    inference-perf stage file one) or of an inference-perf results folder (its stages)."""
    path = Path(path)
    if path.is_dir():
        stages = sorted(path.glob("stage_*_lifecycle_metrics.json"), key=_stage_number)
        if not stages:
            raise ResultError(f"{path}: a folder without inference-perf stage files")
        return [run for stage in stages for run in read(stage)]
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ResultError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultError(f"{path}: cannot read it ({e})") from None
    stripped = text.strip()
    if not stripped:
        raise ResultError(f"{path}: the file is empty")
    try:
        objects = [(None, json.loads(stripped))]
    except json.JSONDecodeError as e:
        lines = [(i, s) for i, s in enumerate(text.splitlines(), 1) if s.strip()]
        if len(lines) < 2:
            raise ResultError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
        objects = []
        for i, line in lines:
            try:
                objects.append((i, json.loads(line)))
            except json.JSONDecodeError as e2:
                raise ResultError(f"{path}:{i}: not JSON ({e2.msg})") from None
    runs = []
    for line, obj in objects:
        where = f"{path}:{line}" if line is not None else str(path)
        if not isinstance(obj, dict):
            raise ResultError(f"{where}: expected a JSON object, found {type(obj).__name__}")
        if isinstance(obj.get("benchmarks"), list):  # a guidellm report: a run a benchmark
            runs.extend(_guidellm(obj, where))
        else:
            runs.append(_parse(obj, where, jsonl=line is not None))
    return runs


def _parse(obj: dict, where: str, jsonl: bool) -> Observed:
    if "load_summary" in obj and "successes" in obj:
        return _inference_perf(obj, Path(where), where)
    if "input_config" in obj and ("time_to_first_token" in obj or "request_latency" in obj):
        return _genai_perf(obj, where)
    if obj.get("backend") == "sglang" or (jsonl and "mean_e2e_latency_ms" in obj):
        return _benchmark_serving(obj, where, "SGLang bench_serving")
    latency = any(k.endswith(("_ttft_ms", "_tpot_ms", "_e2el_ms")) for k in obj)
    if "request_throughput" in obj or "ttfts" in obj or latency:
        return _benchmark_serving(obj, where, "vLLM bench serve")
    keys = ", ".join(sorted(obj)[:8])
    raise ResultError(
        f"{where}: not a benchmark result tokensim reads (vLLM `bench serve --save-result` "
        f"JSON, SGLang `bench_serving` JSONL, GenAI-Perf JSON, guidellm JSON, inference-perf "
        f"stage JSON); its keys: {keys}"
    )


def _number(obj: dict, key: str, where: str, required: bool = True) -> float | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ResultError(f"{where}: `{key}` is missing")
        return None
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultError(f"{where}: `{key}` should be a number, found {value!r}")
    return float(value)


def _array(obj: dict, key: str, where: str, n: int | None) -> np.ndarray | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or (n is not None and len(value) != n):
        size = len(value) if isinstance(value, list) else type(value).__name__
        raise ResultError(f"{where}: `{key}` should be a list of {n} numbers, found {size}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ResultError(f"{where}: `{key}` should hold numbers only") from None


def _arrivals(obj: dict, where: str) -> tuple[str, str | None]:
    """The arrival process of a vLLM or SGLang run, and for a rate with a cap on the
    requests in flight, how it was sent (the start of a note)."""
    rate = _number(obj, "request_rate", where, required=False)
    rate = math.inf if rate is None else rate
    concurrency = obj.get("max_concurrency")
    burstiness = _number(obj, "burstiness", where, required=False) or 1.0
    if concurrency is not None and not isinstance(concurrency, int):
        raise ResultError(f"{where}: `max_concurrency` should be a whole number")
    if math.isinf(rate):
        return (f"closed {concurrency}" if concurrency else "burst"), None
    if rate <= 0:
        raise ResultError(f"{where}: `request_rate` should be above 0, found {rate:g}")
    capped = f"sent at {rate:g}/s with at most {concurrency} in flight" if concurrency else None
    if burstiness != 1.0:
        # vLLM draws gaps from a gamma distribution of shape `burstiness`: cv = 1/sqrt(shape)
        return f"gamma {rate:g}/s {{ cv {1 / math.sqrt(burstiness):.6g} }}", capped
    return f"poisson {rate:g}/s", capped


def _benchmark_serving(obj: dict, where: str, fmt: str) -> Observed:
    """vLLM's and SGLang's ``benchmark_serving`` results (SGLang's began as a copy of
    vLLM's and keeps its keys, with ``e2e_latency`` for vLLM's ``latency``/``e2el``)."""
    notes: list[str] = []
    model = str(obj.get("model_id") or obj.get("model") or "")
    arrivals, capped = _arrivals(obj, where)
    outputs = _array(obj, "output_lens", where, None)
    n = len(outputs) if outputs is not None else None
    prompts = _array(obj, "input_lens", where, n)
    ttfts = _array(obj, "ttfts", where, n)
    starts = _array(obj, "start_times", where, n)  # recent versions: when each was sent
    itls = obj.get("itls")
    if itls is not None and (not isinstance(itls, list) or len(itls) != n):
        raise ResultError(f"{where}: `itls` should be one list per request")
    duration = _number(obj, "duration", where)
    if not duration or duration <= 0:
        raise ResultError(f"{where}: `duration` should be above 0")
    metrics: dict[str, float] = {}
    e2es = tpot_values = gaps = sent = None
    if outputs is not None and prompts is not None:
        ok = outputs > 0
        errors = obj.get("errors")
        if isinstance(errors, list) and len(errors) == n:
            ok &= np.array([not e for e in errors])
        failed = int(n - ok.sum())
        if not ok.any():
            raise ResultError(f"{where}: every request failed")
        if failed:
            notes.append(f"{failed} of {n} requests failed and are left out")
        if ttfts is not None:
            _stats(metrics, "ttft", ttfts[ok])
        if itls is not None and ttfts is not None:
            try:
                gaps_of = [np.asarray(g, np.float64) for g in itls]
            except (TypeError, ValueError):
                raise ResultError(f"{where}: `itls` should hold lists of numbers") from None
            e2es = np.array(
                [t + g.sum() for t, g, good in zip(ttfts, gaps_of, ok, strict=True) if good]
            )
            _stats(metrics, "e2e", e2es)
            out = outputs[ok]
            multi = out > 1
            tpots = (e2es[multi] - ttfts[ok][multi]) / (out[multi] - 1)
            tpot_values = tpots
            _stats(metrics, "tpot", tpots)
            kept = [g for g, good in zip(gaps_of, ok, strict=True) if good]
            gaps = np.concatenate(kept) if kept else np.zeros(0)
            _stats(metrics, "itl", gaps)
        ttfts = ttfts[ok] if ttfts is not None else None
        prompts, outputs = prompts[ok].astype(np.int64), outputs[ok].astype(np.int64)
        completed = int(ok.sum())
        if starts is not None and arrivals.startswith(OPEN_LOOP) and np.isfinite(starts).all():
            # replayed at the times they were sent (clock seconds: from the first), in
            # that order (with a cap, the sends it let through); a closed loop's sends
            # depend on the server, and are its own
            when = starts[ok]
            order = np.argsort(when, kind="stable")
            prompts, outputs = prompts[order], outputs[order]
            sent = when[order] - when[order[0]]
        lengths = None
    else:
        completed = int(_number(obj, "completed", where))
        if completed <= 0:
            raise ResultError(f"{where}: no request completed")
        failed = 0
        lengths = _lengths(obj, where, completed, notes)
        prompts = outputs = None
    if capped:
        how = (
            "simulated at the rate alone (tokensim has no capped open loop)"
            if sent is None
            else "replayed at the times the requests were sent"
        )
        notes.insert(0, f"{capped}: {how}")
    # the summary's figures for what the arrays did not give; vLLM's TTFT and E2E count a
    # failed request as if it had finished (TPOT and ITL leave out outputs of 0 or 1 token)
    for name, keys in (
        ("ttft", ("ttft",)),
        ("tpot", ("tpot",)),
        ("itl", ("itl",)),
        ("e2e", ("e2el", "e2e_latency", "latency")),
    ):
        if any(k.startswith(name + "_") for k in metrics) or (failed and name in ("ttft", "e2e")):
            continue
        for key in keys:
            found = _summary(obj, key, where)
            if found:
                metrics.update({f"{name}_{stat}": v for stat, v in found.items()})
                break
    if failed and not any(k.startswith("e2e_") for k in metrics):
        mean = _number(obj, "mean_latency_ms", where, required=False)
        if mean is not None:  # vLLM 0.5-0.6: a failed request's latency is ~0
            metrics["e2e_mean"] = mean / 1000 * n / completed
            notes.append("E2E mean corrected for the failed requests (latency about 0)")
    metrics["throughput_requests_per_s"] = completed / duration
    total_out = float(outputs.sum()) if outputs is not None else None
    if total_out is None:
        total_out = _number(obj, "total_output_tokens", where, required=False)
    if total_out:
        metrics["throughput_output_tokens_per_s"] = total_out / duration
    if not any(k.startswith(("ttft", "tpot", "e2e")) for k in metrics):
        raise ResultError(f"{where}: no latency figure (TTFT, TPOT or E2E) found")
    return Observed(
        where,
        fmt,
        model,
        arrivals,
        completed,
        metrics,
        prompts,
        outputs,
        lengths,
        ttfts,
        e2es,
        tpot_values,
        tuple(notes),
        itls=gaps,
        sent=sent,
    )


def _stats(metrics: dict, name: str, values: np.ndarray) -> None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    metrics[f"{name}_mean"] = float(values.mean())
    for q in (50, 90, 99):
        metrics[f"{name}_p{q}"] = float(np.percentile(values, q))


def _summary(obj: dict, key: str, where: str) -> dict[str, float]:
    """``mean_<key>_ms``, ``median_<key>_ms``, ``p90_<key>_ms`` ... as seconds by stat."""
    out = {}
    for prefix, stat in (("mean", "mean"), ("median", "p50"), ("p90", "p90"), ("p99", "p99")):
        value = _number(obj, f"{prefix}_{key}_ms", where, required=False)
        if value is not None and math.isfinite(value):
            out[stat] = value / 1000
    return out


def _lengths(obj: dict, where: str, completed: int, notes: list[str]) -> str:
    """A ``lengths`` statement for a run without per-request lengths."""
    p_len = obj.get("random_input_len")
    o_len = obj.get("random_output_len")
    ratio = obj.get("random_range_ratio")
    if obj.get("dataset_name") == "random" and isinstance(p_len, int) and isinstance(o_len, int):
        ratio = float(ratio) if isinstance(ratio, int | float) else 1.0
        if ratio >= 1.0:
            return f"fixed {p_len} -> {o_len}"
        # SGLang's random dataset: uniform from max(len x ratio, 1) to len
        lo_p, lo_o = max(int(p_len * ratio), 1), max(int(o_len * ratio), 1)
        return f"uniform {lo_p}..{p_len} -> {lo_o}..{o_len}"
    p_total = _number(obj, "total_input_tokens", where, required=False)
    o_total = _number(obj, "total_output_tokens", where, required=False)
    if not p_total or not o_total:
        raise ResultError(
            f"{where}: no per-request lengths (`input_lens`, `output_lens`) and no token "
            "totals: save the result with per-request details (vLLM `--save-detailed`, "
            "SGLang `--output-details`)"
        )
    p, o = max(round(p_total / completed), 1), max(round(o_total / completed), 1)
    if obj.get("dataset_name") == "sharegpt":
        # the benchmark's own ShareGPT sample: its long tails set the medians, which lengths
        # at the means would miss
        from tokensim.workload.lengths import SHAREGPT_MEANS

        notes.append(
            f"no per-request lengths in the file: ShareGPT's mix (`lengths sharegpt`: means "
            f"{SHAREGPT_MEANS[0]:.0f} -> {SHAREGPT_MEANS[1]:.0f} tokens; this run's {p} -> "
            f"{o}); save with per-request details for a faithful replay"
        )
        return "sharegpt"
    notes.append(
        f"no per-request lengths in the file: every request at the means ({p} -> {o} "
        "tokens); save with per-request details for a faithful replay"
    )
    return f"fixed {p} -> {o}"


# ------------------------------------------------------------------------ inference-perf


def _stage_number(path: Path) -> int:
    try:
        return int(path.name.split("_")[1])
    except (IndexError, ValueError):
        return -1


def _dig(obj: dict, *keys: str):
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def _config(path: Path, where: str) -> dict:
    import yaml

    config = path.parent / "config.yaml"
    try:
        loaded = yaml.safe_load(config.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultError(
            f"{where}: inference-perf's config.yaml is not beside it ({config}): it says how "
            "the requests were sent and made"
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ResultError(f"{config}: cannot read it ({e})") from None
    if not isinstance(loaded, dict):
        raise ResultError(f"{config}: not an inference-perf config")
    return loaded


def _inference_perf(obj: dict, path: Path, where: str) -> Observed:
    """One load stage of an inference-perf run."""
    stage = _stage_number(path)
    if stage < 0:
        raise ResultError(
            f"{where}: not a stage file (stage_<n>_lifecycle_metrics.json); the summary mixes "
            "its stages, give the stage files or their folder"
        )
    config = _config(path, where)
    notes: list[str] = []
    load = config.get("load") or {}
    stages = load.get("stages") or []
    if stage >= len(stages):
        raise ResultError(f"{where}: config.yaml lists {len(stages)} stages, not stage {stage}")
    rate = stages[stage].get("rate") if isinstance(stages[stage], dict) else None
    if not isinstance(rate, int | float) or rate <= 0:
        raise ResultError(f"{where}: config.yaml gives stage {stage} no rate")
    kind = load.get("type", "constant")
    if kind not in ("constant", "poisson"):
        raise ResultError(f"{where}: load type `{kind}` is not one tokensim replays")
    arrivals = f"{kind} {rate:g}/s"
    sent = _dig(obj, "load_summary", "count")
    if not isinstance(sent, int) or sent <= 0:
        raise ResultError(f"{where}: `load_summary.count` (requests sent) is missing")
    failed = _dig(obj, "failures", "count") or 0
    if failed > 0.1 * sent:
        raise ResultError(
            f"{where}: {failed} of {sent} requests failed: the server was overloaded (requests "
            "timed out), and a replay serves every request; leave this run out"
        )
    if failed:
        notes.append(f"{failed} of {sent} requests failed; the figures are the successes'")
    latency = _dig(obj, "successes", "latency") or {}
    metrics: dict[str, float] = {}
    for name, key in (("ttft", "time_to_first_token"), ("e2e", "request_latency")):
        block = latency.get(key) or {}
        for stat, col in (("mean", "mean"), ("p50", "median"), ("p90", "p90"), ("p99", "p99")):
            if isinstance(block.get(col), int | float):
                metrics[f"{name}_{stat}"] = float(block[col])
    data = config.get("data") or {}
    shared = data.get("shared_prefix") if data.get("type") == "shared_prefix" else None
    ignore_eos = bool(_dig(config, "server", "ignore_eos"))
    prompt_mean = _dig(obj, "successes", "prompt_len", "mean")
    output = shared.get("output_len") if shared and ignore_eos else None
    if output is None:
        output = _dig(obj, "successes", "output_len", "mean")
    if not isinstance(prompt_mean, int | float) or not isinstance(output, int | float):
        raise ResultError(f"{where}: no prompt or output lengths (`successes.prompt_len`)")
    prompt, output = max(round(prompt_mean), 1), max(round(output), 2)
    if ignore_eos and shared:
        notes.append(
            f"outputs of the requested {output} tokens (ignore_eos; the reported lengths are "
            "re-tokenized text)"
        )
    for stat in ("mean", "p50"):  # inference-perf's TPOT is not per output token
        e2e, ttft = metrics.get(f"e2e_{stat}"), metrics.get(f"ttft_{stat}")
        if e2e is not None and ttft is not None:
            metrics[f"tpot_{stat}"] = (e2e - ttft) / (output - 1)
    rps = _dig(obj, "successes", "throughput", "requests_per_sec")
    if isinstance(rps, int | float) and rps > 0:
        metrics["throughput_requests_per_s"] = float(rps)
    if not metrics:
        raise ResultError(f"{where}: no latency figures under `successes.latency`")
    prefixes = None
    if shared:
        prefixes = shared_prefix_ids(
            sent,
            prompt,
            int(shared.get("num_groups", 1)),
            int(shared.get("num_prompts_per_group", 1)),
            int(shared.get("system_prompt_len", 0)),
        )
        notes.append(
            f"{len(set(prefixes))} distinct prompts of {prompt} tokens sent in turn, each "
            f"group's {shared.get('system_prompt_len', 0)}-token system prompt shared "
            "(shared_prefix data): a prefix cache sees them again"
        )
    model = str(_dig(config, "server", "model_name") or "")
    return Observed(
        where,
        "inference-perf",
        model,
        arrivals,
        sent,
        metrics,
        np.full(sent, prompt, np.int64),
        np.full(sent, output, np.int64),
        None,
        notes=tuple(notes),
        prefixes=prefixes,
    )


def shared_prefix_ids(
    requests: int, prompt: int, groups: int, per_group: int, shared: int, block: int = 16
) -> tuple[tuple[int, ...], ...]:
    """Prefix-block ids of a shared-prefix load: ``groups x per_group`` distinct prompts of
    ``prompt`` tokens, request ``i`` sending prompt ``i mod n`` (in an order shuffled once,
    seed 1); the prompts of a group open with its ``shared``-token system prompt. One id per
    full ``block`` tokens: blocks inside the system prompt carry the group's ids, the rest
    the prompt's own."""
    n = max(groups * per_group, 1)
    order = np.random.default_rng(1).permutation(n)
    shared_blocks = shared // block
    stride = 1 + prompt // block  # the ids of one owner, apart from the next owner's
    out = []
    for i in range(requests):
        p = int(order[i % n])
        group, own = p // per_group, groups + p  # owners: the groups, then the prompts
        out.append(
            tuple(
                (group if j < shared_blocks else own) * stride + j for j in range(prompt // block)
            )
        )
    return tuple(out)


# ----------------------------------------------------------------------------- GenAI-Perf

_GENAI = (
    ("ttft", "time_to_first_token"),
    ("tpot", "inter_token_latency"),
    ("e2e", "request_latency"),
)
_UNITS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "us": 1e-6, "ns": 1e-9}


def _genai_perf(obj: dict, where: str) -> Observed:
    """GenAI-Perf's ``profile_export_genai_perf.json``. Its ``inter_token_latency`` is per
    request, (E2E - TTFT) / (output - 1): vLLM's TPOT, and recorded as TPOT."""
    notes: list[str] = []
    config = obj.get("input_config") or {}
    metrics: dict[str, float] = {}
    for name, key in _GENAI:
        block = obj.get(key)
        if not isinstance(block, dict):
            continue
        scale = _UNITS.get(str(block.get("unit", "ms")).lower())
        if scale is None:
            raise ResultError(f"{where}: `{key}` is in `{block.get('unit')}`, not a time unit")
        for stat, col in (("mean", "avg"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99")):
            v = block.get(col)
            if isinstance(v, int | float) and math.isfinite(v):
                metrics[f"{name}_{stat}"] = float(v) * scale
    if not metrics:
        raise ResultError(f"{where}: no TTFT, inter-token or request latency statistics")
    rps = _dig(obj, "request_throughput", "avg")
    if isinstance(rps, int | float) and rps > 0:
        metrics["throughput_requests_per_s"] = float(rps)
    tps = _dig(obj, "output_token_throughput", "avg")
    if isinstance(tps, int | float) and tps > 0:
        metrics["throughput_output_tokens_per_s"] = float(tps)
    rate, concurrency = config.get("request_rate"), config.get("concurrency")
    if isinstance(rate, int | float) and rate > 0:
        arrivals = f"constant {rate:g}/s"  # perf_analyzer's default request distribution
    elif isinstance(concurrency, int) and concurrency > 0:
        arrivals = f"closed {concurrency}"
    else:
        raise ResultError(f"{where}: `input_config` gives neither a concurrency nor a rate")
    count = config.get("request_count")
    if isinstance(count, int) and count > 0:
        requests = count
    else:
        requests = max(10 * (concurrency or 0), 1000 if rate else 200)
        notes.append(
            f"no request count (a measurement window): {requests} requests replayed, enough "
            "for a steady state"
        )
    prompt = _dig(obj, "input_sequence_length", "avg") or config.get("synthetic_input_tokens_mean")
    output = _dig(obj, "output_sequence_length", "avg") or config.get("output_tokens_mean")
    if not isinstance(prompt, int | float) or not isinstance(output, int | float):
        raise ResultError(f"{where}: no input or output sequence lengths")
    p, o = max(round(prompt), 1), max(round(output), 1)
    if config.get("synthetic_input_tokens_stddev") or config.get("output_tokens_stddev"):
        notes.append(f"lengths drawn around their means: replayed at the means ({p} -> {o})")
    model = config.get("model")
    model = model[0] if isinstance(model, list) and model else model
    return Observed(
        where,
        "GenAI-Perf",
        str(model or ""),
        arrivals,
        requests,
        metrics,
        lengths=f"fixed {p} -> {o}",
        notes=tuple(notes),
    )


def _guidellm(obj: dict, where: str) -> list[Observed]:
    """A guidellm report: one run per benchmark of ``benchmarks``."""
    benchmarks = obj["benchmarks"]
    if not benchmarks:
        raise ResultError(f"{where}: `benchmarks` is empty")
    out = []
    for i, bench in enumerate(benchmarks, 1):
        at = f"{where}#{i}" if len(benchmarks) > 1 else where
        if not isinstance(bench, dict):
            raise ResultError(f"{at}: a benchmark should be a JSON object")
        out.append(_guidellm_run(bench, at))
    return out


_GUIDELLM_KEYS = ("prompt_tokens", "output_tokens", "time_to_first_token_ms", "request_latency")


def _guidellm_arrivals(bench: dict, where: str) -> str:
    """guidellm's scheduling strategy as tokensim arrivals (``throughput`` sends as many as
    it may: a closed loop at its concurrency cap, else everything at once)."""
    strategy = None
    for holder in ("config", "args", "scheduler"):
        found = _dig(bench, holder, "strategy")
        if isinstance(found, dict):
            strategy = found
            break
    if strategy is None:
        raise ResultError(f"{where}: no scheduling strategy (`config.strategy`)")
    kind = strategy.get("type_") or strategy.get("type")
    if kind == "synchronous":
        return "closed 1"
    if kind in ("concurrent", "throughput"):
        n = strategy.get("streams" if kind == "concurrent" else "max_concurrency")
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return f"closed {n}"
        if kind == "throughput":
            return "burst"
        raise ResultError(f"{where}: a `concurrent` strategy without a whole number of streams")
    if kind in ("constant", "poisson"):
        rate = strategy.get("rate")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ResultError(f"{where}: a `{kind}` strategy without a rate above 0")
        return f"{kind} {rate:g}/s"
    raise ResultError(
        f"{where}: guidellm strategy `{kind}` is not one tokensim replays (synchronous, "
        "concurrent, throughput, constant, poisson)"
    )


def _guidellm_start(req: dict) -> float:
    """When a guidellm request was sent (its order in the run), whatever the version."""
    for path in (
        ("request_start_time",),
        ("info", "timings", "request_start"),
        ("scheduler_info", "request_timings", "request_start"),
        ("start_time",),
    ):
        v = _dig(req, *path)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return math.nan


def _guidellm_run(bench: dict, where: str) -> Observed:
    """One guidellm benchmark: its successful requests' lengths and latencies. Its
    ``inter_token_latency_ms`` is per request, (last token - first) / (output - 1): vLLM's
    TPOT, and recorded as TPOT (guidellm's own ``time_per_output_token_ms`` counts the
    first token in)."""
    notes: list[str] = []
    arrivals = _guidellm_arrivals(bench, where)
    requests = bench.get("requests")
    done = requests.get("successful") if isinstance(requests, dict) else None
    if not isinstance(done, list) or not done:
        raise ResultError(f"{where}: no successful requests (`requests.successful`)")
    rows = []
    for j, req in enumerate(done):
        if not isinstance(req, dict):
            raise ResultError(f"{where}: request {j + 1} should be a JSON object")
        row = []
        for key in (*_GUIDELLM_KEYS, "inter_token_latency_ms"):
            v = req.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ResultError(f"{where}: request {j + 1}: `{key}` should be a number")
            row.append(math.nan if v is None else float(v))
        if any(math.isnan(x) for x in row[:2]):
            raise ResultError(
                f"{where}: request {j + 1} has no token counts (`prompt_tokens`, `output_tokens`)"
            )
        rows.append((_guidellm_start(req), *row))
    rows.sort(key=lambda r: (math.isnan(r[0]), r[0]))  # in the order they were sent
    table = np.array(rows, dtype=np.float64)  # start, then one column per key
    prompts, outputs, ttft_ms, e2e_s, itl_ms = table[:, 1:].T
    totals = bench.get("request_totals") if isinstance(bench.get("request_totals"), dict) else {}
    failed = sum(v for k in ("errored", "incomplete") if isinstance(v := totals.get(k), int))
    listed = totals.get("successful")
    sampled = isinstance(listed, int) and listed > len(done)
    if sampled:
        notes.append(
            f"the report lists {len(done)} of its {listed} successful requests: they are "
            "replayed by its strategy, not at their own times"
        )
    if failed > 0.1 * (len(done) + failed):
        raise ResultError(
            f"{where}: {failed} of {len(done) + failed} requests failed or were cut short: "
            "the server was overloaded, and a replay serves every request"
        )
    if failed:
        notes.append(f"{failed} requests failed or were cut short and are left out")
    metrics: dict[str, float] = {}
    ttfts = ttft_ms / 1000
    _stats(metrics, "ttft", ttfts)
    multi = outputs > 1
    tpots = itl_ms[multi] / 1000
    _stats(metrics, "tpot", tpots)
    _stats(metrics, "e2e", e2e_s)
    duration = _number(bench, "duration", where, required=False)
    if duration is None:
        begin, end = bench.get("start_time"), bench.get("end_time")
        if isinstance(begin, int | float) and isinstance(end, int | float):
            duration = float(end) - float(begin)
    if duration and duration > 0:
        served = listed if sampled else len(done)  # a sample's tokens scaled to them all
        metrics["throughput_requests_per_s"] = served / duration
        metrics["throughput_output_tokens_per_s"] = float(outputs.mean()) * served / duration
    if not any(k.startswith(("ttft", "tpot", "e2e")) for k in metrics):
        raise ResultError(f"{where}: no latency figure (TTFT, TPOT or E2E) found")
    model = _dig(bench, "config", "backend", "model") or _dig(bench, "args", "model") or ""
    start = table[:, 0]
    sent = None
    if arrivals.startswith(OPEN_LOOP) and np.isfinite(start).all() and not sampled:
        sent = start - start[0]  # sorted: the first request sent is first
    return Observed(
        where,
        "guidellm",
        str(model),
        arrivals,
        len(done),
        metrics,
        prompts.astype(np.int64),
        outputs.astype(np.int64),
        None,
        ttfts[np.isfinite(ttfts)],
        e2e_s[np.isfinite(e2e_s)],
        tpots[np.isfinite(tpots)],
        tuple(notes),
        sent=sent,
    )
