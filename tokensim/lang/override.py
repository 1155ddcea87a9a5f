"""Setting a value of a spec from outside it: ``--set workload.arrivals.rate=20/s``.

``override(module, path, value, sources)`` returns a new syntax tree in which the
statement (or policy parameter) that ``path`` names holds ``value``, parsed as
the items of a statement. The result is checked like any spec, so a wrong value
is a located error that quotes the ``--set`` text. A lone name for a statement of several
values that starts with one (``gpus A100_80G`` for ``gpus H100_SXM x 8``) replaces that name
and keeps the rest. Paths are the sweep paths:
keys, labels of repeated blocks, and policy parameters
(``deployment.decode.batching.max_seqs``).
"""

from __future__ import annotations

import dataclasses

from tokensim.lang import ast
from tokensim.lang.check import schemas
from tokensim.lang.diagnostics import CompileError, Diagnostic, Reporter, closest, did_you_mean
from tokensim.lang.parse import parse
from tokensim.lang.schema import (
    Block,
    Shape,
    keyed,
    keyed_index,
    keyed_items,
    labelled,
    single,
)
from tokensim.lang.source import SourceMap, Span
from tokensim.policies import PolicySlot


def _fail(message: str, span: Span, sources: SourceMap, help: str | None = None):
    raise CompileError([Diagnostic(message, span, help=help)], sources)


class _Said(CompileError):
    """An error whose help already says what to write (not replaced by the paths near)."""


def override(module: ast.Module, path: str, value: str, sources: SourceMap) -> ast.Module:
    """``module`` with ``path`` set to ``value`` (text of the statement's items). A ``*``
    in ``path`` stands for any one name: ``cluster.*.gpus`` sets every node's GPUs."""
    if "*" in path.split("."):
        return _every(module, path, value, sources)
    name = f"--set {path}"
    text = f"{path} {value}"
    parsed = parse(text, name, sources)
    if len(parsed.statements) != 1:
        _fail("a --set value is one statement's items", Span(name, 1, 1, 1, len(text) + 1), sources)
    new = parsed.statements[0]
    parts = new.key.parts
    try:
        statements = _set(list(module.statements), schemas.TOP, parts, new, sources, 0)
    except CompileError as err:
        near = nearest(paths(module), parts)
        if not near or len(err.diagnostics) != 1 or isinstance(err, _Said):
            raise
        raise CompileError(
            [dataclasses.replace(err.diagnostics[0], help=_can_set(near))], sources
        ) from None
    return dataclasses.replace(module, statements=tuple(statements))


def _every(module: ast.Module, path: str, value: str, sources: SourceMap) -> ast.Module:
    """``module`` with every path ``path`` matches (``*``: any one name) set to ``value``."""
    want = path.split(".")
    known = paths(module)
    found = matching(tuple(want), known)
    if not found:
        name = f"--set {path}"
        sources.add(name, f"{path} {value}")
        near = nearest(known, tuple(want))
        _fail(
            f"`{path}` matches nothing in the spec",
            Span(name, 1, 1, 1, len(path) + 1),
            sources,
            help=_can_set(near) if near else None,
        )
    for p in found:
        module = override(module, p, value, sources)
    return module


def matching(parts: tuple[str, ...], candidates: list[str]) -> list[str]:
    """The paths of ``candidates`` that ``parts`` matches, a ``*`` standing for any one
    name."""
    return [
        p
        for p in candidates
        if len(p.split(".")) == len(parts)
        and all(w in ("*", part) for w, part in zip(parts, p.split("."), strict=True))
    ]


def paths(module: ast.Module) -> list[str]:
    """Every path ``--set`` can set in ``module``: the statements its blocks take, the
    pools, nodes and definitions it has by name, and the parameters of its policies."""
    return settable(module.statements)


def settable(statements) -> list[str]:
    """:func:`paths` of a spec's top-level ``statements``."""
    out: list[str] = []
    _walk(statements, schemas.TOP, (), out)
    return out


