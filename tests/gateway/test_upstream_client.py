"""The proxy's upstream client against scripted backends on real sockets: what a backend can send (interim
answers, HEAD answers, bodies ended by the connection, cut bodies, garbage, a second answer) and what the
pool does with its connections (reuse, a kept-alive connection closed under a request, idle expiry,
back-pressure, connect failures)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from multidict import CIMultiDict

from hearth.gateway.forward import upstream, upstream_client

pytestmark = pytest.mark.looptime

Script = Callable[["Backend", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Backend:
    """A TCP server that runs *script* on each connection and notes what it saw."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await self.script(self, reader, writer)

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request head and its Content-Length body; None at the connection's end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@contextlib.asynccontextmanager
async def backend(script: Script) -> AsyncIterator[Backend]:
    served = Backend(script)
    server = await asyncio.start_server(served._serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    served.url = f"http://127.0.0.1:{port}"
    try:
        yield served
    finally:
        for writer in served.writers:
            writer.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def pool(
    *, idle_timeout: float = 30.0, connect_timeout: float = 5.0
) -> AsyncIterator[upstream_client.Pool]:
    client = upstream_client.Pool(connect_timeout=connect_timeout, idle_timeout=idle_timeout)
    try:
        yield client
    finally:
        await client.close()


def answering(*answers: bytes) -> Script:
    """Each request on a connection gets the next of *answers*; the connection stays open after them."""

    async def script(served: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            if await served.read_request(reader) is None:
                return
            writer.write(answer)
            await writer.drain()
        await reader.read()

    return script


def answering_then_closing(answer: bytes) -> Script:
    """The first request gets *answer*, then the backend ends the connection."""

    async def script(served: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await served.read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    return script


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


async def get(
    client: upstream_client.Pool,
    url: str,
    method: str = "GET",
    body: bytes = b"",
    *,
    reuse_after_stream: bool = True,
) -> tuple[int, bytes]:
    answer = await client.request(
        method,
        url,
        "/v1/models",
        CIMultiDict({"Host": "backend"}),
        body,
        reuse_after_stream=reuse_after_stream,
    )
    with contextlib.closing(answer):
        return answer.status, await answer.read()


async def test_answers_are_read_whole_and_the_connection_is_reused() -> None:
    async with backend(answering(OK, OK, OK)) as served, pool() as client:
        for _ in range(3):
            assert await get(client, served.url) == (200, b"{}")
        assert served.connections == 1


async def test_the_request_head_has_the_clients_headers_a_host_and_the_bodys_own_length() -> None:
    async with backend(answering(OK, OK)) as served, pool() as client:
        # A client's chunked body arrives whole: its Content-Length is the body's, never the client's.
        headers = CIMultiDict({"Content-Length": "999", "X-Trace": "a"})
        headers.add("X-Trace", "b")
        answer = await client.request("POST", served.url, "/v1/completions?x=1%202", headers, b"hello")
        answer.close()
        answer = await client.request("POST", served.url, "/empty", CIMultiDict({"Host": "h"}), b"")
        answer.close()
    first, second = served.requests
    host = served.url.removeprefix("http://").encode()
    assert first == (
        b"POST /v1/completions?x=1%202 HTTP/1.1\r\nHost: " + host + b"\r\nX-Trace: a\r\nX-Trace: b\r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )
    assert second == b"POST /empty HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"


async def test_a_header_holding_a_line_break_is_refused_before_anything_is_sent() -> None:
    async with backend(answering(OK)) as served, pool() as client:
        with pytest.raises(upstream_client.ProtocolError, match="line break"):
            await client.request("GET", served.url, "/", CIMultiDict({"X-Evil": "a\r\nX-Injected: 1"}), b"")
    assert served.requests == []


async def test_interim_answers_are_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    async with backend(answering(interim + OK)) as served, pool() as client:
        answer = await client.request("POST", served.url, "/", CIMultiDict(), b"x")
        with contextlib.closing(answer):
            assert answer.status == 200
            assert "Link" not in answer.headers
            assert await answer.read() == b"{}"


async def test_a_head_answer_has_no_body_whatever_its_length_says() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    async with backend(answering(head)) as served, pool() as client:
        answer = await client.request("HEAD", served.url, "/", CIMultiDict(), b"")
        with contextlib.closing(answer):
            assert (answer.status, answer.content_length, await answer.read()) == (200, 5, b"")


async def test_a_body_delimited_by_the_connections_end_ends_cleanly() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    async with backend(answering_then_closing(answer)) as served, pool() as client:
        assert await get(client, served.url) == (200, b"all of it")


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_a_body_cut_short_raises_after_what_arrived(answer: bytes) -> None:
    async with backend(answering_then_closing(answer)) as served, pool() as client:
        response = await client.request("GET", served.url, "/", CIMultiDict(), b"")
        with contextlib.closing(response):
            received = await response.read_chunk()
            assert received in (b"short", b"hello")
            with pytest.raises(upstream_client.CutError):
                await response.read_chunk()


async def test_a_chunked_body_is_passed_on_without_its_framing() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    async with backend(answering(chunked, OK)) as served, pool() as client:
        assert await get(client, served.url) == (200, b"abcde")
        assert await get(client, served.url) == (200, b"{}")
        assert served.connections == 1, "a chunked answer read to its end leaves the connection reusable"


async def test_an_engine_that_closes_after_a_stream_gets_its_next_request_on_a_new_connection() -> None:
    """llama-server ends a streamed answer by closing the connection, unannounced: reused, the next POST
    would meet that close (a 502: a POST is never sent twice)."""
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"

    async def script(served: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await served.read_request(reader)
        writer.write(chunked if request is not None and b"stream" in request else OK)
        await writer.drain()
        if request is not None and b"stream" in request:
            await served.read_request(reader)  # a request sent on it anyway meets the close
            writer.close()
            return
        await reader.read()

    async with backend(script) as served, pool() as client:
        assert await get(client, served.url, "POST", b"stream", reuse_after_stream=False) == (200, b"abc")
        assert await get(client, served.url, "POST", b"plain", reuse_after_stream=False) == (200, b"{}")
        assert served.connections == 2
    async with backend(script) as served, pool() as client:
        assert await get(client, served.url, "POST", b"stream") == (200, b"abc")
        with pytest.raises(upstream_client.ClosedError):
            await get(client, served.url, "POST", b"plain")


@pytest.mark.parametrize(
    "reply", [b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"]
)
async def test_no_answer_or_not_http_is_an_error_before_the_answer(reply: bytes) -> None:
    async with backend(answering_then_closing(reply)) as served, pool() as client:
        with pytest.raises(upstream_client.UpstreamClientError) as raised:
            await client.request("GET", served.url, "/", CIMultiDict(), b"")
    assert upstream.classify(raised.value) is upstream.FAILED


async def test_a_second_answer_to_one_request_does_not_leak_into_the_first_and_ends_the_connection() -> None:
    async with backend(answering(OK + OK, OK)) as served, pool() as client:
        assert await get(client, served.url) == (200, b"{}")
        assert await get(client, served.url) == (200, b"{}")
        assert served.connections == 2


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
async def test_a_kept_alive_connection_closed_under_a_request_is_retried_only_if_idempotent(
    method: str, retried: bool
) -> None:
    connections = 0

    async def script(served: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first_connection = connections == 1
        await served.read_request(reader)
        writer.write(OK)
        await writer.drain()
        if first_connection:
            # The second request on this connection meets the backend's idle close.
            await served.read_request(reader)
            writer.close()
            return
        await served.read_request(reader)

    async with backend(script) as served, pool() as client:
        assert await get(client, served.url, method) == (200, b"{}")
        if retried:
            assert await get(client, served.url, method) == (200, b"{}")
        else:
            with pytest.raises(upstream_client.ClosedError):
                await get(client, served.url, method)
    assert served.connections == (2 if retried else 1)


async def test_idle_connections_expire() -> None:
    async with backend(answering(OK, OK)) as served, pool(idle_timeout=10) as client:
        assert await get(client, served.url) == (200, b"{}")
        await asyncio.sleep(11)  # fake time: past the idle timeout, the sweep closed it
        assert await get(client, served.url) == (200, b"{}")
        assert served.connections == 2


async def test_a_client_that_reads_slowly_stops_the_backends_socket_being_read() -> None:
    size = 32 * 1024 * 1024
    bound = upstream_client.READ_HIGH_WATER + 1024 * 1024  # the high water and one socket read

    async def script(served: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await served.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
        await writer.drain()

    async with backend(script) as served, pool() as client:
        answer = await client.request("GET", served.url, "/", CIMultiDict(), b"")
        with contextlib.closing(answer):
            # Nothing read for a while, the loop turning: without back-pressure the client would take in
            # what the backend sends (all 32 MiB, in the end) and hand it over in one chunk.
            for _ in range(50):
                await asyncio.sleep(0.1)
            received = 0
            while chunk := await answer.read_chunk():
                assert len(chunk) <= bound, f"{len(chunk)} bytes were buffered for a client that did not read"
                received += len(chunk)
            assert received == size


async def test_a_refused_connect_is_unreachable_and_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with pool() as client:
        with pytest.raises(upstream_client.ConnectFailedError) as raised:
            await client.request("GET", f"http://127.0.0.1:{port}", "/", CIMultiDict(), b"")
    assert upstream.classify(raised.value) is upstream.UNREACHABLE


async def test_a_connect_that_never_completes_times_out_and_is_retryable() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        try:
            async with pool(connect_timeout=3) as client:
                with pytest.raises(upstream_client.ConnectTimeoutError) as raised:
                    await client.request("GET", f"http://127.0.0.1:{port}", "/", CIMultiDict(), b"")
        finally:
            for filler in fillers:
                filler.close()
    assert upstream.classify(raised.value) is upstream.CONNECT_TIMEOUT


async def test_a_request_cancelled_while_waiting_closes_its_connection() -> None:
    closed = asyncio.Event()

    async def script(served: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await served.read_request(reader)
        await reader.read()  # the client's end
        closed.set()

    async with backend(script) as served, pool() as client:
        task = asyncio.create_task(client.request("GET", served.url, "/", CIMultiDict(), b""))
        await asyncio.sleep(1)  # the request went out; its answer never comes
        assert served.requests
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 5)
