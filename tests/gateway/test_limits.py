"""The production request limits (DESIGN 3), through the production composition root over real sockets:
header size (431), head deadline (408) and keep-alive, on fake loop time so the real 10 s and 75 s pass
without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hearth.gateway import server
from tests.gateway.conftest import GatewayFactory, Running

pytestmark = pytest.mark.looptime

#: aiohttp's own default field limit: a gateway running on defaults would refuse what is accepted here.
AIOHTTP_DEFAULT_FIELD_SIZE = 8190


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> AsyncIterator[Running]:
    async with start_gateway() as running:
        yield running


async def _connect(gw: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _status_of(gw: Running, head: bytes) -> bytes:
    reader, writer = await _connect(gw)
    writer.write(head)
    status = await reader.readline()
    writer.close()
    return status


def _head_with_field(value_size: int) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * value_size + b"\r\n\r\n"


def test_the_production_limits_are_the_documented_ones() -> None:
    assert server.MAX_FIELD_SIZE == 16 * 1024
    assert server.MAX_LINE_SIZE == 16 * 1024
    assert server.HEADER_DEADLINE_SECONDS == 10.0
    assert server.KEEPALIVE_SECONDS == 75.0


async def test_a_header_field_within_the_production_limit_is_served(gw: Running) -> None:
    for size in (AIOHTTP_DEFAULT_FIELD_SIZE + 1000, server.MAX_FIELD_SIZE):
        status = await _status_of(gw, _head_with_field(size))
        assert status.startswith(b"HTTP/1.1 200"), (size, status)


async def test_a_header_field_over_the_production_limit_gets_431(gw: Running) -> None:
    status = await _status_of(gw, _head_with_field(server.MAX_FIELD_SIZE + 1))
    assert status.split()[1] == b"431", status
    async with gw.http.get(f"{gw.url}/healthz") as response:
        assert response.status == 200, "the gateway lives on"


async def test_a_request_line_over_the_production_limit_gets_431(gw: Running) -> None:
    path = b"/" + b"a" * server.MAX_LINE_SIZE
    status = await _status_of(gw, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status.split()[1] == b"431", status


async def test_a_slow_head_gets_408_at_the_production_deadline(gw: Running) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await _connect(gw)
    started = loop.time()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # the head never ends
    answer = asyncio.ensure_future(reader.readline())
    await asyncio.sleep(server.HEADER_DEADLINE_SECONDS - 0.5)
    assert not answer.done(), "nothing is answered before the deadline"
    status = await answer
    assert status.startswith(b"HTTP/1.1 408"), status
    assert loop.time() - started == pytest.approx(server.HEADER_DEADLINE_SECONDS, abs=0.1)
    assert (await reader.read()).endswith(b"\r\n\r\n")
    assert reader.at_eof(), "then the connection is closed"
    writer.close()


async def test_an_idle_keep_alive_connection_closes_after_the_production_timeout(gw: Running) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await _connect(gw)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    answered = loop.time()
    while await reader.readline() not in (b"\r\n", b""):
        pass  # the rest of the head (the body is empty)
    assert await reader.read() == b"", "the server closes the idle connection"
    assert loop.time() - answered == pytest.approx(server.KEEPALIVE_SECONDS, abs=1)
    writer.close()


async def test_the_app_refuses_bodies_over_the_configured_size(start_gateway: GatewayFactory) -> None:
    async with start_gateway(max_body_bytes=1024) as running:
        async with running.http.post(f"{running.url}/v1/chat/completions", data=b"x" * 1025) as response:
            assert response.status == web.HTTPRequestEntityTooLarge.status_code
