"""The proxy's upstream HTTP/1.1 client: keep-alive connections to the backends, one exchange at a time on
each, the answer's head parsed by llhttp (the ``httptools`` binding) and its body handed on as it arrives.

Why not aiohttp's client: the proxy needs one narrow kind of exchange (a buffered request out, an answer
streamed back unchanged) and aiohttp's general client spent about 40 % of the gateway's CPU on the warm
path building per-request objects it does not use (tracing, cookies, redirects, payload registry, timers).
This keeps what the proxy relies on: the request head written once with the body in the same send, the
body bytes passed through undecoded (no decompression), chunked framing removed (the gateway's server
frames the answer again), a bounded connect, no total timeout, no cookies, back-pressure on a slow client.

Failures are raised as the exceptions below, which :func:`hearth.gateway.forward.upstream.classify` maps onto
the client's error: a connect that failed or timed out (nothing reached the backend: another endpoint may
be tried), a connection that closed or sent something that is not HTTP before the answer's head, and a
body cut short (reported while reading it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import ssl
import typing

import httptools
import yarl
from multidict import CIMultiDict, CIMultiDictProxy

#: Buffered answer bytes above which the backend's socket stops being read until the client catches up.
READ_HIGH_WATER = 256 * 1024
#: Idle keep-alive connections kept per endpoint (a burst opens more; the rest are closed when returned).
MAX_IDLE_PER_ENDPOINT = 512
#: Methods whose answers never have a body whatever their headers say (RFC 9110 §9.3.2).
_BODYLESS_ANSWER_METHODS = frozenset({"HEAD"})
#: Methods for which an empty body is still announced (as aiohttp's client did), so a backend never waits.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Methods that may be sent again when a kept-alive connection turns out to have been closed (RFC 9110
#: §9.2.2): the first attempt can have had no effect the second would repeat.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class UpstreamClientError(Exception):
    """Something went wrong talking to a backend."""


class ConnectFailedError(UpstreamClientError):
    """The backend could not be connected to (refused, unreachable): nothing was sent."""


class ConnectTimeoutError(UpstreamClientError):
    """Connecting to the backend took longer than the connect timeout: nothing was sent."""


class ClosedError(UpstreamClientError):
    """The connection ended before the answer's head was complete."""


class ProtocolError(UpstreamClientError):
    """The backend sent something that is not a valid HTTP/1.1 answer."""


