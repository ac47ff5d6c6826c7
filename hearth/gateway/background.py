"""The gateway's background loops (readiness watch, status watch, API-key reload), supervised: each runs
for the life of the process, so one that ends, by an error or otherwise, leaves the gateway blind (held
requests would wait for a readiness that never comes). The first such end is logged with its cause and
stops the process, so Kubernetes restarts it, instead of being found at shutdown, if ever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from hearth.common import logs

log = logging.getLogger(__name__)


class BackgroundFailedError(RuntimeError):
    """A background loop ended while the gateway served (the message names it and why)."""


class Background:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[None], str] = {}
        #: Set when a loop ended while it should still run; :attr:`failure` says which and why.
        self.failed = asyncio.Event()
        self.failure: str | None = None

    def start(self, loop: Coroutine[Any, Any, None], *, what: str) -> None:
        task = asyncio.get_running_loop().create_task(loop, name=f"gateway {what}")
        self._tasks[task] = what
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        what = self._tasks.get(task, task.get_name())
        if task.cancelled():
            return
        error = task.exception()
        reason = f"{type(error).__name__}: {error}" if error is not None else "it returned"
        if self.failure is None:
            self.failure = f"the {what} stopped ({reason})"
            log.error(
                "a background loop stopped; the gateway stops", extra=logs.fields(loop=what, error=reason)
            )
            self.failed.set()

    async def close(self) -> None:
        """Cancel every loop and wait for them to end (their errors were reported when they happened)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.remove_done_callback(self._ended)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
