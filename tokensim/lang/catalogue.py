"""``tokensim list``: what the shipped catalogues and registries hold, with their sources."""

from __future__ import annotations

import argparse
import re

KINDS = ("gpus", "models", "engines", "links", "policies")


# what a Hugging Face repository name carries beyond the model: the organisation, a variant
# (instruct, chat, base...), a version or a release date
_HUB_SUFFIX = re.compile(r"-(instruct|chat|hf|base|it)$|-v\d+(\.\d+)*$|-\d{4}$")


def _model_key(name: str) -> str:
    """``meta-llama/Llama-3.1-70B-Instruct``, ``llama-3.1-70b`` and ``llama3_1_70b`` alike:
    ``llama3170b``."""
    name = name.strip().split("/")[-1].lower()
    name = name.removeprefix("meta-")  # Meta-Llama-3-70B
    while True:
        shorter = _HUB_SUFFIX.sub("", name)
        if shorter == name:
            break
        name = shorter
    return re.sub(r"[^a-z0-9]", "", name)


def model_named(name: str) -> str | None:
    """The std model a user's name for it means: its catalogue name, its Hugging Face
    repository (as the catalogue cites it, with or without the organisation, any variant
    or release date) or that name in other spelling; None when none or several match."""
    from tokensim.lang.check import std_spec

    key = _model_key(name)
    found = set()
    for m in std_spec("models").models:
        names = [m.name] + [
            hit.group(1)
            for src in m.sources
            if (hit := re.search(r"huggingface\.co/([^/\s]+/[^/\s]+)", src))
        ]
        if any(_model_key(n) == key for n in names):
            found.add(m.name)
    return found.pop() if len(found) == 1 else None


def _first_line(doc: str | None) -> str:
    text = " ".join((doc or "").replace("``", "`").split())
    return text.split(". ")[0].rstrip(".") if text else ""


def _numeric(cell: str) -> bool:
    return re.fullmatch(r"-|[\d.,/]+B?|\d+x top\d+", cell) is not None


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Columns of figures right-aligned, of words left-aligned."""
    from tokensim.report.summary import aligned

    columns = zip(head, *rows, strict=True)
    words = {j for j, col in enumerate(columns) if not all(_numeric(c) for c in col[1:])}
    return aligned(head, rows, left=words, indent="")


def _with_sources(lines: list[str], sources: list[tuple[str, ...]], all_sources: bool):
    """``lines`` (a header and a row per entry), each row followed by its other sources."""
    if not all_sources:
        return lines
    out = [lines[0]]
    for line, srcs in zip(lines[1:], sources, strict=True):
        out.append(line)
        out += [f"    source: {x}" for x in srcs[1:]]
    return out


def _tflops(flops: dict, dtype: str) -> str:
    return f"{flops[dtype] / 1e12:g}" if dtype in flops else "-"


def gpus(all_sources: bool) -> list[str]:
    from tokensim.lang.check import std_spec

    items = sorted(std_spec("hardware").gpus, key=lambda g: g.name)
    rows = []
    for g in items:
        flops = dict(g.compute_flops)
        price = f"{g.price_per_h:.2f}" if g.price_per_h is not None else "-"
        rows.append(
            [
                g.name,
                f"{g.memory_B / 2**30:.1f}",
                f"{g.bandwidth_Bps / 1e12:g}",
                _tflops(flops, "bf16"),
                _tflops(flops, "fp8"),
                g.host_link.name,
                price,
                g.sources[0] if g.sources else "",
            ]
        )
    head = ["gpu", "GiB", "TB/s", "bf16 TFLOPS", "fp8 TFLOPS", "host link", "$/h", "source"]
    return _with_sources(_table(head, rows), [g.sources for g in items], all_sources)


def _experts(m) -> str:
    """``256x top8 +1 shared``: a MoE model's routing, ``-`` for a dense model."""
    if m.experts == 1:
        return "-"
    return f"{m.experts}x top{m.top_k}" + (f" +{m.shared_experts}" if m.shared_experts else "")


def models(all_sources: bool) -> list[str]:
    from tokensim.lang.check import std_spec

    items = sorted(std_spec("models").models, key=lambda m: m.name)
    rows = [
        [
            m.name,
            f"{m.params / 1e9:.1f}B",
            str(m.layers),
            str(m.hidden),
            f"{m.heads} MLA" if m.mla else f"{m.heads}/{m.kv_heads}",
            _experts(m),
            f"{m.max_context:,}",
            m.sources[0] if m.sources else "",
        ]
        for m in items
    ]
    head = ["model", "params", "layers", "hidden", "heads/kv", "experts", "context", "source"]
    return _with_sources(_table(head, rows), [m.sources for m in items], all_sources)


def engines(all_sources: bool) -> list[str]:
    from tokensim.lang.check import std_engines

    items = sorted(std_engines().values(), key=lambda e: e.name)
    rows = [[e.name, e.version or "-", e.sources[0] if e.sources else ""] for e in items]
    lines = _table(["engine", "version", "source"], rows)
    return _with_sources(lines, [e.sources for e in items], all_sources)


def links(all_sources: bool) -> list[str]:
    from tokensim.lang.check import std_spec

    items = sorted(std_spec("hardware").links, key=lambda x: x.name)
    rows = [
        [
            x.name,
            f"{x.bandwidth_Bps / 1e9:g}",
            f"{x.latency_s * 1e6:g}",
            x.sources[0] if x.sources else "",
        ]
        for x in items
    ]
    lines = _table(["link", "GB/s", "latency us", "source"], rows)
    return _with_sources(lines, [x.sources for x in items], all_sources)


def policies(all_sources: bool) -> list[str]:
    from tokensim.policies.batching import BATCHING
    from tokensim.policies.routing import ROUTING
    from tokensim.policies.workload import ARRIVALS, LENGTHS

    rows = [
        [registry.family, cls.name, _first_line(cls.__doc__)]
        for registry in (BATCHING, ROUTING, ARRIVALS, LENGTHS)
        for cls in registry
    ]
    return _table(["family", "name", "what it does"], rows)


def cmd_list(args) -> int:
    show = {"gpus": gpus, "models": models, "engines": engines, "links": links}
    show["policies"] = policies
    print("\n".join(show[args.kind](args.sources)))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "list",
        help="list the catalogue's GPUs, models, engines and links, and the policies",
        description="List what a spec can name without defining it: the GPUs and links of "
        'std/hardware, the models of std/models, the engines of std/engines (import "std/..." '
        "in a spec), and the batching, routing, arrival and length policies. Each line gives "
        "the entry's main figures and its first source; --sources prints every source.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--sources", action="store_true", help="every source of each entry")
    p.set_defaults(func=cmd_list)
