"""The stub's HTTP surface (SPEC §4 plus the vLLM extras), over real loopback sockets."""

from __future__ import annotations

import asyncio
import json

import pytest

from hearth.common.clock import ManualClock
from hearth.common.durations import Duration
from tests.helpers import split_sse
from tests.stub.conftest import StubFactory

CHUNK_KEYS = {"choices", "created", "id", "model", "object"}

pytestmark = pytest.mark.looptime


async def test_streams_the_exact_sse_framing_of_the_reference(stub: StubFactory) -> None:
    async with stub(token_count=3, served_model_names=("qwen",)) as (url, http):
        async with http.post(f"{url}/v1/chat/completions", data=b'{"stream": true}') as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            assert response.headers["Cache-Control"] == "no-cache"
            body = await response.read()
    events = split_sse(body)
    assert events[-1] == b"data: [DONE]\n\n"
    assert body.count(b"[DONE]") == 1
    chunks = events[:-1]
    assert len(chunks) == 3
    for index, event in enumerate(chunks):
        assert event.startswith(b"data: {"), event
        assert event.count(b"\n") == 2, event
        payload = event[len(b"data: ") : -2]
        document = json.loads(payload)
        # Compact JSON with sorted keys, as the Go reference encodes a map.
        assert payload == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        assert set(document) == CHUNK_KEYS
        assert document["id"] == "stub-cmpl"
        assert document["object"] == "chat.completion.chunk"
        assert document["model"] == "qwen"
        (choice,) = document["choices"]
        assert choice["index"] == 0
        assert choice["delta"]["content"] == f"tok{index} "
        assert choice["finish_reason"] == ("stop" if index == 2 else None)


async def test_answers_whole_chat_completions_newline_terminated(stub: StubFactory) -> None:
    async with stub(token_count=2) as (url, http):
        body = b'{"messages": [{"role": "user", "content": "say two words"}]}'
        async with http.post(f"{url}/v1/chat/completions", data=body) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            raw = await response.read()
    assert raw.endswith(b"}\n")
    document = json.loads(raw)
    assert document["object"] == "chat.completion"
    assert document["id"] == "stub-cmpl"
    assert document["choices"] == [
        {"finish_reason": "stop", "index": 0, "message": {"content": "tok0 tok1 ", "role": "assistant"}}
    ]
    assert document["usage"] == {"completion_tokens": 2, "prompt_tokens": 3, "total_tokens": 5}
    assert isinstance(document["created"], int)


async def test_text_completions_answer_in_completions_shape(stub: StubFactory) -> None:
    async with stub(token_count=2) as (url, http):
        async with http.post(f"{url}/v1/completions", json={"prompt": "a b c d"}) as response:
            whole = await response.json()
        async with http.post(f"{url}/v1/completions", json={"prompt": "x", "stream": True}) as response:
            events = split_sse(await response.read())
    assert whole["object"] == "text_completion"
    assert whole["choices"] == [{"finish_reason": "stop", "index": 0, "logprobs": None, "text": "tok0 tok1 "}]
    assert whole["usage"]["prompt_tokens"] == 4
    first = json.loads(events[0][len(b"data: ") :])
    assert first["object"] == "text_completion"
    assert first["choices"][0]["text"] == "tok0 "
    assert events[-1] == b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("query", "configured", "expected"),
    [("?tokens=5", 2, 5), ("?tokens=0", 2, 2), ("?tokens=x", 3, 3), ("", 4, 4), ("", 1, 1)],
)
async def test_token_count_comes_from_query_then_settings(
    stub: StubFactory, query: str, configured: int, expected: int
) -> None:
    async with stub(token_count=configured) as (url, http):
        async with http.post(f"{url}/v1/chat/completions{query}", json={"stream": True}) as response:
            events = split_sse(await response.read())
    assert len(events) == expected + 1


async def test_max_tokens_caps_the_answer_with_finish_reason_length(stub: StubFactory) -> None:
    async with stub(token_count=5) as (url, http):
        async with http.post(f"{url}/v1/chat/completions", json={"max_tokens": 2}) as response:
            document = await response.json()
    assert document["choices"][0]["message"]["content"] == "tok0 tok1 "
    assert document["choices"][0]["finish_reason"] == "length"


async def test_include_usage_adds_a_final_usage_chunk(stub: StubFactory) -> None:
    async with stub(token_count=2) as (url, http):
        body = {"stream": True, "stream_options": {"include_usage": True}, "prompt": "p"}
        async with http.post(f"{url}/v1/completions", json=body) as response:
            events = split_sse(await response.read())
    usage = json.loads(events[-2][len(b"data: ") :])
    assert usage["choices"] == []
    assert usage["usage"] == {"completion_tokens": 2, "prompt_tokens": 1, "total_tokens": 3}


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"stream": "yes"}'])
async def test_unreadable_bodies_are_answered_as_plain_requests(stub: StubFactory, body: bytes) -> None:
    async with stub() as (url, http):
        async with http.post(f"{url}/v1/chat/completions", data=body) as response:
            assert response.status == 200
            assert (await response.json())["object"] == "chat.completion"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_every_method_is_accepted(stub: StubFactory, method: str) -> None:
    async with stub() as (url, http):
        for path in ("/health", "/v1/chat/completions", "/v1/models", "/metrics"):
            async with http.request(method, f"{url}{path}") as response:
                assert response.status == 200, path


