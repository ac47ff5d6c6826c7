"""An in-process gateway (the real server code path, real sockets) in front of in-process backends."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web

from hearth.common import durations, netaddr, serve
from hearth.gateway import auth
from hearth.gateway.app import Gateway, make_app
from hearth.gateway.demand import Demand
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.readiness import ManualReadiness
from hearth.gateway.settings import ColdStartMode, GatewaySettings
from hearth.stub import app as stub_app
from hearth.stub.settings import StubSettings


@dataclasses.dataclass
class Running:
    url: str
    gateway: Gateway
    readiness: ManualReadiness
    http: aiohttp.ClientSession

    def metric(self, name: str) -> float:
        for line in self.gateway.metrics.exposition().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


GatewayFactory = Callable[..., AbstractAsyncContextManager[Running]]


def seconds(text: str) -> durations.Duration:
    return durations.Duration.parse(text)


@asynccontextmanager
async def running_gateway(
    *,
    backends: list[str] | None = None,
    ready_grace: float = 15.0,
    header_deadline: float = 10.0,
    api_keys: auth.ApiKeys | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    settings = GatewaySettings(
        backend_url="http://127.0.0.1:1",
        listen=netaddr.ListenAddress("127.0.0.1", 0),
        heartbeat_interval=overrides.pop("heartbeat_interval", seconds("200ms")),
        activation_timeout=overrides.pop("activation_timeout", seconds("5s")),
        drain_delay=durations.Duration(0),
        **overrides,
    )
    readiness = ManualReadiness()
    if backends:
        readiness.set_endpoints(backends)
    metrics = GatewayMetrics()
    session = aiohttp.ClientSession(auto_decompress=False)
    demand = Demand(
        readiness=readiness,
        metrics=metrics,
        activation_timeout=settings.activation_timeout.seconds,
        ready_grace=ready_grace,
    )
    gateway = Gateway(
        settings=settings,
        readiness=readiness,
        demand=demand,
        metrics=metrics,
        session=session,
        api_keys=api_keys,
    )
    stop = asyncio.Event()
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        serve.serve(
            make_app(gateway),
            address=settings.listen,
            shutdown_timeout=5,
            name="gateway",
            stop=stop,
            on_started=lambda urls: started.set_result(urls[0]),
            handler_cancellation=True,
            header_deadline=header_deadline,
        )
    )
    url = await asyncio.wait_for(started, 10)
    try:
        async with aiohttp.ClientSession() as http:
            yield Running(url=url, gateway=gateway, readiness=readiness, http=http)
    finally:
        stop.set()
        await server
        await demand.close()
        await session.close()


@pytest.fixture
def start_gateway() -> GatewayFactory:
    """``async with start_gateway(backends=[...], **settings) as running: ...``"""
    return running_gateway


@asynccontextmanager
async def running_app(app: web.Application) -> AsyncIterator[str]:
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@asynccontextmanager
async def running_stub(**settings: Any) -> AsyncIterator[str]:
    settings.setdefault("token_delay", seconds("1ms"))
    async with running_app(stub_app.make_app(StubSettings(**settings))) as url:
        yield url


def echo_app() -> web.Application:
    """A backend that answers with what it received (method, path, headers, body digest)."""
    import hashlib

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": dict(request.headers.items()),
                "sha256": hashlib.sha256(body).hexdigest(),
                "length": len(body),
            },
            headers={"Connection": "close, X-Backend-Secret", "X-Backend-Secret": "hop", "X-Kept": "yes"},
        )

    app = web.Application(client_max_size=128 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


__all__ = [
    "ColdStartMode",
    "GatewayFactory",
    "Running",
    "echo_app",
    "running_app",
    "running_gateway",
    "running_stub",
    "seconds",
]
