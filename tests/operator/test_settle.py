"""After a pool eviction, the operator's confirmation that no gateway routes to the victim, and its word
to the victim's drain sidecars (issue 32): real gateways and a real drain sidecar over real sockets, fake
time."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hearth.api import drain as drain_api
from hearth.drainer import app as drainer_app
from hearth.drainer import policy
from hearth.operator.autoscaling import settle
from tests.gateway.conftest import running_app, running_gateway

pytestmark = pytest.mark.looptime

MODEL = "pool-a"


async def test_settled_once_the_endpoint_removal_reached_every_gateway() -> None:
    loop = asyncio.get_running_loop()
    async with (
        running_app(_backend(asyncio.Event(), open_=True)) as backend,
        running_gateway(backends=[backend], model_name=MODEL) as first,
        running_gateway(backends=[backend], model_name=MODEL) as second,
        aiohttp.ClientSession() as http,
    ):
        loop.call_later(0.3, first.readiness.set_endpoints, [])
        loop.call_later(0.7, second.readiness.set_endpoints, [])
        started = loop.time()
        outcome = await settle.confirm(http, model=MODEL, gateways=[first.url, second.url])
        assert outcome is settle.Outcome.SETTLED
        assert loop.time() - started == pytest.approx(0.7, abs=settle.POLL_SECONDS + 0.01)


async def test_a_request_outstanding_at_the_victim_holds_the_word_back() -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with (
        running_app(_backend(release)) as backend,
        running_gateway(backends=[backend], model_name=MODEL) as gw,
        aiohttp.ClientSession() as http,
    ):
        request = asyncio.create_task(http.post(f"{gw.url}/v1/completions", json={}))
        await asyncio.sleep(0.5)
        gw.readiness.set_endpoints([])
        loop.call_later(2, release.set)
        started = loop.time()
        assert await settle.confirm(http, model=MODEL, gateways=[gw.url]) is settle.Outcome.SETTLED
        assert loop.time() - started >= 2, "not before the request outstanding at the pod was answered"
        async with await request as answered:
            assert answered.status == 200
        loop.call_later(0.1, release.clear)
        gw.readiness.set_endpoints([backend])  # routed there for good: the word never comes
        outcome = await settle.confirm(http, model=MODEL, gateways=[gw.url], within=3)
        assert outcome is settle.Outcome.TIMED_OUT


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"models": {MODEL: 0}}, settle.Outcome.UNANSWERED),  # a gateway older than the counts
        (
            {
                "models": {MODEL: 0},
                "routing": {MODEL: {"addressesPods": False, "endpoints": 0, "outstanding": 0}},
            },
            settle.Outcome.THROUGH_SERVICE,
        ),
        ({"models": {}, "routing": {}}, settle.Outcome.SETTLED),  # a shared pod that does not route it
    ],
)
async def test_anything_short_of_proof_keeps_the_endpoint_delay(
    answer: dict[str, Any], outcome: settle.Outcome
) -> None:
    async def queues(_: web.Request) -> web.Response:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/hearth/queues", queues)
    async with running_app(app) as url, aiohttp.ClientSession() as http:
        assert await settle.confirm(http, model=MODEL, gateways=[url]) is outcome
        unreachable = [url, "http://127.0.0.1:1"]
        assert await settle.confirm(http, model=MODEL, gateways=unreachable) is settle.Outcome.UNANSWERED


async def test_only_the_terminating_pods_sidecars_are_told() -> None:
    async def idle(budget: float) -> policy.Scrape:
        return 0.0

    timing = policy.Timing(timeout=120, endpoint_delay=1, poll_interval=0.25)
    leaving, staying = drainer_app.Drainer(timing, idle), drainer_app.Drainer(timing, idle)
    async with (
        running_app(drainer_app.make_app(leaving)) as leaving_url,
        running_app(drainer_app.make_app(staying)) as staying_url,
        running_gateway(model_name=MODEL) as gw,  # routes it nowhere: cold
        aiohttp.ClientSession() as http,
    ):
        pods = [_pod(leaving_url, terminating=True), _pod(staying_url, terminating=False)]
        outcome = await settle.after_eviction(
            http, victim=f"ns/{MODEL}", model=MODEL, gateways=[gw.url], pods=lambda: pods
        )
        assert outcome is settle.Outcome.SETTLED
        assert leaving.settled.is_set()
        assert not staying.settled.is_set(), "a pod created since (the member woken again) drains in full"

        # The operator's cache shows the deletion after the gateways did: the word waits for it.
        lagging = drainer_app.Drainer(timing, idle)
        async with running_app(drainer_app.make_app(lagging)) as lagging_url:
            seen = [_pod(lagging_url, terminating=False)]
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, seen.__setitem__, 0, _pod(lagging_url, terminating=True))
            await settle.after_eviction(
                http, victim=f"ns/{MODEL}", model=MODEL, gateways=[gw.url], pods=lambda: seen
            )
            assert lagging.settled.is_set()


def _pod(url: str, *, terminating: bool) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    metadata: dict[str, Any] = {"name": "p", "namespace": "ns"}
    if terminating:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {
            "initContainers": [
                {
                    "name": drain_api.CONTAINER_NAME,
                    "ports": [{"name": drain_api.PORT_NAME, "containerPort": int(port)}],
                }
            ],
            "containers": [{"name": "engine"}],
        },
        "status": {"podIP": host},
    }


def _backend(release: asyncio.Event, *, open_: bool = False) -> web.Application:
    if open_:
        release.set()

    async def answer(_: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app
