"""Fit the serving engines' host and front-end times on the measured serving runs.

Each engine of ``std/engines`` (vLLM V1 before and from 0.14, vLLM 0.6, SGLang,
TensorRT-LLM) is fitted on the runs its server served (``bench/serving_runs.py``): every
run is simulated with the engine's statements in place and the figures below changed, and
``scipy.optimize`` minimises the log-ratios between simulated and measured TTFT, TPOT,
ITL, E2E and throughput (robust loss; each run weighs the same whatever its number of
metrics).
Only what no engine documents is fitted: the CPU time per scheduling and per sequence,
the front end's time per request (a queue), per output token and its latency (no queue), and
the engine's kernels against the calibration's (a factor per op class). Everything else —
schedulers, budgets, block sizes, memory rules, CUDA graphs, multi-step — is the engine's
own default or the run's own flag.

``--loso`` also reports leave-one-source-out error: for each source, every engine is
fitted again without that source's runs and predicts them; an engine left with no runs
takes the geometric mean of the others' figures.

    python3 bench/fit_engines.py [--loso] [--max-requests 400] [--max-nfev 40] [--json F]
                                 [--shared [--frontends [--shared-from F]]] [--write]

``--shared`` fits one set of host and front-end figures for every engine; ``--frontends``
then fits each engine's own front end on its runs (``--shared-from``: the shared figures,
in sample and per held-out source, from an earlier ``--shared --loso --json`` file).

Needs ../shared/data/serving (the training runs); prints the figures to write in
``dsl/std/engines.tsim`` and the error tables.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).parent))

import e2e_accuracy as ea  # noqa: E402
import serving_runs as sr  # noqa: E402


@dataclass(frozen=True)
class Knob:
    """A fitted engine statement: its path in the engine's braces, unit, bounds, start."""

    path: str
    unit: str
    lo: float
    hi: float
    start: float


KNOBS = (
    Knob("host.iteration", "ms", 0.02, 20.0, 0.5),
    Knob("host.per_seq", "us", 0.1, 300.0, 8.0),
    Knob("frontend.per_request", "ms", 0.01, 100.0, 5.0),
    Knob("frontend.latency", "ms", 0.01, 300.0, 12.0),
    Knob("frontend.per_output_token", "us", 0.01, 300.0, 5.0),
    Knob("kernels.gemm", "", 0.3, 2.0, 1.0),
    Knob("kernels.attention", "", 0.3, 2.0, 1.0),
    Knob("kernels.elementwise", "", 0.1, 2.0, 1.0),
)
ENGINES = ("vllm_v1", "vllm_0_14", "vllm_0_6", "sglang", "trtllm")
# engines whose host and front-end figures `--shared --write` leaves as they are: vLLM 0.6's
# are fitted on its own runs (bench/calibrate_accuracy.py --source lambdalabs --joint)
OWN = ("vllm_0_6",)
# figures of an engine that `--write` leaves as they are, fitted on its own runs: vLLM 0.14's
# front end (its time per streamed token from how BLIS's TTFT rises with the rate, the rest
# with it on BLIS's runs; std/engines says how)
OWN_FIGURES = {
    "vllm_0_14": ("frontend.per_output_token", "frontend.latency", "frontend.per_request")
}
# a front end's statements that say how it works, not figures: never called estimates
SWITCHES = ("workers", "shares_cpu", "concurrent", "batches")
# with --shared: the figures fitted for every engine at once (the kernels stay as calibrated)
SHARED = (
    "host.iteration",
    "host.per_seq",
    "frontend.per_request",
    "frontend.latency",
    "frontend.per_output_token",
)
# with --frontends: after the shared fit, each engine's own front end (its API server)
FRONT = ("frontend.per_request", "frontend.latency", "frontend.per_output_token")
CLIP = math.log(4.0)  # a run off by more than 4x counts as 4x: one broken run cannot steer
SCALE = 0.1  # log-ratios beyond ~10% count linearly, not squared (soft L1)


def overrides(values: np.ndarray) -> dict[str, str]:
    """Engine statements for the figures ``values`` (in each knob's unit)."""
    return {k.path: f"{v:.6g} {k.unit}".strip() for k, v in zip(KNOBS, values, strict=True)}


