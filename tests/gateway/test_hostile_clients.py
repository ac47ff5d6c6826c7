"""The gateway under clients that probe it as an attacker would (issue 17: B1, B4, B5, B6 and the listed
risks), over raw sockets where aiohttp's own client would refuse to misbehave."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web

from hearth.common import serve
from tests.gateway import backends
from tests.gateway.conftest import (
    GatewayFactory,
    echo_app,
    running_app,
    running_stub,
    seconds,
)

HANG_GUARD_S = 20


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.exc_info]


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _json_body(answer: bytes) -> Any:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def _post_head(*, length: int, path: str = "/v1/chat/completions", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


# ---- B1: slow bodies ------------------------------------------------------------------------------------
async def test_clients_trickling_their_bodies_hold_no_admission_slot(start_gateway: GatewayFactory) -> None:
    async with running_stub() as stub, start_gateway(backends=[stub], max_queue=3) as gw:
        slow = [await backends.connect(gw.url) for _ in range(10)]
        for _, writer in slow:
            writer.write(_post_head(length=100) + b"{")
            await writer.drain()
        await asyncio.sleep(0.2)  # the in-process gateway reads the ten heads meanwhile
        assert gw.route.demand.value() == 0, "a request whose body has not arrived is not demand"
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"messages": []}) as response:
            assert response.status == 200, "ten trickling clients do not fill a queue of three"
        for _, writer in slow:
            writer.close()


async def test_a_body_that_misses_its_deadline_is_a_408_and_never_wakes_a_backend(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(body_timeout=seconds("300ms")) as gw:
        reader, writer = await backends.connect(gw.url)
        writer.write(_post_head(length=100) + b'{"stream": true')
        async with asyncio.timeout(HANG_GUARD_S):
            answer = await reader.read(-1)
        writer.close()
        assert _status(answer) == 408
        assert _json_body(answer)["error"]["code"] == "body_timeout"
        assert gw.metric("hearth_gateway_activation_events_total") == 0, "the backend was never woken"
        assert gw.route.demand.value() == 0
        assert gw.gateway.budget.in_use == 0


# ---- B4: absolute-form and path-less targets ------------------------------------------------------------
async def test_an_absolute_form_target_is_forwarded_as_its_path_to_the_own_backend(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_app(echo_app()) as echo, start_gateway(backends=[echo]) as gw:
        for _ in range(20):
            answer = await backends.exchange(
                gw.url,
                b"GET http://elsewhere.example:9999/v1/models?x=1 HTTP/1.1\r\n"
                b"Host: elsewhere.example\r\nConnection: close\r\n\r\n",
            )
            assert _status(answer) == 200
            assert _json_body(answer)["path"] == "/v1/models?x=1"
    assert not _tracebacks(caplog)


@pytest.mark.parametrize(
    "request_line", [b"OPTIONS * HTTP/1.1", b"CONNECT elsewhere.example:443 HTTP/1.1"], ids=["*", "connect"]
)
async def test_a_target_without_a_path_is_refused_and_never_reaches_the_backend(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, request_line: bytes
) -> None:
    async with running_app(echo_app()) as echo, start_gateway(backends=[echo]) as gw:
        answer = await backends.exchange(
            gw.url, request_line + b"\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n"
        )
        # aiohttp's router already refuses these (no route matches a path that is not one).
        assert _status(answer) in (400, 404)
        assert gw.route.demand.value() == 0
        assert gw.metric("hearth_gateway_activation_wait_seconds_count") == 0, "nothing was forwarded"
    assert not _tracebacks(caplog)


# ---- B5 and the stream flag: stream detection is bounded and follows the engine ----------------------
async def test_json_nested_deeply_on_a_cold_gateway_is_answered_without_a_traceback(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b'{"stream": true, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with start_gateway(activation_timeout=seconds("200ms")) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", data=deep) as response:
            assert response.status == 503, "held silently (not readable as a stream), then timed out"
            assert (await response.json())["error"]["code"] == "activation_timeout"
    assert not _tracebacks(caplog)


def _engine_streams(value: object) -> bool:
    """Whether vLLM streams: its request model reads ``stream`` as a pydantic (lax) bool."""
    try:
        return pydantic.TypeAdapter(bool).validate_python(value)
    except pydantic.ValidationError:
        return False


@pytest.mark.parametrize(
    "value", [True, False, "yes", "YES", "true", "1", 1, 1.0, "on", "no", 0, 2, "maybe", None, [], {}]
)
async def test_a_cold_request_is_held_as_a_stream_exactly_when_the_engine_would_stream_it(
    start_gateway: GatewayFactory, value: object
) -> None:
    async with start_gateway(activation_timeout=seconds("200ms")) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": value}) as response:
            await response.read()
            held_as_stream = response.headers["Content-Type"] == "text/event-stream"
    assert held_as_stream == _engine_streams(value)


@pytest.mark.parametrize(("value", "streams"), [(True, True), ("yes", False), (1, False), ("true", False)])
async def test_a_strict_engine_is_held_as_a_stream_only_on_json_true(
    start_gateway: GatewayFactory, value: object, streams: bool
) -> None:
    """llama-server and TGI stream on a JSON true only (HEARTH_STREAM_RULE=strict)."""
    async with start_gateway(activation_timeout=seconds("200ms"), stream_rule="strict") as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": value}) as response:
            await response.read()
            held_as_stream = response.headers["Content-Type"] == "text/event-stream"
    assert held_as_stream is streams


# ---- B6: memory bounds ----------------------------------------------------------------------------------
async def test_an_oversize_content_length_is_refused_before_the_body_is_read(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(max_body_bytes=1024) as gw:
        # The body is never sent: the answer must not wait for it.
        answer = await backends.exchange(gw.url, _post_head(length=1025))
        assert _status(answer) == 413
        assert _json_body(answer)["error"]["code"] == "body_too_large"
        assert gw.route.demand.value() == 0


async def test_bodies_buffered_at_once_stay_within_the_gateway_budget(start_gateway: GatewayFactory) -> None:
    size = 700 * 1024
    async with (
        running_stub() as stub,
        start_gateway(max_body_bytes=size, max_buffered_bytes=size + size // 2) as gw,
    ):
        held = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/completions", data=b"x" * size))
        await asyncio.sleep(0.2)  # held cold, its body buffered
        assert gw.gateway.budget.in_use == size
        async with gw.http.post(f"{gw.url}/v1/completions", data=b"y" * size) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "1"
            assert (await response.json())["error"]["code"] == "gateway_busy"
        gw.readiness.set_endpoints([stub])
        async with await held as response:
            assert response.status == 200
        assert gw.gateway.budget.in_use == 0


async def _chunks(total: int) -> AsyncIterator[bytes]:
    piece = b"z" * (256 * 1024)
    for _ in range(total // len(piece)):
        yield piece


async def _refused_while_sending(http: aiohttp.ClientSession, url: str, body: Any) -> None:
    """Post *body* that the gateway refuses part-way: the client sees the 413, or, when the gateway's close
    after the 413 reaches it while it is still sending (a reset discards what it had not read yet), the
    connection cut. Either way the body was refused; anything else fails."""
    try:
        async with http.post(url, data=body) as response:
            assert response.status == 413
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        pass


async def test_refused_chunked_bodies_are_freed_at_once_not_at_the_next_garbage_collection(
    start_gateway: GatewayFactory,
) -> None:
    limit = 4 * 1024 * 1024
    async with start_gateway(max_body_bytes=limit) as gw:
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(4):
                await _refused_while_sending(gw.http, f"{gw.url}/v1/completions", _chunks(2 * limit))
            retained = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            gc.enable()
    assert retained < limit, f"{retained} bytes still held after four refused {limit}-byte bodies"


# ---- the listed risks -----------------------------------------------------------------------------------
async def test_expect_100_continue_is_answered_by_the_gateway_and_not_forwarded(
    start_gateway: GatewayFactory,
) -> None:
    async with (
        backends.raw_backend(backends.never_continues) as backend,
        start_gateway(backends=[backend]) as gw,
    ):
        reader, writer = await backends.connect(gw.url)
        writer.write(_post_head(length=2, extra="Expect: 100-continue\r\n"))
        assert (await backends.read_response_head(reader)).startswith(b"HTTP/1.1 100")
        writer.write(b"{}")
        head = await backends.read_response_head(reader)
        async with asyncio.timeout(HANG_GUARD_S):
            rest = await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
        writer.close()
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(rest) == {"got": 2}


async def test_expect_on_the_gateways_own_paths_is_met_too(start_gateway: GatewayFactory) -> None:
    # The gateway is served without an aiohttp Application, which used to answer Expect on every route.
    async with start_gateway() as gw:
        reader, writer = await backends.connect(gw.url)
        writer.write(_post_head(length=2, path="/hearth/warm", extra="Expect: 100-continue\r\n"))
        assert (await backends.read_response_head(reader)).startswith(b"HTTP/1.1 100")
        writer.write(b"{}")
        head = await backends.read_response_head(reader)
        assert head.startswith(b"HTTP/1.1 202")
        await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
        writer.write(_post_head(length=2, path="/healthz", extra="Expect: something-else\r\n"))
        assert (await backends.read_response_head(reader)).startswith(b"HTTP/1.1 417")
        writer.close()


async def test_an_oversize_body_is_refused_before_it_is_invited(start_gateway: GatewayFactory) -> None:
    async with start_gateway(max_body_bytes=1024) as gw:
        reader, writer = await backends.connect(gw.url)
        writer.write(_post_head(length=1025, extra="Expect: 100-continue\r\n"))
        head = await backends.read_response_head(reader)
        writer.close()
        assert head.startswith(b"HTTP/1.1 413"), "a final answer instead of 100 Continue"


async def test_a_body_without_a_valid_key_is_never_invited(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    (tmp_path / "team").write_text("secret-key")
    async with start_gateway(api_keys_dir=str(tmp_path)) as gw:
        reader, writer = await backends.connect(gw.url)
        writer.write(_post_head(length=2, extra="Expect: 100-continue\r\nAuthorization: Bearer wrong\r\n"))
        head = await backends.read_response_head(reader)
        writer.close()
        assert head.startswith(b"HTTP/1.1 401")
        assert gw.route.demand.value() == 0


def _compressing_app() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        response = web.json_response(
            {
                "accept_encoding": request.headers.get("Accept-Encoding"),
                "ua": request.headers.get("User-Agent"),
            }
        )
        response.enable_compression()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def test_the_backend_sees_only_the_encodings_the_client_accepts(start_gateway: GatewayFactory) -> None:
    async with running_app(_compressing_app()) as backend, start_gateway(backends=[backend]) as gw:
        answer = await backends.exchange(
            gw.url, b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
        )
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert b"content-encoding" not in head, "a client that never asked for gzip gets none"
        assert _json_body(answer) == {"accept_encoding": None, "ua": None}
        async with gw.http.get(f"{gw.url}/v1/models", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip", "one that asked does"
            assert (await response.json())["accept_encoding"] == "gzip"


@pytest.mark.parametrize(
    ("version", "connection"), [("1.0", ""), ("1.1", "Connection: close\r\n")], ids=["http1.0", "close"]
)
async def test_a_held_stream_does_not_promise_keep_alive_to_a_client_that_closes(
    start_gateway: GatewayFactory, version: str, connection: str
) -> None:
    async with start_gateway(activation_timeout=seconds("200ms"), heartbeat_interval=seconds("50ms")) as gw:
        answer = await backends.exchange(
            gw.url,
            f"POST /v1/completions HTTP/{version}\r\nHost: gw\r\nContent-Length: 16\r\n".encode()
            + f"{connection}\r\n".encode()
            + b'{"stream": true}',
        )
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert _status(answer) == 200
        assert b"connection: keep-alive" not in head
        assert b'event: error\ndata: {"error":' in answer
        assert b'"code":"activation_timeout"' in answer


async def test_streams_dropped_mid_answer_are_counted_without_tracebacks(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        running_stub(token_delay=seconds("2ms"), token_count=50) as stub,
        start_gateway(backends=[stub]) as gw,
    ):

        async def drop_after(events: int) -> None:
            async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": True}) as response:
                for _ in range(events):
                    await response.content.readuntil(b"\n\n")
            # leaving the block closes the connection mid-answer

        await asyncio.gather(*(drop_after(index % 7) for index in range(150)))
        await asyncio.sleep(0.3)
    assert not _tracebacks(caplog), [r.getMessage() for r in _tracebacks(caplog)][:3]


async def test_garbage_requests_are_refused_with_their_reason_logged_once(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    # The filter is process-wide and rate-limited: start this test with a line due.
    monkeypatch.setattr(serve.MALFORMED_REQUESTS, "_last", -1e9)
    async with start_gateway() as gw:
        for _ in range(5):
            answer = await backends.exchange(gw.url, b"GET /\x00 HTTP/1.1\r\nHost: \x01\r\n\r\n")
            assert _status(answer) == 400
    refused = [r for r in caplog.records if r.getMessage() == "refused malformed requests"]
    assert len(refused) == 1
    assert not _tracebacks(caplog)
    reason = refused[0].fields["last_error"]  # type: ignore[attr-defined]
    assert reason not in ("", "400, message:"), "the line says why the request was refused"
    assert "invalid" in reason.lower(), reason


async def test_aiohttp_client_errors_do_not_leak_into_responses(start_gateway: GatewayFactory) -> None:
    """A control: the warm path through the stub still works byte for byte after all the above."""
    async with running_stub(token_count=2) as stub, start_gateway(backends=[stub]) as gw:
        async with gw.http.post(f"{gw.url}/v1/completions", json={}) as response:
            assert response.status == 200
            assert isinstance((await response.json())["choices"], list)
    assert aiohttp.__version__


async def test_clients_resetting_mid_stream_are_counted_without_tracebacks(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A reset lands between two writes of a fast stream: the next write fails before aiohttp cancels the
    handler. Still no traceback."""
    caplog.set_level(logging.DEBUG)
    async with (
        running_stub(token_delay=seconds("0s"), token_count=3000) as stub,
        start_gateway(backends=[stub]) as gw,
    ):
        for _ in range(40):
            reader, writer = await backends.connect(gw.url)
            writer.write(_post_head(length=16, path="/v1/completions") + b'{"stream": true}')
            await backends.read_response_head(reader)
            await reader.read(4096)
            backends.reset(writer)
        await asyncio.sleep(0.3)
        assert gw.metric("hearth_gateway_client_disconnects_total") >= 1
    assert not _tracebacks(caplog), [r.getMessage() for r in _tracebacks(caplog)][:3]


