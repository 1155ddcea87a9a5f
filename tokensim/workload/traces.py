"""Request traces: read a file of recorded requests into :class:`Requests`.

Formats (``trace "file" { format NAME }``; ``auto`` tells them apart by the
first line):

- ``tokensim``: CSV with the header ``arrival_s,prompt_tokens,output_tokens``
  and optionally ``priority``, ``prefix_hashes`` (space-separated ints),
  ``prefix_block_tokens``, ``session`` and ``think_s``; or JSON lines with the
  same keys (``"prefix_hashes": [..]``). Arrival times in seconds; lengths in
  tokens; ``prefix_block_tokens`` is required wherever ``prefix_hashes`` is
  given. Lines with the same ``session`` are the turns of one conversation, in
  file order: its first line's time starts it, and each later turn is sent its
  ``think_s`` after the answer before it (see :class:`Requests`).
- ``azure``: the Azure LLM inference trace 2023 (``TIMESTAMP,ContextTokens,
  GeneratedTokens``; times like ``2023-11-16 18:15:46.6805900``), converted to
  seconds after the first request.
- ``mooncake``: JSON lines ``{timestamp (ms), input_length, output_length,
  hash_ids}``; each hash id names a 512-token prefix block.
- ``vidur``: Vidur's processed traces (``num_prefill_tokens,num_decode_tokens``
  and optionally ``arrived_at`` in seconds; other columns are ignored). Without
  ``arrived_at`` the result has ``has_arrivals`` False and all-zero times, and
  the workload must give ``arrivals``.

Every problem in the file is a :class:`TraceError` with located diagnostics
(the trace path, the 1-based line), at most :data:`MAX_ERRORS` of them.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import re
from datetime import date
from pathlib import Path

import numpy as np

from tokensim.lang import limits
from tokensim.lang.diagnostics import CompileError, Diagnostic, Note, did_you_mean, one_of
from tokensim.lang.source import SourceMap, Span
from tokensim.workload.requests import Requests

MAX_ERRORS = 20
MOONCAKE_BLOCK_TOKENS = 512
FORMATS = ("tokensim", "azure", "mooncake", "vidur")

# Fields of a request, and the name each format gives them (None: not in that format).
_TOKENSIM = {
    "arrival": "arrival_s",
    "prompt": "prompt_tokens",
    "output": "output_tokens",
    "priority": "priority",
    "hashes": "prefix_hashes",
    "block": "prefix_block_tokens",
    "session": "session",
    "think": "think_s",
}
_AZURE = {"arrival": "TIMESTAMP", "prompt": "ContextTokens", "output": "GeneratedTokens"}
_VIDUR = {"arrival": "arrived_at", "prompt": "num_prefill_tokens", "output": "num_decode_tokens"}
_MOONCAKE = {
    "arrival": "timestamp",
    "prompt": "input_length",
    "output": "output_length",
    "hashes": "hash_ids",
}
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)")


class TraceError(Exception):
    """A trace file that cannot be used, with one located diagnostic per problem.

    ``lines`` keeps the text of each offending line (by 1-based number) so the
    rendered error can show it.
    """

    def __init__(self, diagnostics: list[Diagnostic], lines: dict[int, str] | None = None):
        self.diagnostics = list(diagnostics)
        self.lines = dict(lines or {})
        super().__init__("\n".join(d.message for d in self.diagnostics))

    def with_note(self, note: Note) -> TraceError:
        """The same error with ``note`` added to every diagnostic."""
        diagnostics = [
            Diagnostic(d.message, d.span, d.notes + (note,), d.help, d.severity)
            for d in self.diagnostics
        ]
        return TraceError(diagnostics, self.lines)

    def to_compile_error(self, sources: SourceMap | None = None) -> CompileError:
        """A :class:`CompileError` rendered like any other (``sources``: the spec's files)."""
        sources = sources or SourceMap()
        files = {d.span.file for d in self.diagnostics if d.span is not None}
        if self.lines and len(files) == 1:
            last = max(self.lines)
            text = "\n".join(self.lines.get(i, "") for i in range(1, last + 1))
            sources.add(files.pop(), text)
        return CompileError(self.diagnostics, sources)


class _Bad(Exception):
    """One value is wrong; the message names it."""


class _Problems:
    """Collects located diagnostics for one file; raises once there are too many."""

    def __init__(self, path: str):
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self.lines: dict[int, str] = {}

    def add(self, number: int, text: str, message: str, help: str | None = None) -> None:
        span = Span(self.path, number, 1, number, len(text) + 1)
        self.diagnostics.append(Diagnostic(f"trace line {number}: {message}", span, help=help))
        self.lines[number] = text
        if len(self.diagnostics) >= MAX_ERRORS:
            note = Note(f"stopped after {MAX_ERRORS} errors")
            raise TraceError(self.diagnostics, self.lines).with_note(note)

    def fail(self, number: int, text: str, message: str, help: str | None = None) -> TraceError:
        self.add(number, text, message, help)
        return TraceError(self.diagnostics, self.lines)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise TraceError(self.diagnostics, self.lines)


def read_trace(path: str | Path, fmt: str = "auto") -> Requests:
    """Read the trace at ``path`` in format ``fmt`` (``auto`` or one of :data:`FORMATS`).

    Returns the requests in file order: arrival times in seconds (Azure:
    after the first request; others: as written, converted from ms for
    Mooncake), lengths in tokens. Raises :class:`TraceError` for a missing,
    unreadable or malformed file.
    """
    name = str(path)
    lines = _read_lines(name)
    first = next(((i, t) for i, t in enumerate(lines, 1) if t.strip()), None)
    if first is None:
        raise TraceError([Diagnostic(f"trace file `{name}` is empty", None)])
    if fmt == "auto":
        fmt = _detect(name, *first)
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}")
    problems = _Problems(name)
    is_json = first[1].lstrip().startswith("{")
    if fmt == "mooncake" or (fmt == "tokensim" and is_json):
        rows = _json_rows(lines, fmt, problems)
    else:
        rows = _csv_rows(lines, first[0], fmt, problems)
    if not rows and not problems.diagnostics:
        raise TraceError([Diagnostic(f"trace file `{name}` has no requests", None)])
    if len(rows) > limits.REQUESTS:
        message = (
            f"trace file `{name}` has {len(rows):,} requests; tokensim simulates at most "
            f"{limits.REQUESTS:,}"
        )
        raise TraceError([Diagnostic(message, None, help="`requests N` takes the first N")])
    return _build(rows, fmt, problems)