def residuals(rows: list[ea.Row]) -> np.ndarray:
    """Clipped log-ratios, each run's rows weighted 1/sqrt(rows of the run)."""
    per_run: dict[str, int] = {}
    for r in rows:
        per_run[r.run.id] = per_run.get(r.run.id, 0) + 1
    out = []
    for r in rows:
        ratio = r.simulated / r.metric.value
        x = math.log(ratio) if ratio > 0 and math.isfinite(ratio) else CLIP
        out.append(max(-CLIP, min(CLIP, x)) / math.sqrt(per_run[r.run.id]))
    return np.array(out)


class Fit:
    """Fits one set of knobs on ``runs`` (one engine's, or every engine's with ``shared``:
    then the figures apply to every engine, and only the ``SHARED`` knobs move)."""

    def __init__(self, engine: str, runs: list, max_requests: int, processes: int, paths=None):
        self.engine, self.runs = engine, runs
        self.max_requests, self.processes = max_requests, processes
        self.evaluations = 0
        if paths is None:  # every knob, or the shared ones
            paths = SHARED if engine == "shared" else tuple(k.path for k in KNOBS)
        self.free = [i for i, k in enumerate(KNOBS) if k.path in paths]

    def rows(self, values: np.ndarray) -> list[ea.Row]:
        self.evaluations += 1
        ev = ea.evaluate(
            self.runs, overrides(values), self.processes, max_requests=self.max_requests
        )
        return ev.rows

    def __call__(self, start: np.ndarray, max_nfev: int) -> np.ndarray:
        """Nelder-Mead in the logs of the figures, from a simplex a factor e wide: the
        simulated metrics move in steps (a batch forms or not), which gradients miss."""
        free = self.free
        lo = np.log([k.lo for k in KNOBS])[free]
        hi = np.log([k.hi for k in KNOBS])[free]
        full = np.log(np.asarray(start, dtype=float))
        x0 = np.clip(full[free], lo + 1e-6, hi - 1e-6)

        def values(x):
            out = full.copy()
            out[free] = x
            return np.exp(out)

        size = len(residuals(self.rows(values(x0))))

        def loss(x):
            r = residuals(self.rows(values(x)))
            if len(r) != size:  # a run failed to simulate: far off
                r = np.full(size, CLIP)
            z = (r / SCALE) ** 2
            return float(np.sum(2 * (np.sqrt(1 + z) - 1)))  # soft L1: robust to outliers

        simplex = [x0] + [np.clip(x0 + np.eye(len(x0))[i] * np.where(x0[i] + 1 < hi[i], 1, -1),
                                  lo, hi) for i in range(len(x0))]  # fmt: skip
        fit = minimize(
            loss, x0, method="Nelder-Mead", bounds=list(zip(lo, hi, strict=True)),
            options={"maxfev": max_nfev, "initial_simplex": np.array(simplex),
                     "xatol": 0.02, "fatol": 1e-3},
        )  # fmt: skip
        return values(fit.x)


def by_engine(runs) -> dict[str, list]:
    out: dict[str, list] = {e: [] for e in ENGINES}
    for run in runs:
        out[ea.engine_name(run)].append(run)
    return out


