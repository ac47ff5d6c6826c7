"""The operator's settings (SPEC §2.10 flags plus Hearth's own), validated before anything starts. Each
field's default is its entry's in :mod:`hearth.api.operatorsettings`, the one declaration of the flags."""

from __future__ import annotations

import dataclasses

from hearth.api import operatorsettings, scalermodes
from hearth.common import durations, netaddr


@dataclasses.dataclass(frozen=True, slots=True)
class OperatorSettings:
    #: ``/healthz`` and ``/readyz`` (None: disabled).
    health_address: netaddr.ListenAddress | None = operatorsettings.HEALTH_ADDRESS.default
    #: Prometheus metrics (None: disabled, the reference's default ``0``).
    metrics_address: netaddr.ListenAddress | None = operatorsettings.METRICS_ADDRESS.default
    #: HTTPS, and only callers the API server allows to get /metrics (TokenReview + SubjectAccessReview).
    metrics_secure: bool = operatorsettings.METRICS_SECURE.default
    #: A directory with the serving certificate and key (None: self-signed at start).
    metrics_cert_dir: str | None = operatorsettings.METRICS_CERT_DIR.default
    metrics_cert_name: str = operatorsettings.METRICS_CERT_NAME.default
    metrics_key_name: str = operatorsettings.METRICS_KEY_NAME.default
    leader_elect: bool = operatorsettings.LEADER_ELECT.default
    leader_election_id: str = operatorsettings.LEADER_ELECTION_ID.default
    leader_election_namespace: str = operatorsettings.LEADER_ELECTION_NAMESPACE.default
    gateway_image: str = operatorsettings.GATEWAY_IMAGE.default
    gateway_replicas: int = operatorsettings.GATEWAY_REPLICAS.default
    #: A NetworkPolicy per LLMService so only its gateway (and metrics scrapers) reach its backend.
    network_policies: bool = operatorsettings.NETWORK_POLICIES.default
    #: ``auto`` is resolved each reconcile against whether KEDA is installed right then.
    scaler: scalermodes.ScalerMode = operatorsettings.SCALER.default
    concurrent_reconciles: int = operatorsettings.CONCURRENT_RECONCILES.default
    #: How often the built-in autoscaler reads gateway demand and decides.
    autoscale_interval: durations.Duration = operatorsettings.AUTOSCALE_INTERVAL.default
    # Not flags: the kubeconfig options every command shares, and a resync tests may shorten.
    kubeconfig: str | None = None
    context: str | None = None
    #: How often every LLMService is reconciled even without events (catches missed events cheaply).
    resync_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.gateway_replicas < 1:
            raise ValueError(f"{operatorsettings.GATEWAY_REPLICAS.flag} must be at least 1")
        scalermodes.check_gateway_replicas(self.scaler, replicas=self.gateway_replicas)
        shared = self.metrics_address is not None and self.metrics_address == self.health_address
        if self.metrics_secure and shared:
            raise ValueError(
                f"{operatorsettings.METRICS_SECURE.flag} serves HTTPS, so "
                f"{operatorsettings.METRICS_ADDRESS.flag} must differ from "
                f"{operatorsettings.HEALTH_ADDRESS.flag} (the kubelet's probes stay plain HTTP)"
            )
        if self.concurrent_reconciles < 1:
            raise ValueError(f"{operatorsettings.CONCURRENT_RECONCILES.flag} must be at least 1")
        if self.autoscale_interval.nanoseconds <= 0:
            raise ValueError(f"{operatorsettings.AUTOSCALE_INTERVAL.flag} must be positive")
