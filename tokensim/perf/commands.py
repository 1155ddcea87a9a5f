"""The cost-model commands: ``tokensim import``, ``calibrate``, ``validate`` (and ``profile``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tokensim.perf import tables


def load_any(paths: list[str], gpu: str | None = None) -> tables.Table:
    """Tokensim tables, or Vidur/NVIDIA files and folders (imported), as one table."""
    from tokensim.perf import importers

    parts = []
    for p in map(Path, paths):
        if p.is_dir() or p.name in importers.VIDUR_FILES + importers.NVIDIA_FILES:
            parts.append(importers.load(p, gpu))
        else:
            parts.append(tables.read(p))
    return tables.concat(parts)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_import(args) -> int:
    try:
        table = load_any(args.sources, args.gpu)
        tables.write_atomic(table, args.output)
    except tables.TableError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write {args.output}: {e.strerror or e}")
    if not args.quiet:
        print(f"wrote {args.output}: {len(table)} op times")
    return 0


def cmd_calibrate(args) -> int:
    from tokensim.perf import calibrate

    if args.bench:
        if args.tables:
            return _fail("give op tables or --bench results, not both")
        if not args.spec:
            return _fail("--bench needs --spec SPEC.tsim: the deployment the runs were served on")
        from tokensim.replay.command import cmd_calibrate_bench

        return cmd_calibrate_bench(args)
    if not args.tables:
        return _fail("nothing to calibrate on: give op tables, or --bench RESULT... --spec SPEC")
    try:
        table = load_any(args.tables, args.gpu)
        cal = calibrate.calibrate(table, corrections=not args.no_corrections)
        cal.write(args.output)
    except (tables.TableError, calibrate.CalibrationError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write {args.output}: {e.strerror or e}")
    if not args.quiet:
        for gpu, by_class in sorted(cal.fits.items()):
            for name, f in sorted(by_class.items()):
                p = f.params
                print(
                    f"{gpu:10} {name:24} rows {f.rows:6}  compute {p.compute:.2f}  "
                    f"memory {p.memory:.2f}  overhead {p.overhead_s * 1e6:.1f} us  "
                    f"error median {100 * f.error['median']:.1f}% p90 {100 * f.error['p90']:.1f}%"
                )
        print(f"wrote {args.output}")
    return 0


def cmd_validate(args) -> int:
    from tokensim.perf import calibrate, iterations, validate

    if args.bench:
        spec = args.spec
        paths = [*args.bench, *args.tables]
        if spec is None:  # `--bench RESULT... SPEC.tsim`: the spec among them
            specs = [p for p in paths if p.endswith(".tsim")]
            if len(specs) != 1:
                return _fail("--bench needs one spec (SPEC.tsim or --spec): the deployment")
            spec = specs[0]
            paths.remove(spec)
        elif args.tables:
            return _fail("give op tables or --bench results, not both")
        from tokensim.replay.page import cmd_validate_bench

        args.bench, args.spec = paths, spec
        return cmd_validate_bench(args)
    if not args.tables:
        return _fail("nothing to validate: give op tables, or --bench RESULT... SPEC.tsim")
    try:
        table = load_any(args.tables, args.gpu)
        progress = None if args.quiet else (lambda s: print(f"  {s}", file=sys.stderr))
        predictions = validate.predict(table, progress=progress, cross=not args.no_cross)
    except (tables.TableError, calibrate.CalibrationError) as e:
        return _fail(str(e))
    scores = validate.scores(predictions)
    print(validate.markdown(validate.overall(scores)))
    print(validate.markdown(scores), end="")
    lone = validate.unheld_markdown(predictions)
    if lone:
        print("\n" + lone, end="")
    its = iterations.compose(predictions.table)
    if its:  # the tables hold a model's layer ops and attention of its shape
        scores = iterations.score(predictions, its)
        print(f"\nWhole iterations of one layer: {len(its)}\n")
        print(validate.markdown(validate.overall(scores)))
        print(validate.markdown(scores), end="")
    return 0


def add_parsers(sub) -> None:
    """Register the commands on ``tokensim``'s subparsers."""
    p = sub.add_parser(
        "import",
        help="convert measured op timings (Vidur, NVIDIA) into a tokensim table",
        description="Read Vidur profiles (mlp.csv, all_reduce.csv, send_recv.csv) or NVIDIA "
        "kernel tables (*_perf.csv), files or folders, and write one tokensim table (CSV).",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="files or folders")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the table to write")
    p.add_argument("--gpu", help="catalogue GPU name, when the path does not tell it")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "calibrate",
        help="fit the cost model to op tables, or an engine to benchmark results",
        description="With op tables: fit, per GPU and op class, the roofline's efficiencies, a "
        "fixed time per call and its corrections at the measured shapes; write a calibration "
        'a spec uses with `cost calibrated "FILE"`. With --bench: replay measured benchmark '
        "runs (vLLM `bench serve` JSON, SGLang `bench_serving` JSONL, GenAI-Perf JSON, "
        "guidellm JSON, inference-perf stages) on the deployment of "
        "--spec, fit its engine's host and front-end times and kernel factors, and write a "
        "profile (an engine definition) the spec imports.",
    )
    p.add_argument("tables", nargs="*", metavar="TABLE", help="tokensim tables or sources")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="calibration to write")
    p.add_argument(
        "--bench", nargs="+", metavar="RESULT", help="benchmark results to fit an engine on"
    )
    p.add_argument("--spec", metavar="SPEC", help="with --bench: the deployment they measured")
    p.add_argument("--name", help="with --bench: the fitted engine's name (<engine>_calibrated)")
    p.add_argument(
        "--serve-cmd",
        metavar="CMD",
        help='with --bench: the server\'s launch command ("vllm serve ... --max-num-seqs 128"): '
        "its flags set the pools' tp, batching, KV cache and engine statements",
    )
    p.add_argument(
        "--holdout",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --bench and several runs: also predict each run from a fit without it "
        "(one more fit per run; on unless --no-holdout)",
    )
    p.add_argument(
        "--max-requests",
        type=int,
        default=2000,
        metavar="N",
        help="with --bench: replay a run sent at a steady rate with its first N requests "
        "(default 2000); bursts, closed loops and runs served under 80%% of their rate "
        "are replayed whole",
    )
    p.add_argument(
        "--max-evaluations",
        type=int,
        default=120,
        metavar="N",
        help="with --bench: evaluations of the fit, each a replay of every run (default "
        "120; the slopes it takes are not counted)",
    )
    p.add_argument("--gpu", help="catalogue GPU name for sources whose path does not tell it")
    p.add_argument(
        "--no-corrections",
        action="store_true",
        help="fit the formula only (no per-shape corrections)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser(
        "validate",
        help="measure the error against op tables, or against benchmark results",
        description="With op tables: compare predicted with measured op times (the datasheet "
        "roofline, the calibration with each model or shape family held out, a calibration "
        "carried to another GPU) and print Markdown tables of median and p90 relative error. "
        "With --bench RESULT... SPEC.tsim: replay each measured run on the spec's deployment "
        "and write a page of measured and simulated CDFs and errors per run and metric.",
    )
    p.add_argument("tables", nargs="*", metavar="TABLE", help="tokensim tables or sources")
    p.add_argument("--bench", nargs="+", metavar="RESULT", help="benchmark results to replay")
    p.add_argument("--spec", metavar="SPEC", help="with --bench: the deployment they measured")
    p.add_argument("--serve-cmd", metavar="CMD", help="with --bench: the server's launch command")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="with --bench: the page (validation.html)"
    )
    p.add_argument(
        "--max-requests",
        type=int,
        default=2000,
        metavar="N",
        help="with --bench: replay a run sent at a steady rate with its first N requests "
        "(default 2000; one served under 80%% of its rate whole)",
    )
    p.add_argument("--gpu", help="catalogue GPU name for sources whose path does not tell it")
    p.add_argument("--no-cross", action="store_true", help="skip the cross-hardware rows")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_validate)

    from tokensim.perf import profile

    profile.add_parser(sub)
