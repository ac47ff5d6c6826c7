"""The engine-family registry as rendered: each family's defaults for what a runtime leaves out (args,
probes, metrics, source env, the model path), and the runtime's own settings winning over them."""

from __future__ import annotations

from typing import Any

import pytest

from hearth.api import engines, loading
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.gateway.forward import proxy
from hearth.render import gateway, plan
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError

CONFIG = OperatorConfig(gateway_image="hearth.dev/hearth:test")


def _runtime(
    family: str,
    *,
    health: dict[str, Any] | None = None,
    resource: str = "hearth.dev/fake-accelerator",
    **container: Any,
) -> InferenceRuntime:
    spec: dict[str, Any] = {
        "family": family,
        "vendor": "generic",
        "container": {"image": "engine:1", "port": {"name": "http", "containerPort": 8000}, **container},
        "accelerator": {"resourceName": resource},
    }
    if health is not None:
        spec["health"] = health
    return InferenceRuntime.model_validate({"metadata": {"name": "engine"}, "spec": spec})


def _service(uri: str, *, cache: dict[str, Any] | None = None) -> LLMService:
    document = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "qwen", "namespace": "ml", "uid": "0b5e7c1e-7b61-4b4b-9d4e-0a6f3c1d2e3f"},
        "spec": {
            "model": {"source": {"uri": uri}},
            "runtime": {"name": "engine"},
            "cache": cache or {"strategy": "NodeLocalPVC", "prewarm": True},
        },
    }
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    return service


def _manifests(service: LLMService, runtime: InferenceRuntime) -> dict[str, dict[str, Any]]:
    return {
        f"{step.manifest['kind']}/{step.manifest['metadata']['name']}": step.manifest
        for step in plan.build(service, [runtime], CONFIG).steps
    }


