"""Cost models whose op times come from measurements: ``cost table`` and ``cost calibrated``.

Both price the same ops as the roofline (:class:`~tokensim.perf.roofline.CostModel`),
but each op's time comes from a *predictor*:

* ``calibrated``: a :mod:`~tokensim.perf.calibrate` file's fitted formulas;
* ``table``: a tokensim table, interpolated in log-log space along the one key
  that varies with the batch (tokens, length or bytes) among rows whose other
  keys equal the op's shape exactly (GEMMs: of the pool's precision).

Attention is priced for the pool's KV cache (``kv { dtype }``): an 8-bit cache
runs another kernel path, measured and fitted as a class of its own. Where a
table or calibration has no attention over that cache for the GPU, the 16-bit
cache's rows or fit are used with the KV bytes of the pool's cache (the
memory-bound part shrinks), and a note says so.

Where several kernels measure one all-reduce (NCCL and an engine's own), the
fastest is used, as an engine picks its fastest implementation per size.

At construction every op of one layer is evaluated once on a grid of sizes
(:data:`GRID`: 1 to 2^20 tokens), and an iteration then reads the curves
(log-log interpolation), so a simulated iteration costs what it costs with the
roofline. Where the predictor has nothing (a shape the table lacks, an op class
the calibration did not fit) the roofline's value is used, and one note per
pool lists those ops; beyond a table's measured sizes the roofline continues
from the last measured one (scaled to meet it), with a note. Beyond the grid, a
curve continues the same way from its last point, with a note.
"""

from __future__ import annotations

import bisect
import math
from functools import cache
from pathlib import Path

import numpy as np

from tokensim import ir
from tokensim.perf import calibrate, ops, tables
from tokensim.perf.profile import ModelShape
from tokensim.perf.roofline import CostModel
from tokensim.perf.shared import ACTIVATION_BYTES, QUANT_DTYPES, Gemm, note

GRID = 2.0 ** np.arange(0, 20.01, 0.25)  # 1 .. 1,048,576 tokens per iteration
DECODE_BATCHES = 2.0 ** np.arange(0, 11)  # sequences in a decode step: 1 .. 1024
DECODE_LENGTHS = (512.0, 4096.0)  # context per sequence the decode lines pass through


@cache
def _calibration(path: str) -> calibrate.Calibration:
    return calibrate.read(path)


@cache
def _table(path: str) -> tables.Table:
    return tables.read(path)


def read_cost_file(kind: str, path: str) -> None:
    """Read the file of ``cost table`` / ``cost calibrated`` once per process (the run
    reuses it); a file that cannot be used raises :class:`tables.TableError` or
    :class:`calibrate.CalibrationError` naming it."""
    (_table if kind == "table" else _calibration)(path)


def _with_kv(q: tables.Table, kv_dtype: str) -> tables.Table:
    """``q`` with every row's ``kv_dtype`` set to ``kv_dtype``."""
    return tables.Table({**q.columns, "kv_dtype": np.full(len(q), kv_dtype, dtype=object)})


def _kv_ratio(q: tables.Table, op: str, hw: ir.Gpu) -> np.ndarray:
    """The datasheet roofline's time for ``q``'s rows over their KV cache, over its
    time over a 16-bit cache: what a smaller cache saves (its memory-bound part)."""
    pk, p = ops.Peaks.of(hw, None), ops.Params.datasheet(hw.efficiency, op)
    return ops.predict(q, op, pk, p) / ops.predict(_with_kv(q, ""), op, pk, p)


