"""The Kubernetes core/v1 and meta/v1 types the Hearth API embeds (env vars, probes, tolerations, object
references, conditions).

The core/v1 ones take their schema from the upstream OpenAPI document (:mod:`hearth.api.k8s_schema`), so
the CRD accepts every field the supported Kubernetes release accepts in a Pod (``valueFrom.fileKeyRef``,
``grpc`` probes, …) and carries upstream's list/map markers; values are kept as written and passed to the
rendered Pods unchanged. Only what Hearth reads (an env var's name and literal value) is modelled."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pydantic
import pydantic_core
from pydantic import json_schema

from hearth.api import k8s_schema
from hearth.api.base import ApiModel, Int64


class Upstream(pydantic.RootModel[dict[str, Any]]):
    """A core/v1 object as the user wrote it, checked against the upstream definition *DEFINITION*."""

    model_config = pydantic.ConfigDict(frozen=True)
    DEFINITION: ClassVar[str]

    @pydantic.field_validator("root")
    @classmethod
    def _fits_upstream(cls, value: dict[str, Any]) -> dict[str, Any]:
        k8s_schema.check(cls.DEFINITION, value)
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: pydantic_core.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> json_schema.JsonSchemaValue:
        return k8s_schema.structural(cls.DEFINITION)

    def to_wire(self) -> dict[str, Any]:
        """The object as written, in upstream's (alphabetical) field order; a copy, so rendered manifests
        never share it."""
        wire: dict[str, Any] = _sorted(self.root)
        return wire


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


class EnvVarSource(Upstream):
    """Where an environment variable's value comes from (core/v1 EnvVarSource)."""

    DEFINITION = k8s_schema.CORE + "EnvVarSource"


class Toleration(Upstream):
    """Lets a pod schedule onto nodes with a matching taint (core/v1 Toleration)."""

    DEFINITION = k8s_schema.CORE + "Toleration"


class Probe(Upstream):
    """A container probe (core/v1 Probe): one action plus its timing."""

    DEFINITION = k8s_schema.CORE + "Probe"


class EnvVar(ApiModel):
    """An environment variable of a container (core/v1 EnvVar). A literal value may use Go-template fields
    such as {{ .Model.Path }}, {{ .Service.Name }} and {{ .Service.Namespace }}."""

    name: str
    """Name of the environment variable."""
    value: str | None = None
    """Literal value (template-rendered); mutually exclusive with valueFrom."""
    value_from: EnvVarSource | None = None
    """Source of the value; passed through unchanged."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: pydantic_core.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> json_schema.JsonSchemaValue:
        return k8s_schema.structural(k8s_schema.CORE + "EnvVar")


class LocalObjectReference(ApiModel):
    """A reference to an object by name in the same namespace (core/v1 LocalObjectReference)."""

    name: str = ""
    """Name of the referent."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: pydantic_core.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> json_schema.JsonSchemaValue:
        return k8s_schema.structural(k8s_schema.CORE + "LocalObjectReference")


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
