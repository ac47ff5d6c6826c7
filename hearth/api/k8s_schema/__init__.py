"""The Kubernetes core/v1 schemas the Hearth API embeds (env vars, probes, tolerations, object references),
taken from the upstream OpenAPI document instead of being modelled by hand.

``core_v1.json`` beside this module is generated (``python -m hearth.api.k8s_schema.generate``) from the
OpenAPI v3 document of the Kubernetes release in its ``provenance``; README.md says how to refresh it.
This module turns those definitions into CRD structural schemas (references inlined, int-or-string
markers, upstream ``x-kubernetes-list-type``/``map-type``/``list-map-keys`` kept, so server-side apply
merges these fields as it does in a Pod) and checks values against them, so a typo is refused here with
its path just as the API server refuses it.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

from hearth.api import quantity

CORE = "io.k8s.api.core.v1."
#: Definitions the API models embed as a whole.
ROOTS = (
    CORE + "EnvVar",
    CORE + "EnvVarSource",
    CORE + "Probe",
    CORE + "Toleration",
    CORE + "LocalObjectReference",
)
#: Pod and container fields the API models mirror: their list and map markers are copied onto ours.
FIELDS = (
    (CORE + "Container", "env"),
    (CORE + "PodSpec", "tolerations"),
    (CORE + "PodSpec", "imagePullSecrets"),
    (CORE + "PodSpec", "nodeSelector"),
)
MARKERS = ("x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type")

_FILE = "core_v1.json"
_REF_PREFIX = "#/components/schemas/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# What a CRD's JSONSchemaProps can carry; upstream's patch-strategy and union extensions are not among them.
_KEPT = (
    "description",
    "type",
    "format",
    "items",
    "properties",
    "required",
    "additionalProperties",
    *MARKERS,
)
_INT32 = (-(2**31), 2**31 - 1)


def source_file() -> Path:
    """Where the generator writes (a checkout); reading goes through importlib.resources (frozen too)."""
    return Path(__file__).with_name(_FILE)


@functools.cache
def _document() -> dict[str, Any]:
    text = importlib.resources.files(__name__).joinpath(_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def provenance() -> dict[str, str]:
    return dict(_document()["provenance"])


def kubernetes_version() -> str:
    return str(_document()["provenance"]["kubernetesVersion"])


def _resolve(
    schema: dict[str, Any], definitions: dict[str, Any], *, in_items: bool = False
) -> dict[str, Any]:
    schema = dict(schema)
    only = schema.pop("allOf", None)
    reference = schema.pop("$ref", None)
    if only is not None:
        (inner,) = only  # upstream wraps every reference as allOf: [{$ref}] so siblings can describe it
        reference = inner["$ref"]
    if reference is not None:
        name = reference.removeprefix(_REF_PREFIX)
        target = _special(name) or _resolve(definitions[name], definitions)
        siblings = _resolve(schema, definitions, in_items=in_items)
        return {**target, **siblings}
    result: dict[str, Any] = {}
    default = schema.get("default")
    # Upstream's scalar defaults are its +default markers (e.g. LocalObjectReference.name ""), which the
    # list-map keys rely on; object and item defaults are only Go zero values and would alter stored objects.
    if isinstance(default, str | bool | int | float) and not in_items:
        result["default"] = default
    for key in _KEPT:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            value = {name: _resolve(prop, definitions) for name, prop in sorted(value.items())}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            value = _resolve(value, definitions, in_items=True)
        elif key == "required":
            value = sorted(value)
        result[key] = value
    return result


def _special(name: str) -> dict[str, Any] | None:
    """Types a structural schema spells differently from OpenAPI's oneOf."""
    if name == _INT_OR_STRING:
        return {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
    if name == _QUANTITY:
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": quantity.PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    return None


@functools.cache
def _structural(name: str) -> str:
    definitions = _document()["definitions"]
    return json.dumps(_special(name) or _resolve(definitions[name], definitions))


def structural(name: str) -> dict[str, Any]:
    """The CRD structural schema of upstream definition *name* (a fresh copy)."""
    loaded: dict[str, Any] = json.loads(_structural(name))
    return loaded


def field(owner: str, name: str) -> dict[str, Any]:
    """The structural schema of upstream field *owner*.*name* (e.g. Container.env), items inlined."""
    definitions = _document()["definitions"]
    return _resolve(_document()["fields"][f"{owner}.{name}"], definitions)


def markers(owner: str, name: str) -> dict[str, Any]:
    """Only the list/map markers of upstream field *owner*.*name*, to put on the field mirroring it."""
    upstream = _document()["fields"][f"{owner}.{name}"]
    return {key: upstream[key] for key in MARKERS if key in upstream}


def check(name: str, value: Any) -> None:
    """Raise ValueError naming the path when *value* does not fit upstream definition *name*."""
    _check(structural(name), value, "")


def _check(schema: dict[str, Any], value: Any, path: str) -> None:
    where = path or "value"
    if value is None:
        return  # the API server drops nulls; an absent field is always allowed
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{where}: must be an integer or a string")
        if "pattern" in schema and isinstance(value, str) and not re.match(schema["pattern"], value):
            raise ValueError(f"{where}: {value!r} is not a valid quantity")
        return
    kind = schema.get("type")
    if kind == "object":
        _check_object(schema, value, path)
    elif kind == "array":
        if not isinstance(value, list):
            raise ValueError(f"{where}: must be a list")
        for index, item in enumerate(value):
            _check(schema.get("items", {}), item, f"{path}[{index}]")
    else:
        _check_scalar(schema, value, where)


def _check_scalar(schema: dict[str, Any], value: Any, where: str) -> None:
    kind = schema.get("type")
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"{where}: must be a string")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: must be an integer")
        if schema.get("format") == "int32" and not _INT32[0] <= value <= _INT32[1]:
            raise ValueError(f"{where}: {value} does not fit in int32")
    elif kind == "boolean" and not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false")
    elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{where}: must be a number")


def _check_object(schema: dict[str, Any], value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{path or 'value'}: must be an object")
    prefix = f"{path}." if path else ""
    properties: dict[str, Any] | None = schema.get("properties")
    if properties is not None:
        for key, item in value.items():
            if key not in properties:
                raise ValueError(f"{prefix}{key}: unknown field (Kubernetes {kubernetes_version()})")
            _check(properties[key], item, f"{prefix}{key}")
        for key in schema.get("required", []):
            if value.get(key) is None:
                raise ValueError(f"{prefix}{key}: required")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            _check(extra, item, f"{prefix}{key}")
