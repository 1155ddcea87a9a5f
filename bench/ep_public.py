"""DeepSeek-V3 with expert parallelism: tokensim's step times against published throughput.

The published figures are step-level: a fixed batch per GPU, prefill or decode measured on
its own ("assuming unlimited resources for the non-tested phase"). So each case here is one
iteration of the stated batch on the stated deployment, priced as `tokensim run` prices it
(the pool's cost model and engine), turned into tokens per second per node. Nothing in
tokensim was fitted to these figures.

Sources (setups as the posts state them):

* LMSYS, "Deploying DeepSeek with PD Disaggregation and Large-scale Expert Parallelism on 96
  H100 GPUs" (2025-05-05, lmsys.org/blog/2025-05-05-large-scale-ep): SGLang, 8 H100s a node
  over InfiniBand, DP attention, DeepEP, EPLB with 32 redundant experts, two-batch overlap.
  Prefill on 4 nodes (EP32), 16,384 tokens a GPU: 57,674 / 54,543 / 50,302 input tok/s a node
  at 1K / 2K / 4K prompts. Decode on 9 nodes (EP72), 256 sequences a GPU at 2,000 tokens of
  KV: 22,282 output tok/s a node; with a simulated MTP (batch 128, KV 4,000): 17,373.
* SGLang on H20 (LMSYS, 2025-09-26, Ant Group): decode on 2 nodes, tp 16 dp 16 ep 16 with MTP,
  not priced here (MTP's acceptance is not stated for the run).

Run: python3 bench/ep_public.py
"""

from __future__ import annotations

import math

from tokensim import api
from tokensim.graph import lower
from tokensim.lang.source import SourceMap
from tokensim.perf import Batch, for_pool
from tokensim.sim.engine import EngineCost

HEAD = 'import "std/hardware"\nimport "std/models"\nimport "std/engines"\n'


def deployment(nodes: int, ep: int, overlap: bool, link: str = "IB_400G") -> str:
    cluster = "".join(
        f"  node n{i} {{ gpus H100_SXM x 8; link NVLINK4; nics 8 }}\n" for i in range(nodes)
    )
    cluster += f"  network {link} between {', '.join(f'n{i}' for i in range(nodes))}\n"
    return (
        HEAD
        + f"cluster {{\n{cluster}}}\n"
        + "deployment {\n  engine sglang\n"
        + "  pool p { model deepseek_v3 fp8\n"
        + f"    ep {ep} {{ redundant 32; overlap {'on' if overlap else 'off'} }}\n  }}\n}}\n"
    )


def step(nodes: int, ep: int, overlap: bool, batch: Batch, seqs: int):
    """Seconds of one iteration of ``batch`` (``seqs`` sequences) on the deployment, and
    the cost model's breakdown of its GPU time."""
    sources = SourceMap()
    spec = api.check(api.parse(deployment(nodes, ep, overlap), "ep.tsim", sources), sources)
    pool = spec.deployment.pools[0]
    cost = for_pool(pool, lower(spec))
    return EngineCost(pool, cost).iteration_s(batch, seqs), cost.breakdown(batch)


CASES = [
    # name, nodes, ep, prompt tokens or KV length, per-GPU tokens or sequences, published
    ("prefill 1K, EP32", 4, 32, "prefill", 1024, 16384, 57674),
    ("prefill 2K, EP32", 4, 32, "prefill", 2048, 16384, 54543),
    ("prefill 4K, EP32", 4, 32, "prefill", 4096, 16384, 50302),
    ("decode KV 2000, 256 a GPU, EP72", 9, 72, "decode", 2000, 256, 22282),
]


def predict(nodes, ep, phase, length, per_gpu, overlap) -> tuple[float, str]:
    """Tokens a second a node, and the step's three largest parts."""
    gpus = ep
    if phase == "prefill":
        prompts = per_gpu * gpus // length
        batch = Batch(
            prefill_tokens=prompts * length,
            prefill_pairs=prompts * Batch.pairs(length, 0),
            samples=prompts,
        )
        seconds, parts = step(nodes, ep, overlap, batch, prompts)
        tokens = prompts * length
    else:
        seqs = per_gpu * gpus
        batch = Batch(decode_seqs=seqs, decode_context=seqs * length)
        seconds, parts = step(nodes, ep, overlap, batch, seqs)
        tokens = seqs
    top = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
    shares = ", ".join(f"{k} {v / sum(parts.values()):.0%}" for k, v in top)
    return tokens / seconds / nodes, f"{seconds * 1e3:.0f} ms: {shares}"


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def main() -> int:
    print(
        "| case | published tok/s a node | overlap off | error | overlap on | error |"
        " step, overlap off |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    errors: dict[bool, list[float]] = {False: [], True: []}
    for name, nodes, ep, phase, length, per_gpu, published in CASES:
        cells = []
        for overlap in (False, True):
            per_node, parts = predict(nodes, ep, phase, length, per_gpu, overlap)
            error = per_node / published - 1
            errors[overlap].append(abs(error))
            cells.append(f"{per_node:,.0f} | {error:+.0%}")
            if not overlap:
                shown = parts
        print(f"| {name} | {published:,} | {' | '.join(cells)} | {shown} |")
    for overlap in (False, True):
        print(
            f"overlap {'on' if overlap else 'off'}: median |error| "
            f"{median(errors[overlap]):.0%} over {len(errors[overlap])} figures"
        )
    return 0 if all(math.isfinite(e) for e in errors[False] + errors[True]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
