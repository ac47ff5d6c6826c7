"""When a drain ends: the pure rules, the metrics parsing, and whole drains on fake loop time (looptime)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hearth.drainer import app, policy

TIMING = policy.Timing(timeout=120.0, endpoint_delay=1.0, poll_interval=0.25)
EXPOSITION = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen"} 2.0
vllm:num_requests_running{engine="1",model_name="qwen"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="qwen"} 4.0
vllm:num_requests_waiting_by_reason{reason="capacity"} 9
vllm:kv_cache_usage_perc 0.5
"""


def _count(text: str) -> policy.Scrape:
    return policy.in_flight(text, running="vllm:num_requests_running", waiting="vllm:num_requests_waiting")


def test_in_flight_sums_every_sample_of_both_series_and_nothing_else() -> None:
    assert _count(EXPOSITION) == 7.0


def test_in_flight_reads_bare_samples_and_labels_holding_spaces_and_braces() -> None:
    text = (
        'vllm:num_requests_running{model_name="a} b",path="x\\"}"} 3 1700000000000\n'
        "vllm:num_requests_waiting 0\n"
    )
    assert _count(text) == 3.0


@pytest.mark.parametrize(
    "text",
    [
        "vllm:num_requests_running 1\n",  # waiting missing
        "vllm:num_requests_waiting 0\n",  # running missing
        "vllm:num_requests_running NaN\nvllm:num_requests_waiting 0\n",
        "vllm:num_requests_running many\nvllm:num_requests_waiting 0\n",
        "vllm:num_requests_running\nvllm:num_requests_waiting 0\n",
        "<html>not metrics</html>",
        "",
    ],
)
def test_in_flight_is_unknown_when_it_cannot_be_told(text: str) -> None:
    assert _count(text) is policy.Reading.UNKNOWN


def test_the_first_look_waits_out_the_endpoint_delay() -> None:
    assert policy.first_step(TIMING) == policy.Wait(1.0)
    short = policy.Timing(timeout=0.5, endpoint_delay=1.0, poll_interval=0.25)
    assert policy.first_step(short) == policy.Wait(0.5), "never past the drain's end"
    assert policy.first_step(policy.Timing(timeout=0, endpoint_delay=1, poll_interval=1)) == policy.Done(
        policy.Outcome.TIMEOUT
    )


@pytest.mark.parametrize(
    ("scrape", "elapsed", "step"),
    [
        (0.0, 1.0, policy.Done(policy.Outcome.IDLE)),
        (0.0, 500.0, policy.Done(policy.Outcome.IDLE)),
        (policy.Reading.REFUSED, 1.0, policy.Done(policy.Outcome.ENGINE_GONE)),
        (3.0, 1.0, policy.Wait(0.25)),
        (policy.Reading.UNKNOWN, 1.0, policy.Wait(0.25)),
        (3.0, 119.9, policy.Wait(pytest.approx(0.1))),
        (3.0, 120.0, policy.Done(policy.Outcome.TIMEOUT)),
        (policy.Reading.UNKNOWN, 130.0, policy.Done(policy.Outcome.TIMEOUT)),
    ],
)
def test_next_step(scrape: policy.Scrape, elapsed: float, step: policy.Step) -> None:
    assert policy.next_step(TIMING, elapsed=elapsed, scrape=scrape) == step


def test_a_scrape_never_outlasts_the_drain_nor_a_few_polls() -> None:
    assert policy.scrape_budget(TIMING, elapsed=1.0) == 1.0
    assert policy.scrape_budget(TIMING, elapsed=119.8) == pytest.approx(0.2)
    assert policy.scrape_budget(TIMING, elapsed=121.0) == 0.0


@pytest.mark.parametrize(
    "fields",
    [
        {"timeout": -1.0, "endpoint_delay": 1.0, "poll_interval": 1.0},
        {"timeout": 1.0, "endpoint_delay": -1.0, "poll_interval": 1.0},
        {"timeout": 1.0, "endpoint_delay": 1.0, "poll_interval": 0.0},
    ],
)
def test_bad_timings_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"negative|positive"):
        policy.Timing(**fields)


