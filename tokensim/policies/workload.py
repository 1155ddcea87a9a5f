"""Workload generators: arrival processes and prompt/output length distributions."""

from __future__ import annotations

from tokensim.lang.schema import Bool, Lit, Num
from tokensim.lang.units import Dim
from tokensim.policies import Param, Policy, Registry

ARRIVALS = Registry("arrivals", "arrival process")
LENGTHS = Registry("lengths", "length distribution")


def _rate() -> Param:
    return Param("rate", Num("rate", Dim.RATE, above=0), None, "mean requests per second")


def _exact() -> Param:
    return Param(
        "exact",
        Bool("exact"),
        False,
        "scale the drawn gaps so that they average exactly 1/rate (the requests span "
        "(requests - 1)/rate; needs `requests`): the load is the rate, only the pattern is "
        "drawn",
    )


@ARRIVALS.register("poisson")
class Poisson(Policy):
    """Poisson arrivals: exponential gaps with mean 1/rate."""

    params = (_rate(), _exact())
    shorthand = (Num("rate", Dim.RATE, above=0),)


@ARRIVALS.register("gamma")
class Gamma(Policy):
    """Gamma-distributed gaps with mean 1/rate and coefficient of variation ``cv``
    (cv 1 is Poisson; above 1 is burstier)."""

    params = (
        _rate(),
        # within 1e-3 and 1e3: gamma shapes of 1e-6 to 1e6, which the generator draws
        Param(
            "cv",
            Num("cv", min=1e-3, max=1e3),
            1.0,
            "coefficient of variation of the gaps (0.001 to 1000)",
        ),
        _exact(),
    )
    shorthand = (Num("rate", Dim.RATE, above=0),)


@ARRIVALS.register("constant")
class Constant(Policy):
    """Evenly spaced arrivals, 1/rate apart."""

    params = (_rate(),)
    shorthand = (Num("rate", Dim.RATE, above=0),)


@ARRIVALS.register("step")
class Step(Policy):
    """Poisson arrivals whose rate steps up to ``peak`` from time ``at`` for ``lasting``,
    then back (a load step: what an autoscaler must follow)."""

    params = (
        _rate(),
        Param("peak", Num("peak", Dim.RATE, above=0), None, "the rate during the step"),
        Param("at", Num("at", Dim.TIME, min=0), None, "when the step starts"),
        Param("lasting", Num("lasting", Dim.TIME, above=0), None, "how long it lasts"),
    )
    shorthand = (Num("rate", Dim.RATE, above=0),)


@ARRIVALS.register("closed")
class Closed(Policy):
    """A closed loop of ``clients`` clients (a benchmark's maximum concurrency): each
    sends its first request at time 0 and its next one as soon as the last token of
    its previous one has arrived (or it was rejected), until ``requests`` are sent."""

    params = (
        Param(
            "clients",
            Num("clients", integer=True, min=1),
            None,
            "requests in flight at once (clients)",
        ),
    )
    shorthand = (Num("clients", integer=True, min=1),)


@ARRIVALS.register("burst")
class Burst(Policy):
    """Every request arrives at once, at time 0 (offline batch inference)."""


def _tokens(name: str, doc: str, default=None, minimum: int = 1) -> Param:
    return Param(name, Num(name, Dim.TOKENS, integer=True, min=minimum), default, doc)


@LENGTHS.register("fixed")
class Fixed(Policy):
    """Every request has the same prompt and output length: ``fixed 512 -> 128``."""

    params = (_tokens("prompt", "prompt tokens"), _tokens("output", "output tokens"))
    shorthand = (
        Num("prompt", Dim.TOKENS, integer=True, min=1),
        Lit("->"),
        Num("output", Dim.TOKENS, integer=True, min=1),
    )


@LENGTHS.register("uniform")
class Uniform(Policy):
    """Prompt and output lengths uniform over inclusive ranges: ``uniform 100..2000 -> 10..500``."""

    params = (
        _tokens("prompt_min", "shortest prompt"),
        _tokens("prompt_max", "longest prompt"),
        _tokens("output_min", "shortest output"),
        _tokens("output_max", "longest output"),
    )
    shorthand = (
        Num("prompt_min", Dim.TOKENS, integer=True, min=1),
        Lit(".."),
        Num("prompt_max", Dim.TOKENS, integer=True, min=1),
        Lit("->"),
        Num("output_min", Dim.TOKENS, integer=True, min=1),
        Lit(".."),
        Num("output_max", Dim.TOKENS, integer=True, min=1),
    )


