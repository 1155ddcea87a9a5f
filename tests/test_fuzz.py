"""A fixed-seed sample of bench/fuzz.py: mutated specs and traces through the CLI give a
result or a located error, never a traceback, a hang or a folder that looks complete
after a failure. ``python3 bench/fuzz.py`` runs thousands."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import fuzz  # noqa: E402


def test_fuzzed_specs_and_traces_fail_cleanly(tmp_path):
    outcomes = [
        fuzz.attempt(case, tmp_path / case.name, timeout=60)
        for case in fuzz.cases(specs=160, traces=40, seed=2024)
    ]
    bad = [f"{o.kind} {o.case.name} ({o.case.mutation}): {o.detail}" for o in outcomes
           if o.kind in fuzz.FAILURES]  # fmt: skip
    assert not bad, "\n".join(bad)
    kinds = Counter(o.kind for o in outcomes)
    assert kinds["ok"] >= 10 and kinds["rejected"] >= 50  # the sample reaches both


@pytest.mark.parametrize("seed", [1, 2])
def test_the_mutants_are_the_same_for_a_seed(seed):
    a = fuzz.cases(specs=30, traces=10, seed=seed)
    b = fuzz.cases(specs=30, traces=10, seed=seed)
    assert [(c.name, c.mutation, c.spec, c.files, c.sets) for c in a] == [
        (c.name, c.mutation, c.spec, c.files, c.sets) for c in b
    ]


def test_the_classifier_sees_each_failure(tmp_path, monkeypatch):
    """The fuzzer must be able to fail: a traceback, an unlocated error and a hang are
    each reported as such."""
    case = fuzz.Case("c", "none", 'name "x"\n')
    import tokensim.cli

    def boom(args):
        raise ZeroDivisionError("inside")

    monkeypatch.setattr(tokensim.cli, "main", boom)
    assert fuzz.attempt(case, tmp_path / "a").kind == "traceback"

    def unlocated(args):
        print("error: something went wrong", file=sys.stderr)
        return 1

    monkeypatch.setattr(tokensim.cli, "main", unlocated)
    assert fuzz.attempt(case, tmp_path / "b").kind == "unlocated"

    def forever(args):
        while True:
            pass

    monkeypatch.setattr(tokensim.cli, "main", forever)
    assert fuzz.attempt(case, tmp_path / "c", timeout=0.2).kind == "hang"
