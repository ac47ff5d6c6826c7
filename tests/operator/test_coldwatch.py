"""The leader's long-polls of gateway pods (issue 32) against a real gateway over real sockets, on fake time:
a cold request for a backend the gateway does not wake kicks an autoscaler pass at once."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from hearth.operator.autoscaling import coldwatch
from tests.gateway.conftest import ColdStartMode, running_app, running_gateway

pytestmark = pytest.mark.looptime


async def test_a_cold_request_kicks_a_pass_at_once() -> None:
    watch = coldwatch.ColdWatch()
    loop = asyncio.get_running_loop()
    async with (
        running_gateway(cold_start_mode=ColdStartMode.REJECT, model_name="pool-c") as gw,
        aiohttp.ClientSession() as http,
    ):
        try:
            watch.watch([gw.url], http)
            await asyncio.sleep(100)  # quiet: polls held and renewed, no kick
            assert not watch.kick.is_set()
            sent = loop.time()
            async with http.post(f"{gw.url}/v1/completions", json={}) as refused:
                assert refused.status == 503
            await asyncio.wait_for(watch.kick.wait(), 1)
            assert loop.time() - sent < 0.05
            watch.kick.clear()
            async with http.post(f"{gw.url}/v1/completions", json={}) as refused:
                assert refused.status == 503
            await asyncio.sleep(60)
            assert not watch.kick.is_set(), "the same wake kicks once"
        finally:
            await watch.close()
        assert watch.watched == set()


async def test_a_gateway_without_the_long_poll_is_asked_once_a_wait() -> None:
    asked: list[str] = []

    async def queues(request: web.Request) -> web.Response:
        asked.append(request.query_string)
        return web.json_response({"models": {"pool-c": 0}})  # an older gateway: no "calls"

    app = web.Application()
    app.router.add_get("/hearth/queues", queues)
    watch = coldwatch.ColdWatch(wait=30)
    async with running_app(app) as url, aiohttp.ClientSession() as http:
        watch.watch([url], http)
        await asyncio.sleep(100)
        await watch.close()
    assert len(asked) == 4, "no busy loop against a gateway that answers at once"
    assert not watch.kick.is_set()


async def test_an_unreachable_gateway_is_retried_and_dropped_when_unwanted() -> None:
    watch = coldwatch.ColdWatch(retry=2)
    async with aiohttp.ClientSession() as http:
        watch.watch(["http://127.0.0.1:1"], http)
        await asyncio.sleep(10)
        assert watch.watched == {"http://127.0.0.1:1"}
        watch.watch([], http)
        assert watch.watched == set()
        await watch.close()


async def test_a_pass_waits_its_interval_unless_kicked_and_kicked_passes_are_spaced() -> None:
    watch = coldwatch.ColdWatch()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await watch.pause(started=started, interval=2)
    assert loop.time() - started == pytest.approx(2)

    started = loop.time()
    loop.call_later(0.5, watch.kick.set)
    await watch.pause(started=started, interval=2)
    assert loop.time() - started == pytest.approx(0.5), "a kick runs the next pass at once"

    started = loop.time()
    watch.kick.set()  # kicked during the pass itself
    await watch.pause(started=started, interval=2)
    assert loop.time() - started == pytest.approx(coldwatch.MIN_KICKED_GAP_SECONDS)

    started = loop.time() - 3  # the pass took longer than the interval
    await watch.pause(started=started, interval=2)
    assert loop.time() - started == pytest.approx(3)
