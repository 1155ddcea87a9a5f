"""Diagnostics: errors a user can act on, rendered like a compiler's.

Every stage reports problems as :class:`Diagnostic` objects; the checker
collects all of them and raises one :class:`CompileError`. :func:`render`
is the only place that turns them into text::

    error: unknown attribute `instnces` in pool `decode`
      --> spec.tsim:12:5
       |
    12 |     instnces 2
       |     ^^^^^^^^
       = note: pool `decode` takes `batching`, `dtype`, `instances`, ...
       = help: did you mean `instances`?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from tokensim.lang.source import SourceMap, Span


@dataclass(frozen=True)
class Note:
    """A secondary line under a diagnostic; with a span it shows that source line too."""

    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    """One problem in the user's input, at ``span`` (None: not tied to a line)."""

    message: str
    span: Span | None
    notes: tuple[Note, ...] = ()
    help: str | None = None
    severity: str = "error"

    def sort_key(self) -> tuple:
        s = self.span
        return (s.file, s.line, s.col, self.message) if s else ("", 0, 0, self.message)


class CompileError(Exception):
    """Raised once with every diagnostic a stage found (sorted, de-duplicated)."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: SourceMap | None = None):
        unique = {(d.sort_key(), d.notes, d.help): d for d in diagnostics}
        self.diagnostics: list[Diagnostic] = sorted(unique.values(), key=Diagnostic.sort_key)
        self.sources = sources or SourceMap()
        super().__init__(render_all(self.diagnostics, self.sources))

    def __reduce__(self):  # crosses process boundaries whole (sweeps run in workers)
        return type(self), (self.diagnostics, self.sources)


@dataclass
class Reporter:
    """Collects diagnostics during a stage; ``raise_if_any`` ends the stage."""

    sources: SourceMap
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(
        self,
        message: str,
        span: Span | None,
        *notes: Note,
        help: str | None = None,
    ) -> None:
        """Record an error at ``span``."""
        self.diagnostics.append(Diagnostic(message, span, tuple(notes), help))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics.extend(diagnostics)

    def raise_if_any(self) -> None:
        if self.diagnostics:
            raise CompileError(self.diagnostics, self.sources)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A help line naming the closest candidates to ``word`` (:func:`closest`), or None
    if none is close."""
    close = closest(word, candidates)
    return _suggest(close) if close else None


def closest(word: str, candidates: Iterable[str]) -> list[str]:
    """The candidates closest to ``word``, best first; none when none is close.

    In order: the same word in another case; names that start with ``word``
    (``H100`` -> ``H100_SXM``, ``H100_PCIE``); the closest by spelling, case
    counted (``TBs`` -> ``TB/s``, not ``Tbps``), then ignoring case.
    """
    names = sorted(set(candidates))
    if not names or not word:
        return []
    same = [c for c in names if c.lower() == word.lower() and c != word]
    if same:
        return same
    prefixed = [c for c in names if c.lower().startswith(word.lower())]
    if prefixed and len(word) >= 2:
        return prefixed[:3]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in names}
        close = [
            lowered[c]
            for c in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        ]
    return close


def _suggest(names: list[str]) -> str:
    return f"did you mean {one_of(names, sort=False)}?"


def one_of(candidates: Iterable[str], limit: int = 40, word: str = "or", sort: bool = True) -> str:
    """'`a`, `b` or `c`' for a note listing what is valid (``word`` joins the last two)."""
    items = sorted(set(candidates)) if sort else list(dict.fromkeys(candidates))
    names = [f"`{c}`" for c in items]
    if len(names) > limit:
        names = names[:limit] + [f"... ({len(names) - limit} more)"]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" {word} " + names[-1]


def _excerpt(span: Span, sources: SourceMap, gutter: int, label: str = "") -> list[str]:
    source = sources.get(span.file)
    if source is None:
        return []
    text = source.line(span.line)
    width = span.end_col - span.col if span.end_line == span.line else len(text) - span.col + 1
    width = max(1, width)
    pad = " " * gutter
    caret_lead = "".join(c if c == "\t" else " " for c in text[: span.col - 1])
    line = f"{pad} |\n{span.line:>{gutter}} | {text}\n{pad} | {caret_lead}{'^' * width}"
    return [line + (f" {label}" if label else "")]


def render(diagnostic: Diagnostic, sources: SourceMap) -> str:
    """The text of one diagnostic, with the source line and carets where known."""
    spans = [diagnostic.span] + [n.span for n in diagnostic.notes]
    gutter = max([len(str(s.line)) for s in spans if s] or [1])
    pad = " " * gutter
    out = [f"{diagnostic.severity}: {diagnostic.message}"]
    if diagnostic.span:
        out.append(f"{pad}--> {diagnostic.span}")
        out.extend(_excerpt(diagnostic.span, sources, gutter))
    for note in diagnostic.notes:
        out.append(f"{pad} = note: {note.message}")
        if note.span:
            out.append(f"{pad}--> {note.span}")
            out.extend(_excerpt(note.span, sources, gutter))
    if diagnostic.help:
        out.append(f"{pad} = help: {diagnostic.help}")
    return "\n".join(out)


def render_all(diagnostics: Iterable[Diagnostic], sources: SourceMap) -> str:
    """All diagnostics, blank-line separated, ending with a count line."""
    items = list(diagnostics)
    body = "\n\n".join(render(d, sources) for d in items)
    errors = sum(d.severity == "error" for d in items)
    tail = f"{errors} error{'s' if errors != 1 else ''}" if errors else ""
    return f"{body}\n\n{tail}" if tail else body
