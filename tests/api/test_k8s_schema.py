"""The Kubernetes-shaped fields take their schema from upstream (issue 19): everything a Kubernetes 1.34
Pod accepts there is accepted here, typos are still refused by path, and the CRDs carry upstream's list and
map markers. The vendored definitions are checked against the generator and the real API server."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
import yaml

from hearth.api import crd, k8s_schema, modeluri
from hearth.api.k8s_schema import generate
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.render import backend, cache, vendors
from tests.api.manifests import FULL_LLMSERVICE, FULL_RUNTIME, MINIMAL_LLMSERVICE, with_changes
from tests.cluster.controlplane import ControlPlane

CORE = "io.k8s.api.core.v1."
REF = "#/components/schemas/"

#: Fields that only Kubernetes 1.30+ (fileKeyRef: 1.34) container schemas have, or that the hand-written
#: models used to leave out: an env file key, gRPC probes, per-probe grace periods, probe headers.
NEW_CONTAINER_FIELDS: dict[str, Any] = {
    "env": [
        {
            "name": "MODEL_TAG",
            "valueFrom": {
                "fileKeyRef": {
                    "volumeName": "config",
                    "path": "model.env",
                    "key": "TAG",
                    "optional": True,
                }
            },
        },
        {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": False}}},
    ],
    "health": {
        "readiness": {"grpc": {"port": 9000, "service": "vllm"}, "periodSeconds": 5},
        "liveness": {
            "exec": {"command": ["/bin/true"]},
            "terminationGracePeriodSeconds": 15,
            "timeoutSeconds": 2,
        },
        "startup": {
            "httpGet": {
                "path": "/health",
                "port": "http",
                "scheme": "HTTP",
                "httpHeaders": [{"name": "X-Probe", "value": "startup"}],
            },
            "failureThreshold": 60,
        },
    },
    "tolerations": [
        {"key": "gpu", "operator": "Equal", "value": "a10", "effect": "NoExecute", "tolerationSeconds": 300},
        {"operator": "Exists", "effect": ""},  # every taint: an empty effect, which an enum would refuse
    ],
}


def runtime_with_new_fields() -> dict[str, Any]:
    document = with_changes(FULL_RUNTIME, "spec.container.env", NEW_CONTAINER_FIELDS["env"])
    document = with_changes(document, "spec.health", NEW_CONTAINER_FIELDS["health"])
    return with_changes(document, "spec.accelerator.tolerations", NEW_CONTAINER_FIELDS["tolerations"])


# ---- an independent reading of the upstream document (not k8s_schema's converter) ------------------------
def _upstream(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "allOf" in schema:
        (inner,) = schema["allOf"]
        return _upstream(definitions[inner["$ref"].removeprefix(REF)], definitions)
    return schema


def _compare(
    ours: dict[str, Any], upstream: dict[str, Any], definitions: dict[str, Any], path: str
) -> list[str]:
    """Differences in markers, fields, types and required keys between our CRD node and upstream's."""
    upstream = _upstream(upstream, definitions)
    problems = []
    for marker in k8s_schema.MARKERS:
        if ours.get(marker) != upstream.get(marker):
            problems.append(f"{path}: {marker} is {ours.get(marker)!r}, upstream {upstream.get(marker)!r}")
    if "oneOf" in upstream:  # int-or-string and quantities
        if not ours.get("x-kubernetes-int-or-string"):
            problems.append(f"{path}: upstream is int-or-string")
        return problems
    if ours.get("type") != upstream.get("type"):
        problems.append(f"{path}: type {ours.get('type')!r}, upstream {upstream.get('type')!r}")
    if sorted(ours.get("required", [])) != sorted(upstream.get("required", [])):
        problems.append(f"{path}: required {ours.get('required')}, upstream {upstream.get('required')}")
    upstream_properties = upstream.get("properties", {})
    if set(ours.get("properties", {})) != set(upstream_properties):
        problems.append(
            f"{path}: fields {sorted(ours.get('properties', {}))}, upstream {sorted(upstream_properties)}"
        )
    for name, prop in ours.get("properties", {}).items():
        if name in upstream_properties:
            problems.extend(_compare(prop, upstream_properties[name], definitions, f"{path}.{name}"))
    if "items" in upstream:
        problems.extend(_compare(ours.get("items", {}), upstream["items"], definitions, f"{path}[]"))
    return problems


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
    return node


