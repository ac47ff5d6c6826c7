"""The generated CRDs on a real kube-apiserver: accepted, defaulting as SPEC §1.1 says, refusing bad
manifests with messages that name the field, and usable with kubectl."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from hearth.common import bundle
from tests.api.manifests import (
    DEFAULTED_SPEC_PARTS,
    FULL_LLMSERVICE,
    FULL_RUNTIME,
    MINIMAL_LLMSERVICE,
    V04_LLMSERVICE,
    with_changes,
)
from tests.cluster.controlplane import ControlPlane


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with Hearth's CRDs established and the bundled runtimes applied."""
    crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    control_plane.apply_crds(crds, "llmservices.serving.hearth.dev", "inferenceruntimes.serving.hearth.dev")
    runtimes = "---\n".join(bundle.read_text("runtimes", name) for name in bundle.names("runtimes"))
    control_plane.kubectl("apply", "-f", "-", stdin=runtimes)
    return control_plane


def _apply(cluster: ControlPlane, document: dict[str, Any], *, dry_run: bool = True) -> tuple[int, str]:
    args = ["apply", "-o", "json", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    result = cluster.kubectl(*args, stdin=yaml.safe_dump(document), check=False)
    return result.returncode, result.stdout if result.returncode == 0 else result.stderr


def test_every_spec_field_is_accepted_and_preserved(cluster: ControlPlane) -> None:
    for document in (FULL_LLMSERVICE, FULL_RUNTIME):
        code, output = _apply(cluster, document)
        assert code == 0, output
        stored = json.loads(output)["spec"]
        assert stored == document["spec"], "the server must neither prune nor alter a complete manifest"


def test_a_manifest_of_the_v04_endpoint_fields_is_accepted_and_preserved(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, V04_LLMSERVICE)
    assert code == 0, output
    endpoint = json.loads(output)["spec"]["endpoint"]
    written = V04_LLMSERVICE["spec"]["endpoint"]
    assert {key: endpoint[key] for key in written} == written
    assert "maxQueue" not in json.loads(_apply(cluster, MINIMAL_LLMSERVICE)[1])["spec"]["endpoint"], (
        "no CRD default: old objects must not change (nor their gateways' pod templates)"
    )


def test_the_server_applies_defaults_even_when_parents_are_omitted(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, MINIMAL_LLMSERVICE)
    assert code == 0, output
    spec = json.loads(output)["spec"]
    for key, value in DEFAULTED_SPEC_PARTS.items():
        assert spec[key] == value, key


def test_an_empty_scaling_gets_the_spec_defaults(cluster: ControlPlane) -> None:
    code, output = _apply(cluster, with_changes(MINIMAL_LLMSERVICE, "spec.scaling", {"max": 2}))
    assert code == 0, output
    assert json.loads(output)["spec"]["scaling"] == {**DEFAULTED_SPEC_PARTS["scaling"], "max": 2}


def test_runtime_defaults_are_applied_by_the_server(cluster: ControlPlane) -> None:
    document = with_changes(FULL_RUNTIME, "spec.container.port", None)
    document = with_changes(document, "spec.family", None)
    code, output = _apply(cluster, document)
    assert code == 0, output
    spec = json.loads(output)["spec"]
    assert spec["family"] == "vllm"
    assert spec["container"]["port"] == {"name": "http", "containerPort": 8000}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.scaling.min", -1, ["spec.scaling.min", "should be greater than or equal to 0"]),
        ("spec.scaling", {"min": 3, "max": 2}, ["spec.scaling", "min must not exceed max"]),
        (
            "spec.endpoint.coldStart.mode",
            "sometimes",
            ["spec.endpoint.coldStart.mode", 'Unsupported value: "sometimes"'],
        ),
        (
            "spec.endpoint.coldStart.heartbeatInterval",
            "5x",
            ["spec.endpoint.coldStart.heartbeatInterval", '"5x"'],
        ),
        ("spec.scaling.activationTimeout", "10", ["spec.scaling.activationTimeout"]),
        (
            "spec.scaling.scaleDownStabilization",
            "2h",
            ["spec.scaling.scaleDownStabilization", "between 0s and 1h"],
        ),
        ("spec.scaling.metric", "latency", ["spec.scaling.metric", "Unsupported value"]),
        ("spec.scaling.target", 0, ["spec.scaling.target"]),
        ("spec.resources.accelerators", 0, ["spec.resources.accelerators"]),
        ("spec.resources.memory", "32GB", ["spec.resources.memory"]),
        ("spec.cache.strategy", "Tmpfs", ["spec.cache.strategy", "Unsupported value"]),
        ("spec.endpoint.auth.secretName", "Keys_v2", ["spec.endpoint.auth.secretName", "should match"]),
        ("spec.model", None, ["spec.model", "Required value"]),
        ("spec.runtime", None, ["spec.runtime", "set runtime.name or runtime.selector.vendor"]),
        (
            "spec.scaling.schedules",
            [{"name": "w", "start": "0 9 * *", "end": "0 18 * * *"}],
            ["spec.scaling.schedules[0].start", "should match"],
        ),
        (
            "spec.scaling.schedules",
            [{"name": "w", "start": "0 9 * * *", "end": "0 9 * * *"}],
            ["spec.scaling.schedules[0].end", "start and end must differ"],
        ),
        (
            "spec.scaling.schedules",
            [{"name": "w", "start": "0 9 * * *", "end": "0 18 * * *", "timezone": "Europe Berlin"}],
            ["spec.scaling.schedules[0].timezone", "should match"],
        ),
        (
            "spec.scaling",
            {
                "max": 2,
                "schedules": [{"name": "w", "start": "0 9 * * *", "end": "0 18 * * *", "minReplicas": 3}],
            },
            ["spec.scaling.schedules", "minReplicas must not exceed max"],
        ),
        (
            "spec.scaling.schedules",
            [{"name": "w", "start": "0 9 * * *", "end": "0 18 * * *"}] * 2,
            ["spec.scaling.schedules[1]", "Duplicate value"],
        ),
        (
            "spec.endpoint",
            {"fallback": {"service": "small", "url": "https://api.example.com/v1", "model": "m"}},
            ["spec.endpoint.fallback", "set exactly one of service or url"],
        ),
        (
            "spec.endpoint",
            {"fallback": {"service": "small", "apiKeySecret": {"name": "k"}}},
            ["spec.endpoint.fallback.apiKeySecret", "apiKeySecret is for an external url"],
        ),
        (
            "spec.endpoint",
            {"fallback": {"url": "https://api.example.com/v1"}},
            ["spec.endpoint.fallback.model", "model is required with url"],
        ),
        (
            "spec.endpoint",
            {"fallback": {"url": "ftp://files.example.com", "model": "m"}},
            ["spec.endpoint.fallback.url", "should match"],
        ),
        (
            "spec.endpoint",
            {"fallback": {"service": "minimal"}},
            ["spec.endpoint.fallback.service", "must name another LLMService, not this one"],
        ),
        (
            "spec.endpoint",
            {"fallback": {"service": "small", "whileCold": "Sometimes"}},
            ["spec.endpoint.fallback.whileCold", "Unsupported value"],
        ),
        ("metadata.name", "Qwen3", ["metadata.name"]),
        ("metadata.name", "a" * 56, ["metadata.name", "at most 55 characters"]),
        ("spec.endpoint.maxQueue", 0, ["spec.endpoint.maxQueue", "should be greater than or equal to 1"]),
        ("spec.endpoint.resources.limits.memory", "lots", ["spec.endpoint.resources.limits.memory"]),
        ("spec.endpoint.resources.limits.gpu", 1, ["spec.endpoint.resources.limits.gpu"]),
        ("spec.endpoint.authentication", {}, ["spec.endpoint.authentication.secretRef", "Required value"]),
        (
            "spec.endpoint.authentication.secretRef",
            {"name": "keys", "key": "a/b"},
            ["spec.endpoint.authentication.secretRef.key", "should match"],
        ),
        (
            # v0.4's one-key form beside Hearth's every-value form: which would win is not guessed.
            "spec.endpoint",
            {"auth": {"secretName": "keys"}, "authentication": {"secretRef": {"name": "k", "key": "a"}}},
            [
                "spec.endpoint.authentication",
                "set endpoint.authentication.secretRef or endpoint.auth.secretName, not both",
            ],
        ),
    ],
)
def test_bad_llmservices_are_refused_naming_the_field(
    cluster: ControlPlane, path: str, value: Any, expected: list[str]
) -> None:
    code, output = _apply(cluster, with_changes(MINIMAL_LLMSERVICE, path, value))
    assert code != 0, f"the server accepted {path}={value!r}"
    for fragment in expected:
        assert fragment in output


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.vendor", "moorethreads", ["spec.vendor", 'Unsupported value: "moorethreads"']),
        ("spec.vendor", None, ["spec.vendor", "Required value"]),
        (
            "spec.family",
            "ollama",
            ["spec.family", 'Unsupported value: "ollama"', '"vllm", "sglang", "llamacpp", "trtllm", "tgi"'],
        ),
        ("spec.container.port.containerPort", 70000, ["spec.container.port.containerPort"]),
        ("spec.accelerator.resourceName", None, ["spec.accelerator.resourceName", "Required value"]),
        (
            "spec.accelerator.scheduler",
            {"queue": "llm"},
            ["spec.accelerator.scheduler.queue", "requires scheduler name volcano"],
        ),
        ("spec.lifecycle.terminationGracePeriodSeconds", 0, ["spec.lifecycle.terminationGracePeriodSeconds"]),
        *(
            (
                "spec.container.port.name",
                name,
                ["spec.container.port.name", "container.port.name must be an IANA service name"],
            )
            for name in ("HTTP", "8000", "a--b", "-http")
        ),
        ("spec.container.port.name", "serving-api-port", ["spec.container.port.name", "Too long"]),
    ],
)
def test_bad_runtimes_are_refused_naming_the_field(
    cluster: ControlPlane, path: str, value: Any, expected: list[str]
) -> None:
    code, output = _apply(cluster, with_changes(FULL_RUNTIME, path, value))
    assert code != 0, f"the server accepted {path}={value!r}"
    for fragment in expected:
        assert fragment in output


