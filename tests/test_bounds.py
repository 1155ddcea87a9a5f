"""Inputs that once crashed or misled (issue 16): each gets a located error and a non-zero
exit, never a traceback, and a failed run leaves no folder that reads as its result."""

from __future__ import annotations

import json

import pytest

from tokensim.cli import main
from tokensim.lang import limits

BASE = """import "std/hardware"
import "std/models"
cluster { node n0 { gpus H100_SXM x 2; link NVLINK4 } }
deployment { pool p { model llama3_1_8b } }
workload { arrivals poisson 2/s; lengths fixed 100 -> 10; requests 20 }
"""


def _spec(tmp_path, text: str, name: str = "s.tsim"):
    path = tmp_path / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return path


def _cli(capsys, *args) -> tuple[int, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _workload(body: str) -> str:
    return BASE.replace(
        "workload { arrivals poisson 2/s; lengths fixed 100 -> 10; requests 20 }",
        f"workload {{ {body} }}",
    )


@pytest.mark.parametrize(
    "text, says, where",
    [
        (_workload("arrivals poisson 2/s; lengths fixed 100 -> 10; requests 1e12"),
         f"at most {limits.REQUESTS:,}", ":5:"),
        (_workload("arrivals poisson 2/s; lengths fixed 1e30 -> 1; requests 5"),
         f"at most {limits.TOKENS:,}", ":5:"),
        (BASE.replace("x 2;", "x 4294967296;"), f"at most {limits.GPUS_PER_NODE:,}", ":3:"),
        (BASE.replace("link NVLINK4", "link NVLINK4; nics 1e308"), "nics", ":3:"),
        (BASE.replace("model llama3_1_8b }", "model llama3_1_8b; tp 4096 }"), "at most 1,024",
         ":4:"),
        (_workload("arrivals poisson 2/s; lengths fixed 10 -> 1; requests 5; seed 1e19"),
         "seed", ":5:"),
        ('import ""\n' + BASE, "this one is empty", ":1:"),
        ('import "' + "a" * 300 + '"\n' + BASE, "at most 200 characters", ":1:"),
        (BASE.replace("pool p {", "pool " + "p" * 300 + " {"), "a name of 300 characters", ":4:"),
        (BASE.replace("pool p { model llama3_1_8b }",
                      "pool p { model llama3_1_8b; instances 2 }\nroute p by min("
                      + " + ".join(["queued"] * 500) + ")"), "nested more than 100 deep", ":5:"),
        (BASE.replace("pool p { model llama3_1_8b }",
                      "pool p { model llama3_1_8b; instances 2 }\nroute p by min("
                      + "abs(" * 400 + "queued" + ")" * 400 + ")"), "nested more than", ":5:"),
        ('import "std/hardware"\n' + "cluster { " * 400 + "}" * 400 + "\n", "nested more than",
         ":2:"),
    ],
)  # fmt: skip
def test_beyond_the_limits_is_a_located_error(tmp_path, capsys, text, says, where):
    spec = _spec(tmp_path, text)
    code, err = _cli(capsys, "check", spec)
    assert code == 1 and says in err and f"s.tsim{where}" in err, err


def test_limits_are_in_the_reference():
    from tokensim.lang.reference import reference

    text = reference()
    assert "## Limits" in text
    for what, value, _ in limits.LIMITS:
        assert f"| {what} | {value:,} |" in text


def test_an_import_that_is_not_text_is_a_located_error(tmp_path, capsys):
    (tmp_path / "lib.tsim").write_bytes(b"\xff\xfe\x00 not text")
    code, err = _cli(capsys, "check", _spec(tmp_path, 'import "lib"\n' + BASE))
    assert code == 1 and "`lib` is not UTF-8 text" in err and "s.tsim:1:" in err


@pytest.mark.parametrize(
    "trace, says",
    [
        ("arrival_s,prompt_tokens,output_tokens\n0,9223372036854775808,5\n", "at most 100,000,000"),
        ("arrival_s,prompt_tokens,output_tokens\n0,1e30,5\n", "at most 100,000,000"),
        ("arrival_s,prompt_tokens,output_tokens\n0," + "1" * 140_000 + ",5\n",
         "cannot be read as CSV"),
        ("arrival_s,prompt_tokens,output_tokens\n0,\"10,5\n", "expected 3 values"),
        ("arrival_s,prompt_tokens,output_tokens\n0,\"10,5\n1,10,5\n2,3,4\n",
         "trace line 2: a quote opened on this line is not closed on it"),
        ("arrival_s," + "[" * 140_000 + ",output_tokens\n0,10,5\n",
         "trace line 1: cannot tell the trace format"),
        ('{"arrival_s": 0, "prompt_tokens": 5, "output_tokens": 1}\n'
         '{"arrival_s": 1, "prompt_tokens": ' + "[" * 100_000 + "]" * 100_000
         + ', "output_tokens": 1}\n', "trace line 2: JSON nested too deeply"),
        ("arrival_s,prompt_tokens,output_tokens,prefix_hashes,prefix_block_tokens\n"
         "0,10,5,99999999999999999999,16\n", "an id in prefix_hashes"),
    ],
    ids=["2^63", "1e30", "long-field", "open-quote", "quote-joins-lines", "long-header",
         "deep-json", "id-beyond-64-bits"],
)  # fmt: skip
def test_a_bad_trace_is_a_located_error(tmp_path, capsys, trace, says):
    suffix = ".jsonl" if trace.startswith("{") else ".csv"
    (tmp_path / f"t{suffix}").write_text(trace)
    spec = _spec(tmp_path, _workload(f'arrivals poisson 2/s; trace "t{suffix}"; requests 2'))
    code, err = _cli(capsys, "run", spec, "-o", tmp_path / "out", "--no-report", "--quiet")
    assert code == 1 and says in err, err
    assert f"t{suffix}:" in err  # located in the trace file


@pytest.mark.parametrize("seed", ["-1", "1e3", str(2**64)])
def test_a_bad_seed_is_a_usage_error(tmp_path, capsys, seed):
    code, err = _cli(capsys, "run", _spec(tmp_path, BASE), "--seed", seed, "-o", tmp_path / "o")
    assert code == 2 and "--seed" in err


def test_graph_into_a_folder_is_an_error(tmp_path, capsys):
    code, err = _cli(capsys, "graph", _spec(tmp_path, BASE), "-o", tmp_path)
    assert code == 1 and f"cannot write {tmp_path}" in err


def test_a_failed_run_leaves_no_earlier_results(tmp_path, capsys):
    out = tmp_path / "out"
    good = _spec(tmp_path, BASE, "good.tsim")
    assert _cli(capsys, "run", good, "-o", out, "--quiet")[0] == 0
    assert (out / "metrics.json").is_file() and (out / "report.html").is_file()
    (out / "mine.txt").write_text("a user's file")
    bad = _spec(tmp_path, _workload("arrivals poisson 2/s; lengths fixed 1e30 -> 1; requests 5"))
    code, err = _cli(capsys, "run", bad, "-o", out, "--quiet")
    assert code == 1 and "removed an earlier run's results" in err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # only what a run writes goes


def test_an_interrupted_run_exits_130_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import tokensim.sim.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tokensim.sim.run, "simulate", interrupted)
    out = tmp_path / "out"
    code, err = _cli(capsys, "run", _spec(tmp_path, BASE), "-o", out)
    assert code == 130 and "interrupted" in err
    assert not out.exists() or not any(out.iterdir())


