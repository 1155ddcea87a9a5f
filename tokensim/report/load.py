"""Reading a result folder back: what ``tokensim report DIR`` renders a page from.

``load(dir)`` returns a :class:`Results` with the JSON files as dicts and the CSV files
as numpy columns. A missing or malformed file is a :class:`ResultError` that names the
file (and line) and says what was expected.
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tokensim.report.digits import as_written
from tokensim.report.files import REQUEST_COLUMNS, SERIES_COLUMNS, SESSION_COLUMNS, WORK_COLUMNS

TEXT_COLUMNS = {"id", "instance", "decode_instance", "link", "class"}
# the columns of timeseries.csv an instance's rows fill, and those a link's rows fill
INSTANCE_SERIES = SERIES_COLUMNS[1:10]
LINK_SERIES = ("time_s", *SERIES_COLUMNS[11:])


class ResultError(Exception):
    """A result folder that cannot be read: the message says which file and why."""


@dataclass
class Results:
    """A run's result folder, read back."""

    folder: Path
    metrics: dict
    run: dict
    graph: dict | None
    spec_text: str | None
    requests: dict[str, np.ndarray]
    # per instance: its columns of timeseries.csv (:data:`INSTANCE_SERIES`) and of
    # iterations.csv; per link, its columns of timeseries.csv (:data:`LINK_SERIES`)
    series: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    links: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    work: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def read_json(path: Path, required: bool = True) -> dict | None:
    """The JSON file at ``path`` (None if absent and not ``required``), or a ResultError."""
    if not path.exists():
        if required:
            raise ResultError(f"{path} is missing")
        return None
    try:
        return json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ResultError(f"{path} is not valid JSON ({err})") from None


_CHUNK = 8192  # rows read and converted together