def test_kubectl_get_shows_the_spec_columns_and_wide_extras(cluster: ControlPlane) -> None:
    document = with_changes(MINIMAL_LLMSERVICE, "metadata.name", "columns")
    code, output = _apply(cluster, document, dry_run=False)
    assert code == 0, output
    status = {
        "status": {
            "phase": "Ready",
            "resolvedRuntime": "vllm-nvidia",
            "replicas": 1,
            "desiredReplicas": 1,
            "endpointURL": "http://columns.default.svc/v1",
            "accounting": {"since": "2026-01-01T00:00:00.000Z", "savedAcceleratorHours": 12.5},
            "lastWake": {"startedAt": "2026-01-01T00:00:00.000Z", "totalSeconds": 41.25},
            "warmWindow": {
                "name": "office-hours",
                "state": "Open",
                "opensAt": "2026-01-01T08:00:00Z",
                "minReplicas": 1,
            },
        }
    }
    cluster.kubectl(
        "patch", "llmservice", "columns", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    header, row = cluster.kubectl("get", "llmservice", "columns").stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "RUNTIME", "REPLICAS", "AGE"]
    assert row.split()[:4] == ["columns", "Ready", "vllm-nvidia", "1"]
    wide_header, wide_row = cluster.kubectl("get", "llms", "columns", "-o", "wide").stdout.splitlines()
    assert wide_header.split() == [
        "NAME",
        "PHASE",
        "RUNTIME",
        "REPLICAS",
        "DESIRED",
        "MODEL",
        "ENDPOINT",
        "GATEWAY",
        "SAVED-H",
        "LAST-WAKE-S",
        "POOL",
        "POOL-STATE",
        "WINDOW",
        "WINDOW-STATE",
        "AGE",
    ]
    assert "http://columns.default.svc/v1" in wide_row
    # The gateway and pool columns are empty.
    assert wide_row.split()[-5:-1] == ["12.5", "41.25", "office-hours", "Open"]
    runtimes = cluster.kubectl("get", "inferenceruntime").stdout.splitlines()
    assert runtimes[0].split() == ["NAME", "FAMILY", "VENDOR", "RESOURCE", "PRIORITY", "AGE"]
    assert any(line.split()[:3] == ["vllm-stub", "vllm", "generic"] for line in runtimes[1:])
    assert "IMAGE" in cluster.kubectl("get", "infrt", "-o", "wide").stdout