class TablePredictor:
    """Interpolates a table's rows of equal shape along the key that grows with the batch."""

    AXIS = {
        "gemm": "m",
        "attention_prefill": "length",
        "attention_decode": "length",
        "elementwise": "bytes",
        "allreduce": "bytes",
    }

    def __init__(self, table: tables.Table):
        self.table = table

    def __call__(
        self, gpu: str, op: str, kernel: str, q: tables.Table, hw: ir.Gpu | None = None
    ) -> np.ndarray | None:
        rows = self.table.select(gpu=gpu, op=op)
        if op == "elementwise":
            rows = rows.select(kernel=kernel)
        if op == "gemm":
            want = calibrate.class_of(op, dtype=q["dtype"][0])
            rows = rows.where(np.array([calibrate.class_of(op, dtype=d) == want
                                        for d in rows["dtype"]], bool))  # fmt: skip
        if op.startswith("attention"):
            kv = calibrate.kv_class(q["kv_dtype"][0])
            have = np.array([calibrate.kv_class(d) for d in rows["kv_dtype"]], dtype=object)
            if kv and not (have == kv).any() and (have == "").any() and hw is not None:
                note(
                    f"{gpu}: the table has no {op} over an {kv} KV cache; priced from its "
                    f"16-bit KV cache's rows with the KV bytes at {kv} (datasheet ratio)"
                )
                got = self._interpolate(rows.where(have == ""), op, _with_kv(q, ""))
                return got * _kv_ratio(q, op, hw)
            rows = rows.where(have == kv)
        if len(rows) == 0:
            return None
        return self._interpolate(rows, op, q)

    def _interpolate(self, rows: tables.Table, op: str, q: tables.Table) -> np.ndarray:
        axis = self.AXIS[op]
        fixed = [
            c for c in tables.KEYS[op] if c != axis and not (op == "elementwise" and c == "bytes")
        ]
        out = np.full(len(q), np.nan)
        for i in range(len(q)):
            mask = np.ones(len(rows), bool)
            for c in fixed:
                mask &= rows[c] == q[c][i]
            if not mask.any():
                continue
            # equal x (several models or kernels measured one size): the fastest
            x, inverse = np.unique(rows[axis][mask], return_inverse=True)
            y = np.full(len(x), np.inf)
            np.minimum.at(y, inverse.reshape(-1), rows["seconds"][mask])
            v = q[axis][i]
            if v < x[0] or v > x[-1]:
                continue
            out[i] = math.exp(np.interp(math.log(v), np.log(x), np.log(y)))
        return out


class CalibrationPredictor:
    """Prices ops with a calibration's fitted formulas (the fit class of the op's
    kernel, precision and KV cache; collectives: the fastest fitted kernel)."""

    def __init__(self, cal: calibrate.Calibration):
        self.cal = cal

    def __call__(
        self, gpu: str, op: str, kernel: str, q: tables.Table, hw: ir.Gpu | None = None
    ) -> np.ndarray | None:
        fitted = self.cal.fits.get(gpu, {})
        if op in calibrate.BY_KERNEL and not kernel:
            got = [self.cal.predict(q, gpu, n) for n in sorted(fitted) if calibrate.op_of(n) == op]
            return np.min(got, axis=0) if got else None
        name = calibrate.class_of(
            op, kernel, q["dtype"][0], q["heads"][0], q["kv_heads"][0], q["kv_dtype"][0]
        )
        return self.cal.predict(q, gpu, self._fitted_class(gpu, name, fitted))

    @staticmethod
    def _fitted_class(gpu: str, name: str, fitted: dict) -> str:
        """``name``, or the nearest class the calibration has: the other grouping of
        heads over the same KV cache (an older calibration has one class for both),
        else the 16-bit KV cache's class (the rows' KV bytes still those of their own
        cache, so the memory-bound part shrinks); a note says which."""
        if name in fitted:
            return name
        op, base = calibrate.op_of(name), calibrate.sixteen_bit_kv(name)
        kv = name[len(base) + len(":kv_") :] if base != name else ""

        def same_kv(n: str) -> bool:
            return calibrate.sixteen_bit_kv(n) != n if kv else calibrate.sixteen_bit_kv(n) == n

        if op in calibrate.BY_GROUPING:
            other = [n for n in sorted(fitted) if calibrate.op_of(n) == op and same_kv(n)]
            if other:
                note(f"{gpu}: no {name} fit in the calibration; {other[0]} used")
                return other[0]
        if kv:
            sixteen = [base] if base in fitted else []
            sixteen += [n for n in sorted(fitted) if calibrate.op_of(n) == op and not same_kv(n)]
            if sixteen:
                note(
                    f"{gpu}: no {name} fit (an {kv} KV cache) in the calibration; "
                    f"{sixteen[0]} used with the KV bytes at {kv}"
                )
                return sixteen[0]
        return name


def _query(op: str, count: int, **cols) -> tables.Table:
    rows = [{"op": op, **{k: (v[i] if isinstance(v, np.ndarray) else v) for k, v in cols.items()}}
            for i in range(count)]  # fmt: skip
    return tables.from_rows(rows)