EMBEDDED = [
    ("inferenceruntime", "spec.container.env", {"field": CORE + "Container.env"}),
    ("inferenceruntime", "spec.accelerator.tolerations", {"field": CORE + "PodSpec.tolerations"}),
    ("inferenceruntime", "spec.accelerator.nodeSelector", {"field": CORE + "PodSpec.nodeSelector"}),
    ("inferenceruntime", "spec.health.readiness", {"definition": CORE + "Probe"}),
    ("inferenceruntime", "spec.health.liveness", {"definition": CORE + "Probe"}),
    ("inferenceruntime", "spec.health.startup", {"definition": CORE + "Probe"}),
    ("llmservice", "spec.imagePullSecrets", {"field": CORE + "PodSpec.imagePullSecrets"}),
    ("llmservice", "spec.model.source.secretRef", {"definition": CORE + "LocalObjectReference"}),
]


def _crd_schema(kind: str) -> dict[str, Any]:
    document = crd.inferenceruntime_crd() if kind == "inferenceruntime" else crd.llmservice_crd()
    schema: dict[str, Any] = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _vendored() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(k8s_schema.source_file().read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize(("kind", "path", "source"), EMBEDDED)
def test_embedded_fields_carry_exactly_upstreams_fields_and_markers(
    kind: str, path: str, source: dict[str, str]
) -> None:
    vendored = _vendored()
    definitions = vendored["definitions"]
    upstream = vendored["fields"][source["field"]] if "field" in source else definitions[source["definition"]]
    assert _compare(_at(_crd_schema(kind), path), upstream, definitions, path) == []


def test_the_comparison_notices_a_missing_marker() -> None:
    vendored = _vendored()
    ours = _at(_crd_schema("inferenceruntime"), "spec.container.env")
    del ours["items"]["properties"]["valueFrom"]["properties"]["secretKeyRef"]["x-kubernetes-map-type"]
    problems = _compare(ours, vendored["fields"][CORE + "Container.env"], vendored["definitions"], "env")
    assert problems == ["env[].valueFrom.secretKeyRef: x-kubernetes-map-type is None, upstream 'atomic'"]


def test_the_vendored_file_says_where_it_comes_from() -> None:
    provenance = k8s_schema.provenance()
    assert provenance["kubernetesVersion"] == generate.DEFAULT_VERSION
    assert provenance["source"].startswith(f"k8s.io/kubernetes@{generate.DEFAULT_VERSION}/")
    assert len(provenance["sourceSha256"]) == 64


def test_the_vendored_file_is_what_the_generator_writes_from_the_module_source() -> None:
    source = generate.default_source(generate.DEFAULT_VERSION)
    if not source.exists():
        pytest.skip(f"{source} not downloaded (testing/cluster/build-components.sh fetches it)")
    assert generate.main(["--check"]) == 0


def test_a_runtime_with_kubernetes_1_34_container_fields_parses_and_renders_unchanged() -> None:
    document = runtime_with_new_fields()
    runtime = InferenceRuntime.model_validate(document)
    assert runtime.spec.to_wire() == document["spec"]
    service = LLMService.model_validate(MINIMAL_LLMSERVICE)
    model = modeluri.resolve(service.spec.model)
    vendor = vendors.adapter(runtime.spec.vendor)
    assert vendor is not None
    deployment = backend.deployment(
        service, runtime, model, cache.plan(service), vendor, drainer_image="hearth:test"
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "vllm"] or pod["containers"][:1]
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["MODEL_TAG"]["valueFrom"] == NEW_CONTAINER_FIELDS["env"][0]["valueFrom"]
    assert container["readinessProbe"] == NEW_CONTAINER_FIELDS["health"]["readiness"]
    assert container["livenessProbe"] == NEW_CONTAINER_FIELDS["health"]["liveness"]
    assert NEW_CONTAINER_FIELDS["tolerations"][0] in pod["tolerations"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.container.env", [{"name": "A", "valueFrom": {"fileKeyref": {}}}], "fileKeyref: unknown field"),
        ("spec.container.env", [{"name": "A", "valueFrom": {"fileKeyRef": {"path": "p"}}}], "key: required"),
        ("spec.health.readiness", {"httpGet": {"port": 8000, "paht": "/"}}, "httpGet.paht: unknown field"),
        ("spec.health.readiness", {"periodSeconds": "5"}, "periodSeconds: must be an integer"),
        ("spec.health.readiness", {"grpc": {"port": 2**31}}, "grpc.port: 2147483648 does not fit in int32"),
        ("spec.accelerator.tolerations", [{"tolerationSecond": 1}], "tolerationSecond: unknown field"),
        (
            "spec.container.env",
            [{"name": "L", "valueFrom": {"resourceFieldRef": {"resource": "r", "divisor": "1MB"}}}],
            "divisor: '1MB' is not a valid quantity",
        ),
    ],
)
def test_typos_in_kubernetes_fields_are_refused_by_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        InferenceRuntime.model_validate(with_changes(FULL_RUNTIME, path, value))
    assert message in str(caught.value)