def _read_lines(name: str) -> list[str]:
    try:
        with open(name, encoding="utf-8-sig", newline="") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        message = f"trace file `{name}` not found"
    except IsADirectoryError:
        message = f"trace file `{name}` is a folder, not a file"
    except (OSError, UnicodeDecodeError) as err:
        message = f"trace file `{name}` cannot be read: {err}"
    raise TraceError([Diagnostic(message, None)])


def _detect(name: str, number: int, text: str) -> str:
    """The format of a file whose first non-blank line is ``text``."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            keys = set(json.loads(stripped))
        except (ValueError, TypeError, RecursionError):
            keys = set()
        if "input_length" in keys or "hash_ids" in keys:
            return "mooncake"
        if "prompt_tokens" in keys:
            return "tokensim"
    else:
        try:
            header = {c.strip() for c in next(csv.reader([stripped]))}
        except csv.Error:
            header = set()
        if "ContextTokens" in header:
            return "azure"
        if "num_prefill_tokens" in header:
            return "vidur"
        if "prompt_tokens" in header:
            return "tokensim"
    problems = _Problems(name)
    raise problems.fail(
        number,
        text,
        f"cannot tell the trace format from {_quote(stripped)}",
        help=f'name it: `trace "..." {{ format NAME }}` with NAME {one_of(FORMATS)}',
    )


# A row: (line number, line text, {field: raw value}); raw values are str (CSV) or JSON values.
_Row = tuple[int, str, dict]


def _csv_rows(lines: list[str], header_at: int, fmt: str, problems: _Problems) -> list[_Row]:
    names = {"tokensim": _TOKENSIM, "azure": _AZURE, "vidur": _VIDUR}[fmt]
    text = lines[header_at - 1]
    try:
        header = [c.strip() for c in next(csv.reader([text]))]
    except csv.Error as err:
        raise problems.fail(header_at, text[:200], f"cannot be read as CSV: {err}") from None
    where = _header_fields(header, fmt, names, header_at, text, problems)
    rows: list[_Row] = []
    width = len(header)
    body = lines[header_at:]
    reader = csv.reader(body)
    while True:
        before = reader.line_num
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:  # a field beyond the csv module's limit (131,072 characters)
            number = header_at + reader.line_num
            raise problems.fail(
                number,
                body[reader.line_num - 1][:200],
                f"cannot be read as CSV: {err}",
                help="write long prefix-id lists as JSON lines (a .jsonl trace)",
            ) from None
        number = header_at + before + 1
        line = body[before]
        if reader.line_num - before > 1:  # a quote left open joined the lines after it
            raise problems.fail(
                number, line[:200], "a quote opened on this line is not closed on it"
            )
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) != width:
            problems.add(number, line, f"expected {width} values, found {len(cells)}")
            continue
        rows.append((number, line, {field: cells[i] for field, i in where.items()}))
    return rows


def _header_fields(header, fmt, names, number, text, problems) -> dict[str, int]:
    """Map each field to its column index, or raise for a wrong header."""
    by_column = {column: field for field, column in names.items()}
    required = {
        "tokensim": ("arrival", "prompt", "output"),
        "azure": ("arrival", "prompt", "output"),
        "vidur": ("prompt", "output"),
    }[fmt]
    expected = ",".join(names[f] for f in required)
    if fmt == "tokensim":
        for column in header:
            if column not in by_column:
                problems.add(
                    number,
                    text,
                    f"unknown column `{column}` in a tokensim trace",
                    help=did_you_mean(column, by_column) or f"columns: {one_of(by_column)}",
                )
    if fmt == "azure" and header != [names[f] for f in required]:
        raise problems.fail(number, text, f'expected the azure header "{expected}"')
    missing = [names[f] for f in required if names[f] not in header]
    if missing:
        problems.add(
            number,
            text,
            f"the {fmt} header lacks {one_of(missing, word='and', sort=False)}",
            help=f'a {fmt} trace starts with "{expected}"',
        )
    if len(set(header)) != len(header):
        problems.add(number, text, "a column is named twice in the header")
    problems.raise_if_any()
    return {by_column[c]: i for i, c in enumerate(header) if c in by_column}


def _json_rows(lines: list[str], fmt: str, problems: _Problems) -> list[_Row]:
    names = _MOONCAKE if fmt == "mooncake" else _TOKENSIM
    by_key = {key: field for field, key in names.items()}
    required = [names[f] for f in ("arrival", "prompt", "output")]
    rows: list[_Row] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except RecursionError:
            problems.add(number, line[:200], "JSON nested too deeply to read")
            continue
        except ValueError as err:
            msg = getattr(err, "msg", str(err))
            col = getattr(err, "colno", None)
            problems.add(
                number, line, f"not valid JSON: {msg}" + (f" (column {col})" if col else "")
            )
            continue
        if not isinstance(obj, dict):
            problems.add(number, line, "expected a JSON object `{...}`")
            continue
        missing = [k for k in required if k not in obj]
        if missing:
            problems.add(number, line, f"missing {one_of(missing, word='and', sort=False)}")
            continue
        if fmt == "tokensim":
            unknown = [k for k in obj if k not in by_key]
            for key in unknown:
                problems.add(
                    number,
                    line,
                    f"unknown key `{key}` in a tokensim trace",
                    help=did_you_mean(key, by_key) or f"keys: {one_of(by_key)}",
                )
            if unknown:
                continue
        rows.append((number, line, {by_key[k]: v for k, v in obj.items() if k in by_key}))
    return rows


def _build(rows: list[_Row], fmt: str, problems: _Problems) -> Requests:
    """Convert raw rows to :class:`Requests`, collecting every bad value."""
    names = {"tokensim": _TOKENSIM, "azure": _AZURE, "vidur": _VIDUR, "mooncake": _MOONCAKE}[fmt]
    parse_time = {"azure": _azure_time, "mooncake": _milliseconds}.get(fmt, _seconds)
    has_arrivals = bool(rows) and "arrival" in rows[0][2]
    n = len(rows)
    days, arrival = [0] * n, [0.0] * n  # Azure: the date's ordinal, seconds in the day
    prompt, output, priority = [1] * n, [1] * n, [0] * n
    hashes: list[tuple[int, ...]] = [()] * n
    session: list[int | None] = [None] * n
    think = [0.0] * n
    block = MOONCAKE_BLOCK_TOKENS if fmt == "mooncake" else None
    block_line = None
    for i, (number, line, raw) in enumerate(rows):
        try:
            if has_arrivals:
                days[i], arrival[i] = parse_time(raw["arrival"], names["arrival"])
            prompt[i] = _whole(raw["prompt"], names["prompt"], 1, limits.TOKENS)
            output[i] = _whole(raw["output"], names["output"], 1, limits.TOKENS)
            if len(raw) > 3:  # priority or prefix ids
                if raw.get("priority") not in (None, ""):
                    priority[i] = _whole(raw["priority"], names["priority"], None)
                if raw.get("hashes") not in (None, ""):
                    hashes[i] = _ids(raw["hashes"], names["hashes"])
                    if fmt == "tokensim":
                        size = _block_size(raw.get("block"), block, block_line)
                        block, block_line = size, number
                if raw.get("session") not in (None, ""):
                    session[i] = _whole(raw["session"], "session", None)
                if raw.get("think") not in (None, ""):
                    think[i] = _number(raw["think"], "think_s")
        except _Bad as err:
            problems.add(number, line, str(err))
    problems.raise_if_any()
    times = np.array(arrival, dtype=np.float64)
    if fmt == "azure" and n:
        times = (np.array(days, dtype=np.int64) - days[0]) * 86400.0 + times
        times = times - times[0]
    for i in np.flatnonzero(np.diff(times) < 0) + 1:
        number, line, raw = rows[i]
        problems.add(
            number,
            line,
            f"{names['arrival']} goes back in time: {_quote(raw['arrival'])} is before "
            f"{_quote(rows[i - 1][2]['arrival'])} on line {rows[i - 1][0]}",
            help="a trace must be in arrival order",
        )
    problems.raise_if_any()
    any_hashes = any(hashes)
    out = Requests(
        times,
        np.array(prompt, dtype=np.int64),
        np.array(output, dtype=np.int64),
        np.array(priority, dtype=np.int64),
        tuple(hashes) if any_hashes else None,
        block if any_hashes else 0,
        has_arrivals,
    )
    if any(s is not None for s in session):
        out = _conversations(out, session, think)
    return out


def _conversations(trace: Requests, session: list, think: list[float]) -> Requests:
    """A trace's lines as conversations: the lines of one ``session`` (each line without
    one is a conversation of its own) become consecutive turns in file order, the
    conversations ordered by their first line's time, which all their turns keep; a first
    turn's ``think_s`` is 0."""
    first: dict = {}
    for i, s in enumerate(session):
        first.setdefault(("line", i) if s is None else s, i)
    keys = [("line", i) if s is None else s for i, s in enumerate(session)]
    rank = {key: k for k, key in enumerate(sorted(first, key=first.__getitem__))}
    order = sorted(range(len(keys)), key=lambda i: (rank[keys[i]], i))
    ids = np.array([rank[keys[i]] for i in order], dtype=np.int64)
    start = trace.arrival_s[[first[keys[i]] for i in order]]
    pause = np.array([think[i] for i in order], dtype=np.float64)
    pause[np.diff(ids, prepend=-1) != 0] = 0.0
    hashes = trace.prefix_hashes
    return Requests(
        np.ascontiguousarray(start),
        trace.prompt_tokens[order],
        trace.output_tokens[order],
        trace.priority[order],
        tuple(hashes[i] for i in order) if hashes is not None else None,
        trace.prefix_block_tokens,
        trace.has_arrivals,
        ids,
        pause,
    )


