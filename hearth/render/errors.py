"""Why a reconcile failed: a SPEC §1.3 reason (the Ready condition's reason) plus a message for users."""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Failure reasons, one per reconcile step, in the order the steps run (SPEC §1.3)."""

    RUNTIME_RESOLUTION = "RuntimeResolution"
    UNSUPPORTED_VENDOR = "UnsupportedVendor"
    MODEL_RESOLUTION = "ModelResolution"
    RENDER = "Render"
    APPLY_DEPLOYMENT = "ApplyDeployment"
    APPLY_BACKEND_SERVICE = "ApplyBackendService"
    APPLY_NETWORK_POLICY = "ApplyNetworkPolicy"
    APPLY_GATEWAY = "ApplyGateway"
    APPLY_GATEWAY_SERVICE = "ApplyGatewayService"
    APPLY_GATEWAY_SCALER_SERVICE = "ApplyGatewayScalerService"
    APPLY_GATEWAY_DISRUPTION_BUDGET = "ApplyGatewayDisruptionBudget"
    CACHE = "Cache"
    APPLY_CACHE_PVC = "ApplyCachePVC"
    PREWARM = "Prewarm"
    APPLY_PREWARM_JOB = "ApplyPrewarmJob"
    SCALED_OBJECT = "ScaledObject"
    APPLY_SCALED_OBJECT = "ApplyScaledObject"
    APPLY_GATEWAY_RBAC = "ApplyGatewayRBAC"


class ReconcileError(Exception):
    """A reconcile step failed; the LLMService becomes Degraded with this reason and message."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message
