"""Fuzz tokensim as a hostile user would: mutated specs and traces through the CLI.

Each case is a mutant of a shipped spec (``specs/*.tsim``) or of a trace fixture
(``tests/traces/*``) with, sometimes, ``--set`` options; it runs ``tokensim check`` and,
when that passes, ``tokensim run`` on a few requests (``--set workload.requests=...``,
``--no-sweep``), in this process with a time limit. A case fails when:

* **traceback**: an exception escapes ``tokensim.cli.main`` (SystemExit aside);
* **hang**: it runs past the time limit;
* **unlocated**: an error (exit status 1) that neither points at a line (``-->``) nor names
  the file it is about;
* **complete-looking**: a run that failed left result files in its output folder.

Mutations of a spec: delete, duplicate or swap lines and tokens; swap units; put extreme
numbers (0, -1, 1e308, 2^63, 1e-300, ...); misspell or invent names; nest deeply; break the
encoding (invalid UTF-8, NUL, BOM, CR); add ``--set`` with real and invented paths and
values. Mutations of a trace: the same on its lines and fields, plus truncation, binary
garbage, enormous numbers and deep JSON.

    python3 bench/fuzz.py [--specs 6000] [--traces 250] [--seed 16] [--timeout 30]

prints the counts per outcome and every failing case (its mutation and its first error
lines), and writes the failing inputs under ``--keep DIR`` to replay. ``tests/test_fuzz.py``
runs a small fixed-seed sample of it in the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.tsim"))
TRACES = sorted((ROOT / "tests" / "traces").glob("*"))
RESULT_FILES = ("metrics.json", "requests.csv", "timeseries.csv", "iterations.csv", "run.json")

_TOKEN = re.compile(r'"[^"\n]*"|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_][A-Za-z0-9_]*|\S')
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_UNIT = re.compile(r"(?<=\d)[ \t]*(%|/s|[A-Za-z]+(?:/s)?)\b")
EXTREMES = (
    "0", "-1", "1e308", "1e30", "9223372036854775808", "4294967296", "1e-300", "0.0001",
    "1e12", "2147483648", "99999999999999999999", "-0", "1e400", "0.5", "3.7",
)  # fmt: skip
UNITS = ("GB", "TB/s", "ms", "us", "s", "tokens", "/s", "%", "GiB", "W", "$/h", "x", "min")
NAMES = (
    "H100", "h100_sxm", "llama3_8b", "NVLINK9", "chunk", "poisson", "burst", "fifo", "zzz",
    "prefill", "decode", "serve", "n9", "kv", "gpu", "route", "engine", "vllm_v9", "ideal",
)  # fmt: skip
SET_PATHS = (
    "workload.requests", "workload.seed", "workload.arrivals", "workload.lengths",
    "workload.duration", "deployment.serve.tp", "deployment.serve.instances",
    "deployment.serve.engine", "deployment.serve.kv.gpu_util", "deployment.prefill.tp",
    "deployment.decode.kv.block", "cluster.n0.nics", "slo.ttft", "deployment.nope.tp",
    "workload", "deployment.serve.engine.host.iteration", "workload.trace",
    "deployment.serve.pp", "deployment.serve.microbatches", "deployment.decode.ep",
    "deployment.decode.dp", "deployment.decode.ep.overlap", "deployment.chat.speculative",
    "workload.sessions", "workload.sessions.turns", "workload.sessions.think",
    "workload.chat.timeout", "workload.batch.max_queue", "workload.chat.share",
    "deployment.chat.kv", "deployment.autoscale.min", "deployment.autoscale.startup",
    "deployment.autoscale.interval", "faults.on_failure", "deployment.serve.batching.order",
)  # fmt: skip
SET_VALUES = (
    "1", "0", "-5", "1e308", "poisson 1e9/s", "fixed 1 -> 1", "chat", "8", "3 GB", '"x.csv"',
    "vllm_0_6 { scheduler_steps 4 }", "p90 < 1 ms", "{", "", "burst", "2 ms", "0.5", "1e-9",
    "16", "on", "mtp { tokens 2; acceptance 0.9, 0.5 }", "32 { redundant 7 }",
    "{ turns 3; think 1 ms }", "{ turns 1000 }", "{ prefix_cache on; tier host 1 MB }",
    "{ prefix_cache on; tier remote 1 TB { write through; bandwidth 1 B/s } }",
    "step 1/s { peak 1e6/s; at 0 s; lasting 1 s }", "deadline", "lose", "1 ms",
)  # fmt: skip


@dataclass
class Case:
    """One input: the spec (text or bytes), the files beside it, extra CLI arguments."""

    name: str
    mutation: str
    spec: str | bytes
    files: dict[str, str | bytes] = field(default_factory=dict)
    sets: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    case: Case
    kind: str  # ok | rejected | traceback | hang | unlocated | complete-looking
    exit_codes: tuple[int, ...] = ()
    detail: str = ""
    seconds: float = 0.0


# --------------------------------------------------------------------------- mutations


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _tokens(line: str) -> list[re.Match]:
    return list(_TOKEN.finditer(line))


def _replace_token(text: str, rng: random.Random, pick, make) -> tuple[str, str]:
    """Replace one token that ``pick`` accepts by ``make(token)``."""
    lines = _lines(text)
    spots = [(i, m) for i, line in enumerate(lines) for m in _tokens(line) if pick(m.group())]
    if not spots:
        return text, "nothing to replace"
    i, m = rng.choice(spots)
    new = make(m.group())
    lines[i] = lines[i][: m.start()] + new + lines[i][m.end() :]
    return "\n".join(lines), f"line {i + 1}: {m.group()!r} -> {new[:40]!r}"


def m_delete_line(text, rng):
    lines = _lines(text)
    i = rng.randrange(len(lines))
    return "\n".join(lines[:i] + lines[i + 1 :]), f"delete line {i + 1}"


def m_duplicate_line(text, rng):
    lines = _lines(text)
    i = rng.randrange(len(lines))
    return "\n".join(lines[: i + 1] + lines[i:]), f"duplicate line {i + 1}"


def m_swap_lines(text, rng):
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines), f"swap lines {i + 1} and {j + 1}"


def m_delete_token(text, rng):
    return _replace_token(text, rng, lambda t: True, lambda t: "")


def m_duplicate_token(text, rng):
    return _replace_token(text, rng, lambda t: True, lambda t: f"{t} {t}")


def m_swap_tokens(text, rng):
    lines = _lines(text)
    spots = [(i, m) for i, line in enumerate(lines) for m in _tokens(line)]
    if len(spots) < 2:
        return text, "nothing to swap"
    (i, a), (j, b) = sorted(rng.sample(spots, 2), key=lambda s: (s[0], s[1].start()))
    if i == j:
        line = lines[i]
        lines[i] = (
            line[: a.start()] + b.group() + line[a.end() : b.start()] + a.group() + line[b.end() :]
        )
    else:
        lines[i] = lines[i][: a.start()] + b.group() + lines[i][a.end() :]
        lines[j] = lines[j][: b.start()] + a.group() + lines[j][b.end() :]
    return "\n".join(lines), f"swap {a.group()!r} (line {i + 1}) and {b.group()!r} (line {j + 1})"


def m_extreme_number(text, rng):
    return _replace_token(
        text, rng, lambda t: _NUMBER.fullmatch(t) is not None, lambda t: rng.choice(EXTREMES)
    )


def m_unit_swap(text, rng):
    lines = _lines(text)
    spots = [(i, m) for i, line in enumerate(lines) for m in _UNIT.finditer(line)]
    if not spots:
        return text, "no unit"
    i, m = rng.choice(spots)
    new = " " + rng.choice(UNITS)
    lines[i] = lines[i][: m.start()] + new + lines[i][m.end() :]
    return "\n".join(lines), f"line {i + 1}: unit {m.group().strip()!r} -> {new.strip()!r}"


def m_name(text, rng):
    def make(t):
        choice = rng.random()
        if choice < 0.4:
            return rng.choice(NAMES)
        if choice < 0.7 and len(t) > 2:  # a typo
            k = rng.randrange(len(t))
            return t[:k] + t[k + 1 :]
        if choice < 0.85:
            return t * rng.choice((2, 60))  # long names
        return "x" + t

    return _replace_token(text, rng, lambda t: t[:1].isalpha() or t[:1] == "_", make)


def m_deep(text, rng):
    depth = rng.choice((50, 99, 101, 150, 400, 2000))
    kind = rng.random()
    if kind < 0.3:
        inner = "(" * depth + "queued" + ")" * depth
        return text + f"\nroute serve by min({inner})\n", f"route nested {depth}"
    if kind < 0.6:
        return text + "\n" + "cluster { " * depth + "}" * depth + "\n", f"blocks nested {depth}"
    if kind < 0.8:
        terms = " + ".join(["kv_used"] * depth)
        return text + f"\nroute serve by min({terms})\n", f"route of {depth} terms"
    return text.replace("{", "{ {", 1) + "}", "an extra brace"


def m_encoding(text, rng) -> tuple[bytes, str]:
    data = text.encode("utf-8")
    k = rng.randrange(len(data) + 1)
    junk = rng.choice(
        (b"\xff\xfe", b"\x00", b"\xc3\x28", b"\xef\xbb\xbf", b"\r", b"\xe2\x80\xae", b"\t\x0b")
    )
    return data[:k] + junk + data[k:], f"bytes {junk!r} at {k}"


def m_truncate(text, rng):
    k = rng.randrange(len(text) + 1)
    return text[:k], f"cut at {k} of {len(text)}"


def m_set(text, rng) -> tuple[str, str, list[str]]:
    sets = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        value = rng.choice(SET_VALUES)
        if rng.random() < 0.3:
            value = rng.choice(EXTREMES)
        sets.append(f"{rng.choice(SET_PATHS)}={value}")
    return text, "--set " + " --set ".join(sets), sets


SPEC_MUTATIONS = (
    m_delete_line, m_duplicate_line, m_swap_lines, m_delete_token, m_duplicate_token,
    m_swap_tokens, m_extreme_number, m_extreme_number, m_unit_swap, m_unit_swap, m_name,
    m_name, m_deep, m_encoding, m_truncate, m_set,
)  # fmt: skip


def spec_case(rng: random.Random, index: int) -> Case:
    """A mutant of a shipped spec: one to three mutations."""
    source = rng.choice(SPECS)
    text: str | bytes = source.read_text("utf-8")
    done, sets = [], []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if isinstance(text, bytes):
            break
        mutate = rng.choice(SPEC_MUTATIONS)
        got = mutate(text, rng)
        if mutate is m_set:
            text, what, more = got
            sets += more
        else:
            text, what = got
        done.append(f"{mutate.__name__[2:]}: {what}")
    return Case(f"spec-{index:05d}-{source.stem}", "; ".join(done), text, sets=sets)


def _trace_spec(name: str) -> str:
    return (
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 1 } }\n"
        "deployment { pool serve { model llama3_1_8b } }\n"
        f'workload {{ trace "{name}"; requests 20 }}\n'
    )


def _trace_junk(rng: random.Random, text: str) -> tuple[str | bytes, str]:
    choice = rng.random()
    lines = text.split("\n")
    if choice < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.choice((1, 64, 4096)))), "binary"
    if choice < 0.25:
        return "", "empty"
    if choice < 0.35:
        i = rng.randrange(1, max(2, len(lines)))
        field = rng.choice(("1" * 140_000, "9" * 30, "1e400", "nan", "inf", "-3", '"', "[" * 5000))
        parts = lines[min(i, len(lines) - 1)].split(",")
        parts[rng.randrange(len(parts))] = field
        lines[min(i, len(lines) - 1)] = ",".join(parts)
        return "\n".join(lines), f"field {field[:12]!r}"
    if choice < 0.45:
        deep = "[" * 100_000 + "]" * 100_000
        return text.replace("100", deep, 1), "deep JSON"
    if choice < 0.55:
        return text + "\n" + text, "twice (times go back)"
    return "", ""


TRACE_MUTATIONS = (
    m_delete_line, m_duplicate_line, m_swap_lines, m_delete_token, m_swap_tokens,
    m_extreme_number, m_extreme_number, m_truncate, m_encoding, m_name,
)  # fmt: skip


def trace_case(rng: random.Random, index: int) -> Case:
    """A spec that reads a mutated trace fixture."""
    source = rng.choice(TRACES)
    text = source.read_text("utf-8")
    data, what = _trace_junk(rng, text)
    if not what:
        mutate = rng.choice(TRACE_MUTATIONS)
        data, what = mutate(text, rng)
        what = f"{mutate.__name__[2:]}: {what}"
    name = "trace" + source.suffix
    spec = _trace_spec(name)
    if rng.random() < 0.2:  # its format said, maybe wrongly
        fmt = rng.choice(("azure", "mooncake", "vidur", "tokensim", "csv"))
        spec = spec.replace(f'trace "{name}"', f'trace "{name}" {{ format {fmt} }}')
        what += f"; format {fmt}"
    return Case(f"trace-{index:04d}-{source.stem}", what, spec, {name: data})


# ------------------------------------------------------------------------------ running


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _cli(args: list[str], timeout: float) -> tuple[int | None, str, BaseException | None]:
    """``tokensim`` ``args`` in this process: (exit status, stderr, escaped exception)."""
    from tokensim.cli import main

    err = io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 2
    except _Timeout as t:
        return None, err.getvalue(), t
    except BaseException as e:  # noqa: BLE001 - what the fuzzer looks for
        return None, err.getvalue(), e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return code, err.getvalue(), None


def _unlocated(stderr: str) -> str | None:
    """The first error on ``stderr`` that neither points at a line nor names a file."""
    blocks = re.split(r"\n(?=error: )", stderr)
    for block in blocks:
        if not block.startswith("error: "):
            continue
        if "-->" in block or "`" in block.split("\n")[0] or "rejected" in block:
            continue
        return block.split("\n")[0]
    return None


def attempt(case: Case, folder: Path, timeout: float = 30.0, requests: int = 12) -> Outcome:
    """Check ``case`` and, when it checks, run it; classify what happened."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.tsim"
    if isinstance(case.spec, bytes):
        spec.write_bytes(case.spec)
    else:
        spec.write_text(case.spec, "utf-8")
    for name, data in case.files.items():
        path = folder / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data, "utf-8")
    sets = [a for s in case.sets for a in ("--set", s)]
    start = time.perf_counter()
    codes = []
    code, err, exc = _cli(["check", str(spec), *sets], timeout)
    codes.append(code)
    out = folder / "out"
    if exc is None and code == 0:
        few = ["--set", f"workload.requests={requests}", "--no-sweep", "--no-report", "-q"]
        code, err, exc = _cli(["run", str(spec), *sets, *few, "-o", str(out)], timeout)
        codes.append(code)
    seconds = time.perf_counter() - start
    if isinstance(exc, _Timeout):
        return Outcome(case, "hang", tuple(codes), f"over {timeout:g} s", seconds)
    if exc is not None:
        what = f"{type(exc).__name__}: {str(exc)[:200]}"
        return Outcome(case, "traceback", tuple(codes), what, seconds)
    if code not in (0, 1, 2):
        return Outcome(case, "traceback", tuple(codes), f"exit status {code}", seconds)
    if code == 1:
        lost = _unlocated(err)
        if lost:
            return Outcome(case, "unlocated", tuple(codes), lost, seconds)
    if code != 0 and len(codes) == 2 and out.is_dir():
        left = [n for n in RESULT_FILES if (out / n).exists()]
        if left and "rejected" not in err:
            return Outcome(case, "complete-looking", tuple(codes), ", ".join(left), seconds)
    return Outcome(case, "ok" if code == 0 else "rejected", tuple(codes), err[:300], seconds)


