"""Charts as inline SVG strings for the self-contained HTML report.

Every chart function returns one ``<svg>`` element as a string. The output is deterministic (the
same input gives the same bytes: coordinates are rounded to 0.1 px, ids come from the caller's
``id``), needs no script, font or stylesheet from elsewhere, and parses as XML. Values on time
axes are seconds; their tick labels use one unit per axis (µs, ms, s, min or h, picked from the
magnitude) and are nice numbers in that unit. Non-finite values are skipped; a chart with nothing
to draw says "no data" instead of raising. Mistakes by the caller (a bad ``id``, lists of unequal
length, a lane index out of range) raise ``ValueError``.

``gantt_chart`` draws its bars in a nested ``<svg class="gantt-plot">`` whose x coordinates are
seconds since the window start, so ``templates/gantt.js`` zooms and pans it by rewriting only that
viewBox, then redraws the ticks in ``.gantt-axis``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow: last, it is faint on white
)
"""The Okabe-Ito colours, told apart under the common colour-vision deficiencies."""

_GRID = "#e6e6e6"
_AXIS = "#999"
_LABEL = "#555"
_CHAR_W = 0.6  # estimated glyph width as a fraction of the font size (no font metrics here)
_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
# (below this magnitude in s, the unit's length in s, its name); 3 h and longer is shown in h.
_TIME_UNITS = (
    (1e-6, 1e-9, "ns"),
    (1e-3, 1e-6, "µs"),
    (1, 1e-3, "ms"),
    (180, 1, "s"),
    (10800, 60, "min"),
)
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))

Values = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Series:
    """One line: ``y`` over ``x`` (same length), drawn solid, dashed or as a step function."""

    label: str
    x: Values
    y: Values
    color: str | None = None
    dash: bool = False
    step: bool = False
    width: float = 1.5
    markers: bool = False  # a dot at each point (a point with no neighbour shows only so)


@dataclass(frozen=True)
class Band:
    """A shaded band from ``lo`` to ``hi`` over ``x`` (e.g. the min..max over instances)."""

    label: str
    x: Values
    lo: Values
    hi: Values
    color: str | None = None


@dataclass(frozen=True)
class Rule:
    """A labelled reference line: horizontal at y=value (``axis="y"``) or vertical at x=value."""

    value: float
    label: str
    color: str = "#c0392b"
    axis: str = "y"

    def __post_init__(self):
        if self.axis not in ("x", "y"):
            raise ValueError(f'Rule axis must be "x" or "y", not {self.axis!r}')


# --- numbers and tick labels ----------------------------------------------------------------


def _clean(v: float) -> float:
    """``v`` without float noise (0.30000000000000004 -> 0.3) and without a negative zero."""
    return float(f"{v:.15g}") + 0.0


def _trim(s: str) -> str:
    """A fixed-point number without trailing zeros: "1.50" -> "1.5", "2.0" -> "2"."""
    return s.rstrip("0").rstrip(".") if "." in s else s


def _decimals(step: float) -> int:
    """The number of decimals that prints every multiple of ``step`` exactly."""
    for d in range(13):
        if abs(round(step, d) - step) <= abs(step) * 1e-6:
            return d
    return 12


def _sig3(v: float) -> str:
    """``v`` (a magnitude from 1 to 999 in its unit) with three significant digits, trimmed."""
    a = abs(v)
    return _trim(f"{v:.{0 if a >= 100 else 1 if a >= 10 else 2}f}")


def _nonfinite(x: float) -> str:
    return "n/a" if math.isnan(x) else "∞" if x > 0 else "-∞"


def _time_unit(mag: float) -> tuple[float, str]:
    """The unit for a duration of ``mag`` seconds: (its length in seconds, its name)."""
    if mag == 0:
        return 1.0, "s"
    for limit, scale, name in _TIME_UNITS:
        if mag < limit:
            return scale, name
    return 3600.0, "h"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Evenly spaced round values from one at or below ``lo`` to one at or above ``hi``.

    The step is the smallest 1, 2, 2.5 or 5 times a power of ten that splits ``hi - lo`` into at
    most ``n`` intervals (rounding out to multiples of the step may add one at each end). A range
    of zero width is widened first and a non-finite one gives ``[0, 1]``, so there are always at
    least two ticks.
    """
    if not math.isfinite(hi - lo):  # a bound is not finite, or the range overflows
        return [0.0, 1.0]
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        lo, hi = (0.0, 1.0) if lo == 0 else (lo - abs(lo) / 2, hi + abs(hi) / 2)
    raw = (hi - lo) / max(n, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(s * mag for s in _STEPS if s * mag >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [_clean(i * step) for i in range(first, last + 1)]


def fmt_seconds(x: float) -> str:
    """A duration for a label: "0", "250 µs", "12 ms", "1.5 s", "90 s", "12 min", "4 h"."""
    if not math.isfinite(x):
        return _nonfinite(x)
    x = float(f"{x:.3g}")  # round first, so that 0.9996 s reads "1 s", not "1000 ms"
    if x == 0:
        return "0"
    scale, name = _time_unit(abs(x))
    return f"{_sig3(x / scale)} {name}"


def fmt_number(x: float) -> str:
    """A compact number for a label: "0", "12", "0.25", "1.5k", "2.3M"."""
    if not math.isfinite(x):
        return _nonfinite(x)
    x = float(f"{x:.3g}")
    if x == 0:
        return "0"
    if abs(x) < 1:
        return f"{x:.3g}"
    scale, suffix = next(((s, u) for s, u in _SI if abs(x) >= s), (1.0, ""))
    return _sig3(x / scale) + suffix


def _tick_labels(ticks: list[float], step: float, kind: str, unit: tuple[float, str] | None):
    """Labels for linear ticks in one unit per axis, with the decimals the step needs."""
    top = max((abs(t) for t in ticks), default=0.0)
    if kind == "percent":
        scale, suffix = 0.01, "%"
    elif kind == "time":
        if unit is None:  # a decimal unit (s or below), picked from the largest tick
            unit = _time_unit(top) if top < 1 else (1.0, "s")
        scale, suffix = unit[0], " " + unit[1]
    else:
        scale, suffix = next(((s, u) for s, u in _SI if top >= max(s, 1e4)), (1.0, ""))
    d = _decimals(step / scale)
    zero = "0%" if kind == "percent" else "0"
    return [
        zero if abs(t) <= abs(step) * 1e-9 else _trim(f"{t / scale:.{d}f}") + suffix for t in ticks
    ]


@dataclass(frozen=True)
class _Axis:
    """The range an axis shows (data units) and its ticks with their labels."""

    lo: float
    hi: float
    ticks: tuple[float, ...]
    labels: tuple[str, ...]
    log: bool = False

    def frac(self, v):
        """Where ``v`` (a number or an array) lies: 0 at ``lo``, 1 at ``hi``."""
        v = np.asarray(v, dtype=float)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log10(v) - math.log10(self.lo)) / math.log10(self.hi / self.lo)
        return (v - self.lo) / (self.hi - self.lo)

    def inside(self, v: float) -> bool:
        return math.isfinite(v) and (v > 0 or not self.log) and self.lo <= v <= self.hi


def _axis(lo, hi, kind="number", *, fix_lo=None, fix_hi=None, n=5) -> _Axis:
    """A linear axis over ``lo..hi`` rounded out to nice ticks; ``fix_lo``/``fix_hi`` pin an end.

    ``kind`` is "number", "time" (seconds; ticks are nice in minutes or hours when those are the
    unit) or "percent" (0..1 shown as 0%..100%).
    """
    lo = lo if fix_lo is None else fix_lo
    hi = hi if fix_hi is None else fix_hi
    unit = _time_unit(max(abs(lo), abs(hi))) if kind == "time" else None
    unit = unit if unit and unit[0] >= 60 else None  # below a minute, units are powers of 10
    scale = unit[0] if unit else 1.0
    ticks = [_clean(t * scale) for t in nice_ticks(lo / scale, hi / scale, n)]
    step = ticks[1] - ticks[0]
    a = ticks[0] if fix_lo is None else fix_lo
    b = ticks[-1] if fix_hi is None else fix_hi
    if not b > a:
        a, b = ticks[0], ticks[-1]
    ticks = [t for t in ticks if a - step * 1e-6 <= t <= b + step * 1e-6]
    return _Axis(a, b, tuple(ticks), tuple(_tick_labels(ticks, step, kind, unit)))


def _log_axis(lo: float, hi: float, kind: str = "number") -> _Axis:
    """A log axis over whole decades around ``lo..hi`` (both > 0); 2 and 5 ticks if it is short."""
    a = math.floor(math.log10(lo) + 1e-9)
    b = max(math.ceil(math.log10(hi) - 1e-9), a + 1)
    mults = (1, 2, 5) if b - a <= 2 else (1,)
    ticks = [_clean(m * 10.0**e) for e in range(a, b + 1) for m in mults if e < b or m == 1]
    fmt = {"time": fmt_seconds, "percent": lambda t: fmt_number(t * 100) + "%"}
    labels = [fmt.get(kind, fmt_number)(t) for t in ticks]
    return _Axis(_clean(10.0**a), _clean(10.0**b), tuple(ticks), tuple(labels), log=True)


# --- SVG pieces -----------------------------------------------------------------------------


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def _f(v: float) -> str:
    return f"{v:.1f}"


def _tw(s, size: float = 11) -> float:
    """Estimated width of ``str(s)`` in px at font size ``size``."""
    return len(str(s)) * size * _CHAR_W


def _fit(s, px: float, size: float = 11) -> str:
    """``str(s)``, cut with an ellipsis to about ``px`` wide."""
    s, room = str(s), max(1, int(px / (size * _CHAR_W)))
    return s if len(s) <= room else s[: max(room - 1, 0)] + "…"


def _wrap(s, px: float, size: float = 11, most: int = 3) -> list[str]:
    """``str(s)`` on lines about ``px`` wide, broken after spaces, commas and ``=`` (a word
    longer than a line is cut); at most ``most`` lines, the last ending in an ellipsis
    where text is left over."""
    room = max(1, int(px / (size * _CHAR_W)))
    lines = [""]
    for word in re.split(r"(?<=[ ,=])", str(s)):
        if lines[-1] and len((lines[-1] + word).rstrip()) > room:
            lines.append("")
        lines[-1] += word
    lines = [line.strip() for line in lines if line.strip()] or [""]
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][: max(room - 1, 0)] + "…"
    return [_fit(line, px, size) for line in lines]


