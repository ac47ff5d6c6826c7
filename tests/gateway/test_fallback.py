"""spec.endpoint.fallback in the gateway (issue 31), over real sockets: the stub (a real OpenAI-compatible
server) or small aiohttp servers stand in for the fallback endpoint, readiness of the model itself is set
by hand. On fake loop time (looptime): holds and heartbeats pass without waiting."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from aiohttp import web

from hearth.gateway.wake import progress
from tests.gateway.conftest import GatewayFactory, running_app, running_stub, seconds
from tests.helpers import split_sse

pytestmark = pytest.mark.looptime

CHAT = {"model": "model", "messages": [{"role": "user", "content": "hi"}]}


def fallback_to(url: str, **overrides: Any) -> dict[str, Any]:
    """Gateway settings with a fallback at *url* (a stub serving model ``small``)."""
    return {"fallback_base_url": f"{url}/v1", "fallback_model": "small", **overrides}


def _metric(gw: Any, reason: str, result: str = "ok") -> float:
    return float(gw.metric(f'hearth_gateway_fallback_answers_total{{reason="{reason}",result="{result}"}}'))


async def test_a_cold_model_is_answered_by_its_fallback_at_once_while_its_wake_starts(
    start_gateway: GatewayFactory,
) -> None:
    async with (
        running_stub(served_model_names=("small",), token_count=2) as small,
        running_stub(token_count=2) as primary,
        start_gateway(**fallback_to(small)) as gw,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json=CHAT) as response:
            assert response.status == 200
            answer = await response.json()
            assert response.headers["X-Hearth-Served-By"] == "small"
            assert response.headers["X-Hearth-Fallback"] == "cold"
        assert loop.time() - started < 1, "the fallback answers at once, the model's wake does not hold it"
        assert answer["model"] == "small", "the request's model is replaced by the fallback's"
        assert gw.route.demand.active, "the model's own wake started all the same"
        assert _metric(gw, "cold") == 1
        # Once the model is ready, it answers itself.
        gw.readiness.set_endpoints([primary])
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json=CHAT) as response:
            assert response.status == 200
            assert response.headers["X-Hearth-Served-By"] == "model"
            assert "X-Hearth-Fallback" not in response.headers
            assert (await response.json())["model"] == "model"
        assert _metric(gw, "cold") == 1


async def test_a_streamed_fallback_answer_names_the_fallback_in_a_progress_comment(
    start_gateway: GatewayFactory,
) -> None:
    async with (
        running_stub(served_model_names=("small",), token_count=3) as small,
        start_gateway(**fallback_to(small)) as gw,
    ):
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            assert response.headers["X-Hearth-Served-By"] == "small"
            events = split_sse(await response.read())
        first = events[0]
        assert first.startswith(progress.PREFIX)
        comment = json.loads(first[len(progress.PREFIX) :])
        assert (comment["phase"], comment["served_by"], comment["reason"]) == ("fallback", "small", "cold")
        assert events[-1] == b"data: [DONE]\n\n"
        chunks = [json.loads(event[len(b"data: ") :]) for event in events[1:-1]]
        assert {chunk["model"] for chunk in chunks} == {"small"}


async def test_after_hold_a_held_stream_gets_the_fallbacks_answer_after_hold_for(
    start_gateway: GatewayFactory,
) -> None:
    async with (
        running_stub(served_model_names=("small",), token_count=2) as small,
        start_gateway(
            **fallback_to(small, fallback_while_cold="AfterHold", fallback_hold=seconds("20s")),
            heartbeat_interval=seconds("5s"),
        ) as gw,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            assert response.status == 200
            body = await response.read()
        assert 20 <= loop.time() - started < 21, "held for holdFor, then answered"
        events = split_sse(body)
        assert events.count(b": heartbeat\n\n") >= 3, "held with heartbeats first"
        fallback_comment = next(e for e in events if e.startswith(progress.PREFIX) and b"fallback" in e)
        assert json.loads(fallback_comment[len(progress.PREFIX) :])["reason"] == "hold_timeout"
        assert events[-1] == b"data: [DONE]\n\n"
        assert _metric(gw, "hold_timeout") == 1


async def test_after_hold_a_model_ready_in_time_answers_itself(start_gateway: GatewayFactory) -> None:
    async with (
        running_stub(served_model_names=("small",)) as small,
        running_stub() as primary,
        start_gateway(
            **fallback_to(small, fallback_while_cold="AfterHold", fallback_hold=seconds("20s"))
        ) as gw,
    ):
        request = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/chat/completions", json=CHAT))
        await asyncio.sleep(5)
        gw.readiness.set_endpoints([primary])
        async with await request as response:
            assert response.status == 200
            assert response.headers["X-Hearth-Served-By"] == "model"
            assert response.headers["X-Hearth-Cold-Start"] == "true"
        assert _metric(gw, "hold_timeout") == 0


async def test_a_full_queue_sends_requests_to_the_fallback_instead_of_429(
    start_gateway: GatewayFactory,
) -> None:
    async with (
        running_stub(served_model_names=("small",)) as small,
        start_gateway(**fallback_to(small, fallback_while_cold="Never"), max_queue=1) as gw,
    ):
        held = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/chat/completions", json=CHAT))
        async with asyncio.timeout(10):
            while gw.route.held == 0:  # noqa: ASYNC110 - another task's progress, on fake time
                await asyncio.sleep(0.01)
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json=CHAT) as response:
            assert response.status == 200
            assert response.headers["X-Hearth-Fallback"] == "queue_full"
        assert _metric(gw, "queue_full") == 1
        assert _metric(gw, "cold") == 0, "Never: the held request was not sent to the fallback"
        held.cancel()


async def test_fallback_errors_reach_the_client_openai_shaped(start_gateway: GatewayFactory) -> None:
    async def refuse(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer fallback-key":
            error = {
                "error": {"message": "bad key", "type": "invalid_request_error", "code": "invalid_api_key"}
            }
            return web.json_response(error, status=401)
        return web.Response(status=500, text="upstream exploded")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    async with running_app(app) as url:
        async with start_gateway(**fallback_to(url)) as gw:
            headers = {"Authorization": "Bearer client-key"}
            async with gw.http.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers=headers) as response:
                assert response.status == 401, "the fallback's own error passes through"
                assert (await response.json())["error"]["code"] == "invalid_api_key"
                assert response.headers["X-Hearth-Served-By"] == "small"
        async with start_gateway(**fallback_to(url, fallback_api_key="fallback-key")) as gw:
            async with gw.http.post(f"{gw.url}/v1/chat/completions", json=CHAT) as response:
                assert response.status == 502
                error = (await response.json())["error"]
                assert error["type"] == "fallback_error"
                assert "answered 500: upstream exploded" in error["message"]
            assert _metric(gw, "cold", "error") == 1


async def test_an_unreachable_fallback_is_a_502_naming_it(start_gateway: GatewayFactory) -> None:
    async with start_gateway(fallback_base_url="http://127.0.0.1:1/v1", fallback_model="small") as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            assert response.status == 502
            error = (await response.json())["error"]
            assert error["code"] == "fallback_unreachable"
            assert "small" in error["message"]


async def test_the_openai_client_sees_the_fallbacks_model(start_gateway: GatewayFactory) -> None:
    async with (
        running_stub(served_model_names=("small",)) as small,
        start_gateway(**fallback_to(small)) as gw,
    ):
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
        completion = await client.chat.completions.create(
            model="model", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.model == "small"
        stream = await client.chat.completions.create(
            model="model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        models = {chunk.model async for chunk in stream}
        assert models == {"small"}
        await client.close()
