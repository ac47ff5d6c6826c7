"""Unit tests of the operator's pure parts: work queue, status computation, drift detection."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from hearth.api import wakereasons
from hearth.api.llmservice import Scaling
from hearth.api.scalermodes import ScalerMode
from hearth.operator.reconcile import drift, status
from hearth.operator.reconcile.workqueue import WorkQueue
from hearth.operator.settings import OperatorSettings
from hearth.render.errors import Reason, ReconcileError


async def test_queue_deduplicates_and_never_hands_out_a_key_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert len(queue) == 2
    first = await queue.get()
    queue.add(first)  # changed while being processed: must run again, but only after done()
    second = await queue.get()
    assert {first, second} == {"a", "b"}
    assert len(queue) == 0
    queue.done(first)
    assert await asyncio.wait_for(queue.get(), 1) == first


@pytest.mark.looptime
async def test_retry_backs_off_exponentially_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(base_delay=0.5, max_delay=2.5)
    delays = [queue.retry("k") for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 2.5, 2.5]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(queue.get(), 1) == "k"
    assert loop.time() - started == pytest.approx(0.5), "re-queued after the first back-off (fake time)"
    queue.done("k")
    queue.forget("k")
    assert queue.retry("k") == 0.5


@pytest.mark.parametrize(
    ("deployment", "minimum", "phase"),
    [
        ({"status": {"readyReplicas": 1, "replicas": 2}}, 0, "Ready"),
        ({"status": {"replicas": 1}}, 0, "Loading"),
        ({"status": {}}, 0, "ScaledToZero"),
        (None, 0, "ScaledToZero"),
        ({"status": {}}, 1, "Pending"),
    ],
)
def test_phase_precedence(deployment: dict[str, Any] | None, minimum: int, phase: str) -> None:
    assert status.phase_of(deployment, min_replicas=minimum)[0] == phase


SERVICE = {"metadata": {"name": "q", "namespace": "ml", "generation": 3}, "spec": {"scaling": {"min": 0}}}
SCALING = Scaling.model_validate(SERVICE["spec"]["scaling"])


def test_ready_status_has_the_spec_fields_and_extra_conditions() -> None:
    result = status.desired(
        current={"desiredReplicas": 2},
        service=SERVICE,
        scaling=SCALING,
        runtime="vllm-stub",
        deployment={"status": {"readyReplicas": 2, "replicas": 2}},
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
    )
    assert result["phase"] == "Ready"
    assert result["replicas"] == 2
    assert result["endpointURL"] == "http://q.ml.svc/v1"
    assert result["observedGeneration"] == 3
    assert result["desiredReplicas"] == 2, "fields owned by the autoscaler are kept"
    kinds = {c["type"]: (c["status"], c["reason"]) for c in result["conditions"]}
    assert kinds == {
        "Ready": ("True", "Available"),
        "RuntimeResolved": ("True", "Resolved"),
        "ModelResolved": ("True", "Resolved"),
        "Scaling": ("True", "Builtin"),
        "Degraded": ("False", "Healthy"),
        "AutoscalingReady": ("True", "Builtin"),
    }
    assert {c["observedGeneration"] for c in result["conditions"]} == {3}


@pytest.mark.parametrize(
    ("deployment_status", "minimum", "reason"),
    [
        ({"readyReplicas": 1, "replicas": 1}, 0, "Healthy"),
        ({}, 0, "Inactive"),
        ({"replicas": 1}, 0, "Progressing"),
        ({}, 1, "Progressing"),
    ],
)
def test_degraded_is_false_with_the_references_reason_by_phase(
    deployment_status: dict[str, Any], minimum: int, reason: str
) -> None:
    result = status.desired(
        current={},
        service=SERVICE,
        scaling=Scaling.model_validate({"min": minimum, "max": 1}),
        runtime="vllm-stub",
        deployment={"status": deployment_status},
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
    )
    (degraded,) = [c for c in result["conditions"] if c["type"] == "Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("False", reason)
    assert reason in set(wakereasons.Health)


def test_autoscaling_ready_says_what_scaling_says_in_every_case() -> None:
    for mode, installed in ((ScalerMode.METRICS_API, True), (ScalerMode.METRICS_API, False)):
        result = status.desired(
            current={},
            service=SERVICE,
            scaling=SCALING,
            runtime="vllm-stub",
            deployment=None,
            scaler_mode=mode,
            keda_installed=installed,
            error=None,
        )
        kinds = {c["type"]: c for c in result["conditions"]}
        scaling, autoscaling = kinds["Scaling"], kinds["AutoscalingReady"]
        assert {**scaling, "type": "AutoscalingReady"} == autoscaling
        assert autoscaling["status"] == ("True" if installed else "False")


def test_degraded_keeps_previous_fields_and_names_the_step() -> None:
    current = {"phase": "Ready", "resolvedRuntime": "old", "replicas": 1}
    result = status.desired(
        current=current,
        service=SERVICE,
        scaling=SCALING,
        runtime=None,
        deployment=None,
        scaler_mode=ScalerMode.METRICS_API,
        keda_installed=False,
        error=ReconcileError(Reason.MODEL_RESOLUTION, "bad uri"),
    )
    assert (result["phase"], result["resolvedRuntime"], result["replicas"]) == ("Degraded", "old", 1)
    kinds = {c["type"]: (c["status"], c["reason"]) for c in result["conditions"]}
    assert kinds["Ready"] == ("False", "ModelResolution")
    assert kinds["ModelResolved"] == ("False", "ModelResolution")
    assert kinds["Scaling"] == ("False", "KEDANotInstalled")
    assert kinds["Degraded"] == ("True", "ModelResolution"), "the reconcile step's reason, as Ready's"
    assert kinds["AutoscalingReady"] == ("False", "KEDANotInstalled")


def _observe(current: dict[str, Any], deployment_status: dict[str, Any], at: float) -> dict[str, Any]:
    return status.desired(
        current=current,
        service=SERVICE,
        scaling=SCALING,
        runtime="vllm-stub",
        deployment={"status": deployment_status},
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
        at=datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC) + datetime.timedelta(seconds=at),
    )


def test_a_wake_from_zero_records_its_activation_and_cold_start_duration() -> None:
    created = _observe({}, {"replicas": 1}, at=0)
    ready = _observe(created, {"replicas": 1, "readyReplicas": 1}, at=9)
    assert "lastActivationTime" not in ready, "the first rollout is not a wake from zero"
    idle = _observe(ready, {}, at=100)
    assert idle["phase"] == "ScaledToZero"
    woken = _observe(idle, {"replicas": 1}, at=200)
    assert woken["lastActivationTime"] == "2026-11-23T12:03:20.000Z"
    assert "lastColdStartDuration" not in woken, "being measured"
    serving = _observe(woken, {"replicas": 1, "readyReplicas": 1}, at=207.4)
    assert serving["lastColdStartDuration"] == "7.4s"
    # A serving pod replaced later goes Loading -> Ready too; that is not another cold start.
    reloading = _observe(serving, {"replicas": 1}, at=300)
    replaced = _observe(reloading, {"replicas": 1, "readyReplicas": 1}, at=330)
    assert replaced["lastColdStartDuration"] == "7.4s"
    assert replaced["lastActivationTime"] == "2026-11-23T12:03:20.000Z"


def test_ready_straight_from_zero_updates_the_activation_but_invents_no_duration() -> None:
    before = {"phase": "ScaledToZero", "lastColdStartDuration": "6s"}
    after = _observe(before, {"replicas": 1, "readyReplicas": 1}, at=50)
    assert after["lastActivationTime"] == "2026-11-23T12:00:50.000Z"
    assert after["lastColdStartDuration"] == "6s"


def test_the_first_rollout_of_a_new_service_is_not_a_wake() -> None:
    # Issue 19: a new min=0 service reads ScaledToZero before its Deployment has pods (SPEC §2.7), and its
    # never-scaled Deployment (generation 1, replicas defaulted to 1) then goes Loading and Ready.
    def fresh(deployment_status: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"generation": 1}, "status": deployment_status}

    created = status.desired(
        current={},
        service=SERVICE,
        scaling=SCALING,
        runtime="vllm-stub",
        deployment=fresh({}),
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
    )
    assert created["phase"] == "ScaledToZero"
    loading = status.desired(
        current=created,
        service=SERVICE,
        scaling=SCALING,
        runtime="vllm-stub",
        deployment=fresh({"replicas": 1}),
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
    )
    assert loading["phase"] == "Loading"
    assert "lastActivationTime" not in loading, "nothing woke it: it was never at zero"
    ready = status.desired(
        current=created,
        service=SERVICE,
        scaling=SCALING,
        runtime="vllm-stub",
        deployment=fresh({"replicas": 1, "readyReplicas": 1}),
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
    )
    assert "lastActivationTime" not in ready


def _degraded(
    error: ReconcileError, *, runtime: str | None, mode: ScalerMode
) -> dict[str, tuple[str, str, str]]:
    result = status.desired(
        current={},
        service=SERVICE,
        scaling=SCALING,
        runtime=runtime,
        deployment=None,
        scaler_mode=mode,
        keda_installed=True,
        error=error,
    )
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in result["conditions"]}


def test_a_degraded_service_names_its_runtime_and_does_not_claim_to_be_scaled() -> None:
    kinds = _degraded(
        ReconcileError(Reason.MODEL_RESOLUTION, "bad uri"), runtime="vllm-stub", mode=ScalerMode.BUILTIN
    )
    assert kinds["RuntimeResolved"] == ("True", "Resolved", "using InferenceRuntime vllm-stub")
    assert kinds["Scaling"][0] != "True", "nothing is scaled while the service cannot be reconciled"
    assert kinds["Scaling"][1] == "ReconcileFailed"


def test_a_service_that_failed_before_runtime_selection_leaves_the_runtime_unknown() -> None:
    kinds = _degraded(
        ReconcileError(Reason.RENDER, "invalid LLMService: spec.x"), runtime=None, mode=ScalerMode.METRICS_API
    )
    assert kinds["RuntimeResolved"][0] == "Unknown"
    assert "using InferenceRuntime" not in kinds["RuntimeResolved"][2]
    assert kinds["ModelResolved"][0] == "Unknown"
    assert kinds["Scaling"][0] == "Unknown"


def test_a_failed_scaling_step_says_scaling_false_with_its_reason() -> None:
    kinds = _degraded(
        ReconcileError(Reason.SCALED_OBJECT, "metric kvCacheUtil is not supported"),
        runtime="vllm-stub",
        mode=ScalerMode.METRICS_API,
    )
    assert kinds["Scaling"] == ("False", "ScaledObject", "metric kvCacheUtil is not supported")


def test_transition_time_moves_only_when_status_flips() -> None:
    old = [
        {"type": "Ready", "status": "False", "reason": "Deploying", "message": "", "lastTransitionTime": "T0"}
    ]
    same = status.merge_conditions(
        old, [{"type": "Ready", "status": "False", "reason": "Pending", "message": "x"}]
    )
    assert same[0]["lastTransitionTime"] == "T0"
    flipped = status.merge_conditions(
        old, [{"type": "Ready", "status": "True", "reason": "Available", "message": ""}]
    )
    assert flipped[0]["lastTransitionTime"] != "T0"


def test_status_difference_ignores_absent_versus_none() -> None:
    assert not status.differs({"phase": "Ready"}, {"phase": "Ready", "resolvedRuntime": None})
    assert status.differs({"phase": "Ready"}, {"phase": "Loading"})


MANIFEST = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "q", "namespace": "ml", "labels": {"a": "b"}},
    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}], "selector": {"a": "b"}},
}


def _live(stamped: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: our fields plus defaults it fills in."""
    live = {**stamped, "metadata": {**stamped["metadata"], "uid": "u", "resourceVersion": "7"}}
    live["spec"] = {
        **stamped["spec"],
        "clusterIP": "10.96.0.10",
        "ports": [{**stamped["spec"]["ports"][0], "protocol": "TCP"}],
    }
    return live


