"""Reading API objects from YAML documents (bundled runtimes, ``hearth render -f``), with errors that name
the file, the object and the field."""

from __future__ import annotations

from typing import Any

import pydantic
import yaml

from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime

ApiObject = LLMService | InferenceRuntime
_KINDS: dict[str, type[LLMService] | type[InferenceRuntime]] = {
    "LLMService": LLMService,
    "InferenceRuntime": InferenceRuntime,
}


class LoadError(ValueError):
    """A document that is not a valid Hearth object."""


def parse_object(document: Any, *, source: str) -> ApiObject:
    """Validate one decoded YAML/JSON document as an LLMService or InferenceRuntime."""
    if not isinstance(document, dict):
        raise LoadError(f"{source}: expected a Kubernetes object, got {type(document).__name__}")
    kind = document.get("kind")
    model = _KINDS.get(str(kind))
    if model is None:
        raise LoadError(f"{source}: kind {kind!r} is not a Hearth kind (expected one of {', '.join(_KINDS)})")
    name = (document.get("metadata") or {}).get("name", "<unnamed>")
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise LoadError(f"{source}: {kind} {name!r} is invalid: {problems}") from None


def load_all(text: str, *, source: str) -> list[ApiObject]:
    """Every Hearth object in a multi-document YAML text (empty documents skipped)."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise LoadError(f"{source}: not valid YAML: {error}") from None
    return [
        parse_object(doc, source=f"{source} (document {index + 1})") for index, doc in enumerate(documents)
    ]