def fit_all(
    runs, args, start: dict | None = None, keep: dict | None = None, held_out: str = ""
) -> dict[str, np.ndarray]:
    """Each engine's figures fitted on its runs among ``runs`` (those in ``keep`` were
    fitted on these same runs already and are kept); an engine without runs takes the
    geometric mean of the others'. ``held_out``: the source left out of ``runs``, for
    ``--shared-from`` (the shared fit on these same runs, made before)."""
    fitted = dict(keep or {})
    if args.shared:
        t = time.perf_counter()
        if args.shared_from:
            saved = json.loads(Path(args.shared_from).read_text())
            raw = saved["loso_fitted"][held_out] if held_out else saved["fitted"]
            values = np.array(raw["vllm_v1"])  # every engine alike
        else:
            x0 = (start or {}).get("vllm_v1", np.array([k.start for k in KNOBS]))
            x0 = np.where([k.path in SHARED for k in KNOBS], x0, 1.0)
            fit = Fit("shared", list(runs), args.max_requests, args.processes)
            values = fit(x0, args.max_nfev)
            print(
                f"  every engine: {len(runs)} runs, {fit.evaluations} evaluations, "
                f"{time.perf_counter() - t:.0f} s: {values}",
                file=sys.stderr,
            )
        if not args.frontends:
            return {e: values for e in ENGINES}
        fitted = {}
        for engine, mine in by_engine(runs).items():
            if not mine:  # no runs of its own: the shared front end
                fitted[engine] = values
                continue
            t = time.perf_counter()
            fit = Fit(engine, mine, args.max_requests, args.processes, FRONT)
            fitted[engine] = fit(values, args.max_nfev)  # from the shared fit on these runs
            print(
                f"  {engine} front end: {len(mine)} runs, {fit.evaluations} evaluations, "
                f"{time.perf_counter() - t:.0f} s: {fitted[engine]}",
                file=sys.stderr,
            )
        return fitted
    for engine, mine in by_engine(runs).items():
        if not mine or engine in fitted:
            continue
        t = time.perf_counter()
        x0 = (start or {}).get(engine, np.array([k.start for k in KNOBS]))
        fit = Fit(engine, mine, args.max_requests, args.processes)
        fitted[engine] = fit(x0, args.max_nfev)
        figures = ", ".join(
            f"{k.path} {v:.4g} {k.unit}" for k, v in zip(KNOBS, fitted[engine], strict=True)
        )
        print(
            f"  {engine}: {len(mine)} runs, {fit.evaluations} evaluations, "
            f"{time.perf_counter() - t:.0f} s: {figures}",
            file=sys.stderr,
        )
    if fitted:
        mean = np.exp(np.mean([np.log(v) for v in fitted.values()], axis=0))
        for engine in ENGINES:
            fitted.setdefault(engine, mean)
    return fitted


def evaluate(runs, fitted: dict[str, np.ndarray] | None, args) -> ea.Evaluation:
    over = (lambda run: overrides(fitted[ea.engine_name(run)])) if fitted else None
    return ea.evaluate(runs, over, args.processes, max_requests=args.max_requests)


VIDUR_CPU = sr.DATA.parent / "vidur" / "history" / "7f14d6a" / "data" / "profiling"
CPU_PARTS = (
    "schedule_median",
    "prepare_inputs_e2e_median",
    "sampler_e2e_median",
    "process_model_outputs_median",
)


def vidur_host_fit(gpu: str = "a100") -> str | None:
    """The host model fitted by least squares on Vidur's measured per-iteration CPU times
    of (2023) vLLM: ``iteration + per_seq * batch + per_rank * (tp - 1)``, a cross-check of
    the engine fit (those runs measured no serving end to end)."""
    import csv

    path = VIDUR_CPU / gpu / "cpu_overheads.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    x = np.array([[1.0, int(r["batch_size"]), int(r["tensor_parallel_degree"]) - 1] for r in rows])
    y = np.array([sum(float(r[k]) for k in CPU_PARTS) for r in rows])  # ms
    c = np.linalg.lstsq(x, y, rcond=None)[0]
    err = np.abs(x @ c - y) / y
    return (
        f"Vidur's {gpu} CPU times ({len(rows)} rows, batch {int(x[:, 1].min())}-"
        f"{int(x[:, 1].max())}, tp 1-{int(x[:, 2].max()) + 1}): iteration {c[0]:.3g} ms, "
        f"per_seq {c[1] * 1e3:.3g} us, per_rank {c[2]:.3g} ms "
        f"(|error| median {np.median(err):.0%}, p90 {np.percentile(err, 90):.0%})"
    )


CATALOGUE = Path(__file__).resolve().parents[1] / "dsl" / "std" / "engines.tsim"


def describe(runs) -> str:
    """Runs by source with their GPUs: ``20 blis (H100_SXM) and 20 datacrunch (H200)``."""
    parts = []
    for source in sr.SOURCES:
        here = [r for r in runs if r.source == source]
        if here:
            parts.append(f"{len(here)} {source} ({', '.join(sorted({r.gpu for r in here}))})")
    return " and ".join(parts)