def test_drift_accepts_server_defaults() -> None:
    stamped = drift.stamp(MANIFEST)
    assert drift.in_sync(stamped, _live(stamped))


def test_drift_detects_edits_removals_and_a_changed_desired_state() -> None:
    stamped = drift.stamp(MANIFEST)
    edited = _live(stamped)
    edited["spec"]["selector"] = {"a": "c"}
    assert not drift.in_sync(stamped, edited)
    assert not drift.in_sync(stamped, None)
    changed = drift.stamp({**MANIFEST, "spec": {**MANIFEST["spec"], "selector": {"x": "y"}}})
    assert not drift.in_sync(changed, _live(stamped)), "a new desired state (new hash) is applied"


@pytest.mark.parametrize(
    ("wanted", "live", "equal"),
    [("0.5", "500m", True), ("1Gi", "1073741824", True), ("2", 2, True), ("2", "3", False), (True, 1, False)],
)
def test_drift_compares_quantities_semantically(wanted: Any, live: Any, equal: bool) -> None:
    assert drift.contains(live, wanted) is equal


def test_scaler_choice_resolution_and_external_push_with_several_gateways() -> None:
    assert ScalerMode.AUTO.resolve(keda_installed=False) is ScalerMode.BUILTIN
    assert ScalerMode.AUTO.resolve(keda_installed=True) is ScalerMode.METRICS_API
    assert ScalerMode.EXTERNAL_PUSH.resolve(keda_installed=False) is ScalerMode.EXTERNAL_PUSH
    # Its replicas sum their peers' demand for KEDA (issue 27): no longer limited to one.
    assert OperatorSettings(scaler=ScalerMode.EXTERNAL_PUSH, gateway_replicas=2).gateway_replicas == 2


