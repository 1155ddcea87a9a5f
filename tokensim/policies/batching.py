"""Local scheduling: how an instance forms each iteration's batch.

Chosen per pool with ``batching NAME { params }``; admission order is the
``order`` parameter (a policy of the ``order`` family).
"""

from __future__ import annotations

from tokensim.lang.schema import Num, Word
from tokensim.lang.units import Dim
from tokensim.policies import Param, Policy, Registry

BATCHING = Registry("batching", "batching policy")
ORDER = Registry("order", "admission order")


@ORDER.register("fcfs")
class FirstComeFirstServed(Policy):
    """Admit waiting requests in arrival order."""


@ORDER.register("spf")
class ShortestPromptFirst(Policy):
    """Admit the waiting request with the fewest prompt tokens first."""


@ORDER.register("priority")
class PriorityClasses(Policy):
    """Admit by the request's priority class (lower first), then arrival order."""


def _order() -> Param:
    return Param(
        "order",
        Word("order", tuple(ORDER.names()), "admission order"),
        "fcfs",
        "which waiting request is admitted first",
    )


def _max_seqs(default: int) -> Param:
    return Param(
        "max_seqs", Num("max_seqs", integer=True, min=1), default, "most sequences in one batch"
    )


@BATCHING.register("static")
class Static(Policy):
    """Static batching: take up to ``max_seqs`` waiting requests, run the batch until
    every one of them has finished, then form the next (no joining mid-batch)."""

    params = (_max_seqs(32), _order())


@BATCHING.register("continuous")
class Continuous(Policy):
    """Continuous batching (vLLM style): requests join and leave at every iteration;
    waiting prompts are admitted first (prefill-first) within ``max_tokens`` per iteration."""

    params = (
        _max_seqs(256),
        Param(
            "max_tokens",
            Num("max_tokens", Dim.TOKENS, integer=True, min=1),
            8192,
            "most prompt tokens prefilled in one iteration",
        ),
        _order(),
    )


@BATCHING.register("chunked")
class Chunked(Policy):
    """Chunked prefill (Sarathi / vLLM v1 style): each iteration has a token ``budget``
    filled with decode tokens first, then chunks of waiting prompts."""

    params = (
        _max_seqs(256),
        Param(
            "budget",
            Num("budget", Dim.TOKENS, integer=True, min=1),
            2048,
            "tokens (decode + prefill chunks) per iteration",
        ),
        _order(),
    )
