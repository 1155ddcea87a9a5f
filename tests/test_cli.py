"""The command line as a user runs it: exit codes, stdout/stderr, no tracebacks."""

import io
import json
import shutil
import subprocess

import pytest
from conftest import ROOT, SPECS
from conftest import tokensim_cli as run

from tokensim import __version__
from tokensim.cli import main

DIAG = ROOT / "tests" / "diagnostics"


def test_check_all_shipped_specs_exits_zero():
    result = run("check", *SPECS)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("ok: ") == len(SPECS)


def test_check_reports_errors_and_exits_one():
    result = run("check", DIAG / "three_mistakes.tsim")
    assert result.returncode == 1
    assert result.stderr.count("error: ") == 3
    assert "Traceback" not in result.stderr


def test_check_keeps_going_over_several_files():
    result = run("check", DIAG / "unknown_model.tsim", SPECS[0])
    assert result.returncode == 1
    assert "unknown model" in result.stderr and "ok: " in result.stderr


@pytest.mark.parametrize(
    "stage, marker", [("ast", "Module("), ("ir", "Spec("), ("graph", "topology:")]
)
def test_dump_each_stage(stage, marker):
    result = run("check", "--dump", stage, ROOT / "specs" / "disaggregated.tsim")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(marker)
    assert (
        result.stdout == run("check", "--dump", stage, ROOT / "specs" / "disaggregated.tsim").stdout
    )


def test_graph_shows_transfer_path_and_bottleneck():
    result = run("graph", ROOT / "specs" / "disaggregated.tsim")
    assert result.returncode == 0, result.stderr
    assert "transfers (KV path per tp rank):" in result.stdout
    assert "prefill[0] -> decode[0]: bottleneck" in result.stdout
    assert "net0:IB_400G" in result.stdout


