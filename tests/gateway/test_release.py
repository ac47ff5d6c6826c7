"""Releasing held requests (issue 18): first in, first out, at most a wave per ready endpoint in their turn at
once, each answer letting the next one in. The queue alone, then through the gateway, on fake loop time
(looptime)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

from hearth.gateway.model import release
from tests.gateway.conftest import GatewayFactory, running_app

pytestmark = pytest.mark.looptime

FAR = 1e9


class Waiters:
    """Held requests waiting in one queue, each noting its turn in the order turns came."""

    def __init__(self, queue: release.ReleaseQueue) -> None:
        self.queue = queue
        self.places: list[release.Place] = []
        self.turns: list[int] = []
        self.tasks: list[asyncio.Task[bool]] = []

    def add(self, count: int, *, deadline: float = FAR) -> None:
        for _ in range(count):
            index = len(self.places)
            place = self.queue.enter()
            self.places.append(place)
            self.tasks.append(asyncio.create_task(self._wait(index, place, deadline)))

    async def _wait(self, index: int, place: release.Place, deadline: float) -> bool:
        released = await self.queue.wait(place, deadline=deadline)
        if released:
            self.turns.append(index)
        return released

    def answer(self, *indices: int) -> None:
        for index in indices:
            self.queue.answered(self.places[index])


async def _settle() -> None:
    """Let every runnable callback run (a wave is released a few places per loop iteration)."""
    for _ in range(50):
        await asyncio.sleep(0)


def _queue(*, wave: int, endpoints: list[str], ready: bool = False) -> release.ReleaseQueue:
    return release.ReleaseQueue(wave=wave, endpoints=lambda: len(endpoints), ready=ready)


async def test_held_requests_are_released_in_arrival_order_a_wave_at_a_time() -> None:
    queue = _queue(wave=3, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(8)
    await _settle()
    assert waiters.turns == [], "nothing is released while no backend is ready"
    queue.set_ready(True)
    await _settle()
    assert waiters.turns == [0, 1, 2], "one wave: the first three, in arrival order"
    assert queue.in_turn == 3
    assert queue.waiting == 5


async def test_each_answer_that_begins_lets_the_next_in_line_in() -> None:
    queue = _queue(wave=2, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(5)
    queue.set_ready(True)
    await _settle()
    waiters.answer(1)
    await _settle()
    assert waiters.turns == [0, 1, 2]
    waiters.answer(0, 2)
    await _settle()
    assert waiters.turns == [0, 1, 2, 3, 4]
    waiters.answer(3, 4)
    assert queue.in_turn == 0
    assert queue.waiting == 0


async def test_the_wave_is_per_ready_endpoint() -> None:
    endpoints = ["a", "b"]
    queue = release.ReleaseQueue(wave=2, endpoints=lambda: len(endpoints))
    waiters = Waiters(queue)
    waiters.add(10)
    queue.set_ready(True)
    await _settle()
    assert waiters.turns == [0, 1, 2, 3], "two endpoints: two waves at once"
    endpoints.append("c")
    waiters.answer(0)
    await _settle()
    assert waiters.turns == [0, 1, 2, 3, 4, 5, 6], "a third endpoint: its wave joins at the next answer"


async def test_a_request_given_up_before_its_turn_takes_no_slot() -> None:
    queue = _queue(wave=2, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(4)
    await _settle()
    waiters.tasks[1].cancel()
    queue.leave(waiters.places[1])  # as the gateway does when a held client leaves
    queue.set_ready(True)
    await _settle()
    assert waiters.turns == [0, 2], "the place of the request that left is skipped"
    assert queue.waiting == 1


async def test_a_released_request_that_ends_without_an_answer_gives_its_slot_back() -> None:
    queue = _queue(wave=1, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(3)
    queue.set_ready(True)
    await _settle()
    assert waiters.turns == [0]
    queue.leave(waiters.places[0])  # the client left while its request was being forwarded
    queue.leave(waiters.places[0])  # leaving twice gives nothing back twice
    await _settle()
    assert waiters.turns == [0, 1]
    assert queue.in_turn == 1


async def test_a_wait_that_times_out_keeps_the_place_in_line() -> None:
    queue = _queue(wave=1, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(1)
    late = queue.enter()
    loop = asyncio.get_running_loop()
    assert not await queue.wait(late, deadline=loop.time() + 10), "a heartbeat's wait ends unreleased"
    queue.set_ready(True)
    await _settle()
    waiters.answer(0)
    assert late.released, "the place kept between waits is next, never sent to the back"
    assert await queue.wait(late, deadline=loop.time() + 10)


async def test_requests_arriving_while_others_wait_queue_behind_them() -> None:
    queue = _queue(wave=1, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(2)
    queue.set_ready(True)
    await _settle()
    assert queue.must_queue, "one is still waiting: a newcomer must not overtake it"
    waiters.add(1)
    waiters.answer(0)
    await _settle()
    waiters.answer(1)
    await _settle()
    assert waiters.turns == [0, 1, 2]
    assert not queue.must_queue


async def test_readiness_lost_mid_release_stops_it_and_readiness_back_resumes_it() -> None:
    queue = _queue(wave=1, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(3)
    queue.set_ready(True)
    await _settle()
    queue.set_ready(False)
    waiters.answer(0)
    await _settle()
    assert waiters.turns == [0]
    queue.set_ready(True)
    await _settle()
    assert waiters.turns == [0, 1]


async def test_closing_refuses_every_waiting_request() -> None:
    queue = _queue(wave=1, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(3)
    queue.close()
    results = await asyncio.gather(*waiters.tasks)
    assert results == [False, False, False]
    assert queue.waiting == 0


async def test_a_wave_is_let_in_a_few_places_per_loop_iteration_in_order() -> None:
    queue = _queue(wave=release.STEP * 3, endpoints=["a"])
    waiters = Waiters(queue)
    waiters.add(release.STEP * 4)
    await _settle()
    queue.set_ready(True)
    assert queue.in_turn == release.STEP, "the first few at once, in the same iteration"
    await _settle()
    assert queue.in_turn == release.STEP * 3, "the rest of the wave in the iterations after"
    assert waiters.turns == list(range(release.STEP * 3))


async def test_a_wave_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        _queue(wave=0, endpoints=[])


async def test_the_gateway_forwards_held_requests_in_arrival_order_one_wave_at_a_time(
    start_gateway: GatewayFactory,
) -> None:
    """Through the real gateway: a backend that answers only when told sees the held requests in the
    order they arrived, never more than the wave at once."""
    seen: list[str] = []
    answer = asyncio.Event()
    in_flight = 0
    most_in_flight = 0

    async def backend(request: web.Request) -> web.Response:
        nonlocal in_flight, most_in_flight
        seen.append(request.headers["X-Order"])
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await answer.wait()
        in_flight -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", backend)
    async with running_app(app) as url, start_gateway(release_wave=2) as gw:
        requests = []
        for index in range(6):
            requests.append(
                asyncio.ensure_future(
                    gw.http.post(f"{gw.url}/v1/completions", json={}, headers={"X-Order": str(index)})
                )
            )
            await _until(lambda count=index + 1: gw.route.held == count)  # type: ignore[misc]
        gw.readiness.set_endpoints([url])
        await _until(lambda: len(seen) == 2)
        for _ in range(20):
            await asyncio.sleep(0)
        assert seen == ["0", "1"], "only the first wave reaches the backend while its answers are pending"
        answer.set()
        responses = await asyncio.gather(*requests)
        assert [response.status for response in responses] == [200] * 6
        assert seen == ["0", "1", "2", "3", "4", "5"]
        assert most_in_flight == 2, "never more than the wave at the backend at once"
        for response in responses:
            response.release()


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):
        while not condition():  # noqa: ASYNC110 - polls state of tasks in this loop, on fake time
            await asyncio.sleep(0.01)


async def test_two_interrupts_before_the_waiter_runs_are_one_and_raise_nothing() -> None:
    # Two status updates back to back (scheduling, then creating, in the same moment) interrupt the held
    # streams twice before any of them has run: the second must not try to move a timeout that fired.
    queue = release.ReleaseQueue(wave=1, endpoints=lambda: 0)
    place = queue.enter()
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(queue.wait(place, deadline=loop.time() + 60, interruptible=True))
    await asyncio.sleep(0)  # the wait has begun
    queue.interrupt()
    await asyncio.sleep(0)  # its timeout fires; the waiter has not resumed yet
    queue.interrupt()
    assert await waiting is False, "interrupted: not released, the place kept"
    assert not place.settled
    queue.leave(place)
