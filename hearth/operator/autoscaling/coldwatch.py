"""Event-driven wakes of the backends the operator wakes itself (issue 32): AcceleratorPool members (their
gateways never wake them; the pool keeper arbitrates and may evict), and every backend when gateways may not
call the API. The autoscaler's periodic pass would notice such a cold request only at its next pass (up to
``interval`` late, 2 s by default); instead the leader holds one long-poll per gateway pod that routes such a
model (``GET /hearth/queues?since=<n>&wait=<s>``, :class:`hearth.gateway.model.demand.ColdCalls`), and a call
kicks a pass at once. So does a pool member's backend pod going away (its devices free: a waiting member may
start now, not at the next pass).

The periodic pass stays the safety net: a pod not polled yet, a poll that failed, a gateway that predates the
long-poll (it answers without ``calls`` and is asked again only after a whole wait) are all served by it as
before. A kick never makes a pass decide anything a periodic one would not: it only runs sooner.

Why a long-poll rather than the gateway writing to the API (an annotation or an Event per cold wake): the
gateway's ServiceAccount would need write access to LLMServices or Events (:mod:`hearth.api.rbac` gives it
none for members), every cold wake would cost an API write and a watch event to every operator replica, and
the operator would still have to read demand from the gateways. The poll costs one idle connection per
gateway pod of such a model, and the answer names the model for the logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import aiohttp

from hearth.common import logs

log = logging.getLogger(__name__)

QUEUES_PATH = "/hearth/queues"
#: How long one poll is held by the gateway: a quiet gateway is asked again this often.
POLL_WAIT_SECONDS = 30.0
#: Beyond the wait, how long the answer may take before the poll counts as failed.
POLL_SLACK_SECONDS = 5.0
#: After a failed poll (the pod not listening yet, a reset), before asking again.
RETRY_SECONDS = 2.0
#: Kicked passes start at least this far apart: a burst of calls is one pass, not one per call.
MIN_KICKED_GAP_SECONDS = 0.1


class ColdWatch:
    """The leader's long-polls, one task per gateway base URL, and the kick they raise."""

    def __init__(
        self,
        *,
        wait: float = POLL_WAIT_SECONDS,
        retry: float = RETRY_SECONDS,
    ) -> None:
        self._wait = wait
        self._retry = retry
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Set when a pass should run now; the autoscaler clears it as a pass starts.
        self.kick = asyncio.Event()

    def watch(self, urls: Iterable[str], http: aiohttp.ClientSession) -> None:
        """Poll exactly *urls* from now on: new ones start, ones no longer wanted stop."""
        wanted = set(urls)
        for url in set(self._tasks) - wanted:
            self._tasks.pop(url).cancel()
        for url in wanted - set(self._tasks):
            self._tasks[url] = asyncio.create_task(self._poll(url, http), name=f"cold-call poll {url}")

    @property
    def watched(self) -> set[str]:
        return set(self._tasks)

    def wake(self, why: str, **fields: object) -> None:
        """Kick a pass now (a call arrived, or devices freed)."""
        log.debug("autoscaler pass kicked", extra=logs.fields(why=why, **fields))
        self.kick.set()

    async def pause(self, *, started: float, interval: float) -> None:
        """Until *interval* after *started* (when the last pass began, on the event loop's clock), or until
        a kick, but never sooner than the kicked gap after *started*."""
        loop = asyncio.get_running_loop()
        left = started + interval - loop.time()
        if left <= 0:
            return
        try:
            await asyncio.wait_for(self.kick.wait(), left)
        except TimeoutError:
            return
        gap = started + MIN_KICKED_GAP_SECONDS - loop.time()
        if gap > 0:
            await asyncio.sleep(gap)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, url: str, http: aiohttp.ClientSession) -> None:
        since: int | None = None
        timeout = aiohttp.ClientTimeout(total=self._wait + POLL_SLACK_SECONDS)
        while True:
            query = "" if since is None else f"?since={since}&wait={self._wait:g}"
            try:
                async with http.get(f"{url}{QUEUES_PATH}{query}", timeout=timeout) as response:
                    document = await response.json(content_type=None)
                calls = int(document["calls"])
                called = [str(model) for model in document.get("called") or []]
            except (KeyError, TypeError, ValueError, AttributeError):
                # A gateway without the long-poll answers at once: ask it again only after a whole wait.
                since = None
                await asyncio.sleep(self._wait)
                continue
            except (aiohttp.ClientError, TimeoutError):
                since = None
                await asyncio.sleep(self._retry)
                continue
            if since is not None and called:
                self.wake("cold request", gateway=url, models=",".join(called))
            since = calls
