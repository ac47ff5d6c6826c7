"""The gateway's HTTP application (SPEC §3.2-3.3 with DESIGN improvements 1, 3 and 4).

Every path but ``/healthz``, ``/hearth/queue``, ``/hearth/warm`` and ``/metrics`` is proxied and counts as
demand, with any method. A request is admitted (bounded), then, if the backend is cold: rejected (reject
mode), held with SSE comments (streaming, :mod:`hearth.gateway.hold`) or held silently, until its turn in
the release queue (:mod:`hearth.gateway.release`: FIFO, bounded waves once a backend is ready); then
forwarded (:mod:`hearth.gateway.proxy`). Every proxied answer is counted once, in :meth:`Gateway.handle`.
``POST /hearth/warm`` starts a wake without a request (a UI opening a chat).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from hearth.common import logs, serve
from hearth.gateway import (
    auth,
    errors,
    hold,
    httpparts,
    progress,
    proxy,
    release,
    request_body,
    upstream_client,
)
from hearth.gateway import eta as eta_module
from hearth.gateway.demand import Demand
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.readiness import ReadinessSource
from hearth.gateway.settings import ColdStartMode, GatewaySettings
from hearth.gateway.waker import Waker

log = logging.getLogger(__name__)

_Answer = TypeVar("_Answer", bound=web.StreamResponse)

HEARTBEAT = hold.HEARTBEAT
QUEUE_FULL_RETRY_AFTER = 5
#: On an answer that waited for a wake (the wait in seconds is in WAKE_SECONDS_HEADER).
COLD_START_HEADER = "X-Hearth-Cold-Start"
WAKE_SECONDS_HEADER = "X-Hearth-Wake-Seconds"


@dataclasses.dataclass(frozen=True, slots=True)
class _Refusal:
    """An answer the gateway gives instead of the backend's: a JSON error, or the same error as an SSE
    event inside a stream already committed (which the openai SDKs raise as ``APIError`` with the code)."""

    status: int
    code: str
    message: str
    kind: str = "service_unavailable"

    def event(self) -> bytes:
        return errors.stream_error_event(self.message, kind=self.kind, code=self.code)

    def response(self, *, retry_after: int) -> web.Response:
        return errors.error_response(
            self.status, self.message, kind=self.kind, code=self.code, retry_after=retry_after
        )


COLD = _Refusal(503, "backend_not_ready", "backend not ready: the model is warming up, retry later")
ACTIVATION_TIMEOUT = _Refusal(
    503, "activation_timeout", "backend not ready: activation timeout, the model is still warming up"
)
SHUTTING_DOWN = _Refusal(503, "gateway_draining", "the gateway is shutting down, retry")


async def answer_expectation(request: web.BaseRequest) -> web.Response | None:
    """``Expect: 100-continue`` met (``100 Continue`` written, as aiohttp's own handler does), or the 417
    for any other expectation."""
    if request.headers.get("Expect", "").lower() != "100-continue":
        return errors.error_response(
            417,
            "the only expectation this gateway meets is 100-continue",
            kind="invalid_request_error",
            code="expectation_failed",
        )
    if request.version >= aiohttp.HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the response proper has not begun
    return None


class Gateway:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        readiness: ReadinessSource,
        demand: Demand,
        metrics: GatewayMetrics,
        upstream_pool: upstream_client.Pool,
        waker: Waker | None = None,
        api_keys: auth.ApiKeys | None = None,
        eta: eta_module.EtaSource | None = None,
        phases: progress.PhaseSource | None = None,
    ) -> None:
        self.settings = settings
        self.eta = eta if eta is not None else eta_module.NullEta()
        self.phases = phases if phases is not None else progress.NoPhase()
        #: When the current wake began (the first cold request since a backend was last ready).
        self._cold_since: float | None = None
        #: Whether the scaler's lead (cold request -> backend leaving zero) was measured in this wake.
        self._lead_measured = False
        self.scaler_lead = eta_module.ScalerLead()
        self.api_keys = api_keys
        self.readiness = readiness
        self.demand = demand
        self.metrics = metrics
        self.waker = waker
        self.proxy = proxy.Proxy(
            upstream_pool=upstream_pool,
            readiness=readiness,
            fallback_url=settings.backend_url,
            drop_authorization=api_keys is not None,
        )
        self.admitted = 0
        self.held = 0
        self._request_counters: dict[int, Any] = {}
        self.draining = False
        self.closing = False
        # Held requests go to a ready backend first in, first out, a bounded wave at a time.
        self.release = release.ReleaseQueue(
            wave=settings.release_wave,
            endpoints=lambda: len(readiness.endpoints()),
            ready=readiness.ready,
        )
        readiness.on_change(self._on_readiness)
        self.phases.on_change(self._on_phase)
        demand.subscribe(self._on_demand)
        self._disconnects_logged_at = 0.0
        self.disconnects = 0
        self.budget = request_body.Budget(settings.max_buffered_bytes)
        self._woken_at: float | None = None  # when a backend became ready while requests were held

    def _on_readiness(self, ready: bool) -> None:
        if ready:
            self._cold_since = None
        if ready and self.held > 0:
            self._woken_at = asyncio.get_running_loop().time()
        self.release.set_ready(ready)

    def _on_phase(self, phase: progress.Phase) -> None:
        """Note the scaler's lead when the wake leaves ``requested``, and interrupt every held stream's wait
        once, so each tells its client the new phase."""
        if self._cold_since is not None and not self._lead_measured and phase in progress.STARTED:
            self._lead_measured = True
            self.scaler_lead.record(asyncio.get_running_loop().time() - self._cold_since)
        self.release.interrupt()

    def _on_demand(self, active: bool) -> None:
        if not active:
            # No request, lease or grace left: no wake under way, so the next cold request begins a new one
            # (a wake given up at the activation timeout must not make every later one look overdue).
            self._cold_since = None

    def close_holds(self) -> None:
        """Answer every request still held cold now (they never reached a backend, so a retry is safe)."""
        self.closing = True
        self.release.close()

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        self.held += 1
        self.metrics.held.set(self.held)
        try:
            yield
        finally:
            self.held -= 1
            self.metrics.held.set(self.held)

    def _take_place(self, exchange: proxy.Exchange) -> release.Place:
        """A place in the release queue; its slot is given back when the backend's answer begins (or the
        attempt fails), or at the latest when the request ends (:meth:`_admit`)."""
        place = self.release.enter()

        def answered(began: bool) -> None:
            if began and self._woken_at is not None:
                # The wake's last phase: ready -> the backend's first answer (its headers) to a held request.
                self.metrics.wake_phase.labels(phase="first_byte").observe(
                    asyncio.get_running_loop().time() - self._woken_at
                )
                self._woken_at = None
            self.release.answered(place)

        exchange.on_answer = answered
        return place

    def wake_eta(self) -> eta_module.Eta | None:
        """The ETA of the wake under way (None without wake history)."""
        now = asyncio.get_running_loop().time()
        since = self._cold_since if self._cold_since is not None else now
        return eta_module.estimate(self.eta, elapsed_s=now - since, lead_s=self.scaler_lead.seconds())

    def _retry_after(self) -> int:
        return eta_module.retry_after(self.wake_eta())

    async def _wait_held(self, place: release.Place, deadline: float, *, interruptible: bool = False) -> bool:
        """Hold until *place*'s turn (True), the gateway closes or *deadline* passes (False); an
        *interruptible* wait (a held stream's) also ends (False) at a phase change, so it can say so."""
        with self._holding():
            return await self.release.wait(place, deadline=deadline, interruptible=interruptible)

    # ---- endpoints of the gateway itself -----------------------------------------------------------
    async def healthz(self, _: web.BaseRequest) -> web.Response:
        return web.Response(status=503 if self.draining else 200)

    async def queue(self, _: web.BaseRequest) -> web.Response:
        body = json.dumps({"pending": self.demand.value()}, separators=(",", ":")) + "\n"
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def metrics_page(self, _: web.BaseRequest) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def warm(self, request: web.BaseRequest) -> web.Response:
        """Wake on intent: one warm lease per client (its API key, or its address without keys); 202."""
        if request.method != "POST":
            return errors.error_response(
                405,
                "POST /hearth/warm starts a wake; nothing else is served here",
                kind="invalid_request_error",
                code="method_not_allowed",
                extra_headers={"Allow": "POST"},
            )
        token = auth.bearer_token(request.headers.get("Authorization")) or ""
        if self.api_keys is not None and not self.api_keys.accepts(token):
            return self._count(self._unauthorized(request))
        if self.closing:
            return self._count(SHUTTING_DOWN.response(retry_after=1))
        state: dict[str, Any] = {"state": "ready" if self.readiness.ready else "cold"}
        if not self.readiness.ready:
            # A digest, never the key itself: the lease map must not hold secrets.
            identity = (
                "key:" + hashlib.sha256(token.encode()).hexdigest()
                if self.api_keys is not None
                else "peer:" + (request.remote or "")
            )
            taken, lease_s = self.demand.warm(identity)
            if taken:  # a client asking again neither counts twice nor stretches the lease
                self._cold(asyncio.get_running_loop().time())
            state["lease_s"] = round(lease_s, 1)
            state["phase"] = str(self.phases.phase())
            estimate = self.wake_eta()
            if estimate is not None:
                state["eta_s"] = math.ceil(estimate.eta_s)
        return web.json_response(state, status=202)

    # ---- proxied paths -----------------------------------------------------------------------------
    async def expect(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """``Expect: 100-continue``: invite the body only from a client whose request could be served, so
        a key-less or oversize request is refused before its body is sent at all."""
        if self.api_keys is not None and not self.api_keys.accepts(
            auth.bearer_token(request.headers.get("Authorization")) or ""
        ):
            return self._count(self._unauthorized(request))
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            refusal = request_body.too_large(self.settings.max_body_bytes)
            return self._count(await self._refuse(request, refusal))
        refused = await answer_expectation(request)
        return None if refused is None else self._count(refused)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every proxied path. Each answer is counted here, once, by the status the client saw (a client
        that left is counted only when a response had been committed to it)."""
        exchange = proxy.Exchange()
        try:
            response = await self._handle(request, exchange)
        except asyncio.CancelledError:
            # The client left. Counted, never logged one traceback each (thousands can leave at once).
            self._client_left(exchange)
            raise
        except ConnectionResetError:
            # The client left and a write noticed before aiohttp cancelled this handler (a reset seen only
            # by a write): the same, but raising would make aiohttp log a traceback. The response returned
            # is never sent; aiohttp's attempt to send it fails quietly on the closed connection.
            self._client_left(exchange)
            return web.Response(status=499)
        self._requests(response.status).inc()
        return response

    async def _handle(self, request: web.BaseRequest, exchange: proxy.Exchange) -> web.StreamResponse:
        # Before anything counts as demand: a request without a valid key can never wake a backend.
        if self.api_keys is not None and not self.api_keys.accepts(
            auth.bearer_token(request.headers.get("Authorization")) or ""
        ):
            return self._unauthorized(request)
        if httpparts.upstream_target(request) is None:
            return errors.error_response(
                400,
                f"the request target {request.raw_path[:100]!r} has no path to forward",
                kind="invalid_request_error",
                code="invalid_request_target",
            )
        if not self.readiness.ready and request.method == "GET" and request.path == "/v1/models":
            # Listing models must not wake an accelerator (DESIGN 4): answered here, not counted as demand.
            return self._local_models()
        if self.closing:
            return SHUTTING_DOWN.response(retry_after=1)
        # The body before admission: a client trickling its body holds no admission slot and no demand.
        try:
            payload = await request_body.read(
                request,
                limit=self.settings.max_body_bytes,
                budget=self.budget,
                deadline=self.settings.body_timeout.seconds,
            )
        except request_body.RefusedError as refusal:
            return await self._refuse(request, refusal)
        try:
            return await self._admit(request, payload, exchange)
        finally:
            self.budget.give(len(payload))
            payload.clear()

    async def _admit(
        self, request: web.BaseRequest, payload: bytearray, exchange: proxy.Exchange
    ) -> web.StreamResponse:
        if self.admitted >= self.settings.max_queue:
            self.metrics.rejections.labels(reason="queue_full").inc()
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
                self.metrics.activation_wait.observe(0.0)
                return await self.proxy.forward(request, payload, exchange)
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
        self._cold(admitted_at)
        if self.settings.cold_start_mode is ColdStartMode.REJECT:
            self.metrics.rejections.labels(reason="cold_start").inc()
            return COLD.response(retry_after=self._retry_after())
        if httpparts.wants_stream(request.method, body):
            return await self._hold_streaming(request, body, admitted_at, exchange, place)
        deadline = admitted_at + self.settings.activation_timeout.seconds
        if not await self._wait_held(place, deadline):
            if self.closing:
                return SHUTTING_DOWN.response(retry_after=1)
            self.metrics.rejections.labels(reason="activation_timeout").inc()
            return ACTIVATION_TIMEOUT.response(retry_after=self._retry_after())
        waited = loop.time() - admitted_at
        self.metrics.activation_wait.observe(waited)
        # The answer says it waited for a wake, so a client can tell a cold start from a slow model.
        woke = {COLD_START_HEADER: "true", WAKE_SECONDS_HEADER: f"{waited:.3f}"}
        return await self.proxy.forward(request, body, exchange, extra_headers=woke)

    async def _behind_held(
        self, request: web.BaseRequest, body: bytearray, exchange: proxy.Exchange, place: release.Place
    ) -> web.StreamResponse:
        """Ready, but held requests are still being released: this one waits its turn behind them."""
        loop = asyncio.get_running_loop()
        admitted_at = loop.time()
        deadline = admitted_at + self.settings.activation_timeout.seconds
        if not await self.release.wait(place, deadline=deadline) and self.closing:
            return SHUTTING_DOWN.response(retry_after=1)
        self.metrics.activation_wait.observe(loop.time() - admitted_at)
        return await self.proxy.forward(request, body, exchange)

    def _cold(self, admitted_at: float) -> None:
        """A cold request (or a warm lease): demand up, the backend woken, the wake's start noted."""
        if self._cold_since is None:
            self._cold_since = admitted_at
            self._lead_measured = False
        self.demand.cold_request()
        if self.waker is not None:
            self.waker.wake(admitted_at)

    async def _hold_streaming(
        self,
        request: web.BaseRequest,
        body: bytearray,
        admitted_at: float,
        exchange: proxy.Exchange,
        place: release.Place,
    ) -> web.StreamResponse:
        """Commit a 200 event stream at once, hold it with comments (:mod:`hold`) until its turn, then
        append the backend's body; a hold that ends otherwise ends the stream with an error event."""
        loop = asyncio.get_running_loop()
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            COLD_START_HEADER: "true",
        }
        if request.keep_alive:
            # SPEC §3.3's header, but only as a promise the connection keeps: an HTTP/1.0 client or one
            # that sent Connection: close gets a stream that ends with the connection.
            headers["Connection"] = "keep-alive"
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        exchange.committed_status = 200

        async def wait_turn(until: float) -> bool:
            return await self._wait_held(place, until, interruptible=True)

        plan = hold.Hold(
            admitted_at=admitted_at,
            deadline=admitted_at + self.settings.activation_timeout.seconds,
            heartbeat_s=self.settings.heartbeat_interval.seconds,
            progress_s=self.settings.progress_interval.seconds,
            wait_ready=wait_turn,
            is_ready=lambda: place.released,
            is_closing=lambda: self.closing,
            eta=self.wake_eta,
            phase=self.phases.phase,
        )
        outcome = await hold.hold(response, plan)
        if outcome is not hold.Outcome.READY:
            if outcome is hold.Outcome.TIMED_OUT:
                self.metrics.rejections.labels(reason="activation_timeout").inc()
            await response.write(
                (ACTIVATION_TIMEOUT if outcome is hold.Outcome.TIMED_OUT else SHUTTING_DOWN).event()
            )
            await response.write_eof()
            return response
        self.metrics.activation_wait.observe(loop.time() - admitted_at)
        return await self.proxy.forward(request, body, exchange, committed=response)

    def _requests(self, code: int) -> Any:
        child = self._request_counters.get(code)
        if child is None:
            child = self._request_counters[code] = self.metrics.requests.labels(code=str(code))
        return child

    def _count(self, response: _Answer) -> _Answer:
        """Count an answer given outside :meth:`handle` (the 100-continue check, the warm endpoint)."""
        self._requests(response.status).inc()
        return response

    async def _refuse(
        self, request: web.BaseRequest, refusal: request_body.RefusedError
    ) -> web.StreamResponse:
        """Answer, then close: the rest of the body stays unread (aiohttp would otherwise keep reading
        and discarding it for its lingering time, as long again as a slow client cares to trickle)."""
        self.metrics.rejections.labels(reason=refusal.code).inc()
        response = errors.error_response(
            refusal.status,
            refusal.message,
            kind=refusal.kind,
            code=refusal.code,
            retry_after=refusal.retry_after,
        )
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()
        return response

    def _unauthorized(self, request: web.BaseRequest) -> web.Response:
        self.metrics.rejections.labels(reason="unauthorized").inc()
        assert self.api_keys is not None
        if not self.api_keys.count:
            message = "no API key is configured for this endpoint yet (its Secret is missing or empty)"
        elif request.headers.get("Authorization"):
            message = "incorrect API key provided"
        else:
            message = "missing API key: send it as the header Authorization: Bearer <key>"
        return errors.error_response(
            401,
            message,
            kind="invalid_request_error",
            code="invalid_api_key",
            extra_headers={"WWW-Authenticate": 'Bearer realm="hearth"'},
        )

    def _local_models(self) -> web.Response:
        name = self.settings.model_name or "model"
        document: dict[str, Any] = {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": "hearth",
                    # Extra fields pass through the openai SDK's models untouched: a UI may show this.
                    "hearth": {"state": "cold"},
                }
            ],
        }
        return web.Response(text=json.dumps(document), content_type="application/json")

    def _client_left(self, exchange: proxy.Exchange) -> None:
        self.metrics.client_disconnects.inc()
        self.disconnects += 1
        if exchange.committed_status is not None:
            self._requests(exchange.committed_status).inc()
        self._log_disconnects()

    def _log_disconnects(self) -> None:
        now = time.monotonic()
        if now - self._disconnects_logged_at >= 10:
            self._disconnects_logged_at = now
            log.info(
                "clients disconnected before their answer completed",
                extra=logs.fields(total=self.disconnects),
            )


def make_handler(gateway: Gateway) -> serve.BareHandler:
    """The gateway's routes: its own paths by exact match, every other one proxied. Served bare, without an
    aiohttp Application: no router or middleware machinery on the proxied path (about 8 % of the warm
    path's CPU). What the Application did that the gateway relies on is done here: an ``Expect`` header is
    answered before the handler reads the body."""
    own = {
        "/healthz": gateway.healthz,
        "/hearth/queue": gateway.queue,
        "/hearth/warm": gateway.warm,
        "/metrics": gateway.metrics_page,
    }

    async def route(request: web.BaseRequest) -> web.StreamResponse:
        handler = own.get(request.path)
        if request.headers.get("Expect"):
            refused = await (gateway.expect(request) if handler is None else answer_expectation(request))
            await request.writer.drain()
            if refused is not None:
                return refused
        if handler is not None:
            return await handler(request)
        return await gateway.handle(request)

    return route