def _walk(stmts, block: Block, prefix: tuple[str, ...], out: list[str]) -> None:
    for attr in block.attrs:
        if keyed(attr):  # `route`, and `route.<pool>` for each pool's own route
            out.append(".".join((*prefix, attr.key)))
            for s in stmts:
                first = s.items[0] if s.key.text == attr.key and s.items else None
                if isinstance(first, ast.Path) and keyed_index(stmts, attr, first.text) is not None:
                    out.append(".".join((*prefix, attr.key, first.text)))
        if attr.repeat and not single(attr, stmts):
            continue
        path = (*prefix, attr.key)
        out.append(".".join(path))
        stmt = next((s for s in stmts if s.key.text == attr.key), None)
        if attr.body is not None and not attr.custom_body:
            _walk((stmt.body or ()) if stmt is not None else (), attr.body, path, out)
        slot = next((s for s in attr.slots if isinstance(s, PolicySlot)), None)
        name = _policy_name(stmt) if stmt is not None and stmt.items else None
        cls = slot.registry.get(name or slot.default or "") if slot is not None else None
        if cls is not None:
            out += [".".join((*path, p.name)) for p in cls.params]
    for s in stmts:
        attr = block.attr(s.key.text)
        if s.label and attr is not None and attr.repeat and attr.body is not None and s.body:
            _walk(s.body, attr.body, (*prefix, s.label), out)


def _can_set(near: list[str]) -> str:
    return "this spec can set " + ", ".join(f"`{p}`" for p in near)


def nearest(candidates: list[str], parts: tuple[str, ...], most: int = 4) -> list[str]:
    """The paths of ``candidates`` inside ``parts`` where it names a block, else those that
    end as ``parts`` does (its last name, and the first too where several do), else those
    whose last name is near it."""
    inside = [c for c in candidates if c.startswith(".".join(parts) + ".")]
    if inside:  # a block's path: what is in it
        return inside[:most]
    last = parts[-1]
    ending = [c for c in candidates if c.split(".")[-1] == last]
    if len(ending) > 1:
        under = [c for c in ending if c.split(".")[0] == parts[0]]
        ending = under or ending
    if not ending:  # near by its last name, among the paths under the same block first
        under = [c for c in candidates if c.split(".")[0] == parts[0]] or candidates
        close = closest(last, {c.split(".")[-1] for c in under})
        ending = [c for c in under if close and c.split(".")[-1] == close[0]]
    return ending[:most]


def _set(stmts: list, block: Block, parts, new: ast.Statement, sources, depth: int) -> list:
    seg = parts[depth]
    rest = parts[depth + 1 :]
    attr = block.attr(seg)
    where = new.key.span
    if attr is not None and (not attr.repeat or single(attr, stmts)):
        index = next((i for i, s in enumerate(stmts) if s.key.text == seg), None)
        stmt = stmts[index] if index is not None else None
        if not rest:
            body = new.body
            if body is None and stmt is not None and not _renames_policy(attr, stmt, new):
                body = stmt.body  # keep the parameters of the same policy
            items = new.items
            if _names_head(attr, stmt, new):  # `gpus A100_80G` keeps `x 8`
                items = (*new.items, *stmt.items[1:])
            replaced = ast.Statement(ast.Path((seg,), where), items, body, new.span)
            return _put(stmts, index, replaced)
        if attr.body is not None and not attr.custom_body:
            body = list(stmt.body or ()) if stmt is not None else []
            body = _set(body, attr.body, parts, new, sources, depth + 1)
            made = stmt or ast.Statement(ast.Path((seg,), where), (), None, where)
            return _put(stmts, index, dataclasses.replace(made, body=tuple(body)))
        slot = next((s for s in attr.slots if isinstance(s, PolicySlot)), None)
        if slot is not None and len(rest) == 1:
            return _put(stmts, index, _set_param(stmt, seg, slot, rest[0], new, sources))
        _fail(f"`{'.'.join(parts)}` goes past `{seg}`", where, sources)
    if keyed(attr) and len(rest) <= 1:  # `route` / `route.decode`: the policy after `by`
        name = rest[0] if rest else None
        index = keyed_index(stmts, attr, name)
        stmt = stmts[index] if index is not None else None
        before = keyed_items(attr, name, where)
        body = new.body
        if (
            body is None
            and stmt is not None
            and _policy_name(stmt, len(before)) == (_policy_name(new))
        ):
            body = stmt.body  # the same policy keeps its parameters
        items = before + new.items
        return _put(stmts, index, ast.Statement(ast.Path((seg,), where), items, body, new.span))
    index = labelled(stmts, block, seg)
    if index is not None and not rest:  # a pool or node as a whole: its block replaced
        path = ".".join(parts)
        if new.items or new.body is None:
            help = f"write `{path}={{ ... }}`, or set one statement, `{path}.<statement>=...`"
            message = f"`{path}` is a block: its value is its statements in braces"
            raise _Said([Diagnostic(message, where, help=help)], sources)
        return _put(stmts, index, dataclasses.replace(stmts[index], body=new.body))
    if index is not None and rest:
        stmt = stmts[index]
        inner = block.attr(stmt.key.text).body
        body = _set(list(stmt.body or ()), inner, parts, new, sources, depth + 1)
        return _put(stmts, index, dataclasses.replace(stmt, body=tuple(body)))
    names = [a.key for a in block.attrs if not a.repeat] + [s.label for s in stmts if s.label]
    _fail(
        f"the spec has no `{'.'.join(parts[: depth + 1])}`",
        where,
        sources,
        help=did_you_mean(seg, names),
    )


