"""Wakes that cannot succeed: diagnosed from what the kubelet and the Deployment controller write, and the
``status.wakeFailure`` record's life (new, kept, retried with backoff, cleared)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from hearth.api import wakereasons
from hearth.api.wakefailure import Reason, WakeFailure
from hearth.common import timestamps
from hearth.operator.reconcile import status
from hearth.operator.telemetry import wakefailures

AT = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.UTC)


def _pod(
    *, waiting: str | None = None, message: str = "", last: str | None = None, **extra: Any
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "engine", "state": {}, "lastState": {}}
    if waiting is not None:
        container["state"] = {"waiting": {"reason": waiting, "message": message}}
    if last is not None:
        container["lastState"] = {"terminated": {"reason": last, "exitCode": 137}}
    return {
        "metadata": {"name": "qwen-abc"},
        "spec": {"nodeName": "node"},
        "status": {"phase": "Pending", "containerStatuses": [container], **extra},
    }


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        ("ErrImagePull", Reason.IMAGE_PULL_FAILED),
        ("ImagePullBackOff", Reason.IMAGE_PULL_FAILED),
        ("ErrImageNeverPull", Reason.IMAGE_PULL_FAILED),
        ("InvalidImageName", Reason.IMAGE_PULL_FAILED),
        ("CrashLoopBackOff", Reason.CRASH_LOOP_BACK_OFF),
        ("CreateContainerConfigError", Reason.CONTAINER_CONFIG_ERROR),
    ],
)
def test_the_kubelets_waiting_reasons_name_the_failure(waiting: str, reason: Reason) -> None:
    found = wakefailures.diagnose(None, [_pod(waiting=waiting, message='image "x" not present')], at=AT)
    assert found is not None
    assert found.reason is reason
    assert found.pod == "qwen-abc"
    assert waiting in found.message
    assert 'image "x" not present' in found.message


def test_a_failed_model_fetch_is_named_by_its_own_error_not_the_crash_loop() -> None:
    """The init step's log tail (FallbackToLogsOnError) says why: the condition and Event carry it."""
    said = (
        'level=info msg="fetching"\nhearth fetch: oci://reg/m@sha256:ab: GET http://reg/v2/m/manifests/sha256:ab:'
        " 401 UNAUTHORIZED: authentication required (wrong credentials in the source's Secret)\n"
    )
    fetch = {
        "name": "hearth-fetch",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
        "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "message": said}},
    }
    found = wakefailures.diagnose(None, [_pod(initContainerStatuses=[fetch])], at=AT)
    assert found is not None
    assert found.reason is Reason.MODEL_FETCH_FAILED
    assert found.message.startswith("pod qwen-abc: model fetch failed: oci://reg/m@sha256:ab: GET")
    assert "wrong credentials in the source's Secret" in found.message
    assert wakereasons.client_code(found.reason) == "model_fetch_failed"
    # Running again, or done: no failure of its own.
    fetch["lastState"] = {"terminated": {"reason": "Completed", "exitCode": 0}}
    fetch["state"] = {"running": {}}
    assert wakefailures.diagnose(None, [_pod(initContainerStatuses=[fetch])], at=AT) is None


def test_waits_that_pass_are_no_failure() -> None:
    assert wakefailures.diagnose(None, [_pod(waiting="ContainerCreating")], at=AT) is None
    assert wakefailures.diagnose(None, [_pod()], at=AT) is None


def test_an_oom_kill_is_named_before_the_crash_loop_it_causes() -> None:
    found = wakefailures.diagnose(None, [_pod(waiting="CrashLoopBackOff", last="OOMKilled")], at=AT)
    assert found is not None
    assert found.reason is Reason.OOM_KILLED
    assert "memory limit" in found.message


def test_a_terminating_pod_says_nothing_about_the_wake() -> None:
    leaving = _pod(waiting="CrashLoopBackOff")
    leaving["metadata"]["deletionTimestamp"] = "2026-12-06T11:59:00Z"
    assert wakefailures.diagnose(None, [leaving], at=AT) is None


def test_unschedulable_counts_only_after_the_patience() -> None:
    def pending(for_s: float) -> dict[str, Any]:
        since = (AT - datetime.timedelta(seconds=for_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            "lastTransitionTime": since,
        }
        pod = _pod(conditions=[condition])
        pod["spec"] = {}
        return pod

    assert wakefailures.diagnose(None, [pending(wakefailures.SCHEDULING_PATIENCE_S - 5)], at=AT) is None
    found = wakefailures.diagnose(None, [pending(wakefailures.SCHEDULING_PATIENCE_S + 5)], at=AT)
    assert found is not None
    assert found.reason is Reason.SCHEDULING_DELAYED
    assert "Insufficient nvidia.com/gpu" in found.message


def test_a_deployment_past_its_progress_deadline() -> None:
    deployment = {
        "status": {
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "m",
                }
            ]
        }
    }
    found = wakefailures.diagnose(deployment, [], at=AT)
    assert found is not None
    assert found.reason is Reason.PROGRESS_DEADLINE_EXCEEDED


