"""The real ``openai`` Python client against the stub: what an application would see."""

from __future__ import annotations

import openai
import pytest

from tests.stub.conftest import StubFactory

pytestmark = pytest.mark.looptime


async def test_openai_client_streams_a_chat_completion(stub: StubFactory) -> None:
    async with stub(token_count=4, served_model_names=("qwen",)) as (url, _):
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(
            model="qwen",
            messages=[{"role": "user", "content": "count to four"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        finish_reasons: list[str | None] = []
        usage = None
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish_reasons.append(choice.finish_reason)
        await client.close()
    assert "".join(pieces) == "tok0 tok1 tok2 tok3 "
    assert finish_reasons == [None, None, None, "stop"]
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 4, 7)


async def test_openai_client_gets_a_whole_chat_completion(stub: StubFactory) -> None:
    async with stub(token_count=2, served_model_names=("qwen",)) as (url, _):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            completion = await client.chat.completions.create(
                model="qwen", messages=[{"role": "user", "content": "hi"}]
            )
    assert completion.id == "stub-cmpl"
    assert completion.model == "qwen"
    assert completion.choices[0].message.content == "tok0 tok1 "
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


async def test_openai_client_lists_models(stub: StubFactory) -> None:
    async with stub(model="/models/qwen", served_model_names=("qwen", "default")) as (url, _):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            models = [model.id async for model in client.models.list()]
    assert models == ["qwen", "default"]


async def test_openai_client_text_completions_streamed_and_whole(stub: StubFactory) -> None:
    async with stub(token_count=3) as (url, _):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            whole = await client.completions.create(model="hearth-stub", prompt="once upon")
            stream = await client.completions.create(model="hearth-stub", prompt="once upon", stream=True)
            streamed = "".join([chunk.choices[0].text async for chunk in stream])
    assert whole.choices[0].text == "tok0 tok1 tok2 "
    assert whole.object == "text_completion"
    assert streamed == "tok0 tok1 tok2 "
