"""The e2e runner's own logic: skips (and --no-skip), the verdict line, and reading gateway metrics."""

from __future__ import annotations

import functools
from typing import Any, cast

import prometheus_client
import pytest

from hearth.api import scalermodes
from hearth.e2e import caches, promtext, runner
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError


async def _run_one(no_skip: bool) -> runner.Result:
    session = runner.Run(
        cast(KubeClient, None), runner.Options(stub_image="stub", no_skip=no_skip), report=lambda _: None
    )

    async def needs_two_gateways() -> str:
        session.skip("needs 2 gateway replicas, found 1")

    try:
        await session.scenario("ha", needs_two_gateways)
    finally:
        await session.http.close()
    return session.results[0]


async def test_a_scenario_the_cluster_cannot_run_is_skipped_not_failed() -> None:
    result = await _run_one(no_skip=False)
    assert (result.verdict, result.passed) == ("SKIP", True)
    assert "needs 2 gateway replicas" in result.detail


async def test_no_skip_turns_a_skip_into_a_failure() -> None:
    result = await _run_one(no_skip=True)
    assert (result.verdict, result.passed) == ("FAIL", False)
    assert "--no-skip" in result.detail


async def test_a_scenario_the_mode_does_not_promise_is_skipped_even_under_no_skip() -> None:
    session = runner.Run(
        cast(KubeClient, None), runner.Options(stub_image="stub", no_skip=True), report=lambda _: None
    )
    session.mode = "external-push"

    async def needs_two_gateways() -> str:
        session.not_promised("external-push runs exactly one gateway replica")

    try:
        await session.scenario("ha", needs_two_gateways)
    finally:
        await session.http.close()
    (result,) = session.results
    assert (result.verdict, result.passed) == ("SKIP", True)
    assert (
        result.detail
        == "skipped: not promised in external-push mode: external-push runs exactly one gateway replica"
    )


class _RefusingPods:
    """A client that records what is applied and refuses pods: the first *security_refusals* for Pod
    Security (the namespace's new level not in force yet), then every one with *error*, if any."""

    def __init__(self, *, security_refusals: int = 0, error: ApiError | None = None) -> None:
        self.applied: list[dict[str, Any]] = []
        self.security_refusals = security_refusals
        self.error = error

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(manifest)
        if manifest["kind"] == "Pod":
            if self.security_refusals:
                self.security_refusals -= 1
                raise ApiError(
                    status=403, reason="Forbidden", message='violates PodSecurity "restricted:latest"'
                )
            if self.error is not None:
                raise self.error
        return manifest


@pytest.mark.looptime
async def test_the_host_cache_pod_is_created_once_the_relaxed_level_is_in_force() -> None:
    client = _RefusingPods(security_refusals=2)
    options = runner.Options(stub_image="stub", pod_security_restricted=True)
    session = runner.Run(cast(KubeClient, client), options, report=lambda _: None)
    try:
        await session.wait("admitted", lambda: caches.admitted_host_cache_pod(session), within=10)
    finally:
        await session.http.close()
    assert [m["kind"] for m in client.applied] == ["Pod", "Pod", "Pod"]


async def test_the_host_path_cache_relaxes_a_restricted_namespace_only_while_it_runs() -> None:
    client = _RefusingPods(error=ApiError(status=403, reason="Forbidden", message="exceeded quota"))
    options = runner.Options(stub_image="stub", no_skip=True, pod_security_restricted=True)
    session = runner.Run(cast(KubeClient, client), options, report=lambda _: None)
    try:
        await session.scenario("hostpath", functools.partial(caches.host_path_prewarmed, session))
    finally:
        await session.http.close()
    (result,) = session.results
    assert (result.verdict, result.detail) == ("FAIL", "403 Forbidden: exceeded quota")
    levels = [
        (m["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce", m["kind"])
        for m in client.applied
    ]
    # Relaxed before the host-path pod, and restricted again even though the scenario failed.
    assert levels == ["privileged", "Pod", "restricted"]


def test_the_verdict_table_names_the_scaler_mode() -> None:
    lines = runner.verdict_table([runner.Result("a", True, 1.0, "ok")], mode="metrics-api").splitlines()
    assert lines[0] == "scaler mode: metrics-api"
    assert lines[-1] == "e2e verdict: 1 of 1 scenarios passed"


def test_verdict_line_counts_skips_apart() -> None:
    results = [
        runner.Result("a", True, 1.0, "ok"),
        runner.Result("b", True, 0.1, "skipped: no", skipped=True),
        runner.Result("c", False, 2.0, "no"),
    ]
    lines = runner.verdict_table(results).splitlines()
    assert lines[-1] == "e2e verdict: 1 of 3 scenarios passed, 1 skipped"
    assert [line.split()[1] for line in lines[1:4]] == ["PASS", "SKIP", "FAIL"]


def _page(**values: Any) -> promtext.Samples:
    registry = prometheus_client.CollectorRegistry()
    wakes = prometheus_client.Counter("hearth_gateway_wake_requests", "", ["result"], registry=registry)
    patch = prometheus_client.Histogram("hearth_gateway_wake_patch_seconds", "", registry=registry)
    for _ in range(values.get("scaled", 0)):
        wakes.labels(result="scaled").inc()
    for seconds in values.get("patches", ()):
        patch.observe(seconds)
    return promtext.parse(prometheus_client.generate_latest(registry).decode())


def test_metric_deltas_are_summed_over_pods_and_a_new_pod_counts_from_zero() -> None:
    before = {"gw-a": _page(scaled=2, patches=[0.5])}
    after = {"gw-a": _page(scaled=3, patches=[0.5, 0.02]), "gw-b": _page(scaled=1, patches=[0.03])}
    scaled = promtext.total_delta(before, after, "hearth_gateway_wake_requests_total", result="scaled")
    assert scaled == 2
    assert promtext.total_delta(before, after, "hearth_gateway_wake_patch_seconds_count") == 2
    assert promtext.total_delta(before, after, "hearth_gateway_wake_patch_seconds_sum") == pytest.approx(0.05)
    assert promtext.delta({}, after["gw-b"], "hearth_gateway_wake_requests_total", result="missing") == 0


class _OneDeployment:
    """A client that knows one Deployment (the runner only reads it)."""

    def __init__(self, deployment: dict[str, Any]) -> None:
        self.deployment = deployment

    async def get(self, *_: object) -> dict[str, Any]:
        return self.deployment


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        ({"replicas": 2}, {"observedGeneration": 3, "readyReplicas": 2}, (2, 2)),
        # Just scaled to 0: the status still reports the two pods of before.
        ({"replicas": 0}, {"observedGeneration": 3, "readyReplicas": 2}, (0, 0)),
        # Scaled again, not yet observed: what the status says is about the spec before.
        ({"replicas": 2}, {"observedGeneration": 2, "readyReplicas": 2}, (2, 0)),
    ],
    ids=["current", "scaled-down", "not-observed"],
)
async def test_ready_replicas_count_only_for_the_current_spec(
    spec: dict[str, Any], status: dict[str, Any], expected: tuple[int, int]
) -> None:
    deployment = {"metadata": {"generation": 3}, "spec": spec, "status": status}
    session = runner.Run(
        cast(KubeClient, _OneDeployment(deployment)), runner.Options(stub_image="stub"), report=lambda _: None
    )
    try:
        assert await session.replicas("cold") == expected
    finally:
        await session.http.close()


