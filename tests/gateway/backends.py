"""Misbehaving backends for the gateway's component tests, as small asyncio servers on real sockets.

Each one reads a whole HTTP/1.1 request (head and Content-Length body) and then misbehaves in one way a
flaky engine does: cuts an answer short, closes or resets before answering, never sends ``100 Continue``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Behaviour = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


@asynccontextmanager
async def raw_backend(behaviour: Behaviour) -> AsyncIterator[str]:
    """Serve *behaviour* (called with the request head) on a free port; yields the base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            head = await read_head(reader)
            await behaviour(head, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            tasks.discard(task)
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def _read_body(head: bytes, reader: asyncio.StreamReader) -> bytes:
    return await reader.readexactly(content_length(head))


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER 0), as a crashing engine's kernel does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


SSE_EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"tok0 "}}]}\n\n'


async def truncated_sse(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked event stream that stops after one event, without the terminating chunk."""
    await _read_body(head, reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(SSE_EVENT):x}\r\n".encode()
        + SSE_EVENT
        + b"\r\n"
    )
    await writer.drain()


def truncated_length(*, promised: int) -> Behaviour:
    """Promises *promised* bytes of JSON and sends 9."""

    async def behaviour(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_body(head, reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % promised
            + b'{"id": "x'
        )
        await writer.drain()

    return behaviour


async def closes_before_answering(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await _read_body(head, reader)


async def resets_before_answering(
    head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await _read_body(head, reader)
    reset(writer)


async def garbage_answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Not HTTP at all (a misconfigured port)."""
    await _read_body(head, reader)
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()


async def never_continues(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Never sends ``100 Continue``: answers once the body arrived on its own (or never)."""
    body = await _read_body(head, reader)
    answer = b'{"got": %d}' % len(body)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(answer)
        + answer
    )
    await writer.drain()


# ---- a raw client, for what aiohttp's client will not send ----------------------------------------------
async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def exchange(url: str, request: bytes, *, within: float = 20) -> bytes:
    """Send *request* bytes and read until the gateway closes the connection (*within* is a hang guard)."""
    reader, writer = await connect(url)
    try:
        writer.write(request)
        async with asyncio.timeout(within):
            return await reader.read(-1)
    finally:
        writer.close()


async def read_response_head(reader: asyncio.StreamReader, *, within: float = 20) -> bytes:
    async with asyncio.timeout(within):
        return await reader.readuntil(b"\r\n\r\n")
