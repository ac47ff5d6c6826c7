"""Wake telemetry and accelerator accounting, observation by observation with explicit times."""

from __future__ import annotations

import datetime
from typing import Any

import prometheus_client

from hearth.api import telemetry
from hearth.api.runtime import InferenceRuntime
from hearth.common import timestamps
from hearth.operator.telemetry import accounting, wakes, wiring

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
GPU = "nvidia.com/gpu"


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    """A Kubernetes timestamp: whole seconds."""
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(replicas: int, *, gpus: int = 2) -> dict[str, Any]:
    container = {"name": "vllm", "resources": {"limits": {GPU: str(gpus), "cpu": "4"}}}
    return {"spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}}}


def pod(
    *,
    created: float,
    bound: float | None = None,
    started: float | None = None,
    ready: float | None = None,
    unschedulable: bool = False,
    gpus: int = 2,
    name: str = "backend-1",
) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = []
    spec: dict[str, Any] = {"containers": [{"name": "vllm", "resources": {"limits": {GPU: str(gpus)}}}]}
    status: dict[str, Any] = {"phase": "Pending", "conditions": conditions}
    if unschedulable:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": stamp(created),
            }
        )
    if bound is not None:
        spec["nodeName"] = "node-1"
        conditions[:] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp(bound)}]
        status["containerStatuses"] = [
            {"name": "vllm", "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]
    if started is not None:
        status["phase"] = "Running"
        status["containerStatuses"] = [{"name": "vllm", "state": {"running": {"startedAt": stamp(started)}}}]
        conditions.append({"type": "Ready", "status": "False", "lastTransitionTime": stamp(started)})
    if ready is not None:
        conditions[-1] = {"type": "Ready", "status": "True", "lastTransitionTime": stamp(ready)}
    return {"metadata": {"name": name, "creationTimestamp": stamp(created)}, "spec": spec, "status": status}


def test_a_wake_is_split_into_scheduling_creating_and_loading() -> None:
    step = wakes.observe(None, was_idle=True, deployment=deployment(1), pods=[], at=at(0.25))
    assert step.started
    assert step.current is not None
    step = wakes.observe(
        step.current,
        was_idle=False,
        deployment=deployment(1),
        pods=[pod(created=0, unschedulable=True)],
        at=at(0.3),
    )
    assert step.current is not None
    assert step.current.unschedulable
    step = wakes.observe(
        step.current, was_idle=False, deployment=deployment(1), pods=[pod(created=0, bound=4)], at=at(4.5)
    )
    step = wakes.observe(
        step.current,
        was_idle=False,
        deployment=deployment(1),
        pods=[pod(created=0, bound=4, started=10)],
        at=at(10.75),
    )
    assert step.completed is None
    step = wakes.observe(
        step.current,
        was_idle=False,
        deployment=deployment(1),
        pods=[pod(created=0, bound=4, started=10, ready=40)],
        at=at(40.5),
    )
    assert step.current is None
    assert step.completed is not None
    wake = step.completed
    assert (wake.scheduling_seconds, wake.creating_seconds, wake.loading_seconds) == (4.25, 6.25, 29.75)
    assert wake.total_seconds == 40.25
    assert wake.unschedulable
    assert wake.pod == "backend-1"
    assert wakes.phase_seconds(wake) == {"scheduling": 4.25, "creating": 6.25, "loading": 29.75}


def test_a_new_service_leaving_its_first_replica_is_not_a_wake() -> None:
    # A new Deployment starts at one replica before any scale-to-zero: never seen at zero, so no wake.
    step = wakes.observe(None, was_idle=False, deployment=deployment(1), pods=[pod(created=0)], at=at(1))
    assert step.current is None
    assert not step.started


def test_a_pod_replaced_while_serving_is_not_a_wake() -> None:
    serving = [pod(created=0, bound=0, started=1, ready=5, name="old"), pod(created=60, name="new")]
    step = wakes.observe(None, was_idle=False, deployment=deployment(1), pods=serving, at=at(61))
    assert step.current is None
    assert step.completed is None


def test_going_back_to_zero_before_a_pod_was_ready_aborts_the_wake() -> None:
    step = wakes.observe(None, was_idle=True, deployment=deployment(1), pods=[], at=at(0))
    step = wakes.observe(step.current, was_idle=False, deployment=deployment(0), pods=[], at=at(300))
    assert step.aborted
    assert step.current is None
    assert step.completed is None


def test_boundaries_missed_during_an_operator_restart_come_from_the_pod() -> None:
    # The operator saw the wake start, restarted, and next looked when the pod was already ready.
    current = telemetry.Wake(started_at=timestamps.format_millis(at(0)))
    step = wakes.observe(
        current,
        was_idle=False,
        deployment=deployment(1),
        pods=[pod(created=0, bound=3, started=8, ready=30)],
        at=at(95),
    )
    assert step.completed is not None
    assert (step.completed.scheduling_seconds, step.completed.loading_seconds) == (3.0, 22.0)
    assert step.completed.total_seconds == 30.0


def test_history_keeps_the_last_twenty_totals_and_their_quantiles() -> None:
    history = None
    for total in range(1, 26):
        wake = telemetry.Wake(started_at=timestamps.format_millis(at(0)), total_seconds=float(total))
        history = wakes.remember(history, wake)
    assert history is not None
    assert history.count == 25
    assert history.recent_seconds == [float(v) for v in range(6, 26)]
    assert (history.p50_seconds, history.p90_seconds) == (15.0, 23.0)


def test_saved_is_time_at_zero_times_accelerators_per_replica() -> None:
    zero = accounting.rates_of(deployment=deployment(0, gpus=2), pods=[], waking=False)
    assert zero.at_zero
    assert zero.per_replica == {GPU: 2}
    assert zero.held == {}
    kept = accounting.advance(None, rates=zero, at=at(0))
    # Nothing changes for an hour: the status is not touched (no write while idle) ...
    assert accounting.advance(kept, rates=zero, at=at(3600)) is kept
    # ... and the live figure still grows.
    assert accounting.totals_at(kept, at(3600))[0].saved_seconds == 7200.0
    waking = accounting.rates_of(deployment=deployment(1), pods=[pod(created=3600, bound=3600)], waking=True)
    kept = accounting.advance(kept, rates=waking, at=at(3600))
    assert kept.resources[0].saved_seconds == 7200.0
    assert kept.saved_accelerator_hours == 2.0
    assert kept.resources[0].held == 2
    assert kept.waking
    assert not kept.at_zero


def test_allocated_splits_into_waking_and_serving_until_the_pod_is_gone() -> None:
    bound = [pod(created=0, bound=0)]
    kept = accounting.advance(
        None, rates=accounting.rates_of(deployment=deployment(1), pods=bound, waking=True), at=at(0)
    )
    kept = accounting.advance(
        kept, rates=accounting.rates_of(deployment=deployment(1), pods=bound, waking=False), at=at(30)
    )
    kept = accounting.advance(
        kept, rates=accounting.rates_of(deployment=deployment(0), pods=[], waking=False), at=at(630)
    )
    usage = kept.resources[0]
    assert (usage.waking_seconds, usage.serving_seconds, usage.saved_seconds) == (60.0, 1200.0, 0.0)
    assert kept.at_zero
    assert usage.held == 0
    assert kept.allocated_accelerator_hours == round(1260 / 3600, 2)


def test_time_held_inside_a_warm_window_is_counted_as_scheduled() -> None:
    bound = [pod(created=0, bound=0)]

    def rates(scheduled: bool) -> accounting.Rates:
        return accounting.rates_of(deployment=deployment(1), pods=bound, waking=False, scheduled=scheduled)

    kept = accounting.advance(None, rates=rates(True), at=at(0))
    assert kept.scheduled
    kept = accounting.advance(kept, rates=rates(False), at=at(1800))  # the window closed, demand keeps it
    kept = accounting.advance(
        kept, rates=accounting.rates_of(deployment=deployment(0), pods=[], waking=False), at=at(3600)
    )
    usage = kept.resources[0]
    assert (usage.serving_seconds, usage.scheduled_seconds) == (7200.0, 3600.0)
    assert (kept.allocated_accelerator_hours, kept.scheduled_accelerator_hours) == (2.0, 1.0)
    assert not kept.scheduled


def test_unbound_and_finished_pods_hold_nothing() -> None:
    finished = pod(created=0, bound=0)
    finished["status"]["phase"] = "Failed"
    rates = accounting.rates_of(deployment=deployment(1), pods=[pod(created=0), finished], waking=True)
    assert rates.held == {}
    assert not rates.at_zero


def test_only_extended_resources_count_as_accelerators() -> None:
    container = {
        "resources": {
            "limits": {"cpu": "8", "memory": "16Gi", "hugepages-2Mi": "1Gi", "huawei.com/Ascend910": "4"},
            "requests": {"huawei.com/Ascend910": "4"},
        }
    }
    assert accounting.accelerator_names(container) == {"huawei.com/Ascend910": 4}


def test_a_wake_starts_while_old_pods_still_drain_and_ignores_them() -> None:
    draining = pod(created=0, bound=0, started=1, ready=5, name="old")
    draining["metadata"]["deletionTimestamp"] = stamp(100)
    # Scaled to 0, the old pod still draining: idle (a request now waits) but not at zero (it holds).
    zero = accounting.rates_of(deployment=deployment(0), pods=[draining], waking=False)
    assert zero.idle
    assert not zero.at_zero
    assert zero.held == {GPU: 2}
    step = wakes.observe(None, was_idle=True, deployment=deployment(1), pods=[draining], at=at(101))
    assert step.started
    assert step.current is not None
    assert step.current.ready_at is None, "the draining pod's readiness is not this wake's"
    fresh = pod(created=101, bound=102, started=103, ready=110, name="new")
    step = wakes.observe(
        step.current, was_idle=False, deployment=deployment(1), pods=[draining, fresh], at=at(110.5)
    )
    assert step.completed is not None
    assert step.completed.pod == "new"
    assert step.completed.total_seconds == 9.5


def test_wake_series_exist_at_zero_before_the_first_wake_and_go_with_the_service() -> None:
    registry = prometheus_client.CollectorRegistry()
    tracker = wiring.Telemetry(
        None,  # type: ignore[arg-type]  # no client: its pod cache stays empty here
        registry=registry,
        enqueue=lambda _key: None,
        services=list,
        leading=lambda: True,
    )
    status: dict[str, Any] = {}
    tracker.update(status, name="qwen", namespace="ml", deployment=deployment(0), at=at(0))
    labels = {"namespace": "ml", "llmservice": "qwen"}
    assert registry.get_sample_value("hearth_wake_seconds_count", labels) == 0
    assert registry.get_sample_value("hearth_wake_phase_seconds_count", {**labels, "phase": "loading"}) == 0
    assert registry.get_sample_value("hearth_wakes_total", {**labels, "result": "completed"}) == 0
    assert status["accounting"]["idle"] is True
    tracker.forget("qwen", "ml")
    assert registry.get_sample_value("hearth_wake_seconds_count", labels) is None


def test_a_wake_is_counted_once_even_when_its_status_write_is_redone() -> None:
    registry = prometheus_client.CollectorRegistry()
    tracker = wiring.Telemetry(
        None,  # type: ignore[arg-type]  # no client: pods come from the stand-in below
        registry=registry,
        enqueue=lambda _key: None,
        services=list,
        leading=lambda: True,
    )
    serving = [pod(created=1, bound=2, started=3, ready=9)]
    tracker.backend_pods = lambda _name, _namespace: serving  # type: ignore[method-assign]
    waking = {
        "currentWake": telemetry.Wake(started_at=timestamps.format_millis(at(1))).to_wire(),
        "accounting": accounting.advance(
            None,
            rates=accounting.rates_of(deployment=deployment(1), pods=[], waking=True),
            at=at(1),
        ).to_wire(),
    }
    lost = dict(waking)  # the first write of this status hits a conflict ...
    assert tracker.update(lost, name="qwen", namespace="ml", deployment=deployment(1), at=at(9.5)) is not None
    written = dict(waking)  # ... so the next reconcile redoes it from the same old status
    outcome = tracker.update(written, name="qwen", namespace="ml", deployment=deployment(1), at=at(9.7))
    assert outcome is not None
    assert outcome.completed is not None
    tracker.record(outcome)
    labels = {"namespace": "ml", "llmservice": "qwen"}
    assert registry.get_sample_value("hearth_wake_seconds_count", labels) == 1
    assert registry.get_sample_value("hearth_wakes_total", {**labels, "result": "completed"}) == 1
    assert written["lastWake"]["totalSeconds"] == 8.7


def test_accounting_counters_never_go_back_when_a_status_lands_after_a_later_scrape() -> None:
    """A reconcile closes the totals at its observation time; a scrape between that moment and the status
    write extrapolated the old rates a little further. Exported as is, the next scrape would be lower, a
    counter reset to Prometheus, and rate() would count the whole total again (a spike in every panel)."""
    registry = prometheus_client.CollectorRegistry()
    now = [at(0)]
    service: dict[str, Any] = {"metadata": {"name": "qwen", "namespace": "ml"}, "status": {}}
    tracker = wiring.Telemetry(
        None,  # type: ignore[arg-type]  # no client: its pod cache stays empty here
        registry=registry,
        enqueue=lambda _key: None,
        services=lambda: [service],
        leading=lambda: True,
        clock=lambda: now[0],
    )
    labels = {"namespace": "ml", "llmservice": "qwen", "resource": GPU}
    saved = "hearth_accelerator_seconds_saved_total"
    tracker.update(service["status"], name="qwen", namespace="ml", deployment=deployment(0), at=at(0))
    now[0] = at(10)
    assert registry.get_sample_value(saved, labels) == 20.0  # 10 s at zero x 2 per replica
    observed = dict(service["status"])  # observed at 9.9 s (leaving zero), written after the scrape at 10 s
    tracker.update(observed, name="qwen", namespace="ml", deployment=deployment(1), at=at(9.9))
    service["status"] = observed
    now[0] = at(20)
    assert registry.get_sample_value(saved, labels) == 20.0
    # A drop bigger than that race's drift is a real reset (the totals cleared by hand), passed on as one
    # rather than held at the old value until the new totals catch up.
    service["status"] = observed = {}
    tracker.update(observed, name="qwen", namespace="ml", deployment=deployment(0), at=at(20))
    now[0] = at(70)
    assert registry.get_sample_value(saved, labels) == 100.0  # back at zero for 50 s
    service["status"] = cleared = {}
    tracker.update(cleared, name="qwen", namespace="ml", deployment=deployment(0), at=at(70))
    now[0] = at(71)
    assert registry.get_sample_value(saved, labels) == 2.0
    # Once the service is gone its series go, and a new one of the same name starts from its own totals.
    service["metadata"]["name"] = "other"
    registry.get_sample_value(saved, labels)
    service["metadata"]["name"] = "qwen"
    service["status"] = {}
    tracker.update(service["status"], name="qwen", namespace="ml", deployment=deployment(0), at=at(20))
    now[0] = at(21)
    assert registry.get_sample_value(saved, labels) == 2.0


def test_each_service_exports_the_engine_series_its_runtime_declares_or_its_family_has() -> None:
    """The dashboard's engine panels select series by these names, whatever the engine."""
    registry = prometheus_client.CollectorRegistry()

    def runtime(name: str, family: str, metrics: dict[str, str] | None) -> InferenceRuntime:
        spec: dict[str, Any] = {
            "family": family,
            "vendor": "generic",
            "container": {"image": "engine:1"},
            "accelerator": {"resourceName": "cpu"},
        }
        if metrics is not None:
            spec["metrics"] = metrics
        return InferenceRuntime.model_validate({"metadata": {"name": name}, "spec": spec})

    runtimes = {
        "llama": runtime("llama", "llamacpp", None),
        "custom": runtime("custom", "vllm", {"queueDepth": "my_waiting"}),
        "trt": runtime("trt", "trtllm", None),
    }
    services = [
        {"metadata": {"name": name, "namespace": "ml"}, "status": {"resolvedRuntime": resolved}}
        for name, resolved in (("a", "llama"), ("b", "custom"), ("c", "trt"), ("d", "gone"))
    ]
    wiring.Telemetry(
        None,  # type: ignore[arg-type]  # no client: no pods are read here
        registry=registry,
        enqueue=lambda _key: None,
        services=lambda: services,
        leading=lambda: True,
        runtimes=lambda: runtimes,
    )
    series = {
        (sample.labels["llmservice"], sample.labels["role"], sample.labels["metric"])
        for metric in registry.collect()
        if metric.name == wiring.ENGINE_METRIC_INFO
        for sample in metric.samples
    }
    assert series == {
        ("a", "waiting", "llamacpp:requests_deferred"),
        ("a", "running", "llamacpp:requests_processing"),
        # Declared: its own names; the dashboard-only roles it leaves out are its family's (never running,
        # which the drain waits on).
        ("b", "waiting", "my_waiting"),
        ("b", "kv_usage", "vllm:kv_cache_usage_perc"),
        ("b", "ttft", "vllm:time_to_first_token_seconds"),
    }
