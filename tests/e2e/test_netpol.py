"""The NetworkPolicy scenario's pieces (hearth.e2e.netpol): its probes are set up so that the policy Hearth
renders admits exactly the one it expects answered, the probe script tells an answer from a refusal, and a
probe that saw what the policy forbids fails the scenario."""

from __future__ import annotations

import asyncio
import http.server
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.e2e import fixtures, netpol, runner
from hearth.render import backend, names

BUSYBOX = shutil.which("busybox")


def _policy() -> dict[str, Any]:
    service = loading.parse_object(fixtures.service(netpol.SERVICE, "ns", "rt"), source="e2e")
    runtime = loading.parse_object(fixtures.runtime("rt", image="stub"), source="e2e")
    assert isinstance(service, LLMService)
    assert isinstance(runtime, InferenceRuntime)
    return backend.network_policy(service, runtime, drain_port=DRAIN_PORT)


DRAIN_PORT = 8091


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def _admitted(
    policy: dict[str, Any], pod_labels: dict[str, str], namespace: dict[str, Any], port: str | int = "http"
) -> bool:
    """Whether an ingress rule of *policy* for *port* (the runtime port's name "http", where the metrics
    probes connect, or the drain port's number) names this pod as a peer (selectors by matchLabels only,
    all the renderer writes; a podSelector alone means the policy's own namespace, "ns"; with a
    namespaceSelector, both must match)."""
    namespace_labels = namespace["metadata"].get("labels", {})
    for rule in policy["spec"]["ingress"]:
        if not any(each["port"] == port for each in rule["ports"]):
            continue
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                in_namespace = _matches(peer["namespaceSelector"], namespace_labels)
            else:
                in_namespace = namespace["metadata"]["name"] == "ns"
            if in_namespace and _matches(peer.get("podSelector", {}), pod_labels):
                return True
    return False


def test_the_policy_admits_exactly_the_probe_expected_answered() -> None:
    policy = _policy()
    namespaces = {
        "ns": fixtures.namespace("ns"),
        "ns-metrics": netpol.scraper_namespace("ns-metrics"),
        "ns-other": fixtures.namespace("ns-other"),
    }
    expect = {
        "ns": netpol.Expect.REFUSED,
        "ns-metrics": netpol.Expect.ANSWERED,
        "ns-other": netpol.Expect.REFUSED,
    }
    for name, namespace in namespaces.items():
        probe = netpol.Probe(f"p-{name}", name, expect[name], "why")
        pod = netpol.probe_pod(probe, image="stub", ip="10.88.0.9", port=8000)
        admitted = _admitted(policy, pod["metadata"]["labels"], namespace)
        assert admitted == (probe.expect is netpol.Expect.ANSWERED), name


def test_only_a_pod_labelled_as_the_operator_reaches_the_drain_port() -> None:
    policy = _policy()
    operator = netpol.Probe(
        "op",
        "ns-other",
        netpol.Expect.ANSWERED,
        "why",
        netpol.Target.DRAIN,
        tuple(names.OPERATOR_POD_SELECTOR.items()),
    )
    plain = netpol.Probe("plain", "ns", netpol.Expect.REFUSED, "why", netpol.Target.DRAIN)
    namespaces = {"ns": fixtures.namespace("ns"), "ns-other": fixtures.namespace("ns-other")}
    for probe in (operator, plain):
        pod = netpol.probe_pod(probe, image="stub", ip="10.88.0.9", port=DRAIN_PORT)
        assert "GET /healthz " in pod["spec"]["containers"][0]["command"][-1]
        admitted = _admitted(policy, pod["metadata"]["labels"], namespaces[probe.namespace], DRAIN_PORT)
        assert admitted == (probe.expect is netpol.Expect.ANSWERED), probe.name


def test_a_probe_that_saw_what_the_policy_forbids_is_named() -> None:
    refused = netpol.Probe("a", "ns", netpol.Expect.REFUSED, "a plain pod")
    answered = netpol.Probe("b", "ns-metrics", netpol.Expect.ANSWERED, "a scraper")
    assert netpol.verdict({refused: netpol.Expect.REFUSED, answered: netpol.Expect.ANSWERED}) == []
    assert netpol.verdict({refused: netpol.Expect.ANSWERED, answered: netpol.Expect.ANSWERED}) == [
        "a plain pod: answered, should be refused"
    ]


def test_a_probe_pods_phase_is_its_outcome() -> None:
    assert netpol.outcome({"status": {"phase": "Succeeded"}}) is netpol.Expect.ANSWERED
    assert netpol.outcome({"status": {"phase": "Failed"}}) is netpol.Expect.REFUSED
    assert netpol.outcome({"status": {"phase": "Running"}}) is None
    assert netpol.outcome(None) is None


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()
        self.wfile.write(b"vllm:num_requests_running 0\n")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def metrics_port() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _probe(port: int, tries: int, path: str = "/metrics") -> subprocess.CompletedProcess[str]:
    assert BUSYBOX is not None
    # The script calls busybox at the image's path: point it at the host's.
    script = netpol.probe_script("127.0.0.1", port, tries, path).replace("/bin/busybox", BUSYBOX)
    return subprocess.run(
        [BUSYBOX, "sh", "-c", script], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.skipif(BUSYBOX is None, reason="busybox (the probe image's shell) is not installed")
def test_the_probe_script_tells_an_answer_from_a_refusal(metrics_port: int) -> None:
    answered = _probe(metrics_port, 1)
    assert (answered.returncode, answered.stdout.strip()) == (0, "answered at try 1")
    refused = _probe(_closed_port(), 1)
    assert (refused.returncode, refused.stdout.strip()) == (1, "no answer in 1 tries")
    assert _probe(metrics_port, 1, path="/healthz").returncode == 1, "another path: a 404 is no answer"


def test_without_a_named_enforcer_the_scenario_is_not_promised() -> None:
    """An API server alone accepts the policy and enforces nothing: N1 must not pass (or fail) there."""

    class _Run:
        options = runner.Options(stub_image="stub")

    with pytest.raises(runner.ScenarioNotPromisedError, match="no NetworkPolicy enforcer"):
        asyncio.run(netpol.enforced_network_policy(_Run()))  # type: ignore[arg-type]
