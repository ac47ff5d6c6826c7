"""An LLMGateway's status (pure): routed models, ready pods, address, and a Ready condition whose
transition time moves only when its status does."""

from __future__ import annotations

from typing import Any

from hearth.operator.reconcile import llmgateways
from hearth.render.errors import Reason, ReconcileError

GATEWAY: dict[str, Any] = {"metadata": {"name": "shared", "namespace": "ml", "generation": 3}}


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    (condition,) = status["conditions"]
    return dict(condition)


def test_a_gateway_with_a_ready_pod_is_ready_and_lists_its_models() -> None:
    deployment = {"status": {"readyReplicas": 2}}
    status = llmgateways.desired_status(
        current={}, gateway=GATEWAY, routed=["chat", "embed"], deployment=deployment, error=None
    )
    assert status["models"] == ["chat", "embed"]
    assert status["modelCount"] == 2
    assert status["readyReplicas"] == 2
    assert status["endpointURL"] == "http://shared.ml.svc/v1"
    assert status["observedGeneration"] == 3
    assert (_ready(status)["status"], _ready(status)["reason"]) == ("True", "Available")


def test_a_refused_gateway_says_why_and_keeps_its_transition_time_while_refused() -> None:
    error = ReconcileError(Reason.RENDER, "an LLMService named shared exists")
    first = llmgateways.desired_status(current={}, gateway=GATEWAY, routed=[], deployment=None, error=error)
    condition = _ready(first)
    assert (condition["status"], condition["reason"]) == ("False", "Render")
    assert "an LLMService named shared exists" in condition["message"]
    old = {**first, "conditions": [{**condition, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    again = llmgateways.desired_status(current=old, gateway=GATEWAY, routed=[], deployment=None, error=error)
    assert _ready(again)["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    waiting = llmgateways.desired_status(
        current={}, gateway=GATEWAY, routed=["a"], deployment=None, error=None
    )
    assert (_ready(waiting)["status"], waiting["readyReplicas"]) == ("False", 0)
