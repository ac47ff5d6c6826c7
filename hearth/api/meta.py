"""Object metadata as Hearth reads it (meta/v1 ObjectMeta, the fields the operator uses)."""

from __future__ import annotations

import pydantic
from pydantic import alias_generators


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
