"""Length distributions: prompt and output tokens per request.

The ``chat`` mix is a log-normal fit to the Azure LLM inference trace of
2023-11-16 (conversation service, ``AzureLLMInferenceTrace_conv.csv``, 19,366
requests, CC-BY-4.0, Azure/AzurePublicDataset): the maximum-likelihood fit,
median = exp(mean of ln tokens) and sigma = standard deviation of ln tokens,
prompt (ContextTokens) and output (GeneratedTokens) each on its own (their
logs correlate by only 0.09, so they are drawn independently). The trace's
own figures for comparison: prompt median 1020, mean 1155, max 14050; output
median 129, mean 211, max 1000. The fit's means (1235 and 219 tokens) are
within 7% of the trace's.
"""

from __future__ import annotations

import numpy as np

from tokensim.policies import PolicyUse

CHAT_PROMPT_MEDIAN = 760.0  # tokens: exp(mean ln ContextTokens) = 759.996
CHAT_PROMPT_SIGMA = 0.985  # std of ln ContextTokens = 0.98515
CHAT_OUTPUT_MEDIAN = 151.0  # tokens: exp(mean ln GeneratedTokens) = 151.259
CHAT_OUTPUT_SIGMA = 0.859  # std of ln GeneratedTokens = 0.85901


def draw_lengths(
    policy: PolicyUse, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output lengths (int64 tokens, each at least 1) of ``count`` requests.

    ``policy`` is a ``lengths`` use: ``fixed`` (prompt, output), ``uniform``
    (inclusive ranges), ``normal`` (mean, std), ``lognormal`` (median, sigma of
    the log) or ``chat``; the last three round to whole tokens and clip to
    [1, max_prompt] and [1, max_output]. Prompts are drawn before outputs.
    """
    get = policy.get
    name = policy.name
    if name == "fixed":
        return _full(count, get("prompt")), _full(count, get("output"))
    if name == "random":  # vLLM's RandomDataset: floor/ceil bounds, output at least 1
        import math

        r = get("range_ratio")
        prompt, output = get("prompt"), get("output")
        lo_p, hi_p = max(1, math.floor(prompt * (1 - r))), math.ceil(prompt * (1 + r))
        lo_o, hi_o = max(1, math.floor(output * (1 - r))), math.ceil(output * (1 + r))
        return (
            rng.integers(lo_p, hi_p, size=count, endpoint=True),
            rng.integers(lo_o, hi_o, size=count, endpoint=True),
        )
    if name == "uniform":
        return tuple(
            rng.integers(get(f"{side}_min"), get(f"{side}_max"), size=count, endpoint=True)
            for side in ("prompt", "output")
        )
    if name == "normal":
        draws = [
            rng.normal(get(f"{side}_mean"), get(f"{side}_std"), count)
            for side in ("prompt", "output")
        ]
    elif name == "lognormal":
        draws = [
            rng.lognormal(np.log(get(f"{side}_median")), get(f"{side}_sigma"), count)
            for side in ("prompt", "output")
        ]
    elif name == "chat":
        draws = [
            rng.lognormal(np.log(CHAT_PROMPT_MEDIAN), CHAT_PROMPT_SIGMA, count),
            rng.lognormal(np.log(CHAT_OUTPUT_MEDIAN), CHAT_OUTPUT_SIGMA, count),
        ]
    else:
        raise ValueError(f"unknown length distribution {name!r}")
    return _tokens(draws[0], get("max_prompt")), _tokens(draws[1], get("max_output"))


def _full(count: int, value: int) -> np.ndarray:
    return np.full(count, value, dtype=np.int64)


def _tokens(draws: np.ndarray, maximum: int) -> np.ndarray:
    """Round to whole tokens and clip to [1, maximum]."""
    return np.clip(np.rint(draws), 1, maximum).astype(np.int64)
