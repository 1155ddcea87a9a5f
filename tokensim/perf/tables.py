"""The tokensim operator-timing table: one CSV format for every measured source.

A table is a CSV file with a header row; lines that start with ``#`` before
the header are comments (where the timings came from, the environment they
were measured in). Each row is one operator call on one GPU:

========== ==============================================================
column     meaning
========== ==============================================================
gpu        catalogue GPU name (``H100_SXM``)
op         ``gemm`` | ``attention_prefill`` | ``attention_decode`` |
           ``elementwise`` | ``allreduce`` | ``send_recv``
kernel     a label: the measured operator (``mlp_up_proj``, ``nccl``); for
           elementwise ops the kind, ``norm`` | ``rope`` | ``act`` | ``add``,
           which the simulator prices (each is fitted on its own); other
           kinds (``layer_norm``, ``gelu``, ``add3`` from Vidur's phi-2
           block) are fitted too, but no simulated layer asks for them
model      the model the shape came from, or empty for a generic grid
tp         the tensor-parallel degree of that shape, or empty
dtype      ``bf16`` | ``fp16`` | ``fp8`` ... (the compute dtype)
kv_dtype   attention: the KV cache's dtype (``bf16``, ``fp8``); empty: 16-bit
m n k      gemm: ``m x k`` times ``k x n``; elementwise: ``m`` = tokens
batch      attention: sequences
length     attention_prefill: prompt tokens per sequence;
           attention_decode: context tokens per sequence
heads      attention: query heads on this GPU
kv_heads   attention: key/value heads on this GPU
head_dim   attention: size of one head
gpus       allreduce/send_recv: GPUs taking part
bytes      allreduce/send_recv: message size; elementwise: bytes moved
seconds    the measured time of one call (median where repeated)
========== ==============================================================

Cells an op does not use are empty. :data:`KEYS` lists the ones each op needs.
A file without the ``kv_dtype`` column (written before it existed) reads as
16-bit KV caches.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COLUMNS = (
    "gpu",
    "op",
    "kernel",
    "model",
    "tp",
    "dtype",
    "kv_dtype",
    "m",
    "n",
    "k",
    "batch",
    "length",
    "heads",
    "kv_heads",
    "head_dim",
    "gpus",
    "bytes",
    "seconds",
)
TEXT = ("gpu", "op", "kernel", "model", "dtype", "kv_dtype")
# columns a file may lack (empty in every row then)
OPTIONAL = ("kv_dtype",)
NUMBERS = tuple(c for c in COLUMNS if c not in TEXT)
KEYS = {
    "gemm": ("m", "n", "k"),
    "attention_prefill": ("batch", "length", "heads", "kv_heads", "head_dim"),
    "attention_decode": ("batch", "length", "heads", "kv_heads", "head_dim"),
    "elementwise": ("m", "bytes"),
    "allreduce": ("gpus", "bytes"),
    "send_recv": ("gpus", "bytes"),
}
OPS = tuple(KEYS)


class TableError(ValueError):
    """A table file that cannot be read; the message names the file and line."""


@dataclass
class Table:
    """Rows of operator timings as columns (text: object arrays; numbers: floats, NaN = empty)."""

    columns: dict[str, np.ndarray]
    comments: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.columns["seconds"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def where(self, mask: np.ndarray) -> Table:
        """The rows where ``mask`` is true."""
        return Table({c: v[mask] for c, v in self.columns.items()}, list(self.comments))

    def select(self, **equal: str) -> Table:
        """The rows whose text columns equal the values (``select(gpu="H100_SXM", op="gemm")``)."""
        mask = np.ones(len(self), bool)
        for name, value in equal.items():
            mask &= self.columns[name] == value
        return self.where(mask)

    def values(self, name: str) -> list[str]:
        """The distinct values of a text column, sorted."""
        return sorted(set(self.columns[name].tolist()))


def from_rows(rows: Iterable[dict], comments: Sequence[str] = ()) -> Table:
    """A :class:`Table` from dicts keyed by :data:`COLUMNS` (missing keys are empty)."""
    rows = list(rows)
    cols: dict[str, np.ndarray] = {}
    for c in TEXT:
        cols[c] = np.array([str(r.get(c) or "") for r in rows], dtype=object)
    for c in NUMBERS:
        cols[c] = np.array(
            [math.nan if r.get(c) in (None, "") else float(r[c]) for r in rows], dtype=float
        )
    return Table(cols, list(comments))


def concat(tables: Sequence[Table]) -> Table:
    """One table holding the rows of all ``tables`` (comments kept in order)."""
    if not tables:
        return from_rows([])
    cols = {c: np.concatenate([t.columns[c] for t in tables]) for c in COLUMNS}
    return Table(cols, [line for t in tables for line in t.comments])


def _fmt(value: float) -> str:
    if math.isnan(value):
        return ""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def write(table: Table, path: str | Path) -> None:
    """Write ``table`` to ``path`` (comments first, then the header and rows)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        for line in table.comments:
            f.write(f"# {line}\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        text = [table.columns[c] for c in COLUMNS]
        for i in range(len(table)):
            w.writerow(
                v[i] if c in TEXT else _fmt(v[i]) for c, v in zip(COLUMNS, text, strict=True)
            )


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` that is renamed onto it when the block ends well
    and removed when it does not: an interrupted write leaves the old file or none."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(table: Table, path: str | Path) -> None:
    """:func:`write` through :func:`replacing`: never half a table under ``path``."""
    with replacing(path) as tmp:
        write(table, tmp)


def read(path: str | Path) -> Table:
    """Read and check a table file; any problem raises :class:`TableError` at its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TableError(f"{path}: cannot read: {e}") from None
    lines = text.splitlines()
    comments, start = [], 0
    while start < len(lines) and lines[start].startswith("#"):
        comments.append(lines[start][1:].strip())
        start += 1
    if start >= len(lines):
        raise TableError(f"{path}: no header row (expected: {','.join(COLUMNS)})")
    reader = csv.reader(lines[start:])
    header = next(reader)
    missing = [c for c in COLUMNS if c not in header and c not in OPTIONAL]
    if missing:
        raise TableError(
            f"{path}:{start + 1}: header lacks {', '.join(missing)}; "
            f"a tokensim table has the columns {','.join(COLUMNS)}"
        )
    index = {c: header.index(c) for c in COLUMNS if c in header}
    rows = []
    for number, cells in enumerate(reader, start=start + 2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise TableError(f"{path}:{number}: expected {len(header)} values, found {len(cells)}")
        row = {c: cells[index[c]].strip() if c in index else "" for c in COLUMNS}
        _check(row, f"{path}:{number}")
        rows.append(row)
    if not rows:
        raise TableError(f"{path}: no rows after the header")
    return from_rows(rows, comments)


def _check(row: dict, where: str) -> None:
    op = row["op"]
    if op not in KEYS:
        raise TableError(f"{where}: unknown op {op!r}; one of {', '.join(OPS)}")
    if not row["gpu"]:
        raise TableError(f"{where}: the gpu column is empty")
    for c in NUMBERS:
        if row[c] == "":
            continue
        try:
            v = float(row[c])
        except ValueError:
            raise TableError(f"{where}: {c} {row[c]!r} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise TableError(f"{where}: {c} must be a finite number >= 0, not {row[c]}")
    for c in (*KEYS[op], "seconds"):
        if row[c] == "":
            raise TableError(f"{where}: a {op} row needs {c}")
    if float(row["seconds"]) <= 0:
        raise TableError(f"{where}: seconds must be above 0, not {row['seconds']}")
