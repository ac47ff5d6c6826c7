"""The KEDA ScaledObject: its metrics-api trigger reads every gateway replica, and its cooldown and HPA
scale-down window give ``scaleDownStabilization`` the meaning it has in builtin mode (issue 12)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.api.scalermodes import ScalerMode
from hearth.render import plan, scaledobject, scalers
from hearth.render.config import OperatorConfig
from tests.render.test_plan import RUNTIMES


def _service(stabilization: str = "15s") -> LLMService:
    document = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "qwen", "namespace": "ml", "uid": "0b5e7c1e-7b61-4b4b-9d4e-0a6f3c1d2e3f"},
        "spec": {
            "model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}},
            "runtime": {"name": "vllm-nvidia"},
            "scaling": {"min": 0, "max": 3, "target": 4, "scaleDownStabilization": stabilization},
        },
    }
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    return service


def _scaled_object(service: LLMService, mode: ScalerMode) -> dict[str, Any]:
    trigger = scalers.of(mode).trigger
    assert trigger is not None
    return scaledobject.manifest(service, trigger=trigger(service))


def _manifests(mode: ScalerMode, *, gateways: int = 2) -> dict[str, dict[str, Any]]:
    config = OperatorConfig(scaler_mode=mode, gateway_replicas=gateways)
    return {
        step.manifest["kind"]: step.manifest
        for step in plan.build(_service(), RUNTIMES, config).steps
        if step.manifest["kind"] in ("ScaledObject", "Deployment", "Service")
        and step.manifest["metadata"]["name"] in ("qwen", "qwen-gateway")
        and not (step.manifest["kind"] == "Deployment" and step.manifest["metadata"]["name"] == "qwen")
    }


def test_metrics_api_sums_the_demand_of_every_ready_gateway_pod() -> None:
    """KEDA keeps one connection per URL and kube-proxy balances per connection, so a Service URL reads
    one gateway pod for good; KEDA (>= 2.20) must list the Service's EndpointSlices and sum them all."""
    manifests = _manifests(ScalerMode.METRICS_API)
    (trigger,) = manifests["ScaledObject"]["spec"]["triggers"]
    metadata = trigger["metadata"]
    assert metadata["aggregateFromKubeServiceEndpoints"] == "true"
    assert metadata["aggregationType"] == "sum"
    # KEDA takes the Service name and namespace from the host's first two labels, and the port from the
    # URL, which it matches against the EndpointSlice ports: those carry the pod's port, not the Service's.
    host, _, rest = metadata["url"].removeprefix("http://").partition("/")
    service_name, namespace, *_ = host.split(".")
    assert (service_name, namespace) == ("qwen", "ml")
    assert manifests["Service"]["metadata"]["name"] == service_name
    port = int(host.rpartition(":")[2])
    (service_port,) = manifests["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == port, "the EndpointSlice port is the Service's targetPort"
    (container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
    assert "/" + rest == "/hearth/queue"
    assert metadata["valueLocation"] == "pending"


def test_metrics_api_aggregates_with_one_gateway_too() -> None:
    """A rollout briefly runs two gateway pods even with one replica; the trigger is the same."""
    one = _manifests(ScalerMode.METRICS_API, gateways=1)["ScaledObject"]["spec"]["triggers"]
    two = _manifests(ScalerMode.METRICS_API, gateways=2)["ScaledObject"]["spec"]["triggers"]
    assert one == two


# ---- scaleDownStabilization ------------------------------------------------------------------------
# A model of the two clocks that scale a KEDA-driven backend down, as KEDA 2.21 and Kubernetes 1.34 run
# them (references in scaledobject.py): KEDA's scale loop polls every pollingInterval and scales N -> 0
# once lastActiveTime (the last poll that saw demand, stored in whole seconds) + cooldownPeriod has
# passed; the HPA syncs every 15 s, records each recommendation with the time it was made, and scales
# down only to the highest recommendation made within the last stabilizationWindowSeconds.
# Demand is high until `drop` and 0 after; the phases of both loops are unknown, so all are tried.

STEP = 0.05


def _keda_scale_to_zero(*, drop: float, phase: float, cooldown: int) -> float:
    interval = scaledobject.POLLING_INTERVAL_SECONDS
    last_active = None
    poll = phase
    while True:
        if poll < drop:
            last_active = math.floor(poll)  # metav1.Time: RFC 3339, whole seconds
        elif last_active is not None and last_active + cooldown < poll:
            return poll
        poll += interval


def _hpa_first_scale_down(*, drop: float, phase: float, window: int) -> float:
    period = scaledobject.HPA_SYNC_PERIOD_SECONDS
    high_until = None
    sync = phase
    while True:
        if sync < drop:
            high_until = sync
        elif high_until is not None and not high_until > sync - window:
            return sync
        sync += period


def _phases(period: float) -> list[float]:
    return [i * STEP for i in range(int(period / STEP))]


@pytest.mark.parametrize("stabilization", [1, 15, 60, 300])
def test_keda_scales_to_zero_no_sooner_than_the_window_after_demand_ended(stabilization: int) -> None:
    spec = _scaled_object(_service(f"{stabilization}s"), ScalerMode.METRICS_API)["spec"]
    drop = 100.0 + 0.37  # not on a whole second
    earliest = min(
        _keda_scale_to_zero(drop=drop + offset, phase=phase, cooldown=spec["cooldownPeriod"]) - drop - offset
        for phase in _phases(scaledobject.POLLING_INTERVAL_SECONDS)
        for offset in (0.0, 0.5, 0.99)
    )
    assert earliest >= stabilization


@pytest.mark.parametrize("stabilization", [1, 15, 60, 300])
def test_the_hpa_scales_down_no_sooner_than_the_window_after_demand_fell(stabilization: int) -> None:
    spec = _scaled_object(_service(f"{stabilization}s"), ScalerMode.EXTERNAL_PUSH)["spec"]
    window = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"
    ]
    drop = 100.0
    earliest = min(
        _hpa_first_scale_down(drop=drop, phase=phase, window=window) - drop
        for phase in _phases(scaledobject.HPA_SYNC_PERIOD_SECONDS)
    )
    assert earliest >= stabilization


def test_zero_stabilization_still_means_no_delay() -> None:
    spec = _scaled_object(_service("0s"), ScalerMode.METRICS_API)["spec"]
    assert spec["cooldownPeriod"] == 0
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 0
    }


