"""The model sources (SPEC §5.1, issue 26): one registry keyed by URI scheme, saying for each what
``{{ .Model.Path }}`` becomes, whether ``hearth fetch`` downloads it (the prewarm Job, from the hearth image),
whether the engine can read only the fetched copy, and which Secret shape ``model.source.secretRef`` names.
Adding a scheme is an entry in :data:`SCHEMES` (with its resolver below), its fetcher in
:mod:`hearth.fetch.sources`, its test and a row in the docs' sources table.

A hub source may name one file after the repository, ``hf://<org>/<repo>/<file>`` (e.g. a GGUF for
llama.cpp): ``hearth fetch`` puts it in the Hugging Face cache and links it at :func:`fetched_file`, a
path known before the download (the snapshot's commit is not), which is what such an engine is given.

``oci://`` and ``s3://`` models are plain files no engine downloads itself: ``hearth fetch`` writes them to a
folder of the model cache named by the source (:attr:`ResolvedModel.folder`, promoted whole once verified),
and the engine is given that folder (or the one file the URI names in it). The env an engine needs for a hub
(``VLLM_USE_MODELSCOPE``) is its family's (:mod:`hearth.api.engines`)."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import posixpath
import re
import urllib.parse
from collections.abc import Callable, Mapping

from hearth.api.llmservice import ModelSpec

#: Where a ``pvc://`` claim is mounted in the serving container.
PVC_MOUNT_PATH = "/models"
#: Under the Hugging Face cache's home (``HF_HOME``): where ``hearth fetch`` links each file a source names,
#: at ``<org>/<repo>/<file>``, to the file in the snapshot it downloaded.
FETCHED_FILES_DIR = "hearth-files"
#: The env ``hearth fetch`` reads for the root of the plain-file model cache (``oci://``, ``s3://``).
MODEL_CACHE_ENV = "HEARTH_MODEL_CACHE"
#: The file ``hearth fetch`` writes last into a plain-file model's folder, before promoting it: a folder
#: without it is never read (the readiness marker).
READY_MARKER = ".hearth-ready"

# DNS-1123 subdomain: what a PersistentVolumeClaim name must be.
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The OCI distribution spec's repository name grammar (path components) and a registry host[:port].
_OCI_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_OCI_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9a-fA-F:.]+\](?::[0-9]{1,5})?$")
_SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# An S3 bucket name (the common rules; AWS's are stricter for new buckets).
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_DEFAULT_REGION = "us-east-1"
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


class ModelResolutionError(ValueError):
    """A model source that cannot be served (reconcile reason ``ModelResolution``)."""


class Credentials(enum.StrEnum):
    """The Secret shape ``model.source.secretRef`` names for a scheme."""

    #: A ``kubernetes.io/dockerconfigjson`` Secret (key ``.dockerconfigjson``), as ``kubectl create secret
    #: docker-registry`` makes: mounted as ``$DOCKER_CONFIG/config.json`` for ``hearth fetch``.
    DOCKER_CONFIG = "dockerconfigjson"
    #: An Opaque Secret with keys ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (and optionally
    #: ``AWS_SESSION_TOKEN``), given to ``hearth fetch`` as env.
    ACCESS_KEYS = "access keys"


#: The keys of an :attr:`Credentials.ACCESS_KEYS` Secret, and whether each must be there.
ACCESS_KEY_ENV = (("AWS_ACCESS_KEY_ID", True), ("AWS_SECRET_ACCESS_KEY", True), ("AWS_SESSION_TOKEN", False))


@dataclasses.dataclass(frozen=True, slots=True)
class OciReference:
    """``oci://<registry>/<repository>@sha256:<hex>[/<file>]``, parsed."""

    registry: str
    repository: str
    digest: str
    #: Talk plain HTTP to the registry (``?plainHTTP=true``; as ``oras --plain-http``).
    plain_http: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class S3Location:
    """``s3://<bucket>/<key or prefix>[?endpoint=...&region=...&use_path_style=...]``, parsed (the query
    parameters are gocloud.dev's s3blob URL parameters)."""

    bucket: str
    #: An object's key, or a prefix (a "folder": every object under ``<prefix>/``).
    key: str
    #: The store's base URL (None: AWS, ``https://s3.<region>.amazonaws.com``).
    endpoint: str | None
    region: str
    #: ``https://<endpoint>/<bucket>/<key>`` rather than ``https://<bucket>.<endpoint>/<key>``.
    path_style: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model source resolved for rendering (and for ``hearth fetch``: parsed once, here)."""

    #: The source's name in :data:`SCHEMES`: ``huggingface``, ``modelscope``, ``pvc``, ``oci`` or ``s3``.
    hub: str
    #: What ``{{ .Model.Path }}`` renders to for an engine that loads repositories: the reference after the
    #: scheme verbatim, ``/models[/<subpath>]`` for a claim, or the fetched folder (see :attr:`folder`)
    #: under :func:`model_cache`'s root, which the renderer prefixes.
    path: str
    #: The claim mounted read-only at ``/models`` (pvc sources only).
    claim: str | None = None
    #: The source URI as written (what ``hearth fetch`` is given).
    uri: str = ""
    #: The hub repository (``org/name``; hub sources only).
    repo: str | None = None
    #: The file the source names inside the repository or artifact, if any.
    file: str | None = None
    #: Where ``hearth fetch`` puts a plain-file model, relative to the model cache's root (oci, s3).
    folder: str | None = None
    oci: OciReference | None = None
    s3: S3Location | None = None
    #: The Secret ``model.source.secretRef`` names, in the shape :attr:`Scheme.credentials` says.
    secret: str | None = None

    @property
    def scheme(self) -> Scheme:
        return SOURCES[self.hub]

    @property
    def prewarmable(self) -> bool:
        """Whether a download Job can fetch it (claims are already local)."""
        return self.hub != "pvc"


@dataclasses.dataclass(frozen=True, slots=True)
class Scheme:
    """What one model source is and needs."""

    #: The source's name (:attr:`ResolvedModel.hub`).
    hub: str
    #: The URI schemes that name it (the first is the one documented).
    schemes: tuple[str, ...]
    #: What its URIs look like (said when one is refused).
    form: str
    #: ``(uri, reference after the scheme)`` → the resolved model; ModelResolutionError names the field.
    resolve: Callable[[str, str], ResolvedModel]
    #: ``hearth fetch`` downloads it (the prewarm Job runs the hearth image, never the engine's Python).
    fetched: bool
    #: No engine reads it from where it is: only ``hearth fetch``'s copy in the model cache is served, so it
    #: needs a cache and the prewarm, and every backend pod fetches it (if missing) before the engine starts.
    local_only: bool
    #: The Secret shape ``secretRef`` names (None: secretRef is refused for this source).
    credentials: Credentials | None


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
    resolved = resolve_uri(source.uri)
    if source.secret_ref is not None and resolved.scheme.credentials is None:
        takers = ", ".join(f"{entry.schemes[0]}://" for entry in SOURCES.values() if entry.credentials)
        raise ModelResolutionError(
            f"model.source.secretRef: {resolved.scheme.schemes[0]}:// sources take no Secret "
            f"(only {takers} do)"
        )
    if source.secret_ref is not None:
        if not source.secret_ref.name:
            raise ModelResolutionError("model.source.secretRef.name is empty: name the Secret")
        return dataclasses.replace(resolved, secret=source.secret_ref.name)
    return resolved


def resolve_uri(uri: str) -> ResolvedModel:
    """*uri* resolved by its scheme's entry; unknown schemes are refused naming the accepted ones."""
    scheme, separator, reference = uri.partition("://")
    if not separator or not scheme:
        raise ModelResolutionError(f'model.source.uri "{uri}" is not a URI: use {_forms()}')
    entry = SCHEMES.get(scheme)
    if entry is None:
        accepted = ", ".join(f"{name}://" for name in SCHEMES)
        raise ModelResolutionError(
            f'model.source.uri "{uri}": scheme "{scheme}://" is not supported (use {accepted})'
        )
    if not reference:
        raise ModelResolutionError(
            f'model.source.uri "{uri}" has nothing after "{scheme}://" (use {entry.form})'
        )
    return entry.resolve(uri, reference)


