"""Stage 1: ``parse(text, filename) -> Module``.

The grammar is ``dsl/tsim.lark`` (LALR). The transformer only builds frozen
AST nodes; syntax errors become located :class:`Diagnostic` objects raised in
one :class:`CompileError`.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from functools import cache
from importlib import resources

import lark
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from tokensim.lang import ast, limits
from tokensim.lang.diagnostics import CompileError, Diagnostic, Note
from tokensim.lang.source import SourceMap, Span

_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")


def _span(file: str, meta) -> Span:
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


def _quantity(file: str, tok: Token) -> ast.Quantity:
    number = _NUMBER.match(tok)
    assert number is not None  # the QUANTITY terminal starts with a number
    unit = tok[number.end() :].strip()
    return ast.Quantity(float(number.group()), unit, str(tok), _token_span(file, tok))


@v_args(meta=True, inline=True)
class _Build(Transformer):
    """Builds AST nodes from the parse tree; performs no checks."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def start(self, meta, *statements):
        return ast.Module(self.file, tuple(statements))

    def statement(self, meta, key, *rest):
        body = None
        items = list(rest)
        if items and isinstance(items[-1], tuple):
            body = items.pop()
        return ast.Statement(key, tuple(items), body, _span(self.file, meta))

    def body(self, meta, *statements):
        return tuple(statements)

    def path(self, meta, *names):
        return ast.Path(tuple(str(n) for n in names), _span(self.file, meta))

    def string(self, meta, tok):
        raw = str(tok)[1:-1]
        value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), raw)
        return ast.String(value, _token_span(self.file, tok))

    def quantity(self, meta, tok):
        return _quantity(self.file, tok)

    def negative(self, meta, tok):
        q = _quantity(self.file, tok)
        return ast.Quantity(-q.number, q.unit, "-" + q.text, _span(self.file, meta))

    def index(self, meta, first, last=None):
        first = _quantity(self.file, first)
        return (first, _quantity(self.file, last) if last is not None else first)

    def slice(self, meta, name, bounds):
        return ast.Slice(str(name), bounds[0], bounds[1], _span(self.file, meta))

    def call(self, meta, name, *args):
        return ast.Call(str(name), tuple(args), _span(self.file, meta))

    def group(self, meta, expr):
        return ast.Group(expr, _span(self.file, meta))

    def symbol(self, meta, tok):
        return ast.Symbol(str(tok), _token_span(self.file, tok))

    def comma(self, meta):
        return ast.Comma(_span(self.file, meta))

    def _binop(op):  # noqa: N805 - a factory used in the class body
        def build(self, meta, left, right):
            return ast.BinOp(op, left, right, _span(self.file, meta))

        return build

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    def neg(self, meta, operand):
        return ast.Neg(operand, _span(self.file, meta))


@cache
def _parser() -> Lark:
    grammar = resources.files("tokensim.dsl").joinpath("tsim.lark").read_text("utf-8")
    return Lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=_grammar_cache(grammar),
    )


