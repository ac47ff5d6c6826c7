"""Operator-wide settings that shape rendered objects (SPEC §2.10 flags)."""

from __future__ import annotations

import dataclasses
import enum


class ScalerMode(enum.StrEnum):
    """How backend replicas are driven.

    metrics-api and external-push render a KEDA ScaledObject (SPEC §2.3); builtin scales without KEDA: the
    gateway patches its backend's scale subresource 0→1 and the operator's autoscaler does 1→N→0.
    """

    METRICS_API = "metrics-api"
    EXTERNAL_PUSH = "external-push"
    BUILTIN = "builtin"


DEFAULT_GATEWAY_IMAGE = "ghcr.io/hearth-project/hearth-gateway:latest"


@dataclasses.dataclass(frozen=True, slots=True)
class OperatorConfig:
    """What rendering needs from the operator's flags."""

    gateway_image: str = DEFAULT_GATEWAY_IMAGE
    gateway_replicas: int = 1
    scaler_mode: ScalerMode = ScalerMode.METRICS_API
    #: Arguments of the gateway container: the single hearth image runs the gateway role as a subcommand.
    #: (The reference gateway image ignores positional arguments, so the default is safe with it too.)
    gateway_args: tuple[str, ...] = ("gateway",)
    #: Render a NetworkPolicy per LLMService that lets only its gateway (and metrics scrapers) reach the
    #: backend pods (DESIGN: optional, needs a CNI that enforces NetworkPolicies).
    network_policies: bool = False
    #: Give each gateway its own ServiceAccount and Role (EndpointSlice readiness, instant wake). False when
    #: the operator may not create them: gateways then run as the reference's do, with the namespace's
    #: default ServiceAccount, probing GET /health (issue 19: the reference chart's ClusterRole).
    gateway_service_account: bool = True

    @property
    def effective_gateway_replicas(self) -> int:
        return self.gateway_replicas if self.gateway_replicas > 0 else 1
