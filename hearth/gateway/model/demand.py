"""Demand: what the gateway tells autoscalers (SPEC §3.5).

``pending`` counts admitted requests (waiting or in flight). A cold request also starts or renews the
*activation lease*: until the backend is ready (then a 15 s grace) or the activation timeout passes,
demand stays at least 1, so a rejected or disconnected cold request still wakes the backend.

A *warm lease* (``POST /hearth/warm``) is the same intent without a request: it starts the activation lease
and counts as one unit of demand, as one held request would, until the backend is ready or the activation
timeout passes; never more than one per client at a time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

from hearth.gateway.metrics import RouteMetrics
from hearth.gateway.wake.readiness import ReadinessSource

READY_GRACE_SECONDS = 15.0

#: Called with the new active flag (demand > 0) on every flip.
Subscriber = Callable[[bool], None]


class Demand:
    def __init__(
        self,
        *,
        readiness: ReadinessSource,
        metrics: RouteMetrics,
        activation_timeout: float,
        ready_grace: float = READY_GRACE_SECONDS,
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self.activation_timeout = activation_timeout
        self._ready_grace = ready_grace
        self.pending = 0
        self._lease_deadline: float | None = None
        #: Warm leases: client identity -> when its lease ends.
        self._warm: dict[str, float] = {}
        self._grace_until = 0.0
        self._active = False
        self._subscribers: list[Subscriber] = []
        self._lease_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_value = 0

    def scraped_value(self) -> int:
        """The value for a scrape (read when scraped, not written per request: admitting a request
        touches no metric)."""
        try:
            return self.value()
        except RuntimeError:  # scraped outside the event loop (a test reading the registry): last known
            return self._last_value

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def value(self) -> int:
        now = self._now()
        warm = self._warm_count(now)
        if self.pending + warm > 0:
            return self.pending + warm
        leased = self._lease_deadline is not None and now < self._lease_deadline
        return 1 if leased or now < self._grace_until else 0

    @property
    def active(self) -> bool:
        return self._active

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive every flip of the active flag; returns the unsubscribe function."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def admitted(self) -> None:
        self.pending += 1
        if not self._active:
            # Only the first request can flip demand on; while active, one more changes nothing else (a
            # grace timer still set finds requests pending when it fires, and leaves demand on).
            self._changed()

    def finished(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            # Only the last request can end demand (or start the grace countdown).
            self._changed()

    def cold_request(self) -> None:
        """Start or renew the activation lease."""
        self._lease_deadline = self._now() + self.activation_timeout
        if self._lease_task is None or self._lease_task.done():
            self._lease_task = asyncio.get_running_loop().create_task(self._watch_lease())
        self._changed()

    def warm(self, identity: str) -> tuple[bool, float]:
        """Take a warm lease for *identity* (a client) unless it holds one already: whether one was taken
        (then the caller starts the wake, as for a cold request) and the seconds the lease has left."""
        now = self._now()
        deadline = self._warm.get(identity)
        if deadline is not None and deadline > now:
            return False, deadline - now
        self._warm[identity] = now + self.activation_timeout
        return True, self.activation_timeout

    def _warm_count(self, now: float) -> int:
        if not self._warm:
            return 0
        for identity in [key for key, deadline in self._warm.items() if deadline <= now]:
            del self._warm[identity]  # expired: pruned here, so the map never outgrows the live leases
        return len(self._warm)

    async def _watch_lease(self) -> None:
        while self._lease_deadline is not None:
            remaining = self._lease_deadline - self._now()
            if remaining <= 0:
                self._lease_deadline = None  # expired (a renewal would have moved the deadline)
                break
            if await self._readiness.wait_ready(remaining):
                self._lease_deadline = None
                self._warm.clear()  # the intent is met: the backend is ready
                self._grace_until = self._now() + self._ready_grace
                break
        self._changed()

    def _changed(self) -> None:
        value = self._last_value = self.value()
        self._schedule_expiry()
        active = value > 0
        if active == self._active:
            return
        self._active = active
        if active:
            self._metrics.activated()
        for subscriber in list(self._subscribers):
            subscriber(active)

    def _schedule_expiry(self) -> None:
        """Recompute when the grace period ends, so demand falls to 0 without a new request."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._now()
        if self.pending == 0 and self._grace_until > now:
            self._timer = asyncio.get_running_loop().call_at(self._grace_until + 0.001, self._changed)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task


class ColdCalls:
    """Cold requests whose backend this gateway does not wake itself (an AcceleratorPool member's: its pool
    keeper in the operator arbitrates, and evicts, before it may wake): a numbered sequence the operator's
    autoscaler long-polls (``GET /hearth/queues?since=<n>&wait=<seconds>``), so the pool arbitrates as soon
    as such a request is admitted instead of at its next periodic pass (issue 32).

    One number per wake (the first cold request since the backend was last ready or demand last ended), not
    per request: the periodic pass goes on serving a wake the pool could not grant at once. The numbers are
    the process's own: a caller holding a number from another process (a restarted gateway at the same
    address) is answered at once and adopts the new one."""

    def __init__(self, *, kept: int = 64) -> None:
        self.sequence = 0
        #: The latest calls, (number, model), for the answer to name who asked.
        self._calls: collections.deque[tuple[int, str]] = collections.deque(maxlen=kept)
        self._changed = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """The gateway stops: every long-poll is answered now, and later ones at once (none holds its
        shutdown up)."""
        self._closed = True
        self._changed.set()

    def record(self, model: str) -> None:
        self.sequence += 1
        self._calls.append((self.sequence, model))
        # Every waiter of the current event is woken; later waiters wait on a fresh one.
        self._changed.set()
        if not self._closed:
            self._changed = asyncio.Event()

    def since(self, number: int) -> list[str]:
        """The models of the calls after *number* (every kept one when *number* is not this process's)."""
        if number > self.sequence:
            number = 0
        return sorted({model for sequence, model in self._calls if sequence > number})

    async def wait(self, *, since: int, seconds: float) -> int:
        """The sequence number once it differs from *since*, or after *seconds* (then unchanged)."""
        if since == self.sequence and seconds > 0 and not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), seconds)
        return self.sequence
