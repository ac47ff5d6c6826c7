"""What a waiting client is told (issue 15): errors the real openai client raises, progress comments in held
streams beside the unchanged heartbeats, wake headers and ETA-based Retry-After for non-streaming clients,
and waking on intent (``POST /hearth/warm``). On fake loop time (looptime)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from hearth.gateway import errors
from hearth.gateway.wake import eta
from hearth.gateway.wake.progress import Phase
from tests.gateway.conftest import ColdStartMode, GatewayFactory, running_stub, seconds
from tests.helpers import split_sse

pytestmark = pytest.mark.looptime

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


class FixedWakeTimes:
    """Recent wakes that always took the same time (the observability work will supply real ones)."""

    def __init__(self, *, p50_s: float, p90_s: float) -> None:
        self.times = eta.WakeTimes(p50_s=p50_s, p90_s=p90_s)

    def wake_times(self) -> eta.WakeTimes | None:
        return self.times


class ManualPhases:
    """The wake's phase set by hand (in production: the watch on the gateway's own LLMService)."""

    def __init__(self, phase: Phase = Phase.REQUESTED) -> None:
        self.current = phase
        self._callbacks: list[Callable[[Phase], None]] = []

    def phase(self) -> Phase:
        return self.current

    def failure(self) -> errors.FailedWake | None:
        return None

    def on_change(self, callback: Callable[[Phase], None]) -> None:
        self._callbacks.append(callback)

    def set(self, phase: Phase) -> None:
        self.current = phase
        for callback in self._callbacks:
            callback(phase)


def _client(url: str, *, key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):
        while not condition():  # noqa: ASYNC110 - polls state of tasks in this loop, on fake time
            await asyncio.sleep(0.01)


async def _consume(stream: AsyncIterator[object], *, into: list[object]) -> None:
    async for chunk in stream:
        into.append(chunk)


def _progress(body: bytes) -> list[dict[str, Any]]:
    prefix = b": hearth "
    return [json.loads(e[len(prefix) :]) for e in split_sse(body) if e.startswith(prefix)]


# ---- errors inside a committed stream ---------------------------------------------------------------


async def test_an_activation_timeout_inside_a_stream_is_an_api_error_in_the_openai_client(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(activation_timeout=seconds("35s")) as gw, _client(gw.url) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks: list[object] = []
        with pytest.raises(openai.APIError) as raised:
            await _consume(stream, into=chunks)
    assert raised.value.code == "activation_timeout"
    assert "activation timeout" in raised.value.message
    assert "warming up" in raised.value.message
    assert chunks == [], "heartbeats and progress comments are no chunks"


async def test_closing_the_holds_inside_a_stream_is_an_api_error_in_the_openai_client(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway() as gw, _client(gw.url) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        await _until(lambda: gw.route.held == 1)
        gw.gateway.close_holds()  # what SIGTERM does after the drain delay
        with pytest.raises(openai.APIError) as raised:
            await _consume(stream, into=[])
    assert raised.value.code == "gateway_draining"
    assert "shutting down" in raised.value.message


# ---- progress comments ------------------------------------------------------------------------------


async def test_progress_comments_come_at_commit_and_every_interval_beside_unchanged_heartbeats(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(activation_timeout=seconds("35s")) as gw:
        async with gw.http.post(f"{gw.url}/v1/completions", json={"stream": True}) as response:
            assert response.headers["X-Hearth-Cold-Start"] == "true", "a held stream says so at commit"
            first = await response.content.readuntil(b"\n\n")
            body = first + await response.read()
    assert first == b': hearth {"v":1,"phase":"unknown","elapsed_s":0.0}\n\n', "the first, at commit"
    comments = _progress(body)
    assert [c["elapsed_s"] for c in comments] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0], "every 5 s"
    assert all(set(c) == {"v", "phase", "elapsed_s"} for c in comments), "no ETA without wake times"
    events = split_sse(body)
    assert events.count(b": heartbeat\n\n") == 3, "heartbeats byte for byte at 10, 20 and 30 s as before"
    assert all(e.startswith((b": hearth ", b": heartbeat\n\n", b"event: error\n")) for e in events)


async def test_progress_comments_carry_the_eta_and_say_overdue_past_p90(
    start_gateway: GatewayFactory,
) -> None:
    wakes = FixedWakeTimes(p50_s=20, p90_s=30)
    async with start_gateway(activation_timeout=seconds("40s"), eta=wakes) as gw:
        async with gw.http.post(f"{gw.url}/v1/completions", json={"stream": True}) as response:
            body = await response.read()
    comments = {c["elapsed_s"]: c for c in _progress(body)}
    assert comments[0.0] == {"v": 1, "phase": "unknown", "elapsed_s": 0.0, "eta_s": 20}
    assert comments[15.0]["eta_s"] == 5
    assert comments[30.0] == {"v": 1, "phase": "unknown", "elapsed_s": 30.0, "eta_s": 0}, "p90 not passed"
    assert comments[35.0]["overdue"] is True


async def test_each_phase_change_is_told_at_once_and_ready_is_the_last_word_before_the_answer(
    start_gateway: GatewayFactory,
) -> None:
    phases = ManualPhases()
    wakes = FixedWakeTimes(p50_s=20, p90_s=30)
    async with (
        running_stub(token_count=2) as stub,
        start_gateway(eta=wakes, phases=phases) as gw,
        gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": True}) as response,
    ):
        await _until(lambda: gw.route.held == 1)
        loop = asyncio.get_running_loop()
        admitted = loop.time()
        changes = ((3, Phase.SCHEDULING), (8, Phase.CREATING), (11.5, Phase.LOADING), (13, Phase.READY))
        for moment, phase in changes:
            await asyncio.sleep(admitted + moment - loop.time())
            phases.set(phase)
        await asyncio.sleep(2)
        gw.readiness.set_endpoints([stub])
        body = await response.read()
    told = [(c["elapsed_s"], c["phase"]) for c in _progress(body)]
    assert told == [
        (0.0, "requested"),
        (3.0, "scheduling"),
        (5.0, "scheduling"),
        (8.0, "creating"),
        (10.0, "creating"),
        (11.5, "loading"),
        (15.0, "ready"),
    ], "at commit, at each change and every 5 s, and ready only just before the answer"
    comments = _progress(body)
    assert comments[3]["eta_s"] == 15, "counting down across phases: 3 s lead + p50 20 s - 8 s elapsed"
    assert "eta_s" not in comments[-1], "nothing to predict once ready"
    events = split_sse(body)
    assert events.index(b': hearth {"v":1,"phase":"ready","elapsed_s":15.0}\n\n') < next(
        i for i, e in enumerate(events) if e.startswith(b"data: {")
    )
    assert events[-1] == b"data: [DONE]\n\n"


async def test_the_eta_adds_the_scaler_lead_this_gateway_saw_in_its_last_wakes(
    start_gateway: GatewayFactory,
) -> None:
    phases = ManualPhases()
    wakes = FixedWakeTimes(p50_s=20, p90_s=30)
    async with running_stub(token_count=1) as stub, start_gateway(eta=wakes, phases=phases) as gw:
        for wake in range(2):
            async with gw.http.post(f"{gw.url}/v1/completions", json={"stream": True}) as response:
                first = await response.content.readuntil(b"\n\n")
                await asyncio.sleep(4)  # a KEDA poll or so before the backend leaves zero
                phases.set(Phase.SCHEDULING)
                await asyncio.sleep(1)
                gw.readiness.set_endpoints([stub])
                await response.read()
            told = json.loads(first[len(b": hearth ") :])
            assert told["eta_s"] == (20 if wake == 0 else 24), f"wake {wake}: p50 + the lead seen so far"
            gw.readiness.set_endpoints([])
            phases.set(Phase.REQUESTED)
            await asyncio.sleep(400)  # the lease and grace run out: the next request starts a new wake
    assert gw.route.scaler_lead.seconds() == pytest.approx(4, abs=0.01)


async def test_a_status_still_saying_ready_from_the_last_wake_is_not_told_to_a_held_stream(
    start_gateway: GatewayFactory,
) -> None:
    phases = ManualPhases(Phase.READY)  # the backend just went to zero; the status has not caught up
    async with running_stub(token_count=1) as stub, start_gateway(phases=phases) as gw:
        async with gw.http.post(f"{gw.url}/v1/completions", json={"stream": True}) as response:
            first = await response.content.readuntil(b"\n\n")
            await asyncio.sleep(2)
            phases.set(Phase.SCHEDULING)
            await asyncio.sleep(2)
            gw.readiness.set_endpoints([stub])
            body = first + await response.read()
    told = [(c["elapsed_s"], c["phase"]) for c in _progress(body)]
    assert told == [(0.0, "requested"), (2.0, "scheduling"), (4.0, "ready")]


async def test_a_held_answer_without_a_stream_is_not_cut_short_by_phase_changes(
    start_gateway: GatewayFactory,
) -> None:
    phases = ManualPhases()
    async with running_stub(token_count=2) as stub, start_gateway(phases=phases) as gw:
        request = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/chat/completions", json={"messages": []}))
        await _until(lambda: gw.route.held == 1)
        for phase in (Phase.SCHEDULING, Phase.CREATING, Phase.LOADING):
            await asyncio.sleep(10)
            phases.set(phase)
            assert not request.done(), f"still held after the change to {phase}"
        await asyncio.sleep(5)
        gw.readiness.set_endpoints([stub])
        async with await request as response:
            assert response.status == 200
            assert float(response.headers["X-Hearth-Wake-Seconds"]) == pytest.approx(35, abs=0.1)


async def test_progress_interval_zero_sends_only_heartbeats(start_gateway: GatewayFactory) -> None:
    async with start_gateway(activation_timeout=seconds("35s"), progress_interval=seconds("0s")) as gw:
        async with gw.http.post(f"{gw.url}/v1/completions", json={"stream": True}) as response:
            body = await response.read()
    assert _progress(body) == []
    assert body.startswith(b": heartbeat\n\n: heartbeat\n\n: heartbeat\n\nevent: error\n")


async def test_progress_comments_give_the_openai_client_no_spurious_chunk(
    start_gateway: GatewayFactory,
) -> None:
    async with (
        running_stub(token_count=3) as stub,
        start_gateway(progress_interval=seconds("1s")) as gw,
        _client(gw.url) as client,
    ):
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        # The same stream read raw, beside it: proof the openai client's stream did carry the comments.
        raw = await gw.http.post(f"{gw.url}/v1/chat/completions", json={"stream": True})
        await _until(lambda: gw.route.held == 2)
        await asyncio.sleep(42)  # about 42 progress comments and 4 heartbeats
        gw.readiness.set_endpoints([stub])
        held_chunks = [chunk async for chunk in stream]
        async with raw:
            assert len(_progress(await raw.read())) >= 40, "one a second over the 42 s hold"
        warm = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        warm_gw_chunks = [chunk async for chunk in warm]
    assert len(held_chunks) == len(warm_gw_chunks), "the held stream has exactly the chunks of a warm one"
    text = "".join(c.choices[0].delta.content or "" for c in held_chunks if c.choices)
    assert text == "tok0 tok1 tok2 "


# ---- non-streaming clients --------------------------------------------------------------------------


async def test_an_answer_that_waited_for_a_wake_says_so_and_how_long(start_gateway: GatewayFactory) -> None:
    async with running_stub(token_count=2) as stub, start_gateway() as gw:
        request = asyncio.ensure_future(gw.http.post(f"{gw.url}/v1/chat/completions", json={"messages": []}))
        await _until(lambda: gw.route.held == 1)
        await asyncio.sleep(42)
        gw.readiness.set_endpoints([stub])
        async with await request as response:
            assert response.status == 200
            assert response.headers["X-Hearth-Cold-Start"] == "true"
            assert float(response.headers["X-Hearth-Wake-Seconds"]) == pytest.approx(42, abs=0.1)
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={"messages": []}) as response:
            assert response.status == 200
            assert "X-Hearth-Cold-Start" not in response.headers, "a warm answer did not wait"
            assert "X-Hearth-Wake-Seconds" not in response.headers


async def test_reject_mode_retry_after_is_the_eta_and_the_body_says_the_model_is_warming(
    start_gateway: GatewayFactory,
) -> None:
    wakes = FixedWakeTimes(p50_s=36.2, p90_s=60)
    async with start_gateway(cold_start_mode=ColdStartMode.REJECT, eta=wakes) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "37", "the median wake time, rounded up"
            error = (await response.json())["error"]
        await asyncio.sleep(30)
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.headers["Retry-After"] == "7", "what is left of the wake under way"
    assert error["code"] == "backend_not_ready"
    assert "warming up" in error["message"]


async def test_a_wake_given_up_at_the_activation_timeout_does_not_make_the_next_one_overdue(
    start_gateway: GatewayFactory,
) -> None:
    wakes = FixedWakeTimes(p50_s=20, p90_s=30)
    async with start_gateway(
        cold_start_mode=ColdStartMode.REJECT, activation_timeout=seconds("60s"), eta=wakes
    ) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.headers["Retry-After"] == "20"
        await asyncio.sleep(120)  # the lease ended without a ready backend
        assert gw.route.demand.value() == 0
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.headers["Retry-After"] == "20", "a new wake, timed from its own start"


async def test_reject_mode_without_wake_times_keeps_the_fixed_retry_after(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(cold_start_mode=ColdStartMode.REJECT) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.headers["Retry-After"] == "10"
            assert "warming up" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("p50_s", "p90_s", "retry_after"),
    [(100, 200, "70"), (20, 25, "10")],
    ids=["time-left", "overdue-fixed"],
)
async def test_the_activation_timeout_503_retries_after_the_time_left_of_the_wake(
    start_gateway: GatewayFactory, p50_s: float, p90_s: float, retry_after: str
) -> None:
    wakes = FixedWakeTimes(p50_s=p50_s, p90_s=p90_s)
    async with start_gateway(activation_timeout=seconds("30s"), eta=wakes) as gw:
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json={}) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == retry_after
            error = (await response.json())["error"]
    assert error["code"] == "activation_timeout"
    assert "warming up" in error["message"]


# ---- wake on intent ---------------------------------------------------------------------------------


async def test_warm_raises_demand_by_one_lease_per_client_and_answers_202(
    start_gateway: GatewayFactory,
) -> None:
    async with running_stub() as stub, start_gateway() as gw:
        for _ in range(3):
            async with gw.http.post(f"{gw.url}/hearth/warm") as response:
                assert response.status == 202
                state = await response.json()
        assert state == {"state": "cold", "lease_s": 300.0, "phase": "unknown"}, (
            "the same lease, not a new one each time"
        )
        assert gw.route.demand.value() == 1, "one client, one lease"
        assert gw.metric("hearth_gateway_activation_events_total") == 1
        assert gw.metric("hearth_gateway_pending") == 0, "no request is held for it"
        gw.readiness.set_endpoints([stub])
        await asyncio.sleep(16)
        assert gw.route.demand.value() == 0, "the lease ended with readiness (then the 15 s grace)"
        async with gw.http.post(f"{gw.url}/hearth/warm") as response:
            assert await response.json() == {"state": "ready"}
        assert gw.route.demand.value() == 0, "warming a ready model takes no lease"


async def test_a_warm_lease_ends_at_the_activation_timeout(start_gateway: GatewayFactory) -> None:
    async with start_gateway(activation_timeout=seconds("30s")) as gw:
        async with gw.http.post(f"{gw.url}/hearth/warm") as response:
            assert response.status == 202
        await asyncio.sleep(20)
        async with gw.http.post(f"{gw.url}/hearth/warm") as response:
            assert (await response.json())["lease_s"] == 10.0, "asking again does not stretch the lease"
        await asyncio.sleep(9)
        assert gw.route.demand.value() == 1
        await asyncio.sleep(2)
        assert gw.route.demand.value() == 0
        assert gw.metric("hearth_gateway_demand") == 0


async def test_warm_needs_a_key_and_counts_one_lease_per_key(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "a").write_text("sk-a")
    (keys / "b").write_text("sk-b")
    async with start_gateway(api_keys_dir=str(keys)) as gw:
        async with gw.http.post(f"{gw.url}/hearth/warm") as response:
            assert response.status == 401
        assert gw.route.demand.value() == 0, "no key, no wake"
        for key in ("sk-a", "sk-a", "sk-b"):
            headers = {"Authorization": f"Bearer {key}"}
            async with gw.http.post(f"{gw.url}/hearth/warm", headers=headers) as response:
                assert response.status == 202
        assert gw.route.demand.value() == 2, "two keys, two leases; the repeat counts once"


async def test_a_closing_gateway_takes_no_warm_lease(start_gateway: GatewayFactory) -> None:
    async with start_gateway() as gw:
        gw.gateway.close_holds()
        async with gw.http.post(f"{gw.url}/hearth/warm") as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "gateway_draining"
        assert gw.route.demand.value() == 0


async def test_warm_takes_only_post(start_gateway: GatewayFactory) -> None:
    async with start_gateway() as gw:
        async with gw.http.get(f"{gw.url}/hearth/warm") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"
        assert gw.route.demand.value() == 0


async def test_models_while_cold_say_the_state_and_the_openai_client_lists_them(
    start_gateway: GatewayFactory,
) -> None:
    async with start_gateway(model_name="qwen") as gw, _client(gw.url) as client:
        models = [model async for model in client.models.list()]
    assert [model.id for model in models] == ["qwen"]
    assert (models[0].model_extra or {})["hearth"] == {"state": "cold"}