def write_fit(
    fitted: dict[str, np.ndarray],
    runs,
    shared: bool,
    frontends: bool = False,
    path: Path | None = None,
) -> None:
    """Write ``fitted`` into ``std/engines`` with what each engine was fitted on: its own
    runs, or (``shared``) every run, and only the knobs that were fitted; with
    ``frontends``, the host on every run and each front end on its engine's runs."""
    every = dict.fromkeys(ENGINES, f"every engine's runs together: {describe(runs)}")
    for engine in OWN:  # fitted on their own runs elsewhere: kept
        every.pop(engine)
    own = {e: describe(mine) for e, mine in by_engine(runs).items()}  # "" for no runs: kept
    if shared and frontends:
        write_catalogue(fitted, every, tuple(p for p in SHARED if p.startswith("host.")), path)
        write_catalogue(fitted, own, FRONT, path)
    elif shared:
        write_catalogue(fitted, every, SHARED, path)
    else:
        write_catalogue(fitted, own, tuple(k.path for k in KNOBS), path)
    print(f"wrote {path or CATALOGUE}", file=sys.stderr)


def write_catalogue(
    fitted: dict[str, np.ndarray],
    on: dict[str, str],
    paths: tuple[str, ...] = tuple(k.path for k in KNOBS),
    path: Path | None = None,
) -> None:
    """Put the fitted figures (the knobs ``paths``) into ``std/engines``: each engine's
    ``host``, ``frontend`` and ``kernels`` lines keep their other statements (estimates)
    and say what was fitted on what (``on``: by engine)."""
    import re

    path = path or CATALOGUE
    text = path.read_text("utf-8")
    for engine, values in fitted.items():
        if not on.get(engine):
            continue
        start = text.index(f"\nengine {engine} {{")
        end = text.index("\n}\n", start)
        block = text[start:end]
        kept = OWN_FIGURES.get(engine, ())
        for name in ("host", "frontend", "kernels"):
            own = {p.split(".")[1] for p in kept if p.startswith(name + ".")}
            mine = {
                k.path.split(".")[1]: f"{v:.3g} {k.unit}".strip()
                for k, v in zip(KNOBS, values, strict=True)
                if k.path.startswith(name + ".") and k.path in paths and k.path not in kept
            }
            if not mine:
                continue
            line = re.search(rf"\n  {name} {{([^}}]*)}}[^\n]*", block)
            statements = {}
            if line:
                for part in line.group(1).split(";"):
                    key, _, value = part.strip().partition(" ")
                    if key:
                        statements[key] = value.strip()
            statements.update(mine)
            body = "; ".join(f"{k} {v}" for k, v in statements.items())
            rest = [k for k in statements if k not in mine and k not in (*SWITCHES, *own)]
            note = f"fitted ({', '.join(mine)}) by bench/fit_engines.py on {on[engine]}"
            note += f"; {', '.join(rest)}: estimates" if rest else ""
            new = f"\n  {name} {{ {body} }}\n    // {note}"
            if line:
                old_note = re.match(r"\n    // fitted[^\n]*", block[line.end() :])
                cut = line.end() + (old_note.end() if old_note else 0)
                block = block[: line.start()] + new + block[cut:]
            else:  # after the front end's lines
                after = re.search(r"\n  frontend \{[^\n]*(\n    //[^\n]*)?", block)
                block = block[: after.end()] + new + block[after.end() :]
        text = text[:start] + block + text[end:]
    path.write_text(text, "utf-8")


FAMILIES = ("TTFT", "TPOT", "ITL", "E2E", "throughput")