def _table(
    path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """The CSV at ``path`` as columns: text for :data:`TEXT_COLUMNS`, else float (empty
    cells NaN). Its header must be ``columns``, then any of ``optional`` in that order.
    Read a block of rows at a time, so that a large file is never held as text and numbers
    at once."""
    if not path.exists():
        raise ResultError(f"{path} is missing")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is not None:
                extra = tuple(c for c in optional if c in header[len(columns) :])
                columns += extra if tuple(header[len(columns) :]) == extra else ()
            parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
            if header is None or tuple(header) != columns:
                got = ", ".join(header) if header is not None else "nothing"
                raise ResultError(f"{path}: expected the header {', '.join(columns)}; found {got}")
            first = 2  # the row number of the block's first row
            while block := list(itertools.islice(reader, _CHUNK)):
                for n, row in enumerate(block, start=first):
                    if len(row) != len(columns):
                        raise ResultError(
                            f"{path}:{n}: expected {len(columns)} values, found {len(row)} "
                            "(file cut short?)"
                        )
                for name, values in zip(columns, zip(*block, strict=True), strict=True):
                    parts[name].append(_column(path, name, values, first))
                first += len(block)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ResultError(f"{path} is not a CSV file ({err})") from None
    return {
        name: np.concatenate(got) if got else np.array((), dtype=_dtype(name))
        for name, got in parts.items()
    }


def _dtype(name: str):
    return object if name in TEXT_COLUMNS else np.float64


def _column(path: Path, name: str, values: tuple[str, ...], first: int) -> np.ndarray:
    """A block of column ``name``'s cells (its first in row ``first``) as an array."""
    if name in TEXT_COLUMNS:
        return np.array(values, dtype=object)
    try:
        try:
            return np.array(values, dtype=np.float64)
        except ValueError:  # empty cells: no value (a rejected request's times, ...)
            return np.array([v or "nan" for v in values], dtype=np.float64)
    except ValueError:
        bad = next(i for i, v in enumerate(values) if v and not _is_float(v))
        raise ResultError(
            f"{path}:{first + bad}: `{values[bad]}` in column {name} is not a number"
        ) from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# what the page reads from metrics.json: section -> its type, and for objects the
# fields it reads with theirs (numbers, lists, objects)
_NUM = (int, float)
_STATS = (dict, {"mean": _NUM, "p50": _NUM, "p90": _NUM, "p99": _NUM})
METRICS_SHAPE: dict = {
    "requests": (
        dict,
        {"total": int, "completed": int, "rejected": int, "preemptions": int,
         "rejected_why": list},
    ),
    "warnings": (list, {}),
    "ttft_s": _STATS, "tpot_s": _STATS, "e2e_s": _STATS, "queue_s": _STATS, "itl_s": _STATS,
    "throughput": (dict, {"duration_s": _NUM, "requests_per_s": _NUM}),
    "kv": (dict, {}),
    "pools": (dict, {}),
    "instances": (list, {}),
}  # fmt: skip


def _shaped(path: Path, data, shape: dict):
    """``data`` if it has the ``shape`` (:data:`METRICS_SHAPE`) that tokensim writes; else
    a ResultError naming the file and the first field that differs. A statistic may be
    null (no request to take it over)."""
    if not isinstance(data, dict):
        raise ResultError(f"{path}: expected a JSON object, found {_kind(data)}")
    for key, (kind, fields) in shape.items():
        value = data.get(key)
        if not isinstance(value, kind):
            raise ResultError(f"{path}: `{key}` is {_kind(value)}, not what tokensim run writes")
        for name, want in fields.items():
            got = value.get(name)
            if got is None and want is _NUM:
                continue  # a statistic over no request
            if not isinstance(got, want) or isinstance(got, bool):
                raise ResultError(
                    f"{path}: `{key}.{name}` is {_kind(got)}, not what tokensim run writes"
                )
    return data


def _intervals_shaped(path: Path, data: dict) -> dict:
    """``data`` (metrics.json) if its ``intervals``, when it has them, are what ``tokensim
    run --seeds`` writes; else a ResultError naming the file."""
    entry = data.get("intervals")
    if entry is None:
        return data
    figures = entry.get("figures") if isinstance(entry, dict) else None
    ok = (
        isinstance(figures, dict)
        and isinstance(entry.get("seeds"), list)
        and len(entry["seeds"]) >= 2
        and isinstance(entry.get("confidence"), _NUM)
        and all(
            isinstance(f, dict)
            and isinstance(f.get("path"), str)
            and isinstance(f.get("unit"), str)
            and all(
                isinstance(f.get(k), _NUM) and not isinstance(f.get(k), bool)
                for k in ("mean", "low", "high", "min", "max")
            )
            for f in figures.values()
        )
        and all(
            isinstance(b, dict)
            and all(isinstance(b.get(k), list) for k in ("levels", "low", "high"))
            and len(b["levels"]) == len(b["low"]) == len(b["high"])
            and all(
                isinstance(v, _NUM) and not isinstance(v, bool)
                for k in ("levels", "low", "high")
                for v in b[k]
            )
            for b in (entry.get("cdf_spread") or {}).values()
        )
        and _timeline_shaped(entry.get("timeline_spread") or {})
    )
    if not ok:
        raise ResultError(f"{path}: `intervals` is not what tokensim run --seeds writes")
    return data


def _timeline_shaped(spread: dict) -> bool:
    """Whether ``intervals.timeline_spread`` is a bin width and low/high lists of numbers
    (or empty: the runs' bins differed)."""
    if not spread:
        return True
    width = spread.get("bin_s")
    if not isinstance(width, _NUM) or isinstance(width, bool) or not width > 0:
        return False
    for key in ("completed_per_s", "output_tokens_per_s"):
        band = spread.get(key)
        if not isinstance(band, dict):
            return False
        low, high = band.get("low"), band.get("high")
        if not (isinstance(low, list) and isinstance(high, list) and len(low) == len(high)):
            return False
        if not all(isinstance(v, _NUM) and not isinstance(v, bool) for v in low + high):
            return False
    return True


def _kind(value) -> str:
    if value is None:
        return "missing or null"
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), "a number"
    )


def _split(table: dict[str, np.ndarray], key: str, names) -> dict[str, dict[str, np.ndarray]]:
    """Rows of ``table`` grouped by the value of column ``key`` (in ``names`` order), each
    group in the table's order."""
    keys = table[key].astype(str)
    order = np.argsort(keys, kind="stable")  # one sort, not a pass per name
    ranked = keys[order]
    out = {}
    for name in names:
        lo, hi = np.searchsorted(ranked, name, "left"), np.searchsorted(ranked, name, "right")
        rows = order[lo:hi]
        out[name] = {c: v[rows] for c, v in table.items() if c != key}
    return out


