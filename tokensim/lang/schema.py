"""Schemas: what each statement of each block takes, and the matcher that checks it.

The grammar accepts any ``key item* {body}``; the meaning lives here, as data.
A :class:`Block` lists its :class:`Attr` (statement keys); an attribute's
items are matched by a sequence of :class:`Slot` objects (a number of a given
dimension, a word from a set, a reference to a named thing, a literal ``x``
or ``->``, a comma-separated list, a policy with its parameters...).
Matching yields plain values with spans, or located diagnostics with a usage
line and did-you-mean. The language reference is generated from the same data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokensim.lang import ast, limits
from tokensim.lang.diagnostics import Note, Reporter, did_you_mean, one_of
from tokensim.lang.source import Span
from tokensim.lang.units import MULTIPLIERS, Dim, UnitError, convert

BAD = object()  # the value of a slot whose item was reported as an error


class Shape(Exception):
    """The item at this position is not the kind the slot takes (lets Opt backtrack)."""

    def __init__(self, item: ast.Item | None):
        self.item = item


@dataclass(frozen=True)
class Val:
    """A matched value and where it was written."""

    value: Any
    span: Span


class Slot:
    """Matches items at a position. ``usage`` is how the reference shows it."""

    def usage(self) -> str:
        raise NotImplementedError

    def match(self, items: Sequence[ast.Item], i: int, rep: Reporter) -> tuple[Any, int]:
        """Match ``items[i:]``; return (value, next index) or raise :class:`Shape`."""
        raise NotImplementedError

    def names(self) -> list[str]:
        """The value names this slot binds."""
        name = getattr(self, "name", "")
        return [name] if name else []


def _item(items: Sequence[ast.Item], i: int) -> ast.Item:
    if i >= len(items):
        raise Shape(None)
    return items[i]


def _word(item: ast.Item) -> str | None:
    if isinstance(item, ast.Path) and len(item.parts) == 1:
        return item.parts[0]
    return None


@dataclass(frozen=True)
class Num(Slot):
    """A number in ``dim`` (converted to its base unit), optionally integral and bounded."""

    name: str
    dim: Dim = Dim.COUNT
    integer: bool = False
    min: float | None = None
    max: float | None = None
    above: float | None = None  # strict lower bound
    below: float | None = None  # strict upper bound
    what: str = ""
    limit: bool = False  # ``max`` is one of tokensim's documented limits (lang/limits.py)

    def usage(self) -> str:
        if self.what:
            return f"<{self.what}>"
        if self.dim is Dim.COUNT:
            return "<n>" if self.integer else "<number>"
        return f"<{self.dim.value}>"

    def match(self, items, i, rep):
        item = _item(items, i)
        if not isinstance(item, ast.Quantity):
            raise Shape(item)
        try:
            value = convert(item.number, item.unit, self.dim)
        except UnitError as err:
            rep.error(f"{err} for `{self.name}`", item.span, help=err.help)
            return BAD, i + 1
        if not math.isfinite(value):
            rep.error(f"`{item.text}` is too large a number for `{self.name}`", item.span)
            return BAD, i + 1
        value += 0.0  # `-0` is 0 (numpy's samplers reject a negative zero)
        if self.integer:
            whole = item.unit in ("", "token", "tokens") or item.unit in MULTIPLIERS
            if not whole or value != int(value):
                rep.error(f"`{self.name}` must be a whole number, found `{item.text}`", item.span)
                return BAD, i + 1
            value = int(value)
        low = (self.min, ">=") if self.min is not None else (self.above, ">")
        if low[0] is not None and (value < low[0] if low[1] == ">=" else value <= low[0]):
            rep.error(
                f"`{self.name}` must be {low[1]} {_g(low[0])}, found `{item.text}`", item.span
            )
            return BAD, i + 1
        if self.below is not None and value >= self.below:
            rep.error(f"`{self.name}` must be < {_g(self.below)}, found `{item.text}`", item.span)
            return BAD, i + 1
        cap, limit = self.max, self.limit
        if cap is None and (self.integer or self.dim is Dim.TOKENS):
            cap, limit = (limits.TOKENS if self.dim is Dim.TOKENS else limits.WHOLE), True
        if cap is not None and value > cap:
            if limit:
                rep.error(
                    f"`{self.name}` {item.text} is beyond what tokensim simulates: at most {cap:,}",
                    item.span,
                    help="the limits are listed in the language reference (Limits)",
                )
            else:
                rep.error(f"`{self.name}` must be <= {_g(cap)}, found `{item.text}`", item.span)
            return BAD, i + 1
        return value, i + 1


def _g(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Word(Slot):
    """A bare word, optionally one of ``choices`` (on/off is :data:`BOOL`)."""

    name: str
    choices: tuple[str, ...] | None = None
    what: str = ""

    def usage(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        return f"<{self.what or self.name}>"

    def match(self, items, i, rep):
        item = _item(items, i)
        word = _word(item)
        if word is None:
            raise Shape(item)
        if self.choices and word not in self.choices:
            rep.error(
                f"unknown {self.what or self.name} `{word}`",
                item.span,
                Note(f"expected {one_of(self.choices)}"),
                help=did_you_mean(word, self.choices),
            )
            return BAD, i + 1
        return word, i + 1


@dataclass(frozen=True)
class Bool(Slot):
    """``on``/``off`` (also ``true``/``false``, ``yes``/``no``)."""

    name: str

    def usage(self) -> str:
        return "on|off"

    def match(self, items, i, rep):
        item = _item(items, i)
        word = _word(item)
        if word is None:
            raise Shape(item)
        table = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
        if word not in table:
            rep.error(f"`{self.name}` is on or off, found `{word}`", item.span)
            return BAD, i + 1
        return table[word], i + 1


@dataclass(frozen=True)
class Ref(Slot):
    """A name of a thing defined elsewhere (resolved by the checker): a :class:`Val` of str."""

    name: str
    kind: str
    exclude: tuple[str, ...] = ()  # words that end an optional reference (`route by`)

    def usage(self) -> str:
        return f"<{self.kind}>"

    def match(self, items, i, rep):
        item = _item(items, i)
        word = _word(item)
        if word is None or word in self.exclude:
            raise Shape(item)
        return Val(word, item.span), i + 1


@dataclass(frozen=True)
class Str(Slot):
    """A string literal."""

    name: str

    def usage(self) -> str:
        return f'"<{self.name}>"'

    def match(self, items, i, rep):
        item = _item(items, i)
        if not isinstance(item, ast.String):
            raise Shape(item)
        return Val(item.value, item.span), i + 1


@dataclass(frozen=True)
class Lit(Slot):
    """A literal word or symbol (``x``, ``->``, ``between``); binds nothing."""

    text: str

    def usage(self) -> str:
        return self.text

    def match(self, items, i, rep):
        item = _item(items, i)
        text = item.text if isinstance(item, ast.Symbol) else _word(item)
        if text != self.text:
            raise Shape(item)
        return None, i + 1


@dataclass(frozen=True)
class Opt(Slot):
    """Optional ``slots``: skipped when the first one does not fit the item there."""

    slots: tuple[Slot, ...]

    def usage(self) -> str:
        return "[" + " ".join(s.usage() for s in self.slots) + "]"

    def names(self):
        return [n for s in self.slots for n in s.names()]

    def match(self, items, i, rep):
        try:
            value, j = self.slots[0].match(items, i, rep)
        except Shape:
            return {}, i
        values = {}
        if self.slots[0].names():
            values[self.slots[0].names()[0]] = value
        rest, j = match_slots(self.slots[1:], items, j, rep)
        return values | rest, j


@dataclass(frozen=True)
class ListOf(Slot):
    """One or more ``slot`` separated by commas: a tuple of values."""

    name: str
    slot: Slot

    def usage(self) -> str:
        inner = self.slot.usage()
        return f"{inner}, ..."

    def match(self, items, i, rep):
        value, i = self.slot.match(items, i, rep)
        values = [value]
        while i < len(items) and isinstance(items[i], ast.Comma):
            try:
                value, i = self.slot.match(items, i + 1, rep)
            except Shape as err:
                raise Shape(err.item) from None
            values.append(value)
        return tuple(values), i


def match_slots(
    slots: Sequence[Slot], items: Sequence[ast.Item], i: int, rep: Reporter
) -> tuple[dict[str, Any], int]:
    """Match ``slots`` in order from ``items[i]``; values by slot name. Raises Shape."""
    values: dict[str, Any] = {}
    for slot in slots:
        value, i = slot.match(items, i, rep)
        if isinstance(slot, Opt):
            values.update(value)
        elif slot.names():
            values[slot.name] = value
    return values, i


def describe_item(item: ast.Item | None) -> str:
    """How an item is named in messages."""
    if item is None:
        return "end of statement"
    if isinstance(item, ast.Path):
        return f"`{item.text}`"
    if isinstance(item, ast.Quantity):
        return f"`{item.text}`"
    if isinstance(item, ast.String):
        return "a string"
    if isinstance(item, ast.Symbol):
        return f"`{item.text}`"
    if isinstance(item, ast.Comma):
        return "`,`"
    if isinstance(item, ast.Slice):
        return f"`{item.name}[...]`"
    if isinstance(item, ast.Call):
        return f"`{item.name}(...)`"
    return "an expression"


@dataclass(frozen=True)
class Attr:
    """A statement a block accepts: ``key`` followed by items matching ``slots``.

    ``body`` is the schema of its ``{ }`` (None: braces not allowed);
    ``body_required`` makes the braces mandatory. ``repeat`` allows it more
    than once. ``default`` is documentation of what holds when it is absent.
    """

    key: str
    slots: tuple[Slot, ...] = ()
    doc: str = ""
    body: Block | None = None
    body_required: bool = False
    required: bool = False
    repeat: bool = False
    default: str | None = None
    custom_body: bool = False  # the body is matched by the slot itself (policies)

    def usage(self) -> str:
        parts = [self.key] + [s.usage() for s in self.slots]
        if self.body is not None and (self.body_required or not self.custom_body):
            parts.append("{ ... }" if self.body_required else "[{ ... }]")
        return " ".join(parts)


@dataclass(frozen=True)
class Block:
    """The statements one kind of block accepts."""

    kind: str
    attrs: tuple[Attr, ...]
    doc: str = ""

    def attr(self, key: str) -> Attr | None:
        return next((a for a in self.attrs if a.key == key), None)

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.attrs]


@dataclass(frozen=True)
class Bound:
    """One matched statement: its values by slot name, its body, its node."""

    stmt: ast.Statement
    values: dict[str, Any]
    body: Bodies | None

    @property
    def span(self) -> Span:
        return self.stmt.span

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


class Bodies:
    """The statements of a block, matched against its :class:`Block`, by key."""

    def __init__(self, block: Block, where: str, span: Span | None):
        self.block = block
        self.where = where
        self.span = span
        self.by_key: dict[str, list[Bound]] = {}

    def all(self, key: str) -> list[Bound]:
        return self.by_key.get(key, [])

    def one(self, key: str) -> Bound | None:
        found = self.by_key.get(key)
        return found[0] if found else None

    def value(self, key: str, name: str | None = None, default: Any = None) -> Any:
        """The value bound to slot ``name`` (default: the key) of statement ``key``."""
        bound = self.one(key)
        if bound is None:
            return default
        value = bound.values.get(name or key, default)
        return default if value is BAD else value


def labelled(statements: Sequence[ast.Statement], block: Block, name: str) -> int | None:
    """The index among ``statements`` of the repeated block labelled ``name`` (``pool
    decode { ... }``, ``node n0 { ... }``), or None: how a path names one."""
    for i, s in enumerate(statements):
        attr = block.attr(s.key.text)
        if s.label == name and attr is not None and attr.repeat and attr.body is not None:
            return i
    return None


def keyed(attr: Attr | None) -> bool:
    """Whether ``attr``'s statements repeat, told apart by an optional leading name
    (``route [<pool>] by <policy>``): a path names one as ``key`` (the one without a name)
    or ``key.NAME``, and its value is what follows the literal words (the policy)."""
    if attr is None or not attr.slots:
        return False
    head = attr.slots[0]
    return (
        attr.repeat
        and isinstance(head, Opt)
        and len(head.slots) == 1
        and isinstance(head.slots[0], Ref)
        and all(isinstance(s, Lit) for s in attr.slots[1:-1])
    )


def single(attr: Attr | None, statements: Sequence[ast.Statement]) -> bool:
    """Whether a path can name ``attr`` by its key as if it did not repeat: a repeated
    statement that names no definition (``network <link> between ...``, ``transfer a -> b``)
    written once."""
    named = attr is not None and attr.slots and getattr(attr.slots[0], "name", "") == "name"
    return (
        attr is not None
        and attr.repeat
        and not named
        and not keyed(attr)
        and sum(s.key.text == attr.key for s in statements) == 1
    )


def keyed_items(attr: Attr, name: str | None, span: Span) -> tuple[ast.Item, ...]:
    """The items of a :func:`keyed` statement before its value: its name, if any, then its
    literal words (``decode by``)."""
    items: list[ast.Item] = [ast.Path((name,), span)] if name else []
    for s in attr.slots[1:-1]:
        word = s.text.isidentifier()
        items.append(ast.Path((s.text,), span) if word else ast.Symbol(s.text, span))
    return tuple(items)


def keyed_index(statements: Sequence[ast.Statement], attr: Attr, name: str | None) -> int | None:
    """The index of the :func:`keyed` statement named ``name`` (None: the one without a
    name) among ``statements``, or None."""
    for i, s in enumerate(statements):
        if s.key.text != attr.key:
            continue
        first = _word(s.items[0]) if s.items else None
        ref: Ref = attr.slots[0].slots[0]
        own = first if first is not None and first not in ref.exclude else None
        if own == name:
            return i
    return None


def statement_error(stmt: ast.Statement, attr: Attr, err: Shape, rep: Reporter) -> None:
    """Report items that do not fit ``attr``'s usage."""
    if err.item is None:
        span = stmt.items[-1].span if stmt.items else stmt.key.span
        span = Span(span.file, span.end_line, span.end_col, span.end_line, span.end_col + 1)
        message = f"`{stmt.key.text}` is incomplete"
    else:
        span = err.item.span
        message = f"unexpected {describe_item(err.item)} in `{stmt.key.text}`"
    rep.error(message, span, Note(f"usage: {attr.usage()}"))


