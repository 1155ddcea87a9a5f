"""The code follows the project's style (ruff), so reviews discuss substance."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def test_ruff_check_is_clean():
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (it is in the test extras)")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "tokensim", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