class CutError(UpstreamClientError):
    """The answer's body ended before its framing said it was complete."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Address:
    host: str
    port: int
    tls: bool
    #: The Host header for a request whose client sent none (an HTTP/1.0 client).
    authority: str


class Answer:
    """One backend answer: status and headers at once, the body read chunk by chunk. Closing it returns the
    connection to the pool when the answer was read to its end, and closes the connection otherwise (a
    backend sees its client leave)."""

    __slots__ = ("_connection", "headers", "reason", "status")

    def __init__(
        self, connection: _Connection, status: int, reason: str, headers: CIMultiDictProxy[str]
    ) -> None:
        self._connection = connection
        self.status = status
        self.reason = reason
        self.headers = headers

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None or not value.isdigit():
            return None
        return int(value)

    async def read_chunk(self) -> bytes:
        """The body bytes that arrived since the last call (waiting for some), b"" at its end; raises
        :class:`CutError` when the body was cut short."""
        return await self._connection.read_chunk()

    def body_if_complete(self) -> bytes | None:
        """The whole body if all of it has already arrived (and none was read), else None."""
        return self._connection.body_if_complete()

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        parts = []
        while chunk := await self._connection.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        self._connection.finish()


class _Connection(asyncio.Protocol):
    """One TCP connection to a backend and the exchange on it, fed by the event loop's callbacks."""

    def __init__(self, pool: Pool, endpoint: str) -> None:
        self._pool = pool
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._active = False
        self._head: asyncio.Future[Answer] | None = None
        self._bodyless = False
        self._interim = False
        self._reason = b""
        self._fields: list[tuple[str, str]] = []
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._until_close = False
        self._chunked = False
        self._keep_alive = False
        #: Set per request: False for an engine that closes its connection after a streamed answer.
        self.reuse_after_stream = True
        self._error: UpstreamClientError | None = None
        self._waiter: asyncio.Future[None] | None = None

    # ---- the exchange ------------------------------------------------------------------------------
    def send(self, request: bytes, *, bodyless_answer: bool) -> asyncio.Future[Answer]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._active = True
        self._head = loop.create_future()
        self._bodyless = bodyless_answer
        self._reason = b""
        self._fields = []
        self._complete = False
        self._until_close = False
        self._error = None
        # Written at once, whole (the body is already buffered): nothing waits on the write buffer, so
        # asyncio.Protocol's pause_writing/resume_writing stay the base class's no-ops.
        self.transport.write(request)
        return self._head

    async def read_chunk(self) -> bytes:
        while True:
            if self._body:
                data = self._body.popleft() if len(self._body) == 1 else b"".join(self._body)
                self._body.clear()
                self._buffered = 0
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return data
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def body_if_complete(self) -> bytes | None:
        if not self._complete:
            return None
        data = b"".join(self._body)
        self._body.clear()
        self._buffered = 0
        return data

    def finish(self) -> None:
        """The exchange is over: back to the pool if the answer ended cleanly and may be kept, else closed."""
        self._active = False
        self._body.clear()
        if (
            self._complete
            and self._keep_alive
            and not self.lost
            and not self._bodyless
            and (self.reuse_after_stream or not self._chunked)
        ):
            self._pool.give_back(self)
        else:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: UpstreamClientError) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
            # The exception is retrieved by the request's task; if that task was cancelled, nobody will.
            self._head.exception()
        elif not self._complete:
            self._error = error
            self._wake()

    # ---- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self._active or self._complete:
            # Bytes nobody asked for (before a request, after an answer ended): not a connection to keep.
            self._keep_alive = False
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the backend switched protocols, which the gateway never asked for"))
            self.close()
        except httptools.HttpParserError as error:
            self._fail(ProtocolError(f"the backend's answer is not valid HTTP/1.1: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._pool.forget(self)
        if not self._active:
            return
        if self._head is not None and not self._head.done():
            self._fail(ClosedError(f"the backend closed the connection before answering ({exc or 'EOF'})"))
        elif not self._complete:
            if self._until_close and exc is None:
                # A body delimited by the connection's end (no length, not chunked) ends here, cleanly.
                self._complete = True
                self._wake()
            else:
                self._fail(CutError(f"the backend's answer was cut short ({exc or 'EOF'})"))

    # ---- llhttp callbacks --------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._complete:
            # A second answer to one request: the backend is confused; this connection is not kept.
            self._keep_alive = False
            raise ProtocolError("the backend sent more than one answer to one request")

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append(
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        )

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            # An interim answer (100 Continue, 103 Early Hints): not for the client; the real one follows.
            self._interim = True
            self._reason = b""
            self._fields = []
            return
        headers = CIMultiDict(self._fields)
        self._fields = []
        self._keep_alive = self._parser.should_keep_alive()
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._until_close = "Content-Length" not in headers and not self._chunked
        answer = Answer(self, status, self._reason.decode("latin-1"), CIMultiDictProxy(headers))
        if self._bodyless:
            # A HEAD answer has no body whatever its Content-Length says; the parser would wait for one,
            # so this connection is not reused (finish closes it) and the answer ends here.
            self._complete = True
        assert self._head is not None
        if not self._head.done():
            self._head.set_result(answer)

    def on_body(self, body: bytes) -> None:
        if self._bodyless:
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._complete = True
        self._wake()


class Pool:
    """Keep-alive connections to the backends, most recently used first (the least likely to have been
    closed by the backend's own idle timer)."""

    def __init__(self, *, connect_timeout: float, idle_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        # An ordered set per endpoint: popitem() takes the newest, forget() removes one in O(1).
        self._idle: dict[str, dict[_Connection, None]] = {}
        self._addresses: dict[str, _Address] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        endpoint: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | bytearray,
        *,
        reuse_after_stream: bool = True,
    ) -> Answer:
        """Send one request to *endpoint* (``http://host:port``) and return its answer once its head came.
        *reuse_after_stream*: False for an engine that closes its connection after a streamed (chunked)
        answer unannounced, so that connection is not given back for the next request."""
        address = self._address(endpoint)
        head = _request_head(method, target, headers, body, address)
        payload = b"".join((head, body))  # one send: head and body in the same segment when small
        bodyless = method in _BODYLESS_ANSWER_METHODS
        connection = self._take_idle(endpoint)
        # A kept-alive connection the backend closed as the request went out (its idle timer) gets a
        # request that may safely be repeated once more, on a fresh connection; any other is not repeated,
        # since the backend may have acted on it.
        retry = connection is not None and method in _IDEMPOTENT
        while True:
            if connection is None:
                connection = await self._connect(endpoint, address)
            connection.reuse_after_stream = reuse_after_stream
            # Sent and awaited here, not in a helper: one coroutine less to resume on the warm path.
            answer = connection.send(payload, bodyless_answer=bodyless)
            try:
                return await answer
            except ClosedError:
                connection.finish()
                if not retry:
                    raise
                retry, connection = False, None
            except BaseException:
                # Cancelled (the client left) or failed: this exchange, and its connection, can never finish.
                connection.finish()
                raise

    def _take_idle(self, endpoint: str) -> _Connection | None:
        idle = self._idle.get(endpoint)
        now = asyncio.get_running_loop().time()
        while idle:
            connection, _ = idle.popitem()
            if not connection.lost and now - connection.idle_since < self._idle_timeout:
                return connection
            connection.close()
        return None

    async def _connect(self, endpoint: str, address: _Address) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, endpoint),
                    address.host,
                    address.port,
                    ssl=self._tls_context() if address.tls else None,
                )
        except TimeoutError:
            raise ConnectTimeoutError(
                f"connecting to {address.authority} took over {self._connect_timeout:g}s"
            ) from None
        except OSError as error:
            raise ConnectFailedError(f"cannot connect to {address.authority}: {error}") from error
        return connection

    def give_back(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.endpoint, {})
        if self._closed or len(idle) >= MAX_IDLE_PER_ENDPOINT:
            connection.close()
            return
        connection.idle_since = asyncio.get_running_loop().time()
        idle[connection] = None
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self._idle_timeout, self._expire)

    def forget(self, connection: _Connection) -> None:
        idle = self._idle.get(connection.endpoint)
        if idle is not None:
            idle.pop(connection, None)

    def _expire(self) -> None:
        """Close the connections idle for longer than the idle timeout; look again while any remain."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        for idle in self._idle.values():
            for connection in [c for c in idle if now - c.idle_since >= self._idle_timeout]:
                idle.pop(connection, None)
                connection.close()
        # Endpoints come and go with backend pods: the empty ones are dropped.
        self._idle = {endpoint: idle for endpoint, idle in self._idle.items() if idle}
        if self._idle:
            self._sweep = asyncio.get_running_loop().call_later(self._idle_timeout / 2, self._expire)

    def _address(self, endpoint: str) -> _Address:
        address = self._addresses.get(endpoint)
        if address is None:
            url = yarl.URL(endpoint)
            if url.scheme not in ("http", "https") or not url.host:
                raise ConnectFailedError(f"{endpoint!r} is not an http(s) URL with a host")
            tls = url.scheme == "https"
            port = url.port or (443 if tls else 80)
            authority = url.raw_authority or f"{url.raw_host}:{port}"
            address = self._addresses[endpoint] = _Address(url.host, port, tls, authority)
            if len(self._addresses) > 4096:  # endpoints come and go with pods: never grow without bound
                self._addresses.clear()
        return address

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            for connection in list(idle):
                connection.close()
            idle.clear()
        # Let the transports' close callbacks run before the loop goes away.
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)


def _request_head(
    method: str, target: str, headers: CIMultiDict[str], body: bytes | bytearray, address: _Address
) -> bytes:
    """The request line and headers: the client's headers as the proxy filtered them, with the body's own
    length (the proxy read the whole body, so a client's chunked framing becomes a Content-Length)."""
    lines = [f"{method} {target} HTTP/1.1"]
    if "Host" not in headers:
        lines.append(f"Host: {address.authority}")
    for name, value in headers.items():
        if name.lower() == "content-length":
            continue
        lines.append(f"{name}: {value}")
    if body or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    head = "\r\n".join(lines)
    # Each line ends in exactly one CRLF; any other CR or LF came from a header and would split it.
    if head.count("\n") != len(lines) or head.count("\r") != len(lines):
        raise ProtocolError("a header for the backend holds a line break")
    return head.encode("utf-8", "surrogateescape")
