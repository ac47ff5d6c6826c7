"""Drain accounting: from the Deployment at 0 (pods left) to the last pod gone, observed with explicit
times; saved time starts only when the pods are gone; the drain histogram and the seconds saved against
drainTimeout are counted once the status saying so is written."""

from __future__ import annotations

from typing import Any

import prometheus_client

from hearth.common import timestamps
from hearth.operator.telemetry import accounting, wiring
from tests.operator.test_wakes import GPU, at, deployment, pod

LABELS = {"namespace": "ml", "llmservice": "qwen"}


def _serving() -> list[dict[str, Any]]:
    return [pod(created=0, bound=0, started=1, ready=5)]


def _terminating() -> list[dict[str, Any]]:
    pods = _serving()
    pods[0]["metadata"]["deletionTimestamp"] = "2026-01-01T12:01:40Z"
    return pods


def test_a_drain_runs_from_the_deployment_at_zero_to_the_last_pod_gone() -> None:
    serving = accounting.rates_of(deployment=deployment(1), pods=_serving(), waking=False)
    kept = accounting.advance(None, rates=serving, at=at(0))
    assert kept.draining_since is None
    draining = accounting.rates_of(deployment=deployment(0), pods=_terminating(), waking=False)
    assert draining.draining
    assert not draining.at_zero
    assert accounting.drain_ended(kept, rates=draining, at=at(100)) is None
    kept = accounting.advance(kept, rates=draining, at=at(100))
    assert kept.draining_since == timestamps.format_millis(at(100))
    # Another observation while the pod drains keeps the drain's start.
    assert accounting.advance(kept, rates=draining, at=at(100.5)) is kept
    gone = accounting.rates_of(deployment=deployment(0), pods=[], waking=False)
    assert accounting.drain_ended(kept, rates=gone, at=at(101.5)) == 1.5
    kept = accounting.advance(kept, rates=gone, at=at(101.5))
    assert kept.draining_since is None
    assert accounting.drain_ended(kept, rates=gone, at=at(200)) is None, "a drain ends once"
    (usage,) = accounting.totals_at(kept, at(111.5))
    assert usage.resource_name == GPU
    assert usage.saved_seconds == 20.0, "saved starts when the pod is gone: 10 s x 2 accelerators"
    assert usage.serving_seconds == 203.0, "held until then: 101.5 s x 2"


def test_a_wake_during_the_drain_is_no_drain_that_ended() -> None:
    kept = accounting.advance(
        None, rates=accounting.rates_of(deployment=deployment(0), pods=_terminating(), waking=False), at=at(0)
    )
    assert kept.draining_since is not None
    woken = accounting.rates_of(deployment=deployment(1), pods=_terminating(), waking=True)
    assert accounting.drain_ended(kept, rates=woken, at=at(1)) is None
    assert accounting.advance(kept, rates=woken, at=at(1)).draining_since is None


def _tracker() -> tuple[wiring.Telemetry, prometheus_client.CollectorRegistry, list[dict[str, Any]]]:
    registry = prometheus_client.CollectorRegistry()
    tracker = wiring.Telemetry(
        None,  # type: ignore[arg-type]  # no client: pods come from the stand-in below
        registry=registry,
        enqueue=lambda _key: None,
        services=list,
        leading=lambda: True,
    )
    pods: list[dict[str, Any]] = []
    tracker.backend_pods = lambda _name, _namespace: pods  # type: ignore[method-assign]
    return tracker, registry, pods


def test_drain_seconds_and_seconds_saved_against_drain_timeout_are_exported() -> None:
    tracker, registry, pods = _tracker()
    status: dict[str, Any] = {}
    pods[:] = _serving()
    assert tracker.update(status, name="qwen", namespace="ml", deployment=deployment(1), at=at(0)) is None
    assert registry.get_sample_value("hearth_backend_drain_seconds_count", LABELS) == 0, "exists at 0"
    pods[:] = _terminating()
    assert tracker.update(status, name="qwen", namespace="ml", deployment=deployment(0), at=at(100)) is None
    pods[:] = []
    outcome = tracker.update(
        status, name="qwen", namespace="ml", deployment=deployment(0), at=at(101.25), drain_timeout=120.0
    )
    assert outcome is not None
    assert outcome.drained == 1.25
    assert registry.get_sample_value("hearth_backend_drain_seconds_count", LABELS) == 0, "not before written"
    tracker.record(outcome)
    assert registry.get_sample_value("hearth_backend_drain_seconds_count", LABELS) == 1
    assert registry.get_sample_value("hearth_backend_drain_seconds_sum", LABELS) == 1.25
    assert registry.get_sample_value("hearth_backend_drain_seconds_bucket", {**LABELS, "le": "1.5"}) == 1
    assert registry.get_sample_value("hearth_backend_drain_seconds_saved_total", LABELS) == 118.75
    tracker.forget("qwen", "ml")
    assert registry.get_sample_value("hearth_backend_drain_seconds_count", LABELS) is None


def test_a_runtime_without_a_drain_saves_nothing_against_drain_timeout() -> None:
    tracker, registry, pods = _tracker()
    status: dict[str, Any] = {}
    pods[:] = _terminating()
    tracker.update(status, name="qwen", namespace="ml", deployment=deployment(0), at=at(0))
    pods[:] = []
    outcome = tracker.update(status, name="qwen", namespace="ml", deployment=deployment(0), at=at(2))
    assert outcome is not None
    tracker.record(outcome)
    assert registry.get_sample_value("hearth_backend_drain_seconds_count", LABELS) == 1
    assert registry.get_sample_value("hearth_backend_drain_seconds_saved_total", LABELS) == 0
