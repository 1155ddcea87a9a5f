"""KV-cache memory policies: what happens when an instance runs out of KV blocks."""

from __future__ import annotations

from tokensim.policies import Policy, Registry

PREEMPT = Registry("preempt", "preemption policy")


@PREEMPT.register("recompute")
class Recompute(Policy):
    """Free the preempted request's blocks and requeue it; its prompt and the tokens
    generated so far are prefilled again when it resumes."""


@PREEMPT.register("swap")
class Swap(Policy):
    """Copy the preempted request's blocks to host memory over the host link (timed),
    and back when it resumes; needs ``swap`` space in the pool's ``kv`` block."""
