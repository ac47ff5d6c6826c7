"""The probe fallback (no API access) against engines whose health is not at ``/health`` (issue 17, B8):
it probes the runtime's readiness probe path, and says so, rate-limited, when the path answers non-2xx."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from hearth.gateway.wake.readiness import ProbeReadiness
from tests.gateway.conftest import running_app

HANG_GUARD_S = 20


def _engine_without_health(*, ready_path: str = "/v1/models") -> web.Application:
    """Like llama.cpp's server as probed: 404 on /health, 200 on its own readiness path."""

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get(ready_path, ready)
    return app


async def test_the_probe_uses_the_runtime_readiness_path() -> None:
    async with running_app(_engine_without_health()) as engine, aiohttp.ClientSession() as session:
        readiness = ProbeReadiness(engine, session, path="/v1/models")
        task = asyncio.create_task(readiness.run())
        try:
            assert await readiness.wait_ready(HANG_GUARD_S)
            assert readiness.endpoints() == [engine]
        finally:
            task.cancel()


async def test_a_probe_path_answered_404_is_not_ready_and_is_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(_engine_without_health()) as engine, aiohttp.ClientSession() as session:
        readiness = ProbeReadiness(engine, session, path="/health")
        task = asyncio.create_task(readiness.run())
        try:
            for _ in range(5):  # suspect() asks for a probe at once instead of in 500 ms
                readiness.suspect()
                await asyncio.sleep(0.05)
            assert not readiness.ready
        finally:
            task.cancel()
    lines = [
        r
        for r in caplog.records
        if r.name == "hearth.gateway.wake.readiness" and r.levelno >= logging.WARNING
    ]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].fields["status"] == 404  # type: ignore[attr-defined]
    assert lines[0].fields["url"] == f"{engine}/health"  # type: ignore[attr-defined]
    assert "readiness probe path" in lines[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]