@LENGTHS.register("random")
class Random(Policy):
    """vLLM's ``random`` dataset: ``random 1024 -> 128 { range_ratio 0.5 }`` draws each
    prompt uniformly from floor(1024 x 0.5) to ceil(1024 x 1.5) tokens and each output from
    floor(128 x 0.5) (at least 1) to ceil(128 x 1.5), inclusive; ``range_ratio`` 0 (vLLM's
    default) is every request at the given lengths. As vLLM's ``RandomDataset``
    (vllm/benchmarks/datasets.py, ``--random-input-len``, ``--random-output-len``,
    ``--random-range-ratio``), less the tokenizer's special tokens, which vLLM takes off
    the prompt."""

    params = (
        _tokens("prompt", "prompt tokens (vLLM's --random-input-len)"),
        _tokens("output", "output tokens (vLLM's --random-output-len)"),
        Param(
            "range_ratio",
            Num("range_ratio", Dim.COUNT, min=0, below=1),
            0.0,
            "each length is uniform within this share of it either side (vLLM's "
            "--random-range-ratio, below 1)",
        ),
    )
    shorthand = (
        Num("prompt", Dim.TOKENS, integer=True, min=1),
        Lit("->"),
        Num("output", Dim.TOKENS, integer=True, min=1),
    )


def _spread(kind: str, center: str, spread: str, spread_dim: Dim) -> tuple[Param, ...]:
    out = []
    for side in ("prompt", "output"):
        out.append(_tokens(f"{side}_{center}", f"{center} {side} length"))
        out.append(
            Param(
                f"{side}_{spread}",
                Num(f"{side}_{spread}", spread_dim, min=0),
                None,
                f"{spread} of the {side} length ({kind})",
            )
        )
    out.append(_tokens("max_prompt", "longest prompt (longer draws are clipped)", 32768))
    out.append(_tokens("max_output", "longest output (longer draws are clipped)", 4096))
    return tuple(out)


@LENGTHS.register("normal")
class Normal(Policy):
    """Normally distributed lengths (rounded, at least 1, clipped to the max)."""

    params = _spread("normal", "mean", "std", Dim.TOKENS)


@LENGTHS.register("lognormal")
class LogNormal(Policy):
    """Log-normal lengths given by their median and the sigma of the log."""

    params = _spread("log-normal", "median", "sigma", Dim.COUNT)


@LENGTHS.register("chat")
class Chat(Policy):
    """A built-in chat-like length mix: log-normal prompts (median 760 tokens, sigma
    of the log 0.985) and outputs (median 151 tokens, sigma 0.859), drawn
    independently, rounded and clipped to their maxima. The figures are the
    maximum-likelihood log-normal fit (median = exp(mean of ln tokens), sigma =
    std of ln tokens) to the Azure LLM inference trace of 2023-11-16,
    conversation service (19,366 requests; Azure/AzurePublicDataset,
    CC-BY-4.0). The trace itself has prompt median 1020 and mean 1155, output
    median 129 and mean 211 (at most 1000); the fit's means are 1235 and 219."""

    params = (
        _tokens("max_prompt", "longest prompt", 32768),
        _tokens("max_output", "longest output", 4096),
    )


@LENGTHS.register("sharegpt")
class ShareGpt(Policy):
    """ShareGPT as vLLM's `benchmark_serving.py --dataset-name sharegpt` samples it:
    prompts and outputs drawn independently from the quantiles (every 5th percentile,
    interpolated) of the first 320 requests it sends with its default seed, as LambdaLabs
    published them (Llama-3 tokenizer; outputs as Llama-3-8B-Instruct generated them).
    Prompts 4 to 933 tokens, median 77, mean 207; outputs 3 to 780, median 184, mean 215."""

    params = ()


TRACE_FORMATS = ("auto", "tokensim", "azure", "mooncake", "vidur")
