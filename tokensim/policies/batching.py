"""Local scheduling: how an instance forms each iteration's batch.

Chosen per pool with ``batching NAME { params }``; admission order is the
``order`` parameter (a policy of the ``order`` family).
"""

from __future__ import annotations

from tokensim.lang.schema import Bool, Num, Word
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


@ORDER.register("deadline")
class EarliestDeadline(Policy):
    """Admit the request whose first token is due first (its arrival plus its class's
    ``deadline``; those without one last), then arrival order."""


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


class Batching(Policy):
    """Base of the batching policies.

    ``plan(inst)`` forms the next iteration of instance ``inst``: None when there is
    nothing to do, else ``(prefill, decode, extra_s)``: ``prefill`` a list of
    ``(request, chunk tokens)``, ``decode`` the number of decoding sequences taking one
    step (the instance's whole decode batch, or 0), ``extra_s`` seconds of swapping to
    add. The instance API used: ``waiting``, ``running``, ``swapped``, ``try_admit``,
    ``prompt_need``, ``reject_impossible``, ``prepare_decode``, ``resume_swapped``.
    ``joins_mid_batch``: whether a new arrival may join before the batch ends.
    """

    joins_mid_batch = True
    chunks_prompts = False
    # limits an engine applies per scheduler: an instance of `dp` attention ranks, each
    # scheduling its own batch, holds `dp` times as much in the batch it steps together
    PER_RANK = ("max_seqs", "max_tokens", "budget")

    def for_ranks(self, dp: int, microbatches: int = 1) -> Batching:
        """This policy for one batch in flight of an instance of ``dp`` attention ranks,
        each scheduling with these limits, that keeps ``microbatches`` batches in flight:
        a pipelined instance's scheduler (vLLM V1's) shares its running sequences among
        them, and gives each batch the whole token budget."""
        for name in self.PER_RANK:
            if getattr(self, name, None) is not None:
                setattr(self, name, getattr(self, name) * dp)
        if microbatches > 1:
            self.max_seqs = -(-self.max_seqs // microbatches)
        return self

    def plan(self, inst):
        raise NotImplementedError

    def admit_prompts(self, inst, budget: int, prefill: list) -> int:
        """Admit waiting prompts in queue order while slots, token budget and memory allow;
        return the budget left."""
        inst.reject_impossible()
        while len(inst.waiting) and len(inst.running) < self.max_seqs and budget > 0:
            req = inst.waiting.peek()
            if prefill and inst.prompt_need(req) > budget and not self.chunks_prompts:
                break
            if not inst.try_admit(req):
                break
            chunk = min(req.to_compute, budget) if self.chunks_prompts else req.to_compute
            prefill.append((req, chunk))
            budget -= chunk
        return budget


def continue_prompts(inst, budget: int, prefill: list) -> int:
    """Chunks of the prompts already admitted and partly computed, in admission order,
    within ``budget`` tokens; returns the tokens taken."""
    taken = 0
    for req in inst.prefilling:
        if taken >= budget:
            break
        if req.to_compute > 0:
            chunk = min(req.to_compute, budget - taken)
            prefill.append((req, chunk))
            taken += chunk
    return taken


@BATCHING.register("static")
class Static(Batching):
    """Static batching: take up to ``max_seqs`` waiting requests, run the batch until
    every one of them has finished, then form the next (no joining mid-batch)."""

    params = (_max_seqs(32), _order())
    joins_mid_batch = False

    def plan(self, inst):
        extra = 0.0
        if inst.running or inst.swapped:
            extra = inst.resume_swapped()
            decode, swap_s = inst.prepare_decode()
            if decode:
                return [], decode, extra + swap_s
            extra += swap_s  # every member was preempted: start a new batch
        prefill: list = []
        self.admit_prompts(inst, 2**62, prefill)  # no token limit: the whole batch at once
        if prefill and len(prefill) < self.max_seqs and len(inst.waiting):
            inst.short_batch(len(prefill))  # memory, not the queue, cut the batch short
        return (prefill, 0, extra) if prefill else None


@BATCHING.register("continuous")
class Continuous(Batching):
    """Continuous batching (vLLM V0 and SGLang style): requests join and leave at every
    iteration; waiting prompts are admitted first (prefill-first) within ``max_tokens`` per
    iteration, whole or (``chunk``) with the last one split to fill the budget."""

    params = (
        _max_seqs(256),
        Param(
            "max_tokens",
            Num("max_tokens", Dim.TOKENS, integer=True, min=1),
            8192,
            "most prompt tokens prefilled in one iteration",
        ),
        Param(
            "chunk",
            Bool("chunk"),
            False,
            "split the last prompt of an iteration to fill max_tokens; a split prompt goes "
            "on first in the next one (SGLang's chunked prefill)",
        ),
        _order(),
    )

    @property
    def chunks_prompts(self) -> bool:
        return self.chunk

    def plan(self, inst):
        extra = inst.resume_swapped()
        prefill: list = []
        taken = continue_prompts(inst, self.max_tokens, prefill) if self.chunk else 0
        self.admit_prompts(inst, self.max_tokens - taken, prefill)
        if prefill:  # prefill-first: this iteration computes the new prompts only
            return prefill, 0, extra
        decode, swap_s = inst.prepare_decode()
        if not decode and len(inst.waiting):
            self.admit_prompts(inst, self.max_tokens, prefill)
        if not decode and not prefill:
            return None
        return prefill, decode, extra + swap_s


@BATCHING.register("chunked")
class Chunked(Batching):
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
        Param(
            "chunk",
            Bool("chunk"),
            True,
            "split prompts to fill the budget; off: whole prompts only, each admitted while "
            "it fits in what the decodes leave (TensorRT-LLM's in-flight batching without "
            "chunked context)",
        ),
        _order(),
    )

    @property
    def chunks_prompts(self) -> bool:
        return self.chunk

    def plan(self, inst):
        extra = inst.resume_swapped()
        decode, swap_s = inst.prepare_decode()
        prefill: list = []
        budget = self.budget - decode
        if self.chunk:
            budget -= continue_prompts(inst, budget, prefill)
            self.admit_prompts(inst, budget, prefill)
        elif self._fits_whole(inst, budget):
            self.admit_prompts(inst, budget, prefill)
        if not decode and not prefill:
            return None
        return prefill, decode, extra + swap_s

    def _fits_whole(self, inst, budget: int) -> bool:
        """Whether the next waiting prompt fits whole in ``budget``; one longer than the
        whole budget goes alone when its turn comes (it could never fit)."""
        if not len(inst.waiting):
            return False
        need = inst.prompt_need(inst.waiting.peek())
        return need <= budget or need > self.budget
