"""The API reference: one page per kind, every field of the generated CRD schema (the one the API server
enforces) with its type, default, validation and description.

Fields whose schema is one of the Kubernetes core/v1 types the API embeds (env vars, probes, tolerations,
object references) are named, not expanded: they are upstream's, field for field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

from hearth.api import crd, k8s_schema
from hearth.docs import markdown as md

#: Kind -> the function building its CRD.
KINDS: dict[str, Callable[[], dict[str, Any]]] = {
    "LLMService": crd.llmservice_crd,
    "InferenceRuntime": crd.inferenceruntime_crd,
    "AcceleratorPool": crd.acceleratorpool_crd,
    "LLMGateway": crd.llmgateway_crd,
}
_K8S_API = "https://kubernetes.io/docs/reference/generated/kubernetes-api/v{version}/#{anchor}"


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    path: str
    type: str
    default: str
    validation: str
    description: str


Shape = tuple[tuple[str, "Shape"], ...]
Upstream = dict[Shape, tuple[str, tuple[str, ...]]]


def _shape(schema: dict[str, Any]) -> Shape:
    """The field names of *schema*, nested: what identifies an embedded type (the CRD conversion keeps
    upstream's fields but not every key of their schemas)."""
    while schema.get("type") == "array":
        schema = schema.get("items", {})
    return tuple(sorted((name, _shape(child)) for name, child in schema.get("properties", {}).items()))


def _descriptions(schema: dict[str, Any]) -> tuple[str, ...]:
    return tuple(child.get("description", "") for _, child in sorted(schema.get("properties", {}).items()))


def _upstream_types() -> dict[Shape, tuple[str, tuple[str, ...]]]:
    """Shape of each embedded core/v1 type -> its short name (EnvVar, Probe, ...) and field descriptions."""
    found = {}
    for name in k8s_schema.ROOTS:
        schema = k8s_schema.structural(name)
        found[_shape(schema)] = (name.rsplit(".", 1)[-1], _descriptions(schema))
    return found


def _upstream(schema: dict[str, Any], upstream: Upstream) -> str | None:
    shape = _shape(schema)
    if not shape or shape not in upstream:
        return None
    name, descriptions = upstream[shape]
    # One field ({name}) is too common a shape to tell by; upstream's description of it must match too.
    return name if len(shape) > 1 or _descriptions(schema) == descriptions else None


def _type(schema: dict[str, Any], upstream: Upstream) -> str:  # noqa: PLR0911
    if schema.get("x-kubernetes-int-or-string"):
        return "quantity" if "pattern" in schema else "integer or string"
    kind = schema.get("type", "")
    if kind == "array":
        return f"[]{_type(schema.get('items', {}), upstream)}"
    if kind == "object":
        name = _upstream(schema, upstream)
        if name:
            return f"core/v1 {name}"
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map[string]{_type(extra, upstream)}"
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return "object (any fields)"
        return "object"
    if schema.get("format"):
        return f"{kind} ({schema['format']})"
    return str(kind)


def _validation(schema: dict[str, Any], required: bool) -> str:
    rules = []
    if required:
        rules.append("required")
    if "enum" in schema:
        rules.append("one of " + ", ".join(md.code(value) for value in schema["enum"]))
    for key, word in (("minimum", "≥"), ("maximum", "≤")):
        if key in schema:
            rules.append(f"{word} {schema[key]}")
    for key, word in (("minLength", "length ≥"), ("maxLength", "length ≤")):
        if key in schema:
            rules.append(f"{word} {schema[key]}")
    for key, word in (("minItems", "items ≥"), ("maxItems", "items ≤"), ("minProperties", "keys ≥")):
        if key in schema:
            rules.append(f"{word} {schema[key]}")
    if "pattern" in schema and not schema.get("x-kubernetes-int-or-string"):
        rules.append("matches " + md.code(schema["pattern"]))
    if schema.get("x-kubernetes-list-type") == "map":
        rules.append(
            "keyed by " + ", ".join(md.code(key) for key in schema.get("x-kubernetes-list-map-keys", []))
        )
    for rule in schema.get("x-kubernetes-validations", []):
        rules.append(md.text(rule.get("message") or rule["rule"]))
    return "; ".join(rules)


def fields(schema: dict[str, Any], prefix: str, upstream: Upstream | None = None) -> Iterator[Field]:
    """Every field below *schema* (an object), depth first in declaration order."""
    upstream = _upstream_types() if upstream is None else upstream
    required = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        default = json.dumps(child["default"]) if "default" in child else ""
        yield Field(
            path=path,
            type=_type(child, upstream),
            default=default,
            validation=_validation(child, name in required),
            description=child.get("description", ""),
        )
        node = child
        while node.get("type") == "array":
            node = node.get("items", {})
            path += "[]"
        if node.get("type") == "object" and not _upstream(node, upstream):
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and extra.get("type") == "object":
                yield from fields(extra, f"{path}.<key>", upstream)
            yield from fields(node, path, upstream)


def _columns(definition: dict[str, Any]) -> str:
    version = definition["spec"]["versions"][0]
    rows = [
        [
            md.code(column["name"]),
            md.code(column["jsonPath"]),
            "`-o wide`" if column.get("priority") else "always",
            md.text(column.get("description", "")),
        ]
        for column in version.get("additionalPrinterColumns", [])
    ]
    return md.table(["column", "from", "shown", "meaning"], rows)


def page(kind: str) -> str:
    definition = KINDS[kind]()
    spec = definition["spec"]
    version = spec["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    names = spec["names"]
    facts = [
        f"`{spec['group']}/{version['name']}`, {spec['scope'].lower()}",
        f"plural `{names['plural']}`",
    ]
    if names.get("shortNames"):
        facts.append("short names " + ", ".join(f"`{short}`" for short in names["shortNames"]))
    if names.get("categories"):
        facts.append("categories " + ", ".join(f"`{category}`" for category in names["categories"]))
    intro = md.text(schema.get("description", "")) + "\n\n" + "; ".join(facts) + "."
    upstream = _upstream_types()
    core = k8s_schema.kubernetes_version()
    note = (
        f"Types named `core/v1 ...` are Kubernetes' own ({core}), accepted field for field as in a Pod: "
        "see the Kubernetes API reference. Defaults apply when a field is omitted; validation is done by "
        "the API server from the CRD schema, so a refused object names the field."
    )
    rules = [
        md.text(rule.get("message") or rule["rule"]) for rule in schema.get("x-kubernetes-validations", [])
    ]
    parts = [intro, note]
    if rules:
        parts.append("Object rules:\n\n" + "\n".join(f"- {rule}" for rule in rules) + "\n")
    parts.append("## `kubectl get` columns\n\n" + _columns(definition))
    headers = ["field", "type", "default", "validation", "description"]
    for section in ("spec", "status"):
        node = schema["properties"].get(section)
        if node is None:
            continue
        rows = [
            [md.code(f.path), md.text(f.type), md.code(f.default), f.validation, md.text(f.description)]
            for f in fields(node, section, upstream)
        ]
        parts.append(
            f"## `{section}`\n\n" + md.text(node.get("description", "")) + "\n\n" + md.table(headers, rows)
        )
    return md.page(kind, f"the {kind} CRD schema (hearth/api, hearth.api.crd)", *parts)
