"""An in-process gateway built by the production composition root (real limits, real sockets) in front of
in-process backends; readiness is driven by hand."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web

from hearth.common import durations, netaddr
from hearth.gateway import server
from hearth.gateway.front import routing
from hearth.gateway.front.app import Gateway
from hearth.gateway.model.route import Route
from hearth.gateway.settings import ColdStartMode, GatewaySettings
from hearth.gateway.wake.eta import EtaSource
from hearth.gateway.wake.progress import PhaseSource
from hearth.gateway.wake.readiness import ManualReadiness
from hearth.stub import app as stub_app
from hearth.stub.settings import StubSettings


@dataclasses.dataclass
class Running:
    url: str
    assembly: server.Assembly
    readiness: ManualReadiness
    http: aiohttp.ClientSession

    @property
    def gateway(self) -> Gateway:
        return self.assembly.gateway

    @property
    def route(self) -> Route:
        """The dedicated gateway's one route."""
        table = self.gateway.table
        assert isinstance(table, routing.SingleRoute)
        return table.route

    def metric(self, name: str) -> float:
        for line in self.gateway.metrics.exposition().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


GatewayFactory = Callable[..., AbstractAsyncContextManager[Running]]


def seconds(text: str) -> durations.Duration:
    return durations.Duration.parse(text)


def local_settings(**overrides: Any) -> GatewaySettings:
    """Production settings except: a loopback port of its own, no drain delay, no real backend URL."""
    return GatewaySettings(
        backend_url=overrides.pop("backend_url", "http://127.0.0.1:1"),
        listen=overrides.pop("listen", netaddr.ListenAddress("127.0.0.1", 0)),
        drain_delay=overrides.pop("drain_delay", durations.Duration(0)),
        **overrides,
    )


@asynccontextmanager
async def running_gateway(
    *,
    backends: list[str] | None = None,
    eta: EtaSource | None = None,
    phases: PhaseSource | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """The gateway as ``server.build`` assembles it, with readiness set by hand (ready when *backends*)
    and, given *eta* and *phases*, those wake times and that source of the wake's phase."""
    readiness = ManualReadiness()
    if backends:
        readiness.set_endpoints(backends)
    async with (
        server.build(local_settings(**overrides), readiness=readiness, eta=eta, phases=phases) as assembly,
        assembly.serving() as url,
        aiohttp.ClientSession() as http,
    ):
        yield Running(url=url, assembly=assembly, readiness=readiness, http=http)


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
    "local_settings",
    "running_app",
    "running_gateway",
    "running_stub",
    "seconds",
]
