"""Running a spec's ``sweep``: every point a full run in its own folder, one table.

``points(sweep)`` lists the points: the axes combined as a grid, each ``zip`` group
varying together. ``run_sweep`` applies a point's values to the syntax tree (as
``--set`` does, so a value is checked like the spec), simulates it, writes its folder
``DIR/NNN-<values>/`` with its page, and finally ``DIR/sweep.csv`` (one row a point),
``DIR/sweep.json`` (the axes and points) and the comparison page ``DIR/index.html``.
Points run on an executor (:mod:`tokensim.explore.execute`: local processes or Ray), and
each result is cached under its content hash (:mod:`tokensim.explore.cache`), so a sweep
that was stopped resumes where it was, and a point that is already done is not run again.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from pathlib import Path

from tokensim import ir
from tokensim.report.files import publish
from tokensim.report.sweep_data import COLUMNS, labels, metric_row


def points(sweep: ir.Sweep) -> list[list[tuple[str, str]]]:
    """Every point as ``[(path, value text), ...]``: a grid over the axes and zip groups,
    the first axis varying slowest."""
    dims: list[list[list[tuple[str, str]]]] = [[[(a.path, t)] for t in a.texts] for a in sweep.axes]
    for group in sweep.zipped:
        dims.append([[(a.path, a.texts[k]) for a in group] for k in range(len(group[0].texts))])
    return [[pair for part in combo for pair in part] for combo in itertools.product(*dims)]


def shown(sweep: ir.Sweep | None, point: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``point`` as tables show it: an alternative written ``name { ... }`` by its name."""
    if sweep is None:
        return list(point)
    axes = {a.path: a for a in sweep.axes}
    axes.update((a.path, a) for g in sweep.zipped for a in g)
    return [(p, axes[p].shown(t) if p in axes else t) for p, t in point]


def folder_name(index: int, label: list[str]) -> str:
    """``003-rate=25_s``: a point's number and its :func:`labels`, safe as a file name."""
    text = ",".join(label) or "spec"
    return f"{index:03d}-" + re.sub(r"[^A-Za-z0-9.,=+-]+", "_", text)[:80]


def cell(value) -> str:
    """A CSV cell: empty for None and NaN, 1/0 for booleans, 9 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.9g}"
    return str(value)


def table(sweep_info: dict, rows: list[dict]) -> str:
    """sweep.csv: the point's folder, its value on every axis, then :data:`COLUMNS`, then
    why the point does not deploy (empty when it does)."""
    paths = [a["path"] for a in sweep_info["axes"]]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["point", *paths, *(name for name, _ in COLUMNS), "error"])
    for point, row in zip(sweep_info["points"], rows, strict=True):
        w.writerow(
            [point["folder"], *(point["values"][p] for p in paths)]
            + [cell(row[name]) for name, _ in COLUMNS]
            + [point.get("error") or ""]
        )
    return out.getvalue()


def describe(spec: ir.Spec, pts: list[list[tuple[str, str]]]) -> dict:
    """sweep.json: the axes (path, value texts, numbers when the values are numbers) and
    every point's folder and values."""
    axes = [(a, None) for a in spec.sweep.axes]
    axes += [(a, g) for g, group in enumerate(spec.sweep.zipped) for a in group]
    pts = [shown(spec.sweep, p) for p in pts]
    return {
        "spec": spec.name,
        "axes": [
            {
                "path": a.path,
                "texts": [a.shown(t) for t in a.texts],
                "numbers": (
                    [float(v) for v in a.values]
                    if all(isinstance(v, (int, float)) for v in a.values)
                    else None
                ),
                "zip": group is not None,
                "group": group,  # the zip block it moves with (None: its own axis)
            }
            for a, group in axes
        ],
        "points": [
            {"folder": folder_name(k, label), "values": dict(point)}
            for k, (point, label) in enumerate(zip(pts, labels(pts), strict=True))
        ],
    }


def compiled(module, values, sources):
    """``module`` with ``values`` (``[(path, text)]``) set as ``--set`` does, and its checked
    and lowered graph: ``(module, graph)``. Outer paths are set before the paths inside them
    (a whole ``deployment`` before its pool's ``batching``). A point is one run: its sweep
    block is dropped (its paths need not hold in a point whose alternative changed the
    blocks they name). A combination that does not deploy raises its :class:`CompileError`."""
    import dataclasses

    from tokensim.graph import lower
    from tokensim.lang.check import check
    from tokensim.lang.override import override

    kept = tuple(s for s in module.statements if s.key.text != "sweep")
    module = dataclasses.replace(module, statements=kept)
    for path, value in sorted(values, key=lambda pv: pv[0].count(".")):
        module = override(module, path, value, sources)
    return module, lower(check(module, sources))


def compile_points(module, sources, spec: ir.Spec, pts, seed=None, overrides=(), page=True):
    """A keyed :class:`~tokensim.explore.execute.Job` per point: its values applied to the
    syntax tree (as ``--set`` does), checked and lowered; or, for a point whose combination
    does not deploy, its :class:`CompileError`, with a note naming the point."""
    from tokensim.explore.execute import Job
    from tokensim.lang.diagnostics import CompileError

    text = sources.get(spec.file).text if sources.get(spec.file) else None
    out: list = []
    for point in pts:
        try:
            _, graph = compiled(module, point, sources)
        except CompileError as err:
            out.append(_at_point(err, shown(spec.sweep, point)))
            continue
        sets = (*overrides, *(f"{p}={v}" for p, v in point))
        out.append(Job(graph, seed, text, sets, page).keyed())
    return out


