"""``tokensim cache info|prune``: what the cache of finished simulations holds, and
keeping it small. After every sweep, search and size run the cache is pruned to
``$TOKENSIM_CACHE_MAX`` (default 2 GiB), the least recently used entries first."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_MAX = "TOKENSIM_CACHE_MAX"


class CacheUsage(Exception):
    """A size or age that cannot be read."""


def _quantity(text: str, dim, what: str) -> float:
    from tokensim.lang.units import UnitError, parse_quantity

    try:
        return parse_quantity(text, dim)
    except UnitError as err:
        raise CacheUsage(f"{what} {text!r}: {err} ({err.help})") from None
    except ValueError:
        raise CacheUsage(
            f"{what} takes a number with a unit, like {_EXAMPLE[what]}; got {text!r}"
        ) from None


_EXAMPLE = {"--max-size": "2GB", "--older-than": "24 h", ENV_MAX: "2GB"}


def size_limit(text: str, what: str = "--max-size") -> float:
    from tokensim.lang.units import Dim

    return _quantity(text, Dim.BYTES, what)


def cap() -> float | None:
    """The size the cache is pruned to after a run: ``$TOKENSIM_CACHE_MAX`` (``0``: no
    limit), else the default."""
    from tokensim.explore.cache import DEFAULT_MAX_BYTES

    text = os.environ.get(ENV_MAX)
    if text is None or not text.strip():
        return DEFAULT_MAX_BYTES
    if text.strip() == "0":
        return None
    return size_limit(text, ENV_MAX)


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _folder(args) -> Path:
    return Path(args.cache or os.environ.get("TOKENSIM_CACHE") or ".tokensim-cache")


def cmd_cache(args) -> int:
    import time

    from tokensim.cli import _Usage
    from tokensim.explore.cache import Cache

    folder = _folder(args)
    if folder.exists() and not folder.is_dir():
        raise _Usage(f"{folder} is a file, not a cache folder")
    cache = Cache(folder)
    if args.action == "info":
        entries = cache.entries()
        total = sum(e.bytes for e in entries)
        limit = cap()
        print(f"cache: {folder}")
        print(f"entries: {len(entries)}, {_size(total)}")
        if entries:
            now = time.time()
            print(
                f"last used: the oldest {(now - entries[0].used) / 3600:.1f} h ago, "
                f"the newest {(now - entries[-1].used) / 3600:.1f} h ago"
            )
        kept = "no limit" if limit is None else _size(limit)
        print(f"kept after each run: {kept} (${ENV_MAX})")
        return 0
    try:
        max_bytes = size_limit(args.max_size) if args.max_size else None
        from tokensim.lang.units import Dim

        older = _quantity(args.older_than, Dim.TIME, "--older-than") if args.older_than else None
    except CacheUsage as err:
        raise _Usage(str(err)) from None
    if max_bytes is None and older is None and not args.all:
        raise _Usage("cache prune needs --max-size, --older-than or --all")
    removed, freed = cache.prune(max_bytes, older)
    if not args.quiet:
        left = sum(e.bytes for e in cache.entries())
        print(f"removed {removed} entries ({_size(freed)}); {_size(left)} left in {folder}")
    return 0


def keep_under_cap(cache, quiet: bool) -> None:
    """After a sweep, search or size run: prune the cache to :func:`cap`."""
    if cache.folder is None:
        return
    try:
        limit = cap()
    except CacheUsage as err:
        print(f"warning: {err}; the cache was not pruned", file=sys.stderr)
        return
    if limit is None:
        return
    removed, freed = cache.prune(limit)
    if removed and not quiet:
        print(
            f"note: the cache kept {_size(limit)}: removed {removed} least recently used "
            f"entries ({_size(freed)}); ${ENV_MAX} sets the size",
            file=sys.stderr,
        )


def add_parser(sub) -> None:
    p = sub.add_parser(
        "cache",
        help="how big the cache of finished simulations is; prune it",
        description="The cache keeps every finished simulation of sweeps, searches and size "
        "runs by content hash, so a re-run skips them. `info` says how many entries it holds "
        "and their size; `prune` removes entries last used longer ago than --older-than, then "
        "the least recently used until it holds --max-size, or --all. After every run that "
        f"uses it, the cache is pruned to ${ENV_MAX} (default 2 GiB; 0: no limit).",
    )
    p.add_argument("action", choices=["info", "prune"])
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="the cache folder (default: $TOKENSIM_CACHE, else .tokensim-cache)",
    )
    p.add_argument("--max-size", metavar="SIZE", help="prune: keep at most this much, e.g. 1GB")
    p.add_argument(
        "--older-than", metavar="AGE", help="prune: remove entries unused this long, e.g. 24h"
    )
    p.add_argument("--all", action="store_true", help="prune: remove every entry")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_cache)
