"""One model's route: everything the gateway does for one backend once a request is known to be for it.

A request reaches a route admitted by the front (:mod:`hearth.gateway.front.app`: authenticated, body read,
counted once). The route bounds its own queue (429), then forwards it at once to a ready backend, or, while
the backend is cold: rejects it (reject mode), holds it with SSE comments (streaming,
:mod:`hearth.gateway.model.hold`) or holds it silently, until its turn in the route's release queue
(:mod:`hearth.gateway.model.release`: FIFO, bounded waves once a backend is ready); then forwards it
(:mod:`hearth.gateway.forward.proxy`). A cold request raises the route's demand and wakes its backend (the
waker, builtin mode).

A dedicated gateway has one route, set from its environment; a shared gateway has one per LLMService it
routes to (:mod:`hearth.gateway.front.shared`), set from the object. What differs per model lives in
:class:`RouteSettings`: a setting the gateway reads per model is a field there, read from the LLMService in
:meth:`RouteSettings.from_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hearth.common import durations
from hearth.gateway import errors
from hearth.gateway.forward import httpparts, proxy, upstream_client
from hearth.gateway.metrics import RouteMetrics
from hearth.gateway.model import fallback as fallback_module
from hearth.gateway.model import hold, release
from hearth.gateway.model.demand import ColdCalls, Demand
from hearth.gateway.settings import ColdStartMode, GatewaySettings
from hearth.gateway.wake import eta as eta_module
from hearth.gateway.wake import progress
from hearth.gateway.wake.readiness import ReadinessSource
from hearth.gateway.wake.waker import Waker

if TYPE_CHECKING:  # only a shared gateway builds routes from LLMService objects (pydantic stays unloaded)
    from hearth.api.llmservice import EngineStatus, LLMService

QUEUE_FULL_RETRY_AFTER = 5
#: On an answer that waited for a wake (the wait in seconds is in WAKE_SECONDS_HEADER).
COLD_START_HEADER = "X-Hearth-Cold-Start"
WAKE_SECONDS_HEADER = "X-Hearth-Wake-Seconds"

#: Held requests of a model whose route was removed (its LLMService deleted, or no longer selected).
MODEL_REMOVED = errors.Refusal(
    404,
    "model_not_found",
    "the model was removed from this endpoint while the request waited",
    kind="invalid_request_error",
)


@dataclasses.dataclass(frozen=True, slots=True)
class RouteSettings:
    """What one model's route does differently from another's."""

    #: The name clients send as ``model`` (the LLMService name: profiles serve it under that name).
    model: str
    activation_timeout_s: float
    cold_start_mode: ColdStartMode
    heartbeat_s: float
    #: 0: no progress comments.
    progress_s: float
    #: Admitted requests of this model at once (waiting plus in flight); more get 429.
    max_queue: int
    #: Held requests released at once per ready endpoint.
    release_wave: int
    #: Whether the gateway scales the backend 0->1 itself (builtin mode, not a pool member).
    wakes_backend: bool = False
    #: The engine streams only on a JSON ``true`` (HEARTH_STREAM_RULE strict: llama-server, TGI).
    strict_stream: bool = False
    #: The engine's connection may carry another request after a streamed answer (HEARTH_UPSTREAM_AFTER_STREAM
    #: reuse; llama-server closes it unannounced).
    reuse_after_stream: bool = True
    #: spec.endpoint.fallback: who answers while the model is cold or full (None: nobody else).
    fallback: fallback_module.FallbackSettings | None = None

    @classmethod
    def from_gateway(cls, settings: GatewaySettings) -> RouteSettings:
        """A dedicated gateway's one route, from its environment (SPEC §3.1)."""
        return cls(
            model=settings.model_name or "model",
            activation_timeout_s=settings.activation_timeout.seconds,
            cold_start_mode=settings.cold_start_mode,
            heartbeat_s=settings.heartbeat_interval.seconds,
            progress_s=settings.progress_interval.seconds,
            max_queue=settings.max_queue,
            release_wave=settings.release_wave,
            strict_stream=settings.stream_rule == "strict",
            reuse_after_stream=settings.upstream_after_stream == "reuse",
            fallback=fallback_module.FallbackSettings.from_gateway(settings),
        )

    @classmethod
    def from_service(
        cls,
        service: LLMService,
        settings: GatewaySettings,
        *,
        wakes: bool,
        engine: EngineStatus | None = None,
    ) -> RouteSettings:
        """A shared gateway's route to *service*: per-model behaviour from the object (defaults are the
        API's), including its queue bound (spec.endpoint.maxQueue), and the rest of the bounds from the
        gateway's own settings. *wakes*: the scaler mode has gateways
        wake backends (a pool member is woken by the operator instead). *engine*: the engine's facts as the
        operator published them in status.engine (a shared gateway reads no InferenceRuntime); None (no
        status yet): the defaults a dedicated gateway has without env."""
        spec = service.spec
        heartbeat = durations.Duration.parse(spec.endpoint.cold_start.heartbeat_interval)
        activation = durations.Duration.parse(spec.scaling.activation_timeout)
        return cls(
            model=service.metadata.name,
            # As the dedicated gateway's environment reads them (SPEC §3.1): <= 0 means the default.
            activation_timeout_s=activation.seconds
            if activation.nanoseconds > 0
            else settings.activation_timeout.seconds,
            cold_start_mode=ColdStartMode(spec.endpoint.cold_start.mode),
            heartbeat_s=heartbeat.seconds
            if heartbeat.nanoseconds > 0
            else settings.heartbeat_interval.seconds,
            progress_s=settings.progress_interval.seconds,
            # spec.endpoint.maxQueue bounds this model's route on each shared gateway pod, as it bounds a
            # dedicated gateway's one route; unset: the gateway's own bound.
            max_queue=spec.endpoint.max_queue or settings.max_queue,
            release_wave=settings.release_wave,
            wakes_backend=wakes and spec.pool is None,
            strict_stream=engine is not None and engine.stream_rule == "strict",
            reuse_after_stream=engine is None or engine.upstream_after_stream != "close",
            fallback=fallback_module.FallbackSettings.from_service(service),
        )


