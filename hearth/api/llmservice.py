"""``LLMService``: one open model served on Kubernetes, scaled to zero when idle (namespaced)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from hearth.api import base, k8s_schema, meta, telemetry, wakefailure
from hearth.api import fallback as fallback_api
from hearth.api import pool as pool_api
from hearth.api import schedule as schedule_api
from hearth.api.base import ApiModel, GoDuration, Int32, Int64, Quantity
from hearth.api.core import Condition, LocalObjectReference
from hearth.api.meta import ObjectMeta
from hearth.common import durations

KIND = "LLMService"
PLURAL = "llmservices"

ScalingMetric = Literal["queueDepth", "kvCacheUtil"]
CacheStrategy = Literal["NodeLocalPVC", "HostPath", "SharedPVC", "BakedImage", "None"]
ColdStartMode = Literal["keepalive", "reject"]
Phase = Literal["Pending", "Loading", "Ready", "ScaledToZero", "Degraded"]

#: The longest LLMService name whose derived object names (``<name>-backend``, ``-gateway``, ``-prewarm``)
#: are still valid 63-character DNS labels.
MAX_NAME_LENGTH = 55
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_STABILIZATION = durations.HOUR
#: A Secret's name: a DNS subdomain.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
#: A key of a Secret's data (core/v1's rule for ConfigMap and Secret keys).
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
#: The NodeLocalPVC's size when ``cache.size`` is unset (SPEC §5.2: a controller default, not a CRD one).
DEFAULT_CACHE_SIZE = "50Gi"


def _cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, Any]:
    validation: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        validation["fieldPath"] = field_path
    if reason:
        validation["reason"] = reason
    return validation


class ModelSource(ApiModel):
    """Where the weights come from."""

    uri: str = pydantic.Field(min_length=1)
    """hf://<repo> (alias huggingface://), modelscope://<repo>, pvc://<claim>[/<subpath>],
    oci://<registry>/<repository>@sha256:<hex>[/<file>] (digest-pinned; ?plainHTTP=true without TLS) or
    s3://<bucket>/<prefix>[?endpoint=<url>&region=<region>&use_path_style=true]. oci and s3 models are
    fetched into the cache by the prewarm Job (cache.prewarm and a cache strategy are required). Other
    schemes are refused when the service is reconciled (reason ModelResolution)."""
    secret_ref: LocalObjectReference | None = None
    """Credentials of a private source: for oci:// a kubernetes.io/dockerconfigjson Secret, for s3:// a
    Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (optionally AWS_SESSION_TOKEN). Only the
    fetch containers see it. Refused for other schemes (reason ModelResolution)."""


class ModelSpec(ApiModel):
    """What to serve."""

    catalog_ref: str | None = None
    """Reserved: catalog lookup is not implemented; without source.uri reconcile fails (ModelResolution)."""
    source: ModelSource | None = None
    """Inline model source."""


class RuntimeSelector(ApiModel):
    """How to pick an InferenceRuntime automatically."""

    vendor: list[str] | None = None
    """Vendors in order of preference (e.g. [ascend, nvidia]); within a vendor the highest priority wins,
    and a tie is an error asking for spec.runtime.name."""


class RuntimeSpec(ApiModel):
    """Which cluster-scoped InferenceRuntime serves the model."""

    name: str | None = None
    """Pins an InferenceRuntime by name; takes precedence over selector."""
    selector: RuntimeSelector | None = None
    """Automatic selection by vendor preference."""
    args_override: list[str] | None = None
    """Arguments appended after the runtime's container.args; Go-template fields are rendered in them."""


class Fraction(ApiModel):
    """Reserved: fractional accelerators are not supported; setting this fails reconcile (Render)."""

    memory: Quantity | None = None
    """Accelerator memory per replica."""
    cores: Int32 | None = None
    """Accelerator cores per replica."""


class Resources(ApiModel):
    """Compute per backend replica."""

    accelerators: Int32 = pydantic.Field(default=1, ge=1)
    """Whole devices of the runtime's accelerator resource per replica."""
    fraction: Fraction | None = None
    """Reserved: setting it fails reconcile (Render)."""
    cpu: Quantity | None = None
    """CPU request of the serving container (no limit is set)."""
    memory: Quantity | None = None
    """Memory request and limit of the serving container."""


