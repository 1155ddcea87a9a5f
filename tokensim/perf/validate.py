"""Validation: predicted against measured op times, for three ways of predicting.

* ``roofline``: the datasheet peaks with the default efficiency block (no
  measurement of the GPU at all), as the simulator's default cost model prices ops;
* ``calibrated``: :func:`~tokensim.perf.calibrate.fit_op` fitted with one group
  held out and tested on it. A group is a model where rows name one (leave one
  model out). Generic grids name no model; there a group is one value of the key
  a model sets (GEMMs: a dimension ``n``, held out of ``k`` too, as a new hidden
  size would be; attention: a head count; collectives: a message size), and only
  values strictly inside the measured range are held out, since a new model's
  dimensions lie between measured ones, not beyond them;
* ``cross-hardware``: fitted on all of one GPU's rows, predicting another GPU's
  (the target's peaks, the source's efficiencies and corrections).

Errors are absolute relative errors ``|predicted / measured - 1|``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tokensim import ir
from tokensim.perf import calibrate, ops, tables
from tokensim.perf.shared import QUANT_DTYPES

CROSS = (("A100_80G", "H100_SXM"), ("H100_SXM", "H200"), ("A100_80G", "H200"))
GENERIC = "(grid)"


@dataclass(frozen=True)
class Score:
    """Errors of one method on one slice of rows."""

    method: str
    gpu: str
    model: str
    op: str
    errors: np.ndarray

    @property
    def median(self) -> float:
        return float(np.median(self.errors))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.errors, 90))


FAMILY = {
    "gemm": "n",
    "attention_prefill": "heads",
    "attention_decode": "heads",
    "elementwise": "bytes",
    "allreduce": "bytes",
    "send_recv": "bytes",
}


def groups(t: tables.Table, op: str) -> np.ndarray:
    """The held-out group of each row: its model, else its shape family (``""``
    for a family at either end of the grid's range: always trained on, never tested)."""
    family = FAMILY[op]
    out = t["model"].copy()
    generic = out == ""
    if generic.any():
        values = t[family][generic]
        lo, hi = values.min(), values.max()
        out[generic] = [
            f"{GENERIC} {family}={v:g}" if lo < v < hi else "" for v in values
        ]  # fmt: skip
    return out


def holdouts(t: tables.Table, op: str):
    """``(test, train, scored)`` row masks of every hold-out of ``t`` (one GPU, one fit
    class): each group of :func:`groups`, scored; and, where a grid has interior
    families, each family at its ends, predicted (for whole iterations) but not
    scored. A GEMM family ``n=v`` is also held out of the rows with ``k=v`` (a new
    hidden size is both)."""
    g = groups(t, op)
    family = t[FAMILY[op]]
    held = sorted(set(g) - {""})
    tests = [(g == name, name.startswith(GENERIC), True) for name in held]
    if len(held) > 1:
        ends = g == ""
        tests += [(ends & (family == v), True, False) for v in sorted(set(family[ends]))]
    for test, generic, scored in tests:
        train = ~test
        if op == "gemm" and generic:
            train &= t["k"] != family[test][0]
        yield test, train, scored


@dataclass
class Predictions:
    """Every method's seconds for every row of ``table`` (NaN: the method has none).

    ``classes`` is each row's fit class; ``scored`` marks the rows whose calibrated
    prediction counts in the scores (held out as a model or as an interior family;
    the ends of a grid are predicted too, by a fit without them, but only for
    whole iterations).
    """

    table: tables.Table
    methods: dict[str, np.ndarray]
    classes: np.ndarray
    scored: np.ndarray


def predict(
    t: tables.Table, progress: Callable[[str], None] | None = None, cross: bool = True
) -> Predictions:
    """Predictions of every method for every row of ``t``."""
    n = len(t)
    t = tables.Table({**t.columns, "row": np.arange(n)}, list(t.comments))
    methods = {"roofline": np.full(n, np.nan), "calibrated": np.full(n, np.nan)}
    classes = np.full(n, "", dtype=object)
    scored = np.zeros(n, bool)
    fitted: dict[tuple[str, str], calibrate.OpFit] = {}
    for gpu in t.values("gpu"):
        pk = calibrate.peaks(gpu)
        for name, op, rows in calibrate.fit_classes(t.select(gpu=gpu)):
            if progress:
                progress(f"{gpu} {name}: {len(rows)} rows")
            idx = rows["row"]
            classes[idx] = name
            quantized = name.split(":", 1)[-1] in QUANT_DTYPES
            datasheet = ops.Params.datasheet(ir.Efficiency(), op, quantized)
            methods["roofline"][idx] = ops.predict(rows, op, pk, datasheet)
            fitted[gpu, name] = calibrate.fit_op(rows, op, pk)
            for test, train, counts in holdouts(rows, op):
                if not train.any():
                    continue  # one group only: nothing to fit on
                fit = calibrate.fit_op(rows.where(train), op, pk)
                methods["calibrated"][idx[test]] = fit.predict(rows.where(test), op, pk)
                scored[idx[test]] = counts
    if cross:
        for src, dst in CROSS:
            for name, op, rows in calibrate.fit_classes(t.select(gpu=dst)):
                fit = fitted.get((src, name))
                if fit is None:
                    continue
                got = methods.setdefault(f"cross {src}->{dst}", np.full(n, np.nan))
                got[rows["row"]] = fit.predict(rows, op, calibrate.peaks(dst))
    return Predictions(t, methods, classes, scored)


def unheld(p: Predictions) -> list[tuple[str, str, str, int]]:
    """``(GPU, fit class, model, rows)`` of the classes one model alone runs (a kernel
    of its own, such as torch's LayerNorm in Vidur's phi-2 block): nothing is left to
    fit on when that model is held out, so they have no held-out prediction."""
    t = p.table
    lone = np.isnan(p.methods["calibrated"]) & (t["model"] != "")
    counts = Counter(zip(t["gpu"][lone], p.classes[lone], t["model"][lone], strict=True))
    return [(*key, n) for key, n in sorted(counts.items())]


def unheld_markdown(p: Predictions) -> str:
    """:func:`unheld` as a Markdown list under a line saying why ("" if there are none)."""
    lone = unheld(p)
    if not lone:
        return ""
    lines = [f"- {gpu} {model} {name}: {n} rows" for gpu, name, model, n in lone]
    head = "Not held out (a kernel only one model runs; no other model to fit on):"
    return head + "\n\n" + "\n".join(lines) + "\n"


def join(parts: list[Predictions]) -> Predictions:
    """The predictions of several tables as one (a method missing from a part: NaN there)."""
    names = sorted({m for p in parts for m in p.methods}, key=lambda m: (m != "roofline", m))
    cols = {c: np.concatenate([p.table[c] for p in parts]) for c in tables.COLUMNS}
    methods = {
        m: np.concatenate([p.methods.get(m, np.full(len(p.table), np.nan)) for p in parts])
        for m in names
    }
    return Predictions(
        tables.Table(cols, [c for p in parts for c in p.table.comments]),
        methods,
        np.concatenate([p.classes for p in parts]),
        np.concatenate([p.scored for p in parts]),
    )


def scores(p: Predictions) -> list[Score]:
    """Errors of every method on every (GPU, model, fit class) of ``p``'s rows."""
    t = p.table
    measured = t["seconds"]
    labels = np.where(t["model"] == "", GENERIC, t["model"])
    out: list[Score] = []
    for method, predicted in p.methods.items():
        err = np.abs(predicted / measured - 1)
        keep = ~np.isnan(err)
        if method == "calibrated":
            keep &= p.scored
        keys = sorted({(g, m, c) for g, m, c in zip(t["gpu"][keep], labels[keep],
                                                     p.classes[keep], strict=True)})  # fmt: skip
        for gpu, model, name in keys:
            mask = keep & (t["gpu"] == gpu) & (labels == model) & (p.classes == name)
            out.append(Score(method, gpu, model, name, err[mask]))
    return out


def evaluate(
    t: tables.Table, progress: Callable[[str], None] | None = None, cross: bool = True
) -> list[Score]:
    """Scores of every method on every (GPU, model, fit class) of ``t``."""
    return scores(predict(t, progress, cross))


def overall(scores: list[Score]) -> list[Score]:
    """Scores pooled per method and GPU (every model and class together)."""
    out = []
    for method, gpu in sorted({(s.method, s.gpu) for s in scores}):
        errs = np.concatenate([s.errors for s in scores if s.method == method and s.gpu == gpu])
        out.append(Score(method, gpu, "all", "all", errs))
    return out


def markdown(scores: list[Score]) -> str:
    """The scores as a Markdown table: a row per GPU, model and class; a column per method."""
    methods = sorted({s.method for s in scores}, key=lambda m: (m != "roofline", m))
    by = {(s.gpu, s.model, s.op, s.method): s for s in scores}
    keys = sorted({(s.gpu, s.model, s.op) for s in scores})
    head = "| GPU | model | op | rows | " + " | ".join(f"{m} median / p90" for m in methods) + " |"
    lines = [head, "|" + "---|" * (4 + len(methods))]
    for gpu, model, op in keys:
        cells = []
        n = 0
        for m in methods:
            s = by.get((gpu, model, op, m))
            if s is None:
                cells.append("—")
            else:
                n = max(n, len(s.errors))
                cells.append(f"{100 * s.median:.1f}% / {100 * s.p90:.1f}%")
        lines.append(f"| {gpu} | {model} | {op} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