# ---- on the real API server -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    crds = "---\n".join(
        yaml.safe_dump(document) for document in (crd.llmservice_crd(), crd.inferenceruntime_crd())
    )
    control_plane.apply_crds(crds, "llmservices.serving.hearth.dev", "inferenceruntimes.serving.hearth.dev")
    return control_plane


def test_the_vendored_definitions_are_the_api_servers_own(cluster: ControlPlane) -> None:
    served = json.loads(cluster.kubectl("get", "--raw", "/openapi/v3/api/v1").stdout)
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    assert version == k8s_schema.kubernetes_version()
    trimmed = generate.trim(served)
    vendored = _vendored()
    assert trimmed["fields"] == vendored["fields"]
    assert trimmed["definitions"] == vendored["definitions"]


def test_a_runtime_with_kubernetes_1_34_container_fields_applies(cluster: ControlPlane) -> None:
    document = with_changes(runtime_with_new_fields(), "metadata.name", "k8s-134-fields")
    result = cluster.kubectl(
        "apply", "--server-side", "-o", "json", "-f", "-", stdin=yaml.safe_dump(document)
    )
    stored = json.loads(result.stdout)["spec"]
    assert stored == document["spec"], "the server must neither prune nor alter Kubernetes-shaped fields"
    typo = with_changes(document, "spec.container.env", [{"name": "A", "valueFrom": {"fileKeyref": {}}}])
    refused = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(typo), check=False)
    assert refused.returncode != 0
    assert 'unknown field "spec.container.env[0].valueFrom.fileKeyref"' in refused.stderr


def test_pull_secrets_merge_by_name_like_a_pods(cluster: ControlPlane) -> None:
    """list-type map keyed by name (upstream's marker): two managers' pull secrets merge, never replace."""
    base = with_changes(FULL_LLMSERVICE, "metadata.name", "merge-pull-secrets")
    cluster.kubectl("apply", "--server-side", "--field-manager=a", "-f", "-", stdin=yaml.safe_dump(base))
    other = {
        "apiVersion": base["apiVersion"],
        "kind": base["kind"],
        "metadata": base["metadata"],
        "spec": {"model": base["spec"]["model"], "imagePullSecrets": [{"name": "mirror"}]},
    }
    cluster.kubectl("apply", "--server-side", "--field-manager=b", "-f", "-", stdin=yaml.safe_dump(other))
    stored = json.loads(
        cluster.kubectl("get", "llmservice", "merge-pull-secrets", "-n", "default", "-o", "json").stdout
    )
    assert stored["spec"]["imagePullSecrets"] == [{"name": "registry"}, {"name": "mirror"}]
