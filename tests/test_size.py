"""`tokensim size`: the layouts it writes, the walks that find each layout's fewest GPUs,
and the command as a user runs it."""

from __future__ import annotations

import csv

import pytest
from conftest import tokensim_cli as tokensim

from tokensim.explore import search as s
from tokensim.explore import size as z

QUESTION = z.Question(
    model="llama3_1_8b", gpu="H100_SXM", rate=5.0, slo="ttft p90 < 1 s; tpot p90 < 50 ms"
)


def spec_of(text: str):
    from tokensim.lang.check import check
    from tokensim.lang.parse import parse
    from tokensim.lang.source import SourceMap

    sources = SourceMap()
    return check(parse(text, "<size>", sources), sources)


def test_a_colocated_layout_is_a_spec_with_its_instances_and_degree():
    spec = spec_of(z.spec_text(QUESTION, z.Layout(2), 3))
    (pool,) = spec.deployment.pools
    assert (len(pool.instances), pool.tp) == (3, 2)
    assert len(spec.cluster.nodes) == 1 and spec.cluster.nodes[0].link.name == "NVLINK4"
    assert spec.workload.requests == 300  # 60 s of arrivals at 5/s
    assert [t.metric for t in spec.slo.targets] == ["ttft", "tpot"]


def test_a_split_layout_spans_nodes_over_the_network():
    q = z.Question(**{**QUESTION.__dict__, "gpus_per_node": 4})
    spec = spec_of(z.spec_text(q, z.Layout(2, 4), 2, 2))  # 12 GPUs: three nodes of four
    prefill, decode = spec.deployment.pools
    assert (prefill.role, len(prefill.instances), prefill.tp) == ("prefill", 2, 2)
    assert (decode.role, len(decode.instances), decode.tp) == ("decode", 2, 4)
    assert len(spec.cluster.nodes) == 3 and spec.cluster.networks


def test_layouts_keep_to_the_node_and_the_gpu_limit():
    q = z.Question(**{**QUESTION.__dict__, "max_gpus": 4, "gpus_per_node": 2})
    got = z.layouts(q)
    assert [x.tp for x in got if not x.disaggregated] == [1, 2]
    assert {(x.tp, x.decode_tp) for x in got if x.disaggregated} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    q = z.Question(**{**q.__dict__, "disaggregated": False})
    assert all(not x.disaggregated for x in z.layouts(q))


def test_a_moe_model_is_also_sized_with_expert_parallelism_across_nodes():
    q = z.Question(**{**QUESTION.__dict__, "model": "deepseek_v3", "experts": 256})
    q = z.Question(**{**q.__dict__, "max_gpus": 32, "disaggregated": False})
    got = [x for x in z.layouts(q) if x.ep]
    assert [x.tp for x in got] == [8, 16, 32]  # across nodes of eight
    spec = spec_of(z.spec_text(q, got[1], 1))
    (pool,) = spec.deployment.pools
    assert (pool.tp, pool.dp, pool.ep.size, len(spec.cluster.nodes)) == (1, 16, 16, 2)
    assert got[1].label(1) == "1 x ep16"
    assert not any(x.ep for x in z.layouts(QUESTION))  # a dense model: none


def test_the_command_finds_the_model_experts(tmp_path):
    from tokensim.explore.size_cmd import _experts

    assert (_experts("qwen3_30b_a3b"), _experts("llama3_1_8b"), _experts("mine")) == (128, 1, 1)


def trial(passed: bool, failing=(), busy=None, rejected=0) -> s.Trial:
    """A trial whose one run misses the targets ``failing`` (metric names)."""
    targets = [
        {"metric": name, "stat": "p90", "op": "<", "limit_s": 1.0, "value_s": 2.0, "met": False}
        for name in failing
    ]
    pools = {role: {"busy_fraction": b} for role, b in (busy or {}).items()}
    metrics = {"requests": {"rejected": rejected}, "slo": {"targets": targets}, "pools": pools}
    return s.Trial(1.0, [metrics], passed)


def drive(walk, passes) -> list[tuple[int, int]]:
    """Every count ``walk`` tries, told whether it passes by ``passes(n, m)`` (which returns
    the failing metrics, empty when it passes)."""
    tried = []
    counts = next(walk)
    while True:
        tried.append(counts)
        failing = passes(*counts)
        try:
            counts = walk.send(trial(not failing, failing))
        except StopIteration:
            return tried


@pytest.mark.parametrize("need", [1, 2, 3, 5, 7, 8])
def test_the_colocated_walk_ends_on_the_fewest_instances_that_pass(need):
    tried = drive(z.colocated_walk(8), lambda n, m: () if n >= need else ("ttft",))
    passing = [n for n, _ in tried if n >= need]
    assert min(passing) == need
    assert need - 1 < 1 or need - 1 in [n for n, _ in tried]  # one fewer was seen to fail
    assert len(tried) <= 7


def test_the_colocated_walk_stops_at_its_cap():
    tried = drive(z.colocated_walk(6), lambda n, m: ("ttft",))
    assert tried == [(1, 0), (2, 0), (4, 0), (6, 0)]


def test_the_split_walk_grows_the_side_whose_targets_fail_then_trims_each():
    layout = z.Layout(1, 1)

    def passes(n, m):
        return (("ttft",) if n < 3 else ()) + (("tpot",) if m < 2 else ())

    tried = drive(z.disaggregated_walk(layout, 16), passes)
    assert tried[:3] == [(1, 1), (2, 2), (4, 2)]  # both fail, then prefill only
    found = [c for c in tried if not passes(*c)]
    assert min(found, key=lambda c: layout.gpus(*c)) == (3, 2)


