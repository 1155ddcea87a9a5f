"""DataFrames for notebooks: Run.to_pandas(), tokensim.sweep() and tokensim.search()."""

from __future__ import annotations

import csv
import sys

import pytest

import tokensim

pd = pytest.importorskip("pandas", reason="pandas is in the test extras")

SPEC = """
import "std/hardware"
import "std/models"
cluster { node n0 { gpus H100_SXM x 2; link NVLINK4 } }
deployment { pool p { model llama3_1_8b; instances 1 } }
workload { arrivals poisson 4/s; lengths chat; requests 60; seed 2 }
slo { ttft p90 < 2 s; tpot p90 < 100 ms }
"""
SWEEP = SPEC + "sweep { deployment.p.instances in 1, 2 }\n"


def test_a_run_as_dataframes_has_the_columns_and_rows_of_its_files(tmp_path):
    run = tokensim.run(SPEC)
    frames = run.to_pandas()
    run.write(tmp_path, page=False)
    with open(tmp_path / "requests.csv", newline="") as f:
        header = next(csv.reader(f))
    assert list(frames.requests.columns) == header
    assert len(frames.requests) == run.metrics["requests"]["total"] == 60
    assert frames.requests["ttft_s"].max() == pytest.approx(float(run.requests["ttft_s"].max()))
    assert {"instance", "start_s", "end_s"} <= set(frames.iterations.columns)
    assert len(frames.timeseries) > 0 and frames.metrics is run.metrics


def test_sweep_gives_a_row_per_point(tmp_path):
    points = tokensim.sweep(SWEEP, jobs=1)
    assert list(points["deployment.p.instances"]) == [1, 2]
    assert points["ttft_p90_s"].iloc[1] <= points["ttft_p90_s"].iloc[0]
    assert {"point", "error"} <= set(points.columns)


def test_search_gives_every_configuration_and_the_answer():
    table, answer = tokensim.search(SWEEP, goal="min-gpus", seeds=1, jobs=1)
    assert len(table) == 2 and {"config", "passes", "gpus"} <= set(table.columns)
    assert answer.startswith("Fewest GPUs that meet the SLO")
    with pytest.raises(ValueError, match="goal is"):
        tokensim.search(SWEEP, goal="fastest")


def test_run_says_it_ignores_a_sweep():
    with pytest.warns(UserWarning, match="ignores its sweep"):
        tokensim.run(SWEEP)


def test_without_pandas_the_error_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        tokensim.run(SPEC).to_pandas()
