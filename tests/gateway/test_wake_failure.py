"""A wake that cannot succeed, as clients see it: held requests end at once with the reason, cold ones get
503 with the reason and a Retry-After and wake nothing, until the operator's retryAt; then a request wakes
the backend again. Over real sockets, the route's status fed by hand with what the operator writes."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import openai
import pytest

from hearth.api import scalermodes
from hearth.common import durations
from hearth.gateway import errors
from hearth.gateway.wake import wakestatus
from hearth.gateway.wake.progress import Phase
from tests.gateway.test_shared_routing import (
    GATEWAY,
    ScaleNeverAnswers,
    _feed,
    _service,
    _slice,
    fed_gateway,
)

NOW = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _failure(
    *, since_s: float = 0, retry_in_s: float = 30, reason: str = "ImagePullFailed"
) -> dict[str, Any]:
    """status.wakeFailure as the operator writes it, relative to the real clock (nothing waits on it)."""
    now = datetime.datetime.now(tz=datetime.UTC)
    return {
        "reason": reason,
        "message": 'pod qwen-1: ErrImageNeverPull: image "hearth.dev/missing:e2e" is not present',
        "since": _rfc3339(now - datetime.timedelta(seconds=since_s)),
        "retryAt": _rfc3339(now + datetime.timedelta(seconds=retry_in_s)),
        "attempts": 1,
    }


async def _until(condition: Any) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - the route's own counters, in this loop
            await asyncio.sleep(0.01)


async def test_held_streams_end_at_once_with_the_reason_and_a_failed_phase() -> None:
    async with fed_gateway(progress_interval=durations.Duration.parse("1s")) as fed:
        _feed(fed.table, GATEWAY, _service("qwen"), _slice("qwen", None))
        qwen = fed.table.get("qwen")
        assert qwen is not None
        response = await fed.chat("qwen", stream=True, messages=[])
        assert response.status == 200
        await _until(lambda: qwen.held == 1)
        qwen.phases.update({"wakeFailure": _failure()})
        body = (await asyncio.wait_for(response.read(), 10)).decode()
        comments = [line for line in body.splitlines() if line.startswith(": hearth ")]
        assert json.loads(comments[-1].removeprefix(": hearth "))["phase"] == "failed"
        assert body.endswith("\n\n")
        event = body.split("event: error\ndata: ")[1].split("\n")[0]
        error = json.loads(event)["error"]
        assert error["code"] == "image_pull_failed"
        assert "hearth.dev/missing:e2e" in error["message"]
        assert qwen.held == 0


async def test_a_held_request_that_does_not_stream_gets_a_503_naming_the_reason() -> None:
    async with fed_gateway() as fed:
        _feed(fed.table, GATEWAY, _service("qwen"), _slice("qwen", None))
        qwen = fed.table.get("qwen")
        assert qwen is not None
        answer = asyncio.create_task(fed.chat("qwen", messages=[]))
        await _until(lambda: qwen.held == 1)
        qwen.phases.update({"wakeFailure": _failure(reason="CrashLoopBackOff")})
        response = await asyncio.wait_for(answer, 10)
        assert response.status == 503
        assert response.headers[errors.REFUSAL_HEADER] == "crash_loop_back_off"
        assert 25 <= int(response.headers["Retry-After"]) <= 30
        assert (await response.json())["error"]["code"] == "crash_loop_back_off"


async def test_cold_requests_are_refused_and_wake_nothing_until_the_retry_time() -> None:
    client = ScaleNeverAnswers()
    async with fed_gateway(client=client, scaler_mode=scalermodes.ScalerMode.BUILTIN) as fed:
        _feed(fed.table, GATEWAY, _service("qwen"), _slice("qwen", None))
        qwen = fed.table.get("qwen")
        assert qwen is not None
        qwen.phases.update({"wakeFailure": _failure()})

        sdk = openai.AsyncOpenAI(base_url=f"{fed.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as refused:
            await sdk.chat.completions.create(model="qwen", messages=[], stream=True)
        assert refused.value.status_code == 503
        assert refused.value.code == "image_pull_failed"
        assert refused.value.response.headers[errors.REFUSAL_HEADER] == "image_pull_failed"
        listed = await (await fed.http.get(f"{fed.url}/v1/models/qwen")).json()
        assert listed["hearth"]["state"] == "failed"
        assert listed["hearth"]["reason"] == "image_pull_failed"
        warmed = await (await fed.http.post(f"{fed.url}/hearth/warm/qwen")).json()
        assert warmed["state"] == "failed"
        await asyncio.sleep(0.1)
        assert not client.asked.is_set(), "nothing woke the backend"

        # Past the retry time the next request wakes the backend again (and is held meanwhile).
        qwen.phases.update({"wakeFailure": _failure(since_s=60, retry_in_s=-1)})
        assert qwen.phases.phase() is not Phase.FAILED
        held = asyncio.create_task(fed.chat("qwen", messages=[]))
        await asyncio.wait_for(client.asked.wait(), 10)
        assert qwen.held == 1

        # The retried wake fails again: a new failure (a new since), and the held request learns it.
        qwen.phases.update({"wakeFailure": _failure(retry_in_s=60)})
        response = await asyncio.wait_for(held, 10)
        assert response.status == 503
        await sdk.close()


def test_the_feed_refuses_only_until_the_retry_time_and_tells_each_new_failure_once() -> None:
    wall = [NOW.timestamp()]
    feed = wakestatus.StatusFeed("qwen", wall=lambda: wall[0])
    told: list[Phase] = []
    feed.on_change(told.append)
    failure = {
        "reason": "OOMKilled",
        "message": "pod p: container engine was killed for exceeding its memory limit",
        "since": _rfc3339(NOW),
        "retryAt": _rfc3339(NOW + datetime.timedelta(seconds=30)),
    }
    feed.update({"phase": "Degraded", "wakeFailure": failure})
    assert told == [Phase.FAILED]
    found = feed.failure()
    assert found is not None
    assert (found.refusal.code, found.retry_after_s) == ("oom_killed", 30)
    feed.update({"phase": "Degraded", "wakeFailure": failure})
    assert told == [Phase.FAILED], "the same failure is told once"
    wall[0] += 29.5
    found = feed.failure()
    assert found is not None
    assert found.retry_after_s == 1
    wall[0] += 0.5
    assert feed.failure() is None
    assert feed.phase() is not Phase.FAILED
    again = {
        **failure,
        "since": _rfc3339(NOW + datetime.timedelta(seconds=31)),
        "retryAt": _rfc3339(NOW + datetime.timedelta(seconds=91)),
    }
    wall[0] += 1
    feed.update({"phase": "Degraded", "wakeFailure": again})
    assert told[-1] is Phase.FAILED
    assert len(told) == 2
    feed.update({"phase": "Ready"})
    assert feed.failure() is None