def _block_size(raw, block: int | None, block_line: int | None) -> int:
    """A tokensim line's ``prefix_block_tokens``: given, and equal on every line."""
    if raw in (None, ""):
        raise _Bad("prefix_hashes needs prefix_block_tokens (tokens per id)")
    size = _whole(raw, "prefix_block_tokens", 1)
    if block is not None and size != block:
        raise _Bad(f"prefix_block_tokens is {size} here but {block} on line {block_line}")
    return size


def _quote(raw) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return '"' + (text if len(text) <= 40 else text[:37] + "...") + '"'


def _whole(raw, name: str, minimum: int | None, maximum: int = limits.WHOLE) -> int:
    """``raw`` as an int (a numeral, or a JSON integer), at least ``minimum`` and at most
    ``maximum`` (tokensim's limits: lang/limits.py)."""
    value = None
    if isinstance(raw, str):
        try:
            value = int(raw)
        except ValueError:
            try:
                number = float(raw)
                value = int(number) if number.is_integer() else None
            except ValueError:
                value = None
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    if value is None:
        raise _Bad(f"{name} is not a whole number: {_quote(raw)}")
    if minimum is not None and value < minimum:
        raise _Bad(f"{name} must be at least {minimum}, not {value}")
    if abs(value) > maximum:
        raise _Bad(f"{name} {_quote(raw)} is beyond what tokensim simulates: at most {maximum:,}")
    return value