class KEDAAuthenticationReference(ApiModel):
    """A KEDA TriggerAuthentication (this namespace) or ClusterTriggerAuthentication."""

    name: str = pydantic.Field(min_length=1, max_length=253, pattern=SECRET_NAME_PATTERN)
    """The TriggerAuthentication's or ClusterTriggerAuthentication's name."""
    kind: Literal["TriggerAuthentication", "ClusterTriggerAuthentication"] = "TriggerAuthentication"
    """TriggerAuthentication (namespaced, this namespace) or ClusterTriggerAuthentication."""


class ExternalScalerTLS(ApiModel):
    """Mutual TLS between KEDA and the gateway's external scaler (credentials managed outside Hearth)."""

    server_secret_name: str = pydantic.Field(min_length=1, max_length=253, pattern=SECRET_NAME_PATTERN)
    """A Secret in this namespace with tls.crt and tls.key (the gateway's gRPC server certificate, valid for
    the DNS name <name>-scaler.<namespace>.svc that KEDA dials) and ca.crt (the CA that must have signed
    KEDA's client certificate). The gateway requires a client certificate and re-reads the files when the
    Secret changes. The gateway pods do not start until the Secret exists."""
    authentication_ref: KEDAAuthenticationReference
    """The KEDA authentication object the ScaledObject's trigger uses: it must give caCert (the CA of the
    server certificate), tlsClientCert and tlsClientKey (KEDA's client certificate)."""


class ExternalScaler(ApiModel):
    """KEDA's connection to the gateway's external scaler (external-push mode; other modes ignore it)."""

    tls: ExternalScalerTLS | None = None
    """Mutual TLS for the gRPC connection; unset: plaintext inside the cluster."""


