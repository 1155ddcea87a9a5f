"""Calibration: fit the op formulas of :mod:`tokensim.perf.ops` to measured tables.

Per GPU and fit class, a least-squares fit in log space (relative error) of
the compute and memory efficiencies, a fixed time per call and the sharpness of
the bend between the bounds (collectives: the link efficiency, a fixed time and
a latency per ring step); then the residuals at the measured shapes are kept as
:class:`~tokensim.perf.ops.Corrections`. A fit class is an op and a variant
(:func:`class_of`): GEMMs per precision, elementwise ops and collectives per
kernel, since each runs its own code at its own rates.

The result is a JSON file (:data:`FORMAT`) a spec names with
``cost calibrated "file.json"``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from tokensim import ir
from tokensim.perf import ops, tables

FORMAT = "tokensim calibration"
VERSION = 1
# the link the collectives of each GPU's tables ran over (an 8-GPU DGX/HGX node)
NODE_LINK = {"A100_80G": "NVLINK3", "H100_SXM": "NVLINK4", "H200": "NVLINK4", "B200": "NVLINK5"}
SIXTEEN_BIT = ("bf16", "fp16")
# ops whose fit classes split by kernel
BY_KERNEL = ("elementwise", *ops.COLLECTIVES)
# ops whose fit classes split by query heads per KV head (one, or a group)
BY_GROUPING = ("attention_decode",)


class CalibrationError(ValueError):
    """A calibration that cannot be made or read; the message says where and why."""


@cache
def catalogue() -> dict[str, tuple[ir.Gpu, ir.Link | None]]:
    """The std catalogue's GPUs, each with the link its node's collectives use."""
    from tokensim.lang.check import std_spec

    spec = std_spec("hardware")
    links = {link.name: link for link in spec.links}
    return {g.name: (g, links.get(NODE_LINK.get(g.name, ""))) for g in spec.gpus}


def peaks(gpu: str) -> ops.Peaks:
    """The peaks of catalogue GPU ``gpu``."""
    cat = catalogue()
    if gpu not in cat:
        raise CalibrationError(
            f"GPU {gpu!r} is not in the std catalogue ({', '.join(sorted(cat))}); "
            "a table's gpu column must name a catalogue GPU"
        )
    return ops.Peaks.of(*cat[gpu])


@dataclass
class OpFit:
    """One GPU's fitted formula for one op class."""

    params: ops.Params
    corrections: ops.Corrections | None
    rows: int
    error: dict[str, float] = field(default_factory=dict)

    def predict(self, t: tables.Table, op: str, pk: ops.Peaks) -> np.ndarray:
        return ops.predict(t, op, pk, self.params, self.corrections)


def kv_class(kv_dtype: str) -> str:
    """The KV cache's precision as fit classes tell it apart: ``""`` for a 16-bit
    cache (or none given), else its dtype (``fp8``)."""
    return "" if kv_dtype in ("", *SIXTEEN_BIT) else kv_dtype


def class_of(
    op: str,
    kernel: str = "",
    dtype: str = "",
    heads: float = 0,
    kv_heads: float = 0,
    kv_dtype: str = "",
) -> str:
    """The fit class of an op: ``gemm:16bit``/``gemm:fp8`` (a precision has its own
    peak and kernels), ``elementwise:norm`` or ``allreduce:NCCL`` (a kernel moves
    bytes at its own rate), ``attention_decode:mha``/``:gqa`` (a query head per KV
    head, or a group of them: attention kernels take another path for groups), else
    the op itself. Attention over an 8-bit KV cache is a class of its own, suffixed
    ``:kv_fp8`` (``attention_decode:gqa:kv_fp8``): another kernel path."""
    if op == "gemm":
        return f"gemm:{'16bit' if dtype in SIXTEEN_BIT else dtype}"
    if op in BY_KERNEL and kernel:
        return f"{op}:{kernel}"
    name = op
    if op in BY_GROUPING and kv_heads:
        name = f"{op}:{'mha' if heads == kv_heads else 'gqa'}"
    if op.startswith("attention") and kv_class(kv_dtype):
        name += f":kv_{kv_class(kv_dtype)}"
    return name


