"""Demand and its activation lease (SPEC §3.5) on fake loop time: the constants pass exactly, unwaited."""

from __future__ import annotations

import asyncio

import pytest

from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.model import demand as demand_module
from hearth.gateway.model.demand import Demand
from hearth.gateway.wake.readiness import ManualReadiness

pytestmark = pytest.mark.looptime


async def test_subscribers_see_demand_end_when_the_ready_grace_ends() -> None:
    readiness = ManualReadiness()
    demand = Demand(readiness=readiness, metrics=GatewayMetrics().route(""), activation_timeout=300)
    flips: list[bool] = []
    demand.subscribe(flips.append)
    try:
        demand.cold_request()
        assert flips == [True]
        await asyncio.sleep(100)
        assert demand.value() == 1, "the lease holds demand while the backend is cold"
        readiness.set_endpoints(["http://127.0.0.1:1"])
        await asyncio.sleep(demand_module.READY_GRACE_SECONDS - 0.1)
        assert flips == [True], "still active within the grace"
        await asyncio.sleep(0.2)
        assert flips == [True, False], "one flip to inactive when the grace ends, with no request"
        assert demand.value() == 0
    finally:
        await demand.close()


async def test_the_lease_ends_at_the_activation_timeout_without_readiness() -> None:
    demand = Demand(readiness=ManualReadiness(), metrics=GatewayMetrics().route(""), activation_timeout=300)
    flips: list[bool] = []
    demand.subscribe(flips.append)
    try:
        demand.cold_request()
        await asyncio.sleep(299.9)
        assert demand.value() == 1
        await asyncio.sleep(0.2)
        assert demand.value() == 0
        assert flips == [True, False]
    finally:
        await demand.close()
