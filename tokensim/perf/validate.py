"""Validation: predicted against measured op times, for three ways of predicting.

* ``roofline``: the datasheet peaks with the default efficiency block (no
  measurement of the GPU at all), as the simulator's default cost model prices ops;
* ``calibrated``: :func:`~tokensim.perf.calibrate.fit_op` fitted with one group
  held out and tested on it. A group is a model where rows name one (leave one
  model out); in generic grids it is a shape family (one ``n`` of GEMMs, one head
  count of attention, one GPU count of all-reduce);
* ``cross-hardware``: fitted on all of one GPU's rows, predicting another GPU's
  (the target's peaks, the source's efficiencies and corrections).

Errors are absolute relative errors ``|predicted / measured - 1|``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tokensim import ir
from tokensim.perf import calibrate, ops, tables

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


def groups(t: tables.Table, op: str) -> np.ndarray:
    """The held-out group of each row: its model, else its shape family."""
    family = {"gemm": "n", "attention_prefill": "heads", "attention_decode": "heads"}.get(
        op, "gpus" if op in ("allreduce", "send_recv") else "m"
    )
    out = t["model"].copy()
    generic = out == ""
    out[generic] = [f"{GENERIC} {family}={v:g}" for v in t[family][generic]]
    return out


def _labels(g: np.ndarray) -> np.ndarray:
    return np.array([GENERIC if s.startswith(GENERIC) else s for s in g], dtype=object)


def _slices(method, gpu, name, t, g, errors) -> list[Score]:
    labels = _labels(g)
    return [Score(method, gpu, m, name, errors[labels == m]) for m in sorted(set(labels))]


def evaluate(
    t: tables.Table, progress: Callable[[str], None] | None = None, cross: bool = True
) -> list[Score]:
    """Scores of every method on every (GPU, model, fit class) of ``t``."""
    scores: list[Score] = []
    fitted: dict[tuple[str, str], calibrate.OpFit] = {}
    for gpu in t.values("gpu"):
        pk = calibrate.peaks(gpu)
        for name, op, rows in calibrate.fit_classes(t.select(gpu=gpu)):
            if progress:
                progress(f"{gpu} {name}: {len(rows)} rows")
            measured = rows["seconds"]
            datasheet = ops.Params.datasheet(ir.Efficiency(), op)
            err = np.abs(ops.predict(rows, op, pk, datasheet) / measured - 1)
            g = groups(rows, op)
            scores += _slices("roofline", gpu, name, rows, g, err)
            fitted[gpu, name] = calibrate.fit_op(rows, op, pk)
            if len(set(g)) < 2:
                continue  # nothing to hold out
            lomo = np.full(len(rows), np.nan)
            for held in sorted(set(g)):
                test = g == held
                fit = calibrate.fit_op(rows.where(~test), op, pk)
                lomo[test] = np.abs(fit.predict(rows.where(test), op, pk) / measured[test] - 1)
            scores += _slices("calibrated", gpu, name, rows, g, lomo)
    if cross:
        for src, dst in CROSS:
            for name, op, rows in calibrate.fit_classes(t.select(gpu=dst)):
                fit = fitted.get((src, name))
                if fit is None:
                    continue
                err = np.abs(fit.predict(rows, op, calibrate.peaks(dst)) / rows["seconds"] - 1)
                g = groups(rows, op)
                scores += _slices(f"cross {src}->{dst}", dst, name, rows, g, err)
    return scores


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