def _number(raw, name: str) -> float:
    value = None
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    if value is None or not math.isfinite(value):
        raise _Bad(f"{name} is not a number: {_quote(raw)}")
    if value < 0:
        raise _Bad(f"{name} must be at least 0, not {_quote(raw)[1:-1]}")
    return value


def _seconds(raw, name: str) -> tuple[int, float]:
    return 0, _number(raw, name)


def _milliseconds(raw, name: str) -> tuple[int, float]:
    return 0, _number(raw, name) / 1000.0


def _azure_time(raw, name: str) -> tuple[int, float]:
    """The date's ordinal and the seconds since that midnight."""
    match = _TIMESTAMP.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        raise _Bad(f"{name} is not a time like 2023-11-16 18:15:46.6805900: {_quote(raw)}")
    day, hour, minute, second = match.groups()
    ordinal = _ordinal(day)
    hour, minute, second = int(hour), int(minute), float(second)
    if ordinal is None or hour > 23 or minute > 59 or second >= 61:
        raise _Bad(f"{name} is not a valid date and time: {_quote(raw)}")
    return ordinal, hour * 3600 + minute * 60 + second


@functools.lru_cache(maxsize=64)
def _ordinal(day: str) -> int | None:
    """The proleptic Gregorian ordinal of ``YYYY-MM-DD`` (None if no such date)."""
    try:
        return date.fromisoformat(day).toordinal()
    except ValueError:
        return None


