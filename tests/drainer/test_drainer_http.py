"""The drain sidecar over real sockets, against the real stub's /metrics (vllm:num_requests_running and
_waiting, set live by streams or through /control), a closed port, a hung endpoint and the process itself."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import test_utils, web
from click.testing import CliRunner

from hearth.cmd.main import cli
from hearth.common import durations, netaddr
from hearth.drainer import app, policy
from hearth.drainer.settings import DrainerSettings
from tests.helpers import running_hearth
from tests.stub.conftest import StubFactory

FAST = policy.Timing(timeout=30.0, endpoint_delay=0.01, poll_interval=0.01)
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"


def _settings(metrics_url: str) -> DrainerSettings:
    return DrainerSettings(
        listen=netaddr.ListenAddress.parse("127.0.0.1:0"),
        metrics_url=metrics_url,
        running_metric=RUNNING,
        waiting_metric=WAITING,
    )


@asynccontextmanager
async def _drainer(
    metrics_url: str, timing: policy.Timing = FAST
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """The drainer's application on a loopback socket, scraping *metrics_url* with the real scraper."""
    async with aiohttp.ClientSession() as scraping, aiohttp.ClientSession() as kubelet:
        drainer = app.Drainer(timing, app.HttpScraper(scraping, _settings(metrics_url)))
        server = test_utils.TestServer(app.make_app(drainer), host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/"), kubelet
        finally:
            await server.close()


async def _drain(base: str, http: aiohttp.ClientSession) -> dict[str, object]:
    async with http.get(f"{base}/drain") as response:
        assert response.status == 200
        body: dict[str, object] = await response.json()
        return body


async def test_an_idle_engine_answers_the_prestop_at_once(stub: StubFactory) -> None:
    async with stub() as (engine, _), _drainer(f"{engine}/metrics") as (base, http):
        assert (await _drain(base, http))["outcome"] == "idle"


async def test_the_settled_word_over_http_ends_the_endpoint_delay(stub: StubFactory) -> None:
    slow = policy.Timing(timeout=30.0, endpoint_delay=20.0, poll_interval=0.01)
    async with stub() as (engine, _), _drainer(f"{engine}/metrics", slow) as (base, http):
        async with http.post(f"{base}/drain/settled") as response:
            assert response.status == 204
        body = await asyncio.wait_for(_drain(base, http), 5)  # not the 20 s endpoint delay
        assert body["outcome"] == "idle"
        assert float(str(body["seconds"])) < 1


async def test_the_prestop_waits_for_a_stream_in_flight_to_finish_whole(stub: StubFactory) -> None:
    async with stub(token_delay=durations.Duration.parse("20ms")) as (engine, client):
        async with _drainer(f"{engine}/metrics") as (base, http):
            stream = await client.post(
                f"{engine}/v1/completions?tokens=40",
                json={"model": "hearth-stub", "prompt": "hi", "stream": True},
            )
            drain = asyncio.create_task(_drain(base, http))
            body = await stream.read()  # the whole stream, every token
            stream_done_before_drain = not drain.done()
            result = await drain
    assert body.rstrip().endswith(b"data: [DONE]")
    assert stream_done_before_drain, "the drain ended while the stream was still running"
    assert result["outcome"] == "idle"


async def test_waiting_requests_hold_the_drain_until_they_are_gone(stub: StubFactory) -> None:
    async with stub() as (engine, client), _drainer(f"{engine}/metrics") as (base, http):
        async with client.post(f"{engine}/control", json={"running": 0, "waiting": 2}) as response:
            assert response.status == 200
        drain = asyncio.create_task(_drain(base, http))
        await asyncio.sleep(0.2)  # many polls: none may end the drain while two requests wait
        assert not drain.done()
        async with client.delete(f"{engine}/control") as response:
            assert response.status == 200
        assert (await drain)["outcome"] == "idle"


async def test_a_refused_metrics_port_means_nothing_is_in_flight() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: connections to it are refused
    async with _drainer(f"http://127.0.0.1:{port}/metrics") as (base, http):
        assert (await _drain(base, http))["outcome"] == "engine-gone"


@pytest.mark.parametrize("kind", ["hang", "error", "garbage"])
async def test_an_engine_that_cannot_be_read_keeps_the_drain_until_the_timeout(kind: str) -> None:
    async def metrics(request: web.Request) -> web.Response:
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "error":
            return web.Response(status=500, text="engine busy")
        return web.Response(text="no counts here\n")

    engine_app = web.Application()
    engine_app.router.add_get("/metrics", metrics)
    engine = test_utils.TestServer(engine_app, host="127.0.0.1")
    await engine.start_server()
    timing = policy.Timing(timeout=0.3, endpoint_delay=0.01, poll_interval=0.05)
    try:
        async with _drainer(str(engine.make_url("/metrics")), timing) as (base, http):
            result = await _drain(base, http)
    finally:
        await engine.close()
    assert result["outcome"] == "timeout"


def _drainer_args(engine: str, *extra: str) -> list[str]:
    """``hearth drainer`` on a free loopback port, reading the stub at *engine*."""
    return [
        "drainer",
        "--listen=127.0.0.1:0",
        f"--metrics-url={engine}/metrics",
        f"--running-metric={RUNNING}",
        f"--waiting-metric={WAITING}",
        *extra,
    ]


async def test_the_drainer_process_stops_on_sigterm_before_any_drain(stub: StubFactory) -> None:
    """Before any drain, SIGTERM stops it (a pod deleted before its engine ever started)."""
    async with stub() as (engine, _):
        async with running_hearth(_drainer_args(str(engine))) as process, aiohttp.ClientSession() as http:
            base = process.wait_listening()
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            assert await process.stop_async() == 0


async def test_the_drainer_process_ends_once_it_has_answered_the_drain(stub: StubFactory) -> None:
    """Its one job is done: it exits by itself, so the kubelet need not stop it after the engine (issue 32),
    and an engine restarted later is drained by a fresh drainer, never answered a finished drain's result."""
    async with stub() as (engine, client):
        async with client.post(f"{engine}/control", json={"running": 1}) as response:
            assert response.status == 200
        args = _drainer_args(str(engine), "--endpoint-delay=10ms", "--poll-interval=10ms")
        async with running_hearth(args) as process, aiohttp.ClientSession() as http:
            base = process.wait_listening()
            drain = asyncio.create_task(_drain(base, http))
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            assert not drain.done()
            async with client.post(f"{engine}/control", json={"running": 0}) as response:
                assert response.status == 200
            result = await drain
            assert result["outcome"] == "idle"
            assert await process.wait_async(within_s=10) == 0, "the drainer did not end after answering"
        assert "drain over" in process.text()


def test_the_drainer_command_refuses_a_bad_metrics_url() -> None:
    outcome = CliRunner().invoke(
        cli, ["drainer", "--metrics-url=localhost:8000", "--running-metric=r", "--waiting-metric=w"]
    )
    assert outcome.exit_code == 2
    assert "--metrics-url must be an http(s) URL" in outcome.output