class _Curve:
    """An op's seconds on :data:`GRID`, read in log-log space; beyond the grid's end
    the op's roofline continues from the last point (scaled to meet it), with a note."""

    def __init__(self, seconds: np.ndarray, roofline, what: str, label: str):
        self._log = np.log(seconds).tolist()  # for _interp: plain floats read faster
        self.roofline, self.what, self.label = roofline, what, label
        self.end_s = float(seconds[-1])
        self.end_roof_s = roofline(float(GRID[-1]))
        self._memo: dict[float, float] = {}  # the sizes a run asks for come back often

    def __call__(self, x: float) -> float:
        if x <= _GRID_END:
            y = self._memo.get(x)
            if y is None:
                y = self._memo[x] = math.exp(_interp(math.log(max(x, 1.0)), self._log))
            return y
        note(
            f"{self.label}: {self.what} beyond the {GRID[-1]:.0f} of the precomputed "
            "curves; the roofline continues from there"
        )
        return self.end_s * self.roofline(x) / self.end_roof_s


class MeasuredCostModel(CostModel):
    """The roofline's structure with op times from a predictor, read off precomputed curves."""

    def __init__(self, pool: ir.Pool, predictor, label: str, *links, **moe):
        super().__init__(pool, *links, **moe)
        self.predictor, self.label = predictor, label
        self._datasheet: list[str] = []  # ops the predictor has nothing for
        m, tp = pool.model, pool.tp
        self.gpu_name = pool.gpu.measured_as or pool.gpu.name
        shape = ModelShape.from_ir(m)
        # the GEMMs of a layer with the share of layers that run them: the attention's in
        # every layer; a dense model's MLP too; a MoE model's shared experts in its MoE
        # layers, and its dense layers' MLP in those
        shapes = [(1.0, n, k) for _, n, k in shape.projections(tp)]
        if m.experts == 1:
            shapes += [(1.0, n, k) for _, n, k in shape.mlp(tp, m.ffn)]
        else:
            share = self.moe_share  # the MoE layers' share, as the roofline prices them
            if m.shared_experts:
                shapes += [(share, n, k) for _, n, k in shape.mlp(tp, m.ffn * m.shared_experts)]
            if m.dense_layers:
                shapes += [(1 - share, n, k) for _, n, k in shape.mlp(tp, m.dense_ffn)]
        grid = GRID
        dtype = pool.dtype
        # GEMMs of one layer, summed on the grid (MoE expert GEMMs stay with the roofline)
        gemm = np.zeros(len(grid))
        roof_gemms = [(w, self._roof_gemm(n, k)) for w, n, k in shapes]
        engine = pool.engine
        native = dtype in QUANT_DTYPES and engine is not None and engine.fp8_gemm == "native"
        for (w, n, k), (_, roof) in zip(shapes, roof_gemms, strict=True):
            if native:  # the 16-bit kernels' measured efficiency, with the 8-bit roofline's gain
                roof16 = self._roof_gemm(n, k, "bf16")
                gain = np.array([roof(t) / roof16(t) for t in grid])
                gemm += (
                    w
                    * gain
                    * self._predict("gemm", "", grid, "bf16", roof16, extend=True, m=grid, n=n, k=k)
                )
            else:
                gemm += w * self._predict(
                    "gemm", "", grid, dtype, roof, extend=True, m=grid, n=n, k=k
                )
        if m.experts > 1:  # the router stays with the roofline (the experts are added by breakdown)
            router = lambda t: self.moe_share * self._gemm(self.router, t)  # noqa: E731
            gemm += np.array([router(t) for t in grid])
            roof_gemms.append((1.0, router))
            self._datasheet.append("MoE router and experts")
        self._gemm_curve = self._curve(
            gemm, lambda t: sum(w * r(t) for w, r in roof_gemms), "GEMMs"
        )
        # the LM head stays in 16 bit when the layers are quantized, as in vLLM
        head_dtype = dtype if ir.DTYPE_BYTES[dtype] >= 2 else "bf16"
        roof_head = lambda t: CostModel._lm_head(self, t)  # noqa: E731
        head = self._predict(
            "gemm", "", grid, head_dtype, roof_head, extend=True, m=grid, n=m.vocab // tp,
            k=m.hidden,
        )  # fmt: skip
        self._head_curve = self._curve(head, roof_head, "LM head")
        # norms and residual adds (2 each per layer), rope and the MLP activation
        elementwise = np.zeros(len(grid))
        roof_elementwise = []  # (calls, seconds of one call)
        for kernel, calls, per_token in shape.elementwise(tp):
            one = lambda t, b=per_token: self.kernel_s + t * b / self.mem_Bps  # noqa: E731
            roof_elementwise.append((calls, one))
            elementwise += calls * self._predict(
                "elementwise", kernel, grid, "fp16", one, extend=True,
                m=grid, bytes=per_token * grid,
            )  # fmt: skip
        self._norm_curve = self._curve(
            elementwise, lambda t: sum(c * one(t) for c, one in roof_elementwise), "elementwise ops"
        )
        # attention over the pool's KV cache: prefill by the length of one prompt (MLA's
        # kernels are measured nowhere here: the roofline prices them)
        heads, kv_heads = shape.heads_per_gpu(tp)
        kv = pool.kv.dtype
        roof_prefill = lambda L: CostModel._prefill_attention(self, L * (L + 1) / 2)  # noqa: E731
        attention = self._predict if not m.mla else self._roofline_only
        pre = attention(
            "attention_prefill", "", grid, "bf16", roof_prefill, extend=True,
            batch=1, length=grid, heads=heads, kv_heads=kv_heads, head_dim=m.head_dim, kv_dtype=kv,
        )  # fmt: skip
        self._prefill_curve = self._curve(pre, roof_prefill, "prefill attention")
        # decode: per batch size, a line in the context read (through the times at two
        # lengths per sequence), so a decode run's steps stay linear in the context
        b = np.repeat(DECODE_BATCHES, 2)
        n = np.tile(DECODE_LENGTHS, len(DECODE_BATCHES))
        dec = attention(
            "attention_decode", "", np.arange(len(b)), "bf16",
            lambda i: CostModel._decode_attention(self, int(b[int(i)] * n[int(i)]), int(b[int(i)])),
            batch=b, length=n, heads=heads, kv_heads=kv_heads, head_dim=m.head_dim, kv_dtype=kv,
        ).reshape(len(DECODE_BATCHES), 2)  # fmt: skip
        lo, hi = DECODE_LENGTHS
        self._decode_per_token = np.maximum(
            0.0, (dec[:, 1] - dec[:, 0]) / (DECODE_BATCHES * (hi - lo))
        )
        self._decode_fixed = np.maximum(
            0.0, dec[:, 0] - self._decode_per_token * DECODE_BATCHES * lo
        )
        self._decode_lines: dict[int, tuple[float, float]] = {}
        # tensor-parallel all-reduce of the hidden states
        if tp > 1:
            nbytes = grid * self.hidden_bytes
            roof_ar = lambda t: CostModel._allreduce(self, t * self.hidden_bytes)  # noqa: E731
            ar = self._predict(
                "allreduce", "", nbytes, "bf16", lambda x: CostModel._allreduce(self, x),
                extend=True, gpus=tp, bytes=nbytes,
            )  # fmt: skip
            self._allreduce_curve = self._curve(ar, roof_ar, "all-reduce")
        if pool.pp > 1:
            self._datasheet.append("pipeline hand-off")
        if self._datasheet:
            note(
                f"{label}: nothing measured for {', '.join(dict.fromkeys(self._datasheet))} on "
                f"{self.gpu_name}: priced from the datasheet alone (roofline used)"
            )

    def _curve(self, seconds: np.ndarray, roofline, what: str) -> _Curve:
        return _Curve(seconds, roofline, what, self.label)

    def _roof_gemm(self, n: int, k: int, dtype: str | None = None):
        """The roofline's seconds for an ``n x k`` weight GEMM in ``dtype`` (the pool's by
        default), as a function of tokens (with its input's quantization under 8-bit
        compute)."""
        dtype = dtype or self.pool.dtype
        q = k if dtype in QUANT_DTYPES else 0.0
        flops = 0.0 if dtype == self.pool.dtype else self._flops(dtype)
        g = Gemm(2 * n * k, n * k * ir.DTYPE_BYTES[dtype], (n + k) * ACTIVATION_BYTES, 1, q, flops)
        return lambda tokens: self._gemm(g, tokens)

    def _flops(self, dtype: str) -> float:
        """The GEMM peak in ``dtype`` (FLOP/s, efficiency applied)."""
        gpu = self.pool.gpu
        peak = gpu.flops(dtype) or gpu.flops("fp16") or gpu.flops(self.pool.dtype)
        return peak * gpu.efficiency.gemm

    def _predict(self, op, kernel, sizes, dtype, roofline, extend=False, **cols) -> np.ndarray:
        """The predictor's times on ``sizes``; the roofline's where it has none. With
        ``extend`` (``sizes`` ascending), the roofline beyond the measured sizes is scaled
        to meet the nearest measured one, so a curve does not jump where they end."""
        q = _query(op, len(sizes), gpu=self.gpu_name, dtype=dtype, kernel=kernel, **cols)
        got = self.predictor(self.gpu_name, op, kernel, q, hw=self.pool.gpu)
        what = f"{op}:{kernel}" if kernel else op
        if got is None or np.isnan(got).all():
            self._datasheet.append(what)
            return np.array([roofline(float(s)) for s in sizes])
        missing = np.isnan(got)
        if missing.any():
            shape = ", ".join(f"{k}={v}" for k, v in cols.items() if not isinstance(v, np.ndarray))
            note(
                f"{self.label}: {what} ({shape}) outside the measurements for "
                f"{self.gpu_name} at {missing.sum()} of {len(sizes)} sizes; roofline used there"
                + (", scaled to meet the nearest measured size" if extend else "")
            )
            got = got.copy()
            have = np.flatnonzero(~missing)
            for i in np.flatnonzero(missing):
                roof = roofline(float(sizes[i]))
                if extend:
                    j = have[np.argmin(np.abs(have - i))]
                    roof *= got[j] / roofline(float(sizes[j]))
                got[i] = roof
        return got

    def _roofline_only(self, op, kernel, sizes, dtype, roofline, extend=False, **cols):
        """:meth:`_predict` for an op the predictor cannot price (MLA attention)."""
        self._datasheet.append("MLA attention" if self.pool.model.mla else op)
        return np.array([roofline(float(s)) for s in sizes])

    def _dense_gemms(self, tokens: int) -> float:
        return self._gemm_curve(tokens)

    def _lm_head(self, samples: int) -> float:
        return self._head_curve(samples)

    def _norms(self, tokens: int) -> float:
        return self._norm_curve(tokens)

    def _prefill_attention(self, pairs: float) -> float:
        if pairs <= 0:
            return 0.0
        length = (math.sqrt(8 * pairs + 1) - 1) / 2  # the one prompt with that many pairs
        return self._prefill_curve(length)

    def _decode_attention(self, context: int, seqs: int) -> float:
        """The line of the batch size (between those measured, interpolated in log batch;
        beyond the largest, that one's)."""
        if seqs == 0:
            return 0.0
        line = self._decode_lines.get(seqs)
        if line is None:
            x = math.log(seqs)
            line = self._decode_lines[seqs] = (
                float(np.interp(x, _LOG_BATCHES, self._decode_fixed)),
                float(np.interp(x, _LOG_BATCHES, self._decode_per_token)),
            )
        return line[0] + line[1] * context

    def _allreduce(self, nbytes: float) -> float:
        if self.tp == 1:
            return 0.0
        return self._allreduce_curve(nbytes / self.hidden_bytes)