def bind(
    statements: Sequence[ast.Statement] | None,
    block: Block,
    rep: Reporter,
    where: str,
    span: Span | None,
    partial: bool = False,
) -> Bodies:
    """Match a block's statements against ``block``; report unknown keys, bad items,
    repeats and missing required statements (not when ``partial``: the statements that
    change a base definition). ``where`` names the block in messages."""
    out = Bodies(block, where, span)
    for stmt in statements or ():
        key = stmt.key.text
        attr = block.attr(key)
        if attr is None:
            rep.error(
                f"unknown statement `{key}` in {where}",
                stmt.key.span,
                Note(f"{where} takes {one_of(block.keys)}"),
                help=did_you_mean(key, block.keys),
            )
            continue
        previous = out.by_key.get(key)
        if previous and not attr.repeat:
            rep.error(
                f"`{key}` is given twice in {where}",
                stmt.key.span,
                Note("first given here", previous[0].stmt.key.span),
            )
            continue
        try:
            values, end = match_slots(attr.slots, stmt.items, 0, rep)
            if end < len(stmt.items):
                raise Shape(stmt.items[end])
        except Shape as err:
            statement_error(stmt, attr, err, rep)
            out.by_key.setdefault(key, []).append(Bound(stmt, {}, None))
            continue
        body = None
        if attr.custom_body:
            for slot in attr.slots:  # a policy's named parameters live in the body
                if hasattr(slot, "bind_body") and values.get(slot.name) is not BAD:
                    values[slot.name] = slot.bind_body(values[slot.name], stmt, rep)
        elif stmt.body is not None and attr.body is None:
            rep.error(f"`{key}` takes no {{ }} block", stmt.span, Note(f"usage: {attr.usage()}"))
        elif attr.body is not None and (stmt.body is not None or attr.body_required):
            changes = isinstance(values.get("base"), Val)  # `gpu NAME from BASE { ... }`
            if stmt.body is None and not changes:
                rep.error(f"`{key}` needs a {{ }} block", stmt.span, Note(f"usage: {attr.usage()}"))
            label = values.get("name")
            label = label.value if isinstance(label, Val) else label
            inner = f"{attr.body.kind} `{label}`" if label else f"`{key}`"
            body = bind(stmt.body, attr.body, rep, inner, stmt.span, partial=changes)
        out.by_key.setdefault(key, []).append(Bound(stmt, values, body))
    for attr in block.attrs:
        if attr.required and attr.key not in out.by_key and not partial:
            rep.error(
                f"{where} needs `{attr.key}`",
                span,
                Note(f"usage: {attr.usage()}"),
            )
    return out
