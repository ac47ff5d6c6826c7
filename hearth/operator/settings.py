"""The operator's settings (SPEC §2.10 flags plus Hearth's own), validated before anything starts."""

from __future__ import annotations

import dataclasses

from hearth.api import meta, scalermodes
from hearth.common import netaddr
from hearth.render.config import DEFAULT_GATEWAY_IMAGE
from hearth.render.names import LEADER_ELECTION_ID

DEFAULT_HEALTH_ADDRESS = netaddr.ListenAddress(host=None, port=8081)


@dataclasses.dataclass(frozen=True, slots=True)
class OperatorSettings:
    #: ``/healthz`` and ``/readyz`` (None: disabled).
    health_address: netaddr.ListenAddress | None = DEFAULT_HEALTH_ADDRESS
    #: Prometheus metrics (None: disabled, the reference's default ``0``).
    metrics_address: netaddr.ListenAddress | None = None
    #: HTTPS, and only callers the API server allows to get /metrics (TokenReview + SubjectAccessReview).
    metrics_secure: bool = True
    #: A directory with the serving certificate and key (None: self-signed at start).
    metrics_cert_dir: str | None = None
    metrics_cert_name: str = "tls.crt"
    metrics_key_name: str = "tls.key"
    leader_elect: bool = False
    leader_election_id: str = LEADER_ELECTION_ID
    leader_election_namespace: str = meta.DEFAULT_NAMESPACE
    gateway_image: str = DEFAULT_GATEWAY_IMAGE
    gateway_replicas: int = 1
    #: A NetworkPolicy per LLMService so only its gateway (and metrics scrapers) reach its backend.
    network_policies: bool = False
    #: ``auto`` is resolved each reconcile against whether KEDA is installed right then.
    scaler: scalermodes.ScalerMode = scalermodes.ScalerMode.AUTO
    concurrent_reconciles: int = 4
    kubeconfig: str | None = None
    context: str | None = None
    #: How often every LLMService is reconciled even without events (catches missed events cheaply).
    resync_seconds: float = 600.0
    #: How often the built-in autoscaler reads gateway demand and decides.
    autoscale_interval: float = 2.0

    def __post_init__(self) -> None:
        if self.gateway_replicas < 1:
            raise ValueError("--gateway-replicas must be at least 1")
        scalermodes.check_gateway_replicas(self.scaler, replicas=self.gateway_replicas)
        shared = self.metrics_address is not None and self.metrics_address == self.health_address
        if self.metrics_secure and shared:
            raise ValueError(
                "--metrics-secure serves HTTPS, so --metrics-bind-address must differ from "
                "--health-probe-bind-address (the kubelet's probes stay plain HTTP)"
            )
        if self.concurrent_reconciles < 1:
            raise ValueError("--concurrent-reconciles must be at least 1")
        if self.autoscale_interval <= 0:
            raise ValueError("--autoscale-interval must be positive")
