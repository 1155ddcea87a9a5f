"""Writing a run's result directory."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from tokensim.metrics import bench, per_request, summarize

REQUEST_COLUMNS = (
    "id",
    "instance",
    "decode_instance",
    "arrival_s",
    "prompt_tokens",
    "output_tokens",
    "cached_tokens",
    "enqueued_s",
    "admitted_s",
    "first_token_s",
    "finish_s",
    "queue_s",
    "prefill_s",
    "transfer_wait_s",
    "transfer_s",
    "decode_s",
    "preempted_s",
    "preemptions",
    "ttft_s",
    "tpot_s",
    "e2e_s",
    "rejected",
)
# with `sessions`: the conversation, and its turn; with classes: the request's class
SESSION_COLUMNS = ("session", "turn", "class")
SERIES_COLUMNS = (
    "instance",
    "time_s",
    "running",
    "waiting",
    "kv_used_blocks",
    "kv_capacity_blocks",
    "batch_tokens",
    "kv_cached_blocks",
    "kv_free_blocks",
    "kv_swapped_blocks",
    "link",
    "flows",
    "bytes_in_flight",
    "utilization",
)
WORK_COLUMNS = ("instance", "start_s", "end_s", "prefill_tokens", "decode_seqs", "steps")


def _plain(name: str) -> str:
    """``name`` as a CSV cell that needs no quoting (instance and link names never do)."""
    if any(c in name for c in ',"\r\n'):
        raise ValueError(f"a name that needs CSV quoting: {name!r}")
    return name


def _float(x: float) -> str:
    """:func:`_num` of a Python float, without the type tests (hot loops)."""
    return "" if x != x or x == -1.0 else f"{x:.9g}"


def _num(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "1" if x else "0"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x) or x == -1.0:  # -1: a time that never came (rejected)
            return ""
        return f"{x:.9g}"
    return str(x)


def _clean(value):
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else float(f"{value:.9g}")
    if isinstance(value, np.integer):
        return int(value)
    return value


_CHUNK = 8192  # rows formatted together


def _cells(values) -> list[str]:
    """:func:`_num` of every value of a column, formatted a column at a time."""
    a = np.asarray(values)
    if a.dtype == np.bool_:
        return ["1" if v else "0" for v in a.tolist()]
    if a.dtype.kind in "iu":
        return list(map(str, a.tolist()))
    if a.dtype.kind == "f":
        cells = list(map("{:.9g}".format, a.tolist()))
        for i in np.flatnonzero(np.isnan(a) | (a == -1.0)).tolist():
            cells[i] = ""  # as _float: NaN, or -1 (a time that never came), is left empty
        return cells
    return [v if type(v) is str else _num(v) for v in values]  # names as they are


def write_requests(result, f) -> None:
    """requests.csv into the open file ``f``: one row per request with every timestamp
    and the latency breakdown."""
    r = result.requests
    derived = per_request(result)
    columns = {**r, **derived}
    names = REQUEST_COLUMNS + tuple(c for c in SESSION_COLUMNS if c in r)
    w = csv.writer(f, lineterminator="\n")
    w.writerow(names)
    cols = [np.asarray(columns[c]) for c in names]
    text = [k for k, c in enumerate(cols) if c.dtype.kind in "OSU"]  # numbers need no quotes
    for lo in range(0, len(r["id"]), _CHUNK):  # a block of rows at a time: all would not fit
        cells = [_cells(c[lo : lo + _CHUNK]) for c in cols]
        rows = zip(*cells, strict=True)
        if all(_plain_cells(cells[k]) for k in text):  # joined as csv.writer would, faster
            f.write("\n".join(map(",".join, rows)))
            f.write("\n")
        else:
            w.writerows(rows)


def _plain_cells(cells: list[str]) -> bool:
    """Whether no cell of a text column needs CSV quoting."""
    joined = "".join(cells)
    return not ('"' in joined or "," in joined or "\n" in joined or "\r" in joined)


def write_timeseries(result, f) -> None:
    """timeseries.csv into ``f``: per instance and iteration start, running, waiting, KV
    blocks used, batch tokens, KV blocks held by the prefix cache, free, and swapped out
    to the host. Then per directed link that carried KV, at every change: flows, bytes in
    flight and utilization (those rows leave the instance columns empty, and instance rows
    the link columns)."""
    csv.writer(f, lineterminator="\n").writerow(SERIES_COLUMNS)
    # formatted as csv.writer would (names are checked to need no quoting), a block of
    # rows at a time; times and utilizations are never NaN nor -1, so they need no _float
    for inst in result.instances:
        name, cap = _plain(inst.name), inst.kv_capacity_blocks
        for lo in range(0, len(inst.series), _CHUNK):
            f.write(
                "".join(
                    f"{name},{t:.9g},{int(running)},{int(waiting)},{int(used)},{cap},"
                    f"{int(tokens)},{int(cached)},{cap - int(used) - int(cached)},"
                    f"{int(swapped)},,,,\n"
                    for t, running, waiting, used, tokens, cached, swapped in inst.series[
                        lo : lo + _CHUNK
                    ].tolist()
                )
            )
    for link, rows in result.links.items():
        link = _plain(link)
        for lo in range(0, len(rows), _CHUNK):
            f.write(
                "".join(
                    f",{t:.9g},,,,,,,,,{link},{int(flows)},{_float(in_flight)},{used:.9g}\n"
                    for t, flows, in_flight, used in rows[lo : lo + _CHUNK].tolist()
                )
            )


def write_iterations(result, f) -> None:
    """iterations.csv into ``f``: per instance, one row per iteration or run of decode
    steps: when it ran, the prompt tokens it prefilled, the sequences it decoded and how
    many steps (1 unless a run)."""
    csv.writer(f, lineterminator="\n").writerow(WORK_COLUMNS)
    # as write_timeseries: times need no _float
    for inst in result.instances:
        name = _plain(inst.name)
        for lo in range(0, len(inst.work), _CHUNK):
            f.write(
                "".join(
                    f"{name},{start:.9g},{end:.9g},{int(prefill)},{int(decode)},{int(steps)}\n"
                    for start, end, prefill, decode, steps in inst.work[lo : lo + _CHUNK].tolist()
                )
            )


def write_transitions(result, f) -> None:
    """transitions.csv into ``f``: every transition of every request: request, time,
    event, value (docs/metrics.md gives each event's value), in request then time order."""
    w = csv.writer(f, lineterminator="\n")
    w.writerow(("id", "time_s", "event", "value"))
    for rid, log in enumerate(result.transitions):
        for time_s, event, value in log:
            w.writerow((rid, _num(time_s), event, value))


def write(
    result,
    out_dir: str | Path,
    metrics: dict | None = None,
    transitions: bool = False,
    graph=None,
    spec_text: str | None = None,
    overrides: list[str] = (),
) -> dict:
    """Write the files of ``result`` into ``out_dir`` (created); return the metrics.

    ``transitions`` adds transitions.csv, every request's state changes. With ``graph``
    (the compiled graph) the folder also gets what its page needs: graph.json, run.json
    (the run described) and ``spec_text`` as spec.tsim. A report.html of an earlier run
    is removed first: the page is written after the data, from it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").unlink(missing_ok=True)
    metrics = metrics if metrics is not None else summarize(result)
    # the CSVs are streamed into their files, a block of rows at a time: never held whole
    files = {
        "metrics.json": json.dumps(_clean(metrics), indent=2) + "\n",
        "bench.json": bench_json(result, metrics),
        "requests.csv": lambda f: write_requests(result, f),
        "timeseries.csv": lambda f: write_timeseries(result, f),
        "iterations.csv": lambda f: write_iterations(result, f),
    }
    if transitions:
        files["transitions.csv"] = lambda f: write_transitions(result, f)
    if graph is not None:
        total = metrics["requests"]["total"]
        files.update(described(graph, result.seed, spec_text, overrides, total))
    publish(out, files)
    return metrics


def bench_json(result, metrics: dict) -> str:
    """bench.json (:func:`tokensim.metrics.bench`): the figures one per line, the
    per-request arrays one line each (a million requests would otherwise be three
    million lines, and seconds to write)."""
    data = bench(result, metrics)
    arrays = {k: data.pop(k) for k in [k for k, v in data.items() if isinstance(v, np.ndarray)]}
    text = json.dumps(_clean(data), indent=2)
    assert text.endswith("\n}")
    parts = [text[:-2]]
    for key, values in arrays.items():
        if values.dtype.kind in "iu":
            body = ",".join(map(str, values.tolist()))
        else:  # as _clean rounds a figure: 9 significant digits
            body = ",".join(f"{x:.9g}" for x in values.tolist())
        parts.append(f',\n  "{key}": [{body}]')
    return "".join(parts) + "\n}\n"


def described(
    graph, seed: int, spec_text: str | None, overrides: list[str] = (), requests=None
) -> dict:
    """The files that describe a run rather than its result: graph.json, run.json (the
    run in words, with ``seed`` as used and ``requests`` simulated) and, when given,
    ``spec_text`` as spec.tsim."""
    from tokensim.graph.render import to_json
    from tokensim.report.manifest import manifest

    files = {
        "graph.json": to_json(graph),
        "run.json": json.dumps(
            _clean(manifest(graph.spec, seed, list(overrides), requests)), indent=2
        )
        + "\n",
    }
    if spec_text is not None:
        files["spec.tsim"] = spec_text
    return files


def publish(out: Path, files: dict) -> None:
    """Write ``files`` into ``out`` under temporary names, then rename them all into place:
    a folder never holds a half-written file under its final name. A file's value is its
    text, or a function that writes it into the open file it is given."""
    temps = []
    try:
        for name, text in files.items():
            tmp = out / f".{name}.partial"
            temps.append((tmp, out / name))
            if callable(text):
                with tmp.open("w", encoding="utf-8", newline="") as f:
                    text(f)
            else:
                tmp.write_text(text, "utf-8")
    except BaseException:  # a full disk, an interrupt: leave no half-written file behind
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in temps:
        os.replace(tmp, final)


# every file a run writes into its folder (report.html last, from the others)
RESULT_FILES = (
    "metrics.json", "bench.json", "requests.csv", "timeseries.csv", "iterations.csv",
    "transitions.csv", "graph.json", "run.json", "spec.tsim", "report.html",
)  # fmt: skip


def retract(out: str | Path) -> bool:
    """Remove the results of an earlier run from ``out`` (only the files a run writes),
    so that a run that failed leaves no folder that reads as its result. True when
    there was something to remove."""
    out = Path(out)
    if not out.is_dir():
        return False
    found = [out / name for name in RESULT_FILES if (out / name).is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    for partial in out.glob(".*.partial"):
        partial.unlink(missing_ok=True)
    return bool(found)