def _check_id(id: str) -> None:
    if not isinstance(id, str) or not _ID.match(id):
        raise ValueError(f"chart id must be a letter then letters, digits, - or _, not {id!r}")


def _open(id: str, title: str, w: float, h: float, cls: str = "chart", extra: str = "") -> str:
    """The opening ``<svg>`` tag, its ``<title>`` and the visible title."""
    t = _esc(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{id}" class="{cls}" '
        f'viewBox="0 0 {w:.0f} {h:.0f}" width="100%" style="max-width:{w:.0f}px;height:auto" '
        f'role="img" aria-label="{t}" font-family="system-ui, sans-serif" font-size="11"{extra}>'
        f'<title>{t}</title><text x="8" y="17" font-size="13" font-weight="600">{t}</text>'
    )


def _no_data(id: str, title: str, width: float, height: float) -> str:
    """A valid chart with only its title and "no data" in the middle."""
    return (
        _open(id, title, width, height)
        + f'<rect x="8" y="26" width="{_f(width - 16)}" height="{_f(height - 34)}" fill="none" '
        f'stroke="{_GRID}"/><text class="no-data" x="{_f(width / 2)}" y="{_f(height / 2 + 8)}" '
        f'text-anchor="middle" fill="#888" font-size="13">no data</text></svg>'
    )


