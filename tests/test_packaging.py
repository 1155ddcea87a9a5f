"""A non-editable install works from any folder: the wheel carries the grammar and std/
(from the top-level dsl/, shipped as tokensim.dsl)."""

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


def _python(site, cwd, *args) -> subprocess.CompletedProcess:
    """``python args`` in ``cwd`` with only the installed wheel at ``site`` on the path."""
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_installed_wheel_checks_specs_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _python(site, elsewhere, "-c", "import tokensim; print(tokensim.__file__)")
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    result = _python(site, elsewhere, "-m", "tokensim", "check", *SPECS)
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


def test_the_package_list_is_the_source_tree():
    """pyproject lists the packages (dsl/ is mapped to tokensim.dsl): every folder of
    tokensim/ with an __init__.py is there, and nothing else."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "tokensim").rglob("__init__.py")
    }
    assert set(config["packages"]) == tree | {"tokensim.dsl"}
    assert config["package-dir"] == {"tokensim.dsl": "dsl"}
    assert (ROOT / "dsl" / "tsim.lark").is_file() and not (ROOT / "tokensim" / "dsl").exists()


def test_the_wheel_carries_every_module_of_the_tree(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (ROOT / "tokensim").rglob("*.py"):
        assert str(path.relative_to(ROOT)) in names
    for path in (ROOT / "dsl").rglob("*"):
        if path.is_file() and path.suffix in (".py", ".lark", ".tsim", ".json"):
            assert "tokensim/dsl/" + str(path.relative_to(ROOT / "dsl")) in names


def test_the_checkouts_root_runs_beside_an_installed_wheel(wheel, tmp_path):
    """Python started in the checkout's root imports the source tokensim/, which has no
    dsl/: tokensim.dsl is then found in the top-level dsl/ (it was a ModuleNotFoundError
    with a non-editable install)."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    where = _python(site, ROOT, "-c", "import tokensim.dsl; print(tokensim.dsl.__file__)")
    assert where.stdout.strip() == str(ROOT / "dsl" / "__init__.py"), where.stderr
    result = _python(site, ROOT, "-m", "tokensim", "check", *SPECS)
    assert result.returncode == 0, result.stderr
