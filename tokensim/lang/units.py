"""Units as a type system.

Every quantity in a spec has a :class:`Dim` (dimension). A number is written
with a unit (``80 GB``, ``3.35 TB/s``, ``400 Gb/s``, ``989 TFLOPS``, ``2 us``,
``12/s``, ``16 tokens``, ``700 W``, ``2.5 $/h``, ``90%``) and converted to the
dimension's base unit, which the IR uses everywhere:

=========  ===========  ===============================================
dimension  base unit    units accepted
=========  ===========  ===============================================
bytes      B            B KB MB GB TB PB, KiB MiB GiB TiB PiB
bandwidth  B/s          B/s KB/s MB/s GB/s TB/s, KiB/s MiB/s GiB/s TiB/s,
                        b/s Kb/s Mb/s Gb/s Tb/s (bits), Gbps etc.
compute    FLOP/s       FLOPS GFLOPS TFLOPS PFLOPS (also for integer ops)
time       s            ns us µs ms s min h
rate       1/s          /s /min /h
tokens     token        tokens token (or a bare number; 16k, 128Ki)
power      W            W kW
price      $/h          $/h
fraction   1            % (or a bare number)
count      1            (a bare number; 10k, 1M)
=========  ===========  ===============================================
"""

from __future__ import annotations

import re
from enum import Enum


class Dim(Enum):
    """A physical dimension; the value is its name in the reference."""

    BYTES = "bytes"
    BANDWIDTH = "bandwidth"
    COMPUTE = "compute"
    TIME = "time"
    RATE = "rate"
    TOKENS = "tokens"
    POWER = "power"
    PRICE = "price"
    FRACTION = "fraction"
    COUNT = "count"

    @property
    def noun(self) -> str:
        """How messages name a value of this dimension: 'a size in bytes'."""
        return NOUNS[self]


NOUNS = {
    Dim.BYTES: "a size in bytes",
    Dim.BANDWIDTH: "a bandwidth",
    Dim.COMPUTE: "a compute throughput",
    Dim.TIME: "a time",
    Dim.RATE: "a rate",
    Dim.TOKENS: "a number of tokens",
    Dim.POWER: "a power",
    Dim.PRICE: "a price",
    Dim.FRACTION: "a fraction",
    Dim.COUNT: "a plain number",
}


def _table() -> dict[str, tuple[Dim, float]]:
    units: dict[str, tuple[Dim, float]] = {}
    for prefix, dec, binary in [
        ("", 1, 1),
        ("K", 1e3, 2**10),
        ("M", 1e6, 2**20),
        ("G", 1e9, 2**30),
        ("T", 1e12, 2**40),
        ("P", 1e15, 2**50),
    ]:
        units[f"{prefix}B"] = (Dim.BYTES, dec)
        units[f"{prefix}B/s"] = (Dim.BANDWIDTH, dec)
        units[f"{prefix}b/s"] = (Dim.BANDWIDTH, dec / 8)
        if prefix:
            units[f"{prefix}iB"] = (Dim.BYTES, binary)
            units[f"{prefix}iB/s"] = (Dim.BANDWIDTH, binary)
            units[f"{prefix}bps"] = (Dim.BANDWIDTH, dec / 8)
            units[f"{prefix}FLOPS"] = (Dim.COMPUTE, dec)
    units["FLOPS"] = (Dim.COMPUTE, 1)
    units.update(
        {
            "ns": (Dim.TIME, 1e-9),
            "us": (Dim.TIME, 1e-6),
            "µs": (Dim.TIME, 1e-6),
            "ms": (Dim.TIME, 1e-3),
            "s": (Dim.TIME, 1),
            "min": (Dim.TIME, 60),
            "h": (Dim.TIME, 3600),
            "/s": (Dim.RATE, 1),
            "/min": (Dim.RATE, 1 / 60),
            "/h": (Dim.RATE, 1 / 3600),
            "token": (Dim.TOKENS, 1),
            "tokens": (Dim.TOKENS, 1),
            "W": (Dim.POWER, 1),
            "kW": (Dim.POWER, 1e3),
            "$/h": (Dim.PRICE, 1),
            "%": (Dim.FRACTION, 0.01),
        }
    )
    return units


UNITS: dict[str, tuple[Dim, float]] = _table()

# Dimensions where a bare number is the natural way to write a value.
BARE_OK = {Dim.COUNT, Dim.FRACTION, Dim.TOKENS}