def _legend(items: list[tuple[str, str, str]], x: float, y: float, right: float):
    """Legend entries (label, colour, mark: "line", "dash", "box" or "band") in rows from the
    baseline ``y``, wrapping before ``right``; returns (svg, height used in px)."""
    if not items:
        return "", 0
    out, cx, cy = ['<g class="legend">'], x, y
    for label, color, mark in items:
        w = 20 + _tw(label)
        if cx > x and cx + w > right:
            cx, cy = x, cy + 16
        if mark in ("box", "band"):
            opacity = ' fill-opacity="0.3"' if mark == "band" else ""
            out.append(
                f'<rect x="{_f(cx)}" y="{_f(cy - 9)}" width="12" height="10" fill="{color}"'
                f"{opacity}/>"
            )
        else:
            dash = ' stroke-dasharray="4 2"' if mark == "dash" else ""
            out.append(
                f'<path d="M{_f(cx)},{_f(cy - 4)}h14" stroke="{color}" stroke-width="2"{dash}/>'
            )
        out.append(f'<text x="{_f(cx + 18)}" y="{_f(cy)}">{_esc(label)}</text>')
        cx += w + 12
    return "".join(out) + "</g>", cy - y + 16


@dataclass(frozen=True)
class _Frame:
    """The plot area in px: left, top, width, height."""

    x: float
    y: float
    w: float
    h: float

    def px(self, ax: _Axis, v):
        return self.x + ax.frac(v) * self.w

    def py(self, ax: _Axis, v):
        return self.y + (1 - ax.frac(v)) * self.h


def _layout(ya: _Axis, width: float, height: float, legend_h: float, bottom: float) -> _Frame:
    """The plot area left by the title, legend, y tick labels and the bottom margin."""
    left = max(44.0, 26 + max((_tw(s) for s in ya.labels), default=0))
    top = 28 + legend_h
    return _Frame(left, top, width - left - 24, max(height - top - bottom, 20))


def _x_labels(fr: _Frame, ax: _Axis, cls: str = "x-axis", attrs: str = "", grid: str = ""):
    """The x tick labels under the plot in a ``<g class=cls>``, after the path ``grid`` (path data
    with ``{x}`` for each tick's x); returns (tick x positions in px, svg)."""
    xs = [float(fr.px(ax, t)) for t in ax.ticks]
    bottom = fr.y + fr.h
    d = "".join(grid.format(x=_f(x)) for x in xs)
    return xs, (
        f'<g class="{cls}"{attrs} text-anchor="middle" fill="{_LABEL}">'
        + (f'<path d="{d}" stroke="{_GRID}" fill="none"/>' if grid else "")
        + "".join(
            f'<text x="{_f(x)}" y="{_f(bottom + 15)}">{_esc(s)}</text>'
            for x, s in zip(xs, ax.labels, strict=True)
        )
        + "</g>"
    )


def _axes(fr: _Frame, xa: _Axis | None, ya: _Axis, x_label: str, y_label: str, h: float) -> str:
    """Horizontal grid, the left and bottom axis lines, tick labels and axis labels."""
    ys = [(fr.py(ya, t), s) for t, s in zip(ya.ticks, ya.labels, strict=True)]
    grid = "".join(f"M{_f(fr.x)},{_f(y)}h{_f(fr.w)}" for y, _ in ys)
    bottom = fr.y + fr.h
    out = [
        f'<path d="{grid}" stroke="{_GRID}" fill="none"/>',
        f'<path d="M{_f(fr.x)},{_f(fr.y)}V{_f(bottom)}h{_f(fr.w)}" stroke="{_AXIS}" fill="none"/>',
        f'<g class="y-axis" text-anchor="end" fill="{_LABEL}">',
        *(f'<text x="{_f(fr.x - 6)}" y="{_f(y + 4)}">{_esc(s)}</text>' for y, s in ys),
        "</g>",
    ]
    if xa is not None:
        xs, labels = _x_labels(fr, xa)
        marks = "".join(f"M{_f(x)},{_f(bottom)}v4" for x in xs)
        out += [f'<path d="{marks}" stroke="{_AXIS}" fill="none"/>', labels]
    if x_label:
        out.append(
            f'<text x="{_f(fr.x + fr.w / 2)}" y="{_f(h - 6)}" text-anchor="middle">'
            f"{_esc(x_label)}</text>"
        )
    if y_label:
        out.append(
            f'<text transform="translate(14,{_f(fr.y + fr.h / 2)}) rotate(-90)" '
            f'text-anchor="middle">{_esc(y_label)}</text>'
        )
    return "".join(out)


def _plotted(id, title, width, height, fr, xa, ya, x_label, y_label, body, rules, legend) -> str:
    """A whole chart of x/y axes: title, axes, the drawn ``body``, rules, legend."""
    return (
        _open(id, title, width, height)
        + _axes(fr, xa, ya, x_label, y_label, height)
        + "".join(body)
        + _rules(rules, fr, xa, ya)
        + legend
        + "</svg>"
    )


def _path_d(px: np.ndarray, py: np.ndarray, close: bool = False) -> str:
    """Path data through the points, rounded to 0.1 px. A non-finite point lifts the pen (the
    next finite one starts a new piece); a point equal after rounding to the one before it is
    left out."""
    q = np.round(np.c_[np.asarray(px, dtype=float), np.asarray(py, dtype=float)] * 10) + 0.0
    ok = np.isfinite(q).all(axis=1)
    after_ok = np.r_[False, ok[:-1]]
    keep = ok & ~(np.r_[False, (q[1:] == q[:-1]).all(axis=1)] & after_ok)
    if not keep.any():
        return ""
    fmt = "".join(["L%.1f,%.1f" if on else "M%.1f,%.1f" for on in after_ok[keep].tolist()])
    return fmt % tuple((q[keep] / 10).ravel().tolist()) + ("Z" if close else "")