async def test_a_client_gone_just_before_the_end_of_its_stream_leaves_no_traceback(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The client resets; the backend's last chunk and the end of its stream then arrive together, so
    the gateway's write of the end fails at once, before aiohttp cancels the handler. (Pipelined requests
    behind the stream make aiohttp pause reading the client, so only the failing write sees the reset.)"""
    go = asyncio.Event()

    async def two_parts(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(backends.content_length(head))
        event = backends.SSE_EVENT
        chunk = f"{len(event):x}\r\n".encode() + event + b"\r\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunk
        )
        await go.wait()
        writer.write(chunk + b"0\r\n\r\n")
        await writer.drain()

    async with backends.raw_backend(two_parts) as backend, start_gateway(backends=[backend]) as gw:
        reader, writer = await backends.connect(gw.url)
        writer.write(
            _post_head(length=16) + b'{"stream": true}' + b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n" * 64
        )
        await backends.read_response_head(reader)
        await reader.readuntil(b"\n\n")
        backends.reset(writer)
        await asyncio.sleep(0.1)  # the reset reaches the gateway's socket
        go.set()
        await asyncio.sleep(0.3)
        assert gw.metric("hearth_gateway_client_disconnects_total") == 1
    assert not _tracebacks(caplog), [r.getMessage() for r in _tracebacks(caplog)][:3]
