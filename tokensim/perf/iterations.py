"""Whole iterations: predicted against measured, summed over the ops of one layer.

An iteration of one layer of a model on one tensor-parallel GPU is composed from
measured rows of several sources on one GPU:

* the model's GEMMs and elementwise ops at ``m`` tokens (Vidur's per-layer rows,
  which name the model and tp);
* its attention (NVIDIA's grid at the model's heads and KV heads per GPU, 16-bit KV cache):
  a *prefill* of ``N`` tokens (one prompt, ``m = N``) or a *decode* step of batch
  ``B`` at context ``C`` (``m = B``);
* with tp > 1, two all-reduces of ``m x hidden`` 16-bit values over tp GPUs (the
  faster of the measured kernels, as an engine picks; predicted likewise).

The measured time of the iteration is the sum of its rows' times; each method's
prediction is the sum of its per-row predictions (:class:`validate.Predictions`,
where a calibrated row is predicted by a fit that held out its model or family).
Iterations are formed only where every op was measured at exactly that shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokensim.perf import calibrate, tables, validate

HEAD_DIM = 128  # NVIDIA's attention grid measures head_dim 128 only
DECODE_CONTEXTS = (512, 2048, 8192)


@dataclass(frozen=True)
class Iteration:
    """One layer's iteration: its label and, per op, the rows that may run it."""

    gpu: str
    model: str
    tp: int
    kind: str  # prefill | decode
    label: str
    ops: tuple[tuple[int, ...], ...]  # per op: alternative rows (the fastest runs)


def compose(t: tables.Table) -> list[Iteration]:
    """The iterations ``t``'s rows can form (see the module's docstring)."""
    out: list[Iteration] = []
    rows = np.arange(len(t))
    for gpu in t.values("gpu"):
        on = t["gpu"] == gpu
        layer_rows = on & (t["model"] != "") & np.isin(t["op"], ("gemm", "elementwise"))
        for model in sorted(set(t["model"][layer_rows])):
            for tp in sorted(set(t["tp"][layer_rows & (t["model"] == model)])):
                mine = layer_rows & (t["model"] == model) & (t["tp"] == tp)
                out += _model_iterations(t, rows, on, mine, gpu, model, int(tp))
    return out


def _model_iterations(t, rows, on, mine, gpu, model, tp) -> list[Iteration]:
    shape = _attention_shape(t, mine)
    if shape is None:
        return []
    heads, kv_heads, hidden = shape
    attn = on & (t["heads"] == heads) & (t["kv_heads"] == kv_heads) & (t["head_dim"] == HEAD_DIM)
    attn &= np.array([calibrate.kv_class(d) == "" for d in t["kv_dtype"]], bool)  # 16-bit KV
    out = []
    for m in sorted(set(t["m"][mine])):
        layer = tuple((int(i),) for i in rows[mine & (t["m"] == m)])
        reduce = _allreduce(t, rows, on, tp, m * hidden * 2)
        if reduce is None:
            continue
        pre = rows[attn & (t["op"] == "attention_prefill") & (t["batch"] == 1) & (t["length"] == m)]
        if len(pre):
            ops = layer + ((int(pre[0]),),) + reduce
            out.append(Iteration(gpu, model, tp, "prefill", f"prefill {m:g} tokens", ops))
        for context in DECODE_CONTEXTS:
            dec = rows[
                attn
                & (t["op"] == "attention_decode")
                & (t["batch"] == m)
                & (t["length"] == context)
            ]
            if len(dec):
                ops = layer + ((int(dec[0]),),) + reduce
                label = f"decode batch {m:g} at context {context}"
                out.append(Iteration(gpu, model, tp, "decode", label, ops))
    return out


def _attention_shape(t, mine) -> tuple[float, float, float] | None:
    """(heads, KV heads per GPU, hidden) from the layer's GEMMs, for head_dim 128:
    the output projection's ``k`` is heads x head_dim, the QKV projection's ``n``
    is (heads + 2 KV heads) x head_dim, and the output projection's ``n`` is the hidden size."""
    o = mine & (t["kernel"] == "attn_post_proj")
    qkv = mine & (t["kernel"] == "attn_pre_proj")
    if not o.any() or not qkv.any():
        return None
    heads = t["k"][o][0] / HEAD_DIM
    kv_heads = (t["n"][qkv][0] / HEAD_DIM - heads) / 2
    if heads != int(heads) or kv_heads != int(kv_heads) or kv_heads < 1:
        return None
    return heads, kv_heads, t["n"][o][0]


def _allreduce(t, rows, on, tp, nbytes) -> tuple[tuple[int, ...], ...] | None:
    if tp == 1:
        return ()
    alts = rows[on & (t["op"] == "allreduce") & (t["gpus"] == tp) & (t["bytes"] == nbytes)]
    if not len(alts):
        return None
    return (tuple(int(i) for i in alts),) * 2  # two per layer


def score(p: validate.Predictions, iterations: list[Iteration]) -> list[validate.Score]:
    """Errors of every method on the iterations, per GPU, model and kind."""
    by_kind: dict[tuple[str, str, str], list[Iteration]] = {}
    for it in iterations:
        by_kind.setdefault((it.gpu, it.model, it.kind), []).append(it)
    out = []
    for key, its in sorted(by_kind.items()):
        measured = _totals(p.table["seconds"], its)
        for method, predicted in p.methods.items():
            err = np.abs(_totals(predicted, its) / measured - 1)
            err = err[~np.isnan(err)]
            if len(err):
                out.append(validate.Score(method, *key, err))
    return out


def _totals(seconds: np.ndarray, its: list[Iteration]) -> np.ndarray:
    """Each iteration's time: per op the fastest of its rows, summed."""
    return np.array([sum(seconds[list(alts)].min() for alts in it.ops) for it in its])
