"""One test per diagnostic: each tests/diagnostics/NAME.tsim holds one mistake
(three_mistakes.tsim holds three) and NAME.err the full expected message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ROOT, golden

from tokensim.lang.check import check
from tokensim.lang.diagnostics import CompileError
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap

CASES = Path(__file__).parent / "diagnostics"


def _render(path: Path) -> str:
    rel = os.path.relpath(path, ROOT)
    sources = SourceMap()
    cwd = os.getcwd()
    os.chdir(ROOT)  # spans and messages name files relative to the repository
    try:
        check(parse(path.read_text("utf-8"), rel, sources), sources)
    except CompileError as err:
        return str(err) + "\n"
    finally:
        os.chdir(cwd)
    pytest.fail(f"{path.name} compiled without errors")


@pytest.mark.parametrize("path", sorted(CASES.glob("*.tsim")), ids=lambda p: p.stem)
def test_diagnostic(path: Path) -> None:
    golden(path.with_suffix(".err"), _render(path))


def test_three_mistakes_all_reported() -> None:
    text = _render(CASES / "three_mistakes.tsim")
    assert text.count("error: ") == 3
    locations = [
        line.split("--> ")[1] for line in text.splitlines() if line.lstrip().startswith("-->")
    ]
    assert locations == [
        "tests/diagnostics/three_mistakes.tsim:7:11",
        "tests/diagnostics/three_mistakes.tsim:8:5",
        "tests/diagnostics/three_mistakes.tsim:9:36",
    ]
    assert text.rstrip().endswith("3 errors")


def test_every_case_has_one_error_unless_named_otherwise() -> None:
    for err in sorted(CASES.glob("*.err")):
        count = err.read_text("utf-8").count("\nerror: ") + err.read_text("utf-8").startswith(
            "error: "
        )
        assert count == (3 if err.stem == "three_mistakes" else 1), err.name