class Scaling(ApiModel):
    """Replica bounds and the demand signal that drives them."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # has() guards: the API server also checks rules against the bare `default: {}`.
                _cel(
                    "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "min must not exceed max",
                    reason="FieldValueInvalid",
                ),
                _cel(
                    "!has(self.scaleDownStabilization) || "
                    "(duration(self.scaleDownStabilization) >= duration('0s') && "
                    "duration(self.scaleDownStabilization) <= duration('1h'))",
                    "scaleDownStabilization must be between 0s and 1h",
                    field_path=".scaleDownStabilization",
                    reason="FieldValueInvalid",
                ),
                *schedule_api.SCALING_RULES,
            ]
        }
    )

    min: Int32 = pydantic.Field(default=0, ge=0)
    """Fewest backend replicas; 0 enables scale-to-zero."""
    max: Int32 = pydantic.Field(default=1, ge=1)
    """Most backend replicas."""
    metric: ScalingMetric = "queueDepth"
    """Demand metric; only queueDepth (requests waiting or in flight at the gateway) is supported."""
    target: Int32 = pydantic.Field(default=10, ge=1)
    """Demand per replica to aim for: concurrent requests per replica."""
    activation_timeout: GoDuration = "5m"
    """How long a cold request is held (keepalive mode) and how long a cold request keeps demand alive."""
    scale_down_stabilization: GoDuration = "5m"
    """How long demand must stay lower before scaling down (and at zero before scaling to zero); whole
    seconds from 0s to 1h."""
    drain_timeout: GoDuration = "2m"
    """preStop sleep that lets streams finish when a backend pod stops (runtimes with preStopDrain)."""
    schedules: list[schedule_api.WarmWindow] | None = schedule_api.schedules_field()
    """Warm windows: times at least minReplicas are kept warm without waiting for a request (e.g. office
    hours), woken early enough to be ready at each start; after a window the normal idle rule applies."""
    external_scaler: ExternalScaler | None = None
    """KEDA's connection to the gateway's external scaler (external-push mode): mutual TLS."""

    @pydantic.model_validator(mode="after")
    def _check_bounds(self) -> Scaling:
        if self.min > self.max:
            raise ValueError(f"min must not exceed max (min={self.min}, max={self.max})")
        stabilization = durations.parse_nanoseconds(self.scale_down_stabilization)
        if not 0 <= stabilization <= MAX_STABILIZATION:
            raise ValueError(
                f"scaleDownStabilization must be between 0s and 1h, got {self.scale_down_stabilization}"
            )
        seen: set[str] = set()
        for index, window in enumerate(self.schedules or ()):
            if window.min_replicas > self.max:
                raise ValueError(
                    f"schedules[{index}].minReplicas ({window.min_replicas}) must not exceed max ({self.max})"
                )
            if window.name in seen:
                raise ValueError(f"schedules[{index}].name {window.name} is used twice")
            seen.add(window.name)
        return self


class Cache(ApiModel):
    """Where downloaded weights are kept between cold starts."""

    strategy: CacheStrategy = "NodeLocalPVC"
    """NodeLocalPVC (a PVC <name>-cache), HostPath (/var/lib/hearth/cache/<ns>-<name>), SharedPVC (one
    ReadWriteMany claim: the prewarm Job writes it, every replica mounts it read-only and starts once the
    model is whole; needs prewarm) or None. BakedImage is reserved and fails reconcile (Render)."""
    size: Quantity | None = None
    """Size of the claim the operator creates (NodeLocalPVC, SharedPVC; default 50Gi)."""

    @property
    def claim_size(self) -> int | str:
        """The size the NodeLocalPVC requests (the reference's controller-side default when unset)."""
        return self.size or DEFAULT_CACHE_SIZE

    storage_class_name: str | None = None
    """StorageClass of the claim the operator creates; the cluster default when empty. For SharedPVC it must
    provision ReadWriteMany volumes (NFS, CephFS, a cloud file store)."""
    claim_name: Annotated[str, pydantic.Field(max_length=253, pattern=SECRET_NAME_PATTERN)] | None = None
    """SharedPVC only: an existing ReadWriteMany claim to use (size and storageClassName are then the
    claim's); when empty the operator creates <name>-cache."""
    prewarm: bool | None = None
    """Download the weights ahead of the first request with a one-shot Job running hearth fetch (every
    source but pvc; required for oci and s3, and for SharedPVC)."""

    @pydantic.model_validator(mode="after")
    def _claim_name_is_shared(self) -> Cache:
        if self.claim_name is not None and self.strategy != "SharedPVC":
            raise ValueError(f"claimName is for strategy SharedPVC only (strategy is {self.strategy})")
        return self


class ColdStart(ApiModel):
    """What the gateway does with a request while the backend is at zero or loading."""

    mode: ColdStartMode = "keepalive"
    """keepalive: hold the request (SSE heartbeats for streams) until the backend is ready; reject: answer
    503 with Retry-After at once, while still waking the backend."""
    heartbeat_interval: GoDuration = "10s"
    """Interval between SSE comment heartbeats sent to held streaming requests."""


class EndpointAuth(ApiModel):
    """Who may call the endpoint (Hearth's addition: the reference gateway has no authentication)."""

    secret_name: Annotated[str, pydantic.Field(max_length=253, pattern=SECRET_NAME_PATTERN)] | None = None
    """A Secret in this namespace whose every value is one accepted API key, sent by clients as
    "Authorization: Bearer <key>" (the OpenAI SDK's api_key). Checked before a request counts as demand,
    so unauthenticated traffic never wakes the backend. To rotate, add the new key to the Secret, move the
    clients, then remove the old key: gateways pick changes up without a restart (after the kubelet syncs
    the Secret, about a minute). A missing or empty Secret refuses every request with 401. Unset: no
    authentication. Not together with endpoint.authentication (v0.4's one-key form)."""


class SecretKeyReference(ApiModel):
    """One key of a Secret in this namespace."""

    name: str = pydantic.Field(min_length=1, max_length=253, pattern=SECRET_NAME_PATTERN)
    """The Secret's name."""
    key: str = pydantic.Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)
    """The data key whose value is the API key."""


class EndpointAuthentication(ApiModel):
    """One API key (the reference v0.4's form of endpoint authentication)."""

    secret_ref: SecretKeyReference
    """The Secret key holding the one accepted API key, sent by clients as "Authorization: Bearer <key>".
    Checked before a request counts as demand. The gateway re-reads it without a restart (after the
    kubelet syncs the Secret, about a minute). While the Secret or its key is missing or empty every
    request is answered 503 authentication_unavailable; a wrong or missing key gets 401 with
    WWW-Authenticate: Bearer. Several keys (rotation without a gap): endpoint.auth.secretName instead."""


class ComputeResources(ApiModel):
    """CPU and memory (the two resources a gateway uses)."""

    cpu: Quantity | None = None
    """CPU, e.g. 100m."""
    memory: Quantity | None = None
    """Memory, e.g. 256Mi."""


class EndpointResources(ApiModel):
    """Requests and limits of each replica of a service's own gateway."""

    requests: ComputeResources | None = None
    """Compute reserved per gateway replica."""
    limits: ComputeResources | None = None
    """Compute allowed per gateway replica. A memory limit also bounds the request bodies the gateway
    buffers at once (HEARTH_MAX_BUFFERED_BYTES: the limit less 128Mi for the process, at most 256Mi)."""

    def requirements(self) -> dict[str, Any]:
        """As core/v1 ResourceRequirements (only what is set)."""
        wire = self.to_wire()
        return {side: values for side, values in wire.items() if values}


