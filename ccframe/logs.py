"""Progress messages: the `Log` callable every stage takes, and a throttled progress line for
long loops."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

Log = Callable[[str], None]
"""Takes one progress message (the CLI prints it on stdout; tests collect it)."""

EVERY_S = 10.0
"""Seconds between two progress lines of one loop."""


class Progress:
    """Counts items of a long loop and logs `what: N items (rate/s)` at most every
    `every_s` seconds (`total` adds a percentage)."""

    def __init__(
        self,
        what: str,
        log: Log,
        total: int | None = None,
        unit: str = "waveforms",
        every_s: float = EVERY_S,
    ) -> None:
        self.what, self.log, self.total, self.unit, self.every_s = what, log, total, unit, every_s
        self.done = 0
        self._start = self._last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last < self.every_s:
            return
        self._last = now
        rate = self.done / (now - self._start) if now > self._start else 0.0
        share = f" of {self.total} ({self.done / self.total:.0%})" if self.total else ""
        self.log(f"{self.what}: {self.done} {self.unit}{share} ({rate:,.0f}/s)")


Chunk = TypeVar("Chunk", bound=Mapping[str, Any])


def with_progress(chunks: Iterable[Chunk], progress: Progress) -> Iterator[Chunk]:
    """Pass chunks (dicts of equal-length branch arrays) through, counting their entries."""
    for chunk in chunks:
        progress.update(len(next(iter(chunk.values()))))
        yield chunk
