"""Deterministic text dumps of any stage's output (``--dump ast|ir|graph``).

Dataclasses print as ``Name(field=value, ...)`` indented one field per line,
floats with 6 significant digits, spans as ``@file:line:col`` with the file
shown relative to the spec's folder, so golden files do not depend on where a
test runs.
"""

from __future__ import annotations

import dataclasses
import enum
import os

from tokensim.lang.source import Span


def _relative(path: str, root: str | None) -> str:
    """``path`` relative to ``root`` when it lies inside it, else unchanged.

    Only paths under ``root`` are rewritten: other strings that merely start
    with a slash (a unit such as ``/s``) must print as they are.
    """
    if root and path.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, root)
    return path


def _span(span: Span, root: str | None) -> str:
    return f"@{_relative(span.file, root)}:{span.line}:{span.col}"


def _float(x: float) -> str:
    return f"{x:.6g}"


# Named definitions: shown in full where they are defined (the spec's
# ``gpus``/``links``/``models``), and by name wherever they are used.
DEFINITION_FIELDS = ("gpus", "links", "models")


def dump(obj, root: str | None = None, indent: int = 0, full: bool = True) -> str:
    """The text form of ``obj`` (dataclasses, tuples, dicts, scalars).

    ``root`` is the folder spans are shown relative to; ``full`` False prints
    named definitions (GPUs, links, models) by name only.
    """
    pad = "  " * indent
    inner = "  " * (indent + 1)
    if isinstance(obj, Span):
        return _span(obj, root)
    if hasattr(obj, "dump_text"):
        return obj.dump_text()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if not full and getattr(type(obj), "is_definition", False):
            return f"{type(obj).__name__}({obj.name!r})"
        fields = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
        span = next((v for k, v in fields if k == "span" and isinstance(v, Span)), None)
        head = type(obj).__name__ + (f" {_span(span, root)}" if span else "")
        rest = [(k, v, k in DEFINITION_FIELDS) for k, v in fields if k != "span"]
        if len(rest) <= 4 and all(_scalar(v, f) for _, v, f in rest):
            return f"{head}(" + ", ".join(f"{k}={dump(v, root, 0, f)}" for k, v, f in rest) + ")"
        lines = [f"{head}("]
        lines += [f"{inner}{k}={dump(v, root, indent + 1, f)}" for k, v, f in rest]
        return "\n".join(lines) + f"\n{pad})"
    if isinstance(obj, (tuple, list)):
        if not obj:
            return "()"
        if all(_scalar(v, full) for v in obj):
            comma = "," if len(obj) == 1 else ""
            return "(" + ", ".join(dump(v, root, 0, full) for v in obj) + comma + ")"
        body = "\n".join(f"{inner}{dump(v, root, indent + 1, full)}" for v in obj)
        return f"(\n{body}\n{pad})"
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = sorted(obj.items(), key=lambda kv: str(kv[0]))
        body = "\n".join(f"{inner}{k}: {dump(v, root, indent + 1, full)}" for k, v in items)
        return f"{{\n{body}\n{pad}}}"
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, type):
        return obj.__name__
    if isinstance(obj, str):
        return repr(_relative(obj, root))
    return repr(obj)


def _scalar(v, full: bool) -> bool:
    """Whether ``v`` prints on one short line."""
    if hasattr(v, "dump_text"):
        return True
    if getattr(type(v), "is_definition", False):
        return not full
    if isinstance(v, tuple):
        return len(v) <= 8 and all(
            isinstance(x, (int, float, str)) or (isinstance(x, tuple) and _scalar(x, full))
            for x in v
        )
    return v is None or isinstance(v, (int, float, str, bool, Span, enum.Enum))
