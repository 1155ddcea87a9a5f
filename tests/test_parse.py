"""The parser: the uniform statement shape, items, expressions, located syntax errors."""

import pytest

from tokensim.lang import ast
from tokensim.lang.diagnostics import CompileError
from tokensim.lang.parse import parse


def test_statements_items_and_bodies():
    module = parse('import "std/x"\ncluster {\n  node n0 { gpus G x 8; link L }\n}\n', "f.tsim")
    imp, cluster = module.statements
    assert imp.key.text == "import" and imp.items[0].value == "std/x"
    node = cluster.body[0]
    assert node.label == "n0"
    gpus = node.body[0]
    assert [type(i).__name__ for i in gpus.items] == ["Path", "Path", "Quantity"]
    assert gpus.items[2].number == 8 and gpus.items[2].unit == ""
    assert gpus.span.line == 3 and gpus.span.col == 13


@pytest.mark.parametrize(
    "text, number, unit",
    [
        ("x 80 GB", 80, "GB"),
        ("x 3.35TB/s", 3.35, "TB/s"),
        ("x 12/s", 12, "/s"),
        ("x 90%", 90, "%"),
        ("x 1e9", 1e9, ""),
        ("x 2.5 $/h", 2.5, "$/h"),
        ("x -3", -3, ""),
    ],
)
def test_quantities(text, number, unit):
    item = parse(text).statements[0].items[0]
    assert isinstance(item, ast.Quantity)
    assert (item.number, item.unit) == (number, unit)


def test_ranges_slices_arrows_and_commas():
    stmt = parse("on n0[0..3], n1").statements[0]
    assert isinstance(stmt.items[0], ast.Slice)
    assert (stmt.items[0].first.number, stmt.items[0].last.number) == (0, 3)
    assert isinstance(stmt.items[1], ast.Comma)
    stmt = parse("lengths uniform 100..2000 -> 10..500").statements[0]
    assert [getattr(i, "text", None) for i in stmt.items[1:]] == [
        "100",
        "..",
        "2000",
        "->",
        "10",
        "..",
        "500",
    ]


def test_expression_precedence():
    call = parse("route d by min(a + 0.1 * b - c / 2)").statements[0].items[2]
    assert isinstance(call, ast.Call)
    expr = call.args[0]
    # ((a + (0.1 * b)) - (c / 2))
    assert expr.op == "-" and expr.left.op == "+" and expr.left.right.op == "*"
    assert expr.right.op == "/"


def test_comments_and_separators():
    module = parse("// c\n# c\na 1; b 2 // trailing\n\n\nc 3\n")
    assert [s.key.text for s in module.statements] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "text, message, line, col",
    [
        ("a {\n b 1\n", "unexpected end of file", 2, 5),
        ("a 1 }\n", "unexpected `}`", 1, 5),
        ("a 1 @\n", "unexpected character `@`", 1, 5),
        ("a { b 1 c }\n", None, None, None),
    ],
)
def test_syntax_errors_are_located(text, message, line, col):
    if message is None:
        parse(text)  # `b 1 c` is one statement: items are free; meaning is checked later
        return
    with pytest.raises(CompileError) as info:
        parse(text, "s.tsim")
    d = info.value.diagnostics[0]
    assert d.message == message
    assert (d.span.line, d.span.col) == (line, col)


def test_the_compiled_grammar_is_cached_and_a_bad_cache_file_is_rebuilt(tmp_path, monkeypatch):
    from tokensim.lang import parse as stage

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stage._parser.cache_clear()
    try:
        stage._parser()
        (cached,) = (tmp_path / "tokensim").iterdir()
        assert cached.stat().st_size > 0
        cached.write_bytes(b"not a pickle\n")  # corrupt: Lark builds the grammar again
        stage._parser.cache_clear()
        module = stage._parser().parse('name "x"\n')
        assert module is not None
    finally:
        stage._parser.cache_clear()


def test_no_writable_cache_folder_means_no_cache(tmp_path, monkeypatch):
    from tokensim.lang import parse as stage

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file, not a folder
    assert stage._grammar_cache("grammar") is False
