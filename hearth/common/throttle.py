"""Rate-limiting a repeated log line: the first occurrence is logged at once, then at most one line per
interval carrying how many occurred in between (a failing backend or a flood of bad clients must never
become a log flood)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    def __init__(self, *, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self.total = 0
        self._since_last = 0

    def hit(self) -> int | None:
        """Count one occurrence; the number of occurrences to report when a line is due, else None."""
        self.total += 1
        self._since_last += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return None
        self._last = now
        count, self._since_last = self._since_last, 0
        return count