class Route:
    def __init__(
        self,
        *,
        settings: RouteSettings,
        readiness: ReadinessSource,
        metrics: RouteMetrics,
        upstream_pool: upstream_client.Pool,
        drop_authorization: bool,
        fallback_url: str | None = None,
        waker: Waker | None = None,
        eta: eta_module.EtaSource | None = None,
        phases: progress.PhaseSource | None = None,
        cold_calls: ColdCalls | None = None,
    ) -> None:
        self.settings = settings
        self.readiness = readiness
        self.metrics = metrics
        self.waker = waker
        self.eta = eta if eta is not None else eta_module.NullEta()
        self.phases = phases if phases is not None else progress.NoPhase()
        self.demand = Demand(
            readiness=readiness, metrics=metrics, activation_timeout=settings.activation_timeout_s
        )
        #: Where a wake this route does not start itself is announced (the table's, shared by its routes).
        self.cold_calls = cold_calls if cold_calls is not None else ColdCalls()
        self.proxy = proxy.Proxy(
            upstream_pool=upstream_pool,
            readiness=readiness,
            fallback_url=fallback_url,
            drop_authorization=drop_authorization,
            reuse_after_stream=settings.reuse_after_stream,
        )
        #: When the current wake began (the first cold request since a backend was last ready).
        self._cold_since: float | None = None
        #: Whether the scaler's lead (cold request -> backend leaving zero) was measured in this wake.
        self._lead_measured = False
        self.scaler_lead = eta_module.ScalerLead()
        self.admitted = 0
        self.held = 0
        self.closing = False
        #: What held requests are told when the route closes its holds.
        self._closed_by = errors.SHUTTING_DOWN
        # Held requests go to a ready backend first in, first out, a bounded wave at a time.
        self.release = release.ReleaseQueue(
            wave=settings.release_wave,
            endpoints=lambda: len(readiness.endpoints()),
            ready=readiness.ready,
        )
        self.fallback = fallback_module.Fallback(settings.fallback) if settings.fallback is not None else None
        #: Every answer of the model itself says so (a fallback's names the fallback's model).
        self._served_by = {fallback_module.SERVED_BY_HEADER: settings.model}
        #: Fallbacks replaced by a changed LLMService, closed with the route (requests may still use them).
        self._retired: list[fallback_module.Fallback] = []
        readiness.on_change(self._on_readiness)
        self.phases.on_change(self._on_phase)
        self.demand.subscribe(self._on_demand)
        self._woken_at: float | None = None  # when a backend became ready while requests were held

    @property
    def model(self) -> str:
        return self.settings.model

    def update(self, settings: RouteSettings, *, waker: Waker | None) -> Waker | None:
        """New settings from a changed LLMService: they apply to requests admitted from now on. Returns the
        waker it replaced, for the caller to close (a model that joined a pool is started by the pool
        keeper: a scale request its route had in flight must not go on)."""
        if settings.fallback != self.settings.fallback:
            if self.fallback is not None:
                self._retired.append(self.fallback)
            self.fallback = (
                fallback_module.Fallback(settings.fallback) if settings.fallback is not None else None
            )
        self.settings = settings
        self._served_by = {fallback_module.SERVED_BY_HEADER: settings.model}
        self.demand.activation_timeout = settings.activation_timeout_s
        self.proxy.reuse_after_stream = settings.reuse_after_stream
        dropped = self.waker if self.waker is not waker else None
        self.waker = waker
        return dropped

    def _on_readiness(self, ready: bool) -> None:
        if ready:
            self._cold_since = None
        if ready and self.held > 0:
            self._woken_at = asyncio.get_running_loop().time()
        self.release.set_ready(ready)

    def _on_phase(self, phase: progress.Phase) -> None:
        """Note the scaler's lead when the wake leaves ``requested``, and interrupt every held stream's wait
        once, so each tells its client the new phase; a wake that failed ends every held request now."""
        if phase is progress.Phase.FAILED:
            failure = self.phases.failure()
            if failure is not None:
                self.release.refuse_waiting(failure.refusal)
        if self._cold_since is not None and not self._lead_measured and phase in progress.STARTED:
            self._lead_measured = True
            self.scaler_lead.record(asyncio.get_running_loop().time() - self._cold_since)
        self.release.interrupt()

    def _on_demand(self, active: bool) -> None:
        if not active:
            # No request, lease or grace left: no wake under way, so the next cold request begins a new one
            # (a wake given up at the activation timeout must not make every later one look overdue).
            self._cold_since = None

    def close_holds(self, refusal: errors.Refusal = errors.SHUTTING_DOWN) -> None:
        """Answer every request still held cold now with *refusal* (they never reached a backend, so a
        retry is safe)."""
        self.closing = True
        self._closed_by = refusal
        self.release.close()

    async def close(self) -> None:
        """Stop the route's timers and any scale request in flight (the route is gone or the process ends)."""
        await self.demand.close()
        if self.waker is not None:
            await self.waker.close()
        for fallback in [*self._retired, *([self.fallback] if self.fallback is not None else [])]:
            await fallback.close()

    # ---- what clients may read without waking anything ---------------------------------------------
    def state(self) -> dict[str, Any]:
        """The model's state as ``/v1/models`` shows it: ready, waking (a wake under way: demand here, or
        the operator reports the backend leaving zero) or cold; with the phase and ETA while waking."""
        if self.readiness.ready:
            return {"state": "ready"}
        failure = self.phases.failure()
        if failure is not None:
            return {
                "state": "failed",
                "reason": failure.refusal.code,
                "message": failure.refusal.message,
                "retry_after_s": failure.retry_after_s,
            }
        phase = self.phases.phase()
        if self.demand.active or phase in progress.STARTED - {progress.Phase.READY}:
            document: dict[str, Any] = {"state": "waking", "phase": str(phase)}
            estimate = self.wake_eta()
            if estimate is not None:
                document["eta_s"] = math.ceil(estimate.eta_s)
            return document
        return {"state": "cold"}

    def routing(self) -> dict[str, Any]:
        """Where this route sends requests now (``GET /hearth/queues?routing=1``): the operator, having
        evicted a pool member, waits until every gateway pod routes it nowhere and has nothing outstanding
        at any of its endpoints, then tells the member's drain sidecars so (issue 32). Counts only: the
        path is unauthenticated, as ``/hearth/queue`` is, and pod addresses are nobody else's business."""
        return {
            "addressesPods": self.readiness.addresses_pods,
            "endpoints": len(self.readiness.endpoints()),
            "outstanding": self.proxy.balancer.in_flight(),
        }

    def warm(self, identity: str) -> dict[str, Any]:
        """Wake on intent (``POST /hearth/warm``): one warm lease per client *identity*; the state to
        answer with (202)."""
        if not self.readiness.ready and self.phases.failure() is not None:
            return self.state()  # nothing to wake before the retry time
        state: dict[str, Any] = {"state": "ready" if self.readiness.ready else "cold"}
        if not self.readiness.ready:
            taken, lease_s = self.demand.warm(identity)
            if taken:  # a client asking again neither counts twice nor stretches the lease
                self._cold(asyncio.get_running_loop().time())
            state["lease_s"] = round(lease_s, 1)
            state["phase"] = str(self.phases.phase())
            estimate = self.wake_eta()
            if estimate is not None:
                state["eta_s"] = math.ceil(estimate.eta_s)
        return state

    def wake_eta(self) -> eta_module.Eta | None:
        """The ETA of the wake under way (None without wake history)."""
        now = asyncio.get_running_loop().time()
        since = self._cold_since if self._cold_since is not None else now
        return eta_module.estimate(self.eta, elapsed_s=now - since, lead_s=self.scaler_lead.seconds())

    def _retry_after(self) -> int:
        return eta_module.retry_after(self.wake_eta())

    # ---- serving an admitted request ----------------------------------------------------------------
    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1

    def _take_place(self, exchange: proxy.Exchange) -> release.Place:
        """A place in the release queue; its slot is given back when the backend's answer begins (or the
        attempt fails), or at the latest when the request ends (:meth:`admit`)."""
        place = self.release.enter()

        def answered(began: bool) -> None:
            if began and self._woken_at is not None:
                # The wake's last phase: ready -> the backend's first answer (its headers) to a held request.
                self.metrics.first_byte(asyncio.get_running_loop().time() - self._woken_at)
                self._woken_at = None
            self.release.answered(place)

        exchange.on_answer = answered
        return place

    async def _wait_held(self, place: release.Place, deadline: float, *, interruptible: bool = False) -> bool:
        """Hold until *place*'s turn (True), the route closes or *deadline* passes (False); an
        *interruptible* wait (a held stream's) also ends (False) at a phase change, so it can say so."""
        with self._holding():
            return await self.release.wait(place, deadline=deadline, interruptible=interruptible)

    async def admit(
        self, request: web.BaseRequest, payload: bytearray, exchange: proxy.Exchange
    ) -> web.StreamResponse:
        """Serve one request of this model whose body has been read: bounded, then forwarded or held."""
        if self.admitted >= self.settings.max_queue:
            fallback = self.fallback
            if fallback is not None and fallback.settings.when_full:
                return await self._from_fallback(fallback, request, payload, reason="queue_full")
            self.metrics.reject("queue_full")
            return errors.error_response(
                429,
                "gateway queue full",
                kind="rate_limit_exceeded",
                code="queue_full",
                retry_after=QUEUE_FULL_RETRY_AFTER,
            )
        self.admitted += 1
        self.demand.admitted()
        place: release.Place | None = None
        try:
            if self.readiness.ready and not self.release.must_queue:
                # The warm path: a ready backend and nobody held before this request.
                self.metrics.activation_waited(0.0)
                return await self.proxy.forward(request, payload, exchange, extra_headers=self._served_by)
            place = self._take_place(exchange)
            return await self._serve(request, payload, exchange, place)
        finally:
            if place is not None:
                self.release.leave(place)
            self.admitted -= 1
            self.demand.finished()

    async def _serve(
        self, request: web.BaseRequest, body: bytearray, exchange: proxy.Exchange, place: release.Place
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        admitted_at = loop.time()
        if self.readiness.ready:
            return await self._behind_held(request, body, exchange, place)
        reason = self._fallback_reason(admitted_at)
        if reason is not None and self.fallback is not None:
            self.release.leave(place)
            return await self._from_fallback(self.fallback, request, body, reason=reason)
        refused_cold = self._wake_or_refuse(admitted_at)
        if refused_cold is not None:
            return refused_cold
        settings = self.settings
        deadline = admitted_at + settings.activation_timeout_s
        after_hold = self._after_hold()
        if after_hold is not None:
            deadline = min(deadline, admitted_at + after_hold.settings.hold_s)
        if httpparts.wants_stream(request.method, body, strict=settings.strict_stream):
            return await self._hold_streaming(
                request, body, admitted_at, exchange, place, deadline=deadline, after_hold=after_hold
            )
        return await self._hold_plain(
            request, body, exchange, place, admitted_at=admitted_at, deadline=deadline, after_hold=after_hold
        )

    async def _hold_plain(
        self,
        request: web.BaseRequest,
        body: bytearray,
        exchange: proxy.Exchange,
        place: release.Place,
        *,
        admitted_at: float,
        deadline: float,
        after_hold: fallback_module.Fallback | None,
    ) -> web.StreamResponse:
        """Hold a non-streaming request silently until its turn, then forward it; past *deadline* it is
        refused, or answered by *after_hold*."""
        loop = asyncio.get_running_loop()
        if not await self._wait_held(place, deadline):
            refused = self._refused(place)
            if refused is not None:
                return refused.response(retry_after=self._refused_retry_after(place))
            if after_hold is not None:
                self.release.leave(place)
                return await self._from_fallback(
                    after_hold, request, body, reason="hold_timeout", elapsed_s=loop.time() - admitted_at
                )
            self.metrics.reject("activation_timeout")
            return errors.ACTIVATION_TIMEOUT.response(retry_after=self._retry_after())
        waited = loop.time() - admitted_at
        self.metrics.activation_waited(waited)
        # The answer says it waited for a wake, so a client can tell a cold start from a slow model.
        woke = {COLD_START_HEADER: "true", WAKE_SECONDS_HEADER: f"{waited:.3f}", **self._served_by}
        return await self.proxy.forward(request, body, exchange, extra_headers=woke)

    async def _behind_held(
        self, request: web.BaseRequest, body: bytearray, exchange: proxy.Exchange, place: release.Place
    ) -> web.StreamResponse:
        """Ready, but held requests are still being released: this one waits its turn behind them."""
        loop = asyncio.get_running_loop()
        admitted_at = loop.time()
        deadline = admitted_at + self.settings.activation_timeout_s
        if not await self.release.wait(place, deadline=deadline):
            refused = self._refused(place)
            if refused is not None:
                return refused.response(retry_after=self._refused_retry_after(place))
        self.metrics.activation_waited(loop.time() - admitted_at)
        return await self.proxy.forward(request, body, exchange, extra_headers=self._served_by)

    # ---- the fallback (issue 31) --------------------------------------------------------------------
    def _fallback_reason(self, admitted_at: float) -> str | None:
        """Why a cold request goes to the fallback at once (None: it is held or refused as usual). The
        model's wake starts all the same (unless its wake failed: then not before the retry time)."""
        fallback = self.fallback
        if fallback is None:
            return None
        settings = fallback.settings
        if self.phases.failure() is not None:
            return "wake_failed" if settings.while_cold != fallback_module.NEVER else None
        if settings.when_full and self.phases.phase() is progress.Phase.WAITING_FOR_CAPACITY:
            reason = "no_capacity"
        elif settings.while_cold == fallback_module.IMMEDIATELY:
            reason = "cold"
        else:
            return None
        self._cold(admitted_at)
        return reason

    def _after_hold(self) -> fallback_module.Fallback | None:
        """The fallback that answers a cold request once it has been held for its holdFor."""
        fallback = self.fallback
        if fallback is None or fallback.settings.while_cold != fallback_module.AFTER_HOLD:
            return None
        return fallback

    async def _from_fallback(
        self,
        fallback: fallback_module.Fallback,
        request: web.BaseRequest,
        body: bytearray,
        *,
        reason: str,
        elapsed_s: float = 0.0,
        committed: web.StreamResponse | None = None,
    ) -> web.StreamResponse:
        response, ok = await fallback.answer(
            request, body, reason=reason, elapsed_s=elapsed_s, committed=committed
        )
        self.metrics.fallback(reason, "ok" if ok else "error")
        return response

    def _wake_or_refuse(self, admitted_at: float) -> web.Response | None:
        """A cold request: wake the backend, unless its wake failed (then say why, and do not wake it again
        before the retry time); in reject mode, refuse it all the same."""
        failure = self.phases.failure()
        if failure is not None:
            self.metrics.reject("wake_failed")
            return failure.refusal.response(retry_after=failure.retry_after_s)
        self._cold(admitted_at)
        if self.settings.cold_start_mode is ColdStartMode.REJECT:
            self.metrics.reject("cold_start")
            return errors.COLD.response(retry_after=self._retry_after())
        return None

    def _refused(self, place: release.Place) -> errors.Refusal | None:
        """Why a held request's place was refused: its wake failed, or the route closes its holds."""
        if place.refusal is not None:
            self.metrics.reject("wake_failed")
            return place.refusal
        return self._closed_by if self.closing else None

    def _refused_retry_after(self, place: release.Place) -> int:
        failure = self.phases.failure() if place.refusal is not None else None
        return failure.retry_after_s if failure is not None else 1

    def _cold(self, admitted_at: float) -> None:
        """A cold request (or a warm lease): demand up, the backend woken, the wake's start noted."""
        waking = self._cold_since is None
        if waking:
            self._cold_since = admitted_at
            self._lead_measured = False
        self.demand.cold_request()
        if self.waker is not None:
            self.waker.wake(admitted_at)
        elif waking:
            # Someone else wakes it (the operator's pool keeper; KEDA in its modes): say so at once to
            # whoever long-polls the gateway, rather than leave it to their next look at the demand.
            self.cold_calls.record(self.model)

    async def _hold_streaming(
        self,
        request: web.BaseRequest,
        body: bytearray,
        admitted_at: float,
        exchange: proxy.Exchange,
        place: release.Place,
        *,
        deadline: float,
        after_hold: fallback_module.Fallback | None = None,
    ) -> web.StreamResponse:
        """Commit a 200 event stream at once, hold it with comments (:mod:`hold`) until its turn, then
        append the backend's body; a hold that ends otherwise ends the stream with an error event, or,
        past *deadline* with *after_hold*, with the fallback's answer."""
        loop = asyncio.get_running_loop()
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            COLD_START_HEADER: "true",
        }
        if after_hold is None:
            # Only this model can answer it now (an AfterHold stream may still end at the fallback).
            headers.update(self._served_by)
        if request.keep_alive:
            # SPEC §3.3's header, but only as a promise the connection keeps: an HTTP/1.0 client or one
            # that sent Connection: close gets a stream that ends with the connection.
            headers["Connection"] = "keep-alive"
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        exchange.committed_status = 200
        settings = self.settings

        async def wait_turn(until: float) -> bool:
            return await self._wait_held(place, until, interruptible=True)

        plan = hold.Hold(
            admitted_at=admitted_at,
            deadline=deadline,
            heartbeat_s=settings.heartbeat_s,
            progress_s=settings.progress_s,
            wait_ready=wait_turn,
            is_ready=lambda: place.released,
            is_closing=lambda: self.closing or place.refusal is not None,
            eta=self.wake_eta,
            phase=self.phases.phase,
        )
        outcome = await hold.hold(response, plan)
        if outcome is hold.Outcome.TIMED_OUT and after_hold is not None and self._refused(place) is None:
            self.release.leave(place)
            return await self._from_fallback(
                after_hold,
                request,
                body,
                reason="hold_timeout",
                elapsed_s=loop.time() - admitted_at,
                committed=response,
            )
        if outcome is not hold.Outcome.READY:
            ended = self._refused(place)
            if outcome is hold.Outcome.TIMED_OUT or ended is None:
                self.metrics.reject("activation_timeout")
                ended = errors.ACTIVATION_TIMEOUT
            elif place.refusal is not None and settings.progress_s > 0:
                # The last progress word names the end: the wake failed (the error event says why).
                failed = progress.comment(
                    elapsed_s=loop.time() - admitted_at, eta=None, phase=progress.Phase.FAILED
                )
                await response.write(failed)
            await response.write(ended.event())
            await response.write_eof()
            return response
        self.metrics.activation_waited(loop.time() - admitted_at)
        return await self.proxy.forward(request, body, exchange, committed=response)
