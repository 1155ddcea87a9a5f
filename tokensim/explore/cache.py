"""Results cached under a content hash, so a sweep or search resumes and never runs a
configuration twice.

``run_key(spec, seed)`` hashes what decides a run's result: the checked spec (every value of
the IR, but not where it was written: spans, the file name and the sweep block are left
out), the contents of the files it reads (traces, cost tables), the seed, and tokensim's
version with a digest of its own source, so a changed simulator never serves stale results.

``Cache(folder)`` keeps one folder per key holding a run's result files, each compressed
with gzip (:data:`SUFFIX`; about a fifth of their size, at about 10 ms a megabyte). An entry is
written under a temporary name and renamed into place, so an interrupted write leaves no
entry, never a partial one. Each entry carries the SHA-256 of its files
(:data:`CHECKSUMS`): an entry damaged afterwards (a truncated file, an edit, a lost file) is
not served but removed, and the run is made again.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from importlib import resources
from pathlib import Path

from tokensim.lang.source import Span

# What a simulation itself produces: cached. The rest of a point's folder (its page, the
# spec text, run.json, graph.json) is made from the spec and the point, not stored.
RESULT_FILES = ("metrics.json", "bench.json", "requests.csv", "timeseries.csv", "iterations.csv")
CHECKSUMS = "sha256.json"  # in each entry: {file name: SHA-256 of its bytes, uncompressed}
SUFFIX = ".gz"  # each result file is stored gzip-compressed (level 1: fast, ~5x smaller)
# Fields that say where a value was written, not what it is.
_SKIPPED = {"span", "sweep", "file"}
# Fields that name a file the run reads: its content is part of the key.
_FILE_FIELDS = {"path"}


@functools.cache
def code_version() -> str:
    """tokensim's version and a digest of every file of the package (sources, grammar,
    catalogues, templates)."""
    from tokensim import __version__

    h = hashlib.sha256(__version__.encode())
    for package in ("tokensim", "tokensim.dsl"):  # dsl/ is a folder of its own in a checkout
        root = Path(str(resources.files(package)))
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".lark", ".tsim", ".html", ".css", ".js"):
                h.update(f"{package}/{path.relative_to(root)}".encode())
                h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:16]}"


@functools.cache
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _digest_of(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return _file_digest(path, st.st_mtime_ns, st.st_size)


def _canonical(obj, out: list[str]) -> None:
    """Append an exact, position-free text of ``obj`` to ``out``."""
    if isinstance(obj, Span) or obj is None:
        out.append("~")
    elif isinstance(obj, enum.Enum):
        out.append(f"{type(obj).__name__}.{obj.name}")
    elif isinstance(obj, (bool, int, str)):
        out.append(repr(obj))
    elif isinstance(obj, float):
        out.append(obj.hex())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out.append(type(obj).__name__ + "(")
        for f in dataclasses.fields(obj):
            if f.name in _SKIPPED:
                continue
            value = getattr(obj, f.name)
            out.append(f.name + "=")
            _canonical(value, out)
            if f.name in _FILE_FIELDS and isinstance(value, str):
                out.append("#" + _digest_of(value))
            out.append(",")
        out.append(")")
    elif isinstance(obj, (tuple, list)):
        out.append("[")
        for item in obj:
            _canonical(item, out)
            out.append(",")
        out.append("]")
    elif isinstance(obj, dict):
        out.append("{")
        for k in sorted(obj, key=repr):
            _canonical(k, out)
            out.append(":")
            _canonical(obj[k], out)
            out.append(",")
        out.append("}")
    else:
        raise TypeError(f"cannot key a {type(obj).__name__}")


def run_key(spec, seed: int | None) -> str:
    """The content hash of a run of ``spec`` (an :class:`tokensim.ir.Spec`) with ``seed``
    (None: the workload's own)."""
    out: list[str] = [code_version(), f"seed={seed!r};"]
    _canonical(spec, out)
    return hashlib.sha256("".join(out).encode()).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Entry:
    """One cached run: its folder, the bytes of its files, when it was last used."""

    path: Path
    bytes: int
    used: float  # the folder's modification time, refreshed on every hit


DEFAULT_MAX_BYTES = 2 * 2**30  # what a cache keeps after a sweep, a search or a size run


class Cache:
    """Result files by key, one folder each: ``folder/ab/abcdef.../``."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def get(self, key: str) -> dict[str, str] | None:
        """The files stored under ``key``, or None (also when caching is off)."""
        if self.folder is None:
            return None
        entry = self._entry(key)
        try:
            raw = {
                name: gzip.decompress((entry / (name + SUFFIX)).read_bytes())
                for name in RESULT_FILES
            }
            sums = json.loads((entry / CHECKSUMS).read_text("utf-8"))
            intact = isinstance(sums, dict) and all(
                sums.get(name) == _sha256(data) for name, data in raw.items()
            )
            if intact:
                try:
                    os.utime(entry)  # used now: pruning removes the least recently used
                except OSError:
                    pass
                return {name: data.decode("utf-8") for name, data in raw.items()}
        except FileNotFoundError:
            if not entry.exists():
                return None  # not cached
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError):
            pass  # (gzip.BadGzipFile is an OSError)
        shutil.rmtree(entry, ignore_errors=True)  # damaged: made again, and stored anew
        return None

    def put(self, key: str, files: dict[str, str]) -> None:
        """Store the :data:`RESULT_FILES` of ``files`` under ``key`` (all or nothing)."""
        if self.folder is None:
            return
        entry = self._entry(key)
        if entry.exists():
            return
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=entry.parent))
        try:
            sums = {}
            for name in RESULT_FILES:
                data = files[name].encode("utf-8")
                (tmp / (name + SUFFIX)).write_bytes(gzip.compress(data, 1, mtime=0))
                sums[name] = _sha256(data)
            (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1) + "\n", "utf-8")
            os.replace(tmp, entry)
        except OSError:
            if not entry.exists():  # (another process may have stored it first)
                raise
        finally:  # also on Ctrl-C: no half-written folder is left behind
            shutil.rmtree(tmp, ignore_errors=True)

    def entries(self) -> list[Entry]:
        """Every entry, the least recently used (or stored) first."""
        if self.folder is None or not self.folder.is_dir():
            return []
        out = []
        for path in self.folder.glob("*/*"):
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
                out.append(Entry(path, size, path.stat().st_mtime))
            except OSError:  # removed meanwhile by another process
                continue
        return sorted(out, key=lambda e: (e.used, str(e.path)))

    def prune(
        self,
        max_bytes: float | None = None,
        older_than_s: float | None = None,
        now: float | None = None,
    ) -> tuple[int, int]:
        """Remove the entries last used more than ``older_than_s`` ago, then the least
        recently used until the rest hold at most ``max_bytes``; (entries, bytes) removed.
        With neither, every entry goes."""
        import time

        now = time.time() if now is None else now
        entries = self.entries()
        total = sum(e.bytes for e in entries)
        removed = freed = 0
        for e in entries:
            old = older_than_s is not None and now - e.used > older_than_s
            over = max_bytes is not None and total > max_bytes
            if not (old or over or (max_bytes is None and older_than_s is None)):
                continue
            shutil.rmtree(e.path, ignore_errors=True)
            total -= e.bytes
            removed, freed = removed + 1, freed + e.bytes
        return removed, freed

    def __len__(self) -> int:
        """How many entries the cache holds."""
        if self.folder is None:
            return 0
        return sum(1 for p in self.folder.glob("*/*") if not p.name.startswith("."))