def test_a_busy_pool_is_grown_beside_the_target_that_failed():
    got = z.sides(trial(False, ("ttft",), busy={"decode": 0.97}))
    assert got == (True, True)
    assert z.sides(trial(False, ("tpot",))) == (False, True)
    assert z.sides(trial(False, ("e2e",))) == (True, True)
    assert z.sides(trial(False, (), rejected=3)) == (True, True)


def test_the_split_walk_gives_up_when_no_side_can_grow():
    tried = drive(z.disaggregated_walk(z.Layout(8, 8), 16), lambda n, m: ("ttft",))
    assert tried == [(1, 1)]


def test_rates_are_read_with_their_unit():
    assert z.parse_rate("20/s") == 20 and z.parse_rate("20") == 20
    assert z.parse_rate("120/min") == 2
    for bad in ("fast", "-1/s", "0", "3/d"):
        with pytest.raises(z.SizeError):
            z.parse_rate(bad)


SMALL = [
    "size",
    "--model",
    "llama3_2_1b",
    "--gpu",
    "H100_SXM",
    "--rate",
    "4/s",
    "--duration",
    "25",
    "--seeds",
    "1",
    "--max-gpus",
    "2",
    "-j",
    "1",
]


def test_size_answers_with_the_fewest_gpus_and_writes_a_spec_that_runs(tmp_path):
    out = tmp_path / "out"
    slo = ["--slo", "ttft p90 < 1 s; tpot p90 < 100 ms"]
    r = tokensim(*SMALL, *slo, "--no-report", "--no-cache", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "Fewest GPUs for llama3_2_1b on H100_SXM at 4 requests/s: 1 (1 x tp1)" in r.stdout
    rows = list(csv.DictReader(open(out / "search.csv", newline="")))
    assert rows[0]["config"] == "1 x tp1" and rows[0]["passes"] == "1"
    assert len(rows) == len(z.layouts(z.Question(**{**QUESTION.__dict__, "max_gpus": 2})))
    best = out / "best.tsim"
    assert "instances 1; tp 1" in best.read_text()
    r = tokensim(
        *[a if a != "llama3_2_1b" else "meta-llama/Llama-3.2-1B-Instruct" for a in SMALL],
        *slo,
        "--no-report",
        "-o",
        out,
        "--cache",
        tmp_path / "c",
    )
    assert r.returncode == 0 and "is `llama3_2_1b` of std/models" in r.stderr, r.stderr
    r = tokensim("check", best)
    assert r.returncode == 0, r.stderr


def test_size_says_so_when_no_layout_meets_the_slo(tmp_path):
    r = tokensim(*SMALL, "--slo", "ttft p90 < 1 ms", "--no-report", "--no-cache", "-o", tmp_path)
    assert r.returncode == 1
    assert "No layout of at most 2 H100_SXM meets the SLO" in r.stdout
    assert "fails: ttft p90 is" in r.stdout
    assert not (tmp_path / "best.tsim").exists()
    # every layout, in order of degree: colocated first, then prefill/decode pairs
    listed = r.stdout.split("every layout by degree")[1].splitlines()[1:]
    names = [line.split(":")[0].strip() for line in listed if line.startswith("    ")]
    assert names == [
        "colocated tp1",
        "colocated tp2",
        "prefill tp1 / decode tp1",
    ], r.stdout


def test_a_misnamed_model_is_one_located_error(tmp_path):
    args = [a if a != "llama3_2_1b" else "llama3_2_1bb" for a in SMALL]
    r = tokensim(*args, "--slo", "ttft p90 < 1 s", "-o", tmp_path)
    assert r.returncode == 1
    assert r.stderr.count("error:") == 1 and "llama3_2_1bb" in r.stderr
    assert "llama3_2_1b`" in r.stderr  # the suggestion
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--isl", "100"], "--isl and --osl go together"),
        (["--isl", "100", "--osl", "10", "--lengths", "chat"], "give one of"),
        (["--max-gpus", "0"], "--max-gpus takes a number"),
        (["--trace", "no-such.csv"], "no such trace file"),
    ],
)
def test_a_question_that_cannot_be_asked_is_a_usage_error(tmp_path, extra, says):
    r = tokensim(*SMALL, "--slo", "ttft p90 < 1 s", *extra, "-o", tmp_path)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_size_replays_a_trace_at_its_own_times(tmp_path):
    """No --rate: the trace's own arrival times (the bar and the answer say so)."""
    trace = tmp_path / "t.csv"
    rows = [f"{0.25 * i:.2f},{200 + 7 * i},{20 + i % 5}" for i in range(40)]
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + "\n".join(rows) + "\n")
    args = [a for a in SMALL if a not in ("--rate", "4/s", "--duration", "25")]
    r = tokensim(
        *args, "--trace", trace, "--slo", "ttft p90 < 1 s", "--no-cache", "-o", tmp_path / "o"
    )
    assert r.returncode == 0, r.stderr
    assert "Fewest GPUs" in r.stdout and "1 x tp1" in r.stdout


def test_layouts_that_do_not_deploy_for_one_reason_share_a_line(tmp_path):
    """70B in bf16 fits no single H100: the layouts with a tp 1 pool are one line."""
    args = ["size", "--model", "llama3_1_70b", "--gpu", "H100_SXM", "--rate", "1/s"]
    args += ["--duration", "10", "--seeds", "1", "--max-gpus", "2", "-j", "1"]
    r = tokensim(*args, "--slo", "ttft p90 < 5 s", "--no-cache", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    tail = r.stdout.split("do not deploy:")[1].strip().splitlines()
    assert tail[0].startswith("colocated tp1, prefill tp1 / decode tp1: `llama3_1_70b` in bf16")
    assert "colocated tp2:  2 GPUs (1 x tp2), meets the SLO" in r.stdout
