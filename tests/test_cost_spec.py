"""The `cost` statement of gpu and pool blocks: which cost-model backend times a pool."""

import json

import pytest
from conftest import compile_text, errors_of

from tokensim import ir
from tokensim.dump import dump
from tokensim.lang.check import check
from tokensim.lang.diagnostics import CompileError
from tokensim.lang.override import override
from tokensim.lang.parse import parse
from tokensim.lang.source import SourceMap
from tokensim.perf import calibrate, tables

LINK = "link PCI { bandwidth 64 GB/s; latency 2 us }\n"
MODEL = (
    "model m { layers 32; hidden 4096; heads 32; kv_heads 8; ffn 14336; vocab 128256;"
    " max_context 8192 }\n"
)


HEADER = ",".join(tables.COLUMNS) + "\n"


def _row(**values) -> str:
    row = {c: "" for c in tables.COLUMNS} | {"gpu": "G", "op": "gemm", "dtype": "bf16", "tp": "1"}
    row |= {"m": "16", "n": "4096", "k": "4096", "seconds": "1e-5"} | values
    return ",".join(row[c] for c in tables.COLUMNS) + "\n"


TABLE = HEADER + _row()  # one GEMM timing
CALIBRATION = json.dumps({"format": calibrate.FORMAT, "version": calibrate.VERSION, "gpus": {}})


def spec(gpu_cost: str = "", pool_cost: str = "", pools: int = 1) -> str:
    """A one-node spec; ``gpu_cost`` (line 5) and ``pool_cost`` (line 10, in the first
    pool only) are statements put in the blocks."""
    body = [f"pool p0 {{ model m; on n0[0]\n{pool_cost}\n}}"]
    body += [f"pool p{i} {{ model m; on n0[{i}] }}" for i in range(1, pools)]
    return (
        LINK + MODEL + f"gpu G {{ memory 80 GB; bandwidth 3 TB/s; host_link PCI\n"
        f"compute {{ bf16 1000 TFLOPS }}\n{gpu_cost}\n}}\n"
        + "cluster { node n0 { gpus G x 2; link PCI } }\n"
        + "deployment {\n"
        + "\n".join(body)
        + "\n}\n"
    )


def test_default_is_roofline():
    s = compile_text(spec(pools=2))
    assert s.gpus[0].cost == ir.CostSpec("roofline", None, None)
    for pool in s.deployment.pools:
        assert (pool.cost.kind, pool.cost.path) == ("roofline", None)


def test_roofline_written_out():
    s = compile_text(spec(pool_cost="cost roofline"))
    cost = s.deployment.pools[0].cost
    assert (cost.kind, cost.path) == ("roofline", None)
    assert cost.span is not None and cost.span.line == 10


def test_gpu_table_path_is_resolved_against_the_spec_folder(tmp_path, monkeypatch):
    (tmp_path / "tables").mkdir()
    table = tmp_path / "tables" / "h100.csv"
    table.write_text(TABLE)
    monkeypatch.chdir("/")  # the path must not depend on the working directory
    s = compile_text(
        spec(gpu_cost='cost table "tables/h100.csv"', pools=2), str(tmp_path / "s.tsim")
    )
    gpu = s.gpus[0]
    assert (gpu.cost.kind, gpu.cost.path) == ("table", str(table.resolve()))
    assert gpu.cost.span.line == 5
    for pool in s.deployment.pools:  # pools without their own `cost` take the GPU's
        assert pool.cost == gpu.cost


def test_pool_overrides_gpu(tmp_path):
    (tmp_path / "t.csv").write_text(TABLE)
    (tmp_path / "fit.json").write_text(CALIBRATION)
    s = compile_text(
        spec(gpu_cost='cost table "t.csv"', pool_cost='cost calibrated "fit.json"', pools=2),
        str(tmp_path / "s.tsim"),
    )
    p0, p1 = s.deployment.pools
    assert (p0.cost.kind, p0.cost.path) == ("calibrated", str((tmp_path / "fit.json").resolve()))
    assert (p1.cost.kind, p1.cost.path) == ("table", str((tmp_path / "t.csv").resolve()))
    assert p0.gpu.cost.kind == "table"  # the GPU keeps its own choice

    s = compile_text(
        spec(gpu_cost='cost table "t.csv"', pool_cost="cost roofline"), str(tmp_path / "s.tsim")
    )
    assert (s.deployment.pools[0].cost.kind, s.deployment.pools[0].cost.path) == ("roofline", None)


def test_path_is_taken_from_the_file_that_holds_the_statement(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "fit.json").write_text(CALIBRATION)
    (tmp_path / "lib" / "gpus.tsim").write_text(
        LINK + "gpu G { memory 80 GB; bandwidth 3 TB/s; host_link PCI\n"
        'compute { bf16 1000 TFLOPS }; cost calibrated "fit.json" }\n'
    )
    text = (
        'import "lib/gpus"\n'
        + MODEL
        + "cluster { node n0 { gpus G x 1; link PCI } }\ndeployment { pool p { model m } }\n"
    )
    s = compile_text(text, str(tmp_path / "s.tsim"))
    assert s.deployment.pools[0].cost.path == str((tmp_path / "lib" / "fit.json").resolve())


