"""Spec highlighting: exact round trip, classes from the grammar's own tokens, line anchors."""

import re
from html import unescape
from pathlib import Path

import pytest
from conftest import ROOT, SPECS

from tokensim.report.highlight import CSS, highlight

STD = sorted((ROOT / "dsl" / "std").glob("*.tsim"))
ALL = SPECS + STD
TAG = re.compile(r"<[^>]*>")


def plain(html: str) -> str:
    inner = html.removeprefix('<pre class="spec"><code>').removesuffix("</code></pre>")
    return unescape(TAG.sub("", inner))


def spans(html: str, cls: str) -> list[str]:
    return [unescape(m) for m in re.findall(rf'<span class="{cls}">([^<]*)</span>', html)]


@pytest.fixture(params=ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def spec(request) -> Path:
    return request.param


def test_round_trip_is_exact(spec):
    text = spec.read_text("utf-8")
    html = highlight(text)
    assert html.startswith('<pre class="spec"><code>') and html.endswith("</code></pre>")
    assert plain(html) == text


def test_every_line_has_an_anchor(spec):
    text = spec.read_text("utf-8")
    html = highlight(text)
    ids = re.findall(r'<span class="line" id="L(\d+)">', html)
    assert ids == [str(n) for n in range(1, len(text.splitlines()) + 1)]


def test_comments_are_classified(spec):
    text = spec.read_text("utf-8")
    comments = spans(highlight(text), "c")
    expected = [m.group() for m in re.finditer(r"//[^\n]*", text) if '"' not in m.group()]
    assert comments and all(c.startswith(("//", "#")) for c in comments)
    assert set(expected) <= set(comments)
    assert not any("//" in s for s in spans(highlight(text), "k"))


def test_numbers_keep_their_units():
    html = highlight(
        "link L { bandwidth 3.35 TB/s; latency 2 us }\nworkload { arrivals poisson 12/s }\n"
        "gpu G { memory 80 GB; util 90%; x -5 }\n"
    )
    assert spans(html, "n") == ["3.35 TB/s", "2 us", "12/s", "80 GB", "90%", "5"]
    assert spans(html, "o") == ["-"]


def test_statement_keys_are_the_first_name_of_each_statement():
    html = highlight(
        'name "x"\ncluster {\n  node n0 { gpus H100_SXM x 8; link NVLINK4 }\n}\n'
        "sweep { workload.arrivals.rate in 10/s .. 40/s step 5/s }\n"
        "deployment { route decode by min(kv_used + 0.1 * queued) }\n"
    )
    assert spans(html, "k") == [
        "name",
        "cluster",
        "node",
        "gpus",
        "link",
        "sweep",
        "workload",
        ".",
        "arrivals",
        ".",
        "rate",
        "deployment",
        "route",
    ]
    assert spans(html, "s") == ['"x"']
    assert spans(html, "p") == ["{", "{", ";", "}", "}", "{", "}", "{", "(", ")", "}"]
    assert spans(html, "o") == ["..", "+", "*"]
    assert "n0" not in spans(html, "k") and "H100_SXM" not in spans(html, "k")


def test_keys_in_shipped_specs():
    html = highlight((ROOT / "specs" / "disaggregated.tsim").read_text("utf-8"))
    keys = set(spans(html, "k"))
    assert {"cluster", "node", "gpus", "network", "pool", "batching", "kv", "route"} <= keys
    assert not keys & {"n0", "prefill", "decode", "llama3_1_70b", "continuous"}
    assert {"12/s", "500 ms", "64 GB", "0.90"} <= set(spans(html, "n"))


def test_comment_lines_between_statements_and_hash_comments():
    text = "a 1 // one\n\n  # two\n// three\nb 2; c 3 # four\n"
    html = highlight(text)
    assert spans(html, "c") == ["// one", "# two", "// three", "# four"]
    assert spans(html, "k") == ["a", "b", "c"]
    assert plain(html) == text


def test_text_is_escaped():
    text = 'name "<b>&amp;</b>" // <script>alert(1)</script>\n'
    html = highlight(text)
    assert "<script>" not in html and "<b>" not in html
    assert plain(html) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "a\r\nb\r\n",
        "no newline at end",
        "a @ b { c 1 GB }\nx 2/s // still lexed\n",
        'unterminated "string\nnext 1\n',
        "}}}{{ ;;; -> .. ,\n\n",
        "\x00\x01 é ü ✓ `~!$^&|?\\\n",
    ],
)
def test_never_raises_and_round_trips(text):
    html = highlight(text)
    assert plain(html) == text


def test_lexing_resumes_after_a_bad_line():
    html = highlight("a @ b\nx 2/s // ok\n")
    assert spans(html, "n") == ["2/s"] and spans(html, "c") == ["// ok"]


def test_css_covers_every_class():
    for cls in ("k", "n", "s", "c", "p", "o", "line"):
        assert f".spec .{cls}" in CSS
    assert ":target" in CSS


def test_the_pygments_lexer_is_registered_and_colours_as_the_report_does():
    """`tsim` fences in the docs: Pygments finds the lexer through the package's entry point,
    and it gives the classes of the report's panel, with the text intact."""
    pygments = pytest.importorskip("pygments", reason="Pygments comes with the test extras")
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
    from pygments.token import Comment, Keyword, Number, String

    from tokensim.lang.lexer import TsimLexer

    lexer = get_lexer_by_name("tsim")
    assert isinstance(lexer, TsimLexer) and isinstance(get_lexer_for_filename("a.tsim"), TsimLexer)
    text = 'model m from "config.json"  // a model\npool p { tp 2; kv { block 16 tokens } }\n'
    tokens = list(lexer.get_tokens(text))
    assert "".join(v for _, v in tokens) == text
    kinds = {v: t for t, v in tokens}
    assert kinds["model"] is Keyword and kinds["tp"] is Keyword and kinds["block"] is Keyword
    assert kinds["16 tokens"] is Number and kinds['"config.json"'] is String
    assert kinds["// a model"] in Comment
    assert kinds["m"] is not Keyword  # a name, not a statement key
    assert pygments.highlight(text, lexer, HtmlFormatter()).count("<span") > 5