def _forms() -> str:
    return ", ".join(entry.form for entry in SOURCES.values())


def fetched_file(hf_home: str, repo: str, file: str) -> str:
    """Where ``hearth fetch`` links *file* of *repo* under the cache home *hf_home*."""
    return posixpath.join(hf_home, FETCHED_FILES_DIR, repo, file)


def model_cache(env: Mapping[str, str]) -> str:
    """The root of the plain-file model cache as ``hearth fetch`` reads it from *env*."""
    if env.get(MODEL_CACHE_ENV):
        return env[MODEL_CACHE_ENV]
    xdg = env.get("XDG_CACHE_HOME") or posixpath.join(env.get("HOME") or "/", ".cache")
    return posixpath.join(xdg, "hearth", "models")


def _resolve_hub(hub: str) -> Callable[[str, str], ResolvedModel]:
    def resolve_hub(uri: str, reference: str) -> ResolvedModel:
        org, _, rest = reference.partition("/")
        name, _, file = rest.partition("/")
        if not org or not name:
            # As the reference: the repo id is passed through, and the engine says what it makes of it.
            return ResolvedModel(hub=hub, path=reference, uri=uri)
        if file and not _clean(file):
            raise ModelResolutionError(
                f'model.source.uri "{uri}": file "{file}" must be a clean path inside the repository'
            )
        return ResolvedModel(hub=hub, path=reference, uri=uri, repo=f"{org}/{name}", file=file or None)

    return resolve_hub


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