def _head(folder: Path) -> dict:
    """The folder's small files, as :class:`Results` holds them."""
    spec = folder / "spec.tsim"
    return {
        "folder": folder,
        "metrics": _intervals_shaped(
            folder / "metrics.json",
            _shaped(folder / "metrics.json", read_json(folder / "metrics.json"), METRICS_SHAPE),
        ),
        "run": _shaped(folder / "run.json", read_json(folder / "run.json"), {}),
        "graph": read_json(folder / "graph.json", required=False),
        "spec_text": spec.read_text("utf-8") if spec.exists() else None,
    }


def load(folder: str | Path) -> Results:
    """Read the result folder ``folder`` written by ``tokensim run``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultError(f"{folder} is not a folder")
    if not (folder / "metrics.json").exists():
        raise ResultError(f"{folder} has no metrics.json: not a result folder of `tokensim run`")
    head = _head(folder)
    metrics = head["metrics"]
    requests = _table(folder / "requests.csv", REQUEST_COLUMNS, SESSION_COLUMNS)
    series = _table(folder / "timeseries.csv", SERIES_COLUMNS)
    work = _table(folder / "iterations.csv", WORK_COLUMNS)
    names = [i["name"] for i in metrics.get("instances", [])]
    inst, link = series["instance"] != "", series["link"] != ""
    inst_rows = {c: series[c][inst] for c in ("instance", *INSTANCE_SERIES)}
    link_rows = {c: series[c][link] for c in ("link", *LINK_SERIES)}
    links = list(dict.fromkeys(link_rows["link"]))
    return Results(
        **head,
        requests=requests,
        series=_split(inst_rows, "instance", names),
        links=_split(link_rows, "link", links),
        work=_split(work, "instance", names),
    )


def from_result(folder: str | Path, result) -> Results:
    """What :func:`load` would read back from ``folder``, just written from ``result`` by
    :func:`tokensim.report.write`, without reading its CSV files: the columns are made
    from the run in memory, every number as its cell reads back
    (:func:`tokensim.report.digits.as_written`), so the page drawn from them is the page
    ``tokensim report`` draws from the files. The JSON files and the spec are read."""
    from tokensim.metrics import per_request

    folder = Path(folder)
    head = _head(folder)
    metrics = head["metrics"]
    columns = {**result.requests, **per_request(result)}
    requests = {}
    for name in REQUEST_COLUMNS + tuple(c for c in SESSION_COLUMNS if c in columns):
        col = columns[name]
        if name == "id":
            requests[name] = np.array([str(i) for i in col.tolist()], dtype=object)
        elif name in TEXT_COLUMNS:
            requests[name] = np.array(col, dtype=object)
        elif col.dtype.kind == "f":
            requests[name] = as_written(col)
        else:  # counts and flags: exact as floats
            requests[name] = col.astype(np.float64)
    series, work = {}, {}
    for inst in result.instances:
        rows, cap = inst.series, float(inst.kv_capacity_blocks)
        t, running, waiting, used, tokens, cached, swapped = (
            np.trunc(rows[:, j]) if j else as_written(rows[:, 0]) for j in range(7)
        )
        series[inst.name] = dict(
            zip(
                INSTANCE_SERIES,
                (t, running, waiting, used, np.full(len(t), cap), tokens, cached,
                 cap - used - cached, swapped),
                strict=True,
            )
        )  # fmt: skip
        w = inst.work
        work[inst.name] = {
            "start_s": as_written(w[:, 0]),
            "end_s": as_written(w[:, 1]),
            "prefill_tokens": np.trunc(w[:, 2]),
            "decode_seqs": np.trunc(w[:, 3]),
            "steps": np.trunc(w[:, 4]),
        }
    names = [i["name"] for i in metrics.get("instances", [])]
    links = {
        name: dict(
            zip(
                LINK_SERIES,
                (
                    as_written(rows[:, 0]),
                    np.trunc(rows[:, 1]),
                    as_written(rows[:, 2]),
                    as_written(rows[:, 3]),
                ),
                strict=True,
            )
        )  # fmt: skip
        for name, rows in result.links.items()
        if len(rows)
    }
    return Results(
        **head,
        requests=requests,
        series={n: series[n] for n in names},
        links=links,
        work={n: work[n] for n in names},
    )
