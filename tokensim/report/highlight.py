"""Syntax highlighting of a ``.tsim`` spec for the HTML report.

``highlight(text) -> str`` lexes ``text`` with the language's own Lark grammar
(``dsl/tsim.lark``), so what is coloured as a number, a string or a comment is
exactly what the parser reads as one. The grammar ignores comments and blanks
(``%ignore``), so the lexer never returns them: the gaps between tokens are
whitespace, or whitespace then a comment running to the end of the line. The
statement separator ``_SEP`` (``;``, newlines and the comment lines between
statements) is split the same way. Lexing uses Lark's basic lexer, which cuts
the text where the parser's contextual lexer does (only the name of ``..``
differs, and both names get the operator class).

Classes, kept short because a spec has many tokens: ``k`` statement key (the
first name or dotted path of a statement), ``n`` number with its unit, ``s``
string, ``c`` comment, ``p`` punctuation, ``o`` operator; other names are left
plain. Every line is wrapped in ``<span class="line" id="L12">`` so that the
report can link to ``#L12``; :data:`CSS` numbers the lines with a counter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from html import escape
from importlib import resources

from lark import Lark
from lark.exceptions import LarkError

__all__ = ["CSS", "highlight"]

CSS = """\
.spec { counter-reset: line; background: #f8f8f6; border: 1px solid #e2e2dc;
  border-radius: 4px; padding: 0.6em 0.8em 0.6em 0; overflow-x: auto;
  font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: #1f2328; }
.spec .line { counter-increment: line; display: inline-block; min-width: 100%; }
.spec .line::before { content: counter(line); display: inline-block; width: 3.2em;
  margin-right: 1em; padding-right: 0.4em; text-align: right; color: #9a9a94;
  border-right: 1px solid #e2e2dc; user-select: none; -webkit-user-select: none; }
.spec .line:target { background: #fff1b8; }
.spec .k { color: #0550ae; font-weight: 600; }
.spec .n { color: #8a4600; }
.spec .s { color: #116329; }
.spec .c { color: #6e7781; font-style: italic; }
.spec .p { color: #57606a; }
.spec .o { color: #a0111f; }
"""

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


def _segments(text: str) -> list[tuple[str, str]]:
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


def _html(segments: list[tuple[str, str]]) -> str:
    """The ``<pre>`` of ``segments``, one ``<span class="line">`` per line."""
    lines: list[list[str]] = [[]]
    for piece, cls in segments:
        for k, part in enumerate(piece.split("\n")):
            if k:
                lines.append([])
            if part:
                text = escape(part, quote=False)
                lines[-1].append(f'<span class="{cls}">{text}</span>' if cls else text)
    trailing = ""
    if not lines[-1]:  # text ending in a newline (or empty) has no line after it
        lines.pop()
        trailing = "\n" if lines else ""
    body = "\n".join(
        f'<span class="line" id="L{n}">{"".join(parts)}</span>'
        for n, parts in enumerate(lines, start=1)
    )
    return f'<pre class="spec"><code>{body}{trailing}</code></pre>'


def highlight(text: str) -> str:
    """The HTML of spec ``text``: ``<pre class="spec"><code>`` with one
    ``<span class="line" id="L<n>">`` per line (``n`` from 1) holding spans of
    the classes described in the module docstring. Removing the tags and
    unescaping gives back ``text`` exactly. Never raises: text the lexer
    cannot read is shown plain from the point where it stops.
    """
    try:
        segments = _segments(text)
    except Exception:  # a bug here must not cost the user the report
        segments = [(text, "")]
    return _html(segments)