@pytest.mark.parametrize("fmt, start", [("dot", "digraph"), ("json", "{")])
def test_graph_formats(fmt, start, tmp_path):
    out = tmp_path / f"g.{fmt}"
    result = run("graph", ROOT / "specs" / "disaggregated.tsim", "--format", fmt, "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith(start)


def test_dot_output_is_valid_graphviz_when_dot_is_installed(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("graphviz `dot` is not installed")
    out = tmp_path / "g.dot"
    run("graph", ROOT / "specs" / "disaggregated.tsim", "--format", "dot", "-o", out)
    result = subprocess.run(["dot", "-Tsvg", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "missing.tsim"], "error: no such file: missing.tsim"),
        (["check", "specs"], "is a folder"),
        (["graph", "x.tsim", "--format", "png"], "invalid choice"),
    ],
)
def test_usage_errors_exit_two(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_binary_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.tsim"
    bad.write_bytes(b"\xff\xfe\x00")
    result = run("check", bad)
    assert result.returncode == 2 and "not UTF-8" in result.stderr


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tokensim {__version__}"
    result = run("--help")
    assert result.returncode == 0
    for word in ("check", "graph", "specs/"):
        assert word in result.stdout


def test_no_command_prints_help_and_exits_two():
    result = run()
    assert result.returncode == 2 and "usage:" in result.stdout


def test_check_continues_past_an_unreadable_file():
    result = run("check", SPECS[0], "missing.tsim", SPECS[1])
    assert result.returncode == 2
    assert result.stderr.count("ok: ") == 2 and "no such file: missing.tsim" in result.stderr


def one_h100(tmp_path, rest: str):
    """A spec file: Llama-3.1-8B on one H100, then ``rest`` (workload, slo)."""
    spec = tmp_path / "spec.tsim"
    spec.write_text(
        'import "std/hardware"\nimport "std/models"\n'
        "cluster { node n0 { gpus H100_SXM x 1 } }\n"
        "deployment { pool serve { model llama3_1_8b } }\n" + rest,
        "utf-8",
    )
    return spec


def test_a_trace_only_workload_runs_and_says_how_many_requests_it_served(tmp_path, capsys):
    # a workload of nothing but a trace (as docs/workloads.md shows it) crashed after
    # simulating; with `requests` beyond the trace's length the header claimed that many
    (tmp_path / "t.csv").write_text(
        "arrival_s,prompt_tokens,output_tokens\n0.0,200,20\n0.5,300,10\n1.0,100,5\n", "utf-8"
    )
    for workload, report in (
        ('trace "t.csv"', []),
        ('trace "t.csv"; requests 100000', ["--no-report"]),
    ):
        spec = one_h100(tmp_path, f"workload {{ {workload} }}\n")
        out = tmp_path / "out"
        assert main(["run", str(spec), "-q", "-o", str(out), *report]) == 0
        run_json = json.loads((out / "run.json").read_text("utf-8"))
        assert run_json["workload"] == "3 requests from the trace t.csv"


def test_a_run_that_rejects_every_request_still_draws_its_report(tmp_path, capsys):
    # on a GPU with a price, the cost card formatted the cost of nothing served: a crash
    spec = one_h100(
        tmp_path, "workload { arrivals poisson 1/s; lengths fixed 200000 -> 10; requests 5 }\n"
    )
    out = tmp_path / "out"
    # nothing served: the run failed, and says why; its results are still written
    assert main(["run", str(spec), "-q", "-o", str(out)]) == 1
    assert "error: every request (5) was rejected: prompt + output" in capsys.readouterr().err
    page = (out / "report.html").read_text("utf-8")
    assert "Cost per 1M output tokens" in page and "/h · – per 1M tokens with prompts" in page
    assert json.loads((out / "metrics.json").read_text("utf-8"))["requests"]["rejected"] == 5


def test_the_report_shows_rejections_apart_from_preemptions(tmp_path):
    spec = one_h100(
        tmp_path,
        "workload { arrivals poisson 2/s; lengths uniform 100..200000 -> 10..20; requests 40 }\n"
        "slo { ttft p90 < 5 s }\n",
    )
    out = tmp_path / "out"
    assert main(["run", str(spec), "-q", "-o", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text("utf-8"))
    rejected, served = m["requests"]["rejected"], m["requests"]["completed"]
    assert rejected > 4 and m["slo"]["targets"][0]["value_s"] is None
    page = (out / "report.html").read_text("utf-8")
    assert f"of the {served} served" in page and "could never run" in page
    assert "∞" in page  # the p90 reaches the rejected requests
    assert "requests preempted · " not in page  # rejections are not preemptions


def test_check_and_graph_take_set_values():
    spec, h200 = "specs/single_gpu_8b.tsim", "cluster.n0.gpus=H200"
    r = run("check", spec, "--set", h200, "--dump", "ir")
    assert r.returncode == 0 and "name='H200'" in r.stdout, r.stderr
    r = run("graph", spec, "--set", h200)
    assert r.returncode == 0 and "1 x H200" in r.stdout, r.stderr


@pytest.mark.parametrize(
    "path, near",
    [
        ("workload.rate", "`workload.arrivals.rate`"),
        ("deployment.tp", "`deployment.serve.tp`"),
        ("cluster.gpus", "`cluster.n0.gpus`"),
        ("workload.arrivals.rat", "`workload.arrivals.rate`"),
    ],
)
def test_a_bad_set_path_names_the_paths_near_it(path, near):
    r = run("check", "specs/single_gpu_8b.tsim", "--set", f"{path}=2")
    assert r.returncode == 1 and f"help: this spec can set {near}" in r.stderr, r.stderr


def test_a_sweep_prints_its_points_in_the_terminal(tmp_path):
    spec = tmp_path / "s.tsim"
    text = (ROOT / "specs" / "single_gpu_8b.tsim").read_text()
    spec.write_text(text + "\nsweep { workload.requests in 40, 80 }\n")
    r = run("run", spec, "-o", tmp_path / "out", "--no-report")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "workload.requests" in line)
    assert "TTFT p90" in lines[head] and "SLO" in lines[head]
    assert [line.split()[0] for line in lines[head + 1 : head + 3]] == ["40", "80"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_style_with_the_time_left():
    """A run's bar is tqdm's, as a sweep's and a search's are: the requests done, the time
    left, and how far the simulation is; none when the output is not a terminal."""
    from tokensim.cli import _progress

    assert _progress(io.StringIO()) is None
    screen = _Terminal()
    show = _progress(screen, every_s=0)
    show(100, 400, 12.5)
    show(300, 400, 30.0)
    show.close()  # the line is cleared
    bars = [f for f in screen.getvalue().split("\r") if "requests:" in f]
    assert any("300/400" in b and "simulated 30.0 s" in b and "<" in b for b in bars), bars
