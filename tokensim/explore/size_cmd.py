"""The ``tokensim size`` command: its options, and what it prints and writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Find the fewest GPUs that serve a workload within its SLO, without writing a spec. Every
layout is tried: colocated instances at each tensor-parallel degree, and prefill/decode
splits with each pair of degrees; for each, the fewest instances (and the prefill:decode
ratio) that meet the SLO at the rate. Prints the best few with their margins, writes the
best deployment as an editable spec (best.tsim), search.csv with every layout, and the
search's page.
"""

EXAMPLE = """\
example:
  tokensim size --model llama3_1_70b --dtype fp8 --gpu H100_SXM --rate 20/s \\
      --lengths chat --slo "ttft p90 < 500 ms; tpot p90 < 50 ms"
"""


def add_parser(sub, explore_options) -> None:
    p = sub.add_parser(
        "size",
        help="the fewest GPUs, and their layout, that meet an SLO at a rate (no spec needed)",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        required=True,
        help="a model of std/models (or of --import), by its name or its Hugging Face "
        "repository (meta-llama/Llama-3.1-70B-Instruct)",
    )
    p.add_argument("--gpu", required=True, help="a GPU of std/hardware (or of --import)")
    p.add_argument("--dtype", help="the weights' type, e.g. fp8 (default: the model's)")
    p.add_argument(
        "--rate",
        help="arrival rate, e.g. 20/s (Poisson arrivals); with --trace and no --rate, the "
        "trace's own arrival times",
    )
    p.add_argument(
        "--slo",
        required=True,
        help='the targets, as in a spec\'s slo block, split by ";": "ttft p90 < 500 ms; '
        'tpot p90 < 50 ms"',
    )
    lengths = p.add_argument_group("request lengths (one of; default: --lengths chat)")
    lengths.add_argument(
        "--lengths",
        metavar="DIST",
        help="a lengths distribution as in a workload: chat, sharegpt, 'random 1000 -> 200'",
    )
    lengths.add_argument("--isl", type=int, metavar="N", help="every prompt N tokens (with --osl)")
    lengths.add_argument("--osl", type=int, metavar="N", help="every output N tokens (with --isl)")
    lengths.add_argument(
        "--trace",
        metavar="FILE",
        help="requests from a trace file (its lengths; its times too, without --rate)",
    )
    p.add_argument(
        "--max-gpus", type=int, default=16, metavar="N", help="GPUs at most (default 16)"
    )
    p.add_argument(
        "--gpus-per-node", type=int, default=8, metavar="N", help="GPUs per node (default 8)"
    )
    p.add_argument(
        "--link",
        help="the link between a node's GPUs (default: the GPU's server link, e.g. NVLINK4 "
        "for H100_SXM; the host link for PCIe cards)",
    )
    p.add_argument(
        "--network", default="IB_400G", help="the network between nodes (default IB_400G)"
    )
    p.add_argument("--engine", help="the serving engine of std/engines (default: vllm_v1)")
    p.add_argument(
        "--no-disaggregated",
        action="store_true",
        help="colocated layouts only (no prefill/decode splits)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds of arrivals per simulation (default 60; 200 to 20,000 requests)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=2,
        metavar="K",
        help="runs per configuration, each with its own seed; it passes only when all K "
        "meet the SLO (default 2)",
    )
    p.add_argument("--seed", type=int, default=1, help="the first seed (default 1)")
    p.add_argument("--top", type=int, default=5, metavar="N", help="layouts to print (default 5)")
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        metavar="FILE",
        help="a .tsim file of your own gpu, model or engine definitions",
    )
    p.add_argument("-o", "--output", metavar="DIR", help="result folder (default: out/size)")
    p.add_argument("--no-report", action="store_true", help="no pages")
    explore_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_size)


def question(args):
    """The :class:`~tokensim.explore.size.Question` of ``args``; SizeError when it cannot
    be asked."""
    from tokensim.explore.size import Question, SizeError, parse_rate

    given = [x for x in ("lengths", "trace") if getattr(args, x)]
    if args.isl is not None or args.osl is not None:
        if args.isl is None or args.osl is None:
            raise SizeError("--isl and --osl go together: give both")
        if args.isl < 1 or args.osl < 1:
            raise SizeError("--isl and --osl take a number of tokens, at least 1")
        given.append("isl/osl")
    if len(given) > 1:
        raise SizeError(f"give one of --lengths, --isl/--osl and --trace, not {', '.join(given)}")
    if args.rate is None and not args.trace:
        raise SizeError("give --rate (e.g. --rate 20/s), or a --trace whose times to replay")
    lengths = args.lengths or "chat"
    if args.isl is not None:
        lengths = f"fixed {args.isl} -> {args.osl}"
    trace = None
    if args.trace:
        path = Path(args.trace)
        if not path.is_file():
            raise SizeError(f"no such trace file: {args.trace}")
        trace = f'trace "{path.resolve()}"'
    for name, value, low in (
        ("--max-gpus", args.max_gpus, 1),
        ("--gpus-per-node", args.gpus_per_node, 1),
        ("--seeds", args.seeds, 1),
        ("--top", args.top, 1),
    ):
        if value < low:
            raise SizeError(f"{name} takes a number, at least {low}; got {value}")
    if not 1 <= args.duration <= 86_400:
        raise SizeError(f"--duration takes seconds from 1 to 86400; got {args.duration:g}")
    imports = []
    for item in args.imports or ():
        if not Path(item).is_file():
            raise SizeError(f"no such file to import: {item}")
        imports.append(str(Path(item).resolve()))
    model = model_name(args.model, args.quiet)
    return Question(
        model=model,
        gpu=args.gpu,
        rate=None if args.rate is None else parse_rate(args.rate),
        slo=args.slo,
        lengths=lengths,
        trace=trace,
        dtype=args.dtype,
        engine=args.engine,
        max_gpus=args.max_gpus,
        gpus_per_node=args.gpus_per_node,
        link=args.link,
        network=args.network,
        duration_s=args.duration,
        seed=args.seed,
        disaggregated=not args.no_disaggregated,
        imports=tuple(imports),
        experts=_experts(model),
    )


