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


def test_verdict_table_ends_with_the_counts() -> None:
    table = runner.verdict_table([runner.Result("a", True, 1.0, "ok"), runner.Result("b", False, 2.0, "no")])
    assert table.splitlines()[-1] == "e2e verdict: 1 of 2 scenarios passed"
    assert "FAIL" in table.splitlines()[2]
