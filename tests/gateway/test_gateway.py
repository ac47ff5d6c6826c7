"""The gateway over real sockets, with the stub or an echo server behind it (SPEC §3.2-3.5, DESIGN 3, 4).

On fake loop time (looptime): heartbeats, timeouts and graces pass without waiting, and exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.gateway.conftest import (
    ColdStartMode,
    GatewayFactory,
    echo_app,
    running_app,
    running_stub,
    seconds,
)
from tests.helpers import split_sse

pytestmark = pytest.mark.looptime


async def _until(condition: Callable[[], bool]) -> None:
    """Let fake time pass in small steps until *condition* holds (another task's progress)."""
    async with asyncio.timeout(60):
        while not condition():  # noqa: ASYNC110 - polls state of tasks in this loop, on fake time
            await asyncio.sleep(0.01)


async def test_warm_requests_are_proxied_with_path_query_and_status(start_gateway: GatewayFactory) -> None:
    async with running_stub(token_count=3) as stub, start_gateway(backends=[stub]) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions?tokens=2", json={"stream": True}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            events = split_sse(await response.read())
        assert len(events) == 3
        assert events[-1] == b"data: [DONE]\n\n"
        async with gw.http.get(f"{gw.url}/nope") as response:
            assert response.status == 404, "the backend's status passes through"
        assert gw.metric('hearth_gateway_requests_total{code="200"}') == 1
        assert gw.metric('hearth_gateway_requests_total{code="404"}') == 1


async def test_holds_a_stream_with_heartbeats_then_forwards(start_gateway: GatewayFactory) -> None:
    # The production interval (10 s, SPEC §3.1), on fake time.
    async with running_stub(token_count=2) as stub, start_gateway() as gw:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": True}) as response:
            assert response.status == 200, "a held stream is committed at once"
            assert response.headers["Content-Type"] == "text/event-stream"
            assert loop.time() - started < 1, "committed at once, not after an interval"
            first = await response.content.readuntil(b"\n\n")
            while first.startswith(b": hearth "):  # progress comments (their own test) come besides
                first = await response.content.readuntil(b"\n\n")
            first_at = loop.time() - started
            assert first == b": heartbeat\n\n"
            await asyncio.sleep(45)
            assert gw.metric("hearth_gateway_demand") == 1
            gw.readiness.set_endpoints([stub])
            rest = await response.read()
        events = [event for event in split_sse(first + rest) if not event.startswith(b": hearth ")]
        heartbeats = [event for event in events if event == b": heartbeat\n\n"]
        assert len(heartbeats) == 5, f"one heartbeat per 10 s over 55 s, got {len(heartbeats)}"
        assert first_at == pytest.approx(10, abs=0.1), "the first heartbeat comes one interval in"
        assert events[-1] == b"data: [DONE]\n\n"
        assert next(event for event in events if event.startswith(b"data: {")).startswith(b'data: {"choices"')
        assert gw.metric('hearth_gateway_requests_total{code="200"}') == 1
        assert gw.metric("hearth_gateway_activation_wait_seconds_count") == 1


async def test_holds_a_non_streaming_request_silently(start_gateway: GatewayFactory) -> None:
    async with running_stub(token_count=2) as stub, start_gateway() as gw:
        request = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/chat/completions", json={"messages": []}))
        await _until(lambda: gw.route.held == 1)
        await asyncio.sleep(240)
        assert not request.done(), "held while the backend is cold (within the 5m activation timeout)"
        gw.readiness.set_endpoints([stub])
        async with await request as response:
            assert response.status == 200
            assert (await response.json())["choices"][0]["message"]["content"] == "tok0 tok1 "


async def test_non_stream_timeout_is_503_with_retry_after_counted_once(start_gateway: GatewayFactory) -> None:
    async with start_gateway(activation_timeout=seconds("30s")) as gw:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert loop.time() - started == pytest.approx(30, abs=0.1), "answered at the activation timeout"
            assert response.status == 503
            assert response.headers["Retry-After"] == "10"
            error = (await response.json())["error"]
        assert error["code"] == "activation_timeout"
        assert "backend not ready" in error["message"]
        assert gw.metric('hearth_gateway_rejections_total{reason="activation_timeout"}') == 1
        assert gw.metric('hearth_gateway_requests_total{code="503"}') == 1
        assert gw.metric('hearth_gateway_requests_total{code="200"}') == 0


async def test_stream_timeout_after_commit_is_a_200_with_an_error_event(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(activation_timeout=seconds("35s")) as gw:
        async with gw.http.post(f"{gw.url}/v1/completions", json={"stream": True}) as response:
            assert response.status == 200
            body = await response.read()
        last = split_sse(body)[-1]
        assert last.startswith(b"event: error\ndata: {"), "an error event the openai SDK can decode"
        assert json.loads(last.split(b"data: ", 1)[1])["error"]["code"] == "activation_timeout"
        assert body.count(b": heartbeat\n\n") == 3, "at 10, 20 and 30 s of the 35 s activation timeout"
        assert gw.metric('hearth_gateway_requests_total{code="200"}') == 1
        assert gw.metric('hearth_gateway_rejections_total{reason="activation_timeout"}') == 1


async def test_reject_mode_answers_503_at_once_and_the_lease_keeps_demand(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(cold_start_mode=ColdStartMode.REJECT) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": True}) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "10"
            assert (await response.json())["error"]["type"] == "service_unavailable"
        async with gw.http.get(f"{gw.url}/hearth/queue") as response:
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert await response.text() == '{"pending":1}\n', "the activation lease keeps demand at 1"
        assert gw.metric('hearth_gateway_rejections_total{reason="cold_start"}') == 1
        assert gw.metric("hearth_gateway_activation_events_total") == 1


async def test_demand_falls_to_zero_after_the_ready_grace(start_gateway: GatewayFactory) -> None:
    # The production grace (15 s, SPEC §3.1), on fake time.
    async with running_stub() as stub, start_gateway() as gw:
        async with gw.http.post(f"{gw.url}/v1/completions?tokens=1", json={"stream": True}) as response:
            gw.readiness.set_endpoints([stub])
            await response.read()
        assert gw.route.demand.value() == 1, "the grace keeps demand at 1 right after readiness"
        await asyncio.sleep(14.5)
        assert gw.metric("hearth_gateway_demand") == 1, "still within the 15 s grace"
        await asyncio.sleep(1)
        assert gw.metric("hearth_gateway_demand") == 0, "the grace ended without any new request"


async def test_429_when_the_queue_is_full(start_gateway: GatewayFactory) -> None:
    async with start_gateway(max_queue=2) as gw:
        held = [
            asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/chat/completions", json={})) for _ in range(2)
        ]
        await _until(lambda: gw.route.held == 2)
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "5"
            assert (await response.json())["error"]["code"] == "queue_full"
        assert gw.metric('hearth_gateway_rejections_total{reason="queue_full"}') == 1
        assert gw.metric("hearth_gateway_pending") == 2
        for request in held:
            request.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_a_client_that_leaves_is_not_a_timeout_and_frees_its_slot(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(max_queue=1) as gw:
        async with aiohttp.ClientSession() as impatient:
            request = asyncio.ensure_future(
                impatient.post(f"{gw.url}/v1/chat/completions", json={"stream": False})
            )
            await _until(lambda: gw.route.held == 1)
            request.cancel()
        await _until(lambda: gw.metric("hearth_gateway_pending") == 0)
        assert gw.metric("hearth_gateway_client_disconnects_total") == 1
        assert gw.metric('hearth_gateway_rejections_total{reason="activation_timeout"}') == 0
        assert gw.metric("hearth_gateway_demand") == 1, "the lease still wakes the backend"


async def test_models_are_listed_locally_while_cold_without_demand(start_gateway: GatewayFactory) -> None:
    async with start_gateway(model_name="qwen") as gw:
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
            models = [model.id async for model in client.models.list()]
        assert models == ["qwen"]
        assert gw.metric("hearth_gateway_demand") == 0
        assert gw.metric("hearth_gateway_activation_events_total") == 0


async def test_openai_client_through_the_gateway(start_gateway: GatewayFactory) -> None:
    async with running_stub(token_count=3, served_model_names=("qwen",)) as stub, start_gateway() as gw:
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) as client:
            task = asyncio.ensure_future(
                client.chat.completions.create(
                    model="qwen", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
            await _until(lambda: gw.route.held == 1)
            gw.readiness.set_endpoints([stub])
            stream = await task
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
            whole = await client.chat.completions.create(
                model="qwen", messages=[{"role": "user", "content": "hi"}]
            )
        assert text == "tok0 tok1 tok2 "
        assert whole.choices[0].message.content == "tok0 tok1 tok2 "


async def test_headers_are_forwarded_without_hop_by_hop_and_with_x_forwarded(
    start_gateway: GatewayFactory,
) -> None:
    async with running_app(echo_app()) as backend, start_gateway(backends=[backend]) as gw:
        headers = {
            "Host": "llm.example",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "s",
            "Te": "trailers",
            "X-Forwarded-For": "203.0.113.9",
            "Authorization": "Bearer k",
        }
        async with gw.http.post(f"{gw.url}/a/b%2Fc?x=1&y=%20", headers=headers, data=b"abc") as response:
            seen = await response.json()
            assert "X-Backend-Secret" not in response.headers, (
                "hop-by-hop headers from the backend are dropped"
            )
            assert response.headers["X-Kept"] == "yes"
    sent = {key.lower(): value for key, value in seen["headers"].items()}
    assert seen["path"] == "/a/b%2Fc?x=1&y=%20", "path and query reach the backend unchanged"
    assert sent["host"] == "llm.example", "the client's Host header is preserved"
    assert "x-secret" not in sent
    assert "te" not in sent
    assert sent["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert sent["authorization"] == "Bearer k"


async def test_a_large_body_held_cold_is_replayed_intact(start_gateway: GatewayFactory) -> None:
    body = hashlib.sha256(b"seed").digest() * (10 * 1024 * 1024 // 32)
    async with running_app(echo_app()) as backend, start_gateway() as gw:
        request = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/embeddings", data=body))
        await _until(lambda: gw.route.held == 1)
        gw.readiness.set_endpoints([backend])
        async with await request as response:
            seen = await response.json()
    assert seen["length"] == len(body)
    assert seen["sha256"] == hashlib.sha256(body).hexdigest()


async def test_least_outstanding_requests_balancing(start_gateway: GatewayFactory) -> None:
    async with running_stub(token_count=40, token_delay=seconds("1s")) as slow, running_stub() as fast:
        async with start_gateway(backends=[slow, fast]) as gw:
            long = await gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": True})
            await long.content.readuntil(b"\n\n")
            busy = next(e for e in (slow, fast) if gw.route.proxy.balancer.outstanding(e) == 1)
            idle = fast if busy == slow else slow
            for _ in range(3):
                async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
                    assert response.status == 200
            assert gw.route.proxy.balancer.outstanding(busy) == 1
            assert gw.route.proxy.balancer.outstanding(idle) == 0
            long.close()


async def test_unreachable_backend_gives_a_json_502(start_gateway: GatewayFactory) -> None:
    async with start_gateway(backends=["http://127.0.0.1:9"]) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.status == 502
            assert (await response.json())["error"]["code"] == "backend_unreachable"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"BREW /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400),
        (b"OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200),
        (b"GARBAGE\r\n\r\n", 400),
    ],
)
async def test_malformed_requests_get_clear_4xx_and_the_gateway_lives(
    start_gateway: GatewayFactory, raw: bytes, status: int
) -> None:
    async with running_stub() as stub, start_gateway(backends=[stub]) as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(raw)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        assert line.split()[1] == str(status).encode(), line
        async with gw.http.get(f"{gw.url}/healthz") as response:
            assert response.status == 200


async def test_oversized_body_is_413(start_gateway: GatewayFactory) -> None:
    async with start_gateway(max_body_bytes=1024) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", data=b"x" * 4096) as response:
            assert response.status == 413


async def test_queue_and_healthz_answer_any_method(start_gateway: GatewayFactory) -> None:
    async with start_gateway() as gw:
        for method in ("GET", "POST", "DELETE"):
            async with gw.http.request(method, f"{gw.url}/healthz") as response:
                assert response.status == 200
            async with gw.http.request(method, f"{gw.url}/hearth/queue") as response:
                assert json.loads(await response.text()) == {"pending": 0}


async def test_slow_headers_and_idle_connections_get_408(start_gateway: GatewayFactory) -> None:
    # The production header deadline (10 s); the stream lasts 20 s.
    async with running_stub(token_count=20, token_delay=seconds("1s")) as stub:
        async with start_gateway(backends=[stub]) as gw:
            host, port = gw.url.removeprefix("http://").split(":")
            trickle_reader, trickle = await asyncio.open_connection(host, int(port))
            trickle.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
            idle_reader, idle = await asyncio.open_connection(host, int(port))  # never sends anything
            # A stream lasting longer than the deadline is not cut: the deadline covers only the head.
            async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": True}) as response:
                events = split_sse(await response.read())
            assert len(events) == 21
            for reader in (trickle_reader, idle_reader):
                status = await asyncio.wait_for(reader.readline(), 3)
                assert status.startswith(b"HTTP/1.1 408"), status
                await asyncio.wait_for(reader.read(), 3)  # then the connection is closed
            trickle.close()
            idle.close()


async def test_times_ready_to_first_answer_once_per_wake_with_held_requests(
    start_gateway: GatewayFactory,
) -> None:
    async with running_stub(token_count=1) as stub, start_gateway() as gw:
        request = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/chat/completions", json={"messages": []}))
        await asyncio.sleep(0.3)
        assert gw.metric("hearth_gateway_held") == 1, "held while the backend is cold"
        gw.readiness.set_endpoints([stub])
        async with await request as response:
            assert response.status == 200
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"messages": []}) as response:
            assert response.status == 200  # warm: not part of any wake
        assert gw.metric('hearth_wake_phase_seconds_count{phase="first_byte"}') == 1


async def test_a_cookie_the_backend_sets_for_one_client_never_reaches_the_backend_from_another(
    start_gateway: GatewayFactory,
) -> None:
    async def backend(request: web.Request) -> web.Response:
        return web.json_response(
            {"cookie": request.headers.get("Cookie")}, headers={"Set-Cookie": "session=alice; Path=/"}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", backend)
    async with running_app(app) as url:
        # A host name, as the backend Service URL of the probe fallback: cookies for IPs are never stored.
        named = url.replace("127.0.0.1", "localhost")
        async with start_gateway(backends=[named]) as gw:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as alice:
                async with alice.post(f"{gw.url}/v1/completions", json={}) as response:
                    assert response.headers["Set-Cookie"] == "session=alice; Path=/", "passed to its client"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as bob:
                async with bob.post(f"{gw.url}/v1/completions", json={}) as response:
                    assert (await response.json())["cookie"] is None, "the gateway kept no cookie of alice's"
