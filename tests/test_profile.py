"""tokensim profile: model shapes, the paged decode math, a tiny CPU profile, the CLI's errors."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import pytest
from conftest import ROOT

from tokensim.perf import profile as prof
from tokensim.perf import tables

NO_TORCH = "PyTorch is not installed (pip install 'tokensim[profile]'); measuring tests skipped"

TINY = prof.ModelShape("tiny", hidden=256, heads=4, kv_heads=2, head_dim=64, ffn=512)
TINY_GRID = prof.Grid(
    m=(1, 4, 512, 2048),
    prefill_batch=(1, 2),
    prefill_length=(16, 64),
    decode_batch=(1, 3),
    decode_length=(40, 128),
    warmup=1,
    repeats=3,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tokensim")
    prof.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["profile", *argv])


# ---------------------------------------------------------------- without torch


def test_module_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import tokensim.perf.profile as p\n"
        "print(p.catalogue_model('llama2_7b').hidden)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4096"


def test_gemm_shapes_of_a_catalogue_model_sharded_two_ways():
    shape = prof.catalogue_model("llama3_1_8b")
    assert shape == prof.ModelShape("llama3_1_8b", 4096, 32, 8, 128, 14336, gated=True)
    assert shape.gemms(2) == [
        ("qkv_proj", (16 + 2 * 4) * 128, 4096),
        ("o_proj", 4096, 16 * 128),
        ("up_proj", 2 * 7168, 4096),
        ("down_proj", 4096, 7168),
    ]
    plain = prof.catalogue_model("opt_13b")
    assert not plain.gated and plain.gemms(1)[2] == ("up_proj", 20480, 5120)


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    shape = prof.catalogue_model("llama3_1_70b")  # 64 heads, 8 KV heads
    assert shape.heads_per_gpu(16) == (4, 1)
    assert shape.gemms(16)[0] == ("qkv_proj", (4 + 2) * 128, 8192)


def test_a_tp_that_does_not_divide_the_heads_is_an_error():
    with pytest.raises(prof.ProfileError, match="40 heads, which 3 GPUs cannot share"):
        prof.catalogue_model("llama2_13b").check_tp(3)
    with pytest.raises(prof.ProfileError, match="at least 1"):
        TINY.check_tp(0)


def test_gpu_column_names_follow_the_catalogue():
    assert prof.gpu_catalogue_name("NVIDIA H100 80GB HBM3") == "H100_SXM"
    assert prof.gpu_catalogue_name("NVIDIA H200") == "H200"
    assert prof.gpu_catalogue_name("NVIDIA A100-SXM4-80GB") == "A100_80G"
    assert prof.gpu_catalogue_name("cpu") == "CPU"
    assert prof.gpu_catalogue_name("NVIDIA A100 80GB PCIe") == "A100_80GB_PCIE"


def test_the_grid_leaves_out_points_past_its_token_caps():
    grid = prof.Grid(prefill_batch=(1, 4), prefill_length=(8, 16), max_prefill_tokens=32)
    assert grid.prefill_points() == [(1, 8), (1, 16), (4, 8)]
    assert prof.GPU_GRID.allreduce_bytes[0] == 4096
    assert prof.GPU_GRID.allreduce_bytes[-1] == 256 * 2**20
    assert all(
        b * 4 == a
        for a, b in zip(
            prof.GPU_GRID.allreduce_bytes[1:], prof.GPU_GRID.allreduce_bytes, strict=False
        )
    )


def test_an_unknown_model_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert prof.run(parse("--model", "llama2_7", "-o", str(out))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model 'llama2_7'")
    assert "llama2_7b" in err and "Traceback" not in err
    assert not out.exists()


def test_without_torch_the_cli_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    out = tmp_path / "t.csv"
    assert prof.run(parse("--model", "llama2_7b", "-o", str(out))) == 2
    err = capsys.readouterr().err
    assert err == f"error: {prof.NEEDS_TORCH}\n"
    assert "pip install 'tokensim[profile]'" in err
    assert not out.exists()


def test_an_output_in_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert prof.run(parse("-o", str(tmp_path / "nope" / "t.csv"))) == 2
    assert "no such folder" in capsys.readouterr().err


def test_gpu_and_cpu_exclude_each_other_and_output_is_required(capsys):
    with pytest.raises(SystemExit):
        parse("--gpu", "--cpu", "-o", "t.csv")
    with pytest.raises(SystemExit):
        parse("--gpu")
    args = parse("-o", "t.csv")
    assert (args.model, args.tp, args.gpu, args.quick) == (prof.DEFAULT_MODEL, 1, False, False)
    assert args.func is prof.run


def test_a_failed_write_keeps_the_old_table_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    table = tables.from_rows(
        [{"gpu": "CPU", "op": "gemm", "m": 1, "n": 2, "k": 3, "seconds": 1e-3}]
    )
    out = tmp_path / "t.csv"
    tables.write_atomic(table, out)
    before = out.read_text()

    def broken(table, path):
        with open(path, "w") as f:
            f.write("gpu,op\nhalf a ta")
        raise KeyboardInterrupt

    monkeypatch.setattr(tables, "write", broken)
    with pytest.raises(KeyboardInterrupt):
        tables.write_atomic(table, out)
    assert out.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


# ---------------------------------------------------------------- with torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason=NO_TORCH)


@pytest.fixture(scope="module")
def tiny_table(torch, tmp_path_factory):
    """A tiny CPU profile, written and read back."""
    steps = []
    threads = torch.get_num_threads()
    table = prof.profile(
        TINY, 1, "cpu", grid=TINY_GRID, threads=1, progress=lambda d, t, what: steps.append((d, t))
    )
    assert steps[-1] == (len(steps), len(steps)) and len(steps) == len(table)
    assert torch.get_num_threads() == threads  # restored
    path = tmp_path_factory.mktemp("profile") / "cpu.csv"
    tables.write_atomic(table, path)
    return tables.read(path)


def test_a_tiny_cpu_profile_reads_back_with_every_op(tiny_table, torch):
    t = tiny_table
    assert t.values("op") == ["attention_decode", "attention_prefill", "elementwise", "gemm"]
    assert (t["seconds"] > 0).all()
    assert t.values("gpu") == ["CPU"] and t.values("dtype") == ["fp32"]
    gemm = t.select(op="gemm")
    assert gemm.values("kernel") == ["down_proj", "o_proj", "qkv_proj", "up_proj"]
    assert gemm.values("model") == ["tiny"] and set(gemm["tp"]) == {1}
    assert len(gemm) == 4 * len(TINY_GRID.m)
    up = gemm.select(kernel="up_proj")
    assert set(up["n"]) == {2 * 512} and set(up["k"]) == {256}
    decode = t.select(op="attention_decode")
    assert len(decode) == 4 and set(decode["heads"]) == {4} and set(decode["kv_heads"]) == {2}
    norm = t.select(op="elementwise")
    assert list(norm["bytes"]) == [2 * m * 256 * 4 for m in TINY_GRID.m]
    comments = "\n".join(t.comments)
    assert f"torch: {torch.__version__}" in comments
    assert "allreduce: skipped (measured on the CPU)" in comments
    assert "threads: 1" in t.comments and "clocks: n/a" in t.comments
    assert "grid gemm/elementwise m: 1,4,512,2048" in comments


def test_gemm_time_grows_with_m_at_the_large_end(tiny_table):
    gemm = tiny_table.select(op="gemm")
    for kernel in gemm.values("kernel"):
        rows = gemm.select(kernel=kernel)
        by_m = dict(zip(rows["m"], rows["seconds"], strict=True))
        # 4x the FLOPs: a CPU's time must grow, whatever the noise.
        assert by_m[2048] > by_m[512], (kernel, by_m)


def _reference_attention(torch, q, k, v, lengths):
    """Plain softmax attention, one sequence at a time, KV heads repeated for GQA."""
    group = q.shape[1] // k.shape[1]
    out = []
    for s, n in enumerate(lengths):
        ks = k[s, :, :n].repeat_interleave(group, 0)  # [heads, n, d]
        vs = v[s, :, :n].repeat_interleave(group, 0)
        scores = q[s] @ ks.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [heads, 1, n]
        out.append(torch.softmax(scores, -1) @ vs)
    return torch.stack(out)


@pytest.mark.parametrize("lengths", [[48, 48, 48], [5, 40, 33]])
def test_paged_decode_attention_equals_plain_attention_on_the_same_kv(torch, lengths):
    g = torch.Generator().manual_seed(1)
    batch, heads, kv_heads, d, block = 3, 6, 2, 8, 16
    blocks = 3  # 48 tokens per sequence at most
    k = torch.randn(batch, kv_heads, blocks * block, d, generator=g, dtype=torch.float64)
    v = torch.randn(batch, kv_heads, blocks * block, d, generator=g, dtype=torch.float64)
    q = torch.randn(batch, heads, 1, d, generator=g, dtype=torch.float64)
    # Scatter each sequence's tokens into shuffled blocks of a larger pool.
    pool_blocks = batch * blocks + 2
    table = torch.randperm(pool_blocks, generator=g)[: batch * blocks].view(batch, blocks)
    k_pool = torch.full((pool_blocks, block, kv_heads, d), float("nan"), dtype=torch.float64)
    v_pool = k_pool.clone()
    for s in range(batch):
        for j in range(blocks):
            tokens = slice(j * block, (j + 1) * block)
            k_pool[table[s, j]] = k[s, :, tokens].transpose(0, 1)
            v_pool[table[s, j]] = v[s, :, tokens].transpose(0, 1)
    length = lengths[0] if len(set(lengths)) == 1 else lengths
    got = prof.paged_decode_attention(q, k_pool, v_pool, table, length)
    want = _reference_attention(torch, q, k, v, lengths)
    assert got.shape == (batch, heads, 1, d)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_causal_attention_with_fewer_kv_heads_equals_plain_attention(torch):
    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 4, 10, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 2, 10, 8, generator=g, dtype=torch.float64)
    v = torch.randn(2, 2, 10, 8, generator=g, dtype=torch.float64)
    got = prof.sdpa(q, k, v, causal=True)
    ks, vs = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    scores = q @ ks.transpose(-1, -2) / math.sqrt(8)
    scores = scores.masked_fill(torch.ones(10, 10, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(got, torch.softmax(scores, -1) @ vs)


def test_the_cli_writes_a_table_from_a_cpu_run(torch, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prof, "catalogue_model", lambda name: TINY)
    monkeypatch.setattr(prof, "QUICK_GRID", TINY_GRID)
    out = tmp_path / "cpu.csv"
    assert (
        prof.run(
            parse(
                "--quick",
                "--repeats",
                "2",
                "--gpu-name",
                "MY_CPU",
                "--threads",
                "1",
                "-o",
                str(out),
            )
        )
        == 0
    )
    table = tables.read(out)
    assert table.values("gpu") == ["MY_CPU"]
    assert "repeats: 1 warm-up, then the median of 2" in table.comments
    assert [p.name for p in tmp_path.iterdir()] == ["cpu.csv"]
    assert f"wrote {out}" in capsys.readouterr().err


def test_an_interrupted_run_writes_nothing(torch, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prof, "profile", interrupted)
    out = tmp_path / "t.csv"
    assert prof.run(parse("-o", str(out))) == 130
    assert "interrupted; nothing written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_gpu_without_cuda_is_a_usage_error(torch, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert prof.run(parse("--gpu", "-o", str(tmp_path / "t.csv"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --gpu: PyTorch") and "sees no CUDA device" in err
