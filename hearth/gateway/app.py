"""The gateway's HTTP application (SPEC §3.2-3.3 with DESIGN improvements 1, 3 and 4).

Every path but ``/healthz``, ``/hearth/queue``, ``/hearth/warm`` and ``/metrics`` is proxied and counts as
demand, with any method. A request is admitted (bounded), then, if the backend is cold: rejected (reject
mode), held with SSE comments (streaming, :mod:`hearth.gateway.hold`) or held silently, until the readiness
source says a backend is ready; then forwarded to the least busy ready backend and streamed back byte for
byte. ``POST /hearth/warm`` starts a wake without a request (a UI opening a chat).
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
from typing import Any

import aiohttp
import yarl
from aiohttp import web

from hearth.common import logs
from hearth.gateway import auth, errors, hold, httpparts, progress, request_body, upstream
from hearth.gateway import eta as eta_module
from hearth.gateway.balancer import Balancer
from hearth.gateway.demand import Demand
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.readiness import ReadinessSource
from hearth.gateway.settings import ColdStartMode, GatewaySettings
from hearth.gateway.waker import Waker

log = logging.getLogger(__name__)

HEARTBEAT = hold.HEARTBEAT
QUEUE_FULL_RETRY_AFTER = 5
UPSTREAM_CONNECT_TIMEOUT = 5.0
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


@dataclasses.dataclass
class _Exchange:
    """What one request has done so far (for counting a disconnect correctly)."""

    committed: bool = False


class Gateway:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        readiness: ReadinessSource,
        demand: Demand,
        metrics: GatewayMetrics,
        session: aiohttp.ClientSession,
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
        self.session = session
        self.waker = waker
        self.balancer = Balancer()
        self.admitted = 0
        self.held = 0
        self._request_counters: dict[str, Any] = {}
        self.draining = False
        self.closing = False
        # One event for every held request: set when a backend is ready, or when the gateway closes.
        self._release = asyncio.Event()
        if readiness.ready:
            self._release.set()
        readiness.on_change(self._on_readiness)
        self.phases.on_change(self._on_phase)
        demand.subscribe(self._on_demand)
        self._disconnects_logged_at = 0.0
        self.disconnects = 0
        self.upstream_failures = upstream.Reporter()
        self.budget = request_body.Budget(settings.max_buffered_bytes)
        self._woken_at: float | None = None  # when a backend became ready while requests were held

    def _on_readiness(self, ready: bool) -> None:
        if ready:
            self._cold_since = None
        if ready and self.held > 0:
            self._woken_at = asyncio.get_running_loop().time()
        if ready or self.closing:
            self._release.set()
        else:
            self._release.clear()

    def _on_phase(self, phase: progress.Phase) -> None:
        """Note the scaler's lead when the wake leaves ``requested``, and wake every held stream once so each
        tells its client the new phase (one event swapped for a fresh one: waiters of the old one return,
        later waits use the new one)."""
        if self._cold_since is not None and not self._lead_measured and phase in progress.STARTED:
            self._lead_measured = True
            self.scaler_lead.record(asyncio.get_running_loop().time() - self._cold_since)
        if not self._release.is_set():
            woken, self._release = self._release, asyncio.Event()
            woken.set()

    def _on_demand(self, active: bool) -> None:
        if not active:
            # No request, lease or grace left: no wake under way, so the next cold request begins a new one
            # (a wake given up at the activation timeout must not make every later one look overdue).
            self._cold_since = None

    def close_holds(self) -> None:
        """Answer every request still held cold now (they never reached a backend, so a retry is safe)."""
        self.closing = True
        self._release.set()

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        self.held += 1
        self.metrics.held.set(self.held)
        try:
            yield
        finally:
            self.held -= 1
            self.metrics.held.set(self.held)

    def wake_eta(self) -> eta_module.Eta | None:
        """The ETA of the wake under way (None without wake history)."""
        now = asyncio.get_running_loop().time()
        since = self._cold_since if self._cold_since is not None else now
        return eta_module.estimate(self.eta, elapsed_s=now - since, lead_s=self.scaler_lead.seconds())

    def _retry_after(self) -> int:
        return eta_module.retry_after(self.wake_eta())

    async def _wait_held(self, deadline: float) -> bool:
        """Hold a request with no stream to tell: until a backend is ready, the deadline or closing."""
        with self._holding():
            loop = asyncio.get_running_loop()
            while not await self._held_until(deadline):
                if self.closing or loop.time() >= deadline:
                    return False
            return True

    async def _wait_held_or_phase(self, deadline: float) -> bool:
        """Hold a stream until a backend is ready (True), or the deadline, closing or a phase change."""
        with self._holding():
            return await self._held_until(deadline)

    async def _held_until(self, deadline: float) -> bool:
        """Wait for a ready backend until *deadline*; False on timeout, when the gateway closes, or when the
        wake's phase changed (the event is swapped: see :meth:`_on_phase`)."""
        # asyncio.timeout_at, not wait_for: no extra task per held request, so a release wakes each one once.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._release.wait()
        return self.readiness.ready

    # ---- endpoints of the gateway itself -----------------------------------------------------------
    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(status=503 if self.draining else 200)

    async def queue(self, _: web.Request) -> web.Response:
        body = json.dumps({"pending": self.demand.value()}, separators=(",", ":")) + "\n"
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def metrics_page(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def warm(self, request: web.Request) -> web.Response:
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
            return self._unauthorized(request)
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
    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: invite the body only from a client whose request could be served, so
        a key-less or oversize request is refused before its body is sent at all."""
        if self.api_keys is not None and not self.api_keys.accepts(
            auth.bearer_token(request.headers.get("Authorization")) or ""
        ):
            return self._unauthorized(request)
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            refusal = request_body.too_large(self.settings.max_body_bytes)
            return await self._refuse(request, refusal)
        if request.headers.get("Expect", "").lower() != "100-continue":
            return self._count(
                errors.error_response(
                    417,
                    "the only expectation this gateway meets is 100-continue",
                    kind="invalid_request_error",
                    code="expectation_failed",
                )
            )
        if request.version >= aiohttp.HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # as aiohttp's own handler: the response proper has not begun
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Before anything counts as demand: a request without a valid key can never wake a backend.
        if self.api_keys is not None and not self.api_keys.accepts(
            auth.bearer_token(request.headers.get("Authorization")) or ""
        ):
            return self._unauthorized(request)
        if httpparts.upstream_target(request) is None:
            return self._count(
                errors.error_response(
                    400,
                    f"the request target {request.raw_path[:100]!r} has no path to forward",
                    kind="invalid_request_error",
                    code="invalid_request_target",
                )
            )
        if request.method == "GET" and request.path == "/v1/models" and not self.readiness.ready:
            # Listing models must not wake an accelerator (DESIGN 4): answered here, not counted as demand.
            return self._local_models()
        if self.closing:
            return self._count(SHUTTING_DOWN.response(retry_after=1))
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
            return await self._admit(request, payload)
        finally:
            self.budget.give(len(payload))
            payload.clear()

    async def _admit(self, request: web.Request, payload: bytearray) -> web.StreamResponse:
        if self.admitted >= self.settings.max_queue:
            self.metrics.rejections.labels(reason="queue_full").inc()
            return self._count(
                errors.error_response(
                    429,
                    "gateway queue full",
                    kind="rate_limit_exceeded",
                    code="queue_full",
                    retry_after=QUEUE_FULL_RETRY_AFTER,
                )
            )
        exchange = _Exchange()
        self.admitted += 1
        self.demand.admitted()
        try:
            return await self._serve(request, payload, exchange)
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
        finally:
            self.admitted -= 1
            self.demand.finished()

    async def _serve(self, request: web.Request, body: bytearray, exchange: _Exchange) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        admitted_at = loop.time()
        if not self.readiness.ready:
            self._cold(admitted_at)
            if self.settings.cold_start_mode is ColdStartMode.REJECT:
                self.metrics.rejections.labels(reason="cold_start").inc()
                return self._count(COLD.response(retry_after=self._retry_after()))
            if httpparts.wants_stream(request.method, body):
                return await self._hold_streaming(request, body, admitted_at, exchange)
            deadline = admitted_at + self.settings.activation_timeout.seconds
            if not await self._wait_held(deadline):
                if self.closing:
                    return self._count(SHUTTING_DOWN.response(retry_after=1))
                self.metrics.rejections.labels(reason="activation_timeout").inc()
                return self._count(ACTIVATION_TIMEOUT.response(retry_after=self._retry_after()))
            waited = loop.time() - admitted_at
            self.metrics.activation_wait.observe(waited)
            # The answer says it waited for a wake, so a client can tell a cold start from a slow model.
            woke = {COLD_START_HEADER: "true", WAKE_SECONDS_HEADER: f"{waited:.3f}"}
            return await self._forward(request, body, response=None, extra_headers=woke)
        self.metrics.activation_wait.observe(loop.time() - admitted_at)
        return await self._forward(request, body, response=None)

    def _cold(self, admitted_at: float) -> None:
        """A cold request (or a warm lease): demand up, the backend woken, the wake's start noted."""
        if self._cold_since is None:
            self._cold_since = admitted_at
            self._lead_measured = False
        self.demand.cold_request()
        if self.waker is not None:
            self.waker.wake(admitted_at)

    async def _hold_streaming(
        self, request: web.Request, body: bytearray, admitted_at: float, exchange: _Exchange
    ) -> web.StreamResponse:
        """Commit a 200 event stream at once, hold it with comments (:mod:`hold`) until ready, then append
        the backend's body; a hold that ends otherwise ends the stream with an error event."""
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
        exchange.committed = True
        plan = hold.Hold(
            admitted_at=admitted_at,
            deadline=admitted_at + self.settings.activation_timeout.seconds,
            heartbeat_s=self.settings.heartbeat_interval.seconds,
            progress_s=self.settings.progress_interval.seconds,
            wait_ready=self._wait_held_or_phase,
            is_ready=lambda: self.readiness.ready,
            is_closing=lambda: self.closing,
            eta=self.wake_eta,
            phase=self.phases.phase,
        )
        outcome = await hold.hold(response, plan)
        if outcome is not hold.Outcome.READY:
            if outcome is hold.Outcome.TIMED_OUT:
                self.metrics.rejections.labels(reason="activation_timeout").inc()
            self._requests("200").inc()
            await response.write(
                (ACTIVATION_TIMEOUT if outcome is hold.Outcome.TIMED_OUT else SHUTTING_DOWN).event()
            )
            await response.write_eof()
            exchange.committed = False  # counted already
            return response
        self.metrics.activation_wait.observe(loop.time() - admitted_at)
        result = await self._forward(request, body, response=response)
        exchange.committed = False
        return result

    async def _forward(
        self,
        request: web.Request,
        body: bytearray,
        *,
        response: web.StreamResponse | None,
        extra_headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Proxy to a ready backend. With *response* (already committed), only the body is appended."""
        endpoints = self.readiness.endpoints() or [self.settings.backend_url]
        tried: set[str] = set()
        while True:
            endpoint = self.balancer.pick([e for e in endpoints if e not in tried] or endpoints)
            tried.add(endpoint)
            try:
                with self.balancer.use(endpoint):
                    return await self._exchange(
                        request, body, endpoint, response, extra_headers=extra_headers
                    )
            except upstream.UpstreamError as error:
                failure = error.failure
                if failure.retryable:
                    # Nothing reached the backend, so the body can safely go to another ready one.
                    self.readiness.suspect()
                    if len(tried) < len(endpoints):
                        continue
                self.upstream_failures.report(failure, error=error.cause, endpoint=endpoint)
                if response is not None:
                    # Status and headers went out with the heartbeats: the error becomes an SSE event.
                    await response.write(
                        errors.stream_error_event(failure.message, kind=failure.kind, code=failure.code)
                    )
                    await response.write_eof()
                    self._requests("200").inc()
                    return response
                return self._count(
                    errors.error_response(
                        failure.status, failure.message, kind=failure.kind, code=failure.code
                    )
                )

    async def _exchange(
        self,
        request: web.Request,
        body: bytearray,
        endpoint: str,
        committed: web.StreamResponse | None,
        *,
        extra_headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=UPSTREAM_CONNECT_TIMEOUT)
        try:
            answer = await self.session.request(
                request.method,
                # The path and query exactly as the client sent them (SPEC: path and query unchanged).
                yarl.URL(endpoint + (httpparts.upstream_target(request) or "/"), encoded=True),
                headers=httpparts.upstream_headers(request, drop_authorization=self.api_keys is not None),
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
                # Only what the client sent: no Accept-Encoding it never asked for, no aiohttp User-Agent.
                skip_auto_headers=httpparts.NOT_ADDED_UPSTREAM,
            )
        except upstream.ERRORS as error:
            raise upstream.UpstreamError(upstream.classify(error), error) from None
        with contextlib.closing(answer):
            if self._woken_at is not None:
                # The wake's last phase: ready -> the backend's first answer (its headers) to a held request.
                self.metrics.wake_phase.labels(phase="first_byte").observe(
                    asyncio.get_running_loop().time() - self._woken_at
                )
                self._woken_at = None
            if committed is not None:
                # Status and headers were sent with the heartbeats; only the body can follow (SPEC §3.3).
                await self._pipe(request, answer, committed, endpoint=endpoint)
                self._requests("200").inc()
                return committed
            headers = httpparts.downstream_headers(answer.headers)
            if extra_headers:
                headers.update(extra_headers)
            if _small_and_complete(answer):
                # A short answer of known length (not an event stream): one write instead of a streamed copy.
                try:
                    whole = await answer.read()
                except upstream.ERRORS as error:
                    # Nothing was sent to the client yet, so it can still get a clean 502.
                    raise upstream.UpstreamError(upstream.TRUNCATED, error) from None
                self._requests(str(answer.status)).inc()
                return web.Response(status=answer.status, reason=answer.reason, body=whole, headers=headers)
            self._requests(str(answer.status)).inc()
            response = web.StreamResponse(status=answer.status, reason=answer.reason, headers=headers)
            await response.prepare(request)
            await self._pipe(request, answer, response, endpoint=endpoint)
            return response

    async def _pipe(
        self,
        request: web.Request,
        answer: aiohttp.ClientResponse,
        response: web.StreamResponse,
        *,
        endpoint: str,
    ) -> None:
        while True:
            try:
                chunk = await answer.content.readany()
            except upstream.ERRORS as error:
                # The answer began and was cut: the client must see a cut, never a clean end.
                self.upstream_failures.report(upstream.TRUNCATED, error=error, endpoint=endpoint)
                upstream.abort(request)
                return
            if not chunk:
                break
            await response.write(chunk)
        await response.write_eof()

    def _requests(self, code: str) -> Any:
        child = self._request_counters.get(code)
        if child is None:
            child = self._request_counters[code] = self.metrics.requests.labels(code=code)
        return child

    def _count(self, response: web.Response) -> web.Response:
        self._requests(str(response.status)).inc()
        return response

    async def _refuse(self, request: web.Request, refusal: request_body.RefusedError) -> web.StreamResponse:
        """Answer, then close: the rest of the body stays unread (aiohttp would otherwise keep reading
        and discarding it for its lingering time, as long again as a slow client cares to trickle)."""
        self.metrics.rejections.labels(reason=refusal.code).inc()
        response = self._count(
            errors.error_response(
                refusal.status,
                refusal.message,
                kind=refusal.kind,
                code=refusal.code,
                retry_after=refusal.retry_after,
            )
        )
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()
        return response

    def _unauthorized(self, request: web.Request) -> web.Response:
        self.metrics.rejections.labels(reason="unauthorized").inc()
        assert self.api_keys is not None
        if not self.api_keys.count:
            message = "no API key is configured for this endpoint yet (its Secret is missing or empty)"
        elif request.headers.get("Authorization"):
            message = "incorrect API key provided"
        else:
            message = "missing API key: send it as the header Authorization: Bearer <key>"
        return self._count(
            errors.error_response(
                401,
                message,
                kind="invalid_request_error",
                code="invalid_api_key",
                extra_headers={"WWW-Authenticate": 'Bearer realm="hearth"'},
            )
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

    def _client_left(self, exchange: _Exchange) -> None:
        self.metrics.client_disconnects.inc()
        self.disconnects += 1
        if exchange.committed:
            self._requests("200").inc()
        self._log_disconnects()

    def _log_disconnects(self) -> None:
        now = time.monotonic()
        if now - self._disconnects_logged_at >= 10:
            self._disconnects_logged_at = now
            log.info(
                "clients disconnected before their answer completed",
                extra=logs.fields(total=self.disconnects),
            )


SMALL_ANSWER_BYTES = 256 * 1024


def _small_and_complete(upstream: aiohttp.ClientResponse) -> bool:
    length = upstream.content_length
    return (
        length is not None
        and length <= SMALL_ANSWER_BYTES
        and not upstream.headers.get("Content-Type", "").startswith("text/event-stream")
    )


def make_app(gateway: Gateway) -> web.Application:
    app = web.Application(client_max_size=gateway.settings.max_body_bytes)
    app.router.add_route("*", "/healthz", gateway.healthz)
    app.router.add_route("*", "/hearth/queue", gateway.queue)
    app.router.add_route("*", "/hearth/warm", gateway.warm)
    app.router.add_route("*", "/metrics", gateway.metrics_page)
    app.router.add_route("*", "/{tail:.*}", gateway.handle, expect_handler=gateway.expect)
    return app
