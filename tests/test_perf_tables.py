"""Op tables, importers, calibration, validation and the measured cost backends."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tokensim.cli import main
from tokensim.perf import calibrate, importers, ops, tables, validate

GPU = "H100_SXM"
TRUE = {"gemm": ops.Params(0.5, 0.55, 4e-6, 2.0), "elementwise": ops.Params(1.0, 0.6, 3e-6)}


def synthetic(models=("a", "b", "c")) -> tables.Table:
    """GEMM and norm rows whose times follow a known formula exactly."""
    rows = []
    for i, model in enumerate(models):
        d = 2048 * (i + 1)
        for m in (1, 4, 16, 64, 256, 1024, 4096):
            for n, k in ((3 * d, d), (d, d), (4 * d, d), (d, 4 * d)):
                rows.append({"gpu": GPU, "op": "gemm", "model": model, "dtype": "bf16",
                             "m": m, "n": n, "k": k, "seconds": 1.0})  # fmt: skip
            rows.append({"gpu": GPU, "op": "elementwise", "kernel": "norm", "model": model,
                         "m": m, "bytes": 4 * m * d, "seconds": 1.0})  # fmt: skip
    t = tables.from_rows(rows)
    pk = calibrate.peaks(GPU)
    for op, p in TRUE.items():
        mask = t["op"] == op
        t.columns["seconds"][mask] = ops.predict(t.where(mask), op, pk, p)
    return t


def test_table_round_trip(tmp_path):
    t = synthetic()
    t.comments.append("made by a test")
    tables.write(t, tmp_path / "t.csv")
    back = tables.read(tmp_path / "t.csv")
    assert back.comments == ["made by a test"]
    assert len(back) == len(t)
    np.testing.assert_allclose(back["seconds"], t["seconds"])
    assert back.values("op") == ["elementwise", "gemm"]


# a header without the optional columns (a table written before kv_dtype existed)
HEADER = ",".join(c for c in tables.COLUMNS if c not in tables.OPTIONAL)


@pytest.mark.parametrize(
    "body, message",
    [
        ("gpu,op\n", "header lacks"),
        (HEADER + "\nH100_SXM,conv,,,,,,,,,,,,,,,1\n", "unknown op 'conv'"),
        (HEADER + "\nH100_SXM,gemm,,,,bf16,4,,8,,,,,,,,1\n", "needs n"),
        (
            HEADER + "\nH100_SXM,gemm,,,,bf16,4,x,8,,,,,,,,1\n",
            "'x' is not a number",
        ),
        (HEADER + "\nH100_SXM,gemm,,,,bf16,4,4\n", "expected 17 values"),
        (HEADER + "\n", "no rows"),
    ],
)
def test_bad_tables_name_the_line(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(tables.TableError, match=message) as err:
        tables.read(path)
    assert str(path) in str(err.value)


def test_missing_table():
    with pytest.raises(tables.TableError, match="no such file"):
        tables.read("/nonexistent/table.csv")


def vidur_mlp(folder, tokens=(1, 64, 512), model="meta-llama/Tiny-8B", parallel=False):
    """A small mlp.csv in Vidur's layout (ms per layer), written by this test: a Llama
    block, or (``parallel``) a phi-2-like one (attention and a GELU MLP side by side,
    no second norm)."""
    ops_ = "input_layernorm attn_pre_proj attn_rope attn_post_proj post_attention_layernorm"
    ops_ = (ops_ + " mlp_up_proj mlp_act mlp_down_proj add").split()
    if parallel:
        ops_.remove("post_attention_layernorm")
    cols = [f"time_stats.{o}.median" for o in ops_]
    geo = ["n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp"]
    lines = [",".join(cols + geo + ["num_tokens", "num_tensor_parallel_workers"])]
    gated = str(not parallel)
    for t in tokens:
        times = [f"{0.01 * (j + 1) * t:g}" for j in range(len(ops_))]
        lines.append(",".join(times + ["32", "8", "4096", "14336", "128256", gated, str(t), "2"]))
    path = folder / "compute" / "h100" / model / "mlp.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_vidur_import_shapes(tmp_path):
    t = importers.load(vidur_mlp(tmp_path))
    assert set(t["gpu"]) == {GPU} and set(t["model"]) == {"Tiny-8B"}
    g = t.select(op="gemm", kernel="attn_pre_proj")
    # 32 query + 2 x 8 kv heads of 128, split over tp 2
    assert set(g["n"]) == {(32 + 16) * 128 / 2} and set(g["k"]) == {4096}
    up = t.select(op="gemm", kernel="mlp_up_proj")
    assert set(up["n"]) == {2 * 14336 / 2}
    assert sorted(set(t.select(op="elementwise")["kernel"])) == ["act", "add", "norm", "rope"]
    # ms -> s: attn_pre_proj is column 2, at 512 tokens 0.02 * 512 ms
    assert math.isclose(g.where(g["m"] == 512)["seconds"][0], 0.02 * 512e-3)


def test_vidur_import_names_the_kernels_each_block_runs(tmp_path):
    t = importers.load(vidur_mlp(tmp_path, model="microsoft/phi-2", parallel=True))
    ew = t.select(op="elementwise")
    # torch's LayerNorm and GELU, and two adds in one timing: kernels of their own
    assert sorted(set(ew["kernel"])) == ["add3", "gelu", "layer_norm", "rope"]
    add = ew.select(kernel="add3")
    assert set(add["bytes"] / add["m"]) == {12 * 4096}  # attention + MLP + residual, 16-bit
    act = ew.select(kernel="gelu")
    assert set(act["bytes"] / act["m"]) == {4 * 14336 / 2}  # read and write, not gated


def test_a_kernel_one_model_runs_is_not_held_out_and_is_listed(tmp_path):
    tokens = (1, 16, 64, 256, 512)
    llama = importers.load(vidur_mlp(tmp_path / "a", tokens))
    other = importers.load(vidur_mlp(tmp_path / "b", tokens, "meta-llama/Other-8B"))
    phi = importers.load(vidur_mlp(tmp_path / "c", tokens, "microsoft/phi-2", parallel=True))
    p = validate.predict(tables.concat([llama, other, phi]), cross=False)
    lone = {(name, model) for _, name, model, _ in validate.unheld(p)}
    assert lone == {(f"elementwise:{k}", "phi-2") for k in ("add3", "gelu", "layer_norm")}
    both = p.classes == "elementwise:rope"  # run by both models: each predicted held out
    assert p.scored[both].all()
    assert "- H100_SXM phi-2 elementwise:gelu: 5 rows" in validate.unheld_markdown(p)


def test_import_unknown_gpu_folder(tmp_path):
    path = tmp_path / "mystery" / "mlp.csv"
    path.parent.mkdir()
    path.write_text("num_tokens\n1\n")
    with pytest.raises(importers.SourceError, match="cannot tell the GPU"):
        importers.load(path)


def test_calibration_recovers_the_formula():
    fit = calibrate.fit_op(synthetic().select(op="gemm"), "gemm", calibrate.peaks(GPU), False)
    true = TRUE["gemm"]
    assert fit.params.compute == pytest.approx(true.compute, rel=0.02)
    assert fit.params.memory == pytest.approx(true.memory, rel=0.02)
    assert fit.params.overhead_s == pytest.approx(true.overhead_s, rel=0.1)


def test_calibration_file_round_trip(tmp_path):
    t = synthetic()
    cal = calibrate.calibrate(t)
    cal.write(tmp_path / "cal.json")
    back = calibrate.read(tmp_path / "cal.json")
    assert set(back.fits[GPU]) == {"gemm:16bit", "elementwise:norm"}
    g = t.select(op="gemm")
    np.testing.assert_allclose(
        back.predict(g, GPU, "gemm:16bit"), cal.predict(g, GPU, "gemm:16bit")
    )
    assert np.median(np.abs(back.predict(g, GPU, "gemm:16bit") / g["seconds"] - 1)) < 0.01


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not JSON"),
        ('{"format": "x"}', "not a tokensim calibration"),
        ('{"format": "tokensim calibration", "version": 9}', "version 9"),
    ],  # fmt: skip
)
def test_bad_calibration_files(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(calibrate.CalibrationError, match=message):
        calibrate.read(path)


def test_corrections_fix_what_the_formula_misses():
    t = synthetic().select(op="gemm")
    t.columns["seconds"] = t["seconds"] * np.where(t["m"] == 256, 1.3, 1.0)  # a kernel quirk
    pk = calibrate.peaks(GPU)
    plain = calibrate.fit_op(t, "gemm", pk, corrections=False)
    corrected = calibrate.fit_op(t, "gemm", pk, corrections=True)
    quirk = t.where(t["m"] == 256)
    err = lambda f: np.median(np.abs(f.predict(quirk, "gemm", pk) / quirk["seconds"] - 1))  # noqa: E731
    assert err(corrected) < 0.02 < err(plain)


def test_validation_holds_out_each_model():
    scores = validate.evaluate(synthetic(), cross=False)
    lomo = [s for s in scores if s.method == "calibrated"]
    assert {s.model for s in lomo} == {"a", "b", "c"}
    assert max(s.median for s in lomo) < 0.02  # the truth is the formula: held out, still exact
    roof = [s for s in scores if s.method == "roofline" and s.op == "gemm:16bit"]
    assert min(s.median for s in roof) > 0.05  # the default efficiencies are not the truth
    text = validate.markdown(scores)
    assert "| H100_SXM | a | gemm:16bit |" in text


SPEC = """
import "std/hardware"
import "std/models"
cluster { node n0 { gpus H100_SXM x 1 } }
deployment {
  pool serve {
    model llama3_1_8b bf16
    COST
    batching continuous { max_seqs 64; max_tokens 4096 }
  }
}
workload { arrivals poisson 4/s; lengths fixed 512 -> 64; requests 60; seed 1 }
"""


def run_spec(tmp_path, cost: str, name: str) -> dict:
    spec = tmp_path / f"{name}.tsim"
    spec.write_text(SPEC.replace("COST", cost))
    out = tmp_path / name
    assert main(["run", str(spec), "-o", str(out), "--no-report", "-q"]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_calibrated_and_table_backends_run(tmp_path, capsys):
    t = synthetic()
    tables.write(t, tmp_path / "t.csv")
    calibrate.calibrate(t).write(tmp_path / "cal.json")
    roof = run_spec(tmp_path, "cost roofline", "roof")
    cal = run_spec(tmp_path, 'cost calibrated "cal.json"', "cal")
    tab = run_spec(tmp_path, 'cost table "t.csv"', "tab")
    assert cal["ttft_s"]["p50"] != roof["ttft_s"]["p50"]
    assert tab["ttft_s"]["p50"] != roof["ttft_s"]["p50"]
    err = capsys.readouterr().err
    assert "roofline used" in err  # attention is in neither file: said, not hidden
    again = run_spec(tmp_path, 'cost calibrated "cal.json"', "cal2")
    assert again["ttft_s"] == cal["ttft_s"] and again["tpot_s"] == cal["tpot_s"]


def test_cli_import_calibrate_validate(tmp_path, capsys):
    src = vidur_mlp(tmp_path)
    assert main(["import", str(src), "-o", str(tmp_path / "t.csv"), "-q"]) == 0
    assert tables.read(tmp_path / "t.csv")["gpu"][0] == GPU
    assert main(["calibrate", str(tmp_path / "t.csv"), "-o", str(tmp_path / "c.json"), "-q"]) == 0
    assert calibrate.read(tmp_path / "c.json").fits[GPU]["gemm:16bit"].rows == 12
    assert main(["validate", str(tmp_path / "t.csv"), "-q", "--no-cross"]) == 0
    assert "| H100_SXM |" in capsys.readouterr().out
    assert main(["calibrate", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "x.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