def _clip(id: str, fr: _Frame) -> str:
    return (
        f'<clipPath id="{id}-clip"><rect x="{_f(fr.x)}" y="{_f(fr.y)}" width="{_f(fr.w)}" '
        f'height="{_f(fr.h)}"/></clipPath>'
    )


def _rules(rules: Sequence[Rule], fr: _Frame, xa: _Axis, ya: _Axis) -> str:
    """Dashed reference lines with their labels; lines outside the axes are left out."""
    out = []
    for r in rules:
        ax = ya if r.axis == "y" else xa
        if not ax.inside(r.value):
            continue
        if r.axis == "y":
            y = fr.py(ya, r.value)
            d, tx, ty, anchor = f"M{_f(fr.x)},{_f(y)}h{_f(fr.w)}", fr.x + fr.w - 4, y - 4, "end"
        else:
            x = fr.px(xa, r.value)
            d, tx, ty, anchor = f"M{_f(x)},{_f(fr.y)}v{_f(fr.h)}", x + 4, fr.y + 10, "start"
        out.append(
            f'<g class="rule"><path d="{d}" stroke="{_esc(r.color)}" stroke-width="1.2" '
            f'stroke-dasharray="6 3" fill="none"/><text x="{_f(tx)}" y="{_f(ty)}" '
            f'text-anchor="{anchor}" fill="{_esc(r.color)}" font-size="10">{_esc(r.label)}</text>'
            "</g>"
        )
    return "".join(out)


def _extent(arrays) -> tuple[float, float] | None:
    """(min, max) over the finite values of all ``arrays``, or None when there are none."""
    parts = [a[np.isfinite(a)] for a in arrays]
    parts = [p for p in parts if p.size]
    if not parts:
        return None
    return min(float(p.min()) for p in parts), max(float(p.max()) for p in parts)


def _arrays(name: str, *columns) -> list[np.ndarray]:
    """``columns`` as float arrays of one length; points with a non-finite value become NaN."""
    arrs = [np.array(c, dtype=float).reshape(-1) for c in columns]
    if len({a.size for a in arrs}) > 1:
        raise ValueError(f"{name!r}: columns of different lengths {[a.size for a in arrs]}")
    bad = ~np.logical_and.reduce([np.isfinite(a) for a in arrs])
    for a in arrs:
        a[bad] = np.nan
    return arrs


def _color(color: str | None, i: int) -> str:
    return _esc(color) if color else PALETTE[i % len(PALETTE)]


# --- charts ---------------------------------------------------------------------------------


def line_chart(
    series: list[Series],
    *,
    id: str,
    title: str,
    x_label: str,
    y_label: str,
    x_time: bool = True,
    y_time: bool = False,
    y_percent: bool = False,
    bands: Sequence[Band] = (),
    rules: Sequence[Rule] = (),
    y_min: float | None = 0.0,
    y_max: float | None = None,
    log_x: bool = False,
    width: int = 640,
    height: int = 260,
) -> str:
    """Lines (``Series``), shaded bands and reference rules over shared axes, as one ``<svg>``.

    x is seconds when ``x_time``; y is seconds when ``y_time`` or a fraction 0..1 shown in percent
    when ``y_percent``. ``y_min``/``y_max`` pin the y range (None: from the data); rules widen the
    range so that their line shows. With ``log_x``, points with x <= 0 are dropped.
    """
    _check_id(id)
    # (what, colour, x, y...) per drawable; colours follow the caller's order, drawn or not.
    lines = [(s, _color(s.color, i), *_arrays(s.label, s.x, s.y)) for i, s in enumerate(series)]
    areas = [
        (b, _color(b.color, i), *_arrays(b.label, b.x, b.lo, b.hi)) for i, b in enumerate(bands)
    ]
    if log_x:
        for _, _, x, *rest in lines + areas:
            for a in (*rest, x):
                a[~(x > 0)] = np.nan
    lines = [ln for ln in lines if np.isfinite(ln[3]).any()]
    areas = [ar for ar in areas if np.isfinite(ar[3]).any()]
    if not lines and not areas:
        return _no_data(id, title, width, height)
    rule_x = [r.value for r in rules if r.axis == "x" and math.isfinite(r.value)]
    rule_x = np.array([v for v in rule_x if v > 0 or not log_x], dtype=float)
    rule_y = np.array([r.value for r in rules if r.axis == "y"], dtype=float)
    x_lo, x_hi = _extent([d[2] for d in lines + areas] + [rule_x])
    y_lo, y_hi = _extent([a for d in lines + areas for a in d[3:]] + [rule_y])
    xkind = "time" if x_time else "number"
    if log_x:
        xa = _log_axis(x_lo, x_hi, xkind)
    else:  # the data's own x range, with ticks at the nice values inside it
        xa = _axis(x_lo, x_hi, xkind, fix_lo=x_lo, fix_hi=x_hi, n=max(3, round(width / 128)))
    ykind = "percent" if y_percent else "time" if y_time else "number"
    ya = _axis(y_lo, y_hi, ykind, fix_lo=y_min, fix_hi=y_max)

    items = [(s.label, c, "dash" if s.dash else "line") for s, c, *_ in lines]
    items += [(b.label, c, "band") for b, c, *_ in areas]
    legend, legend_h = _legend(items if len(items) > 1 else [], 8, 34, width - 8)
    height += max(0.0, legend_h - 16)  # legend rows past the first: a taller chart
    fr = _layout(ya, width, height, legend_h, 36 if x_label else 24)

    body = [_clip(id, fr), f'<g clip-path="url(#{id}-clip)">']
    for b, color, x, lo, hi in areas:
        keep = np.isfinite(x)  # one polygon: gaps are bridged
        x, lo, hi = x[keep], lo[keep], hi[keep]
        px = fr.px(xa, x)
        d = _path_d(np.r_[px, px[::-1]], np.r_[fr.py(ya, hi), fr.py(ya, lo)[::-1]], close=True)
        body.append(
            f'<path class="band" d="{d}" fill="{color}" fill-opacity="0.2">'
            f"<title>{_esc(b.label)}</title></path>"
        )
    for s, color, x, y in lines:
        px, py = fr.px(xa, x), fr.py(ya, y)
        if s.step:
            px, py = np.repeat(px, 2)[1:], np.repeat(py, 2)[:-1]
        dash = ' stroke-dasharray="5 3"' if s.dash else ""
        body.append(
            f'<path class="series" d="{_path_d(px, py)}" fill="none" stroke="{color}"'
            f' stroke-width="{s.width:g}" stroke-linejoin="round"{dash}>'
            f"<title>{_esc(s.label)}</title></path>"
        )
        if s.markers:
            body.append(f'<g class="points" fill="{color}">')
            for a, b in zip(px, py, strict=True):
                if math.isfinite(a) and math.isfinite(b):
                    body.append(
                        f'<circle cx="{_f(a)}" cy="{_f(b)}" r="3"><title>{_esc(s.label)}'
                        "</title></circle>"
                    )
            body.append("</g>")
    body.append("</g>")
    return _plotted(id, title, width, height, fr, xa, ya, x_label, y_label, body, rules, legend)


