"""Cost models whose op times come from measurements: ``cost table`` and ``cost calibrated``.

Both price the same ops as the roofline (:class:`~tokensim.perf.roofline.CostModel`),
but each op's time comes from a *predictor*:

* ``calibrated``: a :mod:`~tokensim.perf.calibrate` file's fitted formulas;
* ``table``: a tokensim table, interpolated in log-log space along the one key
  that varies with the batch (tokens, length or bytes) among rows whose other
  keys equal the op's shape exactly (GEMMs: of the pool's precision).

Where several kernels measure one all-reduce (NCCL and an engine's own), the
fastest is used, as an engine picks its fastest implementation per size.

At construction every op of one layer is evaluated once on a grid of sizes, and
an iteration then reads the curves (log-log interpolation), so a simulated
iteration costs what it costs with the roofline. Where the predictor has nothing
(a shape the table lacks, an op class the calibration did not fit, a size
outside the table's range) the roofline's value is used and a note says so, once.
"""

from __future__ import annotations

import math
import sys
from functools import cache

import numpy as np

from tokensim import ir
from tokensim.perf import calibrate, tables
from tokensim.perf.profile import ModelShape
from tokensim.perf.roofline import ACTIVATION_BYTES, QUANT_DTYPES, CostModel, _Gemm

GRID = 2.0 ** np.arange(0, 17.01, 0.25)  # 1 .. 131072
DECODE_BATCHES = 2.0 ** np.arange(0, 11)  # sequences in a decode step: 1 .. 1024
DECODE_LENGTHS = (512.0, 4096.0)  # context per sequence the decode lines pass through
_said: set[str] = set()


def note(message: str) -> None:
    """Print ``message`` to stderr once per process."""
    if message not in _said:
        _said.add(message)
        print(f"note: {message}", file=sys.stderr)


@cache
def _calibration(path: str) -> calibrate.Calibration:
    return calibrate.read(path)


