"""What ``tokensim search`` writes: search.csv, search.json, a folder per configuration
on the Pareto front (its run at its answer, first seed, with its page) and index.html."""

from __future__ import annotations

import json
from pathlib import Path

from markupsafe import Markup

from tokensim.explore import search as s
from tokensim.explore.execute import Job
from tokensim.explore.sweep import place
from tokensim.report import svg
from tokensim.report.files import _clean as json_safe
from tokensim.report.files import publish
from tokensim.report.summary import aligned

GOAL_TITLES = {
    "max-rate": "the highest rate that meets the SLO",
    "min-cost": "the cheapest configuration that meets the SLO",
    "min-gpus": "the fewest GPUs that meet the SLO",
}


def write_search(
    out: Path, outcomes, settings: s.Settings, spec, sources, cache, page=True, overrides=()
):
    """Write the search's result folder ``out``; ``overrides`` are the ``--set`` values the
    search was given (run.json of each folder lists them)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("index.html", "search.csv", "search.json"):
        (out / name).unlink(missing_ok=True)
    text = sources.get(spec.file).text if sources.get(spec.file) else None
    paths = list(outcomes[0].config.values) if outcomes else []
    best = s.ranked(outcomes, settings.goal)
    shown = [o for o in best if o.pareto or (o is best[0] and o.answer is not None)]
    folders = {}
    for o in shown:
        t = o.answer
        rating = settings.goal == "max-rate"  # else each ran at its own rate, as written
        rate, span = (t.rate, o.config.span) if rating else (None, None)
        graph = s.graph_at(o.config, rate, sources, span)
        sets = [*overrides, *(f"{p}={v}" for p, v in o.config.values.items())]
        sets += [f"{p}={v}" for p, v in s.rate_values(rate, span)]
        job = Job(graph, settings.seeds[0], o.config.text or text, tuple(sets), page).keyed()
        files = cache.get(job.key)
        if files is None:  # not cached: the cache was cleared meanwhile
            continue
        place(out / o.config.folder, job, files, page)
        folders[o.config.index] = o.config.folder
    info = {
        "spec": spec.name,
        "goal": settings.goal,
        "seeds": list(settings.seeds),
        "attainment": settings.attainment,
        "confidence": settings.confidence,
        "tolerance": settings.tolerance,
        "answer": s.answer(outcomes, settings.goal, spec),
        "targets": [
            {"metric": t.metric, "stat": t.stat, "op": t.op, "limit_s": t.limit_s}
            for t in (spec.slo.targets if spec.slo else ())
        ],
        "axes": paths,
        "configurations": [
            {**s.row(o, settings.goal), "folder": folders.get(o.config.index)} for o in best
        ],
    }
    files = {
        "search.csv": s.table(outcomes, settings.goal, paths),
        "search.json": json.dumps(json_safe(info), indent=2) + "\n",
    }
    publish(out, files)
    if page:  # drawn from search.json as written, so `tokensim report` draws it the same
        publish(out, {"index.html": render(json.loads(files["search.json"]))})


def read_info(out: Path) -> dict:
    """``out``/search.json, checked to have what the page needs."""
    from tokensim.report.load import ResultError, read_json

    path = out / "search.json"
    info = read_json(path)
    try:
        if not all(k in info for k in ("spec", "goal", "seeds", "answer", "axes")):
            raise KeyError("spec, goal, seeds, answer or axes")
        for r in info["configurations"]:
            if not {"config", "passes", "pareto", "gpus", "usd_per_hour", "folder"} <= set(r):
                raise KeyError("a configuration's figures")
    except (KeyError, TypeError) as err:
        raise ResultError(f"{path} is not a search result (it lacks {err})") from None
    return info


def write_index(out: Path) -> Path:
    """Draw ``out``/index.html again from ``out``/search.json (``tokensim report``)."""
    publish(out, {"index.html": render(read_info(out))})
    return out / "index.html"


def front_table(outcomes, goal: str) -> str:
    """The Pareto front as a text table (for the terminal), best first."""
    rows = [s.row(o, goal) for o in s.ranked(outcomes, goal) if o.pareto]
    if not rows:
        return "No configuration meets the SLO: no Pareto front.\n"
    head = ["configuration", "GPUs", "$/h", "rate", "TTFT p90", "TPOT p90", "out tok/s"]
    body = [
        [
            r["config"],
            _text(r["gpus"], "{:.0f}"),
            _text(r["usd_per_hour"], "{:.2f}"),
            "spec" if r["rate_per_s"] is None else f"{r['rate_per_s']:g}/s",
            s._seconds(r["ttft_p90_s"]),
            s._seconds(r["tpot_p90_s"]),
            _text(r["output_tokens_per_s"], "{:.0f}"),
        ]
        for r in rows
    ]
    lines = aligned(head, body)
    return (
        f"Pareto front ({len(rows)} of {len(outcomes)} configurations):\n" + "\n".join(lines) + "\n"
    )


def _text(value, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _cost_axis(info: dict) -> tuple[list[dict], str, str, bool]:
    """The configurations that pass, the cost their charts put on x (``usd_per_hour``, or
    ``gpus`` where a GPU has no price) and its label, and whether they all cost the same."""
    rows = [r for r in info["configurations"] if r["passes"]]
    priced = all(r["usd_per_hour"] is not None for r in rows)
    x_key, x_label = ("usd_per_hour", "$ per hour") if priced else ("gpus", "GPUs")
    return rows, x_key, x_label, bool(rows) and len({r[x_key] for r in rows}) == 1


def _charts(info: dict) -> list[str]:
    """Cost (GPUs where a GPU has no price) against TTFT p90, TPOT p90 and throughput, for
    the configurations that pass: the answer, the rest of the Pareto front, the others."""
    rows, x_key, x_label, same = _cost_axis(info)
    priced = x_key == "usd_per_hour"
    rate = info["goal"] == "max-rate"
    ys = (
        ("ttft_p90_s", "TTFT p90", True),
        ("tpot_p90_s", "TPOT p90", True),
        ("rate_per_s", "highest rate (requests/s)", False)
        if rate
        else ("output_tokens_per_s", "output tokens/s", False),
    )

    def group(label, chosen, y_key, color, radius=4.0):
        return svg.Points(
            label,
            [float(r[x_key]) for r in chosen],
            [float("nan") if r[y_key] is None else float(r[y_key]) for r in chosen],
            [r["config"] for r in chosen],
            color=color,
            radius=radius,
        )

    if same:  # one cost for all: a scatter says nothing
        return _bars(rows, ys, x_label, rows[0][x_key])
    charts = []
    for y_key, y_label, y_time in ys:
        groups = []
        if rows:  # configurations come best first: the first that passes is the answer
            groups.append(group("answer", rows[:1], y_key, svg.PALETTE[1], 7.0))
        front = [r for r in rows[1:] if r["pareto"]]
        others = [r for r in rows[1:] if not r["pareto"]]
        if front:
            groups.append(group("on the Pareto front", front, y_key, svg.PALETTE[0]))
        if others:
            groups.append(group("passes, not on the front", others, y_key, "#9aa5b1"))
        charts.append(
            svg.scatter_chart(
                groups,
                id=f"search-{y_key.split('_')[0]}",
                title=f"{y_label} against {'cost' if priced else 'GPUs'}",
                x_label=x_label,
                y_label=y_label,
                y_time=y_time,
                width=460,
            )
        )
    return charts


def _bars(rows: list[dict], ys, x_label: str, cost: float) -> list[str]:
    """The charts of configurations that all cost the same: each figure a bar per
    configuration (the answer first, as the rows come), the cost said in the title."""
    at = f"{cost:.2f} {x_label}" if x_label.startswith("$") else f"{cost:g} GPUs"
    at = at.replace("$ per hour", "$/h")
    names = [r["config"] for r in rows]
    return [
        svg.bar_chart(
            names,
            {y_label: [float("nan") if r[y_key] is None else float(r[y_key]) for r in rows]},
            id=f"search-{y_key.split('_')[0]}",
            title=f"{y_label} per configuration (each {at})",
            y_label=y_label,
            y_time=y_time,
            width=460,
        )
        for y_key, y_label, y_time in ys
    ]


def render(info: dict) -> str:
    """index.html of a search, from search.json's content alone."""
    from tokensim import __version__
    from tokensim.report.page import _asset, environment

    charts = _charts(info)
    same = _cost_axis(info)[3]
    return (
        environment()
        .get_template("search.html.j2")
        .render(
            info=info,
            question=GOAL_TITLES[info["goal"]],
            targets=info.get("targets", []),
            charts=[Markup(c) for c in charts],
            chart_note=(
                "The configurations cost the same: each has its bar, the answer first."
                if same
                else "The answer is drawn larger. Hover a point for its configuration."
            ),
            passing=sum(r["passes"] for r in info["configurations"]),
            version=__version__,
            css=Markup(_asset("style.css")),
        )
    )
