"""Choosing a ready backend for each request: least outstanding requests, ties broken in turn."""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import Iterator


class Balancer:
    def __init__(self) -> None:
        self._outstanding: collections.Counter[str] = collections.Counter()
        self._turn = itertools.count()

    def pick(self, endpoints: list[str]) -> str:
        if not endpoints:
            raise LookupError("no ready backend")
        fewest = min(self._outstanding[endpoint] for endpoint in endpoints)
        candidates = [endpoint for endpoint in endpoints if self._outstanding[endpoint] == fewest]
        return candidates[next(self._turn) % len(candidates)]

    @contextlib.contextmanager
    def use(self, endpoint: str) -> Iterator[None]:
        self._outstanding[endpoint] += 1
        try:
            yield
        finally:
            self._outstanding[endpoint] -= 1
            if self._outstanding[endpoint] <= 0:
                del self._outstanding[endpoint]

    def outstanding(self, endpoint: str) -> int:
        return self._outstanding[endpoint]