def _serving(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = manifests["Deployment/qwen"]["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(
    ("family", "uri", "args", "probe"),
    [
        (
            "vllm",
            "hf://Qwen/Qwen3-8B",
            ["Qwen/Qwen3-8B", "--served-model-name=qwen", "--port=8000"],
            "/health",
        ),
        (
            "sglang",
            "hf://Qwen/Qwen3-8B",
            [
                "python3",
                "-m",
                "sglang.launch_server",
                "--model-path=Qwen/Qwen3-8B",
                "--served-model-name=qwen",
                "--host=0.0.0.0",
                "--port=8000",
                "--enable-metrics",
            ],
            "/health_generate",
        ),
        (
            "llamacpp",
            "hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
            [
                "--model",
                "/cache/hf/hearth-files/Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
                "--alias",
                "qwen",
                "--host",
                "0.0.0.0",
                "--port",
                "8000",
                "--metrics",
            ],
            "/health",
        ),
        (
            "trtllm",
            "hf://Qwen/Qwen3-8B",
            ["trtllm-serve", "Qwen/Qwen3-8B", "--host=0.0.0.0", "--port=8000"],
            "/health",
        ),
        (
            "tgi",
            "hf://Qwen/Qwen3-8B",
            ["--model-id=Qwen/Qwen3-8B", "--hostname=0.0.0.0", "--port=8000"],
            "/health",
        ),
    ],
)
def test_a_runtime_without_args_or_probes_gets_its_familys(
    family: str, uri: str, args: list[str], probe: str
) -> None:
    manifests = _manifests(_service(uri), _runtime(family))
    serving = _serving(manifests)
    assert serving["args"] == args
    assert serving["readinessProbe"]["httpGet"]["path"] == probe
    assert serving["startupProbe"]["httpGet"]["path"] == probe
    gateway_env = manifests["Deployment/qwen-gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]
    readiness = [entry["value"] for entry in gateway_env if entry["name"] == "HEARTH_READINESS_PATH"]
    assert readiness == ([] if probe == gateway.DEFAULT_READINESS_PATH else [probe])
    rule = [entry["value"] for entry in gateway_env if entry["name"] == "HEARTH_STREAM_RULE"]
    assert rule == (["strict"] if family in {"llamacpp", "tgi"} else [])


def test_every_family_has_a_case_above() -> None:
    assert set(engines.FAMILIES) == {"vllm", "sglang", "llamacpp", "trtllm", "tgi"}


def test_the_runtimes_own_args_and_probes_win() -> None:
    runtime = _runtime(
        "sglang",
        args=["serve", "{{ .Model.Path }}"],
        health={"readiness": {"httpGet": {"path": "/ready", "port": "http"}}},
    )
    serving = _serving(_manifests(_service("hf://Qwen/Qwen3-8B"), runtime))
    assert serving["args"] == ["serve", "Qwen/Qwen3-8B"]
    assert serving["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert serving["startupProbe"]["httpGet"]["path"] == "/health_generate"


@pytest.mark.parametrize(
    ("family", "env"),
    [
        ("vllm", [{"name": "VLLM_USE_MODELSCOPE", "value": "true"}]),
        ("sglang", [{"name": "SGLANG_USE_MODELSCOPE", "value": "true"}]),
        ("tgi", []),
    ],
)
def test_a_modelscope_source_gets_the_env_its_engine_reads(family: str, env: list[dict[str, str]]) -> None:
    serving = _serving(_manifests(_service("modelscope://ZhipuAI/glm-4-9b"), _runtime(family)))
    assert [entry for entry in serving["env"] if entry["name"].endswith("USE_MODELSCOPE")] == env


@pytest.mark.parametrize(
    ("uri", "cache", "reason", "message"),
    [
        ("hf://Qwen/Qwen3-8B-GGUF", None, Reason.MODEL_RESOLUTION, "hf://<org>/<repo>/<file>.gguf"),
        ("modelscope://Qwen/Q-GGUF/q.gguf", None, Reason.MODEL_RESOLUTION, "only hf:// sources"),
        ("hf://Qwen/Q-GGUF/q.gguf", {"strategy": "None"}, Reason.RENDER, "spec.cache.prewarm: true"),
        ("hf://Qwen/Q-GGUF/q.gguf", {"strategy": "HostPath"}, Reason.RENDER, "prewarm false"),
    ],
)
def test_a_file_engine_refuses_what_it_cannot_load_naming_the_fix(
    uri: str, cache: dict[str, Any] | None, reason: Reason, message: str
) -> None:
    with pytest.raises(ReconcileError) as raised:
        plan.build(_service(uri, cache=cache), [_runtime("llamacpp")], CONFIG)
    assert raised.value.reason is reason
    assert message in str(raised.value)


def test_a_file_engine_loads_a_claims_file_without_a_cache() -> None:
    service = _service("pvc://models/tiny.gguf", cache={"strategy": "None"})
    assert _serving(_manifests(service, _runtime("llamacpp")))["args"][:2] == ["--model", "/models/tiny.gguf"]


def test_the_cpu_accelerator_limit_bounds_the_cpu_request() -> None:
    runtime = _runtime("llamacpp", resource="cpu")
    service = _service("pvc://models/tiny.gguf", cache={"strategy": "None"})
    assert _serving(_manifests(service, runtime))["resources"]["limits"] == {"cpu": "1"}
    too_much = _service("pvc://models/tiny.gguf", cache={"strategy": "None"})
    too_much = too_much.model_copy(
        update={
            "spec": too_much.spec.model_copy(
                update={
                    "resources": too_much.spec.resources.model_copy(update={"accelerators": 2, "cpu": "3"})
                }
            )
        }
    )
    with pytest.raises(ReconcileError, match=r"resources\.cpu \(3\) exceeds resources\.accelerators \(2\)"):
        plan.build(too_much, [runtime], CONFIG)


def test_the_gateway_drops_idle_upstream_connections_before_any_engine_does() -> None:
    """A POST sent on a connection the engine is closing cannot be retried safely (a 502)."""
    for family in engines.FAMILIES:
        keep_alive = engines.engine(family).keep_alive_seconds
        assert keep_alive is None or keep_alive > proxy.UPSTREAM_IDLE_SECONDS, family
