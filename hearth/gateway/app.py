"""The gateway's HTTP application (SPEC §3.2-3.3 with DESIGN improvements 1, 3 and 4).

Every path but ``/healthz``, ``/hearth/queue`` and ``/metrics`` is proxied and counts as demand, with any
method. A request is admitted (bounded), then, if the backend is cold: rejected (reject mode), held with
SSE heartbeats (streaming) or held silently, until the readiness source says a backend is ready; then
forwarded to the least busy ready backend and streamed back byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import yarl
from aiohttp import web

from hearth.common import logs
from hearth.gateway import auth, httpparts
from hearth.gateway.balancer import Balancer
from hearth.gateway.demand import Demand
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.readiness import ReadinessSource
from hearth.gateway.settings import ColdStartMode, GatewaySettings
from hearth.gateway.waker import Waker

log = logging.getLogger(__name__)

HEARTBEAT = b": heartbeat\n\n"
TIMEOUT_EVENT = b"event: error\ndata: backend activation timeout\n\n"
QUEUE_FULL_RETRY_AFTER = 5
NOT_READY_RETRY_AFTER = 10
UPSTREAM_CONNECT_TIMEOUT = 5.0


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
    ) -> None:
        self.settings = settings
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
        self._disconnects_logged_at = 0.0
        self.disconnects = 0
        self._woken_at: float | None = None  # when a backend became ready while requests were held

    def _on_readiness(self, ready: bool) -> None:
        if ready and self.held > 0:
            self._woken_at = asyncio.get_running_loop().time()
        if ready or self.closing:
            self._release.set()
        else:
            self._release.clear()

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

    async def _held_until(self, deadline: float) -> bool:
        """Wait for a ready backend until *deadline*; False on timeout or when the gateway closes."""
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

    # ---- proxied paths -----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Before anything counts as demand: a request without a valid key can never wake a backend.
        if self.api_keys is not None and not self.api_keys.accepts(
            auth.bearer_token(request.headers.get("Authorization")) or ""
        ):
            return self._unauthorized(request)
        if request.method == "GET" and request.path == "/v1/models" and not self.readiness.ready:
            # Listing models must not wake an accelerator (DESIGN 4): answered here, not counted as demand.
            return self._local_models()
        if self.closing:
            return self._count(self._shutting_down())
        if self.admitted >= self.settings.max_queue:
            self.metrics.rejections.labels(reason="queue_full").inc()
            return self._count(
                httpparts.error_response(
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
            return await self._serve(request, exchange)
        except (asyncio.CancelledError, ConnectionResetError):
            # The client left. Counted, never logged one traceback each (thousands can leave at once).
            self.metrics.client_disconnects.inc()
            self.disconnects += 1
            if exchange.committed:
                self._requests("200").inc()
            self._log_disconnects()
            raise
        finally:
            self.admitted -= 1
            self.demand.finished()

    async def _serve(self, request: web.Request, exchange: _Exchange) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        admitted_at = loop.time()
        body = await request.read()
        if not self.readiness.ready:
            self.demand.cold_request()
            if self.waker is not None:
                self.waker.wake(admitted_at)
            if self.settings.cold_start_mode is ColdStartMode.REJECT:
                self.metrics.rejections.labels(reason="cold_start").inc()
                return self._count(self._not_ready("backend not ready", code="backend_not_ready"))
            if httpparts.wants_stream(request.method, body):
                return await self._hold_streaming(request, body, admitted_at, exchange)
            deadline = admitted_at + self.settings.activation_timeout.seconds
            with self._holding():
                released = await self._held_until(deadline)
            if not released:
                if self.closing:
                    return self._count(self._shutting_down())
                self.metrics.rejections.labels(reason="activation_timeout").inc()
                return self._count(
                    self._not_ready("backend not ready: activation timeout", code="activation_timeout")
                )
        self.metrics.activation_wait.observe(loop.time() - admitted_at)
        return await self._forward(request, body, response=None)

    async def _hold_streaming(
        self, request: web.Request, body: bytes, admitted_at: float, exchange: _Exchange
    ) -> web.StreamResponse:
        """Commit a 200 event stream at once and send ``: heartbeat`` every interval until ready."""
        loop = asyncio.get_running_loop()
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "Connection": "keep-alive",
            },
        )
        await response.prepare(request)
        exchange.committed = True
        interval = self.settings.heartbeat_interval.seconds
        deadline = admitted_at + self.settings.activation_timeout.seconds
        next_beat = admitted_at + interval
        while not self.readiness.ready:
            now = loop.time()
            if self.closing:
                self._requests("200").inc()
                await response.write(b"event: error\ndata: gateway shutting down, retry\n\n")
                await response.write_eof()
                exchange.committed = False
                return response
            if now >= deadline:
                self.metrics.rejections.labels(reason="activation_timeout").inc()
                self._requests("200").inc()
                await response.write(TIMEOUT_EVENT)
                await response.write_eof()
                exchange.committed = False  # counted already
                return response
            with self._holding():
                released = await self._held_until(min(deadline, next_beat))
            if released:
                break
            if loop.time() >= next_beat:
                await response.write(HEARTBEAT)
                next_beat += interval
        self.metrics.activation_wait.observe(loop.time() - admitted_at)
        result = await self._forward(request, body, response=response)
        exchange.committed = False
        return result

    async def _forward(
        self, request: web.Request, body: bytes, *, response: web.StreamResponse | None
    ) -> web.StreamResponse:
        """Proxy to a ready backend. With *response* (already committed), only the body is appended."""
        endpoints = self.readiness.endpoints() or [self.settings.backend_url]
        tried: set[str] = set()
        while True:
            endpoint = self.balancer.pick([e for e in endpoints if e not in tried] or endpoints)
            tried.add(endpoint)
            try:
                with self.balancer.use(endpoint):
                    return await self._exchange(request, body, endpoint, response)
            except aiohttp.ClientConnectorError:
                # Nothing reached the backend, so the body can safely go to another ready one.
                self.readiness.suspect()
                if len(tried) < len(endpoints):
                    continue
                if response is not None:
                    await self._end(response)
                    self._requests("200").inc()
                    return response
                return self._count(
                    httpparts.error_response(
                        502, "could not reach the backend", kind="bad_gateway", code="backend_unreachable"
                    )
                )

    async def _exchange(
        self, request: web.Request, body: bytes, endpoint: str, committed: web.StreamResponse | None
    ) -> web.StreamResponse:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=UPSTREAM_CONNECT_TIMEOUT)
        async with self.session.request(
            request.method,
            # The raw path and query, exactly as the client sent them (SPEC: path and query unchanged).
            yarl.URL(endpoint + request.raw_path, encoded=True),
            headers=httpparts.upstream_headers(request, drop_authorization=self.api_keys is not None),
            data=body or None,
            allow_redirects=False,
            timeout=timeout,
        ) as upstream:
            if self._woken_at is not None:
                # The wake's last phase: ready -> the backend's first answer (its headers) to a held request.
                self.metrics.wake_phase.labels(phase="first_byte").observe(
                    asyncio.get_running_loop().time() - self._woken_at
                )
                self._woken_at = None
            if committed is not None:
                # Status and headers were sent with the heartbeats; only the body can follow (SPEC §3.3).
                await self._pipe(upstream, committed)
                self._requests("200").inc()
                return committed
            headers = httpparts.downstream_headers(upstream.headers)
            self._requests(str(upstream.status)).inc()
            if _small_and_complete(upstream):
                # A short answer of known length (not an event stream): one write instead of a streamed copy.
                whole = await upstream.read()
                return web.Response(
                    status=upstream.status, reason=upstream.reason, body=whole, headers=headers
                )
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
            await response.prepare(request)
            await self._pipe(upstream, response)
            return response

    @staticmethod
    async def _pipe(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            log.warning("the backend closed the stream early", extra=logs.fields(status=upstream.status))
        await response.write_eof()

    @staticmethod
    async def _end(response: web.StreamResponse) -> None:
        await response.write(b"event: error\ndata: could not reach the backend\n\n")
        await response.write_eof()

    def _requests(self, code: str) -> Any:
        child = self._request_counters.get(code)
        if child is None:
            child = self._request_counters[code] = self.metrics.requests.labels(code=code)
        return child

    def _count(self, response: web.Response) -> web.Response:
        self._requests(str(response.status)).inc()
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
            httpparts.error_response(
                401,
                message,
                kind="invalid_request_error",
                code="invalid_api_key",
                extra_headers={"WWW-Authenticate": 'Bearer realm="hearth"'},
            )
        )

    @staticmethod
    def _shutting_down() -> web.Response:
        return httpparts.error_response(
            503,
            "the gateway is shutting down",
            kind="service_unavailable",
            code="gateway_draining",
            retry_after=1,
        )

    @staticmethod
    def _not_ready(message: str, *, code: str) -> web.Response:
        return httpparts.error_response(
            503, message, kind="service_unavailable", code=code, retry_after=NOT_READY_RETRY_AFTER
        )

    def _local_models(self) -> web.Response:
        name = self.settings.model_name or "model"
        document: dict[str, Any] = {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": int(time.time()), "owned_by": "hearth"}],
        }
        return web.Response(text=json.dumps(document), content_type="application/json")

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
    app.router.add_route("*", "/metrics", gateway.metrics_page)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    return app
