"""The one progress style of every command: a tqdm bar on stderr (what is done of how much,
the rate, the time left), drawn only on a terminal."""

from __future__ import annotations

from typing import IO


class Bar:
    """A bar for ``total`` steps found on the first call: ``bar(done, total, note)`` moves
    it to ``done`` with ``note`` after the counts; ``bar.close()`` clears its line."""

    def __init__(self, stream: IO[str], desc: str, unit: str, every_s: float):
        self._args = dict(
            desc=desc, unit=unit, file=stream, leave=False, dynamic_ncols=True, mininterval=every_s
        )
        self._bar = None

    def __call__(self, done: int, total: int, note: str = "") -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, **self._args)
        if note:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def progress_bar(stream: IO[str], desc: str, unit: str, every_s: float = 0.1) -> Bar | None:
    """A :class:`Bar` on ``stream``, drawn at most once every ``every_s``; None when
    ``stream`` is not a terminal (output redirected: no bar)."""
    return Bar(stream, desc, unit, every_s) if stream.isatty() else None
