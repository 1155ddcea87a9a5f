"""Calibrating from one benchmark run: how well it predicts the other runs of a deployment.

What ``tokensim calibrate --bench`` promises a user: measure one run of your deployment,
calibrate on it, and trust the simulator for the others. For every deployment of the
LambdaLabs and BLIS runs in ``../shared/data/serving`` (one GPU type, model, tensor
parallelism and engine setup: LambdaLabs' bursts of 10 to 320 prompts, BLIS's constant rates
and workloads), each run in turn is the calibration run: the engine is fitted on it alone
(``tokensim.replay.fit``, as the command does, from the raw result file through the
product's own reader) and the deployment's other runs are predicted. Printed: per deployment
and calibration run, the error of every predicted run's TTFT, TPOT and E2E median and p90
(where the run measured them), the share within the targets (median 10%, p90 20%), and the
same before calibration (the shipped engine).

    python3 bench/calibrate_accuracy.py [-j 2] [--source lambdalabs|blis|datacrunch] [--loro]

``--source datacrunch`` scores DataCrunch's SGLang runs on H200 the same way (each line of
their ``bench_serving`` JSONL files a run; summaries only, no per-request lengths): an
engine and a source the issue's targets leave out, as a check on what one run pins down.

``--loro`` also calibrates on all of a deployment's runs but one and predicts that one.
``--joint`` instead fits the engine's CPU and front-end times (``host.iteration``,
``host.per_seq``, ``frontend.per_request``, ``frontend.latency``) on every deployment of
the sources at once, each run on its own deployment: how ``std/engines``' ``vllm_0_6``
figures were fitted (``--source lambdalabs --joint``).
The deployment specs are the end-to-end harness's (``bench/e2e_accuracy.py``); the runs
are read with ``tokensim.replay.results``. Needs ../shared/data/serving.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import e2e_accuracy as ea  # noqa: E402
import serving_runs as sr  # noqa: E402

from tokensim.replay import command, fit, replay, results  # noqa: E402

TARGETS = {"p50": 0.10, "p90": 0.20}  # issue: medians within 10%, p90s within 20%
SCORED = ("ttft", "tpot", "e2e")


def raw_file(run: sr.MeasuredRun) -> Path:
    """The result file a harness run was read from (what a user would pass)."""
    if run.source == "lambdalabs":
        return sr.DATA / run.origin
    if run.source == "blis":
        _, exp, stage = run.id.split("/")
        found = sorted(
            (sr.DATA / "blis_training" / "default_args").glob(
                f"*-{exp}/results/{stage}_lifecycle_metrics.json"
            )
        )
        if len(found) != 1:
            raise FileNotFoundError(f"{run.id}: {len(found)} result files")
        return found[0]
    if run.source == "datacrunch":  # an SGLang JSONL: one run a line (origin `file:line`)
        return sr.DATA / run.origin.rsplit(":", 1)[0]
    raise ValueError(run.source)


def deployments(sources: list[str]) -> dict[str, list[sr.MeasuredRun]]:
    """The runs of each deployment, keyed by its spec (the workload left out)."""
    groups: dict[str, list[sr.MeasuredRun]] = defaultdict(list)
    for run in sr.load(sources).runs:
        text = ea.spec_text(run)
        body = text[text.index("\nimport") : text.index("workload {")]
        groups[body].append(run)
    return {k: v for k, v in groups.items() if len(v) > 1}


def _name(run: sr.MeasuredRun) -> str:
    return run.id.split("/", 1)[1]


def _deployment(spec: Path, body: str, runs: list[sr.MeasuredRun]) -> replay.Deployment:
    """The deployment ``body`` of ``runs``, written to ``spec`` and loaded."""
    spec.write_text(f'name "{_label(runs[0])}"\n' + body, "utf-8")
    return replay.load(spec)


def _observed(run: sr.MeasuredRun) -> results.Observed:
    """``run`` read from its result file as the command reads it (a steady rate cut to its
    first 2,000 requests)."""
    line = int(run.origin.rsplit(":", 1)[1]) if run.source == "datacrunch" else 1
    return results.truncate(results.read(raw_file(run))[line - 1], 2000)


def _label(run: sr.MeasuredRun) -> str:
    """A deployment's name: its GPUs, model and source."""
    model = run.model + ("" if run.dtype == "bf16" else f" {run.dtype}")
    return f"{run.source}: {run.gpus}x{run.gpu} {model}"


