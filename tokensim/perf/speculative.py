"""Speculative decoding as a cost: a decode step verifies proposed tokens and yields several.

A pool with ``speculative`` runs each decode step as: the proposer drafts ``k`` tokens per
sequence (``mtp``: ``k`` passes of a one-layer head and the LM head; ``draft``: ``k`` decode
steps of the draft model), then the model verifies them in one pass over ``k + 1`` tokens a
sequence (``k`` new queries each, over the sequence's context, and ``k + 1`` logits). A step
yields ``E = (1 - a^(k+1)) / (1 - a)`` tokens a sequence on average (``a`` the acceptance).

The simulator advances decode one token a step for the whole batch, so a pool that speculates
is priced per token: a pure decode step costs the verification and the proposals over ``E``
(a fluid model: the mean time per token, throughput and TPOT are right; the tokens arrive
evenly rather than in bursts of accepted runs, so ITL percentiles are not). Steps that also
prefill are priced without speculation.
"""

from __future__ import annotations

from tokensim.perf.shared import Batch


class Speculating:
    """A cost model whose pure decode steps are speculative (see the module)."""

    def __init__(self, cost, draft, speculative, layers: int):
        self.cost, self.draft, self.spec, self.layers = cost, draft, speculative, layers
        self.per_step = speculative.expected_tokens  # tokens a verification step yields

    def __getattr__(self, name):  # everything else is the model's cost model's
        cost = self.__dict__.get("cost")  # (absent while unpickling: no recursion)
        if cost is None:
            raise AttributeError(name)
        return getattr(cost, name)

    def verification(self, batch: Batch) -> Batch:
        """The pass that checks ``k`` proposals a sequence of a decode ``batch``."""
        n, k = batch.decode_seqs, self.spec.tokens
        return Batch(
            prefill_tokens=n * k,
            prefill_pairs=k * batch.decode_context + n * k * (k + 1) / 2,
            decode_seqs=n,
            decode_context=batch.decode_context,
            samples=n * (k + 1),
        )

    def proposals_s(self, batch: Batch) -> float:
        """Seconds to draft ``k`` tokens for each sequence of a decode ``batch``."""
        k = self.spec.tokens
        if self.draft is not None:
            return k * self.draft.iteration_s(batch)
        step = self.cost.breakdown(batch)
        body = sum(step.values()) - step["lm_head"] - step["overhead"]
        return k * (body / self.layers + step["lm_head"])

    def breakdown(self, batch: Batch) -> dict[str, float]:
        if batch.prefill_tokens or not batch.decode_seqs:
            return self.cost.breakdown(batch)
        out = dict(self.cost.breakdown(self.verification(batch)))
        out["speculation"] = self.proposals_s(batch)
        return {op: seconds / self.per_step for op, seconds in out.items()}

    def iteration_s(self, batch: Batch) -> float:
        return sum(self.breakdown(batch).values())
