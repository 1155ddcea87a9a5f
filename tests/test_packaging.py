"""A non-editable install works from any folder: the wheel carries the grammar and std/."""

import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT, SPECS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stderr}")
    (path,) = out.glob("tokensim-*.whl")
    return path


def test_wheel_contains_the_language_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "tokensim/dsl/tsim.lark" in names
    assert "tokensim/dsl/std/hardware.tsim" in names
    assert "tokensim/dsl/std/models.tsim" in names
    for gpu in ("A100_80G", "H100_SXM", "H200"):  # the shipped calibrations std/hardware names
        assert f"tokensim/dsl/std/calibrations/{gpu}.json" in names


def test_installed_wheel_checks_specs_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [sys.executable, "-c", "import tokensim; print(tokensim.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    result = subprocess.run(
        [sys.executable, "-m", "tokensim", "check", *map(str, SPECS)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("ok: ") == len(SPECS)


def test_installed_wheel_prices_h100_with_its_shipped_calibration(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import tokensim\n"
        "from tokensim.perf import for_pool\n"
        'spec = tokensim.load(\'import "std/hardware"\\nimport "std/models"\\n'
        "cluster { node n0 { gpus H100_SXM x 1 } }\\n"
        "deployment { pool p { model llama3_1_8b } }\\n')\n"
        "pool = spec.deployment.pools[0]\n"
        "print(pool.cost.kind, pool.cost.path, type(for_pool(pool, None)).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    kind, path, model = result.stdout.split()
    assert kind == "calibrated" and model == "MeasuredCostModel"
    assert path == str(site / "tokensim" / "dsl" / "std" / "calibrations" / "H100_SXM.json")
