"""Garbage collection paced for a proxy that may hold thousands of requests at once.

CPython's collector stops the event loop for as long as a collection takes, and a collection takes time in
proportion to the objects it scans. A held request keeps a few hundred objects alive (its connection, its
handler, its response, its waiting frames), so 2000 held requests are several hundred thousand survivors:
collected by allocation counts, the middle generation stalled the loop for up to 70 ms while such a burst
arrived, and the oldest for up to 110 ms (bench/shared.py, burst part, measured with ``gc.callbacks``),
delaying every other model's warm requests by as much.

So: what start-up built lives as long as the process and is frozen out of every scan; the young generations
are collected often enough to stay small (each pause about a millisecond or two); the oldest generation is
never collected by allocation counts, only by :func:`collect_oldest_every`, once per interval. Most garbage
is freed by reference counting anyway; the oldest collection only reclaims reference cycles that lived long
enough to be promoted, so collecting it once a minute bounds what such cycles can hold.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable

#: Allocations between collections of the youngest generation (Python's default: 700). Above a few thousand,
#: each young collection, and every tenth, which also scans the middle generation, grows to several
#: milliseconds while requests are held; below, the warm path pays for collections that find nothing.
YOUNGEST_THRESHOLD = 1_000
#: Young collections between collections of the middle generation (Python's default).
MIDDLE_THRESHOLD = 10
#: Middle collections before the oldest generation would be collected by counts: never, in practice (C int).
OLDEST_BY_COUNTS_NEVER = 2**31 - 1
#: How often :func:`collect_oldest_every` collects the oldest generation.
OLDEST_INTERVAL_S = 60.0


def tune() -> None:
    """Freeze what exists now (call once start-up is done) and set the thresholds above."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNGEST_THRESHOLD, MIDDLE_THRESHOLD, OLDEST_BY_COUNTS_NEVER)


async def collect_oldest_every(
    interval_s: float = OLDEST_INTERVAL_S,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Collect every generation once per *interval_s*, for the life of the process (a background loop)."""
    while True:
        await sleep(interval_s)
        gc.collect()