_ID_MAX = 2**63 - 1  # prefix ids are 64-bit hashes


def _ids(raw, name: str) -> tuple[int, ...]:
    """Prefix block ids: a JSON list or space-separated numerals, each a whole number >= 0."""
    items = raw.split() if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise _Bad(f"{name} is not a list of ids: {_quote(raw)}")
    if not items:
        return ()
    if set(map(type, items)) == {int} and min(items) >= 0 and max(items) <= _ID_MAX:
        return tuple(items)  # the common case, at C speed
    return tuple(_whole(item, f"an id in {name}", 0, _ID_MAX) for item in items)


def write_trace(requests: Requests, path: str | Path) -> None:
    """Write ``requests`` as a tokensim trace: JSON lines if ``path`` ends in ``.jsonl``,
    else CSV. Times in seconds (written exactly), lengths in tokens; reading the file
    back gives equal requests."""
    hashes = requests.prefix_hashes
    block = requests.prefix_block_tokens
    columns = zip(
        requests.arrival_s.tolist(),
        requests.prompt_tokens.tolist(),
        requests.output_tokens.tolist(),
        requests.priority.tolist(),
        strict=True,
    )
    out = []
    sessions = requests.session
    if str(path).endswith(".jsonl"):
        for i, (t, p, o, pr) in enumerate(columns):
            obj = {"arrival_s": t, "prompt_tokens": p, "output_tokens": o, "priority": pr}
            if hashes is not None and hashes[i]:
                obj.update(prefix_hashes=list(hashes[i]), prefix_block_tokens=block)
            if sessions is not None:
                obj.update(session=int(sessions[i]), think_s=float(requests.think_s[i]))
            out.append(json.dumps(obj))
    else:
        header = "arrival_s,prompt_tokens,output_tokens,priority"
        header += ",prefix_hashes,prefix_block_tokens" if hashes is not None else ""
        out.append(header + (",session,think_s" if sessions is not None else ""))
        for i, (t, p, o, pr) in enumerate(columns):
            row = f"{t!r},{p},{o},{pr}"
            if hashes is not None:
                ids = " ".join(map(str, hashes[i]))
                row += f",{ids},{block if ids else ''}"
            if sessions is not None:
                row += f",{int(sessions[i])},{float(requests.think_s[i])!r}"
            out.append(row)
    Path(path).write_text("\n".join(out) + "\n", "utf-8")