def sixteen_bit_kv(name: str) -> str:
    """The class of 16-bit KV caches that an attention class ``name`` of another KV
    cache comes from (``attention_decode:gqa:kv_fp8`` -> ``attention_decode:gqa``)."""
    return name.split(":kv_", 1)[0]


def fit_classes(t: tables.Table):
    """(class name, op, rows) for every fit class of ops in ``t``."""
    keys = zip(
        t["op"], t["kernel"], t["dtype"], t["heads"], t["kv_heads"], t["kv_dtype"], strict=True
    )
    names = np.array([class_of(*r) for r in keys], dtype=object)
    for name in sorted(set(names)):
        yield name, op_of(name), t.where(names == name)


def op_of(name: str) -> str:
    """The op of a fit class name (``elementwise:norm`` -> ``elementwise``)."""
    return name.split(":", 1)[0]


def fit_op(t: tables.Table, op: str, pk: ops.Peaks, corrections: bool = True) -> OpFit:
    """Fit ``op``'s formula to the rows of ``t`` (one GPU, one op class)."""
    from scipy.optimize import least_squares

    if len(t) == 0:
        raise CalibrationError(f"no {op} rows to fit")
    flops, nbytes, serial, unit = ops.work(t, op)
    target = np.log(t["seconds"])
    has_compute = bool(np.any(flops > 0))
    has_units = bool(np.any(unit))
    collective = op in ops.COLLECTIVES

    def params(x) -> ops.Params:
        if has_compute:
            share = math.exp(x[4]) if has_units else 1.0
            return ops.Params(math.exp(x[0]), math.exp(x[1]), x[2] * 1e-6, x[3], unit=share)
        if collective:
            return ops.Params(1.0, math.exp(x[0]), x[1] * 1e-6, step_s=x[2] * 1e-6)
        return ops.Params(1.0, math.exp(x[0]), x[1] * 1e-6)

    def residual(x):
        return np.log(ops.combine(flops, nbytes, serial, unit, op, t, pk, params(x))) - target

    if has_compute:
        x0, lo, hi = [-0.3, -0.3, 2.0, 3.0], [-5, -5, 0, 1], [1, 1, 1000, 30]
        if has_units:  # log of the bandwidth share of one unit: 0 is no bound of its own
            x0, lo, hi = x0 + [-3.0], lo + [-12], hi + [0]
    elif collective:
        x0, lo, hi = [-0.3, 2.0, 1.0], [-5, 0, 0], [2, 1000, 100]
    else:
        x0, lo, hi = [-0.3, 2.0], [-5, 0], [2, 1000]
    fit = least_squares(residual, x0, bounds=(lo, hi), x_scale="jac")
    p = params(fit.x)
    log_res = -residual(fit.x)  # log(measured / fitted)
    corr = ops.Corrections.fit(t, op, log_res) if corrections else None
    return OpFit(p, corr, len(t))


