"""The gateway's background loops are supervised: one that ends while the gateway serves stops it, with an
error naming the loop and the cause; loops cancelled at shutdown are no failure."""

from __future__ import annotations

import asyncio

import pytest

from hearth.gateway import background, server
from hearth.gateway.wake.readiness import ManualReadiness
from tests.gateway.conftest import local_settings


async def _fails_after(seconds: float) -> None:
    await asyncio.sleep(seconds)
    raise ValueError("watch event without an object")


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_loop_that_raises_is_named_and_a_cancelled_one_is_not_a_failure() -> None:
    loops = background.Background()
    loops.start(_forever(), what="API key reload")
    loops.start(_fails_after(0.01), what="readiness watch")
    await asyncio.wait_for(loops.failed.wait(), 5)
    assert loops.failure == "the readiness watch stopped (ValueError: watch event without an object)"
    await loops.close()
    assert loops.failure == "the readiness watch stopped (ValueError: watch event without an object)"


async def test_a_loop_that_returns_is_a_failure_too() -> None:
    loops = background.Background()

    async def returns() -> None:
        return None

    loops.start(returns(), what="LLMService status watch")
    await asyncio.wait_for(loops.failed.wait(), 5)
    assert loops.failure == "the LLMService status watch stopped (it returned)"
    await loops.close()


async def test_closing_cancels_without_a_failure() -> None:
    loops = background.Background()
    loops.start(_forever(), what="readiness watch")
    await loops.close()
    assert loops.failure is None
    assert not loops.failed.is_set()


async def test_the_serving_gateway_stops_when_a_background_loop_dies() -> None:
    async with server.build(local_settings(), readiness=ManualReadiness()) as assembly:
        assembly.background.start(_fails_after(0.2), what="readiness watch")
        with pytest.raises(background.BackgroundFailedError, match="the readiness watch stopped"):
            await asyncio.wait_for(assembly.serve(), 10)
