"""The objects `hearth e2e` creates are valid, to Hearth's models and to a real API server."""

from __future__ import annotations

import json

from hearth.api import loading
from hearth.common import bundle
from hearth.e2e import fixtures, runner
from tests.cluster.controlplane import ControlPlane


def test_fixtures_are_valid_hearth_objects(control_plane: ControlPlane) -> None:
    documents = [
        fixtures.runtime("e2e-rt", image="hearth.dev/vllm-stub:e2e"),
        fixtures.service("cold", "default", "e2e-rt", mode="reject", auth_secret="cold-keys"),
        fixtures.cached_service("warm", "default", "e2e-rt", strategy="NodeLocalPVC"),
        fixtures.cached_service("host", "default", "e2e-rt", strategy="HostPath"),
    ]
    for document in documents:
        loading.parse_object(document, source="e2e fixtures")
    documents.append(fixtures.api_keys("cold-keys", "default", "sk-test"))
    documents += fixtures.hub("default", image="hearth.dev/vllm-stub:e2e")
    documents.append(fixtures.host_cache_pod("prepare", "default", image="stub", script="true"))
    text = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    control_plane.apply_crds(text, "llmservices.serving.hearth.dev", "inferenceruntimes.serving.hearth.dev")
    for document in documents:
        result = control_plane.kubectl(
            "create", "--dry-run=server", "-f", "-", stdin=json.dumps(document), check=False
        )
        assert result.returncode == 0, result.stderr


def test_the_e2e_pods_pass_a_namespace_enforcing_restricted_but_the_host_path_one(
    control_plane: ControlPlane,
) -> None:
    """hearth e2e --pod-security-restricted: the run's own pods (the stand-in hub) are admitted by the
    API server's PodSecurity admission; the HostPath preparation pod (skipped under the flag) is not."""
    name = "e2e-restricted"
    namespace = fixtures.namespace(name, enforce_restricted=True)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert "labels" not in fixtures.namespace(name)["metadata"], "off by default"
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    control_plane.kubectl("create", "serviceaccount", "default", "-n", name, check=False)
    (hub, _service) = fixtures.hub(name, image="hearth.dev/vllm-stub:e2e")
    pods = {
        "hub": hub["spec"]["template"]["spec"],
        "host-cache": fixtures.host_cache_pod("prepare", name, image="stub", script="true")["spec"],
    }
    outcome = {}
    for pod_name, spec in pods.items():
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "namespace": name}}
        result = control_plane.kubectl(
            "create", "--dry-run=server", "-f", "-", stdin=json.dumps({**pod, "spec": spec}), check=False
        )
        outcome[pod_name] = (result.returncode, "violates PodSecurity" in result.stderr)
    assert outcome == {"hub": (0, False), "host-cache": (1, True)}


def test_verdict_table_ends_with_the_counts() -> None:
    table = runner.verdict_table([runner.Result("a", True, 1.0, "ok"), runner.Result("b", False, 2.0, "no")])
    assert table.splitlines()[-1] == "e2e verdict: 1 of 2 scenarios passed"
    assert "FAIL" in table.splitlines()[2]
