"""Choosing a ready backend for each request: least outstanding requests, ties broken in turn."""

from __future__ import annotations

import collections
import itertools
from types import TracebackType


class Balancer:
    def __init__(self) -> None:
        self._outstanding: collections.Counter[str] = collections.Counter()
        self._turn = itertools.count()

    def pick(self, endpoints: list[str]) -> str:
        if len(endpoints) == 1:  # one ready backend, the usual case: nothing to compare
            return endpoints[0]
        if not endpoints:
            raise LookupError("no ready backend")
        fewest = min(self._outstanding[endpoint] for endpoint in endpoints)
        candidates = [endpoint for endpoint in endpoints if self._outstanding[endpoint] == fewest]
        return candidates[next(self._turn) % len(candidates)]

    def use(self, endpoint: str) -> _InUse:
        """A context in which one more request is outstanding at *endpoint*."""
        return _InUse(self._outstanding, endpoint)

    def outstanding(self, endpoint: str) -> int:
        return self._outstanding[endpoint]

    def in_flight(self) -> int:
        """Requests outstanding at any endpoint."""
        return sum(self._outstanding.values())


class _InUse:
    # A class rather than a generator-based context manager: this runs for every proxied request.
    __slots__ = ("_endpoint", "_outstanding")

    def __init__(self, outstanding: collections.Counter[str], endpoint: str) -> None:
        self._outstanding = outstanding
        self._endpoint = endpoint

    def __enter__(self) -> None:
        self._outstanding[self._endpoint] += 1

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        left = self._outstanding[self._endpoint] - 1
        if left <= 0:
            del self._outstanding[self._endpoint]
        else:
            self._outstanding[self._endpoint] = left
