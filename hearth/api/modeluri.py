"""Resolving ``spec.model.source.uri`` (SPEC §5.1) into what the backend needs: the model path the engine is
given, the claim to mount, and how to prewarm it.

A hub source may name one file after the repository, ``hf://<org>/<repo>/<file>`` (e.g. a GGUF for
llama.cpp): ``hearth fetch`` puts it in the Hugging Face cache and links it at :func:`fetched_file`, a
path known before the download (the snapshot's commit is not), which is what such an engine is given.
The env an engine needs for a hub (``VLLM_USE_MODELSCOPE``) is its family's (:mod:`hearth.api.engines`)."""

from __future__ import annotations

import dataclasses
import posixpath
import re

from hearth.api.llmservice import ModelSpec

#: Where a ``pvc://`` claim is mounted in the serving container.
PVC_MOUNT_PATH = "/models"
#: Under the Hugging Face cache's home (``HF_HOME``): where ``hearth fetch`` links each file a source names,
#: at ``<org>/<repo>/<file>``, to the file in the snapshot it downloaded.
FETCHED_FILES_DIR = "hearth-files"
#: The hubs ``hearth fetch`` downloads from (its source registry, ``hearth.fetch.sources``, has a scheme for
#: each; a test keeps the two in agreement). The prewarm Job of any other hub runs the engine image's Python.
FETCHED_HUBS = frozenset({"huggingface"})

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
    #: What ``{{ .Model.Path }}`` renders to for an engine that loads repositories: the reference after the
    #: scheme verbatim, or ``/models[/<subpath>]`` for a claim.
    path: str
    #: The claim mounted read-only at ``/models`` (pvc sources only).
    claim: str | None = None
    #: The source URI as written (what ``hearth fetch`` is given).
    uri: str = ""
    #: The hub repository (``org/name``; hub sources only).
    repo: str | None = None
    #: The file the source names inside the repository (``hf://org/name/<file>``), if any.
    file: str | None = None

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
        return _resolve_hub(uri, _HUB_SCHEMES[scheme], reference)
    if scheme == "pvc":
        return _resolve_claim(uri, reference)
    raise ModelResolutionError(
        f'model.source.uri "{uri}": scheme "{scheme}://" is not supported yet (use hf://, huggingface://, '
        "modelscope:// or pvc://)"
    )


def _resolve_hub(uri: str, hub: str, reference: str) -> ResolvedModel:
    org, _, rest = reference.partition("/")
    name, _, file = rest.partition("/")
    if not org or not name:
        # As the reference: the repo id is passed through, and the engine says what it makes of it.
        return ResolvedModel(hub=hub, path=reference, uri=uri)
    if file and (file.startswith("/") or posixpath.normpath(file) != file or file.split("/")[0] == ".."):
        raise ModelResolutionError(
            f'model.source.uri "{uri}": file "{file}" must be a clean path inside the repository'
        )
    return ResolvedModel(hub=hub, path=reference, uri=uri, repo=f"{org}/{name}", file=file or None)


def fetched_file(hf_home: str, repo: str, file: str) -> str:
    """Where ``hearth fetch`` links *file* of *repo* under the cache home *hf_home*."""
    return posixpath.join(hf_home, FETCHED_FILES_DIR, repo, file)


def _resolve_claim(uri: str, reference: str) -> ResolvedModel:
    claim, _, subpath = reference.partition("/")
    if not _DNS1123_SUBDOMAIN.match(claim) or len(claim) > 253:
        raise ModelResolutionError(
            f'model.source.uri "{uri}": "{claim}" is not a valid PersistentVolumeClaim name '
            "(a DNS-1123 subdomain)"
        )
    if not subpath:
        return ResolvedModel(hub="pvc", path=PVC_MOUNT_PATH, claim=claim, uri=uri)
    if subpath.startswith("/") or posixpath.normpath(subpath) != subpath:
        raise ModelResolutionError(
            f'model.source.uri "{uri}": subpath "{subpath}" must be relative and already clean '
            f'(e.g. "{posixpath.normpath(subpath).lstrip("/")}")'
        )
    if subpath == ".." or subpath.startswith("../"):
        raise ModelResolutionError(
            f'model.source.uri "{uri}": subpath "{subpath}" must stay inside the claim'
        )
    return ResolvedModel(hub="pvc", path=f"{PVC_MOUNT_PATH}/{subpath}", claim=claim, uri=uri)