def _experts(model: str) -> int:
    """The routed experts of a catalogue model (1: dense, or not in std/models)."""
    from tokensim.lang.check import std_spec

    found = next((m for m in std_spec("models").models if m.name == model), None)
    return found.experts if found is not None else 1


def model_name(name: str, quiet: bool) -> str:
    """``name`` as std/models calls it: a Hugging Face repository or another spelling of a
    catalogue model is taken as that model, with a note; anything else is kept as given
    (a model of an --import, or a misspelling the checker will point at)."""
    from tokensim.lang.catalogue import model_named

    found = model_named(name)
    if found is None or found == name:
        return name
    if not quiet:
        print(f"note: --model {name} is `{found}` of std/models", file=sys.stderr)
    return found


def cmd_size(args) -> int:
    from tokensim.cli import _answers_cache, _explorer, _interrupted, _Usage
    from tokensim.explore import search as s
    from tokensim.explore import size as z
    from tokensim.explore.execute import ExecutorError, Tally
    from tokensim.explore.search_out import write_search
    from tokensim.explore.sweep import compiled
    from tokensim.lang.diagnostics import CompileError, render_all
    from tokensim.lang.parse import parse
    from tokensim.lang.source import SourceMap

    try:
        q = question(args)
    except z.SizeError as err:
        raise _Usage(str(err)) from None
    # the smallest layout first, compiled alone: a misnamed model, GPU or SLO is one
    # located error, not one per layout
    first = z.layouts(q)[0]
    sources = SourceMap()
    try:
        compiled(parse(z.spec_text(q, first, 1), "<size>", sources), [], sources)
    except CompileError as err:
        fatal = [d for d in err.diagnostics if "does not fit" not in d.message]
        if fatal or not err.diagnostics:
            print(render_all(err.diagnostics, sources), file=sys.stderr)
            return 1
    out = Path(args.output) if args.output else Path("out") / "size"
    settings = s.Settings(goal="min-gpus", seeds=tuple(range(q.seed, q.seed + args.seeds)))
    run_on, cache = _explorer(args)
    tally = Tally()
    try:
        with _answers_cache(cache, args.quiet, "tokensim-size-") as cache:
            outcomes = z.size(q, run_on, cache, settings.seeds, bar=not args.quiet, tally=tally)
            best = next((o for o in outcomes if o.answer is not None), None)
            shown = best or next((o for o in outcomes if o.config.graph is not None), None)
            if shown is not None:  # each configuration carries its own spec text
                spec = shown.config.graph.spec
                page = not args.no_report
                write_search(out, outcomes, settings, spec, SourceMap(), cache, page=page)
            else:
                out.mkdir(parents=True, exist_ok=True)
        (out / "best.tsim").unlink(missing_ok=True)
        if best is not None:
            from tokensim.report.files import publish

            publish(out, {"best.tsim": best_text(q, best)})
    except KeyboardInterrupt:
        return _interrupted(tally, None, "simulations")
    except ExecutorError as err:
        raise _Usage(str(err)) from None
    except OSError as err:
        raise _Usage(f"cannot write results to {out}: {err.strerror or err}") from None
    if not args.quiet:
        print(summary(q, outcomes, args.top))
        reused = f", {tally.cached} from the cache" if tally.cached else ""
        wrote = [f"{out}/best.tsim"] if best is not None else []
        wrote += [] if args.no_report or shown is None else [f"{out}/index.html"]
        wrote += [f"{out}/search.csv"] if shown is not None else []
        print(f"ran {tally.ran} simulations{reused} on {run_on.name}: wrote {', '.join(wrote)}")
    return 0 if best is not None else 1


def summary(q, outcomes, top: int) -> str:
    from tokensim.explore import size as z

    what = f"{q.model}{' ' + q.dtype if q.dtype else ''} on {q.gpu} at {q.at}"
    best = next((o for o in outcomes if o.answer is not None), None)
    head = (
        f"Fewest GPUs for {what}: {best.config.gpus} ({best.config.label})."
        if best is not None
        else f"No layout of at most {q.max_gpus} {q.gpu} meets the SLO for {what}."
    )
    return f"{head}\n\n{z.table(outcomes, top)}"


def best_text(q, o) -> str:
    """best.tsim: the chosen deployment's spec, with where it came from."""
    from tokensim.explore.size import margins as target_margins

    margins = "; ".join(
        f"{name} {value * 1e3:.0f} ms ({margin:+.0%})" for name, value, margin in target_margins(o)
    )
    head = (
        f"// Written by `tokensim size`: the fewest {q.gpu} ({o.config.gpus}) that met the SLO\n"
        f"// in every seed at {q.at}; {margins}.\n"
        "// Edit it and run `tokensim run best.tsim`, or add a sweep.\n"
    )
    return head + o.config.text