# Suffixes that scale a count or a number of tokens (`16k`, `128Ki`): decimal like `KB`,
# binary like `KiB`, so `16k` is 16,000 and `16Ki` is 16,384.
MULTIPLIERS = {"k": 1e3, "K": 1e3, "M": 1e6, "Ki": 2**10, "Mi": 2**20}
SCALED = {Dim.COUNT, Dim.TOKENS}

# One example unit per dimension, for messages ("write `80 GB`").
EXAMPLE = {
    Dim.BYTES: "GB",
    Dim.BANDWIDTH: "GB/s",
    Dim.COMPUTE: "TFLOPS",
    Dim.TIME: "ms",
    Dim.RATE: "/s",
    Dim.TOKENS: "tokens",
    Dim.POWER: "W",
    Dim.PRICE: "$/h",
    Dim.FRACTION: "%",
}


def units_of(dim: Dim) -> list[str]:
    """Every unit spelling of ``dim``, for 'expected one of' notes."""
    return [u for u, (d, _) in UNITS.items() if d is dim]


class UnitError(ValueError):
    """A unit that is unknown or of the wrong dimension; ``help`` suggests a fix."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


_LEADING_NUMBER = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(.*)", re.S)


def parse_quantity(text: str, dim: Dim, bare: str = "") -> float:
    """A quantity as a command line writes it (``2GB``, ``24 h``, ``20/s``) in the base
    unit of ``dim``; a number alone takes the unit ``bare``. Raises ValueError when
    ``text`` does not start with a number, :class:`UnitError` (a ValueError) for its
    unit."""
    m = _LEADING_NUMBER.fullmatch(text)
    if not m:
        raise ValueError(f"not a number with a unit: {text!r}")
    unit = "".join(m.group(2).split()) or bare
    return convert(float(m.group(1)), unit, dim)


def convert(number: float, unit: str, dim: Dim) -> float:
    """``number unit`` in the base unit of ``dim``; raises :class:`UnitError`.

    A bare number (``unit == ''``) is accepted for counts, fractions and tokens.
    """
    from tokensim.lang.diagnostics import did_you_mean, one_of

    if unit == "":
        if dim in BARE_OK:
            return number
        return _missing(number, dim)
    if unit in MULTIPLIERS and dim in SCALED:  # (1.1k is 1100, not 1100.0000000000002)
        return round(number * MULTIPLIERS[unit], 9)
    if unit not in UNITS:
        valid = units_of(dim)
        hint = did_you_mean(unit, valid)
        if hint is None:
            hint = (
                f"{dim.noun} takes {one_of(valid)}"
                if valid
                else "write a plain number, without a unit"
            )
        raise UnitError(f"unknown unit `{unit}`", hint)
    actual, factor = UNITS[unit]
    if actual is not dim:
        example = EXAMPLE.get(dim)
        hint = f"{dim.noun} is written like `{with_unit(number, example)}`" if example else None
        if dim is Dim.COUNT:
            hint = "write a plain number"
        raise UnitError(f"expected {dim.noun}, found {actual.noun} (`{unit}`)", hint)
    return number * factor


def _missing(number: float, dim: Dim) -> float:
    raise UnitError(
        f"missing unit: expected {dim.noun}",
        f"write it with a unit, like `{with_unit(number, EXAMPLE[dim])}`",
    )


def with_unit(number: float, unit: str) -> str:
    """``80 GB``, but ``12/s`` and ``90%``: how a quantity is usually written."""
    sep = "" if unit.startswith(("/", "%")) or unit in MULTIPLIERS else " "
    return f"{number:g}{sep}{unit}"


def format_quantity(value: float, dim: Dim) -> str:
    """A readable rendering of a base-unit value (``80e9`` bytes -> '80 GB')."""
    scales = {
        Dim.BYTES: [(1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB"), (1, "B")],
        Dim.BANDWIDTH: [(1e12, "TB/s"), (1e9, "GB/s"), (1e6, "MB/s"), (1e3, "KB/s"), (1, "B/s")],
        Dim.COMPUTE: [(1e15, "PFLOPS"), (1e12, "TFLOPS"), (1e9, "GFLOPS"), (1, "FLOPS")],
        Dim.TIME: [(1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")],
        Dim.RATE: [(1, "/s")],
        Dim.TOKENS: [(1, "tokens")],
        Dim.POWER: [(1, "W")],
        Dim.PRICE: [(1, "$/h")],
        Dim.FRACTION: [(0.01, "%")],
        Dim.COUNT: [(1, "")],
    }[dim]
    for scale, unit in scales:
        if abs(value) >= scale or scale == scales[-1][0]:
            text = f"{value / scale:.4g}"
            return f"{text} {unit}".strip() if unit != "%" else f"{text}%"
    raise AssertionError("unreachable")
