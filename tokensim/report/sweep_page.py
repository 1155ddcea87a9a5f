"""index.html of a sweep: every point's metrics against the swept values, linking to
each point's own page. Rendered from sweep.json and the points' metrics.json."""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import Markup

from tokensim.report import svg
from tokensim.report.load import read_json
from tokensim.report.page import _asset, environment
from tokensim.report.sweep_data import labels, metric_row, read_info, short_names


def _partners(info: dict) -> list[dict]:
    """The axes that move with the first one: its zip block (a zip block is one dimension
    of the sweep, its values taken together), the first axis first."""
    first = info["axes"][0]
    if not first.get("zip"):
        return [first]
    group = first.get("group")  # absent in an older sweep.json: every zip is one block
    return [a for a in info["axes"] if a.get("zip") and a.get("group") == group]


def _lines(info: dict, rows: list[dict], column: str, scale: float = 1.0):
    """One series per combination of the other dimensions' values, x along the first axis
    (with the axes zipped to it). With a non-numeric first axis, x is the value's position
    (ticks name the values)."""
    first = info["axes"][0]
    xs = first["numbers"] or list(range(len(first["texts"])))
    groups: dict[str, tuple[list, list]] = {}
    moving = {a["path"] for a in _partners(info)}
    others = [a for a in info["axes"] if a["path"] not in moving]
    rest = [[(a["path"], p["values"][a["path"]]) for a in others] for p in info["points"]]
    for point, row, names in zip(info["points"], rows, labels(rest), strict=True):
        others = ", ".join(names)
        x = xs[first["texts"].index(point["values"][first["path"]])]
        value = row[column]
        xs_, ys_ = groups.setdefault(others, ([], []))
        xs_.append(x)
        ys_.append(float("nan") if value is None else float(value) * scale)
    return groups


def _chart(info, rows, columns, *, id, title, y_label, y_time=False, y_percent=False, rules=()):
    first = info["axes"][0]
    partners = _partners(info)
    several = len(info["axes"]) > len(partners)
    if several:  # a line per combination of the other axes: only the solid (main) statistics
        columns = [c for c in columns if not c[2]] or columns[:1]
    series = []
    for column, label, dash in columns:
        for g, (others, (x, y)) in enumerate(_lines(info, rows, column).items()):
            name = label + (f" ({others})" if others else "")
            color = svg.PALETTE[g % len(svg.PALETTE)] if several else None
            series.append(svg.Series(name, x, y, dash=dash, color=color, markers=True))
    if not first["numbers"]:  # names (models, policies): bars, one group per name
        values = {}
        for s in series:
            by_x = dict(zip(s.x, s.y, strict=True))
            values[s.label] = [by_x.get(k, float("nan")) for k in range(len(first["texts"]))]
        ticks = [" / ".join(texts) for texts in zip(*(a["texts"] for a in partners), strict=True)]
        return svg.bar_chart(
            ticks, values, id=id, title=title, y_label=y_label, y_time=y_time, y_percent=y_percent
        )
    unit = re.sub(r"^[-+0-9.eE]+\s*", "", first["texts"][0]) if first["numbers"] else ""
    along = "; ".join(f"{a['path']} {', '.join(a['texts'])}" for a in partners[1:])
    return svg.line_chart(
        series,
        id=id,
        title=title,
        x_label=first["path"]
        + (f" ({unit})" if unit else "")
        + (f", with {along}" if along else ""),
        y_label=y_label,
        x_time=False,
        y_time=y_time,
        y_percent=y_percent,
        rules=list(rules),
        y_max=1.0 if y_percent else None,
    )


def render_index(folder: Path) -> str:
    """The comparison page of the sweep in ``folder``."""
    info = read_info(folder)
    metrics = [
        {} if p.get("error") else read_json(folder / p["folder"] / "metrics.json")
        for p in info["points"]
    ]
    rows = [metric_row(m) for m in metrics]
    ran = [m for m in metrics if m]
    targets = ran[0].get("slo", {}).get("targets", []) if ran else []

    def limits(metric):
        return [
            svg.Rule(t["limit_s"], f"SLO {t['metric']} {t['stat']}")
            for t in targets
            if t["metric"] == metric
        ]

    charts = [
        _chart(
            info,
            rows,
            [(f"{key}_{s}_s", s, s != "p90") for s in ("p50", "p90", "p99")],
            id=f"sweep-{key}",
            title=label,
            y_label=label,
            y_time=True,
            rules=limits(key),
        )
        for key, label in (("ttft", "TTFT"), ("tpot", "TPOT"))
    ]
    if targets:
        charts.append(
            _chart(
                info,
                rows,
                [("slo_attainment", "attainment", False)],
                id="sweep-slo",
                title="SLO attainment (requests meeting every limit)",
                y_label="attainment",
                y_percent=True,
            )
        )
    charts.append(
        _chart(
            info,
            rows,
            [("requests_per_s", "completed", False), ("goodput_requests_per_s", "goodput", True)],
            id="sweep-tput",
            title="Throughput and goodput",
            y_label="requests/s",
        )
    )
    if any(r["usd_per_million_output_tokens"] is not None for r in rows):
        charts.append(
            _chart(
                info,
                rows,
                [("usd_per_million_output_tokens", "$ per 1M output tokens", False)],
                id="sweep-cost",
                title="Cost per million output tokens",
                y_label="$",
            )
        )
    met = [p for p, r in zip(info["points"], rows, strict=True) if r["slo_met"]]
    env = environment()
    return env.get_template("index.html.j2").render(
        info=info,
        rows=[
            {"point": p, "row": r, "metrics": m}
            for p, r, m in zip(info["points"], rows, metrics, strict=True)
        ],
        charts=[Markup(c) for c in charts],
        short=short_names([list(p["values"].items()) for p in info["points"]]),
        targets=targets,
        met=met,
        version=ran[0]["tokensim_version"] if ran else "",
        failed=sum(1 for p in info["points"] if p.get("error")),
        css=Markup(_asset("style.css")),
    )