class Endpoint(ApiModel):
    """The client-facing endpoint."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.authentication) || !has(self.auth) || !has(self.auth.secretName)",
                    "set endpoint.authentication.secretRef or endpoint.auth.secretName, not both",
                    field_path=".authentication",
                    reason="FieldValueForbidden",
                )
            ]
        }
    )

    open_ai_compatible: bool = pydantic.Field(default=True, alias="openAICompatible")
    """Informational: the gateway always speaks the OpenAI API."""
    max_queue: Int32 | None = pydantic.Field(default=None, ge=1)
    """Requests of this model each gateway replica admits at once (held plus in flight); more get 429
    queue_full. Unset: the gateway's HEARTH_MAX_QUEUE (default 100). Behind a shared endpoint
    (LLMGateway) it bounds this model's route on each of its pods."""
    resources: EndpointResources | None = None
    """CPU and memory requests and limits of each replica of this service's own gateway; set, they replace
    Hearth's defaults (requests cpu 50m, memory 128Mi; limit memory 384Mi) as a whole. Behind a shared
    endpoint the LLMGateway's spec.resources apply instead (its pods serve many models)."""
    authentication: EndpointAuthentication | None = None
    """One Bearer API key from one Secret key (v0.4's form). Unset: endpoint.auth, if any."""
    cold_start: ColdStart = base.nested(ColdStart)
    """Cold-request handling."""
    auth: EndpointAuth = base.nested(EndpointAuth)
    """API keys for the endpoint (Hearth's form: every value of a Secret is a key)."""
    fallback: fallback_api.Fallback | None = None
    """Another LLMService or an external OpenAI-compatible URL that answers while this model is cold or
    full (opt-in; unset: requests wait or are refused as coldStart says). Privacy: with an external url,
    prompts leave the cluster."""

    @pydantic.model_validator(mode="after")
    def _check_one_auth(self) -> Endpoint:
        if self.authentication is not None and self.auth.secret_name:
            raise ValueError("set endpoint.authentication.secretRef or endpoint.auth.secretName, not both")
        return self


class LLMServiceSpec(ApiModel):
    """The desired state of an LLMService."""

    model_config = pydantic.ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.runtime) && ((has(self.runtime.name) && self.runtime.name != '') || "
                    "(has(self.runtime.selector) && has(self.runtime.selector.vendor) && "
                    "size(self.runtime.selector.vendor) > 0))",
                    "set runtime.name or runtime.selector.vendor",
                    field_path=".runtime",
                    reason="FieldValueRequired",
                )
            ]
        }
    )

    model: ModelSpec
    """What to serve."""
    runtime: RuntimeSpec | None = None
    """Which InferenceRuntime serves it: by name, or by vendor preference."""
    resources: Resources = base.nested(Resources)
    """Accelerators, CPU and memory per backend replica."""
    scaling: Scaling = base.nested(Scaling)
    """Replica bounds, demand target and timing."""
    cache: Cache = base.nested(Cache)
    """Weight cache and prewarming."""
    endpoint: Endpoint = base.nested(Endpoint)
    """Client endpoint and cold-start behaviour."""
    image_pull_secrets: list[LocalObjectReference] | None = pydantic.Field(
        default=None, json_schema_extra=k8s_schema.markers(k8s_schema.CORE + "PodSpec", "imagePullSecrets")
    )
    """Pull secrets for the backend, gateway and prewarm pods."""
    pool: pool_api.PoolMembership | None = None
    """Membership of an AcceleratorPool: the operator then starts this model only when the pool has
    devices for it, swapping an idle member out if needed (builtin scaler mode only)."""

    @pydantic.model_validator(mode="after")
    def _check_runtime(self) -> LLMServiceSpec:
        runtime = self.runtime
        if runtime is None or not (runtime.name or (runtime.selector and runtime.selector.vendor)):
            raise ValueError("set runtime.name or runtime.selector.vendor")
        return self


