"""The Python API, for notebooks and scripts.

>>> import tokensim
>>> spec = tokensim.load("specs/single_gpu_8b.tsim", {"workload.requests": "500"})
>>> run = tokensim.run(spec, seed=3)
>>> run.metrics["ttft_s"]["p90"]          # seconds
>>> run.requests["ttft_s"]                # a numpy array, one value per request

``load`` takes a path or the text of a spec, and overrides as ``{path: value}``
with values written as in a spec (``"20/s"``, ``"64"``, ``"H100_SXM x 8"``).
Errors raise :class:`tokensim.CompileError`, whose ``str`` is the located message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokensim import ir
from tokensim.lang.check import check
from tokensim.lang.override import override
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap


def load(source: str | Path, overrides: dict[str, str] | None = None) -> ir.Spec:
    """Check a spec from a file path or from spec text, with ``overrides`` applied."""
    return check(*parsed(source, overrides))


def parsed(source: str | Path, overrides: dict[str, str] | None = None):
    """(syntax tree, sources) of a spec from a file path or from spec text, with
    ``overrides`` applied: what :func:`load` checks."""
    sources = SourceMap()
    path = Path(source) if isinstance(source, Path) or str(source).endswith(".tsim") else None
    if path is not None:
        module = parse(path.read_text("utf-8"), str(path), sources)
    else:
        module = parse(str(source), "<string>", sources)
    for key, value in (overrides or {}).items():
        module = override(module, key, str(value), sources)
    return module, sources


@dataclass
class Run:
    """A finished run: ``metrics`` as in metrics.json, per-request and per-instance arrays."""

    metrics: dict
    requests: dict[str, np.ndarray]
    timeseries: dict[str, np.ndarray]
    result: object  # the simulator's full Result

    def to_pandas(self):
        """The run's requests, iterations and time series as DataFrames, with the columns
        of requests.csv, iterations.csv and timeseries.csv (needs pandas); see
        :mod:`tokensim.frames`."""
        from tokensim.frames import run_frames

        return run_frames(self)

    def write(self, out_dir: str | Path, page: bool = True) -> None:
        """Write the result folder into ``out_dir``, as ``tokensim run`` does: metrics.json,
        requests.csv, timeseries.csv, iterations.csv, graph.json, run.json, spec.tsim
        (when the spec came from a file) and, unless ``page`` is false, report.html."""
        from tokensim.graph import lower
        from tokensim.report import write, write_page

        spec = self.result.spec
        source = Path(spec.file)
        text = source.read_text("utf-8") if source.is_file() else None
        write(self.result, out_dir, self.metrics, graph=lower(spec), spec_text=text)
        if page:
            write_page(out_dir)


def run(
    spec: ir.Spec | str | Path,
    seed: int | None = None,
    overrides: dict[str, str] | None = None,
    transitions: bool = False,
) -> Run:
    """Simulate ``spec`` (a checked spec, a path or spec text); ``seed`` overrides its seed;
    with ``transitions``, ``result.transitions`` keeps every request's state changes."""
    from tokensim.graph import lower
    from tokensim.metrics import per_request, summarize
    from tokensim.sim.run import simulate

    if not isinstance(spec, ir.Spec):
        spec = load(spec, overrides)
    elif overrides:
        raise ValueError("overrides apply when loading: use load(path, overrides)")
    if spec.sweep is not None:
        import warnings

        warnings.warn(
            f"{spec.name}: run() simulates the spec's own values and ignores its sweep "
            f"({spec.sweep.points} points); tokensim.sweep() runs them all",
            stacklevel=2,
        )
    result = simulate(lower(spec), seed=seed, transitions=transitions)
    requests = {**result.requests, **per_request(result)}
    series = {inst.name: inst.series for inst in result.instances}
    return Run(summarize(result), requests, series, result)
