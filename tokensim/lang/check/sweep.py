"""The ``sweep`` block: paths into the spec and the values they take.

A path names statements by key, and repeated labelled blocks by label:
``workload.arrivals.rate``, ``deployment.decode.tp``,
``deployment.decode.batching.max_seqs``, ``deployment.decode.kv.block``.
Each value is checked against what that statement (or policy parameter) takes. A
statement of several values that starts with a name (``model <model> [<dtype>]``,
``gpus <gpu> x <n>``) is swept on that name; its other values stay as written.

Routes are named by their pool (``deployment.route``, ``deployment.route.decode``), a
repeated statement written once by its key (``cluster.network``), and ``*`` stands for any
one name (``cluster.*.gpus``). ``path in { ... }`` lists whole alternatives, each checked
where it is written: a statement less its key (``static { max_seqs 32 }``), or for a block
a name and the block's content (``deployment in { split { pool ... } }``).
"""

from __future__ import annotations

import math

from tokensim import ir
from tokensim.lang import ast
from tokensim.lang.check.env import Env
from tokensim.lang.diagnostics import Note, Reporter, did_you_mean, one_of
from tokensim.lang.schema import (
    BAD,
    Block,
    Opt,
    Ref,
    Shape,
    Slot,
    bind,
    describe_item,
    keyed,
    keyed_items,
    labelled,
    match_slots,
    single,
)
from tokensim.lang.source import Span
from tokensim.lang.units import MULTIPLIERS, UNITS, Dim, UnitError, convert, with_unit
from tokensim.policies import PolicySlot

MAX_POINTS = 100_000


def resolve(parts: tuple[str, ...], statements, block: Block) -> tuple[Slot | None, str]:
    """The slot that ``parts`` addresses, or (None, reason)."""
    where = "the spec"
    stmts = list(statements)
    i = 0
    while i < len(parts):
        seg = parts[i]
        attr = block.attr(seg)
        if keyed(attr) and len(parts) - i <= 2:  # `route`, `route.<pool>`: its policy
            return attr.slots[-1], ""
        index = labelled(stmts, block, seg)
        if attr is not None and (not attr.repeat or single(attr, stmts)):
            found = [s for s in stmts if s.key.text == seg]
            stmt = found[0] if found else None
        elif index is not None:
            stmt = stmts[index]
            attr = block.attr(stmt.key.text)
        else:
            names = [a.key for a in block.attrs if not a.repeat]
            names += [
                s.label
                for s in stmts
                if s.label and block.attr(s.key.text) and block.attr(s.key.text).repeat
            ]
            hint = did_you_mean(seg, names)
            return None, f"{where} has no `{seg}`" + (f"; {hint}" if hint else "")
        rest = parts[i + 1 :]
        if (
            attr.body is not None
            and not attr.custom_body
            and (rest or attr.repeat or not attr.slots)
        ):
            if not rest:
                return None, f"`{'.'.join(parts)}` is a block; name one of its statements"
            block = attr.body
            stmts = list(stmt.body or ()) if stmt is not None else []
            where = f"`{'.'.join(parts[: i + 1])}`"
            i += 1
            continue
        value_slots = [s for s in attr.slots if s.names()]
        if not value_slots:
            return None, f"`{seg}` has no value to sweep"
        head = value_slots[0]
        if isinstance(head, Opt) and len(head.slots) == 1:  # `engine [<name>]`: the name
            head = head.slots[0]
        if isinstance(head, PolicySlot) and rest:
            if len(rest) > 1:
                return None, f"`{'.'.join(parts)}` goes past a parameter"
            if stmt is not None and stmt.items and isinstance(stmt.items[0], ast.Path):
                cls = head.registry.get(stmt.items[0].text)
            elif stmt is None and head.default:
                cls = head.registry.get(head.default)
            else:
                return None, f"`{seg}` must be given in the spec to sweep its parameter `{rest[0]}`"
            if cls is None:
                return None, f"`{seg}` names no known {head.registry.what}"
            param = cls.param(rest[0])
            if param is None:
                names = [p.name for p in cls.params]
                hint = did_you_mean(rest[0], names)
                return None, (
                    f"{head.registry.what} `{cls.name}` has no parameter `{rest[0]}`"
                    f" (it takes {one_of(names)})" + (f"; {hint}" if hint else "")
                )
            return param.slot, ""
        if rest:
            return None, f"`{seg}` has no `{rest[0]}`"
        if len(value_slots) > 1 and not isinstance(head, Ref):
            return None, f"`{seg}` takes several values ({attr.usage()}); it cannot be swept"
        return head, ""
    return None, "empty path"