@cache
def _table(path: str) -> tables.Table:
    return tables.read(path)


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

    def __call__(self, gpu: str, op: str, kernel: str, q: tables.Table) -> np.ndarray | None:
        rows = self.table.select(gpu=gpu, op=op)
        if op == "elementwise":
            rows = rows.select(kernel=kernel)
        if op == "gemm":
            want = calibrate.class_of(op, dtype=q["dtype"][0])
            rows = rows.where(np.array([calibrate.class_of(op, dtype=d) == want
                                        for d in rows["dtype"]], bool))  # fmt: skip
        if len(rows) == 0:
            return None
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
    kernel and precision; collectives: the fastest fitted kernel)."""

    def __init__(self, cal: calibrate.Calibration):
        self.cal = cal

    def __call__(self, gpu: str, op: str, kernel: str, q: tables.Table) -> np.ndarray | None:
        if op in calibrate.BY_KERNEL and not kernel:
            fitted = self.cal.fits.get(gpu, {})
            got = [self.cal.predict(q, gpu, n) for n in sorted(fitted) if calibrate.op_of(n) == op]
            return np.min(got, axis=0) if got else None
        name = calibrate.class_of(op, kernel, q["dtype"][0], q["heads"][0], q["kv_heads"][0])
        fitted = self.cal.fits.get(gpu, {})
        if name not in fitted and op in calibrate.BY_GROUPING:
            # one class for every grouping of heads (an older calibration), else the
            # other grouping's: closer than the datasheet
            other = [n for n in sorted(fitted) if calibrate.op_of(n) == op]
            if other:
                note(f"{gpu}: no {name} fit in the calibration; {other[0]} used")
                name = other[0]
        return self.cal.predict(q, gpu, name)


def _query(op: str, count: int, **cols) -> tables.Table:
    rows = [{"op": op, **{k: (v[i] if isinstance(v, np.ndarray) else v) for k, v in cols.items()}}
            for i in range(count)]  # fmt: skip
    return tables.from_rows(rows)


class MeasuredCostModel(CostModel):
    """The roofline's structure with op times from a predictor, read off precomputed curves."""

    def __init__(self, pool: ir.Pool, predictor, label: str, *links):
        super().__init__(pool, *links)
        self.predictor, self.label = predictor, label
        m, tp = pool.model, pool.tp
        self.gpu_name = pool.gpu.name
        shape = ModelShape.from_ir(m)
        layer = shape.gemms(tp)
        shapes = [(n, k) for _, n, k in (layer if m.experts == 1 else layer[:2])]
        grid = GRID
        dtype = pool.dtype
        # GEMMs of one layer, summed on the grid (MoE expert GEMMs stay with the roofline)
        gemm = np.zeros(len(grid))
        for n, k in shapes:
            gemm += self._predict("gemm", "", grid, dtype, self._roof_gemm(n, k), m=grid, n=n, k=k)
        if m.experts > 1:  # the router stays with the roofline (the experts are added by breakdown)
            gemm += np.array([self._gemm(self.gemms[2], t) for t in grid])
        self._gemm_curve = np.log(gemm)
        head = self._predict(
            "gemm", "", grid, dtype, self._roof_gemm(m.vocab // tp, m.hidden, quantized=False),
            m=grid, n=m.vocab // tp, k=m.hidden,
        )  # fmt: skip
        self._head_curve = np.log(head)
        # norms and residual adds (2 each per layer), rope and the MLP activation
        elementwise = np.zeros(len(grid))
        for kernel, calls, per_token in shape.elementwise(tp):
            elementwise += calls * self._predict(
                "elementwise", kernel, grid, "fp16",
                lambda t, b=per_token: self.kernel_s + t * b / self.mem_Bps,
                m=grid, bytes=per_token * grid,
            )  # fmt: skip
        self._norm_curve = np.log(elementwise)
        # attention: prefill by the length of one prompt
        heads, kv_heads = shape.heads_per_gpu(tp)
        pre = self._predict(
            "attention_prefill", "", grid, "bf16",
            lambda L: CostModel._prefill_attention(self, L * (L + 1) / 2),
            batch=1, length=grid, heads=heads, kv_heads=kv_heads, head_dim=m.head_dim,
        )  # fmt: skip
        self._prefill_curve = np.log(pre)
        # decode: per batch size, a line in the context read (through the times at two
        # lengths per sequence), so a decode run's steps stay linear in the context
        b = np.repeat(DECODE_BATCHES, 2)
        n = np.tile(DECODE_LENGTHS, len(DECODE_BATCHES))
        dec = self._predict(
            "attention_decode", "", np.arange(len(b)), "bf16",
            lambda i: CostModel._decode_attention(self, int(b[int(i)] * n[int(i)]), int(b[int(i)])),
            batch=b, length=n, heads=heads, kv_heads=kv_heads, head_dim=m.head_dim,
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
            ar = self._predict(
                "allreduce", "", nbytes, "bf16",
                lambda b: CostModel._allreduce(self, b), gpus=tp, bytes=nbytes,
            )  # fmt: skip
            self._allreduce_curve = np.log(ar)

    def _roof_gemm(self, n: int, k: int, quantized: bool = True):
        """The roofline's seconds for an ``n x k`` weight GEMM, as a function of tokens
        (with its input's quantization under 8-bit compute, unless not ``quantized``)."""
        q = k if quantized and self.pool.dtype in QUANT_DTYPES else 0.0
        g = _Gemm(
            2 * n * k, n * k * ir.DTYPE_BYTES[self.pool.dtype], (n + k) * ACTIVATION_BYTES, 1, q
        )
        return lambda tokens: self._gemm(g, tokens)

    def _predict(self, op, kernel, sizes, dtype, roofline, **cols) -> np.ndarray:
        """The predictor's times on ``sizes``; the roofline's (or NaN) where it has none."""
        q = _query(op, len(sizes), gpu=self.gpu_name, dtype=dtype, kernel=kernel, **cols)
        got = self.predictor(self.gpu_name, op, kernel, q)
        if got is None:
            got = np.full(len(sizes), np.nan)
        missing = np.isnan(got)
        if missing.any():
            what = f"{op}:{kernel}" if kernel else op
            shape = ", ".join(f"{k}={v}" for k, v in cols.items() if not isinstance(v, np.ndarray))
            note(
                f"{self.label}: {what} ({shape}) outside the measurements for "
                f"{self.gpu_name} at {missing.sum()} of {len(sizes)} sizes; roofline used there"
            )
            got = got.copy()
            got[missing] = [roofline(float(s)) for s in sizes[missing]]
        return got

    @staticmethod
    def _read(curve: np.ndarray, x: float) -> float:
        return math.exp(np.interp(math.log(max(x, 1.0)), _LOG_GRID, curve))

    def _dense_gemms(self, tokens: int) -> float:
        return self._read(self._gemm_curve, tokens)

    def _lm_head(self, samples: int) -> float:
        return self._read(self._head_curve, samples)

    def _norms(self, tokens: int) -> float:
        return self._read(self._norm_curve, tokens)

    def _prefill_attention(self, pairs: float) -> float:
        if pairs <= 0:
            return 0.0
        length = (math.sqrt(8 * pairs + 1) - 1) / 2  # the one prompt with that many pairs
        return self._read(self._prefill_curve, length)

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
        return self._read(self._allreduce_curve, nbytes / self.hidden_bytes)


_LOG_GRID = np.log(GRID)
_LOG_BATCHES = np.log(DECODE_BATCHES)


def measured(pool: ir.Pool, *links) -> MeasuredCostModel:
    """The cost model ``pool.cost`` names (``table`` or ``calibrated``)."""
    path = pool.cost.path
    label = f"pool {pool.name}: cost {pool.cost.kind} {path}"
    if pool.cost.kind == "calibrated":
        return MeasuredCostModel(pool, CalibrationPredictor(_calibration(path)), label, *links)
    return MeasuredCostModel(pool, TablePredictor(_table(path)), label, *links)
