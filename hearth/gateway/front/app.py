"""The gateway's HTTP front (SPEC §3.2-3.3 with DESIGN improvements 1, 3 and 4): what every request meets
before, and regardless of, the model it is for.

Every path but the gateway's own (``/healthz``, ``/hearth/queue[/<model>]``, ``/hearth/queues``,
``/hearth/warm[/<model>]``, ``/metrics``) is proxied and counts as demand, with
any method. The front authenticates a request (before it can count as demand), answers model listings
without waking anything, refuses new requests while the gateway drains, reads the body within the gateway's
memory budget, asks the table of routes (:mod:`hearth.gateway.front.routing`) which model's route serves it,
and hands it over (:class:`hearth.gateway.model.route.Route`: bounded, held or forwarded). Every answer is
counted here, once, in :meth:`Gateway.handle`, with the route's labels once it is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from typing import TypeVar

import aiohttp
from aiohttp import web

from hearth.common import logs, serve
from hearth.gateway import errors
from hearth.gateway.forward import httpparts, proxy
from hearth.gateway.front import auth, request_body, routing
from hearth.gateway.metrics import GatewayMetrics, RouteMetrics
from hearth.gateway.model import route
from hearth.gateway.scaler import peers
from hearth.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

_Answer = TypeVar("_Answer", bound=web.StreamResponse)

QUEUE_PATH = "/hearth/queue"
#: The 503 while the endpoint's one API key cannot be read (the reference v0.4's code), and when to retry:
#: the kubelet brings a created or fixed Secret within about a minute, the gateway sees it within seconds.
AUTHENTICATION_UNAVAILABLE = "authentication_unavailable"
AUTHENTICATION_RETRY_AFTER = 10
WARM_PATH = "/hearth/warm"
#: The longest a ``/hearth/queues`` long-poll is held (a caller asking for more is answered after this).
MAX_QUEUES_WAIT_SECONDS = 60.0


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
    """The front: one per process, whatever the number of routes behind it."""

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        table: routing.Table,
        metrics: GatewayMetrics,
        api_keys: auth.KeyRing | None = None,
        identity: str | None = None,
    ) -> None:
        self.settings = settings
        #: This process among its peers (:mod:`hearth.gateway.scaler.peers`).
        self.identity = identity if identity is not None else peers.new_identity()
        self.table = table
        self.api_keys = api_keys
        self.metrics = metrics
        self.draining = False
        self.closing = False
        self._disconnects_logged_at = 0.0
        self.disconnects = 0
        self.budget = request_body.Budget(settings.max_buffered_bytes)
        metrics.gauges.samples = self._gauge_samples

    def _gauge_samples(self) -> list[tuple[str, float, float, float]]:
        return [
            (each.model, each.demand.pending, each.demand.scraped_value(), each.held)
            for each in self.table.routes()
        ]

    def close_holds(self) -> None:
        """Answer every request still held cold now (they never reached a backend, so a retry is safe)."""
        self.closing = True
        self.table.cold_calls.close()
        for each in self.table.routes():
            each.close_holds()

    def _access(self, request: web.BaseRequest) -> auth.Access | web.Response:
        """What the caller may use (every model without keys), or the refusal: 401 without a valid key,
        503 while the endpoint's one key cannot be read (spec.endpoint.authentication)."""
        if self.api_keys is None:
            return auth.UNLIMITED
        if not self.api_keys.available:
            return self._authentication_unavailable()
        access = self.api_keys.access(auth.bearer_token(request.headers.get("Authorization")) or "")
        return self._unauthorized(request) if access is None else access

    # ---- endpoints of the gateway itself -----------------------------------------------------------
    async def healthz(self, _: web.BaseRequest) -> web.Response:
        # Not ready before the routes are known: no request reaches a shared gateway that would 404 it.
        return web.Response(status=503 if self.draining or not self.table.ready else 200)

    async def queue(self, request: web.BaseRequest) -> web.Response:
        """``/hearth/queue``: the demand of every route together (SPEC §3.5; a dedicated gateway's one);
        ``/hearth/queue/<model>``: one model's, as KEDA's metrics-api trigger of a routed model reads it."""
        model = request.path[len(QUEUE_PATH) + 1 :]
        if model:
            found = self.table.get(model)
            if found is None:
                return errors.model_not_found(model)
            pending = found.demand.value()
        else:
            pending = sum(each.demand.value() for each in self.table.routes())
        body = json.dumps({"pending": pending}, separators=(",", ":")) + "\n"
        return web.Response(text=body, content_type="text/plain", charset="utf-8")

    async def queues(self, request: web.BaseRequest) -> web.StreamResponse:
        """``/hearth/queues``: every routed model's demand in one answer (the built-in autoscaler reads each
        shared gateway pod once per pass, whatever the number of models), with ``calls``, the number of
        the last cold request whose backend the gateway does not wake itself.

        ``?since=<calls>&wait=<seconds>`` long-polls: the answer waits until a newer such request is
        admitted (or *wait* passes) and names its models in ``called``, so the operator's pool keeper
        arbitrates at once (:class:`hearth.gateway.model.demand.ColdCalls`).

        ``?watch=true`` streams it to the peer replicas (:meth:`peer_stream`: external-push sums them).

        ``?routing=1`` adds, per model, where its route sends requests now (:meth:`Route.routing`). Both are
        query parameters of a path every gateway serves: an older gateway ignores them and answers as
        before, which its callers tell by the missing keys (a new path would be proxied by it as a client's
        request, and wake the model)."""
        if request.query.get("watch") == "true":
            return await self.peer_stream(request)
        calls = self.table.cold_calls
        document: dict[str, object] = {}
        if "since" in request.query:
            try:
                since = int(request.query["since"])
                wait = min(float(request.query.get("wait", "0")), MAX_QUEUES_WAIT_SECONDS)
            except ValueError:
                return errors.invalid_request(
                    "since must be an integer and wait a number of seconds", code="invalid_query"
                )
            await calls.wait(since=since, seconds=max(wait, 0.0))
            document["called"] = calls.since(since)
        document["calls"] = calls.sequence
        document["models"] = {each.model: each.demand.value() for each in self.table.routes()}
        if request.query.get("routing"):
            document["routing"] = {each.model: each.routing() for each in self.table.routes()}
        return web.Response(text=json.dumps(document, separators=(",", ":")), content_type="application/json")

    async def peer_stream(self, request: web.BaseRequest) -> web.StreamResponse:
        """This replica's demand per model, streamed to its peer replicas (external-push sums them for KEDA;
        :mod:`hearth.gateway.scaler.peers`): no more than ``/hearth/queues`` shows."""
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        def finished() -> bool:
            # Shutting down: withdraw once nothing is in flight here (until then it still counts).
            return self.closing and not any(each.demand.pending for each in self.table.routes())

        with contextlib.suppress(ConnectionResetError):
            await peers.serve_stream(
                identity=self.identity, routes=self.table.routes, finished=finished, write=response.write
            )
        return response

    async def metrics_page(self, _: web.BaseRequest) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"}
        )

    async def warm(self, request: web.BaseRequest) -> web.Response:
        """Wake on intent: one warm lease per client (its API key, or its address without keys); 202.
        ``/hearth/warm/<model>`` names the model (a shared gateway's; a dedicated one takes either)."""
        if request.method != "POST":
            return errors.error_response(
                405,
                "POST /hearth/warm starts a wake; nothing else is served here",
                kind="invalid_request_error",
                code="method_not_allowed",
                extra_headers={"Allow": "POST"},
            )
        access = self._access(request)
        if isinstance(access, web.Response):
            return self._count(access, self.metrics.unrouted)
        if self.closing:
            return self._count(errors.SHUTTING_DOWN.response(retry_after=1), self.metrics.unrouted)
        found = self._warm_route(request.path[len(WARM_PATH) + 1 :], access)
        if isinstance(found, web.Response):
            return self._count(found, self.metrics.unrouted)
        token = auth.bearer_token(request.headers.get("Authorization")) or ""
        # A digest, never the key itself: the lease map must not hold secrets.
        identity = (
            "key:" + hashlib.sha256(token.encode()).hexdigest()
            if self.api_keys is not None
            else "peer:" + (request.remote or "")
        )
        return web.json_response(found.warm(identity), status=202)

    def _warm_route(self, model: str, access: auth.Access) -> route.Route | web.Response:
        if not model and self.table.by_model:
            return errors.invalid_request(
                "this endpoint serves several models: POST /hearth/warm/<model> names the one to wake",
                code="invalid_model",
            )
        found = self.table.get(model)
        if found is None or not access.allows(found.model):
            return errors.model_not_found(model)
        return found

    # ---- proxied paths -----------------------------------------------------------------------------
    async def expect(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """``Expect: 100-continue``: invite the body only from a client whose request could be served, so
        a key-less or oversize request is refused before its body is sent at all."""
        access = self._access(request)
        if isinstance(access, web.Response):
            return self._count(access, self.metrics.unrouted)
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            refusal = request_body.too_large(self.settings.max_body_bytes)
            return self._count(await self._refuse(request, refusal), self.metrics.unrouted)
        refused = await answer_expectation(request)
        return None if refused is None else self._count(refused, self.metrics.unrouted)

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
        (exchange.metrics or self.metrics.unrouted).request(response.status)
        return response

    async def _handle(self, request: web.BaseRequest, exchange: proxy.Exchange) -> web.StreamResponse:
        # Before anything counts as demand: a request without a valid key can never wake a backend.
        access = self._access(request)
        if isinstance(access, web.Response):
            return access
        answered = self._before_body(request, access)
        if answered is not None:
            return answered
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
            chosen = self.table.select(request, payload, access)
            if isinstance(chosen, web.StreamResponse):
                return chosen
            exchange.metrics = chosen.metrics
            return await chosen.admit(request, payload, exchange)
        finally:
            self.budget.give(len(payload))
            payload.clear()

    def _before_body(self, request: web.BaseRequest, access: auth.Access) -> web.Response | None:
        """The answer to a request that needs no body and no route: a bad target, a model listing (never
        a wake), or a gateway closing its holds; None for every other request."""
        if httpparts.upstream_target(request) is None:
            return errors.error_response(
                400,
                f"the request target {request.raw_path[:100]!r} has no path to forward",
                kind="invalid_request_error",
                code="invalid_request_target",
            )
        listed = self.table.listing(request, access)
        if listed is not None:
            return listed
        if self.closing:
            return errors.SHUTTING_DOWN.response(retry_after=1)
        return None

    def _count(self, response: _Answer, metrics: RouteMetrics) -> _Answer:
        """Count an answer given outside :meth:`handle` (the 100-continue check, the warm endpoint)."""
        metrics.request(response.status)
        return response

    async def _refuse(
        self, request: web.BaseRequest, refusal: request_body.RefusedError
    ) -> web.StreamResponse:
        """Answer, then close: the rest of the body stays unread (aiohttp would otherwise keep reading
        and discarding it for its lingering time, as long again as a slow client cares to trickle)."""
        self.metrics.unrouted.reject(refusal.code)
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

    def _authentication_unavailable(self) -> web.Response:
        self.metrics.unrouted.reject(AUTHENTICATION_UNAVAILABLE)
        assert self.api_keys is not None
        return errors.error_response(
            503,
            "the endpoint's API key cannot be read: its Secret or the key named by "
            "spec.endpoint.authentication.secretRef is missing or empty",
            kind="service_unavailable",
            code=AUTHENTICATION_UNAVAILABLE,
            retry_after=AUTHENTICATION_RETRY_AFTER,
        )

    def _unauthorized(self, request: web.BaseRequest) -> web.Response:
        self.metrics.unrouted.reject("unauthorized")
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

    def _client_left(self, exchange: proxy.Exchange) -> None:
        self.metrics.client_disconnects.inc()
        self.disconnects += 1
        if exchange.committed_status is not None:
            (exchange.metrics or self.metrics.unrouted).request(exchange.committed_status)
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
        QUEUE_PATH: gateway.queue,
        "/hearth/queues": gateway.queues,
        WARM_PATH: gateway.warm,
        "/metrics": gateway.metrics_page,
    }
    #: Paths of the gateway's own that name a model after the prefix.
    per_model = ((QUEUE_PATH + "/", gateway.queue), (WARM_PATH + "/", gateway.warm))

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        handler = own.get(path)
        if handler is None and path.startswith("/hearth/"):
            handler = next((own_path for prefix, own_path in per_model if path.startswith(prefix)), None)
        if request.headers.get("Expect"):
            refused = await (gateway.expect(request) if handler is None else answer_expectation(request))
            await request.writer.drain()
            if refused is not None:
                return refused
        if handler is not None:
            return await handler(request)
        return await gateway.handle(request)

    return dispatch