def test_a_write_that_fails_leaves_no_partial_files(tmp_path, monkeypatch):
    from tokensim.report import files

    calls = []
    real = type(tmp_path).write_text

    def full_disk(self, text, *args, **kwargs):
        calls.append(self.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "write_text", full_disk)
    with pytest.raises(OSError):
        files.publish(tmp_path, {"a.json": "1", "b.csv": "2", "c.csv": "3", "d.csv": "4"})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_no_room_for_the_kv_cache_is_an_error_of_check(tmp_path, capsys):
    """The checker sizes the cache as the run does (activations included): a pool that
    checks also runs."""
    text = BASE.replace("model llama3_1_8b }", "model llama3_1_8b; kv { gpu_util 0.201 } }")
    code, err = _cli(capsys, "check", _spec(tmp_path, text))
    assert code == 1 and "leaves no room for the KV cache" in err and "of activations" in err
    roomy = BASE.replace("model llama3_1_8b }", "model llama3_1_8b; kv { gpu_util 0.25 } }")
    spec = _spec(tmp_path, roomy, "roomy.tsim")
    assert _cli(capsys, "run", spec, "-o", tmp_path / "o", "--no-report", "--quiet")[0] == 0


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda m: [], "expected a JSON object, found a list"),
        (lambda m: {**m, "requests": None}, "`requests` is missing or null"),
        (lambda m: {**m, "requests": {**m["requests"], "total": "10"}}, "`requests.total`"),
        (lambda m: {**m, "ttft_s": [1, 2]}, "`ttft_s` is a list"),
    ],
)
def test_report_on_a_damaged_metrics_file_names_it(tmp_path, capsys, change, says):
    out = tmp_path / "out"
    assert _cli(capsys, "run", _spec(tmp_path, BASE), "-o", out, "--quiet", "--no-report")[0] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps(change(metrics)))
    code, err = _cli(capsys, "report", out)
    assert code == 2 and "metrics.json" in err and says in err, err


def test_a_sweep_over_strings_runs_each_value(tmp_path, capsys):
    """A swept string is given to its point as a string (it was rewritten `a string`)."""
    for name, prompt in (("a.csv", 10), ('b "quoted".csv', 20)):
        (tmp_path / name).write_text(f"arrival_s,prompt_tokens,output_tokens\n0,{prompt},5\n")
    text = _workload('arrivals poisson 2/s; trace "a.csv"; requests 1') + (
        'sweep { workload.trace in "a.csv", "b \\"quoted\\".csv" }\n'
    )
    out = tmp_path / "out"
    code, err = _cli(capsys, "run", _spec(tmp_path, text), "-o", out, "--no-report", "-q")
    assert code == 0, err
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and "quoted" in rows[2]
    prompts = sorted(
        (p / "requests.csv").read_text().splitlines()[1].split(",")[4]
        for p in out.iterdir()
        if p.is_dir()
    )
    assert prompts == ["10", "20"]


def test_a_run_killed_while_simulating_leaves_no_earlier_results(tmp_path, capsys, monkeypatch):
    """A kill cannot be caught: the earlier results go when the simulation starts."""
    import tokensim.sim.run

    out = tmp_path / "out"
    spec = _spec(tmp_path, BASE)
    assert _cli(capsys, "run", spec, "-o", out, "--quiet", "--no-report")[0] == 0
    seen = []

    def killed(*args, **kwargs):
        seen.append(sorted(p.name for p in out.iterdir()))
        raise SystemExit(137)  # what the folder holds when the process dies here

    monkeypatch.setattr(tokensim.sim.run, "simulate", killed)
    _cli(capsys, "run", spec, "-o", out, "--quiet")
    assert seen == [[]]
