"""The decode batch of one instance, as columns.

While a request decodes, its token counts live in numpy arrays here (one row per
sequence, in the order they entered decoding), so a step of the whole batch is a
few array operations, not a Python loop over sequences. The Request object is
brought up to date (``materialize``) when the request leaves the batch. The
columns are views of buffers that grow by doubling, so adding a row is O(1)
amortised.
"""

from __future__ import annotations

import numpy as np

from tokensim.sim.request import Request

_COLUMNS = (
    ("computed", np.int64),
    ("generated", np.int64),
    ("output", np.int64),
    ("last", np.float64),
    ("reqs", object),
)


class DecodeBatch:
    """Sequences that are decoding: ``computed`` (KV tokens), ``generated``, ``output`` and
    ``last`` (time of the last token, s), aligned with ``reqs`` (the Request objects)."""

    def __init__(self, capacity: int = 16) -> None:
        self.n = 0
        self._buf = {name: np.zeros(capacity, dtype=dtype) for name, dtype in _COLUMNS}

    def __len__(self) -> int:
        return self.n

    @property
    def computed(self) -> np.ndarray:
        return self._buf["computed"][: self.n]

    @property
    def generated(self) -> np.ndarray:
        return self._buf["generated"][: self.n]

    @property
    def output(self) -> np.ndarray:
        return self._buf["output"][: self.n]

    @property
    def last(self) -> np.ndarray:
        return self._buf["last"][: self.n]

    @property
    def reqs(self) -> np.ndarray:
        return self._buf["reqs"][: self.n]

    def add(self, req: Request) -> None:
        """A request starts decoding (its object's counts are current)."""
        buf = self._buf
        if self.n == len(buf["computed"]):
            for name, column in buf.items():
                bigger = np.zeros(2 * len(column), dtype=column.dtype)
                bigger[: self.n] = column[: self.n]
                buf[name] = bigger
        i = self.n
        buf["computed"][i] = req.computed
        buf["generated"][i] = req.generated
        buf["output"][i] = req.output
        buf["last"][i] = req.last_token_s
        buf["reqs"][i] = req
        self.n += 1

    def materialize(self, i: int) -> Request:
        """Write row ``i`` back into its Request and return it."""
        buf = self._buf
        req = buf["reqs"][i]
        req.computed = int(buf["computed"][i])
        req.generated = int(buf["generated"][i])
        req.last_token_s = float(buf["last"][i])
        return req

    def remove(self, rows: np.ndarray) -> list[Request]:
        """Take rows out of the batch (materialized), keeping the others in order."""
        out = [self.materialize(int(i)) for i in rows]
        n = self.n
        if len(rows) == 1:  # the common case: shift the tail up by one
            i = int(rows[0])
            for column in self._buf.values():
                column[i : n - 1] = column[i + 1 : n]
            m = n - 1
        else:
            keep = np.ones(n, dtype=bool)
            keep[rows] = False
            m = int(keep.sum())
            for column in self._buf.values():
                column[:m] = column[:n][keep]
        self._buf["reqs"][m:n] = None  # drop references
        self.n = m
        return out

    def index(self, req: Request) -> int:
        return next(i for i, r in enumerate(self.reqs) if r is req)

    def tokens_left(self) -> int:
        """Output tokens the batch still has to generate."""
        return int((self.output - self.generated).sum())
