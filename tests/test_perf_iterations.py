"""Collectives in the importers and the fits, grid hold-outs, and whole-iteration validation."""

import numpy as np
import pytest

from tokensim.perf import backend, calibrate, importers, iterations, ops, tables, validate

GPU = "H100_SXM"


def nvidia_allreduce(folder, kernel_rows):
    """A custom_allreduce_perf.csv / nccl_perf.csv in NVIDIA's layout (sizes in elements)."""
    path = folder / "h100_sxm" / "nccl_perf.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "framework,version,device,op_name,kernel_source,nccl_dtype,num_gpus,message_size,latency"
    ]
    for dtype, gpus, size, ms in kernel_rows:
        lines.append(f"TRTLLM,2.29,H100,all_reduce,NCCL,{dtype},{gpus},{size},{ms}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_collective_sizes_are_elements(tmp_path):
    path = nvidia_allreduce(tmp_path, [("half", 2, 1024, 0.01), ("int8", 2, 1024, 0.01)])
    t = importers.load(path)
    assert sorted(zip(t["dtype"], t["bytes"], strict=True)) == [("fp16", 2048.0), ("int8", 1024.0)]


def test_unknown_collective_dtype_is_located(tmp_path):
    path = nvidia_allreduce(tmp_path, [("bogus", 2, 1024, 0.01)])
    with pytest.raises(importers.SourceError, match=r"nccl_perf.csv:2: unknown all-reduce dtype"):
        importers.load(path)


def allreduce_rows(kernel: str, truth: ops.Params) -> tables.Table:
    rows = [
        {"gpu": GPU, "op": "allreduce", "kernel": kernel, "dtype": "bf16", "gpus": g, "bytes": b,
         "seconds": 1.0}
        for g in (2, 4, 8) for b in 2.0 ** np.arange(10, 30, 2)
    ]  # fmt: skip
    t = tables.from_rows(rows)
    t.columns["seconds"] = ops.predict(t, "allreduce", calibrate.peaks(GPU), truth)
    return t


def test_collective_fit_recovers_the_step_latency():
    truth = ops.Params(1.0, 0.7, 3e-6, step_s=0.5e-6)
    fit = calibrate.fit_op(allreduce_rows("NCCL", truth), "allreduce", calibrate.peaks(GPU), False)
    assert fit.params.memory == pytest.approx(0.7, rel=0.02)
    assert fit.params.overhead_s == pytest.approx(3e-6, rel=0.05)
    assert fit.params.step_s == pytest.approx(0.5e-6, rel=0.05)


def test_fit_classes_split_precisions_and_kernels():
    t = tables.concat(
        [
            allreduce_rows("NCCL", ops.Params(1.0, 0.7, 3e-6)),
            allreduce_rows("custom", ops.Params(1.0, 0.5, 1e-6)),
            tables.from_rows(
                [
                    {
                        "gpu": GPU,
                        "op": "gemm",
                        "dtype": d,
                        "m": 8,
                        "n": 64,
                        "k": 64,
                        "seconds": 1e-5,
                    }
                    for d in ("bf16", "fp16", "fp8")
                ]  # fmt: skip
            ),
        ]
    )
    names = [name for name, _, _ in calibrate.fit_classes(t)]
    assert names == ["allreduce:NCCL", "allreduce:custom", "gemm:16bit", "gemm:fp8"]


def test_calibrated_allreduce_takes_the_fastest_kernel():
    slow, fast = ops.Params(1.0, 0.5, 10e-6), ops.Params(1.0, 0.8, 2e-6)
    t = tables.concat([allreduce_rows("NCCL", slow), allreduce_rows("custom", fast)])
    cal = calibrate.calibrate(t, corrections=False)
    q = allreduce_rows("", fast)
    got = backend.CalibrationPredictor(cal)(GPU, "allreduce", "", q)
    np.testing.assert_allclose(got, q["seconds"], rtol=0.01)


def grid() -> tables.Table:
    """A GEMM grid without models whose times follow a formula exactly."""
    dims = (256, 512, 1024, 2048, 4096)
    rows = [
        {"gpu": GPU, "op": "gemm", "dtype": "bf16", "m": m, "n": n, "k": k, "seconds": 1.0}
        for m in (1, 16, 256, 4096) for n in dims for k in dims
    ]  # fmt: skip
    t = tables.from_rows(rows)
    t.columns["seconds"] = ops.predict(t, "gemm", calibrate.peaks(GPU), ops.Params(0.6, 0.7, 4e-6))
    return t


def test_grids_hold_out_interior_families_only():
    p = validate.predict(grid(), cross=False)
    held = p.scored
    assert set(p.table["n"][held]) == {512, 1024, 2048}  # never the ends of the grid
    # the ends are still predicted (for whole iterations), by a fit without them
    assert not np.isnan(p.methods["calibrated"]).any()
    err = np.abs(p.methods["calibrated"][held] / p.table["seconds"][held] - 1)
    assert np.median(err) < 0.02


def layer_tables() -> tables.Table:
    """Vidur-like layer rows of one model (tp 2) and NVIDIA-like attention and all-reduce."""
    heads, kv, hd, d = 16, 4, 128, 4096  # per GPU
    rows = []
    for m in (64, 128):
        for kernel, n, k in (("attn_pre_proj", (heads + 2 * kv) * hd, d),
                             ("attn_post_proj", d, heads * hd)):  # fmt: skip
            rows.append({"gpu": GPU, "op": "gemm", "kernel": kernel, "model": "M", "tp": 2,
                         "dtype": "fp16", "m": m, "n": n, "k": k, "seconds": 1e-5})  # fmt: skip
        rows.append({"gpu": GPU, "op": "elementwise", "kernel": "norm", "model": "M", "tp": 2,
                     "m": m, "bytes": 4 * d * m, "seconds": 2e-6})  # fmt: skip
        rows.append({"gpu": GPU, "op": "attention_prefill", "dtype": "bf16", "batch": 1,
                     "length": m, "heads": heads, "kv_heads": kv, "head_dim": hd,
                     "seconds": 3e-5})  # fmt: skip
        for ctx in iterations.DECODE_CONTEXTS:
            rows.append({"gpu": GPU, "op": "attention_decode", "dtype": "bf16", "batch": m,
                         "length": ctx, "heads": heads, "kv_heads": kv, "head_dim": hd,
                         "seconds": 4e-5})  # fmt: skip
        for kernel, s in (("NCCL", 9e-6), ("custom", 6e-6)):
            rows.append({"gpu": GPU, "op": "allreduce", "kernel": kernel, "dtype": "bf16",
                         "gpus": 2, "bytes": m * d * 2, "seconds": s})  # fmt: skip
    return tables.from_rows(rows)


def test_iterations_compose_the_ops_of_a_layer():
    t = layer_tables()
    its = iterations.compose(t)
    kinds = sorted((it.kind, it.label) for it in its)
    assert len([k for k in kinds if k[0] == "prefill"]) == 2
    assert len([k for k in kinds if k[0] == "decode"]) == 2 * len(iterations.DECODE_CONTEXTS)
    pre = next(it for it in its if it.label == "prefill 64 tokens")
    measured = sum(t["seconds"][list(alts)].min() for alts in pre.ops)
    # 2 GEMMs + a norm + prefill attention + 2 all-reduces by the faster kernel
    assert measured == pytest.approx(2e-5 + 2e-6 + 3e-5 + 2 * 6e-6)


def test_iteration_scores_sum_the_predictions():
    t = layer_tables()
    n = len(t)
    exact = validate.Predictions(
        t, {"m": t["seconds"] * 1.0, "off": t["seconds"] * 1.1}, np.full(n, ""), np.ones(n, bool)
    )
    scores = {s.method: s for s in iterations.score(exact, iterations.compose(t))}
    assert scores["m"].median == pytest.approx(0.0)
    assert scores["off"].median == pytest.approx(0.1)


def test_a_model_whose_heads_are_not_in_the_grid_forms_no_iteration():
    t = layer_tables()
    t.columns["heads"] = np.where(np.isnan(t["heads"]), np.nan, 12.0)
    assert iterations.compose(t) == []


def test_cli_validate_prints_whole_iterations(tmp_path, capsys):
    from tokensim.cli import main

    tables.write(layer_tables(), tmp_path / "layer.csv")
    assert main(["validate", str(tmp_path / "layer.csv"), "-q", "--no-cross"]) == 0
    out = capsys.readouterr().out
    assert "Whole iterations of one layer: 8" in out
    assert "| H100_SXM | M | prefill |" in out


def test_every_grid_row_is_predicted_held_out_even_at_large_ends():
    # message sizes up to 2^30 bytes: the ends must be matched exactly, not through text
    t = allreduce_rows("NCCL", ops.Params(1.0, 0.7, 3e-6))
    t.columns["bytes"] = t["bytes"] * 2**10 + 1  # 2^20 + 1 .. 2^38 + 1: no short decimal
    p = validate.predict(t, cross=False)
    assert not np.isnan(p.methods["calibrated"]).any()
    assert set(t["bytes"][~p.scored]) == {t["bytes"].min(), t["bytes"].max()}


def decode_rows(heads: int, kv_heads: int, truth: ops.Params) -> tables.Table:
    rows = [
        {"gpu": GPU, "op": "attention_decode", "dtype": "bf16", "batch": b, "length": n,
         "heads": heads, "kv_heads": kv_heads, "head_dim": 128, "seconds": 1.0}
        for b in (1, 4, 16, 64, 256) for n in (16, 256, 4096, 65536)
    ]  # fmt: skip
    t = tables.from_rows(rows)
    t.columns["seconds"] = ops.predict(t, "attention_decode", calibrate.peaks(GPU), truth)
    return t


def test_decode_that_does_not_split_the_context_is_bound_by_one_sequence():
    """A kernel reading one sequence's context per KV head in one thread block takes as
    long for one sequence as for several, until the blocks fill the GPU."""
    slow = ops.Params(1.0, 0.6, 10e-6, 4.0, unit=0.02)
    t = decode_rows(4, 4, slow)
    at = {(b, n): s for b, n, s in zip(t["batch"], t["length"], t["seconds"], strict=True)}
    assert at[4, 65536] == pytest.approx(at[1, 65536], rel=0.03)
    assert at[256, 65536] > 10 * at[4, 65536]  # 1024 blocks: bandwidth-bound again
    plain = decode_rows(4, 4, ops.Params(1.0, 0.6, 10e-6, 4.0))["seconds"]
    assert (plain <= t["seconds"] * 1.0001).all()
    fit = calibrate.fit_op(t, "attention_decode", calibrate.peaks(GPU), corrections=False)
    assert fit.params.unit == pytest.approx(0.02, rel=0.05)
    np.testing.assert_allclose(fit.predict(t, "attention_decode", calibrate.peaks(GPU)),
                               t["seconds"], rtol=0.02)  # fmt: skip


def test_decode_fits_one_head_per_kv_head_apart_from_groups():
    mha = decode_rows(8, 8, ops.Params(1.0, 0.6, 10e-6, 4.0, unit=0.02))
    gqa = decode_rows(8, 2, ops.Params(1.0, 0.8, 5e-6, 4.0))
    cal = calibrate.calibrate(tables.concat([mha, gqa]), corrections=False)
    assert sorted(cal.fits[GPU]) == ["attention_decode:gqa", "attention_decode:mha"]
    predictor = backend.CalibrationPredictor(cal)
    for truth in (mha, gqa):
        got = predictor(GPU, "attention_decode", "", truth)
        np.testing.assert_allclose(got, truth["seconds"], rtol=0.03)


def calibrated_cost(tmp_path, cal: calibrate.Calibration):
    """The cost model of llama2_7b on one H100 priced by ``cal`` (32 heads, 32 KV heads)."""
    from conftest import compile_text

    from tokensim.perf import for_pool

    cal.write(tmp_path / "c.json")
    spec = compile_text(
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 1 } }\n"
        f'deployment {{ pool p {{ model llama2_7b; cost calibrated "{tmp_path / "c.json"}" }} }}\n'
        "workload { arrivals poisson 1/s; lengths fixed 64 -> 8; requests 1 }\n"
    )
    pool = spec.deployment.pools[0]
    return pool, for_pool(pool, None)