def _fake_kubectl(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """A kubectl on PATH that behaves as *script* says (port-forward's output is all the runner reads)."""
    path = tmp_path / "kubectl"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")


async def test_a_port_forward_that_fails_says_what_kubectl_said(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_kubectl(tmp_path, monkeypatch, 'echo "error: no ready pods behind service/cold" >&2\nexit 1\n')
    session = runner.Run(
        cast(KubeClient, None), runner.Options(stub_image="stub", keep=True), report=lambda _: None
    )
    try:
        with pytest.raises(runner.ScenarioFailedError, match="no ready pods behind service/cold"):
            await session._port_forward("service/cold")
    finally:
        await session.cleanup()  # keep: only the port-forwards and the HTTP session


async def test_a_port_forward_url_is_read_from_the_line_naming_the_local_port(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_kubectl(
        tmp_path,
        monkeypatch,
        'echo "Handling connection"\necho "Forwarding from 127.0.0.1:40123 -> 8080"\nexec sleep 30\n',
    )
    session = runner.Run(
        cast(KubeClient, None), runner.Options(stub_image="stub", keep=True), report=lambda _: None
    )
    try:
        assert await session._port_forward("service/cold") == "http://127.0.0.1:40123"
    finally:
        await session.cleanup()  # keep: only the port-forwards and the HTTP session


async def test_a_port_forward_talks_to_the_cluster_the_run_was_given(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hearth e2e --kubeconfig X --context Y`: kubectl port-forward must use X and Y too, not the default
    kubeconfig (it asked localhost:8080 on the test bed)."""
    _fake_kubectl(
        tmp_path,
        monkeypatch,
        f'echo "$@" > {tmp_path}/args\necho "Forwarding from 127.0.0.1:40123 -> 8080"\nexec sleep 30\n',
    )
    options = runner.Options(
        stub_image="stub", keep=True, kubeconfig="/etc/bed/admin.kubeconfig", context="bed"
    )
    session = runner.Run(cast(KubeClient, None), options, report=lambda _: None)
    try:
        await session._port_forward("service/cold")
    finally:
        await session.cleanup()  # keep: only the port-forwards and the HTTP session
    words = (tmp_path / "args").read_text().split()
    assert words[:4] == ["--kubeconfig", "/etc/bed/admin.kubeconfig", "--context", "bed"]
    assert "port-forward" in words


class _GatewayDeployments:
    """A client whose gateway Deployment appears on the second read, naming *mode*."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.reads = 0

    async def get(self, rt: Any, name: str, namespace: str) -> dict[str, Any] | None:
        self.reads += 1
        if self.reads == 1:
            return None  # not rendered yet
        env = [
            {"name": "HEARTH_LOG_FORMAT", "value": "json"},
            {"name": "HEARTH_SCALER_MODE", "value": self.mode},
        ]
        return {"spec": {"template": {"spec": {"containers": [{"name": "gateway", "env": env}]}}}}


@pytest.mark.looptime
async def test_the_scaler_mode_is_read_once_the_gateway_is_rendered_with_its_registry_traits() -> None:
    client = _GatewayDeployments("external-push")
    session = runner.Run(cast(KubeClient, client), runner.Options(stub_image="stub"), report=lambda _: None)
    try:
        traits = await session.traits("cold")
    finally:
        await session.http.close()
    assert client.reads == 2
    assert traits is scalermodes.traits(scalermodes.ScalerMode.EXTERNAL_PUSH)
    assert session.mode is scalermodes.ScalerMode.EXTERNAL_PUSH
    assert not session.pools_promised()


@pytest.mark.looptime
async def test_a_gateway_in_an_unknown_scaler_mode_fails_the_scenario() -> None:
    session = runner.Run(
        cast(KubeClient, _GatewayDeployments("auto")),
        runner.Options(stub_image="stub"),
        report=lambda _: None,
    )
    try:
        with pytest.raises(runner.ScenarioFailedError, match='"auto" is not one of'):
            await session.scaler_mode("cold")
    finally:
        await session.http.close()