_LOG_GRID = np.log(GRID).tolist()
_GRID_END = float(GRID[-1])


def _interp(x: float, fp: list[float]) -> float:
    """``np.interp(x, np.log(GRID), fp)`` for one ``x`` inside the grid, with the same
    arithmetic (so the same bits) and without numpy's per-call overhead."""
    xp = _LOG_GRID
    j = bisect.bisect_right(xp, x) - 1  # xp[j] <= x < xp[j + 1]
    if j <= 0 and x <= xp[0]:
        return fp[0]
    if j >= len(xp) - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    y = slope * (x - xp[j]) + fp[j]
    if y != y:  # numpy's fallback for a non-finite slope
        y = slope * (x - xp[j + 1]) + fp[j + 1]
        if y != y and fp[j] == fp[j + 1]:
            y = fp[j]
    return y


_LOG_BATCHES = np.log(DECODE_BATCHES)


def shown(path: str) -> str:
    """``path`` as messages show it: a file shipped with the std catalogue as
    ``<std>/calibrations/H100_SXM.json``, any other as it is."""
    from tokensim.lang.check import std_dir

    std = Path(str(std_dir())).resolve()
    p = Path(path)
    return f"<std>/{p.relative_to(std).as_posix()}" if p.is_relative_to(std) else path


def measured(pool: ir.Pool, *links, **moe) -> MeasuredCostModel:
    """The cost model ``pool.cost`` names (``table`` or ``calibrated``)."""
    path = pool.cost.path
    label = f"pool {pool.name}: cost {pool.cost.kind} {shown(path)}"
    if pool.cost.kind == "calibrated":
        predictor = CalibrationPredictor(_calibration(path))
    else:
        predictor = TablePredictor(_table(path))
    return MeasuredCostModel(pool, predictor, label, *links, **moe)