def statement_at(parts: tuple[str, ...], statements, top: Block):
    """The statement schema (:class:`Attr`) that ``parts`` ends on and the block that holds
    it, for ``path in { ... }``; or (None, reason). The path goes through blocks by key,
    and through repeated labelled blocks (pools, nodes) by label."""
    block, stmts = top, list(statements)
    for i, seg in enumerate(parts):
        attr = block.attr(seg)
        if keyed(attr) and len(parts) - i <= 2:
            return (attr, block, parts[i + 1] if i + 1 < len(parts) else None), ""
        if i == len(parts) - 1:
            index = labelled(stmts, block, seg) if attr is None else None
            if index is not None:  # a labelled block (a pool, a node): swept with its parent
                kind, parent = stmts[index].key.text, ".".join(parts[:-1])
                return None, (
                    f"`{'.'.join(parts)}` is a `{kind}` block: sweep its statements "
                    f"(`{'.'.join(parts)}.tp in 1, 2`), or whole alternatives of "
                    f"`{parent}` (`{parent} in {{ a {{ {kind} {seg} {{ ... }} ... }} }}`)"
                )
            if attr is None or (attr.repeat and not single(attr, stmts)):
                names = [a.key for a in block.attrs if not a.repeat]
                hint = did_you_mean(seg, names)
                return None, f"`{'.'.join(parts)}` is no statement of its block" + (
                    f"; {hint}" if hint else ""
                )
            return (attr, block, None), ""
        if attr is not None and not attr.repeat and attr.body is not None and not attr.custom_body:
            stmt = next((s for s in stmts if s.key.text == seg), None)
        else:
            index = labelled(stmts, block, seg)
            if index is None:
                return None, f"the spec has no `{'.'.join(parts[: i + 1])}`"
            stmt = stmts[index]
            attr = block.attr(stmt.key.text)
        block, stmts = attr.body, list(stmt.body or ()) if stmt is not None else []
    return None, "empty path"


def _alternatives(inner: ast.Statement, statements, top: Block, env: Env) -> ir.Axis | None:
    """``path in { alternative; ... }``: each alternative is the whole statement at ``path``
    as it would be written there, less its key (``static { max_seqs 32 }`` for a
    ``batching``, ``llama3_1_70b fp8`` for a ``model``), or, for a block (``deployment``,
    ``kv``), a name for the table and the block's new content (``split { pool ... }``)."""
    rep = env.rep
    found, why = statement_at(inner.key.parts, statements, top)
    if found is None:
        rep.error(f"cannot sweep `{inner.key.text}`: {why}", inner.key.span)
        return None
    attr, block, name = found
    key = attr.key
    whole_block = attr.body is not None and not attr.custom_body and not attr.slots
    source = rep.sources.get(inner.span.file)
    values, texts, labels = [], [], []
    ok = True
    for alt in inner.body:
        if whole_block:
            if alt.items or alt.body is None or len(alt.key.parts) != 1:
                rep.error(
                    f"an alternative for the block `{inner.key.text}` is a name and its "
                    "content: `<name> { ... }`",
                    alt.span,
                )
                ok = False
                continue
            written = ast.Statement(ast.Path((key,), alt.key.span), (), alt.body, alt.span)
            label = alt.key.text
            text = _between(source, alt.key.span, alt.span) if source else None
        else:
            head = ast.Path(alt.key.parts, alt.key.span)
            items = (
                (*keyed_items(attr, name, alt.key.span), head, *alt.items)
                if keyed(attr)
                else (head, *alt.items)
            )
            written = ast.Statement(ast.Path((key,), alt.key.span), items, alt.body, alt.span)
            text = _between(source, None, alt.span) if source else None
            label = " ".join(text.split()) if text else alt.key.text
        if text is None:
            rep.error("sweep alternatives must be written in a file", alt.span)
            return None
        before = len(rep.diagnostics)
        depth = len(inner.key.parts) - (2 if name else 1)
        where = f"`{'.'.join(inner.key.parts[:depth]) or 'the spec'}`"
        bind([written], block, rep, where, alt.span, partial=True)
        value_slots = [s for s in attr.slots if s.names()]
        if not whole_block and value_slots and isinstance(value_slots[0], Ref):
            if _check_one(head, value_slots[0], rep, env) is BAD:
                ok = False
        if len(rep.diagnostics) > before:
            ok = False
            continue
        if label in labels:
            rep.error(f"`{label}` is given twice", alt.span)
            ok = False
            continue
        values.append(label)
        texts.append(text)
        labels.append(label)
    if not ok:
        return None
    if not values:
        rep.error("`in { }` needs alternatives", inner.span)
        return None
    return ir.Axis(inner.key.text, tuple(values), tuple(texts), None, inner.span, tuple(labels))