@dataclass(frozen=True)
class Points:
    """Labelled markers (a tooltip each); ``joined`` draws a line through them in x order."""

    label: str
    x: Values
    y: Values
    names: Sequence[str]
    color: str | None = None
    joined: bool = False
    radius: float = 4.0


def scatter_chart(
    groups: list[Points],
    *,
    id: str,
    title: str,
    x_label: str,
    y_label: str,
    y_time: bool = False,
    rules: Sequence[Rule] = (),
    width: int = 640,
    height: int = 300,
) -> str:
    """Markers, a group (:class:`Points`) per colour, over shared number axes from zero; each
    marker's tooltip reads "name · x, y". Non-finite points are not drawn."""
    _check_id(id)
    drawn = [(g, _color(g.color, i), *_arrays(g.label, g.x, g.y)) for i, g in enumerate(groups)]
    drawn = [d for d in drawn if (np.isfinite(d[2]) & np.isfinite(d[3])).any()]
    if not drawn:
        return _no_data(id, title, width, height)
    rule_y = np.array([r.value for r in rules if r.axis == "y"], dtype=float)
    x_lo, x_hi = _extent([d[2] for d in drawn])
    y_lo, y_hi = _extent([d[3] for d in drawn] + [rule_y])
    xa = _axis(min(x_lo, 0.0), x_hi, "number", n=max(3, round(width / 128)))
    ya = _axis(min(y_lo, 0.0), y_hi, "time" if y_time else "number")
    fmt_y = fmt_seconds if y_time else fmt_number
    items = [(g.label, c, "line" if g.joined else "box") for g, c, *_ in drawn]
    legend, legend_h = _legend(items if len(items) > 1 else [], 8, 34, width - 8)
    height += max(0.0, legend_h - 16)  # legend rows past the first: a taller chart
    fr = _layout(ya, width, height, legend_h, 36)
    body = [_clip(id, fr), f'<g clip-path="url(#{id}-clip)">']
    for g, color, x, y in drawn:
        keep = np.isfinite(x) & np.isfinite(y)
        names = [n for n, k in zip(g.names, keep, strict=True) if k]
        x, y = x[keep], y[keep]
        px, py = fr.px(xa, x), fr.py(ya, y)
        if g.joined and len(x) > 1:
            order = np.argsort(x, kind="stable")
            body.append(
                f'<path class="series" d="{_path_d(px[order], py[order])}" fill="none" '
                f'stroke="{color}" stroke-width="1.5"/>'
            )
        body.append(f'<g class="points" fill="{color}">')
        for name, a, b, vx, vy in zip(names, px, py, x, y, strict=True):
            body.append(
                f'<circle cx="{_f(a)}" cy="{_f(b)}" r="{g.radius:g}"><title>{_esc(name)} · '
                f"{_esc(fmt_number(float(vx)))}, {_esc(fmt_y(float(vy)))}</title></circle>"
            )
        body.append("</g>")
    body.append("</g>")
    return _plotted(id, title, width, height, fr, xa, ya, x_label, y_label, body, rules, legend)