def test_missing_file_is_a_located_error(tmp_path):
    text = spec(pool_cost='cost table "tables/nope.csv"')
    out = errors_of(text, str(tmp_path / "s.tsim"))
    assert "no such file `tables/nope.csv`" in out
    assert f"--> {tmp_path / 's.tsim'}:10:12" in out
    assert str(tmp_path / "tables" / "nope.csv") in out


def test_missing_file_of_a_gpu(tmp_path):
    out = errors_of(spec(gpu_cost='cost calibrated "fit.json"'), str(tmp_path / "s.tsim"))
    assert "no such file `fit.json` for `cost calibrated`" in out
    assert ":5:17" in out
    assert "unknown gpu" not in out  # the broken GPU is not reported again where it is used


@pytest.mark.parametrize(
    "kind, content, says",
    [
        ("calibrated", "not json", "line 1: not JSON"),
        ("calibrated", "{}", "not a tokensim calibration"),
        ("calibrated", "", "not JSON"),
        ("calibrated", b"\xf4\x90\x80\x80\x00binary", "cannot read"),
        ("calibrated", None, "malformed calibration"),
        ("table", "", "no header row"),
        ("table", HEADER, "no rows after the header"),
        ("table", "op,seconds\n", "header lacks"),
        ("table", None, "m must be a finite number >= 0, not -1"),
    ],
)
def test_a_file_tokensim_cannot_use_is_a_located_error(tmp_path, kind, content, says):
    """`check` reads the file as `run` would: a bad one is an error at its path, not a
    traceback when the run starts."""
    path = tmp_path / ("f.json" if kind == "calibrated" else "f.csv")
    if content is None and kind == "calibrated":  # the right header, a wrong body
        content = json.dumps(
            {"format": calibrate.FORMAT, "version": calibrate.VERSION, "gpus": {"G": {"gemm": 1}}}
        )
    elif content is None:
        content = HEADER + _row(m="-1")
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    out = errors_of(spec(pool_cost=f'cost {kind} "{path.name}"'), str(tmp_path / "s.tsim"))
    assert f"`{path.name}` is not" in out and says in out
    assert "s.tsim:10:" in out and "1 error" in out


def test_a_folder_is_not_a_file(tmp_path):
    (tmp_path / "tables").mkdir()
    out = errors_of(spec(pool_cost='cost table "tables"'), str(tmp_path / "s.tsim"))
    assert "`tables` is a folder, not a file" in out


def test_unknown_kind_lists_the_three():
    out = errors_of(spec(pool_cost="cost magic"))
    assert "unknown cost model `magic`" in out
    assert "`calibrated`, `roofline` or `table`" in out
    assert "test.tsim:10:6" in out


def test_roofline_takes_no_path(tmp_path):
    (tmp_path / "t.csv").write_text(TABLE)
    out = errors_of(spec(gpu_cost='cost roofline "t.csv"'), str(tmp_path / "s.tsim"))
    assert "`cost roofline` takes no file" in out
    assert ":5:15" in out


@pytest.mark.parametrize("kind", ["table", "calibrated"])
def test_table_and_calibrated_need_a_path(kind):
    out = errors_of(spec(pool_cost=f"cost {kind}"))
    assert f"`cost {kind}` needs a file" in out
    assert f"test.tsim:10:{6 + len(kind)}" in out


def test_cost_given_twice():
    out = errors_of(spec(pool_cost="cost roofline; cost roofline"))
    assert "`cost` is given twice" in out


def test_set_overrides_cost(tmp_path):
    (tmp_path / "t.csv").write_text(TABLE)
    path = tmp_path / "s.tsim"
    sources = SourceMap()
    module = parse(spec(), str(path), sources)
    module = override(module, "deployment.p0.cost", 'table "t.csv"', sources)
    s = check(module, sources)
    cost = s.deployment.pools[0].cost
    assert (cost.kind, cost.path) == ("table", str((tmp_path / "t.csv").resolve()))
    bad = override(module, "deployment.p0.cost", "magic", sources)
    with pytest.raises(CompileError, match="unknown cost model"):
        check(bad, sources)


def test_dump_shows_the_cost(tmp_path):
    (tmp_path / "t.csv").write_text(TABLE)
    s = compile_text(spec(pool_cost='cost table "t.csv"'), str(tmp_path / "s.tsim"))
    text = dump(s, str(tmp_path))
    assert "cost=CostSpec @s.tsim:10:1(kind='table', path='t.csv')" in text
    assert "cost=CostSpec(kind='roofline', path=None)" in text  # the GPU's default