@pytest.mark.parametrize(
    ("mode", "keda", "expected"),
    [
        (ScalerMode.BUILTIN, False, ("True", "Builtin", "scaled by Hearth's built-in autoscaler")),
        (ScalerMode.BUILTIN, True, ("True", "Builtin", "scaled by Hearth's built-in autoscaler")),
        (ScalerMode.METRICS_API, True, ("True", "KEDA", "scaled by KEDA (metrics-api)")),
        (ScalerMode.EXTERNAL_PUSH, True, ("True", "KEDA", "scaled by KEDA (external-push)")),
        (
            ScalerMode.EXTERNAL_PUSH,
            False,
            ("False", "KEDANotInstalled", "scaler mode external-push needs KEDA, which is not installed"),
        ),
    ],
)
def test_scaling_condition_comes_from_the_mode_traits(
    mode: ScalerMode, keda: bool, expected: tuple[str, str, str]
) -> None:
    result = status.desired(
        current={},
        service=SERVICE,
        scaling=SCALING,
        runtime="vllm-stub",
        deployment=None,
        scaler_mode=mode,
        keda_installed=keda,
        error=None,
    )
    (scaling,) = [c for c in result["conditions"] if c["type"] == "Scaling"]
    assert (scaling["status"], scaling["reason"], scaling["message"]) == expected


def test_a_service_without_scaling_is_scaled_to_zero_by_the_api_default() -> None:
    """status reads the parsed spec: an omitted scaling block means the API's min 0, not a second default."""
    result = status.desired(
        current={},
        service={"metadata": {"name": "q", "namespace": "ml"}, "spec": {}},
        scaling=Scaling(),
        runtime="vllm-stub",
        deployment=None,
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
    )
    assert result["phase"] == "ScaledToZero"
    pending = status.desired(
        current={},
        service={"metadata": {"name": "q"}, "spec": {}},
        scaling=Scaling(min=1),
        runtime="vllm-stub",
        deployment=None,
        scaler_mode=ScalerMode.BUILTIN,
        keda_installed=False,
        error=None,
    )
    assert pending["phase"] == "Pending"
    assert pending["endpointURL"] == "http://q.default.svc/v1", "no namespace: the default one"


async def test_adding_a_key_starts_no_task() -> None:
    queue: WorkQueue[str] = WorkQueue()
    before = asyncio.all_tasks()
    queue.add("a")
    assert asyncio.all_tasks() == before, "nobody would hold it"
    assert await queue.get() == "a"
