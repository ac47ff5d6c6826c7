"""The rendered children of an LLMService: names, labels, ports and the optional guards, and every
reconcile-time validation of SPEC §2.9 with its reason (the golden YAML is in test_golden.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hearth.api import engines, loading
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.api.scalermodes import ScalerMode
from hearth.common import bundle
from hearth.install import manifests
from hearth.render import plan
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError
from tests.api.manifests import FULL_RUNTIME, with_changes

RUNTIMES: list[InferenceRuntime] = [
    runtime
    for name in bundle.names("runtimes")
    for runtime in loading.load_all(bundle.read_text("runtimes", name), source=name)
    if isinstance(runtime, InferenceRuntime)
]
CONFIG = OperatorConfig(gateway_image="hearth.dev/hearth:test", gateway_args=("gateway",))


def _service(spec: dict[str, Any], name: str = "qwen", namespace: str = "ml") -> LLMService:
    document = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": namespace, "uid": "0b5e7c1e-7b61-4b4b-9d4e-0a6f3c1d2e3f"},
        "spec": spec,
    }
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    return service


def loads_a_file(runtime: str) -> bool:
    """Whether the bundled *runtime*'s engine loads one model file (llama.cpp's GGUF)."""
    return any(
        each.metadata.name == runtime
        and engines.engine(each.spec.family).model_format is engines.ModelFormat.FILE
        for each in RUNTIMES
    )


def _base_spec(runtime: str, strategy: str) -> dict[str, Any]:
    uri = "hf://Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf" if loads_a_file(runtime) else "hf://Qwen/Qwen3-8B"
    return {
        "model": {"source": {"uri": uri}},
        "runtime": {"name": runtime, "argsOverride": ["--max-model-len=8192"]},
        # A CPU runtime's accelerators are its CPU limit, which the request may not exceed.
        "resources": {"accelerators": 4 if on_cpu(runtime) else 2, "cpu": "4", "memory": "32Gi"},
        "scaling": {"min": 0, "max": 3, "target": 4},
        "cache": {"strategy": strategy, "prewarm": True, "size": "80Gi"},
        "imagePullSecrets": [{"name": "registry"}],
    }


def on_cpu(runtime: str) -> bool:
    """Whether the bundled *runtime*'s accelerator is the CPU itself."""
    return any(r.metadata.name == runtime and r.spec.accelerator.resource_name == "cpu" for r in RUNTIMES)


def _render(service: LLMService, config: OperatorConfig = CONFIG) -> str:
    """Every step's manifest, with its step and mode, as one YAML stream."""
    built = plan.build(service, RUNTIMES, config)
    documents = [
        {"step": step.reason.value, "mode": step.mode.value, **step.manifest} for step in built.steps
    ]
    return yaml.safe_dump_all(documents, sort_keys=False)


def _steps(service: LLMService, config: OperatorConfig = CONFIG) -> dict[tuple[str, str], plan.Step]:
    return {
        (step.manifest["kind"], step.manifest["metadata"]["name"]): step
        for step in plan.build(service, RUNTIMES, config).steps
    }