def _resolve_oci(uri: str, reference: str) -> ResolvedModel:
    """Digest-pinned only: a tag can be moved to other weights, and the cache, its readiness marker and every
    replica on every node must mean the same bytes (``oras resolve <registry>/<repo>:<tag>`` gives the
    digest)."""
    reference, query = _split_query(uri, reference, allowed=("plainHTTP",))
    name, at, pinned = reference.partition("@")
    registry, _, repository = name.partition("/")
    if not at:
        tagged = " (tags are not accepted: a tag can move; pin the digest `oras resolve` prints)"
        raise ModelResolutionError(
            f'model.source.uri "{uri}" names no digest: use oci://<registry>/<repository>@sha256:<hex>'
            + (tagged if ":" in repository else "")
        )
    digest, _, file = pinned.partition("/")
    if not _OCI_HOST.match(registry) or not repository:
        raise ModelResolutionError(
            f'model.source.uri "{uri}": "{registry}" is not a registry host[:port] followed by a repository'
        )
    if not _OCI_REPOSITORY.match(repository):
        raise ModelResolutionError(
            f'model.source.uri "{uri}": "{repository}" is not an OCI repository name (lowercase path '
            "components of letters, digits and separators)"
        )
    if not _SHA256_DIGEST.match(digest):
        raise ModelResolutionError(
            f'model.source.uri "{uri}": "{digest}" is not a sha256 digest (sha256:<64 lowercase hex>)'
        )
    if file and not _clean(file):
        raise ModelResolutionError(f'model.source.uri "{uri}": file "{file}" must be a clean path')
    plain_http = _flag(uri, query, "plainHTTP", default=False)
    folder = posixpath.join("oci", registry.replace(":", "_"), repository, digest.replace(":", "-"))
    oci = OciReference(registry=registry, repository=repository, digest=digest, plain_http=plain_http)
    return ResolvedModel(hub="oci", path=folder, uri=uri, file=file or None, folder=folder, oci=oci)


