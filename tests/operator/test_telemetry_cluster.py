"""Wake phases and accelerator accounting on a real apiserver + controller-manager: the test plays the
scheduler and the kubelet (binds the backend pod, reports its containers running and Ready) and restarts
the operator in the middle of the wake; the status must carry everything across."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import OperatorProcess, get_json, wait_for
from tests.operator.test_operator_cluster import events_of, runtime_yaml, service_yaml, status_of

StartOperator = Callable[..., OperatorProcess]
RESOURCE = "hearth.dev/fake-accelerator"


@pytest.fixture
def namespace(hearth_cluster: ControlPlane) -> Iterator[str]:
    name = f"tel-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("create", "namespace", name)
    yield name
    hearth_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def runtime(hearth_cluster: ControlPlane) -> Iterator[str]:
    name = f"rt-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(name))
    yield name
    hearth_cluster.kubectl("delete", "inferenceruntime", name, "--ignore-not-found", check=False)


@pytest.fixture
def node(hearth_cluster: ControlPlane) -> Iterator[str]:
    """A Node object for the binding (no kubelet behind it; the test reports pod status itself)."""
    name = f"node-{uuid.uuid4().hex[:6]}"
    hearth_cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    )
    yield name
    hearth_cluster.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)


def backend_pods(plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    listing = get_json(
        plane,
        "pods",
        "-n",
        namespace,
        "-l",
        f"serving.hearth.dev/llmservice={name},!serving.hearth.dev/gateway",
    )
    return [pod for pod in (listing or {}).get("items", []) if not pod["metadata"].get("deletionTimestamp")]


def rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def bind(plane: ControlPlane, namespace: str, pod: str, node: str) -> None:
    """Play the scheduler: bind *pod* to *node*."""
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    plane.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods/{pod}/binding",
        "-f",
        "-",
        stdin=json.dumps(binding),
    )


def bind_and_report_ready(plane: ControlPlane, namespace: str, pod: str, node: str) -> None:
    bind(plane, namespace, pod, node)
    now = rfc3339(datetime.datetime.now(tz=datetime.UTC))
    status = {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": "vllm",
                    "image": "hearth.dev/vllm-stub:e2e",
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
            ],
        }
    }
    plane.kubectl(
        "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )


def test_wake_phases_and_accounting_survive_an_operator_restart_mid_wake(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str, node: str
) -> None:
    hearth_cluster.kubectl(
        "apply", "-f", "-", stdin=service_yaml("tel", namespace, runtime, "  resources: {accelerators: 2}\n")
    )
    operator = start_operator("--scaler-mode=builtin", name="first")
    wait_for(
        lambda: get_json(hearth_cluster, "deployment", "tel", "-n", namespace), what="backend Deployment"
    )
    # The new Deployment's first replica (before anything scaled it down) is not a wake.
    hearth_cluster.kubectl("scale", "deployment", "tel", "-n", namespace, "--replicas=0")
    zero = wait_for(
        lambda: (status_of(hearth_cluster, namespace, "tel").get("accounting") or {}).get("atZero"),
        what="the backend at zero",
    )
    assert zero is True
    assert "currentWake" not in status_of(hearth_cluster, namespace, "tel")
    time.sleep(2)  # real time at zero, to be saved (2 accelerators per replica)

    hearth_cluster.kubectl("scale", "deployment", "tel", "-n", namespace, "--replicas=1")
    waking = wait_for(
        lambda: status_of(hearth_cluster, namespace, "tel").get("currentWake"), what="the wake to start"
    )
    accounted = status_of(hearth_cluster, namespace, "tel")["accounting"]
    saved = accounted["resources"][0]
    assert saved["resourceName"] == RESOURCE
    assert saved["perReplica"] == 2
    assert saved["savedSeconds"] >= 4.0  # >= 2 s at zero x 2 accelerators
    assert not accounted["atZero"]
    assert accounted["waking"]

    operator.stop()
    pod = wait_for(lambda: backend_pods(hearth_cluster, namespace, "tel"), what="the backend pod")[0]
    bind_and_report_ready(hearth_cluster, namespace, pod["metadata"]["name"], node)
    restarted = start_operator("--scaler-mode=builtin", name="second")

    wake = wait_for(
        lambda: status_of(hearth_cluster, namespace, "tel").get("lastWake"), what="the wake to complete"
    )
    final = status_of(hearth_cluster, namespace, "tel")
    assert wake["startedAt"] == waking["startedAt"]  # measured from before the restart
    assert wake["pod"] == pod["metadata"]["name"]
    assert {"schedulingSeconds", "creatingSeconds", "loadingSeconds", "totalSeconds"} <= set(wake)
    assert wake["totalSeconds"] >= wake["schedulingSeconds"] >= 0
    assert "currentWake" not in final
    assert final["wakeHistory"]["count"] == 1
    assert final["wakeHistory"]["p90Seconds"] == wake["totalSeconds"]
    usage = final["accounting"]["resources"][0]
    assert usage["savedSeconds"] == saved["savedSeconds"]  # not lost, and nothing saved while awake
    assert usage["held"] == 2
    assert not final["accounting"]["waking"]

    metrics = restarted.metrics()
    service = {"namespace": namespace, "llmservice": "tel"}
    saved_now = sample(metrics, "hearth_accelerator_seconds_saved_total", **service, resource=RESOURCE)
    assert saved_now == pytest.approx(saved["savedSeconds"])
    assert (
        sample(metrics, "hearth_accelerator_seconds_total", **service, resource=RESOURCE, state="serving")
        >= 0
    )
    assert sample(metrics, "hearth_wakes_total", **service, result="completed") == 1
    assert sample(metrics, "hearth_wake_phase_seconds_count", **service, phase="loading") == 1


def sample(metrics: dict[str, float], name: str, **labels: str) -> float:
    """The value of the series *name* with exactly *labels* (in any order)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for key, value in metrics.items():
        series, _, rest = key.partition("{")
        if series == name and set(rest.rstrip("}").split(",")) == wanted:
            return value
    raise AssertionError(f"no {name}{labels} among {sorted(k for k in metrics if k.startswith(name))}")


