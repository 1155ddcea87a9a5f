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

The ``sharegpt`` mix is the ShareGPT sample that vLLM's ``benchmark_serving.py`` draws
(``--dataset-name sharegpt``, ShareGPT_V3_unfiltered_cleaned_split, its default seed 0),
as a quantile function: prompts are the input lengths of its first 320 requests (Llama-3
tokenizer), outputs the lengths that Llama-3-8B-Instruct generated for the 303 of them that
completed; both from LambdaLabs' published results (LambdaLabsML/vllm-benchmark,
``results/prompt_320/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json``, commit
a4f9f437, 2024-09-07; every 320-request run there has the same input lengths). The knots are
the sample's 0th, 5th, ..., 100th percentiles; a draw interpolates linearly between them.
Neither side is log-normal (outputs lean left: median 184, log-normal fit's 106), hence
quantiles. Mean prompt 205 tokens (the knots' 207), mean output 216 (215); GPUStack's
``vllm bench serve`` runs of 1000 ShareGPT prompts (Qwen3 tokenizer) total 219 and
197-201 a request. The logs of prompt and output correlate by -0.36 in the sample; they are
drawn independently, which makes long prompts with long outputs a little too common.
"""

from __future__ import annotations

import numpy as np

from tokensim.policies import PolicyUse

CHAT_PROMPT_MEDIAN = 760.0  # tokens: exp(mean ln ContextTokens) = 759.996
CHAT_PROMPT_SIGMA = 0.985  # std of ln ContextTokens = 0.98515
CHAT_OUTPUT_MEDIAN = 151.0  # tokens: exp(mean ln GeneratedTokens) = 151.259
CHAT_OUTPUT_SIGMA = 0.859  # std of ln GeneratedTokens = 0.85901

# ShareGPT as vLLM's benchmark samples it (see above): tokens at the 0th, 5th, ..., 100th
# percentile of the sample
SHAREGPT_PROMPT = (4, 8, 10, 12, 16, 21.8, 27, 34.6, 45, 58.6, 77, 122, 178, 242.4, 305.6)
SHAREGPT_PROMPT += (338.2, 391.8, 480.2, 611.8, 692.2, 933)
SHAREGPT_OUTPUT = (3, 8, 12.2, 17, 23, 26.5, 42, 61.8, 99, 146.9, 184, 216.2, 250, 286.5, 322)
SHAREGPT_OUTPUT += (352.5, 389.6, 423.2, 484.4, 572.9, 780)


def _interpolated_mean(quantiles: tuple[float, ...]) -> float:
    """The mean of a draw that interpolates linearly between evenly spaced quantiles."""
    return (sum(quantiles) - (quantiles[0] + quantiles[-1]) / 2) / (len(quantiles) - 1)


# the means of `lengths sharegpt` draws (before rounding): 207 and 215 tokens
SHAREGPT_MEANS = (_interpolated_mean(SHAREGPT_PROMPT), _interpolated_mean(SHAREGPT_OUTPUT))


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
    if name == "sharegpt":
        knots = np.linspace(0.0, 1.0, len(SHAREGPT_PROMPT))
        prompt = np.interp(rng.random(count), knots, SHAREGPT_PROMPT)
        output = np.interp(rng.random(count), knots, SHAREGPT_OUTPUT)
        return np.rint(prompt).astype(np.int64), np.rint(output).astype(np.int64)
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
