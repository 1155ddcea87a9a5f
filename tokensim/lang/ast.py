"""The syntax tree of a .tsim file: frozen nodes, each with its :class:`Span`.

The tree is as uniform as the grammar: a :class:`Module` is a tuple of
:class:`Statement`; a statement is a key (:class:`Path`), a tuple of items and
an optional body. Items are words, strings, quantities, slices, calls,
symbols and commas; expressions (inside calls) are :class:`BinOp`, :class:`Neg`,
paths, quantities and calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokensim.lang.source import Span


@dataclass(frozen=True)
class Path:
    """A name or a dotted name: ``tp``, ``workload.arrivals.rate``."""

    parts: tuple[str, ...]
    span: Span

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class String:
    """A string literal, already unescaped."""

    value: str
    span: Span


@dataclass(frozen=True)
class Quantity:
    """A number with the unit written after it ('' for none): ``80 GB`` is (80.0, 'GB')."""

    number: float
    unit: str
    text: str
    span: Span


@dataclass(frozen=True)
class Slice:
    """``n0[2]`` or ``n0[0..3]``: some of a node's GPUs, bounds inclusive."""

    name: str
    first: Quantity
    last: Quantity
    span: Span


@dataclass(frozen=True)
class Call:
    """``min(kv_used + 0.1 * queued)``."""

    name: str
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class BinOp:
    """``left op right`` with op one of + - * /."""

    op: str
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Neg:
    """``-operand``."""

    operand: Expr
    span: Span


@dataclass(frozen=True)
class Group:
    """A parenthesised expression used as an item: ``(a + b)``."""

    expr: Expr
    span: Span


@dataclass(frozen=True)
class Symbol:
    """Punctuation that separates items: ``->``, ``..``, ``<``, ``<=``, ``>``, ``>=``, ``=``."""

    text: str
    span: Span


@dataclass(frozen=True)
class Comma:
    """A ``,`` between items."""

    span: Span


Expr = Path | Quantity | Call | BinOp | Neg
Item = Path | String | Quantity | Slice | Call | Group | Symbol | Comma


@dataclass(frozen=True)
class Statement:
    """``key item* { body }``; ``body`` is None when there are no braces."""

    key: Path
    items: tuple[Item, ...]
    body: tuple[Statement, ...] | None
    span: Span

    @property
    def label(self) -> str | None:
        """The first item when it is a plain word (``pool decode {`` -> 'decode')."""
        if self.items and isinstance(self.items[0], Path) and len(self.items[0].parts) == 1:
            return self.items[0].parts[0]
        return None


@dataclass(frozen=True)
class Module:
    """One parsed file."""

    file: str
    statements: tuple[Statement, ...]
