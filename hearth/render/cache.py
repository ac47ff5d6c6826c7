"""The weight cache (SPEC §5.2): the model-cache volume, its create-once PVC, and the prewarm Job (§5.4)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hearth.api.llmservice import LLMService
from hearth.api.modeluri import ResolvedModel
from hearth.api.runtime import InferenceRuntime
from hearth.render import common, names, podsecurity
from hearth.render.errors import Reason, ReconcileError

CACHE_VOLUME = "model-cache"
CACHE_MOUNT_PATH = "/cache"
HOST_CACHE_ROOT = "/var/lib/hearth/cache"
CACHE_ENV = (("HF_HOME", "/cache/hf"), ("MODELSCOPE_CACHE", "/cache/modelscope"))
PREWARM_BACKOFF_LIMIT = 4


@dataclasses.dataclass(frozen=True, slots=True)
class CachePlan:
    """What the cache strategy asks for."""

    volume: dict[str, Any] | None
    claim: dict[str, Any] | None

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        return CACHE_ENV if self.volume is not None else ()


def plan(service: LLMService) -> CachePlan:
    """The cache volume and PVC of *service*; SharedPVC and BakedImage fail with reason Render."""
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
        raise ReconcileError(Reason.RENDER, "cache.strategy SharedPVC is not supported in v1alpha1")
    raise ReconcileError(Reason.RENDER, f"cache.strategy {strategy} is not supported yet")


def prewarm_job(
    service: LLMService, runtime: InferenceRuntime, model: ResolvedModel, cache: CachePlan
) -> dict[str, Any] | None:
    """The one-shot download Job; None when prewarm is off, the source is a claim, or nothing is cached."""
    if not service.spec.cache.prewarm or not model.prewarmable or cache.volume is None:
        return None
    name = service.metadata.name
    library = "modelscope" if model.hub == "modelscope" else "huggingface_hub"
    # json.dumps quotes like Go's %q for the printable ASCII of repo ids.
    script = f"from {library} import snapshot_download; snapshot_download({json.dumps(model.path)})"
    env = [
        *(common.env_entry(key, value) for key, value in CACHE_ENV),
        common.env_entry("TORCH_DEVICE_BACKEND_AUTOLOAD", "0"),
        *(common.env_entry(key, value) for key, value in model.env),
    ]
    pod: dict[str, Any] = {
        # A download needs no Kubernetes API: no token in the pod.
        "automountServiceAccountToken": False,
        "restartPolicy": "OnFailure",
        "containers": [
            {
                "name": "prewarm",
                "image": runtime.spec.container.image,
                "command": ["python3", "-c", script],
                "env": env,
                "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT_PATH}],
            }
        ],
        "volumes": [cache.volume],
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
