"""A measured run simulated on a spec's deployment: the same requests, the same way sent.

The spec gives the deployment (cluster, pools, model, engine and its flags); its
``workload`` and ``sweep`` are replaced by the run's: its requests' lengths (a trace
when the file lists them), its arrival process and its number of requests, at seed 0.
The simulated counterpart of each measured figure is computed the way the benchmark
computes it (TPOT per request from its end-to-end time, ITL per streamed chunk).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokensim import ir
from tokensim.lang import ast
from tokensim.lang.check import check
from tokensim.lang.override import override
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap
from tokensim.replay.results import Observed


@dataclass(frozen=True)
class Deployment:
    """A spec's deployment, parsed once (its workload and sweep left out)."""

    module: ast.Module
    text: str
    engine: ir.Engine  # the first pool's engine: where a fit starts
    model: ir.Model  # the first pool's model
    serve: object = None  # the serve command's Settings (tokensim.replay.serve), if given

    @property
    def path(self) -> str:
        return self.module.file


def load(path: str | Path, serve_cmd: str | None = None) -> Deployment:
    """The deployment of the spec at ``path`` (a CompileError if it does not check), with
    the settings of the server's launch command ``serve_cmd`` (:mod:`.serve`) laid on
    every pool."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as e:
        raise FileNotFoundError(f"{path}: {e.strerror or e}") from None
    sources = SourceMap()
    module = parse(text, str(path), sources)
    kept = tuple(s for s in module.statements if s.key.text not in ("workload", "sweep"))
    module = dataclasses.replace(module, statements=kept)
    settings = None
    if serve_cmd is not None:  # tp, memory... first: the spec may not deploy without them
        from tokensim.replay import serve

        settings = serve.settings(serve_cmd)
        plain = {k: v for k, v in settings.paths.items() if k not in serve.DEFERRED}
        module = _lay(module, sources, plain)
    spec = check(module, sources)
    if not spec.deployment.pools:
        raise ValueError(f"{path}: the spec has no deployment to replay the runs on")
    if settings is not None and set(serve.DEFERRED) & set(settings.paths):
        serve.resolve(settings, spec.deployment.pools[0].batching.name)
        module = _lay(module, sources, settings.paths)
        spec = check(module, sources)
    first = spec.deployment.pools[0]
    return Deployment(module, text, first.engine, first.model, settings)


def _base_name(name: str) -> str:
    """A Hugging Face model name without its organisation and tuning suffixes."""
    base = name.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in ("-instruct", "-chat", "-hf", "-it", "-fp8", "-base", "-v0.1"):
        base = base.removesuffix(suffix)
    return base


def model_mismatch(dep: Deployment, obs: Observed) -> str | None:
    """A warning when the run names a model the spec's model does not cite (its ``source``
    lines name the Hugging Face repositories its shapes came from); None when they agree or
    either says nothing."""
    if not obs.model:
        return None
    cited = [s for s in dep.model.sources if "huggingface.co/" in s]
    if not cited:
        return None
    measured = _base_name(obs.model)
    for source in cited:
        repo = source.split("huggingface.co/", 1)[1].split()[0]
        parts = repo.split("/")
        if len(parts) >= 2:
            name = _base_name(parts[1])
            if name in measured or measured in name:
                return None
    return (
        f"{obs.name} measured `{obs.model}`; the spec serves `{dep.model.name}`, whose "
        f"shapes come from {', '.join(c.split()[0] for c in cited)}"
    )


def _lay(module: ast.Module, sources: SourceMap, paths: dict[str, str]) -> ast.Module:
    """``module`` with ``paths`` (under ``deployment.<pool>.``) set on every pool."""
    pools = [
        s.label
        for d in module.statements
        if d.key.text == "deployment" and d.body
        for s in d.body
        if s.key.text == "pool" and s.label
    ]
    for pool in pools:
        for key, value in paths.items():
            module = override(module, f"deployment.{pool}.{key}", value, sources)
    return module


def _trace(obs: Observed, folder: Path) -> Path:
    """A tokensim trace of the run's lengths, and of its send times where the file has them
    (else the times come from ``arrivals``), named by its content."""
    sent = obs.sent if obs.sent is not None else np.zeros(len(obs.prompts))
    times = [repr(float(t)) for t in sent]
    if obs.prefixes is None:
        lines = ["arrival_s,prompt_tokens,output_tokens"]
        rows = zip(times, obs.prompts, obs.outputs, strict=True)
        lines += [f"{t},{int(p)},{int(o)}" for t, p, o in rows]
    else:
        lines = ["arrival_s,prompt_tokens,output_tokens,prefix_hashes,prefix_block_tokens"]
        lines += [
            f"{t},{int(p)},{int(o)},{' '.join(map(str, ids))},{obs.prefix_block}"
            for t, p, o, ids in zip(times, obs.prompts, obs.outputs, obs.prefixes, strict=True)
        ]
    text = "\n".join(lines) + "\n"
    path = folder / f"replay-{hashlib.sha1(text.encode()).hexdigest()[:16]}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return path


def _exact(arrivals: str) -> str:
    """A run's random arrivals drawn at exactly its rate (``exact on``): a draw of a few
    hundred gaps misses the rate by several percent (300 at 1/s with seed 0: 16% slow),
    which the measured run's own draw did not."""
    if not arrivals.startswith(("poisson", "gamma")):
        return arrivals
    if arrivals.endswith("}"):
        return arrivals[:-1].rstrip() + "; exact on }"
    return arrivals + " { exact on }"


