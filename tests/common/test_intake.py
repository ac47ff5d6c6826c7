"""The intake of new connections' first requests (hearth.common.serve.Intake): a burst of new clients whose
requests arrive together is taken in a few per event-loop iteration, so a request on a kept-alive
connection is served between, not after the whole burst. Real sockets, on asyncio's loop and on uvloop
(the gateway's), the clients in a thread of their own so they can send while the server's loop is busy."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest
from aiohttp import web

from hearth.common import eventloop, netaddr, serve

BURST = 40
#: How long the handler of /block holds the server's loop: the burst's requests queue up meanwhile.
BLOCK_SECONDS = 0.3
#: serve.INTAKE_STEP, written out so that this test also runs (and fails) against a serve without it.
FIRST_REQUESTS_PER_ITERATION = 8


def _loops() -> list[Callable[[], asyncio.AbstractEventLoop]]:
    factories: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
    uvloop_factory = eventloop.loop_factory()
    if uvloop_factory is not None:
        factories.append(uvloop_factory)
    return factories


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def _read_answer(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _serve_while(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], clients: Callable[[int], None]
) -> list[str]:
    """Serve with the gateway's connection handler (a header deadline) on this thread's loop while
    *clients* (given the port) run in a thread of their own; the paths in the order their handlers
    began."""
    served: list[str] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        served.append(request.path)
        if request.path == "/block":
            time.sleep(BLOCK_SECONDS)  # noqa: ASYNC251 - the loop is meant to be busy: what arrives meanwhile is read in one poll
        return web.Response(text="ok")

    async def main() -> None:
        stop = asyncio.Event()
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_started(urls: list[str]) -> None:
            started.set_result(int(urls[0].rsplit(":", 1)[1]))

        server = asyncio.create_task(
            serve.serve(
                handler,
                address=netaddr.ListenAddress("127.0.0.1", 0),
                shutdown_timeout=1,
                name="intake-test",
                stop=stop,
                on_started=on_started,
                header_deadline=10,
            )
        )
        try:
            await asyncio.to_thread(clients, await started)
        finally:
            stop.set()
            await server

    loop = loop_factory()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return served


@pytest.mark.parametrize("loop_factory", _loops(), ids=lambda factory: factory.__module__.split(".")[0])
def test_a_kept_alive_connection_is_served_between_a_bursts_first_requests(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    def clients(port: int) -> None:
        kept = socket.create_connection(("127.0.0.1", port))
        kept.sendall(_request("/warm-0"))
        assert b"ok" in _read_answer(kept)
        # The burst's connections are accepted while idle (as a load client opens them all first).
        burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
        time.sleep(0.2)
        blocker = socket.create_connection(("127.0.0.1", port))
        blocker.sendall(_request("/block"))
        time.sleep(0.05)  # the server's loop is now inside /block's handler
        for index, connection in enumerate(burst):
            connection.sendall(_request(f"/new-{index}"))
        kept.sendall(_request("/warm-1"))  # arrives last, while the loop is still busy
        assert b"ok" in _read_answer(kept)
        for connection in burst:
            assert b"ok" in _read_answer(connection)
        assert b"ok" in _read_answer(blocker)
        for connection in (kept, blocker, *burst):
            connection.close()

    served = _serve_while(loop_factory, clients)
    after_block = served[served.index("/block") + 1 :]
    position = after_block.index("/warm-1")
    # All 41 requests were read in one poll once the loop was free; the kept-alive one is served among the
    # first intake step, not behind the whole burst.
    assert position <= FIRST_REQUESTS_PER_ITERATION, (
        f"/warm-1 served after {position} of the burst's requests"
    )
    assert sorted(after_block) == sorted(["/warm-1", *(f"/new-{i}" for i in range(BURST))])
    assert serve.INTAKE_STEP == FIRST_REQUESTS_PER_ITERATION
    news = [path for path in after_block if path.startswith("/new-")]
    assert len(news) == BURST, "every request of the burst was served"
