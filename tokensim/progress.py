"""The one progress style of every command: a tqdm bar on stderr (what is done of how much,
the rate, the time left), drawn only on a terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any


class Bar:
    """A bar for ``total`` steps found on the first call: ``bar(done, total, about)`` moves
    it to ``done`` with ``note(about)`` after the counts; ``bar.close()`` clears its line."""

    def __init__(
        self, stream: IO[str], desc: str, unit: str, every_s: float, note: Callable[[Any], str]
    ):
        self._args = dict(
            desc=desc, unit=unit, file=stream, leave=False, dynamic_ncols=True, mininterval=every_s
        )
        self._note = note
        self._bar = None

    def __call__(self, done: int, total: int, about: Any = None) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, **self._args)
        if about is not None:
            self._bar.set_postfix_str(self._note(about), refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def progress_bar(
    stream: IO[str], desc: str, unit: str, every_s: float = 0.1, note: Callable[[Any], str] = str
) -> Bar | None:
    """A :class:`Bar` on ``stream``, drawn at most once every ``every_s``, ``note`` making
    the text after the counts from what a call passes; None when ``stream`` is not a
    terminal (output redirected: no bar)."""
    return Bar(stream, desc, unit, every_s, note) if stream.isatty() else None
