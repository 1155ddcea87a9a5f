"""Speculative decoding: tokensim's speed-ups against published ones at a stated acceptance.

Each case runs a closed loop of ``clients`` requests (the published batch size) with and
without speculation, as `tokensim run` would, and compares the ratio of mean TPOTs with the
published speed-up. The acceptance per token is solved from the published mean acceptance
length ``L`` (tokens a verification step yields): ``L = (1 - a^(k+1)) / (1 - a)``. Nothing
in tokensim was fitted to these figures.

Sources:

* SGLang's DeepSeek-V3 docs (sgl-project/sglang, docs/basic_usage/deepseek.md): MTP "1.8x for
  batch size 1 and 1.5x for batch size 32 ... on H200 TP8"; the acceptance length is from
  the MTP pull request (sgl-project/sglang#3582): "~1.9 avg accept length for draft 2
  tokens" (1.76x at batch 1 there).
* vLLM, EAGLE-1 on Llama-3.1-8B-Instruct, H100, batch 1, MT-Bench (vllm-project/vllm#16937):
  133 -> 201.69 output tok/s with K=2 (1.51x); acceptance length 2.10 at K=2 for EAGLE-1 on
  the same model and batch (vllm-project/vllm#20780). An EAGLE head is one decoder layer
  and the LM head, which is how tokensim prices `speculative mtp`.

Run: python3 bench/spec_public.py
"""

from __future__ import annotations

from tokensim.graph import lower
from tokensim.lang.check import check
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap
from tokensim.metrics import summarize
from tokensim.perf.shared import notes_collected
from tokensim.sim.run import simulate

HEAD = 'import "std/hardware"\nimport "std/models"\n'


def acceptance(length: float, k: int) -> float:
    """The per-token acceptance whose run of k proposals yields ``length`` tokens a step."""
    lo, hi = 0.0, 0.999999
    for _ in range(60):
        a = (lo + hi) / 2
        if (1 - a ** (k + 1)) / (1 - a) < length:
            lo = a
        else:
            hi = a
    return (lo + hi) / 2


def tpot(gpu: str, gpus: int, model: str, clients: int, speculative: str, lengths: str) -> float:
    text = (
        HEAD
        + f"cluster {{ node n {{ gpus {gpu} x {gpus}; link NVLINK4 }} }}\n"
        + f"deployment {{ pool p {{ model {model}; tp {gpus}\n {speculative} }} }}\n"
        + f"workload {{ arrivals closed {clients}; lengths {lengths}; "
        + f"requests {max(8, 4 * clients)}; seed 1 }}\n"
    )
    sources = SourceMap()
    with notes_collected():
        result = simulate(lower(check(parse(text, "spec.tsim", sources), sources)))
    return summarize(result)["tpot_s"]["mean"]


CASES = [
    # name, gpu, gpus, model, clients, k, acceptance length, published speed-up, lengths
    ("DeepSeek-V3 MTP, H200 tp 8, batch 1", "H200", 8, "deepseek_v3 fp8", 1, 2, 1.9, 1.8),
    ("DeepSeek-V3 MTP, H200 tp 8, batch 32", "H200", 8, "deepseek_v3 fp8", 32, 2, 1.9, 1.5),
    ("Llama-3.1-8B EAGLE-1 K=2, H100, batch 1", "H100_SXM", 1, "llama3_1_8b", 1, 2, 2.10, 1.51),
]


def main() -> int:
    print("| case | acceptance a token | published speed-up | tokensim | error |")
    print("| --- | --- | --- | --- | --- |")
    errors = []
    for name, gpu, gpus, model, clients, k, length, published, *rest in CASES:
        lengths = rest[0] if rest else "fixed 1000 -> 500"
        a = acceptance(length, k)
        plain = tpot(gpu, gpus, model, clients, "", lengths)
        spec = f"speculative mtp {{ tokens {k}; acceptance {a:.4f} }}"
        fast = tpot(gpu, gpus, model, clients, spec, lengths)
        ratio = plain / fast
        errors.append(abs(ratio / published - 1))
        print(
            f"| {name} | {a:.3f} (length {length}, k {k}) | {published:.2f}x | {ratio:.2f}x | "
            f"{ratio / published - 1:+.0%} |"
        )
    errors.sort()
    print(f"\nmedian |error| {errors[len(errors) // 2]:.0%} over {len(errors)} speed-ups")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
