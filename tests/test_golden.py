"""Golden dumps per stage: tests/cases/NAME.tsim beside NAME.ast, NAME.ir, NAME.graph.

TOKENSIM_UPDATE_GOLDEN=1 rewrites them; review the diff before committing.
"""

from pathlib import Path

import pytest
from conftest import golden

from tokensim.dump import dump
from tokensim.graph import lower
from tokensim.graph.render import dump as graph_dump
from tokensim.lang.check import check
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap

CASES = Path(__file__).parent / "cases"
SPECS = [p for p in sorted(CASES.glob("*.tsim")) if p.stem != "lib"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_stages(path: Path) -> None:
    sources = SourceMap()
    module = parse(path.read_text("utf-8"), str(path), sources)
    root = str(CASES)
    golden(path.with_suffix(".ast"), dump(module, root) + "\n")
    spec = check(module, sources)
    golden(path.with_suffix(".ir"), dump(spec, root) + "\n")
    golden(path.with_suffix(".graph"), graph_dump(lower(spec)))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_dumps_are_deterministic(path: Path) -> None:
    def once() -> str:
        sources = SourceMap()
        spec = check(parse(path.read_text("utf-8"), str(path), sources), sources)
        return dump(spec, str(CASES)) + graph_dump(lower(spec))

    assert once() == once()