def _ecdf(values: np.ndarray, max_points: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF of ``values`` (finite, any order) at no more than ``max_points`` evenly
    spaced quantiles, always the smallest and the largest: (sorted values, fraction <= value)."""
    v = np.sort(np.asarray(values, dtype=float))
    idx = np.arange(v.size)
    if v.size > max_points:
        idx = np.unique(np.round(np.linspace(0, v.size - 1, max_points)).astype(int))
    return v[idx], (idx + 1) / v.size


def cdf_chart(
    samples: dict[str, np.ndarray],
    *,
    id: str,
    title: str,
    x_label: str,
    rules: Sequence[Rule] = (),
    log_x: bool | None = None,
    width: int = 640,
    height: int = 260,
    spread: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> str:
    """The empirical CDF of each sample of durations (seconds), with guides at 50, 90 and 99%.

    Each curve is drawn through at most 300 quantiles. ``log_x=None`` picks a log axis when the
    positive values span more than two decades; on a log axis values <= 0 are dropped.
    ``spread`` = (label, quantile levels, lowest, highest): a shaded band between two values
    at each level (the runs of several seeds), drawn under the curves.
    """
    _check_id(id)
    clean = {k: np.asarray(v, dtype=float).reshape(-1) for k, v in samples.items()}
    clean = {k: v[np.isfinite(v)] for k, v in clean.items()}
    pos = [v[v > 0] for v in clean.values() if (v > 0).any()]
    if log_x is None:
        log_x = bool(pos) and max(p.max() for p in pos) > 100 * min(p.min() for p in pos)
    if log_x:
        clean = {k: v[v > 0] for k, v in clean.items()}
    curves = {k: _ecdf(v) for k, v in clean.items() if v.size}
    if not curves:
        return _no_data(id, title, width, height)
    rule_x = [r.value for r in rules if r.axis == "x" and math.isfinite(r.value)]
    rule_x = np.array([v for v in rule_x if v > 0 or not log_x])
    band = None
    if spread is not None:
        label = spread[0]
        levels, low, high = (np.asarray(a, dtype=float) for a in spread[1:])
        keep = np.isfinite(low) & np.isfinite(high)
        if log_x:
            keep &= (low > 0) & (high > 0)
        if keep.sum() >= 2:
            band = (label, levels[keep], low[keep], high[keep])
    extent = [x for x, _ in curves.values()] + [rule_x]
    if band is not None:
        extent += [band[2], band[3]]
    lo, hi = _extent(extent)
    if log_x:
        xa = _log_axis(lo, hi, "time")
    else:  # from 0, to the largest value
        lo = min(lo, 0.0)
        xa = _axis(lo, hi, "time", fix_lo=lo, fix_hi=hi, n=max(3, round(width / 128)))
    ya = _axis(0.0, 1.0, "percent", fix_lo=0.0, fix_hi=1.0)
    items = [(k, PALETTE[i % len(PALETTE)], "line") for i, k in enumerate(curves)]
    shown = items if len(items) > 1 or band is not None else []
    if band is not None:
        shown = shown + [(band[0], PALETTE[0], "band")]
    legend, legend_h = _legend(shown, 8, 34, width - 8)
    height += max(0.0, legend_h - 16)  # legend rows past the first: a taller chart
    fr = _layout(ya, width, height, legend_h, 36 if x_label else 24)

    out = [_open(id, title, width, height), _axes(fr, xa, ya, x_label, "CDF", height)]
    for q in (0.5, 0.9, 0.99):
        y = fr.py(ya, q)
        out.append(
            f'<path d="M{_f(fr.x)},{_f(y)}h{_f(fr.w)}" stroke="#aaa" stroke-dasharray="1 3" '
            f'fill="none"/><text x="{_f(fr.x + 4)}" y="{_f(y - 3)}" fill="#999" font-size="9">'
            f"p{q * 100:g}</text>"
        )
    out += [_clip(id, fr), f'<g clip-path="url(#{id}-clip)">']
    if band is not None:
        label, levels, low, high = band
        xs = np.concatenate([fr.px(xa, low), fr.px(xa, high)[::-1]])
        ys = np.concatenate([fr.py(ya, levels), fr.py(ya, levels)[::-1]])
        out.append(
            f'<path class="band" d="{_path_d(xs, ys, close=True)}" fill="{PALETTE[0]}" '
            'fill-opacity="0.2">'
            f"<title>{_esc(label)}</title></path>"
        )
    for (label, (x, p)), (_, color, _) in zip(curves.items(), items, strict=True):
        out.append(
            f'<path class="series" d="{_path_d(fr.px(xa, x), fr.py(ya, p))}" fill="none" '
            f'stroke="{color}" stroke-width="1.5" stroke-linejoin="round">'
            f"<title>{_esc(label)}</title></path>"
        )
    out += ["</g>", _rules(rules, fr, xa, ya), legend, "</svg>"]
    return "".join(out)


def bar_chart(
    categories: list[str],
    values: dict[str, list[float]],
    *,
    id: str,
    title: str,
    y_label: str,
    y_time: bool = False,
    y_percent: bool = False,
    stacked: bool = False,
    width: int = 640,
    height: int = 260,
) -> str:
    """Vertical bars: a group per category, a bar per key of ``values`` (one value per category),
    side by side or ``stacked`` (negative values stack downwards). y is seconds when ``y_time``,
    a fraction shown as 0% to 100% when ``y_percent``.
    Each bar's tooltip reads "category · key: value"; non-finite values draw no bar.
    """
    _check_id(id)
    keys = list(values)
    for k in keys:
        if len(values[k]) != len(categories):
            n = len(values[k])
            raise ValueError(f"bar_chart: {k!r} has {n} values for {len(categories)} categories")
    if not keys or not categories:
        return _no_data(id, title, width, height)
    m = np.array([values[k] for k in keys], dtype=float).reshape(len(keys), len(categories))
    ok = np.isfinite(m)
    if not ok.any():
        return _no_data(id, title, width, height)
    v = np.where(ok, m, 0.0)
    if stacked:
        lo, hi = float(np.minimum(v, 0).sum(0).min()), float(np.maximum(v, 0).sum(0).max())
    else:
        lo, hi = float(v[ok].min()), float(v[ok].max())
    if y_percent:
        ya = _axis(0.0, max(hi, 1.0), "percent", fix_lo=0.0)
        fmt = lambda v: fmt_number(v * 100) + "%"  # noqa: E731
    else:
        ya = _axis(min(lo, 0.0), max(hi, 0.0), "time" if y_time else "number")
        fmt = fmt_seconds if y_time else fmt_number
    items = [(k, PALETTE[i % len(PALETTE)], "box") for i, k in enumerate(keys)]
    legend, legend_h = _legend(items if len(items) > 1 else [], 8, 34, width - 8)
    height += max(0.0, legend_h - 16)  # legend rows past the first: a taller chart
    fr = _layout(ya, width, height, legend_h, 24)
    band = fr.w / len(categories)
    names = [_wrap(cat, band) for cat in categories]
    extra = 13 * (max(len(n) for n in names) - 1)  # a line more under the axis each
    if extra:
        height += extra
        fr = _layout(ya, width, height, legend_h, 24 + extra)

    bar_w = band * 0.8 / (1 if stacked else len(keys))
    base_pos, base_neg = np.zeros(len(categories)), np.zeros(len(categories))
    out = [_open(id, title, width, height), _axes(fr, None, ya, "", y_label, height)]
    for i, (key, color, _) in enumerate(items):
        out.append(f'<g class="bars" fill="{color}">')
        for c, cat in enumerate(categories):
            if not ok[i, c]:
                continue
            val = float(m[i, c])
            base = base_pos if val >= 0 else base_neg
            start = base[c] if stacked else 0.0
            if stacked:
                base[c] += val
            y0, y1 = fr.py(ya, start), fr.py(ya, start + val)
            x = fr.x + c * band + band * 0.1 + (0 if stacked else i * bar_w)
            w = bar_w if stacked or len(keys) == 1 else max(bar_w - 1, 0.5)
            out.append(
                f'<rect x="{_f(x)}" y="{_f(min(y0, y1))}" width="{_f(w)}" '
                f'height="{_f(abs(y1 - y0))}"><title>{_esc(cat)} · {_esc(key)}: '
                f"{_esc(fmt(val))}</title></rect>"
            )
        out.append("</g>")
    bottom = fr.y + fr.h
    out.append(f'<g class="x-axis" text-anchor="middle" fill="{_LABEL}">')
    for c, cat in enumerate(categories):
        x = fr.x + (c + 0.5) * band
        if len(names[c]) == 1:
            label = _esc(names[c][0])
        else:  # on its lines, and whole on hover
            label = f"<title>{_esc(cat)}</title>" + "".join(
                f'<tspan x="{_f(x)}" dy="{0 if k == 0 else 13}">{_esc(line)}</tspan>'
                for k, line in enumerate(names[c])
            )
        out.append(f'<text x="{_f(x)}" y="{_f(bottom + 15)}">{label}</text>')
    out += ["</g>", legend, "</svg>"]
    return "".join(out)


def breakdown_chart(
    rows: list[tuple[str, list[float]]],
    parts: list[str],
    *,
    id: str,
    title: str,
    colors: list[str] | None = None,
    width: int = 640,
    row_height: int = 14,
) -> str:
    """Horizontal stacked bars, one row per item: segments of seconds in the order of ``parts``.

    The chart is as tall as its rows need. Each segment's tooltip reads "row · part: duration";
    non-finite and non-positive segments are left out. ``colors`` (one per part) default to
    ``PALETTE``.
    """
    _check_id(id)
    if colors is not None and len(colors) != len(parts):
        raise ValueError(f"breakdown_chart: {len(colors)} colors for {len(parts)} parts")
    for label, segs in rows:
        if len(segs) != len(parts):
            raise ValueError(f"breakdown_chart: row {label!r} has {len(segs)} of {len(parts)}")
    v = np.array([segs for _, segs in rows], dtype=float).reshape(len(rows), len(parts))
    v = np.where(np.isfinite(v) & (v > 0), v, 0.0)
    if not rows or not parts or not (v > 0).any():
        return _no_data(id, title, width, 160)
    cols = [_color(c, i) for i, c in enumerate(colors or [None] * len(parts))]
    items = [(p, c, "box") for p, c in zip(parts, cols, strict=True)]
    legend, legend_h = _legend(items, 8, 34, width - 8)
    xa = _axis(0.0, float(v.sum(1).max()), "time", fix_lo=0.0)
    left = min(max(_tw(label) for label, _ in rows) + 14, width * 0.3)
    left = max(left, 44.0)
    fr = _Frame(left, 28 + legend_h, width - left - 24, len(rows) * row_height)
    height = fr.y + fr.h + 24
    bottom = fr.y + fr.h
    size = min(11, row_height - 2)
    out = [
        _open(id, title, width, height),
        _x_labels(fr, xa, grid=f"M{{x}},{_f(fr.y)}V{_f(bottom)}")[1],
        f'<g class="rows" text-anchor="end" fill="#444" font-size="{size}">',
    ]
    for r, (label, _) in enumerate(rows):
        y = fr.y + (r + 0.5) * row_height + size * 0.35
        out.append(
            f'<text x="{_f(fr.x - 6)}" y="{_f(y)}">{_esc(_fit(label, left - 14, size))}</text>'
        )
    out.append("</g>")
    starts, v = (np.cumsum(v, axis=1) - v).T.tolist(), v.T.tolist()  # [part][row], plain floats
    scale = fr.w / (xa.hi - xa.lo)
    bar_h = max(row_height - 3, 1)
    for p, (part, color) in enumerate(zip(parts, cols, strict=True)):
        out.append(f'<g class="segments" fill="{color}">')
        for r, (label, _) in enumerate(rows):
            if (sec := v[p][r]) > 0:
                x, y = fr.x + starts[p][r] * scale, fr.y + r * row_height + 1
                out.append(
                    f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(sec * scale)}" height="{bar_h}">'
                    f"<title>{_esc(label)} · {_esc(part)}: {fmt_seconds(sec)}</title></rect>"
                )
        out.append("</g>")
    out += [
        f'<path d="M{_f(fr.x)},{_f(fr.y)}V{_f(bottom)}h{_f(fr.w)}" stroke="{_AXIS}" fill="none"/>',
        legend,
        "</svg>",
    ]
    return "".join(out)


def _gantt_axis(t0: float, t1: float, fr: _Frame) -> str:
    """The time ticks (grid lines, then labels) that gantt.js redraws in the same shape when
    zoomed; the data attributes give it the plot area."""
    ax = _axis(t0, t1, "time", fix_lo=t0, fix_hi=t1, n=max(3, round(fr.w / 100)))
    attrs = f' data-x="{_f(fr.x)}" data-y="{_f(fr.y)}" data-w="{_f(fr.w)}" data-h="{_f(fr.h)}"'
    return _x_labels(fr, ax, "gantt-axis", attrs, f"M{{x}},{_f(fr.y)}v{_f(fr.h + 4)}")[1]


def _zoom_buttons(right: float) -> str:
    """Zoom in / out / reset buttons at the top right, hidden until gantt.js shows them."""
    out, x = ['<g class="gantt-zoom" visibility="hidden" font-size="12">'], right
    for action, label, w in (("reset", "reset", 40), ("out", "−", 20), ("in", "+", 20)):
        x -= w + 4
        out.append(
            f'<g data-zoom="{action}" cursor="pointer"><title>zoom {action}</title>'
            f'<rect x="{_f(x)}" y="4" width="{w}" height="17" rx="3" fill="#f4f4f4" '
            f'stroke="#bbb"/><text x="{_f(x + w / 2)}" y="16.5" text-anchor="middle">{label}'
            "</text></g>"
        )
    return "".join(out) + "</g>"


def gantt_chart(
    lanes: list[str],
    bars: list[tuple[int, float, float, str, str]],
    *,
    id: str,
    title: str,
    kinds: dict[str, str],
    window: tuple[float, float],
    width: int = 900,
    lane_height: int = 16,
) -> str:
    """Bars in time, one lane per instance: ``bars`` are (lane index, start_s, end_s, kind,
    tooltip) and ``kinds`` maps each kind to its colour (a kind missing there is drawn grey and
    still named in the legend).

    Only the time ``window`` (start_s, end_s) is drawn: bars outside it are dropped, bars across
    its edges clipped. The bars lie in a nested ``<svg class="gantt-plot">`` whose x is seconds
    since the window start (the outer svg has the window as ``data-t0``/``data-t1``), so
    ``gantt.js`` can zoom and pan by changing that viewBox alone; a non-scaling 1 px stroke keeps
    the thinnest bar visible.
    """
    _check_id(id)
    t0, t1 = float(window[0]), float(window[1])
    if not lanes or not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
        return _no_data(id, title, width, 160)
    span = t1 - t0
    d = min(max(math.ceil(7 - math.log10(span)), 0), 12)  # 1e-7 of the window: zoom room
    pad = 2 if lane_height >= 8 else 0
    colors = dict(kinds)
    groups: dict[str, list[str]] = {k: [] for k in kinds}
    for lane, start, end, kind, tip in bars:
        if not 0 <= lane < len(lanes):
            raise ValueError(f"gantt_chart: lane {lane} of {len(lanes)} lanes")
        a, b = max(start, t0), min(end, t1)
        if not (a < b or (start == end and a == b)):
            continue  # outside the window, empty, reversed or not a number
        if kind not in groups:
            groups[kind], colors[kind] = [], "#999999"
        end_tag = f"><title>{_esc(tip)}</title></rect>" if tip else "/>"
        groups[kind].append(
            f'<rect x="{a - t0:.{d}f}" y="{lane * lane_height + pad}" width="{b - a:.{d}f}" '
            f'height="{lane_height - 2 * pad}"{end_tag}'
        )
    if not any(groups.values()):
        return _no_data(id, title, width, 160)

    items = [(k, _esc(colors[k]), "box") for k in groups]
    legend, legend_h = _legend(items, 8, 34, width - 8)
    left = max(min(max(_tw(s) for s in lanes) + 14, width * 0.25), 40.0)
    fr = _Frame(left, 28 + legend_h, width - left - 16, len(lanes) * lane_height)
    height = fr.y + fr.h + 24
    size = min(11, lane_height - 3)
    stripes = "".join(
        f"M{_f(fr.x)},{_f(fr.y + i * lane_height)}h{_f(fr.w)}v{lane_height}h{_f(-fr.w)}z"
        for i in range(1, len(lanes), 2)
    )
    out = [
        _open(id, title, width, height, "chart gantt", f' data-t0="{t0!r}" data-t1="{t1!r}"'),
        f"<style>#{id} .gantt-plot rect{{vector-effect:non-scaling-stroke;stroke-width:1px}}"
        "</style>",
        _zoom_buttons(width - 4),
        f'<rect x="{_f(fr.x)}" y="{_f(fr.y)}" width="{_f(fr.w)}" height="{_f(fr.h)}" '
        f'fill="#fff" stroke="#ddd"/><path d="{stripes}" fill="#f5f5f5"/>',
        f'<g class="lanes" text-anchor="end" fill="#444" font-size="{size}">',
        *(
            f'<text x="{_f(fr.x - 6)}" y="{_f(fr.y + (i + 0.5) * lane_height + size * 0.35)}">'
            f"{_esc(_fit(s, left - 14, size))}</text>"
            for i, s in enumerate(lanes)
        ),
        "</g>",
        _gantt_axis(t0, t1, fr),
        f'<svg class="gantt-plot" x="{_f(fr.x)}" y="{_f(fr.y)}" width="{_f(fr.w)}" '
        f'height="{_f(fr.h)}" viewBox="0 0 {span:.{d}f} {_f(fr.h)}" preserveAspectRatio="none">',
    ]
    for kind, rects in groups.items():
        if rects:
            c = _esc(colors[kind])
            out.append(
                f'<g data-kind="{_esc(kind)}" fill="{c}" stroke="{c}" stroke-width="0">'
                + "".join(rects)
                + "</g>"
            )
    out += ["</svg>", legend, "</svg>"]
    return "".join(out)
