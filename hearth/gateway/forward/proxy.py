"""The gateway's proxy path (SPEC §3.3): one admitted request forwarded to the least busy ready backend
and its answer streamed back byte for byte.

Before the backend's answer has begun, a failure where nothing reached the backend moves on to another
ready endpoint; any other becomes an OpenAI-shaped error (inside a stream already committed, an SSE error
event). Counting responses is the caller's: the proxy only says, on the :class:`Exchange`, what it
committed and when the backend's answer began.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

from aiohttp import web

from hearth.gateway import errors
from hearth.gateway.forward import httpparts, upstream, upstream_client
from hearth.gateway.forward.balancer import Balancer
from hearth.gateway.metrics import RouteMetrics
from hearth.gateway.wake.readiness import ReadinessSource

UPSTREAM_CONNECT_TIMEOUT = 5.0
#: How long an idle upstream connection is kept for the next request: under every engine's own keep-alive
#: (5 s for vLLM's and SGLang's uvicorn and llama-server's cpp-httplib: hearth.api.engines, whose test keeps
#: this below them), so a request never goes out on a connection the backend is closing at that moment (a
#: POST that meets that close cannot safely be sent again and would be a 502).
UPSTREAM_IDLE_SECONDS = 4.0
SMALL_ANSWER_BYTES = 256 * 1024


@dataclasses.dataclass(slots=True)
class Exchange:
    """What one request has done so far: the status of a response committed to the client (so a client
    that leaves afterwards is counted with it), and a hook for the moment its backend answer began."""

    committed_status: int | None = None
    #: Called once, when the backend's answer began or the attempt failed (then with False).
    on_answer: Callable[[bool], None] | None = None
    #: Where the answer is counted: the route's metrics once the request was routed.
    metrics: RouteMetrics | None = None

    def answer_began(self, *, began: bool) -> None:
        hook, self.on_answer = self.on_answer, None
        if hook is not None:
            hook(began)


def new_upstream() -> upstream_client.Pool:
    """The proxy's upstream connections: a bounded connect, no total timeout (a generation takes as long
    as it takes), idle connections kept for the next request (after a streamed answer only where the
    route's engine allows it: :attr:`Proxy.reuse_after_stream`)."""
    return upstream_client.Pool(connect_timeout=UPSTREAM_CONNECT_TIMEOUT, idle_timeout=UPSTREAM_IDLE_SECONDS)


class Proxy:
    def __init__(
        self,
        *,
        upstream_pool: upstream_client.Pool,
        readiness: ReadinessSource,
        fallback_url: str | None,
        drop_authorization: bool,
        reuse_after_stream: bool = True,
    ) -> None:
        """*fallback_url*: where to send a request when the readiness source names no endpoint (the backend
        Service of a dedicated gateway); None: nowhere (a shared gateway's route always knows its pods)."""
        self._upstream = upstream_pool
        self._readiness = readiness
        self._fallback = [fallback_url] if fallback_url else []
        self._drop_authorization = drop_authorization
        #: Whether a connection may carry the next request after a streamed answer (the engine's fact; one
        #: pool serves every route of a shared gateway, so it is said per request).
        self.reuse_after_stream = reuse_after_stream
        self.balancer = Balancer()
        self.failures = upstream.Reporter()

    async def forward(
        self,
        request: web.BaseRequest,
        body: bytearray,
        exchange: Exchange,
        *,
        committed: web.StreamResponse | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Proxy to a ready backend. With *committed* (already sent), only the body is appended."""
        endpoints = self._readiness.endpoints() or self._fallback
        if not endpoints:
            # Readiness was lost between the decision to forward and now (the last pod left).
            exchange.answer_began(began=False)
            if committed is not None:
                await committed.write(errors.COLD.event())
                await committed.write_eof()
                return committed
            return errors.COLD.response(retry_after=1)
        # The same for every attempt: computed once.
        headers = httpparts.upstream_headers(request, drop_authorization=self._drop_authorization)
        # The path and query exactly as the client sent them (SPEC: path and query unchanged).
        target = httpparts.upstream_target(request) or "/"
        tried: set[str] = set()
        while True:
            endpoint = self.balancer.pick(
                endpoints if not tried else [e for e in endpoints if e not in tried] or endpoints
            )
            tried.add(endpoint)
            try:
                with self.balancer.use(endpoint):
                    # Awaited here rather than in a helper: on the warm path every coroutine level is
                    # resumed again when the answer's head arrives.
                    try:
                        answer = await self._upstream.request(
                            request.method,
                            endpoint,
                            target,
                            headers,
                            body,
                            reuse_after_stream=self.reuse_after_stream,
                        )
                    except upstream.ERRORS as error:
                        raise upstream.UpstreamError(upstream.classify(error), error) from None
                    with contextlib.closing(answer):
                        exchange.answer_began(began=True)
                        return await self._relay(
                            request,
                            answer,
                            exchange,
                            endpoint=endpoint,
                            committed=committed,
                            extra_headers=extra_headers,
                        )
            except upstream.UpstreamError as error:
                failure = error.failure
                if failure.retryable:
                    # Nothing reached the backend, so the body can safely go to another ready one.
                    self._readiness.suspect()
                    if len(tried) < len(endpoints):
                        continue
                exchange.answer_began(began=False)
                self.failures.report(failure, error=error.cause, endpoint=endpoint)
                if committed is not None:
                    # Status and headers went out with the heartbeats: the error becomes an SSE event.
                    await committed.write(
                        errors.stream_error_event(failure.message, kind=failure.kind, code=failure.code)
                    )
                    await committed.write_eof()
                    return committed
                return errors.error_response(
                    failure.status, failure.message, kind=failure.kind, code=failure.code
                )

    async def _relay(
        self,
        request: web.BaseRequest,
        answer: upstream_client.Answer,
        exchange: Exchange,
        *,
        endpoint: str,
        committed: web.StreamResponse | None,
        extra_headers: dict[str, str] | None,
    ) -> web.StreamResponse:
        """The backend's answer, begun, to the client: appended to a committed stream, in one write when
        short and complete, else streamed."""
        if committed is not None:
            # Status and headers were sent with the heartbeats; only the body can follow (SPEC §3.3).
            await self._pipe(request, answer, committed, endpoint=endpoint)
            return committed
        downstream = httpparts.downstream_headers(answer.headers)
        if extra_headers:
            downstream.update(extra_headers)
        if _small_and_complete(answer):
            # A short answer of known length (not an event stream): one write instead of a streamed copy;
            # usually it came whole with its head, and nothing is awaited.
            whole = answer.body_if_complete()
            if whole is None:
                try:
                    whole = await answer.read()
                except upstream.ERRORS as error:
                    # Nothing was sent to the client yet, so it can still get a clean 502.
                    raise upstream.UpstreamError(upstream.TRUNCATED, error) from None
            return web.Response(status=answer.status, reason=answer.reason, body=whole, headers=downstream)
        response = web.StreamResponse(status=answer.status, reason=answer.reason, headers=downstream)
        await response.prepare(request)
        exchange.committed_status = answer.status
        await self._pipe(request, answer, response, endpoint=endpoint)
        return response

    async def _pipe(
        self,
        request: web.BaseRequest,
        answer: upstream_client.Answer,
        response: web.StreamResponse,
        *,
        endpoint: str,
    ) -> None:
        while True:
            try:
                chunk = await answer.read_chunk()
            except upstream.ERRORS as error:
                # The answer began and was cut: the client must see a cut, never a clean end.
                self.failures.report(upstream.TRUNCATED, error=error, endpoint=endpoint)
                upstream.abort(request)
                return
            if not chunk:
                break
            await response.write(chunk)
        await response.write_eof()


def _small_and_complete(answer: upstream_client.Answer) -> bool:
    length = answer.content_length
    return (
        length is not None
        and length <= SMALL_ANSWER_BYTES
        and not answer.headers.get("Content-Type", "").startswith("text/event-stream")
    )
