"""The listener takes new connections a few per event-loop iteration (issue 24): a burst of new connections
does not hold up requests on connections already open; and on stop, new connections are refused while
requests in flight finish."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from aiohttp import web

from hearth.common import netaddr, serve

LOOPS: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
with contextlib.suppress(ImportError):
    import uvloop

    LOOPS.append(uvloop.new_event_loop)


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def _serving(
    handler: serve.BareHandler, *, host: str | None = "127.0.0.1", **options: int
) -> AsyncIterator[list[str]]:
    """serve() in the background on a port of the kernel's choosing; yields its URLs."""
    stop = asyncio.Event()
    started: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve.serve(
            handler,
            address=netaddr.ListenAddress(host, 0),
            shutdown_timeout=5,
            name="test",
            stop=stop,
            on_started=started.set_result,
            **options,
        )
    )
    await asyncio.wait({started, server}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        await server
    try:
        yield started.result()
    finally:
        stop.set()
        await server


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def _response(client: socket.socket) -> bytes:
    """One response with a body of Content-Length bytes, read from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed mid-response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += client.recv(4096)
    return head.split(b"\r\n", 1)[0] + b"\r\n" + body


@contextlib.contextmanager
def _clients(count: int, port: int) -> Iterator[list[socket.socket]]:
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


BURST = 128


@pytest.mark.parametrize("new_loop", LOOPS, ids=lambda factory: factory.__module__.split(".")[0])
def test_a_burst_of_new_connections_does_not_hold_up_an_open_connection(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """A burst of connections is queued in the kernel while the loop is busy, each with a request whose
    handler takes the loop for a while (the CPU a real request costs). Once the first of them is being
    served, a request is sent on a keep-alive connection opened before: it is answered among the
    burst's requests, not after all of them. Accepting every pending connection in one iteration (the
    loops' own servers) runs every burst handler in one iteration, before the loop reads that request."""
    served: list[str] = []
    holding = threading.Event()
    burst_queued = threading.Event()
    burst_begun = threading.Event()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        served.append(request.path)
        if request.path == "/hold":
            # Blocks the loop, so nothing is accepted until the whole burst waits in the accept queue.
            holding.set()
            burst_queued.wait(30)
        elif request.path == "/burst":
            burst_begun.set()
            time.sleep(0.002)  # noqa: ASYNC251 - the CPU of a real request, holding the loop
        return web.Response(text=request.path)

    def client(port: int, answers: list[bytes]) -> None:
        with socket.create_connection(("127.0.0.1", port)) as established:
            established.sendall(_request("/hold"))
            assert holding.wait(30)
            with _clients(BURST, port) as burst:
                for each in burst:
                    each.sendall(_request("/burst"))
                burst_queued.set()
                answers.append(_response(established))
                assert burst_begun.wait(30)
                established.sendall(_request("/open"))
                answers.append(_response(established))
                answers.extend(_response(each) for each in burst)

    async def main() -> list[bytes]:
        answers: list[bytes] = []
        async with _serving(handler, backlog=1024) as urls:
            await asyncio.to_thread(client, _port(urls[0]), answers)
        return answers

    with asyncio.Runner(loop_factory=new_loop) as runner:
        answers = runner.run(main())
    assert answers[1] == b"HTTP/1.1 200 OK\r\n/open"
    assert answers.count(b"HTTP/1.1 200 OK\r\n/burst") == BURST
    after = served[served.index("/open") + 1 :]
    # Slices of 8 put it a few slices after the first burst request; half the burst leaves room for a
    # slow client thread. Without slices it comes after every one of them.
    assert len(after) >= BURST // 2, f"{BURST - len(after)} burst requests were served before it"


async def test_stop_refuses_new_connections_while_a_request_in_flight_finishes() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        entered.set()
        await release.wait()
        return web.Response(text="finished")

    stop = asyncio.Event()
    started: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve.serve(
            handler,
            address=netaddr.ListenAddress("127.0.0.1", 0),
            shutdown_timeout=30,
            name="test",
            stop=stop,
            on_started=started.set_result,
        )
    )
    port = _port((await started)[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_request("/slow"))
    await entered.wait()
    stop.set()
    refused = False
    for _ in range(200):  # until the listener is closed: the stop is handled by the server's own task
        try:
            _, probe = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            refused = True
            break
        except ConnectionResetError:
            continue  # queued as the listener closed (reset with the queue); the next one is refused
        probe.close()
        await asyncio.sleep(0.01)
    assert refused, "new connections are refused once stopping"
    assert not server.done(), "the request in flight holds the shutdown"
    release.set()
    answer = await reader.read()
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"finished")
    writer.close()
    await server


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_accepted_connections_have_keepalive_and_nodelay(host: str) -> None:
    """Set once on the listening socket, inherited by every accepted one (Linux, the BSDs)."""
    if ":" in host and not _ipv6():
        pytest.skip("no IPv6 on this host")

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        assert sock is not None
        keepalive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        return web.Response(text=f"{keepalive} {nodelay}")

    async with _serving(handler, host=host) as urls:
        reader, writer = await asyncio.open_connection(host, _port(urls[0]))
        writer.write(_request("/"))
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
        writer.close()
    keepalive, nodelay = body.split()
    assert int(keepalive) != 0, "SO_KEEPALIVE: a dead peer's connection is found and closed"
    assert int(nodelay) != 0, "TCP_NODELAY: small responses and stream events are not delayed"


async def test_every_interface_is_listened_on_by_ipv4_and_ipv6() -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(text="here")

    async with _serving(handler, host=None) as urls:
        assert any(url.startswith("http://0.0.0.0:") for url in urls)
        if _ipv6():
            assert any(url.startswith("http://[::]:") for url in urls)
        for url in urls:
            host = "::1" if url.startswith("http://[") else "127.0.0.1"
            reader, writer = await asyncio.open_connection(host, _port(url))
            writer.write(_request("/"))
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            writer.close()


async def test_an_address_in_use_is_a_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return web.Response()

        with pytest.raises(
            serve.ListenError, match=f"cannot listen on 127.0.0.1:{port}: address already in use"
        ):
            await serve.serve(
                handler, address=netaddr.ListenAddress("127.0.0.1", port), shutdown_timeout=1, name="test"
            )
