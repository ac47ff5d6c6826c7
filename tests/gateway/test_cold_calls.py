"""The ``/hearth/queues`` long-poll (issue 32): a cold request whose backend the gateway does not wake itself
(an AcceleratorPool member's) answers the operator's held poll at once, over real sockets on fake time."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from hearth.gateway.model.demand import ColdCalls
from tests.gateway.conftest import ColdStartMode, GatewayFactory, Running, running_app

pytestmark = pytest.mark.looptime


async def test_a_cold_request_answers_the_held_poll_at_once(start_gateway: GatewayFactory) -> None:
    # No backend Deployment in the environment: the gateway does not wake it (a pool member's gateway).
    async with start_gateway(cold_start_mode=ColdStartMode.REJECT, model_name="pool-c") as gw:
        async with gw.http.get(f"{gw.url}/hearth/queues") as response:
            baseline = await response.json()
        assert baseline == {"calls": 0, "models": {"pool-c": 0}}
        loop = asyncio.get_running_loop()
        started = loop.time()
        poll = asyncio.create_task(gw.http.get(f"{gw.url}/hearth/queues?since=0&wait=30"))
        await asyncio.sleep(5)
        assert not poll.done(), "held while nothing is asked for"
        async with gw.http.post(f"{gw.url}/v1/completions", json={}) as refused:
            assert refused.status == 503
        async with await poll as response:
            answer = await response.json()
        assert loop.time() - started == pytest.approx(5, abs=0.05), "answered when the request came"
        assert answer == {"called": ["pool-c"], "calls": 1, "models": {"pool-c": 1}}


async def test_one_call_per_wake_and_a_quiet_poll_ends_at_its_wait(start_gateway: GatewayFactory) -> None:
    async with start_gateway(cold_start_mode=ColdStartMode.REJECT) as gw:
        for _ in range(3):
            async with gw.http.post(f"{gw.url}/v1/completions", json={}) as refused:
                assert refused.status == 503
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with gw.http.get(f"{gw.url}/hearth/queues?since=1&wait=7") as response:
            answer = await response.json()
        assert answer["calls"] == 1, "the same wake is announced once, not once per request"
        assert answer["called"] == []
        assert loop.time() - started == pytest.approx(7, abs=0.05)


async def test_a_number_from_another_process_is_answered_at_once(start_gateway: GatewayFactory) -> None:
    async with start_gateway() as gw:
        async with gw.http.get(f"{gw.url}/hearth/queues?since=41&wait=30") as response:
            answer = await response.json()
        assert answer["calls"] == 0
        assert answer["called"] == []
        async with gw.http.get(f"{gw.url}/hearth/queues?since=x") as response:
            assert response.status == 400
            assert "since" in (await response.json())["error"]["message"]


async def test_a_gateway_that_wakes_its_backend_announces_nothing(start_gateway: GatewayFactory) -> None:
    calls = ColdCalls()
    async with start_gateway(cold_start_mode=ColdStartMode.REJECT) as gw:
        route = gw.route
        route.cold_calls = calls

        woken: list[float] = []

        class Waking:
            def wake(self, at: float) -> None:
                woken.append(at)

            async def close(self) -> None:
                return None

        route.waker = Waking()  # type: ignore[assignment]
        async with gw.http.post(f"{gw.url}/v1/completions", json={}) as refused:
            assert refused.status == 503
        assert woken, "the gateway woke it"
        assert calls.sequence == 0, "and announced nothing"


async def test_stopping_answers_a_held_poll() -> None:
    calls = ColdCalls()
    waiter = asyncio.create_task(calls.wait(since=0, seconds=60))
    await asyncio.sleep(1)
    calls.close()
    assert await waiter == 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await calls.wait(since=0, seconds=60) == 0
    assert loop.time() == started, "a closed sequence holds no poll"


async def test_routing_counts_where_the_route_sends_requests(start_gateway: GatewayFactory) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/completions", slow)
    async with running_app(app) as backend, start_gateway(backends=[backend], model_name="pool-a") as gw:
        request = asyncio.create_task(gw.http.post(f"{gw.url}/v1/completions", json={}))
        await asyncio.sleep(1)
        assert await _routing(gw) == {"addressesPods": True, "endpoints": 1, "outstanding": 1}
        gw.readiness.set_endpoints([])  # the pod's endpoint removal reached this gateway
        assert await _routing(gw) == {"addressesPods": True, "endpoints": 0, "outstanding": 1}
        release.set()
        async with await request as answered:
            assert answered.status == 200
        assert await _routing(gw) == {"addressesPods": True, "endpoints": 0, "outstanding": 0}
        async with gw.http.get(f"{gw.url}/hearth/queues") as response:
            assert "routing" not in await response.json(), "only when asked"


async def _routing(gw: Running) -> dict[str, object]:
    async with gw.http.get(f"{gw.url}/hearth/queues?routing=1") as response:
        routing: dict[str, object] = (await response.json())["routing"]["pool-a"]
        return routing
