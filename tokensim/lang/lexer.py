"""A Pygments lexer for ``.tsim`` specs, so that documentation (the mkdocs site, Sphinx, any
tool that highlights with Pygments) colours specs as the language reads them.

It is registered under the name ``tsim`` (files ``*.tsim``) through the package's
``pygments.lexers`` entry point: with tokensim installed, a Markdown fence written
```` ```tsim ```` is highlighted. The pieces and their classes are those of
:func:`tokensim.lang.tokens.segments`, the lexer of the report's spec panel, which reads the
text with the language's own grammar.
"""

from __future__ import annotations

from pygments.lexer import Lexer
from pygments.token import Comment, Keyword, Number, Operator, Punctuation, String, Text

from tokensim.lang.tokens import segments

__all__ = ["TsimLexer"]

_TOKEN = {
    "k": Keyword,
    "n": Number,
    "s": String,
    "c": Comment.Single,
    "p": Punctuation,
    "o": Operator,
    "": Text,
}


class TsimLexer(Lexer):
    """tokensim deployment specs (``.tsim``)."""

    name = "tokensim"
    aliases = ["tsim", "tokensim"]
    filenames = ["*.tsim"]

    def get_tokens_unprocessed(self, text):
        pos = 0
        for piece, cls in segments(text):
            yield pos, _TOKEN.get(cls, Text), piece
            pos += len(piece)
