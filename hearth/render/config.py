"""Operator-wide settings that shape rendered objects (SPEC §2.10 flags)."""

from __future__ import annotations

import dataclasses

from hearth.api import operatorsettings, scalermodes

#: The operator's default gateway image (the reference's), rendered unless told the hearth image.
DEFAULT_GATEWAY_IMAGE = operatorsettings.DEFAULT_GATEWAY_IMAGE


@dataclasses.dataclass(frozen=True, slots=True)
class OperatorConfig:
    """What rendering needs from the operator's flags."""

    gateway_image: str = DEFAULT_GATEWAY_IMAGE
    gateway_replicas: int = operatorsettings.GATEWAY_REPLICAS.default
    #: A resolved mode (the operator resolves ``auto`` against the cluster before rendering).
    scaler_mode: scalermodes.ScalerMode = scalermodes.ScalerMode.METRICS_API
    #: Arguments of the gateway container: the single hearth image runs the gateway role as a subcommand.
    #: (The reference gateway image ignores positional arguments, so the default is safe with it too.)
    gateway_args: tuple[str, ...] = ("gateway",)
    #: Render a NetworkPolicy per LLMService that lets only its gateway (and metrics scrapers) reach the
    #: backend pods (DESIGN: optional, needs a CNI that enforces NetworkPolicies).
    network_policies: bool = operatorsettings.NETWORK_POLICIES.default
    #: Give each gateway its own ServiceAccount and Role (EndpointSlice readiness, instant wake). False when
    #: the operator may not create them: gateways then run as the reference's do, with the namespace's
    #: default ServiceAccount, probing GET /health (issue 19: the reference chart's ClusterRole).
    gateway_service_account: bool = True

    def __post_init__(self) -> None:
        scalermodes.traits(self.scaler_mode)  # ValueError for auto: render what is in force, never a choice

    @property
    def hearth_image(self) -> str | None:
        """The hearth image, which the gateways run (``hearth install`` and the chart set it), and which also
        runs the backend's drain sidecar and the prewarm Job's ``hearth fetch``; None with the reference's
        gateway image, which has neither role."""
        return None if self.gateway_image == DEFAULT_GATEWAY_IMAGE else self.gateway_image

    @property
    def drainer_image(self) -> str | None:
        """The image of the backend's drain sidecar (``hearth drainer``): the hearth image, which the gateways
        run (``hearth install`` and the chart set it). None with the reference's gateway image, which has no
        drainer role: an UntilIdle drain then sleeps drainTimeout as Sleep does, rather than point the
        engine's preStop at a sidecar that would never answer (a failed hook cuts the streams at once)."""
        return self.hearth_image

    @property
    def effective_gateway_replicas(self) -> int:
        return self.gateway_replicas if self.gateway_replicas > 0 else 1
