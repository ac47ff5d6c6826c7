"""Issue 31 in ``hearth operator`` against a real kube-apiserver: a warm window in status, kubectl and the
built-in autoscaler's floor; the Fallback condition, its Events, and the gateway it renders."""

from __future__ import annotations

from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import get_json, wait_for
from tests.operator.test_operator_cluster import (
    StartOperator,
    events_of,
    namespace,
    runtime,
    service_yaml,
    status_of,
)

__all__ = ["namespace", "runtime"]  # fixtures


def _condition(plane: ControlPlane, ns: str, name: str, kind: str) -> dict[str, Any] | None:
    for condition in status_of(plane, ns, name).get("conditions") or []:
        if condition["type"] == kind:
            return dict(condition)
    return None


def _gateway_env(plane: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    deployment = get_json(plane, "deployment", f"{name}-gateway", "-n", ns) or {}
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in containers[0].get("env") or []}


def test_an_open_window_shows_in_status_and_keeps_the_backend_warm(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    # Opens every minute and closes once a year: open now, whatever the time.
    window = """  scaling:
    schedules: [{name: always, start: "* * * * *", end: "0 0 1 1 *", minReplicas: 1}]
"""
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("windowed", namespace, runtime, window))
    shown = wait_for(
        lambda: status_of(hearth_cluster, namespace, "windowed").get("warmWindow"), what="status.warmWindow"
    )
    assert shown["name"] == "always"
    assert shown["state"] == "Open"
    assert shown["minReplicas"] == 1
    wide = hearth_cluster.kubectl("get", "llms", "windowed", "-n", namespace, "-o", "wide").stdout
    assert "always" in wide.splitlines()[1]
    # Scaled to 0 behind its back inside the window: the autoscaler brings it back, naming the window.
    hearth_cluster.kubectl("scale", "deployment", "windowed", "-n", namespace, "--replicas=0")
    reason = wait_for(
        lambda: (
            "warm window" in str(status_of(hearth_cluster, namespace, "windowed").get("lastScaleReason"))
            and status_of(hearth_cluster, namespace, "windowed")["lastScaleReason"]
        ),
        what="a scale by the window",
    )
    assert "warm window always keeps 1 warm" in reason
    deployment = get_json(hearth_cluster, "deployment", "windowed", "-n", namespace) or {}
    assert deployment["spec"]["replicas"] == 1


def test_a_missing_fallback_is_a_condition_and_is_not_rendered_until_it_exists(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    fallback = """  endpoint:
    fallback: {service: small}
"""
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("big", namespace, runtime, fallback))
    refused = wait_for(
        lambda: _condition(hearth_cluster, namespace, "big", "Fallback"), what="the Fallback condition"
    )
    assert (refused["status"], refused["reason"]) == ("False", "FallbackMissing")
    assert "small does not exist" in refused["message"]
    wait_for(lambda: _gateway_env(hearth_cluster, namespace, "big"), what="the gateway")
    assert "HEARTH_FALLBACK_BASE_URL" not in _gateway_env(hearth_cluster, namespace, "big")
    warning = wait_for(
        lambda: [e for e in events_of(hearth_cluster, namespace, "big") if e["reason"] == "FallbackMissing"],
        what="a FallbackMissing Event",
    )
    assert warning[0]["type"] == "Warning"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("small", namespace, runtime))
    # A change of big itself (any) reconciles it again; a resync would too.
    hearth_cluster.kubectl("annotate", "llms", "big", "-n", namespace, "touched=1")
    usable = wait_for(
        lambda: (
            (c := _condition(hearth_cluster, namespace, "big", "Fallback")) and c["status"] == "True" and c
        ),
        what="the fallback accepted",
    )
    assert usable["reason"] == "ServiceFallback"
    env = wait_for(
        lambda: (e := _gateway_env(hearth_cluster, namespace, "big")).get("HEARTH_FALLBACK_BASE_URL") and e,
        what="the fallback rendered into the gateway",
    )
    assert env["HEARTH_FALLBACK_BASE_URL"] == f"http://small.{namespace}.svc/v1"
    assert env["HEARTH_FALLBACK_MODEL"] == "small"


def test_an_external_fallback_records_that_prompts_leave_the_cluster(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    fallback = """  endpoint:
    fallback: {url: "https://api.example.com/v1", model: small, apiKeySecret: {name: fallback-key}}
"""
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("outward", namespace, runtime, fallback))
    event = wait_for(
        lambda: [
            e for e in events_of(hearth_cluster, namespace, "outward") if e["reason"] == "ExternalFallback"
        ],
        what="an ExternalFallback Event",
    )
    assert "prompts leave the cluster" in event[0]["message"]
    assert "api.example.com" in event[0]["message"]
    env = wait_for(lambda: _gateway_env(hearth_cluster, namespace, "outward"), what="the gateway")
    assert env["HEARTH_FALLBACK_API_KEY"] == {
        "secretKeyRef": {"name": "fallback-key", "key": "apiKey", "optional": True}
    }
