"""A progress bar on stderr for long runs: redrawn in place on a terminal, every 10 % otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TextIO

WIDTH: Final = 30
QUIET_FOR_S: Final = 1.0  # a run that ends sooner never shows a bar


class ProgressBar:
    """Call with ``(done, total)``; call :meth:`close` at the end."""

    def __init__(
        self,
        stream: TextIO,
        label: str,
        clock: Callable[[], float] = time.monotonic,
        quiet_for_s: float = QUIET_FOR_S,
    ) -> None:
        self._stream = stream
        self._label = label
        self._clock = clock
        self._t0 = clock()
        self._quiet_for_s = quiet_for_s
        self._tty = stream.isatty()
        self._last_draw = -1.0
        self._last_tenth = -1
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        elapsed = now - self._t0
        if elapsed < self._quiet_for_s and done < total:
            return
        frac = done / total if total else 1.0
        if self._tty:
            if now - self._last_draw < 0.2 and done < total:
                return
            self._last_draw = now
            self._stream.write("\r" + self._line(frac, elapsed))
        else:
            tenth = int(frac * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self._stream.write(self._line(frac, elapsed) + "\n")
        self._shown = True
        self._stream.flush()

    def _line(self, frac: float, elapsed: float) -> str:
        filled = round(frac * WIDTH)
        left = elapsed * (1.0 - frac) / frac if frac > 0 else float("nan")
        eta = f", {left:.0f} s left" if frac < 1.0 and left == left else ""
        bar = "#" * filled + "." * (WIDTH - filled)
        return f"{self._label} [{bar}] {100 * frac:5.1f} %  {elapsed:.0f} s{eta}"

    def close(self) -> None:
        if self._shown and self._tty:
            self._stream.write("\n")
            self._stream.flush()