def _between(source, start: Span | None, span: Span) -> str:
    """The text of ``span`` in ``source``, from the end of ``start`` if given."""
    lines = source.text.splitlines(keepends=True)
    offset = [0]
    for line in lines:
        offset.append(offset[-1] + len(line))

    def at(line: int, col: int) -> int:
        return offset[line - 1] + col - 1

    begin = at(start.end_line, start.end_col) if start else at(span.line, span.col)
    return source.text[begin : at(span.end_line, span.end_col)].strip()


def _values(stmt: ast.Statement, slot: Slot, env: Env) -> tuple[list, list[str]] | None:
    rep = env.rep
    items = stmt.items[1:]
    if not items:
        rep.error("`in` needs values", stmt.items[0].span)
        return None
    ranged = len(items) >= 3 and isinstance(items[1], ast.Symbol) and items[1].text == ".."
    if ranged:
        return _range(items, slot, rep)
    values, texts = [], []
    expect_value = True
    for item in items:
        if isinstance(item, ast.Comma) and not expect_value:
            expect_value = True
            continue
        if not expect_value or isinstance(item, ast.Comma):
            rep.error(
                f"unexpected {describe_item(item)} in sweep values",
                item.span,
                Note("usage: <path> in <value>, <value>, ... | <path> in <a> .. <b> step <c>"),
            )
            return None
        value = _check_one(item, slot, rep, env)
        if value is BAD:
            return None
        values.append(value)
        texts.append(_source_text(item))
        expect_value = False
    return values, texts


def _source_text(item) -> str:
    """``item`` written out again, as a ``--set`` value of its sweep point takes it."""
    if isinstance(item, ast.String):
        escaped = item.value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'
    return getattr(item, "text", None) or describe_item(item).strip("`")


def _check_one(item, slot: Slot, rep: Reporter, env: Env | None = None):
    try:
        got, j = match_slots((slot,), (item,), 0, rep)
    except Shape:
        rep.error(
            f"{describe_item(item)} is not a valid value here",
            item.span,
            Note(f"expected {slot.usage()}"),
        )
        return BAD
    value = got.get(slot.name, BAD) if slot.names() else BAD
    if isinstance(slot, PolicySlot) and value is not BAD:
        return value[0].name  # (class, shorthand values, spans, span): the policy's name
    if isinstance(slot, Ref) and value is not BAD and env is not None:
        return value.value if env.lookup(slot.kind, value) is not None else BAD
    return getattr(value, "value", value) if value is not BAD else BAD


