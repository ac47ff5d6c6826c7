"""The listen backlog (issue 18): what is asked for, unless the kernel's net.core.somaxconn is lower, which
is then said in the log (the kernel would truncate it silently)."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from pathlib import Path

import pytest
from aiohttp import web

from hearth.common import netaddr, serve


def test_the_backlog_asked_for_is_kept_within_the_kernel_cap(tmp_path: Path) -> None:
    cap = tmp_path / "somaxconn"
    cap.write_text("4096\n")
    assert serve.listen_backlog(4096, component="gateway", somaxconn=cap) == 4096
    assert serve.listen_backlog(100, component="gateway", somaxconn=cap) == 100


def test_a_backlog_over_the_kernel_cap_is_capped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cap = tmp_path / "somaxconn"
    cap.write_text("1024\n")
    with caplog.at_level(logging.WARNING, logger=serve.log.name):
        assert serve.listen_backlog(8192, component="gateway", somaxconn=cap) == 1024
    assert "net.core.somaxconn" in caplog.text


def test_without_proc_the_backlog_asked_for_goes_to_the_kernel(tmp_path: Path) -> None:
    assert serve.listen_backlog(4096, component="gateway", somaxconn=tmp_path / "absent") == 4096


async def test_the_listener_queues_the_backlog_it_was_given() -> None:
    """A listener that is never accepted from queues connections up to its backlog: with the default 128,
    the 200 connections below could not all complete their handshake."""
    app = web.Application()
    listening: list[str] = []
    stop = asyncio.Event()

    def started(urls: list[str]) -> None:
        listening.extend(urls)

    server = asyncio.create_task(
        serve.serve(
            app,
            address=netaddr.ListenAddress("127.0.0.1", 0),
            shutdown_timeout=1,
            name="test",
            stop=stop,
            on_started=started,
            backlog=1024,
        )
    )
    try:
        while not listening:  # noqa: ASYNC110 - waits for the task in this loop to bind
            await asyncio.sleep(0.01)
        port = int(listening[0].rsplit(":", 1)[1])
        # The loop is blocked by this test (no accept runs): only the kernel's accept queue holds them.
        clients = []
        for _ in range(200):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            clients.append(client)
        pending, connected = list(clients), 0
        while pending:  # until every handshake completed, or none completes for a while (a dropped SYN)
            _, writable, _ = select.select([], pending, [], 2)
            if not writable:
                break
            connected += len(writable)
            pending = [client for client in pending if client not in writable]
        assert connected == 200, "every connection completed its handshake without an accept"
        for client in clients:
            client.close()
    finally:
        stop.set()
        await server
