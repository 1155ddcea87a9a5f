"""DataFrames for notebooks: a run's files, a sweep's points and a search's configurations
as pandas reads them (``pip install "tokensim[pandas]"``).

>>> import tokensim
>>> run = tokensim.run("specs/single_gpu_8b.tsim")
>>> frames = run.to_pandas()
>>> frames.requests["ttft_s"].describe()
>>> points = tokensim.sweep("specs/tp2_x4.tsim")          # a row per sweep point
>>> best, answer = tokensim.search("specs/capacity_70b.tsim", goal="min-cost")

The frames hold what the result files hold, column for column (requests.csv,
iterations.csv, timeseries.csv, sweep.csv, search.csv), read from the files a run writes,
so a notebook sees the figures ``tokensim run`` writes.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _pandas():
    try:
        import pandas
    except ImportError:  # an optional dependency: say how to get it
        raise ImportError(
            "DataFrames need pandas: pip install pandas (or pip install 'tokensim[pandas]')"
        ) from None
    return pandas


@dataclass
class Frames:
    """A run's result files as DataFrames."""

    requests: object  # requests.csv: a row per request
    iterations: object  # iterations.csv: a row per iteration (or decode run) of an instance
    timeseries: object  # timeseries.csv: instances' and links' state over time
    metrics: dict  # metrics.json, as the run's ``metrics``


def run_frames(run) -> Frames:
    """:meth:`tokensim.Run.to_pandas`."""
    pd = _pandas()
    from tokensim.report.files import write

    with tempfile.TemporaryDirectory(prefix="tokensim-frames-") as tmp:
        write(run.result, tmp, run.metrics)
        folder = Path(tmp)
        return Frames(
            pd.read_csv(folder / "requests.csv"),
            pd.read_csv(folder / "iterations.csv"),
            pd.read_csv(folder / "timeseries.csv"),
            run.metrics,
        )


def _module(spec, overrides):
    """(module, sources, checked spec) of a path or spec text, with ``overrides``."""
    from tokensim.api import parsed
    from tokensim.lang.check import check

    module, sources = parsed(spec, overrides)
    return module, sources, check(module, sources)


def _explorer(jobs, cache):
    from tokensim.explore.cache import Cache
    from tokensim.explore.execute import executor

    return executor("local", jobs), Cache(cache)


def sweep(spec, overrides=None, jobs: int | None = None, cache=None, out=None):
    """Every point of ``spec``'s sweep (a path or spec text) as a DataFrame: a row per
    point with its values and figures, as sweep.csv has them. ``jobs``: simulations at a
    time (default: a process per CPU); ``cache``: a folder that keeps finished
    simulations (default: none); ``out``: a folder to write the points' results into
    (default: a temporary one)."""
    pd = _pandas()
    from tokensim.explore.sweep import run_sweep

    module, sources, checked = _module(spec, overrides)
    if checked.sweep is None:
        raise ValueError("the spec has no sweep block: use tokensim.run for one run")
    run_on, store = _explorer(jobs, cache)
    with tempfile.TemporaryDirectory(prefix="tokensim-sweep-") as tmp:
        folder = Path(out) if out is not None else Path(tmp)
        run_sweep(module, sources, checked, folder, run_on, store, page=out is not None, bar=False)
        return pd.read_csv(folder / "sweep.csv")


def search(
    spec,
    goal: str = "min-cost",
    overrides=None,
    seeds: int = 3,
    attainment: float | None = None,
    jobs: int | None = None,
    cache=None,
):
    """``tokensim search`` from Python: (a DataFrame of every configuration, best first,
    as search.csv has them; the answer in a sentence). ``goal`` is ``max-rate``,
    ``min-cost`` or ``min-gpus``."""
    pd = _pandas()
    from tokensim.explore import search as s

    if goal not in ("max-rate", "min-cost", "min-gpus"):
        raise ValueError(f"goal is max-rate, min-cost or min-gpus, not {goal!r}")
    module, sources, checked = _module(spec, overrides)
    base = checked.workload.seed if checked.workload else 0
    settings = s.Settings(goal, tuple(range(base, base + seeds)), attainment)
    run_on, store = _explorer(jobs, cache)
    outcomes = s.search(module, sources, checked, settings, run_on, store, bar=False)
    paths = list(outcomes[0].config.values) if outcomes else []
    table = io.StringIO(s.table(outcomes, goal, paths))  # search.csv's text
    return pd.read_csv(table), s.answer(outcomes, goal, checked)