def _names_head(attr, old: ast.Statement | None, new: ast.Statement) -> bool:
    """Whether ``new`` gives only the leading name of a statement of several values
    (``model <model> [<dtype>]``, ``gpus <gpu> x <n>``): the rest of ``old`` is kept."""
    from tokensim.lang.schema import Ref

    value_slots = [s for s in attr.slots if s.names()]
    return (
        old is not None
        and len(value_slots) > 1
        and isinstance(value_slots[0], Ref)
        and len(new.items) == 1
        and len(old.items) > 1
    )


def _policy_name(stmt: ast.Statement, at: int = 0) -> str | None:
    first = stmt.items[at] if len(stmt.items) > at else None
    return first.text if isinstance(first, ast.Path) else None


def _renames_policy(attr, old: ast.Statement, new: ast.Statement) -> bool:
    """Whether ``new`` names another policy than ``old`` (its parameters would not apply)."""
    policy = any(isinstance(s, PolicySlot) for s in attr.slots)
    return policy and _policy_name(old) != _policy_name(new)


def _put(stmts: list, index: int | None, stmt: ast.Statement) -> list:
    out = list(stmts)
    if index is None:
        out.append(stmt)
    else:
        out[index] = stmt
    return out


def _set_param(stmt, key: str, slot: PolicySlot, param: str, new, sources) -> ast.Statement:
    """Move a policy's shorthand values into its body and set ``param`` there."""
    where = new.key.span
    if stmt is not None and stmt.items and isinstance(stmt.items[0], ast.Path):
        name_item = stmt.items[0]
    elif stmt is None and slot.default:
        name_item = ast.Path((slot.default,), where)
    else:
        _fail(f"`{key}` must name its policy before `{param}` can be set", where, sources)
    cls = slot.registry.get(name_item.text)
    if cls is None or cls.param(param) is None:
        names = [p.name for p in cls.params] if cls else []
        _fail(
            f"`{key} {name_item.text}` has no parameter `{param}`",
            where,
            sources,
            help=did_you_mean(param, names),
        )
    body: list[ast.Statement] = []
    items = stmt.items if stmt is not None else (name_item,)
    i = 1
    rep = Reporter(sources)
    for s in cls.shorthand:  # positional values become named ones
        try:
            _, j = s.match(items, i, rep)
        except Shape:
            break
        if s.names() and s.names()[0] != param:
            body.append(
                ast.Statement(
                    ast.Path((s.names()[0],), items[i].span), tuple(items[i:j]), None, items[i].span
                )
            )
        i = j
    body += [s for s in (stmt.body or ()) if s.key.text != param] if stmt is not None else []
    body.append(ast.Statement(ast.Path((param,), where), new.items, None, new.span))
    span = stmt.span if stmt is not None else where
    return ast.Statement(ast.Path((key,), span), (name_item,), tuple(body), span)
