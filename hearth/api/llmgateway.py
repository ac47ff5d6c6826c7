"""``LLMGateway``: one shared, OpenAI-compatible endpoint in front of many LLMServices of its namespace,
routing each request by its ``model`` (the LLMService's name) and holding each model at zero on its own
(issue 24).

Namespaced, and it selects only LLMServices of its own namespace: the namespace is the tenancy and RBAC
boundary (the gateway's Role, its API-key Secrets and the models it may wake all live there), so a team
cannot route, list or wake another team's models through its endpoint. An LLMService selected by at least
one LLMGateway has no gateway pods of its own; its Service ``<name>`` then leads to the first selecting
LLMGateway's pods (by name) and ``status.gateway`` names it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from hearth.api import llmservice, meta
from hearth.api.base import ApiModel, Int32, Int64, Quantity
from hearth.api.core import Condition
from hearth.api.labelselector import LabelSelector
from hearth.api.meta import ObjectMeta

KIND = "LLMGateway"
PLURAL = "llmgateways"
#: A gateway's name becomes Service ``<name>`` and objects ``<name>-gateway``/``<name>-scaler``: the same
#: bound as an LLMService's.
MAX_NAME_LENGTH = llmservice.MAX_NAME_LENGTH
NAME_PATTERN = llmservice.NAME_PATTERN
#: How many key sets one gateway mounts (each is a volume of its pods).
MAX_KEY_SETS = 64
ModelName = Annotated[str, pydantic.Field(min_length=1, max_length=253)]


class GatewayResources(ApiModel):
    """Compute of the gateway container (the requests and limits of core/v1 ResourceRequirements)."""

    requests: dict[str, Quantity] | None = None
    """Minimum compute reserved, e.g. {cpu: 100m, memory: 128Mi}. Unset: the dedicated gateway's."""
    limits: dict[str, Quantity] | None = None
    """Maximum compute allowed, e.g. {memory: 256Mi}. Unset: the dedicated gateway's (a memory limit that
    covers the request bodies it may buffer)."""


class ApiKeySet(ApiModel):
    """A Secret of API keys and the models those keys may use."""

    secret_name: str = pydantic.Field(max_length=253, pattern=llmservice.SECRET_NAME_PATTERN)
    """A Secret in this namespace whose every value is one accepted API key, sent by clients as
    "Authorization: Bearer <key>". Mounted into the gateway pods (optional: a missing Secret accepts no key
    of this set); key rotation needs no restart."""
    models: list[ModelName] | None = None
    """The LLMService names these keys may use; absent: every model the gateway routes. A model a key may
    not use is answered 404 model_not_found and left out of /v1/models, exactly as an unknown one. A change
    here needs no restart (the gateway watches this object)."""


class GatewayAuth(ApiModel):
    """Who may call the shared endpoint."""

    keys: list[ApiKeySet] | None = pydantic.Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["secretName"]},
    )
    """Sets of accepted API keys, each from one Secret (listed once), optionally limited to some models.
    Checked before a request counts as demand, so unauthenticated traffic never wakes a model. Absent or
    empty: no authentication."""


class LLMGatewaySpec(ApiModel):
    """The desired state of an LLMGateway."""

    selector: LabelSelector
    """Which LLMServices the gateway routes, by their labels: only LLMServices of this namespace (no
    cross-namespace selection: the namespace is the tenancy and RBAC boundary). {} selects every
    LLMService of the namespace. Clients send an LLMService's name as the request's model."""
    replicas: Int32 | None = pydantic.Field(default=None, ge=1)
    """Gateway pods. Unset: the operator's gateway replicas setting (as for a dedicated gateway)."""
    resources: GatewayResources | None = None
    """Requests and limits of the gateway container. Unset: the dedicated gateway's defaults. The routed
    LLMServices' spec.endpoint.resources do not apply here (they size a service's own gateway only); their
    spec.endpoint.maxQueue does, per model."""
    auth: GatewayAuth | None = None
    """API keys, each set optionally limited to some models. Unset: no authentication."""


class LLMGatewayStatus(ApiModel):
    """The observed state of an LLMGateway."""

    model_config = pydantic.ConfigDict(extra="ignore")

    observed_generation: Int64 | None = None
    """The metadata.generation this status describes."""
    models: list[str] | None = None
    """The LLMServices routed (their names, which clients send as the model), sorted."""
    model_count: Int32 | None = None
    """How many LLMServices are routed (a printer column)."""
    ready_replicas: Int32 | None = None
    """Ready gateway pods."""
    endpoint_url: str | None = pydantic.Field(default=None, alias="endpointURL")
    """OpenAI base URL of the shared endpoint: http://<name>.<namespace>.svc/v1."""
    conditions: list[Condition] | None = pydantic.Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready: the gateway's objects are in place and a pod is ready (or why not)."""


class LLMGateway(pydantic.BaseModel):
    """A shared OpenAI endpoint routing by model to the LLMServices it selects, each held at zero."""

    model_config = pydantic.ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    api_version: Literal["serving.hearth.dev/v1alpha1"] = pydantic.Field(
        default="serving.hearth.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["LLMGateway"] = "LLMGateway"
    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta)
    spec: LLMGatewaySpec
    status: LLMGatewayStatus = pydantic.Field(default_factory=LLMGatewayStatus)

    @property
    def namespace(self) -> str:
        """The namespace, ``default`` when the manifest names none (an offline render)."""
        return self.metadata.namespace or meta.DEFAULT_NAMESPACE
