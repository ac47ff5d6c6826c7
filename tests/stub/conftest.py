from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
import pytest
from aiohttp import test_utils

from hearth.common import clock as clock_module
from hearth.common.durations import Duration
from hearth.stub import app as stub_app
from hearth.stub.settings import StubSettings

StubFactory = Callable[..., AbstractAsyncContextManager[tuple[str, aiohttp.ClientSession]]]

FAST_TOKENS = Duration.parse("1ms")


@pytest.fixture
def stub() -> StubFactory:
    """Run the stub in-process on a real loopback socket.

    Usage: ``async with stub(token_count=3) as (url, http): ...``
    """

    @asynccontextmanager
    async def start(
        *, clock: clock_module.Clock | None = None, **settings: object
    ) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
        settings.setdefault("token_delay", FAST_TOKENS)
        app = stub_app.make_app(StubSettings(**settings), clock=clock)  # type: ignore[arg-type]
        server = test_utils.TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                yield str(server.make_url("")).rstrip("/"), http
        finally:
            await server.close()

    return start