def test_the_simulator_prices_decode_as_the_calibration_does_at_every_batch(tmp_path):
    from tokensim.perf import Batch

    truth = ops.Params(1.0, 0.6, 10e-6, 4.0, unit=0.005)  # one sequence's context bounds
    cal = calibrate.calibrate(decode_rows(32, 32, truth), corrections=False)
    pool, cost = calibrated_cost(tmp_path, cal)
    for b in (1, 3, 16, 200):
        for n in (512, 2048, 4096):
            q = decode_rows(32, 32, truth)
            q = q.where((q["batch"] == 1) & (q["length"] == 16))
            q.columns["batch"][:], q.columns["length"][:] = b, n
            want = ops.predict(q, "attention_decode", calibrate.peaks(GPU), truth)[0]
            got = cost.breakdown(Batch(decode_seqs=b, decode_context=b * n))["attention_decode"]
            # on the batch sizes the lines pass through, the calibration's time; between
            # them, interpolated in log batch
            rel = 0.03 if b in (1, 16) else 0.1
            assert got / pool.model.layers == pytest.approx(want, rel=rel), (b, n)


def test_ops_a_calibration_lacks_pay_the_roofline_kernel_time(tmp_path):
    from tokensim.perf import Batch, CostModel

    cal = calibrate.calibrate(decode_rows(32, 32, ops.Params(1.0, 0.6, 10e-6)), False)
    pool, cost = calibrated_cost(tmp_path, cal)  # no elementwise fits: the roofline's
    roof = CostModel(pool)
    one = cost.breakdown(Batch(decode_seqs=1))["norms"]
    assert one >= 6 * roof.kernel_s * pool.model.layers  # 6 kernels a layer, each launched
    assert one == pytest.approx(roof.breakdown(Batch(decode_seqs=1))["norms"], rel=0.05)


def test_a_decode_grouping_the_calibration_lacks_takes_the_other_one(capsys):
    gqa = decode_rows(8, 2, ops.Params(1.0, 0.8, 5e-6, 4.0))
    cal = calibrate.calibrate(gqa, corrections=False)
    mha = decode_rows(8, 8, ops.Params(1.0, 0.8, 5e-6, 4.0))
    got = backend.CalibrationPredictor(cal)(GPU, "attention_decode", "", mha)
    np.testing.assert_allclose(got, mha["seconds"], rtol=0.03)  # the same truth, other heads
    assert "no attention_decode:mha fit in the calibration; attention_decode:gqa used" in (
        capsys.readouterr().err
    )
