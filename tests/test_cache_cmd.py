"""Keeping the cache small: `tokensim cache info|prune` and the cap after each run."""

from __future__ import annotations

import os

from conftest import ROOT
from conftest import tokensim_cli as tokensim

from tokensim.explore.cache import RESULT_FILES, Cache


def stored(cache: Cache, key: str, size: int, used: float) -> None:
    files = {name: "x" * size for name in RESULT_FILES}
    cache.put(key, files)
    entry = cache.folder / key[:2] / key
    os.utime(entry, (used, used))


def test_prune_removes_the_least_recently_used_first(tmp_path):
    cache = Cache(tmp_path)
    for k, used in enumerate((300.0, 100.0, 200.0)):
        stored(cache, f"{k:02d}" + "a" * 62, 1000, used)
    assert [e.used for e in cache.entries()] == [100.0, 200.0, 300.0]
    one = cache.entries()[0].bytes
    removed, freed = cache.prune(max_bytes=2 * one, now=400.0)
    assert (removed, freed) == (1, one)
    assert [e.used for e in cache.entries()] == [200.0, 300.0]
    assert cache.prune(older_than_s=150.0, now=400.0) == (1, one)  # unused 200 s
    assert [e.used for e in cache.entries()] == [300.0]


def test_a_hit_counts_as_a_use(tmp_path):
    cache = Cache(tmp_path)
    stored(cache, "01" + "a" * 62, 10, 100.0)
    stored(cache, "02" + "b" * 62, 10, 200.0)
    assert cache.get("01" + "a" * 62) is not None
    assert cache.entries()[-1].path.name == "01" + "a" * 62  # now the most recently used


def test_prune_without_a_limit_empties_the_cache(tmp_path):
    cache = Cache(tmp_path)
    stored(cache, "01" + "a" * 62, 10, 100.0)
    removed, freed = cache.prune()
    assert removed == 1 and freed > 10 * len(RESULT_FILES)  # the files and their checksums
    assert cache.entries() == []


def test_info_and_prune_from_the_command_line(tmp_path):
    cache = Cache(tmp_path)
    for k in range(3):
        stored(cache, f"{k:02d}" + "c" * 62, 1000, 100.0 + k)
    r = tokensim("cache", "info", "--cache", tmp_path)
    assert r.returncode == 0 and "entries: 3," in r.stdout, r.stderr
    r = tokensim("cache", "prune", "--cache", tmp_path)
    assert r.returncode == 2 and "needs --max-size, --older-than or --all" in r.stderr
    r = tokensim("cache", "prune", "--cache", tmp_path, "--max-size", "2 furlongs")
    assert r.returncode == 2 and "unknown unit `furlongs`" in r.stderr
    keep = int(2.5 * cache.entries()[0].bytes)  # room for two of the three
    r = tokensim("cache", "prune", "--cache", tmp_path, "--max-size", f"{keep} B")
    assert r.returncode == 0 and "removed 1 entries" in r.stdout, r.stdout + r.stderr
    assert len(cache.entries()) == 2


def test_a_sweep_leaves_the_cache_within_its_cap(tmp_path):
    spec = tmp_path / "s.tsim"
    text = (ROOT / "specs" / "single_gpu_8b.tsim").read_text()
    spec.write_text(text + "\nsweep { workload.requests in 20, 30, 40 }\n")
    folder = tmp_path / "cache"

    def run(cap: str):
        out = tmp_path / "out"
        args = ("run", spec, "-o", out, "--no-report", "-j", 1, "--cache", folder)
        r = tokensim(*args, env={"TOKENSIM_CACHE_MAX": cap})
        assert r.returncode == 0, r.stderr
        return r

    assert "note: the cache kept" in run("1KB").stderr and Cache(folder).entries() == []
    run("0")
    assert len(Cache(folder).entries()) == 3