def test_short_names_and_the_hearth_category(cluster: ControlPlane) -> None:
    listing = cluster.kubectl("get", "hearth", "-A").stdout
    assert "inferenceruntime.serving.hearth.dev/vllm-nvidia" in listing
    assert cluster.kubectl("get", "llmsvc", "-A", check=False).returncode == 0
    assert cluster.kubectl("get", "infrt", check=False).returncode == 0


def test_kubectl_explain_describes_the_fields(cluster: ControlPlane) -> None:
    scaling = cluster.kubectl("explain", "llmservice.spec.scaling").stdout
    assert "Replica bounds" in scaling
    for field in (
        "activationTimeout",
        "drainTimeout",
        "max",
        "metric",
        "min",
        "scaleDownStabilization",
        "target",
    ):
        assert f"  {field}\t" in scaling, field
    assert "Fewest backend replicas; 0 enables scale-to-zero." in scaling
    vendor = cluster.kubectl("explain", "inferenceruntime.spec.vendor").stdout
    assert "nvidia, ascend, or generic" in vendor


def test_status_is_a_subresource(cluster: ControlPlane) -> None:
    document = with_changes(MINIMAL_LLMSERVICE, "metadata.name", "status-sub")
    document["status"] = {"phase": "Ready"}
    code, output = _apply(cluster, document, dry_run=False)
    assert code == 0, output
    assert "status" not in json.loads(output) or json.loads(output)["status"] == {}, (
        "status is ignored on the main resource"
    )


