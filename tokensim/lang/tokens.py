"""A ``.tsim`` text cut into classified pieces, for highlighting it (the report's spec panel,
:mod:`tokensim.report.highlight`; the docs' Pygments lexer, :mod:`tokensim.lang.lexer`).

``segments(text)`` lexes ``text`` with the language's own Lark grammar (``dsl/tsim.lark``),
so what is classed as a number, a string or a comment is exactly what the parser reads as
one. The grammar ignores comments and blanks (``%ignore``), so the lexer never returns them:
the gaps between tokens are whitespace, or whitespace then a comment running to the end of
the line. The statement separator ``_SEP`` (``;``, newlines and the comment lines between
statements) is split the same way. Lexing uses Lark's basic lexer, which cuts the text where
the parser's contextual lexer does (only the name of ``..`` differs, and both names get the
operator class).

Classes, kept short because a spec has many tokens: ``k`` statement key (the first name or
dotted path of a statement), ``n`` number with its unit, ``s`` string, ``c`` comment, ``p``
punctuation, ``o`` operator; other names are left plain (``""``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources

from lark import Lark
from lark.exceptions import LarkError

__all__ = ["segments"]

# The terminals of the grammar by the class they get; the rest (NAME, DOT) are
# decided by position, see _classify.
_BY_TYPE = {"QUANTITY": "n", "STRING": "s", "SYMBOL": "o"}
_PUNCTUATION = {"{", "}", ",", "(", ")", "[", "]"}

# Inside a gap (or a separator) a comment starts at `//` or `#` and runs to the
# end of its line; what remains is blanks, newlines and `;`.
_PIECES = re.compile(r"(?P<c>//[^\n]*|#[^\n]*)|(?P<p>;)|(?P<w>[^;/#]+|/)")


@cache
def _lexer() -> Lark:
    grammar = resources.files("tokensim.dsl").joinpath("tsim.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", lexer="basic")


@cache
def _classes() -> dict[str, str]:
    """Terminal name -> class, from the grammar's own terminal definitions."""
    out: dict[str, str] = {}
    for term in _lexer().terminals:
        pattern = term.pattern
        if term.name in _BY_TYPE:
            out[term.name] = _BY_TYPE[term.name]
        elif pattern.type == "str" and pattern.value in _PUNCTUATION:
            out[term.name] = "p"
        elif pattern.type == "str" and pattern.value == ".":
            out[term.name] = "dot"
        elif pattern.type == "str":
            out[term.name] = "o"  # + - * / ..
    return out


def _gap(text: str) -> Iterator[tuple[str, str]]:
    """Split whitespace, ``;`` and comments (a gap or a separator) into pieces."""
    for m in _PIECES.finditer(text):
        yield m.group(), "" if m.lastgroup == "w" else m.lastgroup


def _tokens(text: str, offset: int) -> Iterator[tuple[int, int, str]]:
    """(start, end, terminal) of each token of ``text[offset:]``, positions in ``text``."""
    for tok in _lexer().lex(text[offset:]):
        yield offset + tok.start_pos, offset + tok.end_pos, tok.type


def segments(text: str) -> list[tuple[str, str]]:
    """``text`` cut into (piece, class) pairs whose pieces concatenate to ``text``.

    A run the lexer cannot read is left plain up to the end of its line, and
    lexing starts again on the next line.
    """
    classes = _classes()
    out: list[tuple[str, str]] = []
    pos = 0
    # Where a statement key can be: "start" (a name here starts a statement),
    # "name" (just after a key name), "dot" (just after a `.` in a key path).
    state: str | None = "start"
    while pos < len(text):
        try:
            for start, end, kind in _tokens(text, pos):
                if start > pos:
                    out.extend(_gap(text[pos:start]))
                piece, cls = text[start:end], classes.get(kind, "")
                if kind == "_SEP":
                    out.extend(_gap(piece))
                    state = "start"
                elif kind == "NAME":
                    key = state in ("start", "dot")
                    out.append((piece, "k" if key else ""))
                    state = "name" if key else None
                elif cls == "dot":
                    out.append((piece, "k" if state == "name" else ""))
                    state = "dot" if state == "name" else None
                else:
                    out.append((piece, cls))
                    state = "start" if piece == "{" else None
                pos = end
            if pos < len(text):
                out.extend(_gap(text[pos:]))
            pos = len(text)
        except LarkError:
            stop = text.find("\n", pos)
            stop = len(text) if stop < 0 else stop + 1
            out.append((text[pos:stop], ""))
            pos, state = stop, "start"
    return out
