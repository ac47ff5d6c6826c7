"""The model-source registry as rendered (issue 26): every fetched scheme's prewarm runs ``hearth fetch``
from the hearth image with the credentials its Secret shape gives, plain-file models (oci://, s3://) are
served from the fetched folder, and their pods fetch before the engine starts."""

from __future__ import annotations

from typing import Any

import pytest

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.render import plan
from hearth.render.cache import check_shared_claim
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError
from tests.render.test_engines import _runtime

CONFIG = OperatorConfig(gateway_image="hearth.dev/hearth:test")
DIGEST = "sha256:" + "ab" * 32
OCI = f"oci://10.88.0.1:5000/models/tiny@{DIGEST}/tiny.gguf?plainHTTP=true"
S3 = "s3://models/tiny/v1?endpoint=http://10.88.0.1:7070"


def _service(uri: str, *, secret: str | None = None, cache: dict[str, Any] | None = None) -> LLMService:
    source: dict[str, Any] = {"uri": uri}
    if secret is not None:
        source["secretRef"] = {"name": secret}
    document = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "qwen", "namespace": "ml", "uid": "0b5e7c1e-7b61-4b4b-9d4e-0a6f3c1d2e3f"},
        "spec": {
            "model": {"source": source},
            "runtime": {"name": "engine"},
            "cache": cache or {"strategy": "NodeLocalPVC", "prewarm": True},
        },
    }
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    return service


def _build(service: LLMService, family: str, config: OperatorConfig = CONFIG) -> dict[str, dict[str, Any]]:
    return {
        f"{step.manifest['kind']}/{step.manifest['metadata']['name']}": step.manifest
        for step in plan.build(service, [_runtime(family)], config).steps
    }


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def test_an_oci_model_is_fetched_with_the_registry_secret_and_served_from_its_folder() -> None:
    manifests = _build(_service(OCI, secret="pull"), "llamacpp")
    job = manifests["Job/qwen-prewarm"]["spec"]["template"]["spec"]
    (prewarm,) = job["containers"]
    assert prewarm["image"] == CONFIG.gateway_image
    assert prewarm["args"] == ["fetch", OCI]
    env = _env(prewarm)
    assert (env["HEARTH_MODEL_CACHE"], env["DOCKER_CONFIG"]) == (
        "/cache/models",
        "/var/run/hearth/registry-auth",
    )
    auth = {"name": "hearth-registry-auth", "mountPath": "/var/run/hearth/registry-auth", "readOnly": True}
    assert auth in prewarm["volumeMounts"]
    secret = {"secretName": "pull", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
    assert {"name": "hearth-registry-auth", "secret": secret} in job["volumes"]
    pod = manifests["Deployment/qwen"]["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    assert fetch["args"] == ["fetch", "--if-missing", OCI]
    assert {"name": "hearth-registry-auth", "secret": secret} in pod["volumes"]
    folder = f"/cache/models/oci/10.88.0.1_5000/models/tiny/sha256-{'ab' * 32}"
    assert pod["containers"][0]["args"][:2] == ["--model", f"{folder}/tiny.gguf"]


def test_an_s3_model_takes_its_access_keys_from_the_secret_and_a_repo_engine_gets_the_folder() -> None:
    manifests = _build(_service(S3, secret="s3-keys"), "vllm")
    (prewarm,) = manifests["Job/qwen-prewarm"]["spec"]["template"]["spec"]["containers"]
    env = _env(prewarm)
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert env["AWS_SESSION_TOKEN"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "AWS_SESSION_TOKEN", "optional": True}
    }
    pod = manifests["Deployment/qwen"]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["args"] == ["fetch", "--if-missing", S3]
    serving = pod["containers"][0]
    assert serving["args"][0] == "/cache/models/s3/10.88.0.1_7070/models/tiny/v1"
    assert "AWS_SECRET_ACCESS_KEY" not in _env(serving), "the engine never sees the store's keys"


def test_a_modelscope_prewarm_runs_hearth_fetch_not_python_in_the_engine_image() -> None:
    manifests = _build(_service("modelscope://ZhipuAI/glm-4-9b"), "vllm")
    (prewarm,) = manifests["Job/qwen-prewarm"]["spec"]["template"]["spec"]["containers"]
    assert prewarm["image"] == CONFIG.gateway_image
    assert prewarm["args"] == ["fetch", "modelscope://ZhipuAI/glm-4-9b"]
    assert _env(prewarm)["MODELSCOPE_CACHE"] == "/cache/modelscope"


@pytest.mark.parametrize(
    ("uri", "family", "cache", "reason", "message"),
    [
        (S3, "vllm", {"strategy": "None"}, Reason.RENDER, "s3:// models are served from the model cache"),
        (OCI.replace("/tiny.gguf", ""), "llamacpp", None, Reason.MODEL_RESOLUTION, "loads one model file"),
    ],
)
def test_plain_file_models_refuse_what_cannot_serve_them(
    uri: str, family: str, cache: dict[str, Any] | None, reason: Reason, message: str
) -> None:
    with pytest.raises(ReconcileError) as raised:
        plan.build(_service(uri, cache=cache), [_runtime(family)], CONFIG)
    assert raised.value.reason is reason
    assert message in str(raised.value)


def test_a_secret_on_a_source_that_takes_none_is_refused() -> None:
    with pytest.raises(ReconcileError) as raised:
        plan.build(_service("hf://Qwen/Qwen3-8B", secret="x"), [_runtime("vllm")], CONFIG)
    assert raised.value.reason is Reason.MODEL_RESOLUTION
    assert "hf:// sources take no Secret" in str(raised.value)


def test_a_shared_claim_has_one_writer_and_read_only_replicas_that_wait_for_the_marker() -> None:
    cache = {"strategy": "SharedPVC", "prewarm": True, "size": "20Gi", "storageClassName": "nfs"}
    manifests = _build(_service(S3, secret="s3-keys", cache=cache), "vllm")
    claim = manifests["PersistentVolumeClaim/qwen-cache"]["spec"]
    assert claim == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "nfs",
    }
    job = manifests["Job/qwen-prewarm"]["spec"]["template"]["spec"]
    (writer,) = job["containers"]
    assert writer["volumeMounts"][0] == {"name": "model-cache", "mountPath": "/cache"}, "the one writer"
    pod = manifests["Deployment/qwen"]["spec"]["template"]["spec"]
    (wait,) = pod["initContainers"]
    assert wait["args"] == ["fetch", "--wait", S3]
    assert wait["volumeMounts"] == [{"name": "model-cache", "mountPath": "/cache", "readOnly": True}]
    assert "AWS_ACCESS_KEY_ID" not in _env(wait), "a reader needs no credentials"
    serving = pod["containers"][0]
    assert {"name": "model-cache", "mountPath": "/cache", "readOnly": True} in serving["volumeMounts"]
    assert _env(serving)["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in _env(writer)


def test_a_named_shared_claim_is_used_not_created() -> None:
    cache = {"strategy": "SharedPVC", "prewarm": True, "claimName": "team-models"}
    manifests = _build(_service("hf://Qwen/Qwen3-8B", cache=cache), "vllm")
    assert not [key for key in manifests if key.startswith("PersistentVolumeClaim/")]
    pod = manifests["Deployment/qwen"]["spec"]["template"]["spec"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "team-models"}} in pod["volumes"]
    assert pod["initContainers"][0]["args"] == ["fetch", "--wait", "hf://Qwen/Qwen3-8B"]