def _resolve_s3(uri: str, reference: str) -> ResolvedModel:
    reference, query = _split_query(uri, reference, allowed=("endpoint", "region", "use_path_style"))
    bucket, _, key = reference.partition("/")
    key = key.rstrip("/")
    if not _S3_BUCKET.match(bucket):
        raise ModelResolutionError(f'model.source.uri "{uri}": "{bucket}" is not an S3 bucket name')
    if not key or not _clean(key):
        raise ModelResolutionError(
            f'model.source.uri "{uri}": name an object or prefix after the bucket, as a clean path '
            "(s3://<bucket>/<prefix>)"
        )
    endpoint = query.get("endpoint")
    if endpoint is not None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
            raise ModelResolutionError(
                f'model.source.uri "{uri}": endpoint "{endpoint}" must be an http(s)://host[:port] URL'
            )
        endpoint = f"{parsed.scheme}://{parsed.netloc}"
    # An S3-compatible store (MinIO, Ceph RGW) is addressed by path by default; so is an IP address, which
    # cannot carry the bucket as a subdomain.
    path_style = _flag(uri, query, "use_path_style", default=endpoint is not None)
    if endpoint is not None and not path_style and _is_ip(urllib.parse.urlsplit(endpoint).hostname or ""):
        raise ModelResolutionError(
            f'model.source.uri "{uri}": an endpoint given by IP address needs use_path_style=true'
        )
    host = urllib.parse.urlsplit(endpoint).netloc.replace(":", "_") if endpoint else "aws"
    folder = posixpath.join("s3", host, bucket, key)
    s3 = S3Location(
        bucket=bucket,
        key=key,
        endpoint=endpoint,
        region=query.get("region") or _S3_DEFAULT_REGION,
        path_style=path_style,
    )
    # The file a single-file engine is given: the object the key names, fetched into the folder.
    return ResolvedModel(hub="s3", path=folder, uri=uri, file=posixpath.basename(key), folder=folder, s3=s3)


def _split_query(uri: str, reference: str, *, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    reference, _, raw = reference.partition("?")
    try:
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError:
        raise ModelResolutionError(f'model.source.uri "{uri}": "?{raw}" is not a query string') from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise ModelResolutionError(
                f'model.source.uri "{uri}": unknown parameter "{key}" (accepted: {", ".join(allowed)})'
            )
        if key in query:
            raise ModelResolutionError(f'model.source.uri "{uri}": parameter "{key}" is given twice')
        query[key] = value
    return reference, query


def _flag(uri: str, query: Mapping[str, str], key: str, *, default: bool) -> bool:
    value = query.get(key)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ModelResolutionError(f'model.source.uri "{uri}": {key}={value} must be true or false')


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _clean(path: str) -> bool:
    return (
        not path.startswith("/")
        and posixpath.normpath(path) == path
        and path.split("/", maxsplit=1)[0] != ".."
        and path != "."
    )


_HUGGINGFACE = Scheme(
    hub="huggingface",
    schemes=("hf", "huggingface"),
    form="hf://<org>/<repo>[/<file>]",
    resolve=_resolve_hub("huggingface"),
    fetched=True,
    local_only=False,
    credentials=None,
)
_MODELSCOPE = Scheme(
    hub="modelscope",
    schemes=("modelscope",),
    form="modelscope://<org>/<repo>",
    resolve=_resolve_hub("modelscope"),
    fetched=True,
    local_only=False,
    credentials=None,
)
_PVC = Scheme(
    hub="pvc",
    schemes=("pvc",),
    form="pvc://<claim>[/<subpath>]",
    resolve=_resolve_claim,
    fetched=False,
    local_only=False,
    credentials=None,
)
_OCI = Scheme(
    hub="oci",
    schemes=("oci",),
    form="oci://<registry>/<repository>@sha256:<hex>[/<file>]",
    resolve=_resolve_oci,
    fetched=True,
    local_only=True,
    credentials=Credentials.DOCKER_CONFIG,
)
_S3 = Scheme(
    hub="s3",
    schemes=("s3",),
    form="s3://<bucket>/<prefix>[?endpoint=<url>&region=<region>&use_path_style=true]",
    resolve=_resolve_s3,
    fetched=True,
    local_only=True,
    credentials=Credentials.ACCESS_KEYS,
)

#: Every source by name (:attr:`ResolvedModel.hub`).
SOURCES: dict[str, Scheme] = {entry.hub: entry for entry in (_HUGGINGFACE, _MODELSCOPE, _PVC, _OCI, _S3)}
#: Every source by URI scheme.
SCHEMES: dict[str, Scheme] = {scheme: entry for entry in SOURCES.values() for scheme in entry.schemes}
#: The sources ``hearth fetch`` downloads (its registry, ``hearth.fetch.sources``, has a fetcher for each; a
#: test keeps the two in agreement).
FETCHED_HUBS = frozenset(entry.hub for entry in SOURCES.values() if entry.fetched)
