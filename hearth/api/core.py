"""The Kubernetes core/v1 and meta/v1 types the Hearth API embeds (env vars, probes, tolerations,
object references, conditions), modelled field for field so the CRD carries their full schema."""

from __future__ import annotations

from typing import Literal

from hearth.api.base import ApiModel, Int32, Int64, IntOrString, Quantity


class LocalObjectReference(ApiModel):
    """A reference to an object by name in the same namespace."""

    name: str = ""
    """Name of the referent."""


class ObjectFieldSelector(ApiModel):
    """Selects a field of the pod."""

    api_version: str | None = None
    """Version of the schema the field path is written in; defaults to v1."""
    field_path: str
    """Path of the field to select, e.g. metadata.name or status.podIP."""


class ResourceFieldSelector(ApiModel):
    """Selects a resource of a container: limits.cpu, requests.memory, …"""

    container_name: str | None = None
    """Container name: required for volumes, optional for env vars."""
    divisor: Quantity | None = None
    """Output format of the exposed resources, defaults to "1"."""
    resource: str
    """Required: resource to select."""


class KeySelector(ApiModel):
    """Selects a key of a ConfigMap or Secret in the pod's namespace."""

    key: str
    """The key to select."""
    name: str = ""
    """Name of the ConfigMap or Secret."""
    optional: bool | None = None
    """Whether the object or its key may be missing."""


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    config_map_key_ref: KeySelector | None = None
    """Selects a key of a ConfigMap."""
    field_ref: ObjectFieldSelector | None = None
    """Selects a field of the pod."""
    resource_field_ref: ResourceFieldSelector | None = None
    """Selects a resource of the container."""
    secret_key_ref: KeySelector | None = None
    """Selects a key of a Secret in the pod's namespace."""


class EnvVar(ApiModel):
    """An environment variable of a container. A literal value may use Go-template fields such as
    {{ .Model.Path }}, {{ .Service.Name }} and {{ .Service.Namespace }}."""

    name: str
    """Name of the environment variable."""
    value: str | None = None
    """Literal value (template-rendered); mutually exclusive with valueFrom."""
    value_from: EnvVarSource | None = None
    """Source of the value; passed through unchanged."""


class Toleration(ApiModel):
    """Lets a pod schedule onto nodes with a matching taint."""

    effect: str | None = None
    """Taint effect to match: NoSchedule, PreferNoSchedule or NoExecute; empty matches all."""
    key: str | None = None
    """Taint key; empty with operator Exists matches every taint."""
    operator: str | None = None
    """Exists or Equal (default)."""
    toleration_seconds: Int64 | None = None
    """How long a NoExecute taint is tolerated; unset means forever."""
    value: str | None = None
    """Taint value to match with operator Equal."""


class ExecAction(ApiModel):
    """Runs a command in the container."""

    command: list[str] | None = None
    """Command line; not run in a shell. Exit status 0 is success."""


class HttpHeader(ApiModel):
    """A custom HTTP header of a probe."""

    name: str
    """Header name."""
    value: str
    """Header value."""


class HttpGetAction(ApiModel):
    """An HTTP GET probe."""

    host: str | None = None
    """Host name to connect to; defaults to the pod IP."""
    http_headers: list[HttpHeader] | None = None
    """Custom headers to send."""
    path: str | None = None
    """Path to request."""
    port: IntOrString
    """Port number or name."""
    scheme: str | None = None
    """HTTP (default) or HTTPS."""


class TcpSocketAction(ApiModel):
    """A TCP connect probe."""

    host: str | None = None
    """Host name to connect to; defaults to the pod IP."""
    port: IntOrString
    """Port number or name."""


class GrpcAction(ApiModel):
    """A gRPC health-check probe."""

    port: Int32
    """Port number of the gRPC service."""
    service: str | None = None
    """Service name for the gRPC HealthCheckRequest."""


class Probe(ApiModel):
    """A container probe (core/v1 Probe): one action plus its timing."""

    exec: ExecAction | None = None
    """Run a command."""
    failure_threshold: Int32 | None = None
    """Consecutive failures before the probe counts as failed."""
    grpc: GrpcAction | None = None
    """gRPC health check."""
    http_get: HttpGetAction | None = None
    """HTTP GET request."""
    initial_delay_seconds: Int32 | None = None
    """Seconds after start before the first probe."""
    period_seconds: Int32 | None = None
    """Seconds between probes."""
    success_threshold: Int32 | None = None
    """Consecutive successes before the probe counts as passed after a failure."""
    tcp_socket: TcpSocketAction | None = None
    """TCP connection."""
    termination_grace_period_seconds: Int64 | None = None
    """Grace period when a liveness or startup probe failure kills the container."""
    timeout_seconds: Int32 | None = None
    """Seconds after which one probe times out."""


class Condition(ApiModel):
    """One aspect of an object's current state (meta/v1 Condition)."""

    last_transition_time: str
    """When the status last changed (RFC 3339)."""
    message: str = ""
    """Human-readable details."""
    observed_generation: Int64 | None = None
    """The metadata.generation this condition was computed from."""
    reason: str
    """CamelCase machine-readable reason for the last transition."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    type: str
    """Condition type, e.g. Ready."""