def _engine(script: Callable[[float], policy.Scrape]) -> tuple[app.Scraper, list[float]]:
    """A fake engine whose reading depends on the (fake) time since the drain started; it notes when it
    was read."""
    reads: list[float] = []

    async def scrape(budget: float) -> policy.Scrape:
        loop = asyncio.get_running_loop()
        reads.append(loop.time() - start)
        return script(reads[-1])

    start = asyncio.get_running_loop().time()
    return scrape, reads


@pytest.mark.looptime
async def test_an_idle_engine_ends_the_drain_right_after_the_endpoint_delay() -> None:
    scrape, reads = _engine(lambda _: 0.0)
    result = await app.run_drain(TIMING, scrape)
    assert result == app.Result(outcome=policy.Outcome.IDLE, seconds=1.0, in_flight=0.0)
    assert reads == [1.0]


@pytest.mark.looptime
async def test_the_drain_waits_while_requests_are_in_flight_and_ends_at_the_next_poll_after() -> None:
    scrape, reads = _engine(lambda t: 2.0 if t < 30.1 else 0.0)  # the last stream ends 30.1 s in
    result = await app.run_drain(TIMING, scrape)
    assert result.outcome is policy.Outcome.IDLE
    assert result.seconds == pytest.approx(30.25)
    assert reads[0] == 1.0
    assert len(reads) == 1 + round((30.25 - 1.0) / 0.25), "one read per poll interval, none in between"


@pytest.mark.looptime
async def test_a_busy_engine_is_cut_at_the_timeout() -> None:
    scrape, _ = _engine(lambda _: 1.0)
    result = await app.run_drain(TIMING, scrape)
    assert result == app.Result(outcome=policy.Outcome.TIMEOUT, seconds=120.0, in_flight=1.0)


@pytest.mark.looptime
async def test_unknown_readings_keep_the_drain_waiting_until_a_count_says_idle() -> None:
    scrape, _ = _engine(lambda t: policy.Reading.UNKNOWN if t < 10 else 0.0)
    result = await app.run_drain(TIMING, scrape)
    assert result.outcome is policy.Outcome.IDLE
    assert result.seconds == pytest.approx(10.0)


@pytest.mark.looptime
async def test_an_engine_that_stops_listening_ends_the_drain() -> None:
    scrape, _ = _engine(lambda t: 5.0 if t < 3 else policy.Reading.REFUSED)
    result = await app.run_drain(TIMING, scrape)
    assert result == app.Result(outcome=policy.Outcome.ENGINE_GONE, seconds=3.0, in_flight=5.0)


@pytest.mark.looptime
async def test_a_slow_scrape_counts_against_the_timeout() -> None:
    async def slow(budget: float) -> policy.Scrape:
        await asyncio.sleep(budget)  # hangs until its budget runs out, as a timed-out request would
        return policy.Reading.UNKNOWN

    result = await app.run_drain(TIMING, slow)
    assert result.outcome is policy.Outcome.TIMEOUT
    assert result.seconds == pytest.approx(120.0)


@pytest.mark.looptime
async def test_repeated_drain_calls_share_one_drain() -> None:
    scrape, _ = _engine(lambda t: 1.0 if t < 5 else 0.0)
    drainer = app.Drainer(TIMING, scrape)
    first = drainer.start()
    await asyncio.sleep(3)
    second = drainer.start()
    assert second is first, "a repeated preStop call must not restart the count"
    result = await second
    assert result.seconds == pytest.approx(5.0)


@pytest.mark.looptime
async def test_the_operators_word_ends_the_endpoint_delay_during_the_drain() -> None:
    scrape, reads = _engine(lambda _: 0.0)
    settled = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, settled.set)
    result = await app.run_drain(TIMING, scrape, settled=settled)
    assert result.outcome is policy.Outcome.IDLE
    assert reads == [pytest.approx(0.2)], "read as soon as every gateway stopped routing here"


@pytest.mark.looptime
async def test_a_settled_drain_still_waits_for_what_the_engine_counts() -> None:
    scrape, reads = _engine(lambda t: 1.0 if t < 12 else 0.0)
    drainer = app.Drainer(TIMING, scrape)
    drainer.settled.set()  # the word came before the kubelet's preStop
    result = await drainer.start()
    assert reads[0] == 0.0
    assert result.outcome is policy.Outcome.IDLE
    assert result.seconds == pytest.approx(12.0)