def test_the_hpa_window_stays_within_what_the_hpa_accepts() -> None:
    spec = _scaled_object(_service("1h"), ScalerMode.METRICS_API)["spec"]
    window = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert window["stabilizationWindowSeconds"] == scaledobject.MAX_HPA_WINDOW_SECONDS == 3600
    assert spec["cooldownPeriod"] > 3600


def test_warm_windows_become_keda_cron_triggers_beside_the_demand_trigger() -> None:
    document = _service().model_dump(by_alias=True, exclude_none=True)
    document["spec"]["scaling"]["schedules"] = [
        {"name": "office", "start": "0 9 * * 1-5", "end": "0 18 * * 1-5", "timezone": "Asia/Kolkata"},
        {"name": "batch", "start": "30 1 * * *", "end": "0 3 * * *", "minReplicas": 2},
    ]
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    for mode in (ScalerMode.METRICS_API, ScalerMode.EXTERNAL_PUSH):
        triggers = _scaled_object(service, mode)["spec"]["triggers"]
        assert triggers[0]["type"] == mode.value
        assert triggers[1:] == [
            {
                "type": "cron",
                "name": "warm-window-office",
                "metadata": {
                    "timezone": "Asia/Kolkata",
                    "start": "0 9 * * 1-5",
                    "end": "0 18 * * 1-5",
                    "desiredReplicas": "1",
                },
            },
            {
                "type": "cron",
                "name": "warm-window-batch",
                "metadata": {
                    "timezone": "UTC",
                    "start": "30 1 * * *",
                    "end": "0 3 * * *",
                    "desiredReplicas": "2",
                },
            },
        ]
    # Without windows the ScaledObject is as before: one trigger.
    assert len(_scaled_object(_service(), ScalerMode.METRICS_API)["spec"]["triggers"]) == 1
