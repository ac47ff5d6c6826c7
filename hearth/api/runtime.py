"""``InferenceRuntime``: a cluster-scoped serving profile (image, args, device resource, probes, drain)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import pydantic

from hearth.api import base, engines, k8s_schema
from hearth.api.base import ApiModel, Int32, Int64
from hearth.api.core import Condition, EnvVar, Probe, Toleration
from hearth.api.meta import ObjectMeta

KIND = "InferenceRuntime"
PLURAL = "inferenceruntimes"
#: The backend probes when ``spec.health`` leaves them out (controller defaults, SPEC §1.2): readiness and
#: startup GET this path on the serving port; the startup probe allows about 10 minutes to load the model.
DEFAULT_HEALTH_PATH = "/health"
DEFAULT_STARTUP_PERIOD_SECONDS = 10
DEFAULT_STARTUP_FAILURE_THRESHOLD = 60

#: nvidia and ascend as in the reference; generic is any other device plugin (no vendor-specific mounts).
Vendor = Literal["nvidia", "ascend", "generic"]
VENDORS: tuple[str, ...] = ("nvidia", "ascend", "generic")
#: The engine families of :mod:`hearth.api.engines` (a test keeps the two in agreement).
Family = Literal["vllm", "sglang", "llamacpp", "trtllm", "tgi"]
#: How a backend pod drains when ``lifecycle.preStopDrain`` is true (README "Draining a backend"):
#: UntilIdle ends the drain as soon as the engine reports nothing running or waiting (capped by
#: drainTimeout); Sleep always waits the whole drainTimeout, as the reference does.
DrainMode = Literal["UntilIdle", "Sleep"]
DRAIN_UNTIL_IDLE: DrainMode = "UntilIdle"
DRAIN_SLEEP: DrainMode = "Sleep"


#: A container port's name (an IANA service name, as core/v1 checks it): at most 15 lowercase letters,
#: digits and inner dashes, with at least one letter and no two dashes in a row.
PORT_NAME_MAX_LENGTH = 15
PORT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
PORT_NAME_MESSAGE = (
    "container.port.name must be an IANA service name: at most 15 lowercase letters, digits and '-', "
    "with a letter, starting and ending with a letter or digit, no '--'"
)


def _check_port_name(name: str) -> str:
    if not (re.match(PORT_NAME_PATTERN, name) and re.search("[a-z]", name) and "--" not in name):
        raise ValueError(f"{PORT_NAME_MESSAGE}, got {name!r}")
    return name


class Port(ApiModel):
    """The named TCP port of the serving API."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # The backend Deployment would be refused for it anyway, later and less clearly (the
                    # reference v0.4 checks the same shape by pattern).
                    # has(): the API server also checks rules against the bare `default: {}`.
                    "rule": f"!has(self.name) || (self.name.matches('{PORT_NAME_PATTERN}') && "
                    "self.name.matches('[a-z]') && !self.name.contains('--'))",
                    "message": PORT_NAME_MESSAGE,
                    "fieldPath": ".name",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    name: Annotated[
        str, pydantic.AfterValidator(_check_port_name), pydantic.Field(max_length=PORT_NAME_MAX_LENGTH)
    ] = "http"
    """Port name: the backend Service targets it and default probes use it. An IANA service name (at most
    15 characters: lowercase letters, digits, '-')."""
    container_port: Int32 = pydantic.Field(default=8000, ge=1, le=65535)
    """Container port number."""


