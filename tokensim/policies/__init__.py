"""Policies by the name the language uses, one registry per family.

A policy class declares its parameters next to itself and registers under
its name with ``@FAMILY.register("name")``; the checker validates a spec's
``batching continuous { max_seqs 256 }`` against that declaration, and an
unknown name is a located error listing the valid ones. The simulator
(a later stage) instantiates the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokensim.lang import ast
from tokensim.lang.diagnostics import Note, Reporter, did_you_mean, one_of
from tokensim.lang.schema import BAD, Shape, Slot, Val, _item, _word, describe_item, match_slots


@dataclass(frozen=True)
class Param:
    """A policy parameter: its name, the slot that reads its value, its default.

    ``default`` None means required.
    """

    name: str
    slot: Slot
    default: Any = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


class Policy:
    """Base of every policy class: ``name``, ``params``, optional ``shorthand``.

    ``shorthand`` is the positional form after the name (``poisson 12/s``,
    ``fixed 512 -> 128``): slots named after parameters.
    """

    name: str = ""
    family: str = ""
    params: tuple[Param, ...] = ()
    shorthand: tuple[Slot, ...] = ()

    def __init__(self, **params: Any):
        """An instance for the simulator, with the checked parameter values as attributes."""
        for p in self.params:
            setattr(self, p.name, params.get(p.name, p.default))

    @classmethod
    def from_use(cls, use: PolicyUse) -> Policy:
        """Instantiate the policy a spec names (``use`` comes from the checked IR)."""
        return cls(**dict(use.params))

    @classmethod
    def usage(cls) -> str:
        return " ".join([cls.name] + [s.usage() for s in cls.shorthand])

    @classmethod
    def param(cls, name: str) -> Param | None:
        return next((p for p in cls.params if p.name == name), None)


class Registry:
    """The policies of one family by name; registering a name twice is an error."""

    def __init__(self, family: str, what: str):
        self.family = family
        self.what = what  # how messages name one: "batching policy"
        self._entries: dict[str, type[Policy]] = {}

    def register(self, name: str):
        def add(cls: type[Policy]) -> type[Policy]:
            if name in self._entries:
                raise ValueError(f"{self.family} policy {name!r} registered twice")
            cls.name, cls.family = name, self.family
            self._entries[name] = cls
            return cls

        return add

    def get(self, name: str) -> type[Policy] | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __iter__(self):
        return iter(self._entries[n] for n in self.names())


@dataclass(frozen=True)
class PolicyUse:
    """A policy named in a spec with its parameter values (after defaults)."""

    family: str
    name: str
    params: tuple[tuple[str, Any], ...]
    span: Any

    def get(self, name: str) -> Any:
        return dict(self.params)[name]


@dataclass(frozen=True)
class PolicySlot(Slot):
    """A policy name from ``registry``, its shorthand items and, in the body, named params."""

    name: str
    registry: Registry
    default: str | None = None  # the policy used when the statement is absent

    def usage(self) -> str:
        return f"<{self.registry.what}>"

    def match(self, items: Sequence[ast.Item], i: int, rep: Reporter):
        item = _item(items, i)
        word = _word(item)
        if word is None:
            raise Shape(item)
        cls = self.registry.get(word)
        if cls is None:
            rep.error(
                f"unknown {self.registry.what} `{word}`",
                item.span,
                Note(f"expected {one_of(self.registry.names())}"),
                help=did_you_mean(word, self.registry.names()),
            )
            return BAD, len(items)
        try:
            if i + 1 == len(items):  # no shorthand: parameters come from the body
                values, j = {}, i + 1
            else:
                values, j = match_slots(cls.shorthand, items, i + 1, rep)
            if j < len(items):
                raise Shape(items[j])
        except Shape as err:
            where = err.item.span if err.item is not None else item.span
            found = describe_item(err.item)
            rep.error(
                f"unexpected {found} after {self.registry.what} `{word}`",
                where,
                Note(f"usage: {cls.usage()}" + (" { ... }" if cls.params else "")),
            )
            return BAD, len(items)
        spans = {k: item.span for k in values}
        return (cls, values, spans, item.span), len(items)

    def bind_body(self, matched, stmt: ast.Statement, rep: Reporter) -> PolicyUse | Any:
        """Add the named parameters from ``stmt``'s body, check them, fill defaults."""
        cls, values, spans, span = matched
        for inner in stmt.body or ():
            key = inner.key.text
            param = cls.param(key)
            if param is None:
                names = [p.name for p in cls.params]
                rep.error(
                    f"unknown parameter `{key}` of {self.registry.what} `{cls.name}`",
                    inner.key.span,
                    Note(
                        f"`{cls.name}` takes {one_of(names)}"
                        if names
                        else f"`{cls.name}` takes no parameters"
                    ),
                    help=did_you_mean(key, names),
                )
                continue
            if key in values:
                rep.error(
                    f"`{key}` is given twice", inner.key.span, Note("first given here", spans[key])
                )
                continue
            try:
                got, j = match_slots((param.slot,), inner.items, 0, rep)
                if j < len(inner.items):
                    raise Shape(inner.items[j])
            except Shape as err:
                where = err.item.span if err.item is not None else inner.span
                rep.error(
                    f"unexpected {describe_item(err.item)} in parameter `{key}`",
                    where,
                    Note(f"usage: {key} {param.slot.usage()}"),
                )
                continue
            if inner.body is not None:
                rep.error(f"`{key}` takes no {{ }} block", inner.span)
            values[key] = got[param.slot.name] if param.slot.names() else True
            spans[key] = inner.key.span
        missing = [p.name for p in cls.params if p.required and p.name not in values]
        for name in missing:
            rep.error(
                f"{self.registry.what} `{cls.name}` needs `{name}`",
                span,
                Note(f"usage: {cls.usage()}"),
            )
        if any(v is BAD for v in values.values()) or missing:
            return BAD
        params = {p.name: values.get(p.name, p.default) for p in cls.params}
        params = {k: (v.value if isinstance(v, Val) else v) for k, v in params.items()}
        return PolicyUse(self.registry.family, cls.name, tuple(sorted(params.items())), span)
