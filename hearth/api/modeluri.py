"""Resolving ``spec.model.source.uri`` (SPEC §5.1) into what the backend needs: the model path vLLM is
given, the env it needs, the claim to mount, and how to prewarm it."""

from __future__ import annotations

import dataclasses
import posixpath
import re

from hearth.api.llmservice import ModelSpec

#: Where a ``pvc://`` claim is mounted in the serving container.
PVC_MOUNT_PATH = "/models"

# DNS-1123 subdomain: what a PersistentVolumeClaim name must be.
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HUB_SCHEMES = {"hf": "huggingface", "huggingface": "huggingface", "modelscope": "modelscope"}


class ModelResolutionError(ValueError):
    """A model source that cannot be served (reconcile reason ``ModelResolution``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model source resolved for rendering."""

    #: ``huggingface``, ``modelscope`` or ``pvc``.
    hub: str
    #: What ``{{ .Model.Path }}`` renders to: the repo id, or ``/models[/<subpath>]`` for a claim.
    path: str
    #: Env for the serving and prewarm containers (``VLLM_USE_MODELSCOPE=true`` for modelscope).
    env: tuple[tuple[str, str], ...] = ()
    #: The claim mounted read-only at ``/models`` (pvc sources only).
    claim: str | None = None

    @property
    def prewarmable(self) -> bool:
        """Whether a download Job can fetch it (claims are already local)."""
        return self.hub != "pvc"


def resolve(model: ModelSpec) -> ResolvedModel:
    """Resolve the model of an LLMService, with the reference's error cases and clearer messages."""
    source = model.source
    if source is None or not source.uri:
        if model.catalog_ref:
            raise ModelResolutionError(
                f'model.catalogRef "{model.catalog_ref}" cannot be resolved: '
                "catalog lookup is not implemented; set model.source.uri"
            )
        raise ModelResolutionError("model.source.uri is required")
    if source.secret_ref is not None:
        raise ModelResolutionError(
            "model.source.secretRef is not supported yet: private sources are not implemented"
        )
    return resolve_uri(source.uri)


def resolve_uri(uri: str) -> ResolvedModel:
    scheme, separator, reference = uri.partition("://")
    if not separator or not scheme:
        raise ModelResolutionError(
            f'model.source.uri "{uri}" is not a URI: '
            "use hf://<repo>, modelscope://<repo> or pvc://<claim>[/<subpath>]"
        )
    if not reference:
        raise ModelResolutionError(f'model.source.uri "{uri}" has nothing after "{scheme}://"')
    if scheme in _HUB_SCHEMES:
        hub = _HUB_SCHEMES[scheme]
        env = (("VLLM_USE_MODELSCOPE", "true"),) if hub == "modelscope" else ()
        return ResolvedModel(hub=hub, path=reference, env=env)
    if scheme == "pvc":
        return _resolve_claim(uri, reference)
    raise ModelResolutionError(
        f'model.source.uri "{uri}": scheme "{scheme}://" is not supported yet (use hf://, huggingface://, '
        "modelscope:// or pvc://)"
    )


def _resolve_claim(uri: str, reference: str) -> ResolvedModel:
    claim, _, subpath = reference.partition("/")
    if not _DNS1123_SUBDOMAIN.match(claim) or len(claim) > 253:
        raise ModelResolutionError(
            f'model.source.uri "{uri}": "{claim}" is not a valid PersistentVolumeClaim name '
            "(a DNS-1123 subdomain)"
        )
    if not subpath:
        return ResolvedModel(hub="pvc", path=PVC_MOUNT_PATH, claim=claim)
    if subpath.startswith("/") or posixpath.normpath(subpath) != subpath:
        raise ModelResolutionError(
            f'model.source.uri "{uri}": subpath "{subpath}" must be relative and already clean '
            f'(e.g. "{posixpath.normpath(subpath).lstrip("/")}")'
        )
    if subpath == ".." or subpath.startswith("../"):
        raise ModelResolutionError(
            f'model.source.uri "{uri}": subpath "{subpath}" must stay inside the claim'
        )
    return ResolvedModel(hub="pvc", path=f"{PVC_MOUNT_PATH}/{subpath}", claim=claim)