def cases(specs: int, traces: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    out = [spec_case(rng, i) for i in range(specs)]
    out += [trace_case(rng, i) for i in range(traces)]
    return out


FAILURES = ("traceback", "hang", "unlocated", "complete-looking")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", type=int, default=6000, help="spec mutants")
    p.add_argument("--traces", type=int, default=250, help="trace mutants")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per command")
    p.add_argument("--keep", help="write each failing case's files here")
    args = p.parse_args(argv)
    start = time.perf_counter()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="tokensim-fuzz-") as tmp:
        todo = cases(args.specs, args.traces, args.seed)
        for n, case in enumerate(todo, 1):
            folder = Path(tmp) / case.name
            o = attempt(case, folder, args.timeout)
            outcomes.append(o)
            if o.kind in FAILURES and args.keep:
                shutil.copytree(folder, Path(args.keep) / case.name, dirs_exist_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            if n % 250 == 0:
                took = time.perf_counter() - start
                print(f"  {n} of {len(todo)} ({took:.0f} s)", file=sys.stderr)
    kinds = Counter(o.kind for o in outcomes)
    spec_n = sum(o.case.name.startswith("spec") for o in outcomes)
    print(
        f"## tokensim fuzz: {spec_n} spec mutants, {len(outcomes) - spec_n} trace mutants, "
        f"seed {args.seed}, {time.perf_counter() - start:.0f} s\n"
    )
    print("| outcome | cases |\n|---|---|")
    for kind in ("ok", "rejected", *FAILURES):
        print(f"| {kind} | {kinds.get(kind, 0)} |")
    slowest = max(outcomes, key=lambda o: o.seconds, default=None)
    if slowest is not None:
        o = slowest
        print(f"\nslowest case: {o.case.name} {o.seconds:.1f} s ({o.case.mutation})")
    bad = [o for o in outcomes if o.kind in FAILURES]
    for o in bad:
        print(f"\n- {o.kind} {o.case.name}: {o.case.mutation}\n  {o.detail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
