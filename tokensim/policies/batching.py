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


# -- behaviour: how each policy forms an iteration's batch ------------------------------------
# ``plan(inst)`` returns None (nothing to do) or (prefill, decode, extra_s): prefill is a list
# of (request, chunk tokens), decode the number of decoding sequences taking one step (the
# instance's whole decode batch, or 0), extra_s seconds of swapping to add. The instance API
# used: waiting, running, swapped, try_admit, prompt_need, reject_impossible, prepare_decode,
# resume_swapped.


def _admit_prompts(inst, max_seqs: int, budget: int, prefill: list) -> int:
    """Admit waiting prompts in queue order while slots, token budget and memory allow."""
    inst.reject_impossible()
    while len(inst.waiting) and len(inst.running) < max_seqs and budget > 0:
        req = inst.waiting.peek()
        need = inst.prompt_need(req)
        if prefill and need > budget and not _chunking(inst):
            break
        if not inst.try_admit(req):
            break
        chunk = min(req.to_compute, budget) if _chunking(inst) else req.to_compute
        prefill.append((req, chunk))
        budget -= chunk
    return budget


def _chunking(inst) -> bool:
    return isinstance(inst.policy, Chunked)


def _plan_continuous(self, inst):
    extra = inst.resume_swapped()
    prefill: list = []
    _admit_prompts(inst, self.max_seqs, self.max_tokens, prefill)
    if prefill:  # prefill-first: this iteration computes the new prompts only
        return prefill, 0, extra
    decode, swap_s = inst.prepare_decode()
    if not decode and len(inst.waiting):
        _admit_prompts(inst, self.max_seqs, self.max_tokens, prefill)
    if not decode and not prefill:
        return None
    return prefill, decode, extra + swap_s


def _plan_chunked(self, inst):
    extra = inst.resume_swapped()
    decode, swap_s = inst.prepare_decode()
    budget = self.budget - decode
    prefill: list = []
    for req in inst.running:
        if budget <= 0:
            break
        if req.state.name == "PREFILL" and req.to_compute > 0:
            chunk = min(req.to_compute, budget)
            prefill.append((req, chunk))
            budget -= chunk
    _admit_prompts(inst, self.max_seqs, budget, prefill)
    if not decode and not prefill:
        return None
    return prefill, decode, extra + swap_s


def _plan_static(self, inst):
    extra = 0.0
    if inst.running or inst.swapped:
        extra = inst.resume_swapped()
        decode, swap_s = inst.prepare_decode()
        if decode:
            return [], decode, extra + swap_s
        extra += swap_s  # every member was preempted: start a new batch
    prefill: list = []
    inst.reject_impossible()
    while len(inst.waiting) and len(inst.running) < self.max_seqs:
        req = inst.waiting.peek()
        if not inst.try_admit(req):
            break
        prefill.append((req, req.to_compute))
    return (prefill, 0, extra) if prefill else None


Continuous.plan, Continuous.joins_mid_batch = _plan_continuous, True
Chunked.plan, Chunked.joins_mid_batch = _plan_chunked, True
Static.plan, Static.joins_mid_batch = _plan_static, False