async def test_health_flips_from_503_to_200_exactly_at_the_startup_delay(stub: StubFactory) -> None:
    clock = ManualClock()
    async with stub(clock=clock, startup_delay=Duration.parse("15s")) as (url, http):
        async with http.get(f"{url}/health") as response:
            assert response.status == 503
            assert await response.read() == b""
        clock.advance(14.999)
        async with http.get(f"{url}/health") as response:
            assert response.status == 503
        # The reference stub serves completions even while /health says it is loading.
        async with http.post(f"{url}/v1/chat/completions") as response:
            assert response.status == 200
        clock.advance(0.001)
        async with http.get(f"{url}/health") as response:
            assert response.status == 200
            assert await response.read() == b""


async def test_ready_gates_serving_refuses_completions_while_loading(stub: StubFactory) -> None:
    clock = ManualClock()
    async with stub(clock=clock, startup_delay=Duration.parse("10s"), ready_gates_serving=True) as (
        url,
        http,
    ):
        async with http.post(f"{url}/v1/chat/completions") as response:
            assert response.status == 503
            error = (await response.json())["error"]
            assert error["code"] == 503
            assert "loading" in error["message"]
        clock.advance(10)
        async with http.post(f"{url}/v1/chat/completions") as response:
            assert response.status == 200


async def test_lists_served_models_rooted_at_the_model_path(stub: StubFactory) -> None:
    async with stub(model="Qwen/Qwen3-8B", served_model_names=("qwen", "qwen3")) as (url, http):
        async with http.get(f"{url}/v1/models") as response:
            document = await response.json()
    assert document["object"] == "list"
    assert [(m["id"], m["root"], m["object"]) for m in document["data"]] == [
        ("qwen", "Qwen/Qwen3-8B", "model"),
        ("qwen3", "Qwen/Qwen3-8B", "model"),
    ]


def _gauges(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.split(" ")
            values[name] = value
    return values


async def test_metrics_use_the_reference_exposition(stub: StubFactory) -> None:
    async with stub() as (url, http):
        async with http.get(f"{url}/metrics") as response:
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4"
            text = await response.text()
    assert text == (
        "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting 0\n"
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0\n"
    )


async def test_control_replaces_all_gauges_and_delete_restores_live_values(stub: StubFactory) -> None:
    async with stub() as (url, http):
        async with http.post(
            f"{url}/control", json={"waiting": 3, "running": 2.5, "kv_cache": 0.75}
        ) as response:
            assert response.status == 200
            assert await response.read() == b""
        async with http.get(f"{url}/metrics") as response:
            assert _gauges(await response.text()) == {
                "vllm:num_requests_waiting": "3",
                "vllm:num_requests_running": "2.5",
                "vllm:kv_cache_usage_perc": "0.75",
            }
        async with http.post(f"{url}/control", json={"waiting": 7}) as response:
            assert response.status == 200
        async with http.get(f"{url}/metrics") as response:
            assert _gauges(await response.text()) == {
                "vllm:num_requests_waiting": "7",
                "vllm:num_requests_running": "0",
                "vllm:kv_cache_usage_perc": "0",
            }, "missing fields become 0"
        async with http.delete(f"{url}/control") as response:
            assert response.status == 200
        async with http.get(f"{url}/metrics") as response:
            assert _gauges(await response.text())["vllm:num_requests_waiting"] == "0"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "invalid JSON"),
        (b'{"waiting": "x"}', 'waiting must be a number, got "x"'),
        (b"[]", "JSON object"),
    ],
)
async def test_control_rejects_bad_bodies_with_400_and_the_reason(
    stub: StubFactory, body: bytes, message: str
) -> None:
    async with stub() as (url, http):
        async with http.post(f"{url}/control", data=body) as response:
            assert response.status == 400
            assert message in await response.text()


async def test_running_gauge_counts_streams_in_flight(stub: StubFactory) -> None:
    async with stub(token_count=100, token_delay=Duration.parse("1s")) as (url, http):
        streams = [await http.post(f"{url}/v1/chat/completions", json={"stream": True}) for _ in range(2)]
        for stream in streams:
            await stream.content.readuntil(b"\n\n")
        async with http.get(f"{url}/metrics") as response:
            assert _gauges(await response.text())["vllm:num_requests_running"] == "2"
        for stream in streams:
            stream.close()
        for _ in range(200):  # the stub notices the disconnect at its next token (fake time: 1 s)
            async with http.get(f"{url}/metrics") as response:
                if _gauges(await response.text())["vllm:num_requests_running"] == "0":
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("running gauge did not return to 0 after the clients left")


async def test_time_to_first_token_histogram_appears_after_the_first_answer(stub: StubFactory) -> None:
    async with stub(token_count=2) as (url, http):
        for stream in (True, False):
            async with http.post(f"{url}/v1/chat/completions", json={"stream": stream}) as response:
                await response.read()
        async with http.get(f"{url}/metrics") as response:
            text = await response.text()
    assert "# TYPE vllm:time_to_first_token_seconds histogram\n" in text
    assert 'vllm:time_to_first_token_seconds_bucket{le="+Inf"} 2\n' in text
    assert "vllm:time_to_first_token_seconds_count 2\n" in text