def table(columns: dict[str, list[ea.Row]]) -> str:
    """Median / p90 |error| per metric family (rows) for each column of rows."""
    head = "| family | " + " | ".join(columns) + " |"
    out = [head, "|---|" + "---|" * len(columns)]
    for fam in (*FAMILIES, "all"):
        cells = []
        for rows in columns.values():
            errs = np.array([abs(r.error) for r in rows if fam == "all" or r.metric.family == fam])
            cells.append(
                f"{np.median(errs):.0%} / {np.percentile(errs, 90):.0%} ({len(errs)})"
                if len(errs)
                else "—"
            )
        out.append(f"| {fam} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loso", action="store_true", help="leave-one-source-out error too")
    p.add_argument("--max-requests", type=int, default=400)
    p.add_argument("--max-nfev", type=int, default=120, help="simulations of each fit")
    p.add_argument("-j", "--processes", type=int, default=2)
    p.add_argument("--json", help="write the fitted figures and the errors here")
    p.add_argument("--from-json", help="take the fitted figures from this --json file")
    p.add_argument(
        "--shared",
        action="store_true",
        help="fit one set of host and front-end figures for every engine (kernels as "
        "calibrated) instead of each engine's own",
    )
    p.add_argument(
        "--frontends",
        action="store_true",
        help="with --shared: then fit each engine's own front end (per request, per output "
        "token, latency) on its runs",
    )
    p.add_argument(
        "--shared-from",
        help="with --shared: take the shared figures (in sample and per held-out source) "
        "from this --json file of an earlier --shared run on the same runs",
    )
    p.add_argument(
        "--write", action="store_true", help="write the fitted figures into std/engines.tsim"
    )
    args = p.parse_args(argv)
    if not sr.DATA.is_dir():
        print(f"error: {sr.DATA}: the measured serving data is not here", file=sys.stderr)
        return 2
    if args.from_json and args.write:
        saved = json.loads(Path(args.from_json).read_text())["fitted"]
        fitted = {e: np.array(v) for e, v in saved.items()}
        write_fit(fitted, sr.load().runs, args.shared, args.frontends)
        return 0
    runs = sr.load().runs
    print(f"{len(runs)} runs", file=sys.stderr)
    before = evaluate(runs, None, args)
    print("fitting on every run", file=sys.stderr)
    fitted = fit_all(runs, args)
    after = evaluate(runs, fitted, args)
    report = {
        "knobs": [k.path + f" ({k.unit})" for k in KNOBS],
        "fitted": {e: [float(x) for x in v] for e, v in fitted.items()},
    }
    print("## Fitted figures\n")
    for engine, values in fitted.items():
        host = "; ".join(
            f"{k.path.split('.')[1]} {v:.3g} {k.unit}"
            for k, v in zip(KNOBS, values, strict=True)
            if k.path.startswith("host")
        )
        front = "; ".join(
            f"{k.path.split('.')[1]} {v:.3g} {k.unit}"
            for k, v in zip(KNOBS, values, strict=True)
            if k.path.startswith("frontend")
        )
        print(f"- `{engine}`: host {{ {host} }}, frontend {{ {front} }}")
    columns = {"defaults (before)": before.rows, "fitted, in sample": after.rows}
    by_source = {}
    if args.loso:
        loso_rows: list[ea.Row] = []
        for source in sr.SOURCES:
            train = [r for r in runs if r.source != source]
            test = [r for r in runs if r.source == source]
            if not test:
                continue
            print(f"leaving out {source}", file=sys.stderr)
            # an engine none of whose runs come from `source` was fitted on `train` already
            untouched = {
                e: fitted[e]
                for e, mine in by_engine(runs).items()
                if mine and all(r.source != source for r in mine)
            }
            keep = None if args.shared else untouched
            held = fit_all(train, args, start=fitted, keep=keep, held_out=source)
            rows = evaluate(test, held, args).rows
            loso_rows += rows
            by_source[source] = rows
            report.setdefault("loso_fitted", {})[source] = {
                e: [float(x) for x in v] for e, v in held.items()
            }
        columns["leave-one-source-out"] = loso_rows
    print("\n## Error, all sources: median / p90 |error| (rows)\n")
    print(table(columns))
    in_sample = {s: [r for r in after.rows if r.run.source == s] for s in sr.SOURCES}
    print("\n## Per source, in sample\n")
    print(table({s: rows for s, rows in in_sample.items() if rows}))
    if by_source:
        print("\n## Per source, held out (leave-one-source-out)\n")
        print(table(by_source))
    cross = vidur_host_fit()
    if cross:
        print(f"\n## Cross-check of the host model\n\n{cross}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.write:
        write_fit(fitted, runs, args.shared, args.frontends)
    return 0


if __name__ == "__main__":
    sys.exit(main())
