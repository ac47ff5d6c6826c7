"""Generates the CustomResourceDefinitions from the API models.

pydantic's JSON Schema is turned into a Kubernetes *structural* schema: references inlined, ``null``
alternatives dropped (the API server prunes nulls), titles removed, ``x-kubernetes-*`` markers and CEL rules
kept. ``python -m hearth.install.generate`` writes them where they are read (the bundle, ``crds/``, the
Helm chart); a test fails when a copy drifts.
"""

from __future__ import annotations

from typing import Any

import pydantic
import yaml

from hearth.api import GROUP, VERSION, fallback, llmgateway, llmservice, runtime
from hearth.api import pool as pool_api
from hearth.api.base import ApiModel

CATEGORY = "hearth"

# Keys that survive into the structural schema, in the order they are written (readable YAML diffs).
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "anyOf",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
)


def structural_schema(model: type[ApiModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of *model* (camelCase properties, all references inlined)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    return _convert(schema, definitions)


def _convert(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema)
    reference = schema.pop("$ref", None)
    if reference is not None:
        # Sibling keys (description, default) describe the field and win over the referenced model's own.
        target = definitions[reference.rsplit("/", 1)[-1]]
        return _convert({**target, **schema}, definitions)
    if "allOf" in schema and len(schema["allOf"]) == 1:
        (only,) = schema.pop("allOf")
        return _convert({**only, **schema}, definitions)
    if "anyOf" in schema and not schema.get("x-kubernetes-int-or-string"):
        options = [option for option in schema.pop("anyOf") if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union of {options} in a structural schema")
        return _convert({**options[0], **schema}, definitions)
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
        schema.setdefault("type", "string")
    if schema.get("default", 0) is None:
        del schema["default"]
    # pydantic's additionalProperties=false means extra=forbid; a structural schema prunes unknown fields.
    if schema.get("additionalProperties") is False:
        del schema["additionalProperties"]
    result = {key: _convert_value(key, schema[key], definitions) for key in _KEY_ORDER if key in schema}
    if result.get("type") == "object" and "properties" not in result and "additionalProperties" not in result:
        result["x-kubernetes-preserve-unknown-fields"] = True
    return result


def _convert_value(key: str, value: Any, definitions: dict[str, Any]) -> Any:
    if key == "properties":
        return {name: _convert(prop, definitions) for name, prop in sorted(value.items())}
    if key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
        return _convert(value, definitions)
    if key == "required":
        return sorted(value)
    if key == "description":
        # Attribute docstrings wrap lines; kubectl explain re-wraps, so keep one line per paragraph.
        return "\n\n".join(" ".join(part.split()) for part in value.split("\n\n"))
    return value


def _object_schema(
    *,
    model: type[pydantic.BaseModel],
    spec: type[ApiModel],
    status: type[ApiModel],
    extra_rules: list[dict[str, Any]],
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "description": (model.__doc__ or "").strip(),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "Versioned schema of this object: serving.hearth.dev/v1alpha1.",
                "type": "string",
            },
            "kind": {"description": "REST resource this object represents.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec),
            "status": structural_schema(status),
        },
        "required": ["spec"],
    }
    if extra_rules:
        schema["x-kubernetes-validations"] = extra_rules
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    scope: str,
    short_names: list[str],
    columns: list[dict[str, Any]],
    schema: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "hearth", "app.kubernetes.io/part-of": "hearth"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": [CATEGORY],
            },
            "scope": scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def llmservice_crd() -> dict[str, Any]:
    name_rule = {
        "rule": f"size(self.metadata.name) <= {llmservice.MAX_NAME_LENGTH} && "
        f"self.metadata.name.matches('{llmservice.NAME_PATTERN}')",
        "message": f"metadata.name must be a lowercase DNS label of at most {llmservice.MAX_NAME_LENGTH} "
        "characters starting with a letter (Hearth derives Service names such as <name>-backend from it)",
        "reason": "FieldValueInvalid",
    }
    columns: list[dict[str, Any]] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Runtime", "type": "string", "jsonPath": ".status.resolvedRuntime"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas", "priority": 1},
        {"name": "Model", "type": "string", "jsonPath": ".spec.model.source.uri", "priority": 1},
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpointURL", "priority": 1},
        {
            "name": "Gateway",
            "type": "string",
            "jsonPath": ".status.gateway",
            "description": "the LLMGateway serving this model (empty: its own dedicated gateway)",
            "priority": 1,
        },
        {
            "name": "Saved-h",
            "type": "number",
            "jsonPath": ".status.accounting.savedAcceleratorHours",
            "description": "accelerator-hours saved by scaling to zero (at the last change)",
            "priority": 1,
        },
        {"name": "Last-wake-s", "type": "number", "jsonPath": ".status.lastWake.totalSeconds", "priority": 1},
        {"name": "Pool", "type": "string", "jsonPath": ".spec.pool.name", "priority": 1},
        {
            "name": "Pool-state",
            "type": "string",
            "jsonPath": ".status.pool.state",
            "description": "Holding, Waiting, Evicted, Idle or Refused (status.pool.reason says why)",
            "priority": 1,
        },
        {
            "name": "Window",
            "type": "string",
            "jsonPath": ".status.warmWindow.name",
            "description": "the warm window in force (spec.scaling.schedules; empty outside every window)",
            "priority": 1,
        },
        {
            "name": "Window-state",
            "type": "string",
            "jsonPath": ".status.warmWindow.state",
            "description": "Warming (woken ahead of its start) or Open",
            "priority": 1,
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    schema = _object_schema(
        model=llmservice.LLMService,
        spec=llmservice.LLMServiceSpec,
        status=llmservice.LLMServiceStatus,
        extra_rules=[name_rule, fallback.SELF_REFERENCE_RULE],
    )
    return _crd(
        kind=llmservice.KIND,
        plural=llmservice.PLURAL,
        scope="Namespaced",
        short_names=["llmsvc", "llms"],
        columns=columns,
        schema=schema,
    )


def inferenceruntime_crd() -> dict[str, Any]:
    columns: list[dict[str, Any]] = [
        {"name": "Family", "type": "string", "jsonPath": ".spec.family"},
        {"name": "Vendor", "type": "string", "jsonPath": ".spec.vendor"},
        {"name": "Resource", "type": "string", "jsonPath": ".spec.accelerator.resourceName"},
        {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"},
        {"name": "Image", "type": "string", "jsonPath": ".spec.container.image", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    schema = _object_schema(
        model=runtime.InferenceRuntime,
        spec=runtime.InferenceRuntimeSpec,
        status=runtime.InferenceRuntimeStatus,
        extra_rules=[],
    )
    return _crd(
        kind=runtime.KIND,
        plural=runtime.PLURAL,
        scope="Cluster",
        short_names=["infrt"],
        columns=columns,
        schema=schema,
    )


def acceleratorpool_crd() -> dict[str, Any]:
    columns: list[dict[str, Any]] = [
        {"name": "Resource", "type": "string", "jsonPath": ".spec.resourceName"},
        {"name": "Devices", "type": "integer", "jsonPath": ".spec.devices"},
        {
            "name": "In-use",
            "type": "integer",
            "jsonPath": ".status.devicesInUse",
            "description": "devices its members hold now (draining pods included)",
        },
        {
            "name": "Waiting",
            "type": "integer",
            "jsonPath": ".status.waitingCount",
            "description": "members waiting for devices (status.waiting says why)",
        },
        {
            "name": "Evictions",
            "type": "integer",
            "jsonPath": ".status.recentEvictions",
            "description": "evictions within the swap-limit window",
        },
        {"name": "Min-warm", "type": "string", "jsonPath": ".spec.minWarm", "priority": 1},
        {"name": "Idle-grace", "type": "string", "jsonPath": ".spec.idleGrace", "priority": 1},
        {"name": "Last-eviction", "type": "string", "jsonPath": ".status.lastEviction", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    schema = _object_schema(
        model=pool_api.AcceleratorPool,
        spec=pool_api.AcceleratorPoolSpec,
        status=pool_api.AcceleratorPoolStatus,
        extra_rules=[],
    )
    return _crd(
        kind=pool_api.KIND,
        plural=pool_api.PLURAL,
        scope="Cluster",
        short_names=["accpool"],
        columns=columns,
        schema=schema,
    )


def llmgateway_crd() -> dict[str, Any]:
    name_rule = {
        "rule": f"size(self.metadata.name) <= {llmgateway.MAX_NAME_LENGTH} && "
        f"self.metadata.name.matches('{llmgateway.NAME_PATTERN}')",
        "message": f"metadata.name must be a lowercase DNS label of at most {llmgateway.MAX_NAME_LENGTH} "
        "characters starting with a letter (Hearth derives Service names such as <name>-gateway from it)",
        "reason": "FieldValueInvalid",
    }
    columns: list[dict[str, Any]] = [
        {
            "name": "Models",
            "type": "integer",
            "jsonPath": ".status.modelCount",
            "description": "LLMServices routed (status.models names them)",
        },
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Address", "type": "string", "jsonPath": ".status.endpointURL"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    schema = _object_schema(
        model=llmgateway.LLMGateway,
        spec=llmgateway.LLMGatewaySpec,
        status=llmgateway.LLMGatewayStatus,
        extra_rules=[name_rule],
    )
    return _crd(
        kind=llmgateway.KIND,
        plural=llmgateway.PLURAL,
        scope="Namespaced",
        short_names=["llmgw"],
        columns=columns,
        schema=schema,
    )


def to_yaml(document: dict[str, Any]) -> str:
    header = "# Generated by `python -m hearth.install.generate` from hearth/api; do not edit by hand.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def generated_files() -> dict[str, str]:
    """File name → YAML text of every CRD (written by :mod:`hearth.install.generate`)."""
    return {
        f"{llmservice.PLURAL}.{GROUP}.yaml": to_yaml(llmservice_crd()),
        f"{runtime.PLURAL}.{GROUP}.yaml": to_yaml(inferenceruntime_crd()),
        f"{pool_api.PLURAL}.{GROUP}.yaml": to_yaml(acceleratorpool_crd()),
        f"{llmgateway.PLURAL}.{GROUP}.yaml": to_yaml(llmgateway_crd()),
    }
