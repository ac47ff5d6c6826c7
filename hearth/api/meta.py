"""Object metadata as Hearth reads it (meta/v1 ObjectMeta, the fields the operator uses)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic import alias_generators

#: The namespace of a namespaced object that names none (as kubectl and the API server assume).
DEFAULT_NAMESPACE = "default"


def namespace_of(obj: Mapping[str, Any]) -> str:
    """The namespace of a raw namespaced object (a watch event, a child), ``default`` when it names none."""
    return str((obj.get("metadata") or {}).get("namespace") or DEFAULT_NAMESPACE)


class ObjectMeta(pydantic.BaseModel):
    """The parts of metadata Hearth reads; everything else the API server sends is kept as-is."""

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel, populate_by_name=True, extra="allow", frozen=True
    )

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)
