"""The calibrations shipped with std/hardware: used by default, fitted on what they say,
remade by ``python3 -m tokensim.perf.ship``."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, compile_text

from tokensim.graph import lower
from tokensim.lang.check import std_dir, std_spec
from tokensim.perf import backend, calibrate, for_pool, shared, ship, tables
from tokensim.perf.roofline import CostModel

SHIPPED = ("A100_80G", "H100_SXM", "H200")
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="no shared measured data here")


def shipped(gpu: str) -> Path:
    return Path(str(std_dir())) / "calibrations" / f"{gpu}.json"


def spec_of(gpu: str, extra: str = "", model: str = "llama3_1_8b", tp: int = 1):
    return compile_text(
        'import "std/hardware"\nimport "std/models"\n'
        f"cluster {{ node n0 {{ gpus {gpu} x 8; link NVLINK4 }} }}\n"
        f"deployment {{ pool p {{ model {model}; tp {tp}; {extra} }} }}\n"
    )


def pool_of(gpu: str, extra: str = ""):
    return spec_of(gpu, extra).deployment.pools[0]


@pytest.mark.parametrize("gpu", SHIPPED)
def test_the_catalogue_gpus_with_tables_use_their_shipped_calibration(gpu):
    cat = {g.name: g for g in std_spec("hardware").gpus}
    assert cat[gpu].cost.kind == "calibrated"
    assert Path(cat[gpu].cost.path) == shipped(gpu).resolve()
    pool = pool_of(gpu)
    assert pool.cost == cat[gpu].cost
    assert isinstance(for_pool(pool, None), backend.MeasuredCostModel)
    cal = calibrate.read(shipped(gpu))
    assert set(cal.fits) == {gpu}
    assert cal.fitted_on["note"].startswith("fitted by tokensim")
    assert "tokensim.perf.ship" in cal.fitted_on["command"]
    assert {"gemm:16bit", "attention_prefill", "attention_decode:gqa"} <= set(cal.fits[gpu])


def test_cost_roofline_stays_selectable_for_a_pool():
    pool = pool_of("H100_SXM", "cost roofline")
    assert pool.cost.kind == "roofline"
    assert type(for_pool(pool, None)) is CostModel


def test_the_all_reduce_comes_from_nvidias_tables_only():
    for gpu in SHIPPED:
        fits = calibrate.read(shipped(gpu)).fits[gpu]
        assert sorted(n for n in fits if n.startswith("allreduce")) == [
            "allreduce:NCCL",
            "allreduce:vllm_graph",
        ]
        assert not any(n.startswith("send_recv") for n in fits)
    # NVIDIA's table: 1.93 ms for 256 MiB and 3.72 ms for 512 MiB on 4 A100s (NCCL);
    # Vidur's NCCL fit said 1.8 ms for 402 MB
    spec = spec_of("A100_80G", model="llama3_1_70b", tp=4)
    cost = for_pool(spec.deployment.pools[0], lower(spec))
    assert 2.6e-3 < cost._allreduce(402e6) < 3.2e-3


def test_fp8_gemms_and_the_fp8_kv_cache_come_from_vllms_fp8_paths():
    for gpu in ("H100_SXM", "H200"):
        fits = calibrate.read(shipped(gpu)).fits[gpu]
        assert {"gemm:fp8", "attention_prefill:kv_fp8", "attention_decode:gqa:kv_fp8"} <= set(fits)
    fp8 = for_pool(pool_of("H100_SXM", "kv { dtype fp8 }"), None)
    bf16 = for_pool(pool_of("H100_SXM"), None)
    assert fp8._decode_attention(64 * 4096, 64) < 0.8 * bf16._decode_attention(64 * 4096, 64)


def test_ops_priced_from_the_datasheet_alone_are_named_once(capsys, monkeypatch):
    monkeypatch.setattr(shared, "_said", set())  # notes are said once a process
    for_pool(pool_of("H200"), None)  # NVIDIA's tables have no norms, rope, activation, adds
    for_pool(pool_of("B200"), None)  # nothing measured: the roofline, said
    for_pool(pool_of("B200", "cost roofline"), None)  # chosen: nothing to say
    err = capsys.readouterr().err
    assert (
        "cost calibrated <std>/calibrations/H200.json: nothing measured for elementwise:norm, "
        "elementwise:add, elementwise:rope, elementwise:act on H200: priced from the datasheet "
        "alone" in err
    )
    assert err.count("no calibration for B200: every op priced from its datasheet") == 1
    for_pool(pool_of("H100_SXM"), None)  # Vidur measured them on H100: nothing to say
    assert "H100_SXM" not in capsys.readouterr().err


def test_a_std_catalogue_path_resolves_inside_the_package():
    text = std_dir().joinpath("hardware.tsim").read_text("utf-8")
    for gpu in SHIPPED:
        assert f'cost calibrated "calibrations/{gpu}.json"' in text
        assert shipped(gpu).is_file()


@needs_data
def test_the_shipped_files_were_fitted_on_the_shared_data_as_they_say():
    for gpu in SHIPPED:
        cal = calibrate.read(shipped(gpu))
        inputs = cal.fitted_on["inputs"]
        assert [i["file"] for i in inputs] == [
            str(p.resolve().relative_to(DATA.resolve())) for p in ship.inputs(DATA, gpu)
        ]
        for i in inputs:
            assert i["sha256"] == ship.sha256(DATA / i["file"]), i["file"]
        assert not any("network" in i["file"] for i in inputs)  # Vidur's NCCL: left out
    # the fp8 GEMMs are NVIDIA's per-tensor fp8 rows (not fp8_block), all of them
    gemm = np.array(
        [r["gemm_dtype"] for r in _csv(DATA / "nvidia_kernels/h100_sxm/gemm_perf.csv")], object
    )
    rows = calibrate.read(shipped("H100_SXM")).fitted_on["rows"]
    assert rows["gemm:fp8"] == (gemm == "fp8").sum()
    # and the 16-bit GEMMs NVIDIA's alone: Vidur's 2023 linear layers are left out
    assert rows["gemm:16bit"] == (gemm == "bfloat16").sum()


@needs_data
def test_ship_remakes_the_shipped_calibration(tmp_path):
    assert ship.main([str(DATA), "--gpu", "A100_80G", "-o", str(tmp_path)]) == 0
    made = json.loads((tmp_path / "A100_80G.json").read_text())
    kept = json.loads(shipped("A100_80G").read_text())
    assert made["fitted_on"] == kept["fitted_on"] and made["sources"] == kept["sources"]
    # the same rows, fitted as well: least squares lands on the same fit within a point of
    # error, though a flat direction (the compute efficiency of a memory-bound op) may
    # move with the version of scipy
    for name, fit in kept["gpus"]["A100_80G"].items():
        again = made["gpus"]["A100_80G"][name]
        assert again["rows"] == fit["rows"], name
        for stat in ("median", "p90"):
            assert again["fit_error"][stat] == pytest.approx(fit["fit_error"][stat], abs=0.02)


def _csv(path):
    import csv

    with open(path, newline="") as f:
        yield from csv.DictReader(f)


def test_a_table_without_the_kv_dtype_column_reads_as_16_bit(tmp_path):
    header = ",".join(c for c in tables.COLUMNS if c != "kv_dtype")
    (tmp_path / "t.csv").write_text(header + "\nH100_SXM,gemm,,,,bf16,4,8,8,,,,,,,,1\n")
    assert tables.read(tmp_path / "t.csv")["kv_dtype"].tolist() == [""]