@dataclass
class Calibration:
    """Fitted formulas per GPU and op class, with the notes of the tables they came from."""

    fits: dict[str, dict[str, OpFit]]
    sources: list[str] = field(default_factory=list)
    # where a shipped calibration came from: what it was fitted on, how to remake it
    fitted_on: dict = field(default_factory=dict)

    def predict(self, t: tables.Table, gpu: str, name: str) -> np.ndarray | None:
        """Seconds for rows of ``t`` of fit class ``name`` on ``gpu`` (None if not fitted)."""
        fit = self.fits.get(gpu, {}).get(name)
        return None if fit is None else fit.predict(t, op_of(name), peaks(gpu))

    def to_json(self) -> dict:
        from tokensim import __version__

        return {
            "format": FORMAT,
            "version": VERSION,
            "tokensim": __version__,
            **({"fitted_on": self.fitted_on} if self.fitted_on else {}),
            "sources": self.sources,
            "gpus": {
                gpu: {
                    op: {
                        "compute_efficiency": f.params.compute,
                        "memory_efficiency": f.params.memory,
                        "overhead_s": f.params.overhead_s,
                        "sharpness": f.params.sharpness,
                        "step_latency_s": f.params.step_s,
                        "unit_bandwidth_share": f.params.unit,
                        "rows": f.rows,
                        "fit_error": f.error,
                        "corrections": f.corrections.to_json() if f.corrections else None,
                    }
                    for op, f in sorted(by_op.items())
                }
                for gpu, by_op in sorted(self.fits.items())
            },
        }

    def write(self, path: str | Path, compact: bool = False) -> None:
        """Write the calibration as JSON (``compact``: one line a GPU's op class, for
        files shipped in the package)."""
        data = self.to_json()
        if compact:
            head = {k: v for k, v in data.items() if k != "gpus"}
            text = json.dumps(head, indent=1)[:-2] + ',\n "gpus": {\n'
            text += ",\n".join(
                f"  {json.dumps(gpu)}: {{\n"
                + ",\n".join(
                    f"   {json.dumps(name)}: {json.dumps(fit, separators=(',', ':'))}"
                    for name, fit in by_op.items()
                )
                + "\n  }"
                for gpu, by_op in data["gpus"].items()
            )
            text += "\n }\n}\n"
        else:
            text = json.dumps(data, indent=1) + "\n"
        with tables.replacing(path) as tmp:
            tmp.write_text(text, encoding="utf-8")


def read(path: str | Path) -> Calibration:
    """Read a calibration file; problems raise :class:`CalibrationError` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{path}:{e.lineno}: not JSON: {e.msg}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CalibrationError(f"{path}: not a tokensim calibration (made by `tokensim calibrate`)")
    if data.get("version") != VERSION:
        raise CalibrationError(
            f"{path}: calibration version {data.get('version')!r}; expected {VERSION}"
        )
    fits: dict[str, dict[str, OpFit]] = {}
    try:
        for gpu, by_op in data["gpus"].items():
            for op, f in by_op.items():
                if op_of(op) not in ops.KEY_WEIGHTS:
                    raise CalibrationError(f"{path}: gpus.{gpu}: unknown op class {op!r}")
                p = ops.Params(
                    float(f["compute_efficiency"]),
                    float(f["memory_efficiency"]),
                    float(f["overhead_s"]),
                    float(f["sharpness"]),
                    None if f.get("step_latency_s") is None else float(f["step_latency_s"]),
                    float(f.get("unit_bandwidth_share", 1.0)),
                )
                corr = f.get("corrections")
                fits.setdefault(gpu, {})[op] = OpFit(
                    p,
                    ops.Corrections.from_json(op_of(op), corr) if corr else None,
                    int(f["rows"]),
                    dict(f.get("fit_error") or {}),
                )
    except CalibrationError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise CalibrationError(f"{path}: malformed calibration ({type(e).__name__}: {e})") from None
    return Calibration(fits, list(data.get("sources") or []), dict(data.get("fitted_on") or {}))


def calibrate(t: tables.Table, corrections: bool = True) -> Calibration:
    """Fit every (GPU, op class) present in ``t``."""
    fits: dict[str, dict[str, OpFit]] = {}
    for gpu in t.values("gpu"):
        pk = peaks(gpu)
        for name, op, sub in fit_classes(t.select(gpu=gpu)):
            f = fit_op(sub, op, pk, corrections)
            err = np.abs(f.predict(sub, op, pk) / sub["seconds"] - 1)
            f.error = {"median": float(np.median(err)), "p90": float(np.percentile(err, 90))}
            fits.setdefault(gpu, {})[name] = f
    return Calibration(fits, list(t.comments))