class Container(ApiModel):
    """The serving container."""

    image: str = pydantic.Field(min_length=1)
    """Serving image; it must serve the OpenAI API (and its family's readiness path, e.g. GET /health)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """The serving container's imagePullPolicy (default: Kubernetes' own, IfNotPresent unless the tag is
    latest). Never suits air-gapped nodes whose images are preloaded."""
    args: list[str] | None = None
    """Arguments (default: the family's, for its upstream image: model path, served name, host, port and the
    metrics flag); Go-template fields {{ .Model.Path }}, {{ .Service.Name }} and {{ .Service.Namespace }}
    are rendered, and an unknown field fails reconcile (Render)."""
    env: list[EnvVar] | None = pydantic.Field(
        default=None, json_schema_extra=k8s_schema.markers(k8s_schema.CORE + "Container", "env")
    )
    """Environment; literal values are template-rendered, valueFrom is passed through."""
    port: Port = base.nested(Port)
    """Serving port (default http/8000)."""
    run_as_user: Int64 | None = pydantic.Field(default=None, ge=1)
    """The image's non-root user id (Hearth's addition). Set, backend and prewarm pods meet the restricted
    Pod Security Standard: they run as this user and group (also their volumes' fsGroup), without
    privilege escalation or capabilities, under the RuntimeDefault seccomp profile. Unset: run as the
    image says (the official vLLM images run as root). Host paths (vendor ascend, cache HostPath) never
    meet restricted."""


class Sharing(ApiModel):
    """Declarative only: fractional sharing is not supported."""

    supported: bool | None = None
    """Whether the device can be shared (ignored)."""


class Scheduler(ApiModel):
    """Pod scheduler for backend and prewarm pods."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.queue) || self.queue == '' || "
                    "(has(self.name) && self.name == 'volcano')",
                    "message": "queue requires scheduler name volcano",
                    "fieldPath": ".queue",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    name: str | None = None
    """schedulerName of the pods; empty means the default scheduler."""
    queue: str | None = None
    """Volcano queue (scheduling.volcano.sh/queue-name); only with name volcano."""

    @pydantic.model_validator(mode="after")
    def _check_queue(self) -> Scheduler:
        if self.queue and self.name != "volcano":
            raise ValueError("queue requires scheduler name volcano")
        return self


class Accelerator(ApiModel):
    """The device request and where such devices are."""

    resource_name: str = pydantic.Field(min_length=1)
    """Extended resource of the device plugin, e.g. nvidia.com/gpu, huawei.com/Ascend910."""
    sharing: Sharing | None = None
    """Declarative only (ignored)."""
    node_selector: dict[str, str] | None = pydantic.Field(
        default=None, json_schema_extra=k8s_schema.markers(k8s_schema.CORE + "PodSpec", "nodeSelector")
    )
    """Merged into the backend and prewarm pods' nodeSelector."""
    tolerations: list[Toleration] | None = pydantic.Field(
        default=None, json_schema_extra=k8s_schema.markers(k8s_schema.CORE + "PodSpec", "tolerations")
    )
    """Appended to the backend and prewarm pods."""
    scheduler: Scheduler | None = None
    """Custom scheduler and queue."""


class Health(ApiModel):
    """Backend probes; by default readiness and startup GET the family's readiness path (/health; SGLang
    /health_generate) on the named port."""

    readiness: Probe | None = None
    """Readiness probe (default GET the family's readiness path): a pod joins the backend only once the
    model is loaded."""
    liveness: Probe | None = None
    """Liveness probe (default none)."""
    startup: Probe | None = None
    """Startup probe (default GET the family's startup path every 10s, 60 failures allowed: about 10 minutes
    to load)."""


class Lifecycle(ApiModel):
    """Termination behaviour of backend pods."""

    termination_grace_period_seconds: Int64 | None = pydantic.Field(default=None, ge=1)
    """Base grace period; a drain widens it to drainTimeout + 10s."""
    pre_stop_drain: bool | None = None
    """Drain in preStop, at most scaling.drainTimeout, so in-flight streams finish (see drainMode)."""
    drain_mode: DrainMode = DRAIN_UNTIL_IDLE
    """UntilIdle: the drain ends once the engine's metrics (metrics.running plus metrics.queueDepth) read 0,
    watched by a small sidecar from the hearth image, so no shell is needed in the engine image; without
    metrics.running it sleeps like Sleep. Sleep: always wait the whole drainTimeout, as the reference does
    (the kubelet's own preStop sleep action, so no shell is needed either)."""
    engine_drain: bool | None = None
    """Also give the engine its own drain on SIGTERM, with its family's flag set to scaling.drainTimeout
    (vLLM: --shutdown-timeout, which only some versions have: opt in only for an image that does). It
    finishes what is still running when the preStop ends (a drain cut at its timeout, a Sleep drain, or no
    preStop at all); the grace period grows by drainTimeout to cover it. A family without such a flag is
    refused; args that already pass the flag are left as they are."""


class Metrics(ApiModel):
    """The engine's Prometheus metrics. Scaling uses the gateway's demand, not these; the UntilIdle drain
    reads running and queueDepth from path on port, over the pod's loopback."""

    path: str = "/metrics"
    """Metrics path."""
    port: str = "http"
    """Metrics port: the serving port's name, or a port number."""
    queue_depth: str
    """Queue depth metric, e.g. vllm:num_requests_waiting."""
    kv_cache_util: str | None = None
    """KV-cache utilisation metric, e.g. vllm:kv_cache_usage_perc."""
    running: str | None = None
    """Running requests metric, e.g. vllm:num_requests_running."""
    ttft: str | None = None
    """Time-to-first-token histogram, e.g. vllm:time_to_first_token_seconds."""


class InferenceRuntimeSpec(ApiModel):
    """A reusable serving profile for one engine on one kind of accelerator."""

    family: Family = pydantic.Field(default="vllm", description=engines.describe())
    vendor: Vendor
    """Accelerator vendor: nvidia, ascend, or generic (any other device plugin)."""
    priority: Int32 = 0
    """Tie-breaker within one vendor; higher wins."""
    container: Container
    """The serving container."""
    accelerator: Accelerator
    """Device request and scheduling."""
    health: Health | None = None
    """Backend probes."""
    lifecycle: Lifecycle | None = None
    """Grace period and drain."""
    metrics: Metrics | None = None
    """Engine metrics metadata (default: the family's metric names, e.g. vllm:num_requests_waiting;
    dashboards and the UntilIdle drain read these)."""


class InferenceRuntimeStatus(ApiModel):
    """Observed state (not populated)."""

    model_config = pydantic.ConfigDict(extra="ignore")

    conditions: list[Condition] | None = pydantic.Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Conditions of the runtime."""


class InferenceRuntime(pydantic.BaseModel):
    """A cluster-scoped serving profile that LLMServices select by name or vendor."""

    model_config = pydantic.ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    api_version: Literal["serving.hearth.dev/v1alpha1"] = pydantic.Field(
        default="serving.hearth.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["InferenceRuntime"] = "InferenceRuntime"
    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta)
    spec: InferenceRuntimeSpec
    status: InferenceRuntimeStatus = pydantic.Field(default_factory=InferenceRuntimeStatus)
