"""``tokensim validate --bench``: replay measured runs on a spec and draw a page of where the
simulator can be trusted — measured against simulated CDFs of TTFT, TPOT, ITL and E2E for
each run (the measured percentiles as guides where the file has no per-request figures), and
a table of the errors per run and metric.
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from markupsafe import Markup

from tokensim.lang.diagnostics import CompileError
from tokensim.perf.tables import replacing
from tokensim.replay import fit as fitting
from tokensim.replay import replay, results
from tokensim.replay.command import _fail, compile_failed, error_rows, error_table, inputs
from tokensim.report import svg
from tokensim.report.page import _asset, environment

CHARTS = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "E2E"))


@dataclass
class Replayed:
    """One measured run and its replay."""

    obs: results.Observed
    sim: dict[str, float]  # the simulated value of each measured metric
    # the replay's per-request ttft_s, tpot_s, e2e_s, and itl_s: quantiles of its
    # inter-token gaps (weighted by the tokens that had each)
    columns: dict[str, np.ndarray]
    warning: str | None = None  # the replay refused requests the server served


def _measured(obs: results.Observed, name: str) -> np.ndarray | None:
    return {"ttft": obs.ttfts, "tpot": obs.tpots, "itl": obs.itls, "e2e": obs.e2es}[name]


def _chart(r: Replayed, index: int, name: str, label: str) -> str:
    sim = r.columns[f"{name}_s"]
    samples = {"simulated": sim[np.isfinite(sim)]}
    rules = []
    measured = _measured(r.obs, name)
    if measured is not None:
        samples = {"measured": measured, **samples}
        title = f"{label}: measured and simulated"
    else:  # the file's percentiles, as guides
        for stat in ("p50", "p90", "p99"):
            v = r.obs.metrics.get(f"{name}_{stat}")
            if v is not None and math.isfinite(v):
                rules.append(svg.Rule(v, f"measured {stat}", axis="x"))
        title = f"{label}: simulated" + ("; measured percentiles" if rules else "")
    return svg.cdf_chart(
        samples,
        id=f"run{index}-{name}",
        title=title,
        x_label=label,
        rules=rules,
        width=520,
        height=220,
    )


def _quantiles(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """200 quantiles of ``values`` counted ``weights`` times: a sample with their CDF."""
    if values.size == 0:
        return values
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(np.ones(values.size) if weights is None else weights[order])
    at = np.searchsorted(cum, np.linspace(0.0025, 0.9975, 200) * cum[-1], side="left")
    return values[order][np.minimum(at, values.size - 1)]


def _rows(r: Replayed) -> list[dict]:
    out = []
    for key, m in r.obs.metrics.items():
        s = r.sim.get(key, float("nan"))
        name, stat = key.split("_", 1)
        unit = "s" if name != "throughput" else ("req/s" if "requests" in stat else "tok/s")
        err = (s - m) / m if m and math.isfinite(s) else float("nan")
        out.append(
            {
                "metric": f"{results.family(key)} {stat.replace('_', ' ')}",
                "measured": _value(m, unit),
                "simulated": _value(s, unit),
                "error": "–" if math.isnan(err) else f"{100 * err:+.0f}%",
                "off": not math.isnan(err) and abs(err) > (0.2 if "p9" in stat else 0.1),
            }
        )
    return out


def _value(x: float, unit: str) -> str:
    if not math.isfinite(x):
        return "–"
    if unit == "s":
        return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"
    return f"{x:,.2f} {unit}"


def render(
    dep: replay.Deployment, replayed: list[Replayed], errors: dict[str, tuple[float, float, int]]
) -> str:
    sections = []
    for i, r in enumerate(replayed):
        sections.append(
            {
                "name": r.obs.name,
                "anchor": f"run{i}",
                "what": f"{r.obs.format}: {r.obs.requests} requests, {r.obs.arrivals}",
                "notes": (*r.obs.notes, *([r.warning] if r.warning else [])),
                "rows": _rows(r),
                "charts": [Markup(_chart(r, i, n, label)) for n, label in CHARTS],
            }
        )
    table = error_rows({"error": errors})
    return (
        environment()
        .get_template("validate.html.j2")
        .render(
            spec=Path(dep.path).name,
            engine=dep.engine,
            runs=sections,
            summary=table,
            css=Markup(_asset("style.css")),
            version=_version(),
        )
    )


def _version() -> str:
    from tokensim import __version__

    return __version__


def cmd_validate_bench(args) -> int:
    output = Path(args.output or "validation.html")
    loaded = inputs(args)
    if isinstance(loaded, int):
        return loaded
    runs, dep = loaded
    replayed = []
    with tempfile.TemporaryDirectory(prefix="tokensim-replay-") as tmp:
        for obs in runs:
            try:
                run = replay.replay(dep, obs, {}, Path(tmp))
            except CompileError as e:  # a run the deployment cannot take
                return compile_failed(e)
            sim = replay.simulated(obs, run)
            warning = replay.rejections(obs, sim, run.metrics["requests"].get("rejected_why"))
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
            columns = {k: run.requests[k] for k in ("ttft_s", "tpot_s", "e2e_s")}
            columns["itl_s"] = _quantiles(run.result.itl_s, run.result.itl_weights)
            replayed.append(Replayed(obs, sim, columns, warning))
    errors = fitting.errors(runs, [r.sim for r in replayed])
    try:
        with replacing(output) as tmp:
            tmp.write_text(render(dep, replayed, errors), "utf-8")
    except OSError as e:
        return _fail(f"cannot write {output}: {e.strerror or e}")
    if not args.quiet:
        print(f"{len(runs)} run(s) replayed on {args.spec} (engine `{dep.engine.name}`)\n")
        print("Error, median / p90 of |simulated - measured| / measured:\n")
        print(error_table({"error": errors}))
        print(f"\nwrote {output}")
    return 0
