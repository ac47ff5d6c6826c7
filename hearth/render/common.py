"""Pieces every rendered object shares: metadata with the controller owner reference, and env vars."""

from __future__ import annotations

from typing import Any, Protocol

from hearth.api.core import EnvVar
from hearth.api.llmservice import LLMService
from hearth.api.meta import ObjectMeta
from hearth.api.runtime import InferenceRuntime
from hearth.render import names


class Owner(Protocol):
    """What owns rendered children: an LLMService or an LLMGateway."""

    @property
    def api_version(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def metadata(self) -> ObjectMeta: ...

    @property
    def namespace(self) -> str: ...


def owner_reference(service: Owner) -> dict[str, Any]:
    """The controller reference that makes Kubernetes garbage-collect a child with its owner."""
    return {
        "apiVersion": service.api_version,
        "kind": service.kind,
        "name": service.metadata.name,
        "uid": service.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(service: Owner, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Child metadata; the owner reference needs the owner's uid, so offline renders (no uid) omit it."""
    result: dict[str, Any] = {
        "name": name,
        "namespace": service.namespace,
        "labels": labels,
    }
    if service.metadata.uid:
        result["ownerReferences"] = [owner_reference(service)]
    return result


def env_entry(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def env_var(env: EnvVar, value: str | None) -> dict[str, Any]:
    """An env var as written to a container; *value* is the rendered literal value, if any."""
    entry: dict[str, Any] = {"name": env.name}
    if value is not None:
        entry["value"] = value
    if env.value_from is not None:
        entry["valueFrom"] = env.value_from.to_wire()
    return entry


def pull_secrets(service: LLMService) -> list[dict[str, Any]]:
    return [secret.to_wire() for secret in service.spec.image_pull_secrets or []]


def placement(service: LLMService, runtime: InferenceRuntime) -> dict[str, Any]:
    """Pod fields that put a pod where the runtime's devices are (backend and prewarm pods alike):
    pull secrets, nodeSelector, tolerations and schedulerName."""
    accelerator = runtime.spec.accelerator
    fields: dict[str, Any] = {}
    if service.spec.image_pull_secrets:
        fields["imagePullSecrets"] = pull_secrets(service)
    if accelerator.node_selector:
        fields["nodeSelector"] = dict(accelerator.node_selector)
    if accelerator.tolerations:
        fields["tolerations"] = [toleration.to_wire() for toleration in accelerator.tolerations]
    if accelerator.scheduler and accelerator.scheduler.name:
        fields["schedulerName"] = accelerator.scheduler.name
    return fields


def template_metadata(labels: dict[str, str], runtime: InferenceRuntime) -> dict[str, Any]:
    """Pod-template metadata: *labels*, plus the Volcano queue annotation when the runtime names a queue."""
    metadata: dict[str, Any] = {"labels": labels}
    scheduler = runtime.spec.accelerator.scheduler
    if scheduler and scheduler.queue:
        metadata["annotations"] = {names.VOLCANO_QUEUE_ANNOTATION: scheduler.queue}
    return metadata
