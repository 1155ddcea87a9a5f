"""Units: conversions to base units and located errors for the wrong dimension."""

import pytest
from conftest import errors_of

from tokensim.lang.units import Dim, UnitError, convert, format_quantity


@pytest.mark.parametrize(
    "number, unit, dim, expected",
    [
        (80, "GB", Dim.BYTES, 80e9),
        (80, "GiB", Dim.BYTES, 80 * 2**30),
        (3.35, "TB/s", Dim.BANDWIDTH, 3.35e12),
        (400, "Gb/s", Dim.BANDWIDTH, 50e9),
        (400, "Gbps", Dim.BANDWIDTH, 50e9),
        (989, "TFLOPS", Dim.COMPUTE, 989e12),
        (2, "us", Dim.TIME, 2e-6),
        (500, "ms", Dim.TIME, 0.5),
        (10, "min", Dim.TIME, 600),
        (12, "/s", Dim.RATE, 12),
        (60, "/min", Dim.RATE, 1),
        (16, "tokens", Dim.TOKENS, 16),
        (16, "", Dim.TOKENS, 16),
        (90, "%", Dim.FRACTION, 0.9),
        (0.9, "", Dim.FRACTION, 0.9),
        (700, "W", Dim.POWER, 700),
        (2.5, "$/h", Dim.PRICE, 2.5),
    ],
)
def test_convert(number, unit, dim, expected):
    assert convert(number, unit, dim) == pytest.approx(expected)


def test_counts_and_tokens_take_decimal_and_binary_multipliers():
    from conftest import compile_text

    assert convert(16, "k", Dim.TOKENS) == 16_000 and convert(128, "Ki", Dim.TOKENS) == 131_072
    assert convert(1.1, "k", Dim.COUNT) == 1100 and convert(2, "M", Dim.COUNT) == 2_000_000
    with pytest.raises(UnitError, match="unknown unit `k`"):
        convert(2, "k", Dim.TIME)  # a time is not a count
    head = 'import "std/hardware"\nimport "std/models"\n'
    spec = compile_text(
        head + "cluster { node n { gpus H100_SXM x 1 } }\n"
        "deployment { pool p { model llama3_1_8b } }\n"
        "workload { arrivals poisson 1/s; lengths fixed 1.5k -> 1Ki; requests 2k }\n"
        "sweep { workload.requests in 1k .. 3k step 1k }"
    )
    assert spec.workload.requests == 2000
    assert dict(spec.workload.lengths.params) == {"prompt": 1500, "output": 1024}
    assert spec.sweep.axes[0].texts == ("1k", "2k", "3k")
    assert spec.sweep.axes[0].values == (1000, 2000, 3000)
    errors = errors_of(head + "model m from llama3_1_8b { max_context 1.0005k }")
    assert "`max_context` must be a whole number, found `1.0005k`" in errors


def test_wrong_dimension_is_an_error():
    with pytest.raises(UnitError, match="expected a size in bytes, found a bandwidth"):
        convert(80, "GB/s", Dim.BYTES)


def test_missing_unit_is_an_error_where_a_unit_is_needed():
    with pytest.raises(UnitError, match="missing unit: expected a time"):
        convert(2, "", Dim.TIME)


def test_unknown_unit_suggests_the_closest():
    with pytest.raises(UnitError) as info:
        convert(80, "GBs", Dim.BYTES)
    assert info.value.help == "did you mean `GB`?"


def test_bits_and_bytes_differ_by_eight():
    assert convert(100, "Gb/s", Dim.BANDWIDTH) * 8 == pytest.approx(
        convert(100, "GB/s", Dim.BANDWIDTH)
    )


@pytest.mark.parametrize(
    "value, dim, text",
    [
        (80e9, Dim.BYTES, "80 GB"),
        (4.5e11, Dim.BANDWIDTH, "450 GB/s"),
        (2e-6, Dim.TIME, "2 us"),
        (0.9, Dim.FRACTION, "90%"),
    ],
)
def test_format_quantity(value, dim, text):
    assert format_quantity(value, dim) == text


def test_unit_errors_are_located_in_a_spec():
    text = errors_of("link L {\n  bandwidth 10 GB/s\n  latency 5 GB\n}\n", "units.tsim")
    assert "error: expected a time, found a size in bytes (`GB`) for `latency`" in text
    assert "--> units.tsim:3:11" in text


@pytest.mark.parametrize(
    "word, candidates, expected",
    [
        ("TBs", ["TB/s", "Tbps", "GB/s"], "did you mean `TB/s`?"),
        ("H100", ["H100_SXM", "H100_PCIE", "H200"], "did you mean `H100_PCIE` or `H100_SXM`?"),
        ("instnces", ["instances", "tp"], "did you mean `instances`?"),
        ("H100_sxm", ["H100_SXM"], "did you mean `H100_SXM`?"),
        ("zzz", ["instances", "tp"], None),
    ],
)
def test_did_you_mean(word, candidates, expected):
    from tokensim.lang.diagnostics import did_you_mean

    assert did_you_mean(word, candidates) == expected


def test_unknown_unit_suggests_only_units_of_the_expected_dimension():
    with pytest.raises(UnitError) as info:
        convert(4, "kx", Dim.TOKENS)
    assert "kW" not in info.value.help
    assert "`tokens`" in info.value.help
