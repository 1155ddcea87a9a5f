"""The ``tokensim`` command.

Exit status: 0 on success, 1 when a spec has errors (printed compiler-style
on stderr), 2 on a usage error (bad option, unreadable file).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from tokensim import __version__
from tokensim.dump import dump
from tokensim.lang import limits
from tokensim.lang.check import check
from tokensim.lang.diagnostics import CompileError, render_all
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap

DESCRIPTION = """\
tokensim simulates LLM inference serving. You describe a deployment -- GPUs,
links, model, pools of instances, scheduling, KV-cache policy, workload and
SLOs -- in a .tsim file; tokensim checks it, shows its graph and simulates it.

Start with one of the shipped examples:
  tokensim check specs/single_gpu_8b.tsim
  tokensim graph specs/disaggregated.tsim
"""

EPILOG = (
    "Language reference: docs/reference.md (or the mkdocs site). "
    "Exit status: 0 ok, 1 spec errors, 2 usage."
)


class _Usage(Exception):
    """A problem with the command line or a file that cannot be read."""


def _seed(text: str) -> int:
    """A ``--seed``: a whole number from 0 to the language's limit."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= limits.SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {limits.SEED}, not {value}")
    return value


def _read(path: str) -> tuple[str, str]:
    p = Path(path)
    if not p.exists():
        raise _Usage(f"no such file: {path}")
    if p.is_dir():
        raise _Usage(f"{path} is a folder, not a .tsim file")
    try:
        return p.read_text("utf-8"), str(p)
    except UnicodeDecodeError as err:
        raise _Usage(f"{path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise _Usage(f"cannot read {path}: {err.strerror}") from None


def _compile(path: str, stage: str, sets: list[str] | None = None, sources=None):
    """Parse and check ``path`` up to ``stage`` ('ast', 'ir' or 'graph'), applying
    ``sets`` (``path=value`` overrides) first. ``sources`` collects the texts read."""
    from tokensim.lang.override import override

    text, name = _read(path)
    sources = sources if sources is not None else SourceMap()
    module = parse(text, name, sources)
    for item in sets or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _Usage(f"--set takes PATH=VALUE, like workload.arrivals.rate=20/s; got {item!r}")
        module = override(module, key.strip(), value.strip(), sources)
    if stage == "ast":
        return module
    spec = check(module, sources)
    if stage == "ir":
        return spec
    from tokensim.graph import lower  # networkx is only needed from here on

    return lower(spec)


def _root(path: str) -> str:
    return str(Path(path).resolve().parent)


def cmd_check(args) -> int:
    failed = unreadable = 0
    for path in args.specs:
        try:
            if args.dump:
                result = _compile(path, args.dump, args.set)
                if args.dump == "graph":
                    from tokensim.graph import render as graph_render

                    sys.stdout.write(graph_render.dump(result))
                else:
                    sys.stdout.write(dump(result, _root(path)) + "\n")
            else:
                spec = _compile(path, "ir", args.set)
                print(f"ok: {path} ({_summary(spec)})", file=sys.stderr)
        except CompileError as err:
            print(err, file=sys.stderr)
            failed += 1
        except _Usage as err:
            print(f"error: {err}", file=sys.stderr)
            unreadable += 1
    return 2 if unreadable else 1 if failed else 0


def _summary(spec) -> str:
    if spec.deployment is None:
        n = len(spec.gpus) + len(spec.links) + len(spec.models)
        return f"{n} definitions"
    pools = spec.deployment.pools
    gpus = spec.deployment.gpus
    instances = sum(len(p.instances) for p in pools)
    return (
        f"{len(pools)} pool{'s' * (len(pools) != 1)}, {instances} "
        f"instance{'s' * (instances != 1)} on {gpus} GPU{'s' * (gpus != 1)}"
    )


def cmd_graph(args) -> int:
    from tokensim.graph import render as graph_render

    try:
        graph = _compile(args.spec, "graph", args.set)
    except CompileError as err:
        print(err, file=sys.stderr)
        return 1
    if graph.spec.deployment is None and graph.spec.cluster is None:
        print(f"error: {args.spec} has no cluster or deployment to draw", file=sys.stderr)
        return 1
    out = {"text": graph_render.text, "dot": graph_render.dot, "json": graph_render.to_json}[
        args.format
    ](graph)
    if args.output:
        try:
            Path(args.output).write_text(out, "utf-8")
        except OSError as err:  # a folder, a read-only place, a missing parent
            print(f"error: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(out)
    return 0


def _progress(stream, every_s: float = 0.1):
    """A run's progress on a terminal, called as the simulation reports it: the requests
    done, their rate, the time left and the simulated time (None when output is
    redirected); ``.close()`` clears it."""
    from tokensim.progress import progress_bar

    return progress_bar(stream, "requests", "req", every_s, lambda now: f"simulated {now:.1f} s")


def _with_files(err: CompileError, sources: SourceMap) -> SourceMap:
    """``sources`` plus the texts of ``err``'s own map (a trace quoted by its error)."""
    for diagnostic in err.diagnostics:
        for span in [diagnostic.span] + [n.span for n in diagnostic.notes]:
            if span and sources.get(span.file) is None and err.sources.get(span.file):
                sources.add(span.file, err.sources.get(span.file).text)
    return sources


def cmd_run(args) -> int:
    from tokensim.graph import lower
    from tokensim.metrics import summarize
    from tokensim.report import from_result, summary_table, write, write_page
    from tokensim.sim.run import simulate

    sources = SourceMap()
    progress = None
    out = Path(args.output) if args.output else Path("out") / Path(args.spec).stem
    if args.seeds is not None and args.seeds < 1:
        raise _Usage(f"--seeds takes a number of replications, at least 1; got {args.seeds}")
    try:
        module = _compile(args.spec, "ast", args.set, sources)
        spec = check(module, sources)
        if args.seeds is None:
            args.seeds = (spec.workload.seeds if spec.workload else None) or 1
        if spec.sweep is not None and not args.no_sweep:
            if args.seeds > 1:
                raise _Usage(
                    "replications (--seeds, or the workload's `seeds`) are of one run; this "
                    "spec sweeps (run a point with --no-sweep and --set, or `tokensim search`, "
                    "which runs each configuration that many times)"
                )
            return _run_sweep(args, module, sources, spec, out)
        graph = lower(spec)
        _retract(out, quiet=True)  # a run killed from here on leaves no earlier results
        progress = None if args.quiet else _progress(sys.stderr)
        result = simulate(graph, seed=args.seed, progress=progress, transitions=args.transitions)
    except CompileError as err:
        if progress:
            progress.close()
        print(render_all(err.diagnostics, _with_files(err, sources)), file=sys.stderr)
        _retract(out)
        return 1
    except KeyboardInterrupt:
        if progress:
            progress.close()
        print("interrupted: nothing written", file=sys.stderr)
        _retract(out)
        return 130
    if progress:
        progress.close()
    figures = summarize(result)
    if args.seeds > 1:
        replicated = _replicate(args, graph, result.seed, figures)
        if replicated is None:
            return 130
        figures["intervals"] = replicated
    try:
        metrics = write(
            result,
            out,
            figures,
            transitions=args.transitions,
            graph=graph,
            spec_text=sources.get(args.spec).text,
            overrides=args.set or [],
        )
        page = None if args.no_report else from_result(out, result)
        result = None  # the run's memory goes before the page is drawn
        if page is not None:
            write_page(out, page)
    except OSError as err:
        _retract(out)
        raise _Usage(f"cannot write results to {out}: {err.strerror or err}") from None
    except KeyboardInterrupt:
        _retract(out)
        print(f"interrupted: nothing left in {out}", file=sys.stderr)
        return 130
    if args.quiet:  # what the figures would hide is said even then
        for warning in metrics.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
    else:
        sys.stdout.write(summary_table(metrics))
        if "intervals" in metrics:
            from tokensim.intervals import table

            sys.stdout.write("\n" + table(metrics["intervals"]))
        extra = ", transitions.csv" if args.transitions else ""
        page = "" if args.no_report else f"wrote {out}/report.html\n"
        print(
            f"{page}wrote {out}/metrics.json, bench.json, requests.csv, timeseries.csv, "
            f"iterations.csv{extra}"
        )
    counts = metrics["requests"]
    if counts["total"] and not counts["completed"]:  # nothing served: the run failed
        why = "; ".join(counts["rejected_why"]) or "no reason recorded"
        print(
            f"error: every request ({counts['total']}) was rejected: {why} "
            f"(the results in {out} show it)",
            file=sys.stderr,
        )
        return 1
    return 0


def _replicate(args, graph, seed: int, figures: dict) -> dict | None:
    """The ``intervals`` of this run (``figures``, its ``seed``) and ``--seeds`` - 1 more
    with the next seeds, run as a sweep's points are (in parallel, cached); None when
    interrupted."""
    from tokensim.explore.execute import ExecutorError, Job, Tally, metrics_of
    from tokensim.intervals import intervals

    run_on, cache = _explorer(args)
    seeds = list(range(seed, seed + args.seeds))
    jobs = [Job(graph, s).keyed() for s in seeds[1:]]
    tally = Tally()
    try:
        more = metrics_of(jobs, run_on, cache, not args.quiet, tally, f"{len(jobs)} more seeds")
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return None
    except ExecutorError as err:
        raise _Usage(str(err)) from None
    return intervals([figures, *more], seeds)


def _retract(out: Path, quiet: bool = False) -> None:
    """No earlier run's results may stay in ``out`` as if they were this run's: removed
    when a run fails, and (``quiet``) when it starts, so that even a killed run leaves none."""
    from tokensim.report.files import retract

    try:
        if retract(out) and not quiet:
            print(f"note: removed an earlier run's results from {out}", file=sys.stderr)
    except OSError as err:
        print(
            f"warning: {out} holds an earlier run's results that could not be removed "
            f"({err.strerror or err}): they are not this spec's",
            file=sys.stderr,
        )


def _explorer(args):
    """The executor and cache that ``args`` ask for (run's sweeps, search)."""
    from tokensim.explore.cache import Cache
    from tokensim.explore.execute import ExecutorError, executor

    if args.jobs is not None and args.jobs < 1:
        raise _Usage(f"--jobs takes a number of processes, at least 1; got {args.jobs}")
    try:
        run_on = executor(args.executor, args.jobs, args.address)
    except ExecutorError as err:
        raise _Usage(str(err)) from None
    if args.no_cache:
        return run_on, Cache(None)
    folder = Path(args.cache or os.environ.get("TOKENSIM_CACHE") or ".tokensim-cache")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, a read-only place
        why = "it is a file" if folder.is_file() else err.strerror or str(err)
        raise _Usage(
            f"cannot use {folder} as the cache folder: {why} "
            "(--cache DIR names another, --no-cache runs without one)"
        ) from None
    return run_on, Cache(folder)


@contextlib.contextmanager
def _answers_cache(cache, quiet: bool, prefix: str):
    """The cache a search or size run works with: ``cache``, or a scratch one while
    caching is off (the answers' folders are written from cached results); the cache is
    pruned to its cap once the work is done."""
    import tempfile

    from tokensim.explore.cache import Cache
    from tokensim.explore.cache_cmd import keep_under_cap

    if cache.folder is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield Cache(tmp)
        return
    yield cache
    keep_under_cap(cache, quiet)


def _interrupted(tally, total: int | None, what: str) -> int:
    of = f" of {total}" if total is not None else ""
    print(
        f"\ninterrupted: {tally.ran + tally.cached}{of} {what} done and cached; "
        "run the same command again to go on from there",
        file=sys.stderr,
    )
    return 130


def _run_sweep(args, module, sources, spec, out: Path) -> int:
    """Every point of the spec's sweep (CompileError propagates)."""
    from tokensim.explore.execute import ExecutorError, Tally
    from tokensim.explore.sweep import run_sweep

    run_on, cache = _explorer(args)
    tally = Tally()
    try:
        info, rows = run_sweep(
            module,
            sources,
            spec,
            out,
            run_on,
            cache,
            seed=args.seed,
            overrides=args.set or [],
            page=not args.no_report,
            bar=not args.quiet,
            tally=tally,
        )
    except KeyboardInterrupt:
        return _interrupted(tally, spec.sweep.points, "points")
    except ExecutorError as err:
        raise _Usage(str(err)) from None
    except OSError as err:
        raise _Usage(f"cannot write results to {out}: {err.strerror or err}") from None
    from tokensim.explore.cache_cmd import keep_under_cap

    keep_under_cap(cache, args.quiet)
    failed = [p for p in info["points"] if p.get("error")]
    if failed and not args.quiet:
        print(
            f"{len(failed)} of {len(info['points'])} points do not deploy (first: "
            f"{failed[0]['folder']}: {failed[0]['error']}); sweep.csv says why for each",
            file=sys.stderr,
        )
    if not args.quiet:
        from tokensim.explore.sweep import terminal_table

        sys.stdout.write(terminal_table(info, rows))
        page = "" if args.no_report else f"{out}/index.html, "
        reused = f" ({tally.cached} from the cache)" if tally.cached else ""
        print(
            f"swept {len(info['points']) - len(failed)} points{reused} on {run_on.name}: "
            f"wrote {page}{out}/sweep.csv and a folder per point"
        )
    return 0


def cmd_search(args) -> int:
    from tokensim.explore import search as s
    from tokensim.explore.execute import ExecutorError, Tally

    sources = SourceMap()
    out = Path(args.output) if args.output else Path("out") / (Path(args.spec).stem + "-search")
    if args.seeds is not None and args.seeds < 1:
        raise _Usage(f"--seeds takes a number of seeds, at least 1; got {args.seeds}")
    if args.attainment is not None and not 0 < args.attainment <= 1:
        raise _Usage(f"--attainment takes a fraction in (0, 1], like 0.9; got {args.attainment}")
    if not 0 < args.tolerance < 1:
        raise _Usage(f"--tolerance takes a fraction in (0, 1), like 0.02; got {args.tolerance}")
    if args.confidence is not None and not 0.5 <= args.confidence < 1:
        raise _Usage(f"--confidence takes a fraction in [0.5, 1), like 0.9; got {args.confidence}")
    try:
        module = _compile(args.spec, "ast", args.set, sources)
        spec = check(module, sources)
    except CompileError as err:
        print(render_all(err.diagnostics, _with_files(err, sources)), file=sys.stderr)
        return 1
    if args.seeds is None:
        args.seeds = (spec.workload.seeds if spec.workload else None) or 3
    if args.confidence is not None and args.seeds < 2:
        raise _Usage("--confidence needs at least two runs a configuration: --seeds 2 or more")
    base = args.seed if args.seed is not None else (spec.workload.seed if spec.workload else 0)
    settings = s.Settings(
        goal=args.goal,
        seeds=tuple(range(base, base + args.seeds)),
        attainment=args.attainment,
        tolerance=args.tolerance,
        confidence=args.confidence,
    )
    run_on, cache = _explorer(args)
    if not args.quiet:
        for warning in s.tail_warnings(spec, settings):
            print(f"warning: {warning}", file=sys.stderr)
    tally = Tally()
    try:
        with _answers_cache(cache, args.quiet, "tokensim-search-") as cache:
            outcomes = s.search(
                module, sources, spec, settings, run_on, cache, bar=not args.quiet, tally=tally
            )
            from tokensim.explore.search_out import write_search

            write_search(
                out,
                outcomes,
                settings,
                spec,
                sources,
                cache,
                page=not args.no_report,
                overrides=args.set or [],
            )
    except KeyboardInterrupt:
        return _interrupted(tally, None, "simulations")
    except s.SearchError as err:
        raise _Usage(f"{args.spec}: {err}") from None
    except CompileError as err:
        print(render_all(err.diagnostics, _with_files(err, sources)), file=sys.stderr)
        return 1
    except ExecutorError as err:
        raise _Usage(str(err)) from None
    except OSError as err:
        raise _Usage(f"cannot write results to {out}: {err.strerror or err}") from None
    if not args.quiet:
        from tokensim.explore.search_out import front_table

        sys.stdout.write(front_table(outcomes, settings.goal))
        print(s.answer(outcomes, settings.goal, spec))
        reused = f", {tally.cached} from the cache" if tally.cached else ""
        page = "" if args.no_report else f"{out}/index.html, "
        print(f"ran {tally.ran} simulations{reused} on {run_on.name}: wrote {page}{out}/search.csv")
    return 0


def cmd_report(args) -> int:
    from tokensim.report import ResultError, write_page

    folder = Path(args.folder)
    try:
        if (folder / "search.json").exists():
            from tokensim.explore.search_out import read_info as read_search
            from tokensim.explore.search_out import write_index as write_search_index

            info = read_search(folder)
            for r in info["configurations"]:
                if r.get("folder"):
                    write_page(folder / r["folder"])
            page = write_search_index(folder)
        elif (folder / "sweep.json").exists():
            from tokensim.explore.sweep import write_index
            from tokensim.report.sweep_data import read_info

            for point in read_info(folder)["points"]:
                if not point.get("error"):  # a point that did not deploy has no folder
                    write_page(folder / point["folder"])
            page = write_index(folder)
        else:
            page = write_page(folder)
    except ResultError as err:
        raise _Usage(str(err)) from None
    except OSError as err:
        raise _Usage(f"cannot write {args.folder}/report.html: {err.strerror or err}") from None
    if not args.quiet:
        print(f"wrote {page}")
    return 0


def _explore_options(p) -> None:
    """How many configurations run: where, how many at a time, and their cache."""
    g = p.add_argument_group("running many configurations (sweeps, search)")
    g.add_argument(
        "-j",
        "--jobs",
        type=int,
        metavar="N",
        help="simulations at a time (default: one per CPU)",
    )
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local processes (default), or Ray tasks (needs pip install 'tokensim[ray]')",
    )
    g.add_argument(
        "--address",
        metavar="ADDR",
        help="the Ray cluster to use, e.g. ray://head:10001 (default: start a local Ray)",
    )
    g.add_argument(
        "--cache",
        metavar="DIR",
        help="where finished simulations are kept, by content hash, so a re-run skips them "
        "(default: $TOKENSIM_CACHE, else .tokensim-cache)",
    )
    g.add_argument(
        "--no-cache", action="store_true", help="neither use nor fill the cache: run everything"
    )


def _set_option(p, help: str) -> None:
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help=f"{help} (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokensim",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tokensim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "check",
        help="check specs for errors (exit 1 if any)",
        description="Parse and check each SPEC; print every error found.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC", help=".tsim files")
    p.add_argument(
        "--dump",
        choices=["ast", "ir", "graph"],
        help="print the deterministic text dump of that stage instead",
    )
    _set_option(p, "set a value of each spec first, e.g. --set deployment.serve.tp=2")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "run",
        help="simulate a spec and write its metrics",
        description="Simulate every request of SPEC's workload on its deployment and write "
        "report.html, metrics.json, requests.csv, timeseries.csv and iterations.csv.",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="result folder (default: out/<spec file name without .tsim>)",
    )
    p.add_argument("--seed", type=_seed, help="override the workload's seed")
    p.add_argument(
        "--seeds",
        type=int,
        metavar="K",
        help="also run K - 1 replications with the next seeds, and report each headline "
        "figure's mean with its 95%% interval (default: the workload's `seeds`, else 1)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="set a value of the spec, e.g. --set workload.arrivals.rate=20/s "
        "(repeatable; checked like the spec)",
    )
    p.add_argument(
        "--transitions",
        action="store_true",
        help="also write transitions.csv: every state change of every request",
    )
    p.add_argument(
        "--no-report", action="store_true", help="write the data files only, not report.html"
    )
    p.add_argument(
        "--no-sweep",
        action="store_true",
        help="run the spec as written, ignoring its sweep block",
    )
    _explore_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "search",
        help="find the highest rate, or the cheapest configuration, that meets the SLO",
        description="Answer a capacity question over the configurations of SPEC's sweep "
        "(or SPEC alone): the highest arrival rate each meets its SLO at (max-rate), or "
        "which one meets it at the spec's rate for the least $/h (min-cost) or the fewest "
        "GPUs (min-gpus). Writes search.csv (every configuration, best first, the Pareto "
        "front marked), a page and a folder for each configuration on the front.",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--goal", choices=["max-rate", "min-cost", "min-gpus"], required=True)
    p.add_argument(
        "--seeds",
        type=int,
        metavar="K",
        help="runs per configuration and rate, each with its own seed; a configuration "
        "passes only when all K meet the SLO (default: the workload's `seeds`, else 3)",
    )
    p.add_argument("--seed", type=_seed, help="the first seed (default: the workload's)")
    p.add_argument(
        "--attainment",
        type=float,
        metavar="FRACTION",
        help="pass when this share of requests meets every SLO limit (e.g. 0.9), instead of "
        "when every target's statistic is met",
    )
    p.add_argument(
        "--confidence",
        type=float,
        metavar="FRACTION",
        help="pass when each SLO target's statistic, averaged over the K runs, is within its "
        "limit at this confidence (one-sided Student-t), instead of when all K pass",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        metavar="FRACTION",
        help="max-rate: stop when the pass/fail bracket is this narrow (default 0.02)",
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="set a value of the spec first, e.g. --set workload.arrivals.rate=20/s",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="result folder (default: out/<spec file name>-search)",
    )
    p.add_argument("--no-report", action="store_true", help="write search.csv only, no pages")
    _explore_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "report",
        help="re-render the report.html of a result folder",
        description="Render DIR/report.html from the files `tokensim run` wrote into DIR, "
        "without simulating again (for a sweep's folder: every point's page and index.html).",
    )
    p.add_argument("folder", metavar="DIR", help="a result folder of `tokensim run`")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "graph",
        help="show the compiled topology and request dataflow",
        description="Show the topology (GPUs, links, networks) and how requests "
        "flow between pools, with every KV transfer path and its "
        "bottleneck bandwidth.",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "--format",
        choices=["text", "dot", "json"],
        default="text",
        help="text (default), Graphviz dot, or JSON",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    _set_option(p, "set a value of the spec first, e.g. --set deployment.serve.tp=2")
    p.set_defaults(func=cmd_graph)

    from tokensim.explore import cache_cmd, size_cmd
    from tokensim.lang import catalogue

    size_cmd.add_parser(sub, _explore_options)
    catalogue.add_parser(sub)
    cache_cmd.add_parser(sub)

    from tokensim.perf import commands

    commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except _Usage as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
