"""Syntax highlighting of a ``.tsim`` spec for the HTML report.

``highlight(text) -> str`` colours the pieces :func:`tokensim.lang.tokens.segments` cuts
``text`` into (classes ``k`` statement key, ``n`` number, ``s`` string, ``c`` comment,
``p`` punctuation, ``o`` operator). Every line is wrapped in ``<span class="line"
id="L12">`` so that the report can link to ``#L12``; :data:`CSS` numbers the lines with a
counter.
"""

from __future__ import annotations

from html import escape

from tokensim.lang.tokens import segments as _segments

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
