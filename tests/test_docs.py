"""The docs grow with the code: the generated reference is current, the site builds
strictly, and every statement, policy and unit of the language is in the reference."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from tokensim.lang.check import schemas
from tokensim.lang.reference import BLOCKS, GENERATED
from tokensim.lang.units import UNITS
from tokensim.policies.batching import BATCHING
from tokensim.policies.routing import FIELDS, ROUTING
from tokensim.policies.workload import ARRIVALS, LENGTHS

DOCS = ROOT / "docs"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_pages_are_current(name):
    current = (DOCS / name).read_text("utf-8")
    assert current == GENERATED[name](), (
        f"docs/{name} is stale: run `python3 -m tokensim.lang.reference docs`"
    )


def test_reference_covers_every_construct():
    text = (DOCS / "reference.md").read_text("utf-8")
    for _, block in BLOCKS:
        for attr in block.attrs:
            assert f"`{attr.key}" in text, attr.key
    for registry in (BATCHING, ROUTING, ARRIVALS, LENGTHS):
        for cls in registry:
            assert f"#### `{cls.name}" in text, cls.name
    for field in FIELDS:
        assert f"`{field}`" in text
    for unit in UNITS:
        assert f"`{unit}`" in text, unit
    assert "### sweep" in text and schemas.SWEEP.kind == "sweep"
    # defaults read as a spec writes them: switches on/off, numbers as numbers
    assert "needs `requests`): the load is the rate, only the pattern is drawn | `off` |" in text
    assert "coefficient of variation of the gaps (0.001 to 1000) | `1.0` |" in text
    assert "| `True` |" not in text and "| `False` |" not in text


def test_mkdocs_builds_strictly(tmp_path):
    if (
        shutil.which("mkdocs") is None
        and subprocess.run(
            [sys.executable, "-m", "mkdocs", "--version"], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("mkdocs is not installed (it is in the test extras)")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "reference" / "index.html").exists()


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text("utf-8")
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    test_command = ci.strip().splitlines()[-1]
    assert test_command in readme, "the README's test command and .ci/run differ"
    assert "python3 -m pip install . && tokensim run specs/" in readme
