"""Stage 2: ``check(module) -> ir.Spec``.

Resolves imports and names, converts units, fills the documented defaults and
validates everything a user can get wrong. It collects every error and raises
one :class:`~tokensim.lang.diagnostics.CompileError` at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path as FsPath

from tokensim import ir
from tokensim.lang import ast, limits
from tokensim.lang.check import catalog, schemas
from tokensim.lang.check import engine as engines
from tokensim.lang.check.cluster import cluster as check_cluster
from tokensim.lang.check.deployment import deployment as check_deployment
from tokensim.lang.check.env import Env
from tokensim.lang.check.faults import faults as check_faults
from tokensim.lang.check.sweep import sweep as check_sweep
from tokensim.lang.check.workload import slo as check_slo
from tokensim.lang.check.workload import workload as check_workload
from tokensim.lang.diagnostics import CompileError, Note, Reporter, did_you_mean, one_of
from tokensim.lang.parse import parse
from tokensim.lang.schema import Val, bind
from tokensim.lang.source import SourceMap, Span

STD_PREFIX = "std/"


def std_dir():
    """The folder of the shipped ``std/`` catalogues (inside the package)."""
    return resources.files("tokensim.dsl").joinpath("std")


def std_names() -> list[str]:
    """Import names of the shipped catalogues, e.g. ``std/hardware``."""
    return sorted(
        STD_PREFIX + p.name[: -len(".tsim")]
        for p in std_dir().iterdir()
        if p.name.endswith(".tsim")
    )


@cache
def _std_module(stem: str) -> tuple[ast.Module, str] | None:
    """A std catalogue, parsed once per process (they are read-only package data)."""
    res = std_dir().joinpath(stem + ".tsim")
    if not res.is_file():
        return None
    text = res.read_text("utf-8")
    return parse(text, f"<std>/{stem}.tsim", SourceMap()), text


@dataclass(frozen=True)
class _Loaded:
    module: ast.Module
    import_name: str | None  # "std/hardware" for std files


class _Unreadable(Exception):
    """An imported file that exists but cannot be read; the message says why."""


class _Loader:
    """Reads imported files once each, reporting missing files and cycles."""

    def __init__(self, sources: SourceMap, rep: Reporter):
        self.sources, self.rep = sources, rep
        self.done: dict[str, _Loaded] = {}
        self.order: list[_Loaded] = []

    def _locate(self, name: str, importer: str) -> tuple[str, str | None, str | None]:
        """(display name, text or None, std import name) for an import string."""
        if name.startswith(STD_PREFIX):
            stem = name[len(STD_PREFIX) :].removesuffix(".tsim")
            found = _std_module(stem) if "/" not in stem else None
            if found is not None:
                return f"<std>/{stem}.tsim", found[1], STD_PREFIX + stem
            return name, None, None
        base = FsPath(importer).parent if not importer.startswith("<") else FsPath.cwd()
        path = base / name
        try:
            if path.suffix != ".tsim" and not path.is_file() and path.name:
                path = path.with_suffix(".tsim")
            if path.is_file():
                return str(path), path.read_text("utf-8"), None
        except UnicodeDecodeError as err:
            raise _Unreadable(f"`{name}` is not UTF-8 text (byte {err.start})") from None
        except OSError as err:  # a name too long, a file that cannot be opened
            raise _Unreadable(f"cannot read `{name}`: {err.strerror or err}") from None
        return str(path), None, None

    def load_imports(self, module: ast.Module, stack: tuple[str, ...]) -> None:
        for stmt in module.statements:
            if stmt.key.text != "import":
                continue
            if len(stmt.items) != 1 or not isinstance(stmt.items[0], ast.String):
                continue  # reported by binding the top level
            lit = stmt.items[0]
            if not lit.value.strip() or len(lit.value) > limits.NAME:
                self.rep.error(
                    "an import names a file: this one is empty"
                    if not lit.value.strip()
                    else f"an import path is at most {limits.NAME} characters",
                    lit.span,
                    help='e.g. `import "std/hardware"` or `import "lib/gpus"`',
                )
                continue
            try:
                display, text, std = self._locate(lit.value, module.file)
            except _Unreadable as err:
                self.rep.error(str(err), lit.span)
                continue
            if text is None:
                hint = None
                if lit.value.startswith(STD_PREFIX):
                    hint = (
                        did_you_mean(lit.value, std_names())
                        or f"the std library has {one_of(std_names())}"
                    )
                self.rep.error(
                    f"cannot find `{lit.value}`", lit.span, help=hint or f"looked for {display}"
                )
                continue
            if display in stack:
                self.rep.error(
                    f"import cycle: `{lit.value}` is already being imported",
                    lit.span,
                    Note(" -> ".join(stack + (display,))),
                )
                continue
            if display in self.done:
                continue
            try:
                if std:
                    child = _std_module(std[len(STD_PREFIX) :])[0]
                    self.sources.add(display, text)
                else:
                    child = parse(text, display, self.sources)
            except CompileError as err:
                self.rep.extend(err.diagnostics)
                continue
            loaded = _Loaded(child, std)
            self.done[display] = loaded
            self.load_imports(child, stack + (display,))
            self.order.append(loaded)


def _index_std(env: Env, sources: SourceMap) -> None:
    """Which std file defines which name, for 'add an import' hints (cheap: no checking)."""
    for name in std_names():
        try:
            found = _std_module(name[len(STD_PREFIX) :])
        except CompileError:
            continue
        for stmt in found[0].statements:
            if stmt.key.text in ("gpu", "link", "model", "engine") and stmt.label:
                env.std_index.setdefault(stmt.key.text, {}).setdefault(stmt.label, name)


def _derived(b, kind: str, written: dict, env: Env):
    """The definition ``b`` with its base's statements under its own (``gpu NAME from
    BASE { ... }``), bound again; ``b`` itself without a base; None after reporting an
    unknown base. Its statements are kept in ``written`` for definitions derived from it."""
    table = written.setdefault(kind, {})
    ref = b.get("base")
    if ref is None:
        table[b.get("name")] = tuple(b.stmt.body)
        return b
    if isinstance(ref.value, schemas.ConfigFile):  # `model NAME from "config.json"`
        base = catalog.config_statements(Val(ref.value.path, ref.span), env, env.rep.sources)
        if base is None:
            return None
    elif ref.value in table:
        base = table[ref.value]
    else:
        env.lookup(kind, ref)  # unknown: reported with a suggestion
        return None
    merged = catalog.derive(kind, base, b.stmt.body or ())
    table[b.get("name")] = tuple(merged)
    stmt = replace(b.stmt, body=tuple(merged))
    return bind([stmt], schemas.TOP, env.rep, "a definition", None).all(kind)[0]


def check(module: ast.Module, sources: SourceMap | None = None) -> ir.Spec:
    """Check a parsed spec (and what it imports) into an :class:`ir.Spec`.

    ``sources`` should hold the text of ``module`` (as :func:`parse` records it)
    so diagnostics can quote lines. Raises :class:`CompileError` listing every
    problem found.
    """
    sources = sources if sources is not None else SourceMap()
    rep = Reporter(sources)
    base = FsPath(module.file).parent if not module.file.startswith("<") else FsPath.cwd()
    env = Env(rep, base)
    _index_std(env, sources)
    loader = _Loader(sources, rep)
    loader.load_imports(module, (module.file,))
    if not module.file.startswith("<"):
        env.files.add(module.file)
    env.files.update(name for name, loaded in loader.done.items() if loaded.import_name is None)

    # Definitions from imported files first, then the spec's own statements.
    bound_files = []
    for loaded in loader.order:
        top = bind(loaded.module.statements, schemas.TOP, rep, f"`{loaded.module.file}`", None)
        for key in ("cluster", "deployment", "workload", "slo", "sweep", "metrics", "name"):
            for b in top.all(key):
                rep.error(
                    "an imported file may only define gpus, links, models and engines; "
                    f"found `{key}`",
                    b.stmt.key.span,
                )
        bound_files.append(top)
    top = bind(module.statements, schemas.TOP, rep, "a spec file", None)
    bound_files.append(top)

    definitions = (
        ("link", catalog.link),
        ("gpu", catalog.gpu),
        ("model", catalog.model),
        ("engine", engines.definition),
    )
    written: dict[str, dict[str, tuple]] = {}  # kind -> name -> its statements (derived: merged)
    for kind, build in definitions:
        for file_top in bound_files:
            for b in file_top.all(kind):
                made = b.get("base") is not None  # `from <base>`: a block is optional
                if b.body is None or not isinstance(b.get("name"), str):
                    continue  # no block: its own error says so
                if b.stmt.body is None and not made:
                    continue
                errors = len(rep.diagnostics)
                if kind != "engine":  # an engine keeps its base (its on_gpu choices)
                    name = b.get("name")
                    b = _derived(b, kind, written, env)
                    if b is None:
                        env.broken.add((kind, name))
                        continue
                value = build(b, env)
                if value is not None:
                    env.define(kind, b.get("name"), value, b.stmt.items[0].span)
                elif len(rep.diagnostics) > errors:
                    env.broken.add((kind, b.get("name")))

    spec_parts = {k: top.one(k) for k in ("cluster", "deployment", "workload", "slo", "sweep")}
    is_deployment = any(spec_parts.values())
    cluster = deployment = workload = slo = sweep = faults = None
    if is_deployment:
        needs = ["cluster"] + (
            ["deployment"] if any(spec_parts[k] for k in ("workload", "slo", "sweep")) else []
        )
        for key in needs:
            if spec_parts[key] is None:
                rep.error(
                    f"the spec has no `{key}` block",
                    _file_start(module),
                    help=f"a spec that deploys anything needs `{key} {{ ... }}`",
                )
        errors_before = len(rep.diagnostics)
        if spec_parts["cluster"] is not None and spec_parts["cluster"].body is not None:
            cluster = check_cluster(spec_parts["cluster"].body, env)
        cluster_ok = cluster is not None and len(rep.diagnostics) == errors_before
        # A broken cluster would make every placement fail too: report it alone.
        if cluster_ok and spec_parts["deployment"] and spec_parts["deployment"].body:
            deployment = check_deployment(spec_parts["deployment"].body, cluster, env)
        if spec_parts["workload"] and spec_parts["workload"].body:
            workload = check_workload(spec_parts["workload"].body, env)
        if spec_parts["slo"] and spec_parts["slo"].body:
            slo = check_slo(spec_parts["slo"].body, env, workload)
        failing = top.one("faults")
        if failing is not None and failing.body is not None and cluster_ok:
            faults = check_faults(failing.body, cluster, env)
        if spec_parts["sweep"]:
            sweep = check_sweep(spec_parts["sweep"].stmt, module.statements, schemas.TOP, env)

    rep.raise_if_any()
    name_val = top.value("name", "name")
    name = name_val.value if isinstance(name_val, Val) else FsPath(module.file).stem
    own_file = module.file

    used = _used(cluster, deployment, sweep)

    def kept(kind: str):
        table = env.defs.get(kind, {})
        return tuple(
            value
            for key, (value, span) in sorted(table.items())
            if (kind, key) in used or span.file == own_file
        )

    reported = top.one("metrics")
    wanted = reported.body.value("percentiles") if reported and reported.body else None
    return ir.Spec(
        name=name,
        file=module.file,
        gpus=kept("gpu"),
        links=kept("link"),
        models=kept("model"),
        cluster=cluster,
        deployment=deployment,
        workload=workload,
        slo=slo,
        sweep=sweep,
        percentiles=tuple(sorted(set(wanted))) if wanted else (),
        faults=faults,
    )


def _used(
    cluster: ir.Cluster | None, deployment: ir.Deployment | None, sweep: ir.Sweep | None
) -> set[tuple[str, str]]:
    """(kind, name) of every definition the cluster, deployment and sweep refer to."""
    used: set[tuple[str, str]] = set()
    axes = [*sweep.axes, *(a for group in sweep.zipped for a in group)] if sweep else []
    used |= {(axis.names, value) for axis in axes if axis.names for value in axis.values}
    for node in cluster.nodes if cluster else ():
        used |= {
            ("gpu", node.gpu.name),
            ("link", node.gpu.host_link.name),
            ("link", node.host_link.name),
        }
        if node.link:
            used.add(("link", node.link.name))
    for net in cluster.networks if cluster else ():
        used.add(("link", net.link.name))
    for pool in deployment.pools if deployment else ():
        used.add(("model", pool.model.name))
        if pool.speculative is not None and pool.speculative.draft is not None:
            used.add(("model", pool.speculative.draft.name))
    return used


def _file_start(module: ast.Module) -> Span:
    return Span(module.file, 1, 1, 1, 2)


def check_text(text: str, filename: str = "<string>") -> ir.Spec:
    """Parse and check ``text`` in one step (names in errors use ``filename``)."""
    sources = SourceMap()
    return check(parse(text, filename, sources), sources)


@cache
def std_engines() -> dict[str, engines.EngineDef]:
    """The engines ``std/engines`` defines, checked once per process (the default
    engine comes from here when a spec neither defines nor imports it)."""
    module, text = _std_module("engines")
    sources = SourceMap()
    sources.add(module.file, text)
    rep = Reporter(sources)
    env = Env(rep, FsPath.cwd())
    _index_std(env, sources)
    top = bind(module.statements, schemas.TOP, rep, f"`{module.file}`", None)
    out = {}
    for b in top.all("engine"):
        value = engines.definition(b, env)
        if value is not None:
            out[value.name] = value
    rep.raise_if_any()
    return out


@cache
def std_engine(name: str) -> engines.PoolEngine:
    """The std engine ``name`` as a pool on no GPU it has ``on_gpu`` choices for runs it,
    without overrides."""
    rep = Reporter(SourceMap())
    engine = engines.build(std_engines()[name], None, (), Env(rep, FsPath.cwd()))
    rep.raise_if_any()
    return engine


@cache
def std_spec(stem: str) -> ir.Spec:
    """The checked definitions of the std catalogue ``std/<stem>`` (``hardware``, ``models``)."""
    text = std_dir().joinpath(stem + ".tsim").read_text("utf-8")
    return check_text(text, f"<std>/{stem}.tsim")


def check_file(path: str | FsPath) -> ir.Spec:
    """Read, parse and check the spec at ``path``."""
    path = FsPath(path)
    return check_text(path.read_text("utf-8"), str(path))
