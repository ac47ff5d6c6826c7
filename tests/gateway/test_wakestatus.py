"""The wake's phase and wake times a held client is told, from an LLMService status (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from hearth.api.llmservice import LLMServiceStatus
from hearth.gateway.wake import wakestatus
from hearth.gateway.wake.progress import Phase

STARTED = {"startedAt": "2026-12-01T10:00:00.000Z"}


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        (None, Phase.UNKNOWN),
        ({}, Phase.REQUESTED),
        ({"phase": "ScaledToZero"}, Phase.REQUESTED),
        # The operator recorded the completed wake before this gateway's readiness watch saw the pod.
        ({"phase": "Ready", "lastWake": {**STARTED, "readyAt": "2026-12-01T10:00:30.000Z"}}, Phase.READY),
        # The wake ended as the pods say while the Deployment's readyReplicas still lags (phase Loading):
        # that is no step back to "requested" (seen on the test bed, external-push, scenario 2).
        ({"phase": "Loading", "lastWake": {**STARTED, "readyAt": "2026-12-01T10:00:30.000Z"}}, Phase.READY),
        ({"currentWake": STARTED}, Phase.SCHEDULING),
        (
            {"pool": {"name": "gpus", "state": "Waiting", "reason": "evicting ml/b; starts once drained"}},
            Phase.WAITING_FOR_CAPACITY,
        ),
        ({"pool": {"name": "gpus", "state": "Holding"}, "currentWake": STARTED}, Phase.SCHEDULING),
        ({"currentWake": {**STARTED, "unschedulable": True}}, Phase.WAITING_FOR_CAPACITY),
        (
            {"currentWake": {**STARTED, "unschedulable": True, "boundAt": "2026-12-01T10:01:00.000Z"}},
            Phase.CREATING,
        ),
        ({"currentWake": {**STARTED, "containersStartedAt": "2026-12-01T10:00:02.000Z"}}, Phase.LOADING),
        ({"currentWake": {**STARTED, "readyAt": "2026-12-01T10:00:30.000Z"}}, Phase.READY),
    ],
    ids=[
        "unread",
        "not-started",
        "at-zero",
        "just-completed",
        "completed-deployment-lagging",
        "scheduling",
        "pool-waiting",
        "pool-granted",
        "unschedulable",
        "bound-later",
        "loading",
        "ready",
    ],
)
def test_the_latest_boundary_reached_names_the_phase(status: dict[str, Any] | None, phase: Phase) -> None:
    parsed = None if status is None else LLMServiceStatus.model_validate(status)
    assert wakestatus.wake_phase(parsed) is phase


def test_wake_times_need_both_quantiles() -> None:
    half = LLMServiceStatus.model_validate({"wakeHistory": {"count": 1, "p50Seconds": 20.0}})
    assert wakestatus.wake_times(half) is None
    full = LLMServiceStatus.model_validate(
        {"wakeHistory": {"count": 2, "p50Seconds": 20.0, "p90Seconds": 31.5}}
    )
    times = wakestatus.wake_times(full)
    assert times is not None
    assert (times.p50_s, times.p90_s) == (20.0, 31.5)
