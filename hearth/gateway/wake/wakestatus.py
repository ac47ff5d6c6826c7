"""The gateway's own LLMService, watched as one object: what the wake under way is doing and how long recent
wakes took.

The operator already observes the backend pods and writes each wake's boundaries into the status
(``status.currentWake``) and the recent totals with their quantiles (``status.wakeHistory``). One watch on
that single object (by name, so the gateway's Role can be limited to it) gives every held request its
phase and ETA from memory: no held request ever asks the API anything.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hearth.api import wakereasons
from hearth.common import logs, timestamps
from hearth.gateway import errors
from hearth.gateway.wake import eta as eta_module
from hearth.gateway.wake.progress import Phase
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.informer import Informer

if TYPE_CHECKING:
    # Imported where a status is read: pydantic and the API models (about 10 MiB) are no use to a gateway
    # that reads no LLMService status (no API access, or no HEARTH_LLMSERVICE).
    from hearth.api import telemetry
    from hearth.api.llmservice import LLMServiceStatus

log = logging.getLogger(__name__)


#: The boundaries of status.currentWake, latest first: the first one reached names the phase.
_REACHED: tuple[tuple[Callable[[telemetry.Wake], object], Phase], ...] = (
    (lambda wake: wake.ready_at, Phase.READY),
    (lambda wake: wake.containers_started_at, Phase.LOADING),
    (lambda wake: wake.bound_at, Phase.CREATING),
    (lambda wake: wake.unschedulable, Phase.WAITING_FOR_CAPACITY),
)


def wake_phase(status: LLMServiceStatus | None) -> Phase:
    """The phase a held client is told, from the status the operator wrote (None: not read yet)."""
    if status is None:
        return Phase.UNKNOWN
    from hearth.api import pool as pool_api  # loaded already: a status was read

    if status.pool is not None and status.pool.state == pool_api.WAITING:
        # Its AcceleratorPool has no device free yet (status.pool.reason says who holds them).
        return Phase.WAITING_FOR_CAPACITY
    wake = status.current_wake
    if wake is None:
        # Either the wake just completed (the operator saw a ready pod before this gateway's readiness
        # watch did; the Deployment's own ready count may still lag, phase Loading), or the operator has
        # not seen the backend leave zero yet (only then is the request still just "requested").
        return Phase.READY if status.phase in ("Ready", "Loading") else Phase.REQUESTED
    return next((phase for reached, phase in _REACHED if reached(wake)), Phase.SCHEDULING)


@dataclasses.dataclass(frozen=True, slots=True)
class _Failure:
    """The operator's ``wakeFailure``, as kept between status updates."""

    refusal: errors.Refusal
    #: Unix time after which a request wakes the backend again.
    retry_at: float
    #: When the operator detected it (its RFC 3339 text): a different one is a new failure.
    since: str


def _failure_of(status: LLMServiceStatus | None) -> _Failure | None:
    """The status's ``wakeFailure`` (None: none, or a retryAt this version cannot read)."""
    failure = status.wake_failure if status is not None else None
    if failure is None:
        return None
    retry_at = timestamps.parse(failure.retry_at)
    if retry_at is None:
        return None
    refusal = errors.wake_failed(wakereasons.client_code(failure.reason), failure.message)
    return _Failure(refusal=refusal, retry_at=retry_at.timestamp(), since=failure.since)


def wake_times(status: LLMServiceStatus | None) -> eta_module.WakeTimes | None:
    """The recent wakes' median and p90, when the status has both."""
    history = status.wake_history if status is not None else None
    if history is None or history.p50_seconds is None or history.p90_seconds is None:
        return None
    return eta_module.WakeTimes(p50_s=history.p50_seconds, p90_s=history.p90_seconds)


class StatusFeed:
    """An :class:`eta.EtaSource` and a :class:`progress.PhaseSource` fed with one LLMService's status as it
    changes (by a watch on that object, or by a shared gateway's watch on all of them)."""

    __slots__ = ("_callbacks", "_failure", "_name", "_phase", "_times", "_unreadable_logged", "_wall")

    def __init__(self, name: str, *, wall: Callable[[], float] = time.time) -> None:
        self._name = name
        #: Unix time, to compare with a failure's retryAt (written by the operator, in wall-clock time).
        self._wall = wall
        self._failure: _Failure | None = None
        # Only what held clients are told is kept, not the status itself (a shared gateway keeps one feed
        # per model it routes, most of them idle).
        self._times: eta_module.WakeTimes | None = None
        self._phase = Phase.UNKNOWN
        self._callbacks: list[Callable[[Phase], None]] = []
        self._unreadable_logged = False

    def wake_times(self) -> eta_module.WakeTimes | None:
        return self._times

    def phase(self) -> Phase:
        return Phase.FAILED if self.failure() is not None else self._phase

    def failure(self) -> errors.FailedWake | None:
        failure = self._failure
        if failure is None:
            return None
        left = failure.retry_at - self._wall()
        if left <= 0:
            return None  # past its retryAt: the next request wakes the backend again
        return errors.FailedWake(refusal=failure.refusal, retry_after_s=max(1, math.ceil(left)))

    def on_change(self, callback: Callable[[Phase], None]) -> None:
        self._callbacks.append(callback)

    def update(self, status: dict[str, Any] | None) -> None:
        """The object's status as written now (None: the object is gone)."""
        import pydantic

        from hearth.api.llmservice import LLMServiceStatus

        parsed: LLMServiceStatus | None = None
        if status is not None:
            try:
                parsed = LLMServiceStatus.model_validate(status)
            except pydantic.ValidationError as error:
                # A status this version cannot read (e.g. written by a newer operator): say so once, and
                # tell clients nothing rather than something wrong.
                if not self._unreadable_logged:
                    self._unreadable_logged = True
                    log.warning(
                        "cannot read the LLMService status; held clients get no phase or ETA",
                        extra=logs.fields(llmservice=self._name, error=str(error).splitlines()[0]),
                    )
        self._times = wake_times(parsed)
        failure = _failure_of(parsed)
        new = failure is not None and (self._failure is None or failure.since != self._failure.since)
        self._failure = failure
        phase = wake_phase(parsed)
        if new and self.failure() is not None:
            # Every request held now learns it at once (a wake retried after retryAt that fails again is
            # a new failure, even if the phase never left failed).
            self._phase = phase
            for callback in self._callbacks:
                callback(Phase.FAILED)
        elif phase is not self._phase:
            self._phase = phase
            for callback in self._callbacks:
                callback(phase)


class ServiceStatus(StatusFeed):
    """A :class:`StatusFeed` fed by a watch on one LLMService (a dedicated gateway's own)."""

    __slots__ = ("informer",)

    def __init__(self, client: KubeClient, *, namespace: str, name: str) -> None:
        super().__init__(name)
        self.informer = Informer(
            client,
            resources.LLMSERVICE,
            namespace=namespace,
            field_selector=f"metadata.name={name}",
            handler=self._on_event,
            resync_seconds=600,
        )

    async def run(self) -> None:
        await self.informer.run()

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.update(None if kind == "DELETED" else obj.get("status") or {})