def test_the_status_subresource_keeps_hearths_own_fields(cluster: ControlPlane) -> None:
    document = with_changes(MINIMAL_LLMSERVICE, "metadata.name", "status-fields")
    code, output = _apply(cluster, document, dry_run=False)
    assert code == 0, output
    fields = {
        "phase": "Ready",
        "desiredReplicas": 2,
        "lastScaleTime": "2026-11-23T12:00:00Z",
        "lastScaleReason": "demand 2 needs 2 replicas",
        "lastActivationTime": "2026-11-23T12:03:20.125Z",
        "lastColdStartDuration": "7.4s",
    }
    result = cluster.kubectl(
        "patch",
        "llmservice",
        "status-fields",
        "--subresource=status",
        "--type=merge",
        "-o",
        "json",
        "-p",
        json.dumps({"status": fields}),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["status"]
    assert {key: stored.get(key) for key in fields} == fields


@pytest.mark.parametrize("kind", bundle.KINDS)
def test_kubectl_applies_the_checkout_folders_as_the_readme_says(cluster: ControlPlane, kind: str) -> None:
    # README: `kubectl apply -f crds` and `-f runtimes`. A symlinked folder fails with "is a directory".
    folder = str(bundle.checkout_folder(kind))
    result = cluster.kubectl("apply", "--dry-run=server", "-f", folder, check=False)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(bundle.names(kind))


#: spec.scaling.externalScaler.tls as Noctaya's docs write it (issue 27), with our group.
V04_SCALER_TLS = {
    "serverSecretName": "qwen-scaler-tls",
    "authenticationRef": {"name": "keda-scaler-client", "kind": "ClusterTriggerAuthentication"},
}


def test_a_manifest_of_the_v04_scaler_tls_is_accepted_preserved_and_checked(cluster: ControlPlane) -> None:
    document = with_changes(V04_LLMSERVICE, "spec.scaling", {"externalScaler": {"tls": V04_SCALER_TLS}})
    code, output = _apply(cluster, document)
    assert code == 0, output
    assert json.loads(output)["spec"]["scaling"]["externalScaler"] == {"tls": V04_SCALER_TLS}
    # The kind defaults to the namespaced TriggerAuthentication, as KEDA's own authenticationRef does.
    namespaced = {"serverSecretName": "s", "authenticationRef": {"name": "a"}}
    code, output = _apply(cluster, with_changes(document, "spec.scaling.externalScaler.tls", namespaced))
    assert code == 0, output
    stored = json.loads(output)["spec"]["scaling"]["externalScaler"]["tls"]["authenticationRef"]
    assert stored == {"name": "a", "kind": "TriggerAuthentication"}
    # Nothing is defaulted into objects that do not set it.
    assert "externalScaler" not in json.loads(_apply(cluster, MINIMAL_LLMSERVICE)[1])["spec"]["scaling"]
    wrong_kind = {"serverSecretName": "s", "authenticationRef": {"name": "a", "kind": "Secret"}}
    code, output = _apply(cluster, with_changes(document, "spec.scaling.externalScaler.tls", wrong_kind))
    assert code != 0
    assert "spec.scaling.externalScaler.tls.authenticationRef.kind" in output
    code, output = _apply(
        cluster,
        with_changes(document, "spec.scaling.externalScaler.tls", {"authenticationRef": {"name": "a"}}),
    )
    assert code != 0
    assert "serverSecretName" in output
