"""The gateway's garbage-collection pacing: young generations small, the oldest collected on a timer only."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from hearth.gateway import gcpacing


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The test process's own collector settings, as they were (tune() changes process-wide state)."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Cycle:
    """Garbage only the cycle collector can reclaim: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


def _promoted_cycle() -> weakref.ref[Cycle]:
    """A reference cycle that became garbage after surviving into the oldest generation, as a held
    request's objects do."""
    cycle = Cycle()
    gc.collect(0)
    gc.collect(1)  # survivors of the middle generation move to the oldest
    reference = weakref.ref(cycle)
    del cycle
    return reference


@pytest.mark.usefixtures("restored_collector")
def test_tune_freezes_start_up_and_never_collects_the_oldest_by_counts() -> None:
    built_at_start_up = [Cycle() for _ in range(10)]
    gcpacing.tune()
    assert gc.get_freeze_count() >= len(built_at_start_up)
    youngest, middle, oldest = gc.get_threshold()
    assert (youngest, middle) == (gcpacing.YOUNGEST_THRESHOLD, gcpacing.MIDDLE_THRESHOLD)
    assert oldest == gcpacing.OLDEST_BY_COUNTS_NEVER

    collections_before = gc.get_stats()[2]["collections"]
    for _ in range(gcpacing.YOUNGEST_THRESHOLD * gcpacing.MIDDLE_THRESHOLD * 30):
        Cycle()  # enough allocations for 30 middle collections: the oldest would be due by default
    assert gc.get_stats()[2]["collections"] == collections_before


@pytest.mark.usefixtures("restored_collector")
async def test_the_pacer_reclaims_cycles_in_the_oldest_generation_once_per_interval() -> None:
    gcpacing.tune()
    cycle = _promoted_cycle()
    gc.collect(1)  # what counts would do: the cycle is beyond the young generations' reach
    assert cycle() is not None

    intervals: list[float] = []
    woke = asyncio.Event()
    proceed = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        intervals.append(seconds)
        woke.set()
        await proceed.wait()
        proceed.clear()

    pacer = asyncio.create_task(gcpacing.collect_oldest_every(42.0, sleep=fake_sleep))
    try:
        await woke.wait()
        assert cycle() is not None  # not before the interval has passed
        woke.clear()
        proceed.set()
        await woke.wait()  # the pacer collected and sleeps again
        assert cycle() is None
        assert intervals == [42.0, 42.0]
    finally:
        pacer.cancel()
        await asyncio.gather(pacer, return_exceptions=True)
