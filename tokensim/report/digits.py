"""Numbers as the result files hold them: at most 9 significant digits.

:func:`as_written` gives, for a whole array at once, exactly the number a cell of the CSV
reads back as: ``float(f"{x:.9g}")``, with the cells the files leave empty (NaN, and -1,
a time that never came) as NaN. The page drawn at the end of a run uses it, so that it is
the page ``tokensim report`` draws from the files, byte for byte, without reading them.

A 9-digit rounding of ``x`` is ``n / 10**k`` with ``n = rint(|x| 10**k)`` and ``k = 8 -
floor(log10 |x|)``. For ``|k| <= 22`` the power of ten is exact, so ``n / 10**k`` (or ``n *
10**-k``) is correctly rounded: the double nearest the decimal, as ``float()`` of its text.
What can differ from the text is ``n`` itself, when ``|x| 10**k`` lands within a rounding
error of a half (a tie the product cannot resolve) or the logarithm misjudges the exponent
next to a power of ten; those few values are formatted and read back one by one.
"""

from __future__ import annotations

import numpy as np

_POW = 10.0 ** np.arange(23)  # exact doubles


_BLOCK = 1 << 16  # values rounded together: the temporaries stay small


def rounded9(x: np.ndarray) -> np.ndarray:
    """``float(f"{v:.9g}")`` for every ``v`` of ``x`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()  # 0, -0, NaN and infinities read back as they are
    for lo in range(0, len(x), _BLOCK):
        _round_block(x[lo : lo + _BLOCK], out[lo : lo + _BLOCK])
    return out


def _round_block(x: np.ndarray, out: np.ndarray) -> None:
    """:func:`rounded9` of ``x`` into ``out`` (a copy of ``x``)."""
    idx = np.flatnonzero(np.isfinite(x) & (x != 0))
    if not len(idx):
        return
    v = x[idx]
    a = np.abs(v)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        k = 8 - np.floor(np.log10(a)).astype(np.int64)
        usable = np.abs(k) <= 22
        kk = np.clip(k, -22, 22)
        scale = _POW[np.abs(kk)]
        up = kk >= 0
        m = np.where(up, a * scale, a / scale)
        n = np.rint(m)
        frac = np.abs(m - np.floor(m) - 0.5)
        # the product carries a rounding error under 1e-7 for m < 1e9; leave a margin
        sure = usable & (m >= 1e8) & (m < 1e9 - 1) & (frac > 1e-6)
        d = np.where(up, n / scale, n * scale)
    out[idx] = np.copysign(d, v)
    for i in idx[~sure]:  # ties and edges: as the text says
        out[i] = float(f"{x[i]:.9g}")


def as_written(x: np.ndarray) -> np.ndarray:
    """A float column as the CSV reads back: :func:`rounded9`, empty cells NaN."""
    x = np.asarray(x, dtype=np.float64)
    out = rounded9(x)
    out[(x == -1.0) | np.isnan(x)] = np.nan
    return out
