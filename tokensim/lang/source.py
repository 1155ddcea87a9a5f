"""Source files and positions.

A :class:`Span` says where a piece of syntax came from (file, 1-based line and
column, and where it ends); every AST node, IR object and graph element keeps
one so that any later failure can point back at the user's line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file: 1-based ``line``/``col``, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to(self, other: Span) -> Span:
        """The span from the start of ``self`` to the end of ``other``."""
        return Span(self.file, self.line, self.col, other.end_line, other.end_col)


@dataclass(frozen=True)
class SourceFile:
    """The text of one file, as read, under the name diagnostics show."""

    name: str
    text: str

    def line(self, number: int) -> str:
        """The text of 1-based line ``number`` without its newline ('' past the end)."""
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


class SourceMap:
    """Every file read during one compilation, by the name used in spans."""

    def __init__(self) -> None:
        self._files: dict[str, SourceFile] = {}

    def add(self, name: str, text: str) -> SourceFile:
        """Record ``text`` as the content of ``name`` and return it."""
        source = SourceFile(name, text)
        self._files[name] = source
        return source

    def get(self, name: str) -> SourceFile | None:
        """The file called ``name``, or None if it was never read."""
        return self._files.get(name)
