"""The checker's state: the reporter, the definitions in scope, name lookup."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FsPath

from tokensim.lang.diagnostics import Note, Reporter, did_you_mean, one_of
from tokensim.lang.schema import Val
from tokensim.lang.source import Span


@dataclass
class Env:
    """Everything one ``check`` accumulates. ``defs[kind][name]`` is (IR, span)."""

    rep: Reporter
    base_dir: FsPath
    defs: dict[str, dict[str, tuple[object, Span]]] = field(default_factory=dict)
    # std file that defines a name not in scope, for an 'import it' hint
    std_index: dict[str, dict[str, str]] = field(default_factory=dict)
    # names whose definition had errors: uses of them are not reported again
    broken: set[tuple[str, str]] = field(default_factory=set)
    # files read from disk (the spec and what it imports), as spans name them
    files: set[str] = field(default_factory=set)

    def folder_of(self, span: Span) -> FsPath:
        """The folder a relative path written at ``span`` is taken from: that of the file
        holding the statement; for a ``std/`` catalogue its folder inside the package (its
        calibrations ship beside it); else the spec's folder, for text that is no file on
        disk (a ``--set`` value, a spec checked from a string)."""
        if span.file in self.files:
            return FsPath(span.file).parent
        if span.file.startswith("<std>/"):
            from tokensim.lang.check import std_dir

            return FsPath(str(std_dir()))
        return self.base_dir

    def define(self, kind: str, name: str, value: object, span: Span) -> None:
        table = self.defs.setdefault(kind, {})
        if name in table:
            self.rep.error(
                f"{kind} `{name}` is defined twice",
                span,
                Note("first defined here", table[name][1]),
            )
            return
        table[name] = (value, span)

    def lookup(self, kind: str, ref: Val | None):
        """The IR of ``ref`` of ``kind``, or None after reporting it unknown."""
        if ref is None or not isinstance(ref, Val):
            return None
        table = self.defs.get(kind, {})
        if ref.value in table:
            return table[ref.value][0]
        if (kind, ref.value) in self.broken:
            return None
        notes = []
        where = self.std_index.get(kind, {}).get(ref.value)
        if where:
            notes.append(Note(f'`{ref.value}` is defined in "{where}"'))
            help = f'add `import "{where}"` at the top of the file'
        else:
            help = did_you_mean(ref.value, table) or did_you_mean(
                ref.value, self.std_index.get(kind, {})
            )
            if 0 < len(table) <= 12:
                notes.append(Note(f"{kind}s in scope: {one_of(table, word='and')}"))
            elif table:
                notes.append(Note(f"{len(table)} {kind}s are in scope"))
        self.rep.error(f"unknown {kind} `{ref.value}`", ref.span, *notes, help=help)
        return None