def test_spec_names_labels_and_ports() -> None:
    steps = _steps(_service(_base_spec("vllm-nvidia", "NodeLocalPVC")))
    backend = steps[("Deployment", "qwen")].manifest
    assert "replicas" not in backend["spec"], "the backend's replicas belong to the autoscaler"
    assert backend["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "qwen",
        "app.kubernetes.io/managed-by": "hearth",
        "serving.hearth.dev/llmservice": "qwen",
    }
    assert backend["spec"]["template"]["metadata"]["labels"]["serving.hearth.dev/runtime"] == "vllm-nvidia"
    gateway = steps[("Deployment", "qwen-gateway")].manifest
    assert gateway["spec"]["replicas"] == 1
    env = {
        entry["name"]: entry.get("value")
        for entry in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["HEARTH_BACKEND_URL"] == "http://qwen-backend.ml.svc:80"
    assert env["HEARTH_ACTIVATION_TIMEOUT"] == "5m0s"
    assert env["HEARTH_HEARTBEAT_INTERVAL"] == "10s"
    assert env["HEARTH_COLDSTART_MODE"] == "keepalive"
    public = steps[("Service", "qwen")].manifest
    assert public["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    assert public["metadata"]["labels"]["serving.hearth.dev/llmservice"] == "qwen"
    backend_service = steps[("Service", "qwen-backend")].manifest
    assert backend_service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    for step in steps.values():
        if step.mode is not plan.Mode.DELETE:
            (owner,) = step.manifest["metadata"]["ownerReferences"]
            assert owner["controller"] is True
            assert owner["blockOwnerDeletion"] is True
            assert owner["kind"] == "LLMService"


def test_one_gateway_replica_renders_as_the_reference_and_removes_a_leftover_budget() -> None:
    steps = _steps(_service(_base_spec("vllm-nvidia", "None")))
    gateway = steps[("Deployment", "qwen-gateway")].manifest
    assert "strategy" not in gateway["spec"]
    assert "topologySpreadConstraints" not in gateway["spec"]["template"]["spec"]
    assert steps[("PodDisruptionBudget", "qwen-gateway")].mode is plan.Mode.DELETE


def test_several_gateway_replicas_get_a_budget_a_spread_and_a_surge_first_rollout() -> None:
    config = OperatorConfig(scaler_mode=ScalerMode.BUILTIN, gateway_replicas=3)
    steps = _steps(_service(_base_spec("vllm-nvidia", "None")), config)
    gateway = steps[("Deployment", "qwen-gateway")].manifest
    selector = gateway["spec"]["selector"]["matchLabels"]
    assert gateway["spec"]["replicas"] == 3
    assert gateway["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    (spread,) = gateway["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"] == {"matchLabels": selector}
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway", "one node must still run every replica"
    budget = steps[("PodDisruptionBudget", "qwen-gateway")]
    assert budget.mode is plan.Mode.APPLY
    assert budget.manifest["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    assert budget.manifest["metadata"]["ownerReferences"][0]["kind"] == "LLMService"


def test_network_policies_let_only_the_gateway_and_scrapers_reach_the_backend() -> None:
    service = _service(_base_spec("vllm-nvidia", "None"))
    assert _steps(service)[("NetworkPolicy", "qwen-backend")].mode is plan.Mode.DELETE, "off by default"
    config = OperatorConfig(
        scaler_mode=ScalerMode.BUILTIN, network_policies=True, gateway_image="hearth.dev/hearth:1"
    )
    steps = _steps(service, config)
    (drainer,) = steps[("Deployment", "qwen")].manifest["spec"]["template"]["spec"]["initContainers"][:1]
    assert drainer["name"] == "hearth-drainer"
    (drain_port,) = [port["containerPort"] for port in drainer["ports"] if port["name"] == "drain"]
    policy = steps[("NetworkPolicy", "qwen-backend")]
    assert policy.mode is plan.Mode.APPLY
    backend_pods = steps[("Deployment", "qwen")].manifest["spec"]["selector"]["matchLabels"]
    gateway_pods = steps[("Deployment", "qwen-gateway")].manifest["spec"]["selector"]["matchLabels"]
    spec = policy.manifest["spec"]
    assert spec["podSelector"] == {"matchLabels": backend_pods}
    assert spec["policyTypes"] == ["Ingress"]
    sources = [(rule["from"][0], rule["ports"]) for rule in spec["ingress"]]
    runtime_port = [{"port": "http", "protocol": "TCP"}]
    assert sources == [
        ({"podSelector": {"matchLabels": gateway_pods}}, runtime_port),
        ({"namespaceSelector": {"matchLabels": {"metrics": "enabled"}}}, runtime_port),
        # The operator, wherever installed, on the drain sidecar's port only (POST /drain/settled); by
        # number: a named port of an init container is not resolved by every implementation (issue 32).
        (
            {
                "namespaceSelector": {},
                "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "hearth", **_OPERATOR}},
            },
            [{"port": drain_port, "protocol": "TCP"}],
        ),
    ]
    # Without the sidecar (the reference's gateway image: the drain sleeps) there is no drain port to open.
    sleeping = _steps(service, OperatorConfig(scaler_mode=ScalerMode.BUILTIN, network_policies=True))
    rules = sleeping[("NetworkPolicy", "qwen-backend")].manifest["spec"]["ingress"]
    assert len(rules) == 2
    # Both installers label the operator's pods so that the rule admits them.
    pod_labels = manifests.deployment(manifests.InstallConfig())["spec"]["template"]["metadata"]["labels"]
    assert {"app.kubernetes.io/part-of": "hearth", **_OPERATOR}.items() <= pod_labels.items()


_OPERATOR = {"app.kubernetes.io/component": "operator"}


def test_api_keys_mount_the_secret_optionally_and_tell_the_gateway_where() -> None:
    spec = _base_spec("vllm-nvidia", "None")
    plain = _steps(_service(spec))[("Deployment", "qwen-gateway")].manifest["spec"]["template"]["spec"]
    assert [volume["name"] for volume in plain["volumes"]] == ["tmp"], "no auth: the reference's pod"
    spec["endpoint"] = {"auth": {"secretName": "qwen-keys"}}
    pod = _steps(_service(spec))[("Deployment", "qwen-gateway")].manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {"name": "api-keys", "secret": {"secretName": "qwen-keys", "optional": True}} in pod["volumes"]
    assert {"name": "api-keys", "mountPath": "/etc/hearth/api-keys", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "HEARTH_API_KEYS_DIR", "value": "/etc/hearth/api-keys"} in container["env"]


def test_env_values_use_go_duration_formatting_and_omit_non_positive() -> None:
    spec = _base_spec("vllm-nvidia", "None")
    spec["scaling"] = {"activationTimeout": "90s", "drainTimeout": "0s"}
    spec["endpoint"] = {"coldStart": {"mode": "reject", "heartbeatInterval": "0s"}}
    steps = _steps(_service(spec))
    env = [
        entry["name"]
        for entry in steps[("Deployment", "qwen-gateway")].manifest["spec"]["template"]["spec"]["containers"][
            0
        ]["env"]
    ]
    values = {
        entry["name"]: entry.get("value")
        for entry in steps[("Deployment", "qwen-gateway")].manifest["spec"]["template"]["spec"]["containers"][
            0
        ]["env"]
    }
    assert values["HEARTH_ACTIVATION_TIMEOUT"] == "1m30s"
    assert values["HEARTH_COLDSTART_MODE"] == "reject"
    assert "HEARTH_HEARTBEAT_INTERVAL" not in env
    backend_container = steps[("Deployment", "qwen")].manifest["spec"]["template"]["spec"]["containers"][0]
    assert "lifecycle" not in backend_container, "drainTimeout 0 means no preStop drain"


def test_drain_widens_the_grace_period() -> None:
    spec = _base_spec("vllm-stub", "None")
    spec["scaling"] = {"drainTimeout": "45.9s"}
    pod = _steps(_service(spec))[("Deployment", "qwen")].manifest["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"]["preStop"] == {"httpGet": {"path": "/drain", "port": 8091}}
    assert pod["terminationGracePeriodSeconds"] == 55


def test_pvc_source_mounts_the_claim_and_skips_prewarm() -> None:
    spec = _base_spec("vllm-nvidia", "NodeLocalPVC")
    spec["model"] = {"source": {"uri": "pvc://weights/qwen/8b"}}
    steps = _steps(_service(spec))
    assert ("Job", "qwen-prewarm") not in steps
    pod = steps[("Deployment", "qwen")].manifest["spec"]["template"]["spec"]
    assert {
        "name": "model-store",
        "persistentVolumeClaim": {"claimName": "weights", "readOnly": True},
    } in pod["volumes"]
    assert "/models/qwen/8b" in pod["containers"][0]["args"]


def test_volcano_queue_is_annotated_on_backend_and_prewarm() -> None:
    runtime = InferenceRuntime.model_validate(with_changes(FULL_RUNTIME, "metadata.name", "volcano-rt"))
    service = _service({**_base_spec("volcano-rt", "HostPath")})
    built = plan.build(service, [*RUNTIMES, runtime], CONFIG)
    by_key = {
        (step.manifest["kind"], step.manifest["metadata"]["name"]): step.manifest for step in built.steps
    }
    for key in (("Deployment", "qwen"), ("Job", "qwen-prewarm")):
        template = by_key[key]["spec"]["template"]
        assert template["metadata"]["annotations"] == {"scheduling.volcano.sh/queue-name": "llm"}
        assert template["spec"]["schedulerName"] == "volcano"


@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        (
            {"runtime": {"name": "missing"}},
            Reason.RUNTIME_RESOLUTION,
            'get InferenceRuntime "missing": not found',
        ),
        (
            {"runtime": {"selector": {"vendor": ["ascend"]}}},
            Reason.RUNTIME_RESOLUTION,
            'ambiguous InferenceRuntime for vendor "ascend": '
            "vllm-ascend-310p, vllm-ascend-910b share priority 100",
        ),
        (
            {"runtime": {"selector": {"vendor": ["intel"]}}},
            Reason.RUNTIME_RESOLUTION,
            "no InferenceRuntime matches vendors [intel]",
        ),
        ({"model": {"catalogRef": "qwen"}}, Reason.MODEL_RESOLUTION, "catalog lookup is not implemented"),
        (
            {"model": {"source": {"uri": "hf://a/b", "secretRef": {"name": "t"}}}},
            Reason.MODEL_RESOLUTION,
            "secretRef",
        ),
        ({"model": {"source": {"uri": "gs://bucket/m"}}}, Reason.MODEL_RESOLUTION, "is not supported"),
        (
            {"model": {"source": {"uri": "s3://bucket/m"}}, "cache": {"strategy": "HostPath"}},
            Reason.RENDER,
            "which the prewarm Job fills: set spec.cache.prewarm: true",
        ),
        (
            {"model": {"source": {"uri": "pvc://Bad/x"}}},
            Reason.MODEL_RESOLUTION,
            "not a valid PersistentVolumeClaim",
        ),
        (
            {"runtime": {"name": "vllm-nvidia", "argsOverride": ["{{ .Nope }}"]}},
            Reason.RENDER,
            'unknown field ".Nope"',
        ),
        ({"resources": {"fraction": {"cores": 10}}}, Reason.RENDER, "resources.fraction is not supported"),
        (
            {"cache": {"strategy": "SharedPVC", "prewarm": False}},
            Reason.RENDER,
            "SharedPVC: the prewarm Job is the claim's one writer",
        ),
        ({"cache": {"strategy": "BakedImage"}}, Reason.RENDER, "BakedImage is not supported yet"),
        ({"scaling": {"metric": "kvCacheUtil"}}, Reason.SCALED_OBJECT, "kvCacheUtil is not supported yet"),
        ({"scaling": {"scaleDownStabilization": "1.5s"}}, Reason.SCALED_OBJECT, "whole number of seconds"),
    ],
)
def test_reconcile_time_validations(change: dict[str, Any], reason: Reason, message: str) -> None:
    spec = {**_base_spec("vllm-nvidia", "NodeLocalPVC"), **change}
    with pytest.raises(ReconcileError) as caught:
        plan.build(_service(spec), RUNTIMES, CONFIG)
    assert caught.value.reason is reason
    assert message in caught.value.message


def test_vendor_order_beats_priority() -> None:
    nvidia = InferenceRuntime.model_validate(
        with_changes(with_changes(FULL_RUNTIME, "metadata.name", "nv"), "spec.priority", 1000)
    )
    ascend = InferenceRuntime.model_validate(
        with_changes(
            with_changes(with_changes(FULL_RUNTIME, "metadata.name", "asc"), "spec.vendor", "ascend"),
            "spec.priority",
            10,
        )
    )
    spec = {**_base_spec("x", "None"), "runtime": {"selector": {"vendor": ["ascend", "nvidia"]}}}
    assert plan.build(_service(spec), [nvidia, ascend], CONFIG).runtime.metadata.name == "asc"
    spec["runtime"] = {"selector": {"vendor": ["intel", "nvidia"]}}
    assert plan.build(_service(spec), [nvidia, ascend], CONFIG).runtime.metadata.name == "nv"
