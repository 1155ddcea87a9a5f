"""``tokensim calibrate --bench``: fit a spec's engine to benchmark results, write a profile.

The profile is a ``.tsim`` file with one engine, ``<name> from <the spec's engine>``,
holding the fitted figures and where they came from; the spec imports it and names the
engine in place of the one it ran.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from tokensim.lang.diagnostics import CompileError
from tokensim.perf.tables import replacing
from tokensim.replay import fit as fitting
from tokensim.replay import replay, results

_COLUMNS = ("TTFT", "TPOT", "ITL", "E2E", "throughput", "all")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def compile_failed(e: CompileError) -> int:
    """Say a spec's located errors (they end with a newline); the exit status 1."""
    print(str(e), file=sys.stderr, end="" if str(e).endswith("\n") else "\n")
    return 1


def read_all(paths: list[str]) -> list[results.Observed]:
    runs = []
    for p in paths:
        runs += results.read(p)
    return runs


def _cell(e: tuple[float, float, int] | None) -> str:
    return "—" if e is None else f"{100 * e[0]:.0f}% / {100 * e[1]:.0f}%"


def error_rows(columns: dict[str, dict[str, tuple[float, float, int]]]) -> list[list[str]]:
    """The error table's cells: a header, then one row per family, one column per fit
    (median / p90)."""
    rows = [["family", *columns]]
    rows += [
        [f, *(_cell(c.get(f)) for c in columns.values())]
        for f in _COLUMNS
        if any(f in c for c in columns.values())
    ]
    return rows


def error_table(columns: dict[str, dict[str, tuple[float, float, int]]]) -> str:
    """:func:`error_rows` as a Markdown table."""
    head, *rows = error_rows(columns)
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def figures_table(result: fitting.Fit) -> str:
    """The fitted figures before and after, as a Markdown table."""
    lines = ["| figure | before | after |", "|---|---|---|"]
    for knob, b, a in zip(result.knobs, result.start, result.values, strict=True):
        lines.append(f"| {knob.path} | {knob.text(b)} | {knob.text(a)} |")
    return "\n".join(lines)


def profile_import(dep: replay.Deployment, output: Path) -> str:
    """The import that brings the spec's engine into the profile at ``output`` (a
    ValueError when the spec defines it itself: the profile cannot import a spec)."""
    from tokensim.lang.check import std_engines

    base = dep.engine.name
    if base in std_engines():
        return 'import "std/engines"'
    where = Path(dep.engine.span.file) if dep.engine.span else None
    if where is None or where.resolve() == Path(dep.path).resolve():
        raise ValueError(
            f"engine `{base}` is defined in the spec itself; move it to a file of its own "
            "that the spec imports, so that the profile can import it too"
        )
    rel = Path(os.path.relpath(where.resolve(), output.resolve().parent))
    return f'import "{rel.as_posix()}"'


def profile_text(
    dep: replay.Deployment,
    name: str,
    result: fitting.Fit,
    runs: list[results.Observed],
    imports: str,
    summary: str,
) -> str:
    """The profile: ``engine <name> from <base> { fitted figures }`` with its sources."""
    base = dep.engine.name
    files = sorted({r.name.split(":")[0] for r in runs})
    blocks: dict[str, list[str]] = {}
    for path, text in result.overrides().items():
        block, key = path.split(".")
        blocks.setdefault(block, []).append(f"{key} {text}")
    body = [
        f'  source "tokensim calibrate --bench: fitted on {len(runs)} run'
        f"{'s' if len(runs) != 1 else ''} of {Path(dep.path).name} "
        f'({", ".join(sorted({r.format for r in runs}))}): {", ".join(files)}"',
        f'  source "error (median / p90) {summary}"',
    ]
    body += [f"  {block} {{ {'; '.join(items)} }}" for block, items in blocks.items()]
    return (
        f"// Written by `tokensim calibrate --bench`: engine `{base}` as fitted to measured\n"
        f"// runs of the deployment in {Path(dep.path).name}. Import this file and name\n"
        f"// `{name}` where the spec named `{base}` (keep the braces after it).\n"
        + f"{imports}\n"
        + f"\nengine {name} from {base} {{\n"
        + "\n".join(body)
        + "\n}\n"
    )


def _summary(before: dict, after: dict) -> str:
    parts = []
    for f in ("TTFT", "TPOT", "E2E", "throughput"):
        if f in before and f in after:
            b, a = before[f], after[f]
            parts.append(
                f"{f} {100 * b[0]:.0f}%/{100 * b[1]:.0f}% -> {100 * a[0]:.0f}%/{100 * a[1]:.0f}%"
            )
    return "before -> after: " + ", ".join(parts)