def test_claim_name_is_for_shared_claims_only() -> None:
    with pytest.raises(ValueError, match="claimName is for strategy SharedPVC only"):
        _service("hf://Qwen/Qwen3-8B", cache={"strategy": "NodeLocalPVC", "claimName": "x"})


def _claim(asked: list[str], *, phase: str, bound: list[str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if bound is not None:
        status["accessModes"] = bound
    return {
        "metadata": {"name": "qwen-cache"},
        "spec": {"accessModes": asked, "storageClassName": "local"},
        "status": status,
    }


SHARED = {"strategy": "SharedPVC", "prewarm": True}


@pytest.mark.parametrize(
    ("cache", "claim", "failures", "message"),
    [
        (
            {**SHARED, "claimName": "team"},
            None,
            (),
            "cache.claimName team: no PersistentVolumeClaim ml/team",
        ),
        (
            {**SHARED, "claimName": "team"},
            _claim(["ReadWriteOnce"], phase="Bound", bound=["ReadWriteOnce"]),
            (),
            "cache.claimName team asks for ReadWriteOnce, not ReadWriteMany",
        ),
        (
            SHARED,
            _claim(["ReadWriteMany"], phase="Pending"),
            ("invalid AccessModes [ReadWriteMany]: only AccessModes [ReadWriteOnce] are supported",),
            "the SharedPVC claim qwen-cache cannot be provisioned by StorageClass local: invalid AccessModes",
        ),
        (
            SHARED,
            _claim(["ReadWriteMany"], phase="Bound", bound=["ReadWriteOnce"]),
            (),
            "is bound to a volume with ReadWriteOnce, not ReadWriteMany",
        ),
    ],
)
def test_a_shared_claim_that_cannot_be_shared_is_refused_naming_why(
    cache: dict[str, Any], claim: dict[str, Any] | None, failures: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ReconcileError) as raised:
        check_shared_claim(_service(S3, cache=cache), claim, provisioning_failures=failures)
    assert raised.value.reason is Reason.CACHE
    assert message in str(raised.value)


def test_a_shared_claim_that_is_pending_or_bound_read_write_many_is_fine() -> None:
    service = _service(S3, cache=SHARED)
    check_shared_claim(service, None)  # not created yet: this reconcile creates it
    check_shared_claim(service, _claim(["ReadWriteMany"], phase="Pending"))
    check_shared_claim(service, _claim(["ReadWriteMany"], phase="Bound", bound=["ReadWriteMany"]))
