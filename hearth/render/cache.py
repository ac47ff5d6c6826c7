"""The weight cache (SPEC §5.2): the model-cache volume, its create-once PVC, and the prewarm Job (§5.4)."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Sequence
from typing import Any

from hearth.api import engines as api_engines
from hearth.api import modeluri
from hearth.api.llmservice import LLMService
from hearth.api.modeluri import ResolvedModel
from hearth.api.runtime import InferenceRuntime
from hearth.render import common, engines, names, podsecurity
from hearth.render.errors import Reason, ReconcileError

CACHE_VOLUME = "model-cache"
CACHE_MOUNT_PATH = "/cache"
HOST_CACHE_ROOT = "/var/lib/hearth/cache"
HF_HOME = "/cache/hf"
CACHE_ENV = (("HF_HOME", HF_HOME), ("MODELSCOPE_CACHE", "/cache/modelscope"))
#: Where ``hearth fetch`` puts plain-file models (oci://, s3://): each in the folder its source names
#: (:attr:`modeluri.ResolvedModel.folder`).
MODEL_CACHE = "/cache/models"
#: A dockerconfigjson Secret's ``.dockerconfigjson``, mounted as ``config.json`` where DOCKER_CONFIG points.
REGISTRY_AUTH_VOLUME = "hearth-registry-auth"
REGISTRY_AUTH_PATH = "/var/run/hearth/registry-auth"
PREWARM_BACKOFF_LIMIT = 4


@dataclasses.dataclass(frozen=True, slots=True)
class CachePlan:
    """What the cache strategy asks for."""

    volume: dict[str, Any] | None
    claim: dict[str, Any] | None
    #: One ReadWriteMany claim for every replica (SharedPVC): only the prewarm Job writes it; the backend's
    #: pods mount it read-only and wait for the model's readiness marker.
    shared: bool = False

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        return CACHE_ENV if self.volume is not None else ()


def plan(service: LLMService) -> CachePlan:
    """The cache volume and PVC of *service*; BakedImage fails with reason Render."""
    strategy = service.spec.cache.strategy
    name, namespace = service.metadata.name, service.namespace
    if strategy == "NodeLocalPVC":
        claim_name = names.cache_claim(name)
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": str(service.spec.cache.claim_size)}},
        }
        if service.spec.cache.storage_class_name:
            claim_spec["storageClassName"] = service.spec.cache.storage_class_name
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": common.metadata(service, claim_name, names.backend_selector(name)),
            "spec": claim_spec,
        }
        return CachePlan(
            volume={"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}, claim=claim
        )
    if strategy == "HostPath":
        host_path = {"path": f"{HOST_CACHE_ROOT}/{namespace}-{name}", "type": "DirectoryOrCreate"}
        return CachePlan(volume={"name": CACHE_VOLUME, "hostPath": host_path}, claim=None)
    if strategy == "None":
        return CachePlan(volume=None, claim=None)
    if strategy == "SharedPVC":
        return _shared(service)
    raise ReconcileError(Reason.RENDER, f"cache.strategy {strategy} is not supported yet")


def _shared(service: LLMService) -> CachePlan:
    cache = service.spec.cache
    if not cache.prewarm:
        raise ReconcileError(
            Reason.RENDER,
            "cache.strategy SharedPVC: the prewarm Job is the claim's one writer and every replica reads it "
            "read-only: set spec.cache.prewarm: true",
        )
    claim_name = cache.claim_name or names.cache_claim(service.metadata.name)
    volume = {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}
    if cache.claim_name is not None:
        return CachePlan(volume=volume, claim=None, shared=True)
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": str(cache.claim_size)}},
    }
    if cache.storage_class_name:
        claim_spec["storageClassName"] = cache.storage_class_name
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": common.metadata(service, claim_name, names.backend_selector(service.metadata.name)),
        "spec": claim_spec,
    }
    return CachePlan(volume=volume, claim=claim, shared=True)


def check_shared_claim(
    service: LLMService, claim: dict[str, Any] | None, *, provisioning_failures: Sequence[str] = ()
) -> None:
    """Refuse (reason Cache) a SharedPVC whose claim cannot be mounted by replicas on several nodes: a
    named claim that is missing or not ReadWriteMany, a pending claim its provisioner refused
    (*provisioning_failures*: the messages of its ProvisioningFailed Warning Events, e.g. "invalid
    AccessModes [ReadWriteMany]: only AccessModes [ReadWriteOnce] are supported"), or a claim bound to a
    volume without ReadWriteMany. *claim* is the live claim (None: not there)."""
    cache = service.spec.cache
    name = cache.claim_name or names.cache_claim(service.metadata.name)
    where = f"cache.claimName {name}" if cache.claim_name else f"the SharedPVC claim {name}"
    if claim is None:
        if cache.claim_name:
            raise ReconcileError(
                Reason.CACHE, f"{where}: no PersistentVolumeClaim {service.namespace}/{name}"
            )
        return
    spec, status = claim.get("spec") or {}, claim.get("status") or {}
    asked = list(spec.get("accessModes") or [])
    if _RWX not in asked:
        raise ReconcileError(
            Reason.CACHE,
            f"{where} asks for {', '.join(asked) or 'no access mode'}, not {_RWX}: every replica mounts the "
            "shared cache, on any node",
        )
    storage_class = spec.get("storageClassName") or "the default"
    if status.get("phase") == "Pending" and provisioning_failures:
        raise ReconcileError(
            Reason.CACHE,
            f"{where} cannot be provisioned by StorageClass {storage_class}: {provisioning_failures[-1]} "
            f"(SharedPVC needs {_RWX}: name a StorageClass that provides it, e.g. NFS or CephFS, in "
            "spec.cache.storageClassName)",
        )
    bound = list(status.get("accessModes") or [])
    if status.get("phase") == "Bound" and _RWX not in bound:
        raise ReconcileError(
            Reason.CACHE,
            f"{where} is bound to a volume with {', '.join(bound) or 'no access mode'}, not {_RWX}: "
            f"StorageClass {storage_class} cannot share a volume between nodes; name one that can (NFS, "
            "CephFS, a cloud file store) in spec.cache.storageClassName",
        )


_RWX = "ReadWriteMany"


#: Env of the runtime the prewarm Job's ``hearth fetch`` takes too: the hub's address and credentials
#: (HF_ENDPOINT, HF_TOKEN, ...), which the engine would use to download the same files. The cache's own
#: locations are the cache's.
FETCH_ENV_PREFIXES = ("HF_", "HUGGING_FACE_", "MODELSCOPE_")
#: (HF_HUB_OFFLINE: a fetch is the one step that goes online.)
_CACHE_LOCATIONS = frozenset(
    {"HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "MODELSCOPE_CACHE", "HF_HUB_OFFLINE"}
)


class FetchStep(enum.Enum):
    """What a ``hearth fetch`` container does."""

    #: The prewarm Job: download (the one writer of a SharedPVC).
    PREWARM = ()
    #: A backend pod's init step: nothing when the cache has the model, else download it.
    IF_MISSING = ("--if-missing",)
    #: A backend pod's init step on a SharedPVC, mounted read-only: wait for the prewarm's readiness
    #: marker (or its failure note, then exit with its error).
    WAIT = ("--wait",)


def fetch_container(
    name: str,
    model: ResolvedModel,
    *,
    hearth_image: str,
    runtime_env: Sequence[dict[str, Any]],
    run_as_user: int | None,
    step: FetchStep = FetchStep.PREWARM,
) -> dict[str, Any]:
    """A container running ``hearth fetch`` of the model into the cache (*step* says how), with the cache
    mounted, the hub settings of *runtime_env* (the runtime's rendered env) and the source's credentials
    (which a waiting reader needs not).

    It writes as the engine reads: as the runtime's user *run_as_user* (the pod's securityContext, see
    :func:`podsecurity.restrict`), else as root, the user of most engine images, which the reference's
    prewarm ran as (a HostPath cache directory the kubelet creates is root's)."""
    fetch_env = [
        entry
        for entry in runtime_env
        if str(entry["name"]).startswith(FETCH_ENV_PREFIXES) and entry["name"] not in _CACHE_LOCATIONS
    ]
    fetch_env.insert(0, common.env_entry(modeluri.MODEL_CACHE_ENV, MODEL_CACHE))
    reading = step is FetchStep.WAIT
    mounts: list[dict[str, Any]] = [
        {"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT_PATH, **({"readOnly": True} if reading else {})}
    ]
    credentials = model.scheme.credentials if model.secret is not None and not reading else None
    if credentials is modeluri.Credentials.DOCKER_CONFIG:
        fetch_env.append(common.env_entry("DOCKER_CONFIG", REGISTRY_AUTH_PATH))
        mounts.append({"name": REGISTRY_AUTH_VOLUME, "mountPath": REGISTRY_AUTH_PATH, "readOnly": True})
    elif credentials is modeluri.Credentials.ACCESS_KEYS:
        for key, required in modeluri.ACCESS_KEY_ENV:
            reference: dict[str, Any] = {"name": model.secret, "key": key}
            if not required:
                reference["optional"] = True
            fetch_env.append({"name": key, "valueFrom": {"secretKeyRef": reference}})
    return {
        "name": name,
        "image": hearth_image,
        "args": ["fetch", *step.value, model.uri],
        "env": [*(common.env_entry(key, value) for key, value in CACHE_ENV), *fetch_env],
        "securityContext": podsecurity.container_context()
        if run_as_user is not None
        else {"runAsUser": 0, **podsecurity.container_context()},
        "volumeMounts": mounts,
        # The kubelet keeps the log's last lines as the termination message: the pod's status then says why
        # the fetch failed (hearth fetch's last line), which the operator reports as ModelFetchFailed.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def fetch_volumes(model: ResolvedModel, step: FetchStep = FetchStep.PREWARM) -> list[dict[str, Any]]:
    """The volumes :func:`fetch_container` mounts beside the cache: a registry's credentials."""
    if (
        step is FetchStep.WAIT
        or model.secret is None
        or model.scheme.credentials is not modeluri.Credentials.DOCKER_CONFIG
    ):
        return []
    items = [{"key": ".dockerconfigjson", "path": "config.json"}]
    return [{"name": REGISTRY_AUTH_VOLUME, "secret": {"secretName": model.secret, "items": items}}]


def prewarm_job(
    service: LLMService,
    runtime: InferenceRuntime,
    model: ResolvedModel,
    cache: CachePlan,
    *,
    hearth_image: str | None,
    runtime_env: Sequence[dict[str, Any]] = (),
) -> dict[str, Any] | None:
    """The one-shot download Job; None when prewarm is off, the source is a claim, or nothing is cached.

    Every source ``hearth fetch`` knows (:data:`modeluri.FETCHED_HUBS`: all but claims) is fetched by it,
    from the hearth image (*hearth_image*), so the engine image needs no Python; its env is the cache's, the
    hub settings of *runtime_env* (the runtime's rendered env) and the source's credentials. Only without
    a hearth image (the reference's gateway image) does a hub source run the reference's
    ``python3 -c "...snapshot_download(...)"`` in the engine image (SPEC §5.4)."""
    if not service.spec.cache.prewarm or not model.prewarmable or cache.volume is None:
        return None
    name = service.metadata.name
    container: dict[str, Any]
    volumes = [cache.volume]
    if hearth_image is not None and model.scheme.fetched:
        container = fetch_container(
            "prewarm",
            model,
            hearth_image=hearth_image,
            runtime_env=runtime_env,
            run_as_user=runtime.spec.container.run_as_user,
        )
        volumes.extend(fetch_volumes(model))
    else:
        if model.scheme.local_only:
            raise ReconcileError(
                Reason.RENDER,
                f"{model.scheme.schemes[0]}:// models are fetched by `hearth fetch` only: run the operator "
                "with the hearth image as --gateway-image",
            )
        if engines.of(runtime).model_format is api_engines.ModelFormat.FILE:
            raise ReconcileError(
                Reason.RENDER,
                f"family {runtime.spec.family} loads one model file, which only `hearth fetch` links into "
                "the cache: run the operator with the hearth image as --gateway-image",
            )
        library = "modelscope" if model.hub == "modelscope" else "huggingface_hub"
        # json.dumps quotes like Go's %q for the printable ASCII of repo ids.
        script = f"from {library} import snapshot_download; snapshot_download({json.dumps(model.path)})"
        container = {
            "name": "prewarm",
            "image": runtime.spec.container.image,
            "command": ["python3", "-c", script],
            "env": [
                *(common.env_entry(key, value) for key, value in CACHE_ENV),
                common.env_entry("TORCH_DEVICE_BACKEND_AUTOLOAD", "0"),
                *(common.env_entry(key, value) for key, value in engines.source_env(runtime, model)),
            ],
            "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT_PATH}],
        }
    pod: dict[str, Any] = {
        # A download needs no Kubernetes API: no token in the pod.
        "automountServiceAccountToken": False,
        "restartPolicy": "OnFailure",
        "containers": [container],
        "volumes": volumes,
    }
    pod.update(common.placement(service, runtime))
    podsecurity.restrict(pod, runtime.spec.container.run_as_user)
    template_metadata = common.template_metadata(names.backend_selector(name), runtime)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": common.metadata(service, names.prewarm_job(name), names.backend_selector(name)),
        "spec": {
            "backoffLimit": PREWARM_BACKOFF_LIMIT,
            "template": {"metadata": template_metadata, "spec": pod},
        },
    }