def report_waiting(
    plane: ControlPlane, namespace: str, pod: str, node: str, *, reason: str, message: str
) -> None:
    """Play the kubelet of a pod whose container cannot start: bound, the container waiting for *reason*."""
    bind(plane, namespace, pod, node)
    now = rfc3339(datetime.datetime.now(tz=datetime.UTC))
    status = {
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [
                {
                    "name": "vllm",
                    "image": "hearth.dev/missing:e2e",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            ],
        }
    }
    plane.kubectl(
        "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )


def test_a_wake_that_cannot_succeed_is_recorded_at_once_and_cleared_by_a_fixed_runtime(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str, node: str
) -> None:
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("broken", namespace, runtime))
    operator = start_operator("--scaler-mode=builtin", name="failures")
    pod = wait_for(lambda: backend_pods(hearth_cluster, namespace, "broken"), what="the backend pod")[0]
    message = 'Container image "hearth.dev/missing:e2e" is not present with pull policy of Never'
    report_waiting(
        hearth_cluster, namespace, pod["metadata"]["name"], node, reason="ErrImageNeverPull", message=message
    )

    failure = wait_for(
        lambda: status_of(hearth_cluster, namespace, "broken").get("wakeFailure"), what="the wake failure"
    )
    assert failure["reason"] == "ImagePullFailed"
    assert message in failure["message"]
    assert failure["pod"] == pod["metadata"]["name"]
    assert failure["attempts"] == 1
    current = status_of(hearth_cluster, namespace, "broken")
    assert current["phase"] == "Degraded"
    ready = next(c for c in current["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ImagePullFailed")
    wait_for(
        lambda: [
            e for e in events_of(hearth_cluster, namespace, "broken") if e["reason"] == "ImagePullFailed"
        ],
        what="a Warning Event naming the reason",
    )
    service = {"namespace": namespace, "llmservice": "broken"}
    assert sample(operator.metrics(), "hearth_wake_failures_total", **service, reason="ImagePullFailed") == 1

    # The admin fixes the runtime: the new pod template ends the refusals without waiting for retryAt, though
    # the rolling update keeps the failing pod until its successor is ready.
    hearth_cluster.kubectl(
        "apply", "-f", "-", stdin=runtime_yaml(runtime, image="hearth.dev/vllm-stub:fixed")
    )
    superseded = wait_for(
        lambda: (
            (status_of(hearth_cluster, namespace, "broken").get("wakeFailure") or {}).get("attempts") == 0
        ),
        what="the failure superseded by the new template",
    )
    assert superseded
    assert status_of(hearth_cluster, namespace, "broken")["phase"] != "Degraded"
    successor = wait_for(
        lambda: [
            p
            for p in backend_pods(hearth_cluster, namespace, "broken")
            if p["metadata"]["name"] != pod["metadata"]["name"]
        ],
        what="the new template's pod",
    )[0]
    assert any(
        p["metadata"]["name"] == pod["metadata"]["name"]
        for p in backend_pods(hearth_cluster, namespace, "broken")
    )
    bind_and_report_ready(hearth_cluster, namespace, successor["metadata"]["name"], node)
    wait_for(
        lambda: "wakeFailure" not in status_of(hearth_cluster, namespace, "broken"),
        what="the failure cleared by a ready pod",
    )
    assert sample(operator.metrics(), "hearth_wake_failures_total", **service, reason="ImagePullFailed") == 1


def record_kubelet_warning(
    plane: ControlPlane, namespace: str, pod: dict[str, Any], *, reason: str, message: str
) -> None:
    """Play the kubelet recording a Warning Event about the pod's container, as it does the moment an image
    cannot be pulled (its status names that only at the pod worker's next sync, 10-15 s later)."""
    now = rfc3339(datetime.datetime.now(tz=datetime.UTC))
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod['metadata']['name']}.{uuid.uuid4().hex[:8]}", "namespace": namespace},
        "involvedObject": {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": namespace,
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"],
            "fieldPath": "spec.containers{vllm}",
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "source": {"component": "kubelet"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    plane.kubectl("create", "-f", "-", stdin=json.dumps(event))


def test_an_image_that_cannot_be_pulled_is_recorded_from_the_kubelets_event_before_the_pod_status_says_so(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str, node: str
) -> None:
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("unpulled", namespace, runtime))
    start_operator("--scaler-mode=builtin", name="pull-events")
    pod = wait_for(lambda: backend_pods(hearth_cluster, namespace, "unpulled"), what="the backend pod")[0]
    # The container is still being created as far as the pod's status goes.
    report_waiting(
        hearth_cluster, namespace, pod["metadata"]["name"], node, reason="ContainerCreating", message=""
    )
    message = 'Container image "hearth.dev/missing:e2e" is not present with pull policy of Never'
    record_kubelet_warning(hearth_cluster, namespace, pod, reason="ErrImageNeverPull", message=message)

    failure = wait_for(
        lambda: status_of(hearth_cluster, namespace, "unpulled").get("wakeFailure"), what="the wake failure"
    )
    assert failure["reason"] == "ImagePullFailed"
    assert message in failure["message"]
    assert "container vllm" in failure["message"]
    assert failure["pod"] == pod["metadata"]["name"]