def _scored(obs: results.Observed) -> list[str]:
    keys = []
    for name in SCORED:
        for stat in TARGETS:
            if f"{name}_{stat}" in obs.metrics:
                keys.append(f"{name}_{stat}")
    return keys


def evaluate(task) -> dict:
    """Calibrate on each run of one deployment; predict the others."""
    body, runs, loro, max_evaluations = task
    out = {"deployment": _label(runs[0]), "rows": [], "fits": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dep = _deployment(folder / "deployment.tsim", body, runs)
        observed = [_observed(r) for r in runs]
        names = [_name(r) for r in runs]
        # the most loaded run (the highest measured request throughput) and the middle one
        by_load = sorted(
            range(len(runs)), key=lambda i: observed[i].metrics["throughput_requests_per_s"]
        )
        loaded, middle = by_load[-1], by_load[(len(runs) - 1) // 2]
        before = [replay.simulate(dep, o, {}, folder) for o in observed]
        plans = [([i], f"on {names[i]}", False) for i in range(len(runs))]
        if loro:
            plans += [
                ([j for j in range(len(runs)) if j != i], f"all but {names[i]}", True)
                for i in range(len(runs))
            ]
        for fitted_on, label, all_but_one in plans:
            t = time.perf_counter()
            chosen = [observed[i] for i in fitted_on]
            result = fit.fit(dep, chosen, folder, max_evaluations=max_evaluations)
            out["fits"].append(
                (label, result.overrides(), time.perf_counter() - t, result.evaluations)
            )
            for j, obs in enumerate(observed):
                if j in fitted_on:
                    continue
                sim = replay.simulate(dep, obs, result.overrides(), folder)
                for key in _scored(obs):
                    m = obs.metrics[key]
                    out["rows"].append(
                        {
                            "calibration": label,
                            "loro": all_but_one,
                            "most_loaded": fitted_on == [loaded],
                            "middle": fitted_on == [middle],
                            "run": names[j],
                            "metric": key,
                            "measured": m,
                            "before": before[j][key] / m - 1,
                            "after": sim[key] / m - 1,
                        }
                    )
    return out


JOINT = ("host.iteration", "host.per_seq", "frontend.per_request", "frontend.latency")


def joint(groups: dict[str, list[sr.MeasuredRun]], max_evaluations: int) -> int:
    """Fit ``JOINT`` on every run of ``groups``, each replayed on its own deployment (one
    engine): the figures and the error before and after, per family."""
    deps, observed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, (body, runs) in enumerate(groups.items()):
            dep = _deployment(folder / f"deployment{i}.tsim", body, runs)
            for r in runs:
                deps.append(dep)
                observed.append(_observed(r))
        engines = {d.engine.name for d in deps}
        if len(engines) > 1:
            print(f"--joint fits one engine; these runs have {sorted(engines)}", file=sys.stderr)
            return 2
        knobs = tuple(k for k in fit.KNOBS if k.path in JOINT)
        result = fit.fit(deps, observed, folder, knobs=knobs, max_evaluations=max_evaluations)
    print(f"## `{engines.pop()}` fitted on {len(observed)} runs of {len(groups)} deployments\n")
    print(command.figures_table(result) + "\n")
    before, after = fit.errors(observed, result.before), fit.errors(observed, result.after)
    print(command.error_table({"before": before, "after": after}))
    return 0


def summary(rows: list[dict], column: str) -> str:
    """Per metric: median / p90 |error| and the share of predictions within the target."""
    lines = [
        "| metric | n | median \\|err\\| | p90 \\|err\\| | within target |",
        "|---|---|---|---|---|",
    ]
    by = defaultdict(list)
    for r in rows:
        by[r["metric"]].append(abs(r[column]))
    for key in sorted(by, key=lambda k: (SCORED.index(k.split("_")[0]), k)):
        e = np.array(by[key])
        target = TARGETS[key.split("_")[1]]
        lines.append(
            f"| {key} | {len(e)} | {100 * np.median(e):.0f}% | {100 * np.percentile(e, 90):.0f}% "
            f"| {np.mean(e <= target):.0%} (<= {100 * target:.0f}%) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=("lambdalabs", "blis", "datacrunch"), action="append")
    ap.add_argument("-j", "--processes", type=int, default=2)
    ap.add_argument("--loro", action="store_true", help="also fit on all runs but one")
    ap.add_argument("--max-evaluations", type=int, default=120)
    ap.add_argument("--detail", action="store_true", help="print every predicted run")
    ap.add_argument("--joint", action="store_true", help="fit one engine on every deployment")
    args = ap.parse_args(argv)
    if not sr.DATA.exists():
        print(f"no serving data at {sr.DATA}", file=sys.stderr)
        return 2
    groups = deployments(args.source or ["lambdalabs", "blis"])
    if args.joint:
        return joint(groups, args.max_evaluations)
    tasks = [(body, runs, args.loro, args.max_evaluations) for body, runs in groups.items()]
    start = time.perf_counter()
    if args.processes > 1:
        with multiprocessing.Pool(args.processes) as pool:
            outs = pool.map(evaluate, tasks, chunksize=1)
    else:
        outs = [evaluate(t) for t in tasks]
    rows = [r for o in outs for r in o["rows"]]
    one = [r for r in rows if not r["loro"]]
    n_runs = sum(len(runs) for runs in groups.values())
    print(f"## Calibrated on one run, predicting the deployment's others ({len(groups)} ")
    print(f"deployments, {n_runs} runs; {time.perf_counter() - start:.0f} s)\n")
    print("Shipped engine, no calibration:\n")
    print(summary(one, "before") + "\n")
    print("Calibrated on one run (each run of a deployment in turn):\n")
    print(summary(one, "after") + "\n")
    print("Calibrated on the deployment's middle run (the median request throughput):\n")
    print(summary([r for r in one if r["middle"]], "after") + "\n")
    print("Calibrated on the deployment's most loaded run (highest request throughput):\n")
    print(summary([r for r in one if r["most_loaded"]], "after") + "\n")
    loro = [r for r in rows if r["loro"]]
    if loro:
        print("Calibrated on all of a deployment's runs but the one predicted:\n")
        print(summary(loro, "after") + "\n")
    print("### Per deployment: median |error| of the predictions, before -> after\n")
    print("| deployment | runs | TTFT p50 | TTFT p90 | TPOT p50 | E2E p50 | E2E p90 |")
    print("|---|---|---|---|---|---|---|")
    for o, runs in zip(outs, groups.values(), strict=True):
        mine = [r for r in o["rows"] if not r["loro"]]
        cells = []
        for key in ("ttft_p50", "ttft_p90", "tpot_p50", "e2e_p50", "e2e_p90"):
            b = [abs(r["before"]) for r in mine if r["metric"] == key]
            a = [abs(r["after"]) for r in mine if r["metric"] == key]
            cells.append(f"{100 * np.median(b):.0f}% -> {100 * np.median(a):.0f}%" if a else "—")
        print(f"| {o['deployment']} | {len(runs)} | " + " | ".join(cells) + " |")
    if args.detail:
        print("\n### Every prediction (signed error after calibration)\n")
        for o in outs:
            for label, over, secs, n in o["fits"]:
                print(f"- {o['deployment']}, {label}: {n} replays, {secs:.1f} s; {over}")
                for r in (r for r in o["rows"] if r["calibration"] == label):
                    print(
                        f"    {r['run']:50} {r['metric']:9} before {100 * r['before']:+5.0f}%"
                        f"  after {100 * r['after']:+5.0f}%"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
