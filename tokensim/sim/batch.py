"""The decode batch of one instance, as columns.

While a request decodes, its token counts live in numpy arrays here (one row per
sequence, in the order they entered decoding), so a step of the whole batch is a
few array operations, not a Python loop over sequences. The Request object is
brought up to date (``materialize``) when the request leaves the batch.
"""

from __future__ import annotations

import numpy as np

from tokensim.sim.request import Request


class DecodeBatch:
    """Sequences that are decoding: ``computed`` (KV tokens), ``generated``, ``output`` and
    ``last`` (time of the last token, s), aligned with ``reqs``."""

    def __init__(self) -> None:
        self.reqs = np.empty(0, dtype=object)  # Request objects
        self.computed = np.zeros(0, dtype=np.int64)
        self.generated = np.zeros(0, dtype=np.int64)
        self.output = np.zeros(0, dtype=np.int64)
        self.last = np.zeros(0, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.reqs)

    def add(self, req: Request) -> None:
        """A request starts decoding (its object's counts are current)."""
        self.reqs = np.append(self.reqs, np.array([req], dtype=object))
        self.computed = np.append(self.computed, req.computed)
        self.generated = np.append(self.generated, req.generated)
        self.output = np.append(self.output, req.output)
        self.last = np.append(self.last, req.last_token_s)

    def materialize(self, i: int) -> Request:
        """Write row ``i`` back into its Request and return it."""
        req = self.reqs[i]
        req.computed = int(self.computed[i])
        req.generated = int(self.generated[i])
        req.last_token_s = float(self.last[i])
        return req

    def remove(self, rows: np.ndarray) -> list[Request]:
        """Take rows out of the batch (materialized), keeping the others in order."""
        out = [self.materialize(int(i)) for i in rows]
        keep = np.ones(len(self.reqs), dtype=bool)
        keep[rows] = False
        self.reqs = self.reqs[keep]
        self.computed, self.generated = self.computed[keep], self.generated[keep]
        self.output, self.last = self.output[keep], self.last[keep]
        return out

    def index(self, req: Request) -> int:
        return next(i for i, r in enumerate(self.reqs) if r is req)

    def tokens_left(self) -> int:
        """Output tokens the batch still has to generate."""
        return int((self.output - self.generated).sum())
