"""A work queue of object keys: deduplicated, never processing one key twice at once, with per-key
exponential back-off for failures (the controller-runtime model, on asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.5, max_delay: float = 300.0) -> None:
        # An asyncio.Queue wakes a waiting get() from a plain function call: add() starts no task.
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._delayed: dict[K, asyncio.TimerHandle] = {}
        self._base = base_delay
        self._max = max_delay

    def __len__(self) -> int:
        """Keys waiting to be processed (not counting ones in progress or delayed)."""
        return self._ready.qsize()

    def add(self, key: K) -> None:
        """Queue *key* (once, however often it is added before a worker takes it)."""
        if key in self._processing:
            self._dirty.add(key)  # processed again right after the current run
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add *key* after *delay* seconds; of two pending delays the sooner one stands (a warm window's
        boundary days away must not postpone a wake failure's requeue in seconds)."""
        loop = asyncio.get_running_loop()
        pending = self._delayed.get(key)
        if pending is not None:
            if pending.when() <= loop.time() + delay:
                return
            pending.cancel()

        def fire() -> None:
            self._delayed.pop(key, None)
            self.add(key)

        self._delayed[key] = loop.call_later(delay, fire)

    def retry(self, key: K) -> float:
        """Re-queue a failed key after its back-off; returns the delay chosen."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self._max, self._base * float(2**failures))
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset the back-off of a key that succeeded."""
        self._failures.pop(key, None)

    async def get(self) -> K:
        key = await self._ready.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