def _range(items, slot: Slot, rep: Reporter):
    usage = Note("usage: <path> in <first> .. <last> step <step>")
    if (
        len(items) != 5
        or not isinstance(items[3], ast.Path)
        or items[3].text != "step"
        or not all(isinstance(items[k], ast.Quantity) for k in (0, 2, 4))
    ):
        rep.error(
            "a range is `<first> .. <last> step <step>`", items[0].span.to(items[-1].span), usage
        )
        return None
    first, last, step = items[0], items[2], items[4]
    a, b = _check_one(first, slot, rep), _check_one(last, slot, rep)
    if BAD in (a, b):
        return None
    dim = UNITS[first.unit][0] if first.unit in UNITS else Dim.COUNT
    if first.unit and not step.unit:
        rep.error(
            f"the step needs a unit, like the range (`{first.unit}`)",
            step.span,
            help=f"write `step {with_unit(step.number, first.unit)}`",
        )
        return None
    try:
        s = convert(step.number, step.unit, dim) if step.unit or dim is Dim.COUNT else step.number
    except UnitError as err:
        rep.error(f"{err} for the step", step.span, help=err.help)
        return None
    if s <= 0 or b < a:
        rep.error("a range goes up: first <= last and step > 0", items[0].span.to(step.span))
        return None
    span = (b - a) / s
    count = math.floor(span + 1e-9) + 1 if math.isfinite(span) else math.inf
    if count > MAX_POINTS:
        rep.error(f"this range has more than {MAX_POINTS} values", step.span)
        return None
    values = [a + k * s for k in range(count)]
    values = [int(round(v)) if isinstance(a, int) and isinstance(b, int) else v for v in values]
    factor = UNITS[first.unit][1] if first.unit in UNITS else MULTIPLIERS.get(first.unit, 1)
    texts = [with_unit(v / factor, first.unit) if first.unit else f"{v:g}" for v in values]
    return values, texts


def sweep(stmt: ast.Statement, statements, top: Block, env: Env) -> ir.Sweep | None:
    rep = env.rep
    axes: list[ir.Axis] = []
    zipped: list[tuple[ir.Axis, ...]] = []
    ok = True

    def axis(inner: ast.Statement) -> ir.Axis | None:
        if not inner.items or not (
            isinstance(inner.items[0], ast.Path) and inner.items[0].text == "in"
        ):
            rep.error(
                f"expected `in` after `{inner.key.text}`",
                inner.key.span,
                Note("usage: <path> in <value>, ... | <path> in <a> .. <b> step <c>"),
            )
            return None
        if inner.body is not None and len(inner.items) == 1:
            return _alternatives(inner, statements, top, env)
        parts = inner.key.parts
        if "*" in parts:  # checked on the first path it matches; set on all of them
            from tokensim.lang.override import matching, nearest, settable

            known = settable(statements)
            matches = matching(parts, known)
            if not matches:
                near = nearest(known, parts)
                rep.error(
                    f"cannot sweep `{inner.key.text}`: it matches nothing",
                    inner.key.span,
                    help="this spec can sweep " + ", ".join(f"`{p}`" for p in near)
                    if near
                    else None,
                )
                return None
            parts = tuple(matches[0].split("."))
        slot, why = resolve(parts, statements, top)
        if slot is None:
            rep.error(f"cannot sweep `{inner.key.text}`: {why}", inner.key.span)
            return None
        got = _values(inner, slot, env)
        if got is None:
            return None
        kind = slot.kind if isinstance(slot, Ref) else None
        return ir.Axis(inner.key.text, tuple(got[0]), tuple(got[1]), kind, inner.span)

    for inner in stmt.body or ():
        if inner.key.text == "zip":
            group = [axis(s) for s in inner.body or ()]
            if None in group:
                ok = False
                continue
            if len(group) < 2:
                rep.error("`zip` pairs at least two axes", inner.span)
                ok = False
                continue
            lengths = {len(a.values) for a in group}
            if len(lengths) > 1:
                rep.error(
                    "the axes of a `zip` must have as many values each",
                    inner.span,
                    *(Note(f"`{a.path}` has {len(a.values)}", a.span) for a in group),
                )
                ok = False
                continue
            zipped.append(tuple(group))
        else:
            a = axis(inner)
            if a is None:
                ok = False
            else:
                axes.append(a)
    paths = [a.path for a in axes] + [a.path for g in zipped for a in g]
    for p in sorted({p for p in paths if paths.count(p) > 1}):
        rep.error(f"`{p}` is swept twice", stmt.span)
        ok = False
    if not ok:
        return None
    if not axes and not zipped:
        rep.error(
            "the sweep block has no axis",
            stmt.span,
            help="e.g. `workload.arrivals.rate in 4/s .. 32/s step 4/s`",
        )
        return None
    points = math.prod(len(a.values) for a in axes) * math.prod(len(g[0].values) for g in zipped)
    return ir.Sweep(tuple(axes), tuple(zipped), points, stmt.span)