def test_long_messages_are_clipped() -> None:
    found = wakefailures.diagnose(None, [_pod(waiting="ErrImagePull", message="x" * 5000)], at=AT)
    assert found is not None
    assert len(found.message) == wakefailures.MESSAGE_CHARS


DETECTED = wakefailures.Detected(Reason.IMAGE_PULL_FAILED, "pod p: ErrImagePull: nope", "p")


def _advance(
    recorded: WakeFailure | None, *, at: datetime.datetime = AT, **changes: Any
) -> WakeFailure | None:
    options: dict[str, Any] = {"ready": False, "template": "t1", "at": at, **changes}
    detected = options.pop("detected", DETECTED)
    return wakefailures.advance(recorded, detected, **options)


def test_a_failure_is_recorded_with_a_retry_time_and_kept_while_it_refuses() -> None:
    first = _advance(None)
    assert first is not None
    assert (first.reason, first.attempts, first.pod, first.template) == ("ImagePullFailed", 1, "p", "t1")
    assert first.since == "2026-12-06T12:00:00.000Z"
    assert first.retry_at == "2026-12-06T12:00:30.000Z"
    later = AT + datetime.timedelta(seconds=10)
    assert _advance(first, at=later) == first, "the same failed wake: nothing new to tell"
    assert wakefailures.active(first, at=later)
    assert not wakefailures.active(first, at=AT + datetime.timedelta(seconds=30))


def test_failing_again_after_the_retry_time_doubles_the_wait_up_to_five_minutes() -> None:
    failure = _advance(None)
    waits = []
    for _ in range(6):
        assert failure is not None
        at = timestamps.parse(failure.retry_at)
        assert at is not None
        failure = _advance(failure, at=at)
        assert failure is not None
        retry = timestamps.parse(failure.retry_at)
        assert retry is not None
        waits.append((retry - at).total_seconds())
    assert waits == [60, 120, 240, 300, 300, 300]
    assert failure is not None
    assert failure.attempts == 7


def test_a_ready_pod_clears_the_failure_and_nothing_else_does() -> None:
    failure = _advance(None)
    assert _advance(failure, ready=True) is None
    assert _advance(failure, detected=None) == failure, "kept for its backoff while nothing shows"


def test_a_new_template_ends_the_refusals_and_leaves_the_old_templates_pods_out() -> None:
    failure = _advance(None)
    fixed_at = AT + datetime.timedelta(seconds=10)
    assert wakefailures.superseded(failure, template="t1", at=fixed_at) == failure
    superseded = wakefailures.superseded(failure, template="t2", at=fixed_at)
    assert superseded is not None
    assert (superseded.attempts, superseded.template) == (0, "t2")
    assert superseded.stale_before == "2026-12-06T12:00:10.000Z"
    assert not wakefailures.active(superseded, at=fixed_at)

    # The rolling update keeps the old pod (still failing) beside its successor.
    old = _pod(waiting="ErrImageNeverPull")
    old["metadata"]["creationTimestamp"] = "2026-12-06T11:59:50Z"
    new = _pod(waiting="ContainerCreating")
    new["metadata"] = {"name": "qwen-new", "creationTimestamp": "2026-12-06T12:00:10Z"}
    stale_before = timestamps.parse(superseded.stale_before)
    assert wakefailures.diagnose(None, [old, new], at=fixed_at, stale_before=stale_before) is None
    assert _advance(superseded, detected=None, template="t2") == superseded

    # The new template fails on its own: a new failure, counted from one again, still skipping the old pod.
    crashing = _pod(waiting="CrashLoopBackOff")
    crashing["metadata"] = {"name": "qwen-new", "creationTimestamp": "2026-12-06T12:00:10Z"}
    found = wakefailures.diagnose(None, [old, crashing], at=fixed_at, stale_before=stale_before)
    assert found is not None
    assert found.reason is Reason.CRASH_LOOP_BACK_OFF
    again = _advance(superseded, detected=found, template="t2", at=fixed_at)
    assert again is not None
    assert (again.attempts, again.stale_before, again.since) == (
        1,
        superseded.stale_before,
        superseded.stale_before,
    )


