"""What a sweep's folder holds, read back: its description (sweep.json), the sweep.csv
columns of a point's metrics, and the names of its points. The sweep that writes the
folder (``explore/sweep.py``) and the page that draws it (``report/sweep_page.py``) both
read it from here."""

from __future__ import annotations

from pathlib import Path

from tokensim.report.load import ResultError, read_json

# (name in sweep.csv, path into metrics.json)
COLUMNS = (
    ("requests_per_s", ("throughput", "requests_per_s")),
    ("output_tokens_per_s", ("throughput", "output_tokens_per_s")),
    *(
        (f"{m}_{s}_s", (f"{m}_s", s))
        for m in ("ttft", "tpot", "e2e", "queue")
        for s in ("p50", "p90", "p99")
    ),
    ("slo_attainment", ("slo", "attainment")),
    ("goodput_requests_per_s", ("slo", "goodput_requests_per_s")),
    ("slo_met", ("slo", "met")),
    ("preemptions", ("requests", "preemptions")),
    ("rejected", ("requests", "rejected")),
    ("kv_peak_utilization", ("kv", "peak_utilization")),
    ("usd_per_million_output_tokens", ("cost", "usd_per_million_output_tokens")),
)


def labels(pts: list[list[tuple[str, str]]]) -> list[list[str]]:
    """``name=value`` for each value of each point, the names as short as stay clear over
    the whole sweep: the last part of the path (``rate``); more of it where two paths end
    alike (``prefill.tp``, ``decode.tp``), unless those always hold the same value (the
    GPU of every node: ``gpus=H200``, named once)."""
    names = short_names(pts)
    return [list(dict.fromkeys(f"{names[p]}={t}" for p, t in point)) for point in pts]


def short_names(pts: list[list[tuple[str, str]]]) -> dict[str, str]:
    """Each path of the points by the name :func:`labels` gives it."""
    paths = list(dict.fromkeys(p for point in pts for p, _ in point))
    ends: dict[str, list[str]] = {}
    for p in paths:
        ends.setdefault(p.rsplit(".", 1)[-1], []).append(p)
    names = {}
    for group in ends.values():
        same = all(len({t for p, t in point if p in group}) <= 1 for point in pts)
        for p in group:
            parts, n = p.split("."), 1
            if not same:
                others = [o.split(".") for o in paths if o != p]
                while n < len(parts) and any(o[-n:] == parts[-n:] for o in others):
                    n += 1
            names[p] = ".".join(parts[-n:])
    return names


def metric_row(metrics: dict) -> dict[str, object]:
    """The sweep.csv columns of one point's metrics (None where the run has no such value)."""
    row: dict[str, object] = {}
    for name, (a, b) in COLUMNS:
        part = metrics.get(a)
        row[name] = part.get(b) if isinstance(part, dict) else None
    return row


def read_info(folder: Path) -> dict:
    """``folder``/sweep.json, checked to have what the pages need."""
    path = folder / "sweep.json"
    info = read_json(path)
    try:
        axes, pts = info["axes"], info["points"]
        if not axes or any(not {"path", "texts", "numbers"} <= set(a) for a in axes):
            raise ValueError("an axis lacks path, texts or numbers")
        if any(not {"folder", "values"} <= set(p) for p in pts):
            raise ValueError("a point lacks folder or values")
    except (KeyError, TypeError, ValueError) as err:
        raise ResultError(f"{path} is not a sweep description ({err})") from None
    return info
