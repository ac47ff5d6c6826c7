"""Reading API objects from YAML documents (bundled runtimes, ``hearth render -f``), with errors that name
the file, the object and the field, in one line of bounded length whatever the document holds (a hostile or
broken manifest gets a message, never a traceback or a megabyte of text)."""

from __future__ import annotations

import re
import reprlib
from typing import Any

import pydantic
import yaml

from hearth.api.llmgateway import LLMGateway
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime

ApiObject = LLMService | InferenceRuntime | LLMGateway
_KINDS: dict[str, type[LLMService] | type[InferenceRuntime] | type[LLMGateway]] = {
    "LLMService": LLMService,
    "InferenceRuntime": InferenceRuntime,
    "LLMGateway": LLMGateway,
}
#: Validation problems listed in one error; the rest are counted.
MAX_PROBLEMS = 5
MAX_PROBLEM_CHARS = 200
# Kubernetes object names (RFC 1123 subdomain) and namespaces (RFC 1123 label).
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60


class LoadError(ValueError):
    """A document that is not a valid Hearth object (its message is one printable line)."""

    def __init__(self, message: str) -> None:
        super().__init__(_printable(message))


def _printable(text: str) -> str:
    # Keys and values come from the file: a newline or control character in one must not split the line.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def short(value: Any) -> str:
    """A bounded repr for messages (integers too long to print are named by their size)."""
    try:
        return _SHORT.repr(value)
    except ValueError:
        return f"<an integer of about {value.bit_length() * 3 // 10} digits>"


def namespace_problem(value: Any) -> str | None:
    """What is wrong with *value* as a namespace, or None."""
    if not isinstance(value, str) or len(value) > 63 or not _LABEL.fullmatch(value):
        return f"{short(value)} is not a valid namespace (lower-case letters, digits and '-', at most 63)"
    return None


def _metadata_problem(document: dict[Any, Any]) -> str | None:
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return f"metadata: expected a mapping with a name, got {short(metadata)}"
    name = metadata.get("name")
    if name is None or name == "":
        return "metadata.name: required"
    if not isinstance(name, str) or len(name) > 253 or not _NAME.fullmatch(name):
        return f"metadata.name: {short(name)} is not a valid Kubernetes name (lower-case RFC 1123)"
    if "namespace" in metadata:
        problem = namespace_problem(metadata["namespace"])
        if problem is not None:
            return f"metadata.namespace: {problem}"
    return None


def _problems(error: pydantic.ValidationError) -> str:
    issues = error.errors(include_url=False, include_input=False)
    shown = [
        f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"[:MAX_PROBLEM_CHARS]
        for issue in issues[:MAX_PROBLEMS]
    ]
    if len(issues) > MAX_PROBLEMS:
        shown.append(f"and {len(issues) - MAX_PROBLEMS} more problems")
    return "; ".join(shown)


def parse_object(document: Any, *, source: str) -> ApiObject:
    """Validate one decoded YAML/JSON document as an LLMService, InferenceRuntime or LLMGateway."""
    if not isinstance(document, dict):
        raise LoadError(f"{source}: expected a Kubernetes object, got {type(document).__name__}")
    kind = document.get("kind")
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise LoadError(
            f"{source}: kind {short(kind)} is not a Hearth kind (expected one of {', '.join(_KINDS)})"
        )
    problem = _metadata_problem(document)
    if problem is not None:
        raise LoadError(f"{source}: {kind} is invalid: {problem}")
    name = document["metadata"]["name"]
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as error:
        raise LoadError(f"{source}: {kind} {name!r} is invalid: {_problems(error)}") from None
    except RecursionError:
        raise LoadError(f"{source}: {kind} {name!r} is invalid: nested too deeply") from None


def load_all(text: str, *, source: str) -> list[ApiObject]:
    """Every Hearth object in a multi-document YAML text (empty documents skipped)."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        # PyYAML's message spans lines (context, a caret under the column): keep its first and its mark.
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
        raise LoadError(f"{source}: not valid YAML{where}: {str(reason)[:MAX_PROBLEM_CHARS]}") from None
    except RecursionError:
        raise LoadError(f"{source}: not valid YAML: nested too deeply") from None
    except ValueError as error:
        # A scalar PyYAML cannot convert: an integer past Python's 4300-digit limit, a date like 2026-13-45.
        first = (str(error).strip().splitlines() or ["unreadable value"])[0]
        raise LoadError(f"{source}: not valid YAML: {first[:MAX_PROBLEM_CHARS]}") from None
    return [
        parse_object(doc, source=f"{source} (document {index + 1})") for index, doc in enumerate(documents)
    ]