class EngineStatus(ApiModel):
    """What a gateway must know of the engine behind a model: its runtime's family's facts
    (:mod:`hearth.api.engines`). A dedicated gateway is given them in its env; a shared gateway (LLMGateway),
    which reads LLMServices but not InferenceRuntimes, reads them here."""

    model_config = pydantic.ConfigDict(extra="ignore")

    family: str | None = None
    """The selected InferenceRuntime's spec.family."""
    stream_rule: Literal["lax", "strict"] | None = None
    """How the engine reads a request's "stream" field (as HEARTH_STREAM_RULE): lax (a pydantic bool) or
    strict (JSON true only)."""
    upstream_after_stream: Literal["reuse", "close"] | None = None
    """Whether a gateway may reuse the engine's connection after a streamed answer (as
    HEARTH_UPSTREAM_AFTER_STREAM): close for an engine that closes it itself unannounced."""


class LLMServiceStatus(ApiModel):
    """The observed state of an LLMService."""

    model_config = pydantic.ConfigDict(extra="ignore")

    phase: Phase | None = None
    """Pending, Loading, Ready, ScaledToZero or Degraded."""
    resolved_runtime: str | None = None
    """The InferenceRuntime chosen."""
    engine: EngineStatus | None = None
    """The chosen runtime's engine facts that gateways act on (the stream rule, connection reuse)."""
    replicas: Int32 | None = None
    """Ready backend replicas (gateway pods are not counted)."""
    desired_replicas: Int32 | None = None
    """Backend replicas wanted now: the built-in autoscaler's last decision, or the scale a gateway set when
    it woke the backend from zero."""
    endpoint_url: str | None = pydantic.Field(default=None, alias="endpointURL")
    """OpenAI base URL of the gateway: http://<name>.<namespace>.svc/v1, or the serving LLMGateway's
    (http://<gateway>.<namespace>.svc/v1) when status.gateway is set."""
    gateway: str | None = None
    """The LLMGateway serving this model (the first by name of those selecting it), which clients reach
    with model=<this service's name>; its Service <name> leads there too. Unset: the service's own
    gateway serves it."""
    observed_generation: Int64 | None = None
    """The metadata.generation this status describes."""
    last_scale_time: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When the backend was last scaled."""
    last_scale_reason: str | None = None
    """Why the backend was last scaled."""
    last_activation_time: str | None = pydantic.Field(default=None, json_schema_extra={"format": "date-time"})
    """When a request last woke the backend from zero."""
    last_cold_start_duration: str | None = None
    """How long the last wake from zero took until a backend was ready (Go duration)."""
    last_wake: telemetry.Wake | None = None
    """The last completed wake, phase by phase."""
    current_wake: telemetry.Wake | None = None
    """The wake in progress, if any (its phases so far)."""
    wake_failure: wakefailure.WakeFailure | None = None
    """Why the backend cannot come up (image pull, crash loop, OOM kill, ...), until a pod is ready again or
    its template changes: gateways end held requests and refuse cold ones with this reason."""
    wake_history: telemetry.WakeHistory | None = None
    """Totals and quantiles of recent wakes: what a caller arriving now can expect to wait."""
    accounting: telemetry.Accounting | None = None
    """Accelerator-seconds allocated (waking, serving) and saved by scaling to zero."""
    warm_window: schedule_api.WarmWindowStatus | None = None
    """The warm window in force (spec.scaling.schedules), or whose early wake has started; absent outside
    every window."""
    pool: pool_api.MemberStatus | None = None
    """Its standing in its AcceleratorPool (spec.pool): Holding, Waiting, Evicted, Idle or Refused, and
    why."""
    conditions: list[Condition] | None = pydantic.Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready, plus RuntimeResolved, ModelResolved and Scaling, and the reference v0.4's Degraded (True
    while reconcile fails or a wake cannot succeed, with that reason: the wakeFailure reason or the
    reconcile step's) and AutoscalingReady (Scaling's status and reason). Each carries observedGeneration;
    the reasons are declared once in hearth.api.wakereasons."""


class LLMService(pydantic.BaseModel):
    """An open LLM served through an OpenAI-compatible gateway and scaled to zero when idle."""

    model_config = pydantic.ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    api_version: Literal["serving.hearth.dev/v1alpha1"] = pydantic.Field(
        default="serving.hearth.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["LLMService"] = "LLMService"
    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta)
    spec: LLMServiceSpec
    status: LLMServiceStatus = pydantic.Field(default_factory=LLMServiceStatus)

    @property
    def namespace(self) -> str:
        """The namespace, ``default`` when the manifest names none (an offline render)."""
        return self.metadata.namespace or meta.DEFAULT_NAMESPACE