def _at_point(err, point):
    """``err`` with a note on each diagnostic saying at which sweep point it happened."""
    from dataclasses import replace

    from tokensim.lang.diagnostics import Note

    where = Note("at the sweep point " + ", ".join(f"{p} = {v}" for p, v in point))
    return type(err)([replace(d, notes=(*d.notes, where)) for d in err.diagnostics], err.sources)


def run_sweep(
    module,
    sources,
    spec: ir.Spec,
    out: Path,
    run_on,
    cache,
    seed: int | None = None,
    overrides: list[str] = (),
    page: bool = True,
    bar: bool = True,
    tally=None,
):
    """Simulate every point of ``spec.sweep`` (``module`` is its syntax tree, with any
    ``--set`` already applied) on the executor ``run_on`` into ``out``, serving points
    from ``cache`` where it has them, counting them in ``tally``; return sweep.json's
    content and each point's sweep.csv figures (:func:`metric_row`). A point that does
    not deploy is listed with its error (``error`` in sweep.json and sweep.csv) and not
    run; when no point deploys, the first one's error is raised."""
    from tokensim.explore.execute import Job, execute

    pts = points(spec.sweep)
    info = describe(spec, pts)
    compiled = compile_points(module, sources, spec, pts, seed, overrides, page)
    runnable = [i for i, c in enumerate(compiled) if isinstance(c, Job)]
    if not runnable:
        raise compiled[0]
    for entry, c in zip(info["points"], compiled, strict=True):
        entry["error"] = None if isinstance(c, Job) else c.diagnostics[0].message
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").unlink(missing_ok=True)
    (out / "sweep.csv").unlink(missing_ok=True)
    rows: list[dict] = [metric_row({}) for _ in pts]

    def done(k: int, files: dict[str, str], cached: bool) -> None:
        i = runnable[k]
        folder = out / info["points"][i]["folder"]
        if cached:
            place(folder, compiled[i], files, page)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            if "report.html" not in files:  # no page asked for: none of an earlier run
                (folder / "report.html").unlink(missing_ok=True)
            publish(folder, files)
        rows[i] = metric_row(json.loads(files["metrics.json"]))

    jobs = [compiled[i] for i in runnable]
    execute(jobs, run_on, cache, done, label="points", bar=bar, tally=tally)
    publish(
        out,
        {
            "sweep.csv": table(info, rows),
            "sweep.json": json.dumps(info, indent=2) + "\n",
        },
    )
    if page:
        write_index(out)
    return info, rows


def place(folder: Path, job, files: dict[str, str], page: bool) -> None:
    """Write a cached result into its point's folder, unless the folder already holds
    it (a resumed sweep); draw its page there."""
    from tokensim.report import write_page
    from tokensim.report.files import described

    metrics = json.loads(files["metrics.json"])
    told = described(
        job.graph, metrics["seed"], job.spec_text, job.overrides, metrics["requests"]["total"]
    )
    wanted = {**files, **told}
    have = all(
        (folder / name).is_file() and (folder / name).read_text("utf-8") == text
        for name, text in wanted.items()
    )
    if have and (not page or (folder / "report.html").is_file()):
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").unlink(missing_ok=True)  # drawn again from the files below
    publish(folder, wanted)
    if page:
        write_page(folder)


def write_index(out: Path) -> Path:
    """Render ``out``/index.html from sweep.json and the points' metrics.json."""
    from tokensim.report.sweep_page import render_index

    publish(out, {"index.html": render_index(out)})
    return out / "index.html"


def terminal_table(info: dict, rows: list[dict], most: int = 40) -> str:
    """The sweep's points as ``tokensim run`` prints them: each point's values, requests/s,
    TTFT and TPOT p90, attainment and whether it meets the SLO (``info`` and ``rows`` as
    :func:`run_sweep` returns them: what sweep.csv holds)."""
    from tokensim.report.summary import aligned

    if not rows:
        return ""
    paths = [a["path"] for a in info["axes"]]
    head = [*paths, "req/s", "TTFT p90", "TPOT p90", "attainment", "SLO"]
    body = []
    for point, r in list(zip(info["points"], rows, strict=True))[:most]:
        values = [point["values"][p] for p in paths]
        if point.get("error"):
            body.append([*values, "", "", "", "", f"does not deploy: {point['error']}"])
            continue
        attain = r["slo_attainment"]
        body.append(
            [
                *values,
                f"{r['requests_per_s']:.2f}",
                _time(r["ttft_p90_s"]),
                _time(r["tpot_p90_s"]),
                "" if attain is None else f"{attain:.1%}",
                {True: "met", False: "missed"}.get(r["slo_met"], ""),
            ]
        )
    lines = aligned(head, body, left=())
    if len(rows) > most:
        lines.append(f"  ... {len(rows) - most} more points in sweep.csv")
    return "\n".join(lines) + "\n"


def _time(x: float | None) -> str:
    if x is None or math.isnan(x):
        return ""
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"
