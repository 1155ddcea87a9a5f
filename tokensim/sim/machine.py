"""The simulator's state machines, checked on every transition.

A machine is a table of rules ``(state, event, next state, what causes it)``; :func:`step`
takes one transition and raises :class:`TransitionError` for any the table lacks, naming
what moved, the simulated time and the states: such a transition is a bug of tokensim. The
request's machine is in :mod:`tokensim.sim.request`, the instance's in
:mod:`tokensim.sim.instance`; ``docs/states.md`` is generated from both tables.
"""

from __future__ import annotations

from enum import Enum


class TransitionError(RuntimeError):
    """A transition a machine's table does not allow: a bug of the simulator."""


def table(rules) -> dict:
    """The lookup ``(state, event) -> next state`` of ``rules``."""
    return {(a, event): b for a, event, b, _ in rules}


def step(lookup: dict, state: Enum, event: str, who: str, now: float) -> Enum:
    """The state after ``event`` from ``state`` (``lookup``: :func:`table`)."""
    nxt = lookup.get((state, event))
    if nxt is None:
        allowed = sorted(e for (s, e) in lookup if s is state)
        raise TransitionError(
            f"{who} at t = {now:.9g} s: `{event}` from {state.name} is not one of its "
            f"transitions (from {state.name}: {', '.join(allowed) or 'none'}); this is a bug "
            "in tokensim"
        )
    return nxt