def test_the_status_shows_an_active_failure_as_degraded_with_its_reason() -> None:
    failure = _advance(None)
    assert failure is not None
    result: dict[str, Any] = {
        "phase": "Loading",
        "observedGeneration": 3,
        "wakeFailure": failure.to_wire(),
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Deploying", "message": "m"},
            {"type": "Scaling", "status": "True", "reason": "KEDA", "message": "m"},
            {"type": "Degraded", "status": "False", "reason": "Progressing", "message": "m"},
        ],
    }
    assert status.show_wake_failure(result, at=AT + datetime.timedelta(seconds=10)) == 20.0
    assert result["phase"] == "Degraded"
    ready, scaling, degraded = result["conditions"]
    assert (ready["reason"], ready["message"]) == ("ImagePullFailed", "pod p: ErrImagePull: nope")
    assert scaling["reason"] == "KEDA", "the other conditions are kept, in place"
    # The reference v0.4's Degraded condition, with the same reason (one vocabulary: wakereasons.Reason).
    assert (degraded["status"], degraded["reason"]) == ("True", "ImagePullFailed")
    assert degraded["message"] == "pod p: ErrImagePull: nope"
    assert degraded["reason"] in set(Reason)
    expired: dict[str, Any] = {"phase": "ScaledToZero", "wakeFailure": failure.to_wire(), "conditions": []}
    assert status.show_wake_failure(expired, at=AT + datetime.timedelta(seconds=31)) is None
    assert expired["phase"] == "ScaledToZero"


def test_client_codes_are_snake_case_even_for_reasons_this_version_does_not_know() -> None:
    assert [reason.code for reason in Reason] == [
        "image_pull_failed",
        "oom_killed",
        "crash_loop_back_off",
        "container_config_error",
        "scheduling_delayed",
        "progress_deadline_exceeded",
        "model_fetch_failed",
    ]
    assert wakereasons.client_code("GPUFellOff") == "gpu_fell_off"


def _warning(reason: str, message: str, *, container: str = "engine") -> dict[str, Any]:
    return {
        "involvedObject": {"uid": "uid-1", "fieldPath": f"spec.containers{{{container}}}"},
        "reason": reason,
        "message": message,
    }


@pytest.mark.parametrize(
    ("reason", "message", "named"),
    [
        (
            "ErrImageNeverPull",
            'Container image "x" is not present with pull policy of Never',
            Reason.IMAGE_PULL_FAILED,
        ),
        ("Failed", 'Failed to pull image "x": not found', Reason.IMAGE_PULL_FAILED),
        ("Failed", "Error: ErrImagePull", Reason.IMAGE_PULL_FAILED),
        ("InspectFailed", 'Failed to apply default image tag "X": invalid', Reason.IMAGE_PULL_FAILED),
        ("Failed", 'Error: secret "keys" not found', Reason.CONTAINER_CONFIG_ERROR),
        ("BackOff", "Back-off restarting failed container", None),
        ("FailedMount", "MountVolume.SetUp failed", None),
    ],
)
def test_the_kubelets_warning_events_name_a_container_it_cannot_create(
    reason: str, message: str, named: Reason | None
) -> None:
    assert wakefailures.event_failure(_warning(reason, message)) is named


def _creating_pod(*, running: bool = False) -> dict[str, Any]:
    pod = _pod(waiting=None if running else "ContainerCreating")
    pod["metadata"]["uid"] = "uid-1"
    if running:
        pod["status"]["containerStatuses"][0]["state"] = {"running": {"startedAt": "2026-12-06T12:00:00Z"}}
    return pod


def test_a_warning_event_names_the_failure_before_the_pods_status_does() -> None:
    warnings = {"uid-1": [_warning("ErrImageNeverPull", 'image "x" is not present')]}
    found = wakefailures.diagnose(None, [_creating_pod()], at=AT, warnings=warnings)
    assert found is not None
    assert found.reason is Reason.IMAGE_PULL_FAILED
    assert found.pod == "qwen-abc"
    assert "container engine: ErrImageNeverPull" in found.message


def test_a_warning_about_a_container_that_started_since_is_past() -> None:
    """A pull that failed once and then succeeded: the Event stays for an hour, the container runs."""
    warnings = {"uid-1": [_warning("Failed", 'Failed to pull image "x": timeout')]}
    assert wakefailures.diagnose(None, [_creating_pod(running=True)], at=AT, warnings=warnings) is None
    other_pod = {"uid-2": warnings["uid-1"]}
    assert wakefailures.diagnose(None, [_creating_pod()], at=AT, warnings=other_pod) is None
