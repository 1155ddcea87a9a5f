"""Each stage imports only the stages below it (issue 17): the import graph of the
package, read from the source (imports inside functions included)."""

from __future__ import annotations

import ast

import networkx as nx
from conftest import ROOT


def _imports() -> nx.DiGraph:
    mods = {}
    for base, package in ((ROOT / "tokensim", "tokensim"), (ROOT / "dsl", "tokensim.dsl")):
        for path in base.rglob("*.py"):
            parts = [package, *path.relative_to(base).with_suffix("").parts]
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    g = nx.DiGraph()
    for name, path in mods.items():
        g.add_node(name)
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tokensim"):
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                    for a in node.names
                ]
            else:
                continue
            g.add_edges_from((name, t) for t in targets if t in mods and t != name)
    return g


def test_the_report_does_not_import_the_explorer():
    g = _imports()
    for module in [m for m in g if m.startswith("tokensim.report")]:
        direct = [t for t in g.successors(module) if t.startswith("tokensim.explore")]
        assert not direct, f"{module} imports {direct}"


def test_the_cost_models_pieces_are_below_its_backends():
    g = _imports()
    below = {"shared": (), "roofline": ("shared",), "ops": ("shared", "tables")}
    for name, allowed in below.items():
        perf = [t for t in g.successors(f"tokensim.perf.{name}") if t.startswith("tokensim.perf")]
        assert sorted(t.rsplit(".", 1)[-1] for t in perf) == sorted(allowed), (name, perf)
    for name in ("roofline", "ops", "calibrate", "tables", "shared"):
        up = [
            t
            for t in g.successors(f"tokensim.perf.{name}")
            if t in ("tokensim.perf.backend", "tokensim.perf.choose")
        ]
        assert not up, f"tokensim.perf.{name} imports {up}"
