"""Releasing held requests to a backend that just became ready: first in, first out, in bounded waves.

Thousands of requests can be held while a model wakes. Waking every one at once is a thundering herd: one
event loop opens thousands of upstream connections before it writes anything, so the first request waits
for the last, and the backend (whose engine batches a few hundred sequences at most) cannot take them at
once anyway. Here each held request has a place in one FIFO queue; while a backend is ready, at most
``wave`` requests per ready endpoint are *in their turn* (released, their backend answer not begun yet);
each answer that begins, or fails, lets the next one in.

A wave is let in a few places per event-loop iteration (``STEP``), not all at once: every released
request takes a step in each iteration it is runnable, so releasing a whole wave in one iteration would
make the first request's connect, write and read each wait behind all the others' steps. Ramped, the
first request is a few iterations ahead of the last of its wave, and its first byte comes first.

A request arriving while others still queue waits behind them (``must_queue``), so the held ones are never
overtaken. Time never appears here: the caller bounds each wait (the hold's deadlines).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

from hearth.gateway import errors

#: Places released per event-loop iteration while a wave fills.
STEP = 8


class Place:
    """One request's place in the queue: released once its turn comes (then it holds a slot until
    :meth:`ReleaseQueue.answered`), or refused when the gateway closes its holds."""

    __slots__ = ("_future", "refusal", "slot")

    def __init__(self, future: asyncio.Future[bool]) -> None:
        self._future = future
        #: Whether this request holds one of the wave's slots (given back once, by ``answered``).
        self.slot = False
        #: What the request is told when its place was refused by :meth:`ReleaseQueue.refuse_waiting`.
        self.refusal: errors.Refusal | None = None

    @property
    def released(self) -> bool:
        return self._future.done() and not self._future.cancelled() and self._future.result()

    @property
    def settled(self) -> bool:
        """Released or refused: waiting any longer changes nothing."""
        return self._future.done()


class ReleaseQueue:
    def __init__(self, *, wave: int, endpoints: Callable[[], int], ready: bool = False) -> None:
        if wave < 1:
            raise ValueError("a release wave is at least one request")
        self._wave = wave
        self._endpoints = endpoints
        self._ready = ready
        self._closing = False
        self._places: collections.deque[Place] = collections.deque()
        #: Places still waiting (the deque may also hold ones given up, skipped when reached).
        self.waiting = 0
        #: Released requests whose backend answer has not begun yet.
        self.in_turn = 0
        #: Waits that a phase change ends early (held streams, which then tell their clients).
        self._interruptible: set[asyncio.Timeout] = set()
        self._pump_scheduled = False

    @property
    def capacity(self) -> int:
        """How many requests may be in their turn at once: ``wave`` per ready endpoint."""
        return self._wave * max(1, self._endpoints())

    @property
    def must_queue(self) -> bool:
        """Whether a request arriving now must take a place (others are still waiting for theirs)."""
        return self.waiting > 0

    def enter(self) -> Place:
        place = Place(asyncio.get_running_loop().create_future())
        self._places.append(place)
        self.waiting += 1
        self._pump()
        return place

    async def wait(self, place: Place, *, deadline: float, interruptible: bool = False) -> bool:
        """Wait until *place* is released (True), refused, or *deadline* (loop time) passes (False); the
        place is kept on a timeout, so a held stream keeps it between its heartbeats. An *interruptible*
        wait also ends (False) at :meth:`interrupt`."""
        if not place.settled:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline) as timeout:
                    if interruptible:
                        self._interruptible.add(timeout)
                    try:
                        # Shielded: a timeout must not cancel the place itself, only this wait.
                        await asyncio.shield(place._future)
                    finally:
                        self._interruptible.discard(timeout)
        return place.released

    def interrupt(self) -> None:
        """End every interruptible wait now: its timeout moves to this moment (no task per waiter)."""
        if self._interruptible:
            now = asyncio.get_running_loop().time()
            for timeout in list(self._interruptible):
                # One already fired (a second phase change before its waiter ran) cannot be moved again:
                # reschedule would raise, and the error would stop the status watch that called this.
                if not timeout.expired():
                    timeout.reschedule(now)

    def leave(self, place: Place) -> None:
        """The request is done with its place (answered, failed, timed out or gone): give back whatever it
        still holds. Idempotent."""
        future = place._future
        if not future.done():
            future.cancel()  # skipped when the queue reaches it
            self.waiting -= 1
        self.answered(place)

    def answered(self, place: Place) -> None:
        """*place*'s backend answer began (or failed): its slot goes to the next in line."""
        if place.slot:
            place.slot = False
            self.in_turn -= 1
            self._pump()

    def set_ready(self, ready: bool) -> None:
        self._ready = ready
        self._pump()

    def close(self) -> None:
        """Refuse every waiting place now (the gateway is shutting down)."""
        self._closing = True
        self._refuse(None)

    def refuse_waiting(self, refusal: errors.Refusal) -> None:
        """Refuse every place waiting now with *refusal* (the wake failed); later ones queue as usual."""
        self._refuse(refusal)

    def _refuse(self, refusal: errors.Refusal | None) -> None:
        while self._places:
            place = self._places.popleft()
            if not place._future.done():
                place.refusal = refusal
                place._future.set_result(False)
                self.waiting -= 1

    def _pump(self) -> None:
        if not self._ready or self._closing or self._pump_scheduled:
            return
        capacity = self.capacity
        released = 0
        while self._places and self.in_turn < capacity:
            if released == STEP:
                # The rest of the wave in the next iteration, after the ones just released took a step.
                self._pump_scheduled = True
                asyncio.get_running_loop().call_soon(self._pump_later)
                return
            place = self._places.popleft()
            if place._future.done():
                continue  # given up before its turn
            place.slot = True
            self.in_turn += 1
            self.waiting -= 1
            released += 1
            place._future.set_result(True)

    def _pump_later(self) -> None:
        self._pump_scheduled = False
        self._pump()
