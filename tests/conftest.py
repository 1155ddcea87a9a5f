"""Shared helpers: compiling text, locating the repository's folders, golden files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokensim.lang.check import check
from tokensim.lang.diagnostics import CompileError
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.tsim"))
UPDATE = os.environ.get("TOKENSIM_UPDATE_GOLDEN") == "1"


def compile_text(text: str, filename: str = "test.tsim"):
    """Check ``text``; return the IR."""
    sources = SourceMap()
    return check(parse(text, filename, sources), sources)


def errors_of(text: str, filename: str = "test.tsim") -> str:
    """The rendered diagnostics of ``text`` (fails the test if it compiles)."""
    with pytest.raises(CompileError) as info:
        compile_text(text, filename)
    return str(info.value)


def golden(path: Path, actual: str) -> None:
    """Compare ``actual`` with the file at ``path``; TOKENSIM_UPDATE_GOLDEN=1 rewrites it."""
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"missing golden file {path}; run with TOKENSIM_UPDATE_GOLDEN=1")
        path.write_text(actual, "utf-8")
        return
    expected = path.read_text("utf-8")
    assert actual == expected, f"{path.name} differs (TOKENSIM_UPDATE_GOLDEN=1 refreshes it)"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    """Sweeps and searches keep their results out of the working tree: one cache per test."""
    monkeypatch.setenv("TOKENSIM_CACHE", str(tmp_path_factory.mktemp("cache")))


def tokensim_cli(*args, env=None, cwd=ROOT):
    """Run ``python -m tokensim ARGS`` as a user would; its CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "tokensim", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
