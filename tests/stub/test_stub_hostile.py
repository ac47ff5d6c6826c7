"""The stub under hostile requests (issue 17): nested JSON and huge token counts are answered, bounded,
without a traceback."""

from __future__ import annotations

import logging

import pytest

from tests.stub.conftest import StubFactory

#: The stub's token limit (hearth.stub.app.MAX_TOKENS), as clients see it.
LIMIT = 100_000


async def test_json_nested_deeply_is_a_plain_request_not_a_traceback(
    stub: StubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b'{"stream": true, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with stub(token_count=2) as (url, http):
        async with http.post(f"{url}/v1/chat/completions", data=deep) as response:
            assert response.status == 200
            assert (await response.json())["choices"][0]["message"]["content"] == "tok0 tok1 "
    assert not [record for record in caplog.records if record.exc_info]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("tokens", [str(LIMIT + 1), "9" * 30, "9" * 5000])
async def test_a_token_count_past_the_limit_is_refused_with_a_clear_400(
    stub: StubFactory, tokens: str
) -> None:
    async with stub() as (url, http):
        async with http.post(f"{url}/v1/completions?tokens={tokens}", data=b"{}") as response:
            assert response.status == 400
            error = (await response.json())["error"]
    assert str(LIMIT) in error["message"]
    assert error["type"] == "BadRequestError"


async def test_the_largest_token_count_is_served(stub: StubFactory) -> None:
    async with stub() as (url, http):
        async with http.post(f"{url}/v1/completions?tokens={LIMIT}", data=b"{}") as response:
            assert response.status == 200
            assert (await response.json())["usage"]["completion_tokens"] == LIMIT