def workload_text(obs: Observed, folder: Path) -> str:
    """The ``workload`` block that sends ``obs``'s requests as the benchmark did."""
    if obs.prompts is not None:
        lengths = f'trace "{_trace(obs, folder).as_posix()}"'
    else:
        lengths = f"lengths {obs.lengths}"
    # sent at the times the file recorded: the trace's own
    arrivals = "" if obs.sent is not None else f"  arrivals {_exact(obs.arrivals)}\n"
    return f"workload {{\n{arrivals}  {lengths}\n  requests {obs.requests}\n  seed 0\n}}\n"


def spec(
    dep: Deployment, obs: Observed, overrides: dict[str, str], folder: Path
) -> tuple[ir.Spec, str]:
    """The checked spec that replays ``obs`` on ``dep`` with ``overrides`` (paths inside
    each pool's engine: ``host.iteration`` -> ``deployment.<pool>.engine.host.iteration``),
    and the workload text used."""
    sources = SourceMap()
    sources.add(dep.path, dep.text)
    text = workload_text(obs, folder)
    name = f"<replay of {obs.label}>"
    extra = parse(text, name, sources)
    module = dataclasses.replace(dep.module, statements=dep.module.statements + extra.statements)
    module = _lay(module, sources, {f"engine.{k}": v for k, v in overrides.items()})
    return check(module, sources), text


def simulated(obs: Observed, run) -> dict[str, float]:
    """The simulated value of each of ``obs``'s metrics from a :class:`tokensim.api.Run`
    (NaN where no request completed), and the requests it rejected (:data:`REJECTED`)."""
    from tokensim.metrics import stat

    rejected = float(run.metrics["requests"]["rejected"])
    if not run.metrics["requests"]["completed"]:
        return {**dict.fromkeys(obs.metrics, float("nan")), REJECTED: rejected}
    req = run.requests
    cols = {k: req[f"{k}_s"][np.isfinite(req[f"{k}_s"])] for k in ("ttft", "tpot", "e2e")}
    res = run.result
    out = {REJECTED: rejected}
    for key in obs.metrics:
        name, st = key.split("_", 1)
        if name == "throughput":
            out[key] = float(run.metrics["throughput"][st])
        elif name == "itl":
            out[key] = stat(res.itl_s, st, res.itl_weights)
        else:
            out[key] = stat(cols[name], st)
    return out


def replay(dep: Deployment, obs: Observed, overrides: dict[str, str], folder: Path):
    """Replay ``obs``: the :class:`tokensim.api.Run`."""
    from tokensim.api import run

    checked, _ = spec(dep, obs, overrides, folder)
    with contextlib.redirect_stderr(io.StringIO()):  # cost-model notes: said once elsewhere
        return run(checked)


def simulate(
    dep: Deployment, obs: Observed, overrides: dict[str, str], folder: Path
) -> dict[str, float]:
    """Replay ``obs`` and return the simulated value of each measured metric
    (:func:`simulated`)."""
    return simulated(obs, replay(dep, obs, overrides, folder))


REJECTED = "requests_rejected"  # in a replay's figures: the requests the deployment refused


def rejections(obs: Observed, sim: dict[str, float], why: list[str] | None = None) -> str | None:
    """A warning when the replay refused requests the measured server served."""
    n = int(sim.get(REJECTED, 0))
    if not n:
        return None
    reason = f" ({why[0]})" if why else ""
    return (
        f"{obs.label}: the spec's deployment rejected {n} of {obs.requests} requests{reason}, "
        "which the measured server served; its figures are of a different load"
    )