def load_deployment(args) -> replay.Deployment | int:
    """The deployment of ``--spec`` with ``--serve-cmd``'s settings, or an exit status
    after saying why not (what the serve command set, and left out, goes to stderr)."""
    from tokensim.replay import serve

    try:
        dep = replay.load(args.spec, getattr(args, "serve_cmd", None))
    except CompileError as e:
        return compile_failed(e)
    except (FileNotFoundError, ValueError, serve.ServeError) as e:
        return _fail(str(e))
    s = dep.serve
    if s is not None:
        if not serve.engine_matches(s.engine, dep.engine.name):
            print(
                f"warning: the serve command launches {s.engine}; the spec's pools run "
                f"`{dep.engine.name}`",
                file=sys.stderr,
            )
        if not args.quiet:
            said = "; ".join(f"{k} {v}" for k, v in s.paths.items()) or "nothing modelled"
            print(f"serve command: {said} (on every pool)", file=sys.stderr)
            if s.ignored:
                print(f"  ignored (nothing modelled): {' '.join(s.ignored)}", file=sys.stderr)
        if s.unknown:
            print(
                f"warning: serve flags tokensim does not model: {' '.join(s.unknown)}",
                file=sys.stderr,
            )
    return dep


def inputs(args) -> tuple[list[results.Observed], replay.Deployment] | int:
    """The runs of ``--bench`` (cut to ``--max-requests``) and the deployment of
    ``--spec``, or an exit status after saying why not."""
    try:
        runs = [results.truncate(r, args.max_requests) for r in read_all(args.bench)]
    except results.ResultError as e:
        return _fail(str(e))
    dep = load_deployment(args)
    return dep if isinstance(dep, int) else (runs, dep)


def cmd_calibrate_bench(args) -> int:
    output = Path(args.output)
    if output.suffix != ".tsim":
        return _fail(f"the profile is a spec file: name it *.tsim, not {output.name}")
    loaded = inputs(args)
    if isinstance(loaded, int):
        return loaded
    runs, dep = loaded
    name = args.name or f"{dep.engine.name}_calibrated"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name == dep.engine.name:
        return _fail(
            f"--name {name!r}: an engine's name is a word of letters, digits and _, "
            f"other than the engine it is fitted from (`{dep.engine.name}`)"
        )
    try:
        imports = profile_import(dep, output)
    except ValueError as e:
        return _fail(str(e))
    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    for r in runs:
        lengths = "per-request lengths" if r.prompts is not None else f"lengths {r.lengths}"
        say(f"{r.name}: {r.format}, {r.requests} requests, {r.arrivals}, {lengths}")
        for note in r.notes:
            say(f"  note: {note}")
        mismatch = replay.model_mismatch(dep, r)
        if mismatch:
            print(f"warning: {mismatch}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tokensim-replay-") as tmp:
        try:
            free = len(fitting.free_knobs(fitting.KNOBS, len(runs)))
            say(f"fitting {free} engine figures on {len(runs)} run(s) ...")
            result = fitting.fit(
                dep,
                runs,
                Path(tmp),
                max_evaluations=args.max_evaluations,
                progress=say,
                held_out=args.holdout,
            )
        except CompileError as e:
            return compile_failed(e)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for obs, sim in zip(runs, result.before, strict=True):
        warning = replay.rejections(obs, sim)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    before = fitting.errors(runs, result.before)
    after = fitting.errors(runs, result.after)
    columns = {"before": before, "fitted, in sample": after}
    if result.held_out is not None:
        columns["each run held out"] = fitting.errors(runs, result.held_out)
    text = profile_text(dep, name, result, runs, imports, _summary(before, after))
    try:
        with replacing(output) as tmp:
            tmp.write_text(text, "utf-8")
    except OSError as e:
        return _fail(f"cannot write {output}: {e.strerror or e}")
    if args.quiet:
        return 0
    fitted = f"engine `{dep.engine.name}` fitted on {len(runs)} run(s)"
    print(f"{fitted}, {result.evaluations} replays of each\n")
    print(figures_table(result))
    print("\nError, median / p90 of |simulated - measured| / measured:\n")
    print(error_table(columns))
    print(f'\nwrote {output}: `import "{output.name}"` and run `engine {name}`')
    return 0