def _grammar_cache(grammar: str) -> str | bool:
    """Where Lark keeps the compiled grammar between runs (a tenth of a short run's time
    to build): ``$XDG_CACHE_HOME/tokensim`` or ``~/.cache/tokensim``, one file per grammar,
    Lark and Python version. Lark checks the grammar's hash on loading and builds afresh
    from a file it cannot use; with no writable folder there is no cache (False)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "tokensim")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    key = hashlib.sha256(f"{grammar}\0{lark.__version__}".encode()).hexdigest()[:16]
    return os.path.join(folder, f"grammar-{key}-py{sys.version_info[0]}{sys.version_info[1]}.lark")


_TOKEN_WORDS = {
    "_SEP": "end of statement",
    "NAME": "a name",
    "QUANTITY": "a number",
    "STRING": "a string",
    "SYMBOL": "`->`, `..` or a comparison",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "DOT": "`.`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "__ANON_0": "`..`",
    "$END": "end of file",
}


def _describe(tok: Token | None) -> str:
    if tok is None or tok.type == "$END":
        return "end of file"
    if tok.type == "_SEP":
        return "end of line" if "\n" in tok else "`;`"
    return f"`{tok}`"


def _expected(names) -> str:
    words = sorted({_TOKEN_WORDS.get(n, n.lower()) for n in names})
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def _open_braces(text: str, upto: int, file: str) -> list[Span]:
    """Positions of '{' not closed before offset ``upto`` (comments and strings skipped)."""
    stack: list[Span] = []
    line, col, i = 1, 1, 0
    in_string = False
    while i < min(upto, len(text)):
        c = text[i]
        if in_string:
            if c == "\\":
                i, col = i + 1, col + 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "/#" and (c == "#" or text.startswith("//", i)):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif c == "{":
            stack.append(Span(file, line, col, line, col + 1))
        elif c == "}" and stack:
            stack.pop()
        if c == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return stack


def _syntax_error(err: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line, col = err.line, err.column
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        span = Span(file, line, col, line, col + 1)
        hint = "strings are written in double quotes" if char == "'" else None
        return Diagnostic(f"unexpected character `{char}`", span, help=hint)
    tok = getattr(err, "token", None)
    expected = getattr(err, "expected", None) or getattr(err, "accepts", None) or set()
    if isinstance(err, UnexpectedEOF) or (tok is not None and tok.type == "$END"):
        lines = text.splitlines() or [""]
        end = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        notes = tuple(
            Note("this `{` is never closed", s) for s in _open_braces(text, len(text), file)[-1:]
        )
        return Diagnostic("unexpected end of file", end, notes, help="a `}` is missing")
    assert isinstance(err, UnexpectedToken)
    if tok.type == "_SEP":
        # point at the line end rather than the newline's own position on the next line
        span = Span(file, line, col, line, col + 1)
    else:
        span = _token_span(file, tok)
    notes: tuple[Note, ...] = ()
    help = f"expected {_expected(expected)}" if expected else None
    if tok.type == "RBRACE" and "RBRACE" not in expected:
        help = "this `}` has no `{` to close"
    elif tok.type in ("PLUS", "STAR", "SLASH") and tok.type not in expected:
        help = (
            "values cannot be combined with arithmetic here; expressions are only "
            "allowed inside a call, as in a routing rule `min(kv_used + 0.1 * queued)`"
        )
    return Diagnostic(f"unexpected {_describe(tok)}", span, notes, help=help)


def parse(text: str, filename: str = "<string>", sources: SourceMap | None = None) -> ast.Module:
    """Parse .tsim ``text`` into a :class:`~tokensim.lang.ast.Module`.

    ``filename`` is the name spans carry. Raises :class:`CompileError` with a
    located diagnostic on a syntax error. ``sources``, when given, records the
    text so diagnostics of later stages can quote it.
    """
    sources = sources if sources is not None else SourceMap()
    sources.add(filename, text)
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise CompileError([_syntax_error(err, text, filename)], sources) from None
    beyond = _beyond_limits(tree, filename)
    if beyond:
        raise CompileError(beyond, sources)
    return _Build(filename).transform(tree)


def _beyond_limits(tree: Tree, file: str) -> list[Diagnostic]:
    """What in the parse tree exceeds the language's limits (lang/limits.py): nesting
    deeper than :data:`limits.DEPTH` (blocks, brackets, calls, operators), names longer
    than :data:`limits.NAME`. Walked without recursion, before anything recurses on it."""
    out: list[Diagnostic] = []
    stack: list[tuple[Tree | Token, int]] = [(tree, 0)]
    deep = False
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Token):
            if node.type == "NAME" and len(node) > limits.NAME:
                out.append(
                    Diagnostic(
                        f"a name of {len(node)} characters: tokensim takes at most {limits.NAME}",
                        _token_span(file, node),
                    )
                )
            continue
        # a statement's body adds one level (statement -> body -> statement counts once)
        level = depth + (node.data not in ("body", "start", "path"))
        if level > limits.DEPTH and not deep:
            deep = True
            out.append(
                Diagnostic(
                    f"nested more than {limits.DEPTH} deep (blocks, brackets, calls and "
                    "operators inside one another)",
                    _span(file, node.meta),
                    help="the limits are listed in the language reference (Limits)",
                )
            )
            continue
        stack.extend((child, level) for child in node.children)
    return out
