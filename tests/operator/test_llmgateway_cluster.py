"""An LLMGateway with the real operator against a real kube-apiserver + controller-manager (issue 24): its
children and their labels, env, volumes and Role; its status; services moving in and out of it as their
labels change, losing and regaining their own gateways; deleting it restores them."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import OperatorProcess, get_json, wait_for
from tests.operator.test_operator_cluster import runtime_yaml

StartOperator = Callable[..., OperatorProcess]
SHARED_SELECTOR = {
    "app.kubernetes.io/name": "shared-gateway",
    "app.kubernetes.io/managed-by": "hearth",
    "serving.hearth.dev/llmgateway": "shared",
}


@pytest.fixture
def namespace(hearth_cluster: ControlPlane) -> Iterator[str]:
    name = f"gw-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("create", "namespace", name)
    yield name
    hearth_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def runtime(hearth_cluster: ControlPlane) -> Iterator[str]:
    name = f"rt-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(name))
    yield name
    hearth_cluster.kubectl("delete", "inferenceruntime", name, "--ignore-not-found", check=False)


def _service(name: str, namespace: str, runtime: str, team: str) -> str:
    return f"""
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {{name: {name}, namespace: {namespace}, labels: {{team: {team}}}}}
spec:
  model: {{source: {{uri: hf://Qwen/Qwen3-0.6B}}}}
  runtime: {{name: {runtime}}}
  cache: {{strategy: None}}
"""


GATEWAY = """
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMGateway
metadata: {{name: shared, namespace: {namespace}}}
spec:
  selector: {{matchLabels: {{team: search}}}}
  auth: {{keys: [{{secretName: chat-keys, models: [chat]}}]}}
"""


def _get(plane: ControlPlane, namespace: str, *what: str) -> dict[str, Any] | None:
    return get_json(plane, *what, "-n", namespace)


def _models(plane: ControlPlane, namespace: str) -> list[str] | None:
    gateway = _get(plane, namespace, "llmgateway", "shared") or {}
    return (gateway.get("status") or {}).get("models")


def _own_gateway(plane: ControlPlane, namespace: str, service: str) -> bool:
    return _get(plane, namespace, "deployment", f"{service}-gateway") is not None


def _endpoint_selector(plane: ControlPlane, namespace: str, service: str) -> dict[str, str]:
    return dict(((_get(plane, namespace, "service", service) or {}).get("spec") or {}).get("selector") or {})


def _served_by(plane: ControlPlane, namespace: str, service: str) -> str | None:
    status = (_get(plane, namespace, "llmservice", service) or {}).get("status") or {}
    return status.get("gateway")


def test_a_gateway_routes_the_services_it_selects_and_they_lose_their_own_gateways(
    hearth_cluster: ControlPlane,
    start_operator: StartOperator,
    namespace: str,
    runtime: str,
) -> None:
    plane = hearth_cluster
    start_operator("--scaler-mode=builtin")
    for name, team in (("chat", "search"), ("embed", "search"), ("ads", "ads")):
        plane.kubectl("apply", "-f", "-", stdin=_service(name, namespace, runtime, team))
    wait_for(lambda: _own_gateway(plane, namespace, "chat"), what="chat's own gateway before any LLMGateway")
    plane.kubectl("apply", "-f", "-", stdin=GATEWAY.format(namespace=namespace))

    _check_children(plane, namespace)
    _check_status(plane, namespace)
    _check_selected_services(plane, namespace)
    _check_relabelling(plane, namespace)
    _check_deletion(plane, namespace)


def _check_children(plane: ControlPlane, namespace: str) -> None:
    """Its children, owned by it, with the contract's labels, env, key volume and Role."""
    deployment = wait_for(
        lambda: _get(plane, namespace, "deployment", "shared-gateway"), what="shared Deployment"
    )
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("LLMGateway", "shared", True)
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"] == SHARED_SELECTOR
    (container,) = template["spec"]["containers"]
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env["HEARTH_LLMGATEWAY"] == "shared"
    assert env["HEARTH_SCALER_MODE"] == "builtin"
    assert env["HEARTH_API_KEY_SETS_DIR"] == "/etc/hearth/api-key-sets"
    assert "HEARTH_BACKEND_URL" not in env
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert "/etc/hearth/api-key-sets/chat-keys" in mounts
    assert template["spec"]["serviceAccountName"] == "shared-gateway"
    service = wait_for(lambda: _get(plane, namespace, "service", "shared"), what="shared Service")
    assert service["spec"]["selector"] == SHARED_SELECTOR
    role = wait_for(lambda: _get(plane, namespace, "role", "shared-gateway"), what="shared Role")
    (wake,) = [rule for rule in role["rules"] if rule["resources"] == ["deployments/scale"]]
    assert wake["resourceNames"] == ["chat", "embed"]
    assert wait_for(lambda: _get(plane, namespace, "rolebinding", "shared-gateway"), what="RoleBinding")


def _check_status(plane: ControlPlane, namespace: str) -> None:
    """The two selected models, the address; no pod runs here, so none is ready."""
    wait_for(lambda: _models(plane, namespace) == ["chat", "embed"], what="status.models")
    status = (_get(plane, namespace, "llmgateway", "shared") or {})["status"]
    assert status["modelCount"] == 2
    assert status["endpointURL"] == f"http://shared.{namespace}.svc/v1"
    assert status["readyReplicas"] == 0
    columns = plane.kubectl("get", "llmgw", "shared", "-n", namespace).stdout.splitlines()[1].split()
    assert columns[1:4] == ["2", "0", f"http://shared.{namespace}.svc/v1"]


def _check_selected_services(plane: ControlPlane, namespace: str) -> None:
    """No gateway of their own, their Service leads to the shared pods, their status says so."""
    for name in ("chat", "embed"):
        wait_for(lambda n=name: not _own_gateway(plane, namespace, n), what=f"{name}'s own gateway deleted")
        wait_for(
            lambda n=name: _endpoint_selector(plane, namespace, n) == SHARED_SELECTOR,
            what=f"{name}'s Service",
        )
        wait_for(lambda n=name: _served_by(plane, namespace, n) == "shared", what=f"{name} status.gateway")
        served = (_get(plane, namespace, "llmservice", name) or {})["status"]
        assert served["endpointURL"] == f"http://shared.{namespace}.svc/v1"
        assert _get(plane, namespace, "role", f"{name}-gateway") is None
    assert _own_gateway(plane, namespace, "ads")
    assert _served_by(plane, namespace, "ads") is None


def _check_relabelling(plane: ControlPlane, namespace: str) -> None:
    """Relabelling moves services in and out within a reconcile."""
    plane.kubectl("label", "llmservice", "ads", "team=search", "--overwrite", "-n", namespace)
    plane.kubectl("label", "llmservice", "embed", "team=other", "--overwrite", "-n", namespace)
    wait_for(lambda: _models(plane, namespace) == ["ads", "chat"], what="routes after relabelling")
    wait_for(lambda: not _own_gateway(plane, namespace, "ads"), what="ads' own gateway deleted")
    wait_for(lambda: _own_gateway(plane, namespace, "embed"), what="embed's own gateway back")
    wait_for(lambda: _served_by(plane, namespace, "embed") is None, what="embed no longer served by it")
    embed_selector = _endpoint_selector(plane, namespace, "embed")
    assert embed_selector["serving.hearth.dev/gateway"] == "embed"
    role = _get(plane, namespace, "role", "shared-gateway") or {}
    (wake,) = [rule for rule in role["rules"] if rule["resources"] == ["deployments/scale"]]
    assert wake["resourceNames"] == ["ads", "chat"]


def _check_deletion(plane: ControlPlane, namespace: str) -> None:
    """Deleting the LLMGateway restores the dedicated gateways."""
    plane.kubectl("delete", "llmgateway", "shared", "-n", namespace)
    for name in ("ads", "chat"):
        wait_for(lambda n=name: _own_gateway(plane, namespace, n), what=f"{name}'s own gateway restored")
        wait_for(
            lambda n=name: _endpoint_selector(plane, namespace, n).get("serving.hearth.dev/gateway") == n,
            what=f"{name}'s Service back on its own gateway",
        )
        wait_for(
            lambda n=name: _served_by(plane, namespace, n) is None, what=f"{name} status.gateway cleared"
        )
    wait_for(
        lambda: _get(plane, namespace, "deployment", "shared-gateway") is None,
        # The garbage collector learns of a new CRD's kind at its next discovery (every 30 s).
        timeout=90,
        what="the shared gateway garbage-collected",
    )


def test_a_gateway_named_like_a_service_is_refused_with_a_condition(
    hearth_cluster: ControlPlane,
    start_operator: StartOperator,
    namespace: str,
    runtime: str,
) -> None:
    plane = hearth_cluster
    start_operator("--scaler-mode=builtin")
    plane.kubectl("apply", "-f", "-", stdin=_service("shared", namespace, runtime, "search"))
    plane.kubectl("apply", "-f", "-", stdin=GATEWAY.format(namespace=namespace))

    def ready() -> dict[str, Any] | None:
        status = (_get(plane, namespace, "llmgateway", "shared") or {}).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)

    condition = wait_for(ready, what="the Ready condition")
    assert condition["status"] == "False"
    assert "an LLMService named shared exists" in condition["message"]
    # shared-gateway is the LLMService's own gateway (the names clash too), never the LLMGateway's.
    own = wait_for(
        lambda: _get(plane, namespace, "deployment", "shared-gateway"), what="the service's gateway"
    )
    assert own["metadata"]["ownerReferences"][0]["kind"] == "LLMService"
    assert _endpoint_selector(plane, namespace, "shared")["serving.hearth.dev/gateway"] == "shared"


class FakeSharedGateway:
    """A shared gateway pod's ``/hearth/queues`` with settable per-model demand."""

    def __init__(self) -> None:
        self.models: dict[str, int] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"models": fake.models}).encode()
                self.send_response(200 if self.path == "/hearth/queues" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _add_shared_pod(plane: ControlPlane, namespace: str, fake: FakeSharedGateway, index: int) -> None:
    """A pod that looks like a ready replica of LLMGateway ``shared``, listening on the fake's port."""
    name = f"shared-fake-{index}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"serving.hearth.dev/llmgateway": "shared"},
        },
        "spec": {
            "containers": [
                {
                    "name": "gateway",
                    "image": "hearth.dev/hearth:test",
                    "ports": [{"name": "http", "containerPort": fake.port}],
                }
            ]
        },
    }
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    status = {
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }
    plane.kubectl(
        "patch",
        "pod",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def test_the_builtin_autoscaler_sums_a_models_demand_over_the_shared_gateway_pods(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    plane = hearth_cluster
    fakes = [FakeSharedGateway(), FakeSharedGateway()]
    try:
        start_operator("--scaler-mode=builtin", "--autoscale-interval=250ms")
        scaling = "  scaling: {min: 0, max: 3, target: 1, scaleDownStabilization: 1s}\n"
        plane.kubectl("apply", "-f", "-", stdin=_service("chat", namespace, runtime, "search") + scaling)
        plane.kubectl("apply", "-f", "-", stdin=GATEWAY.format(namespace=namespace))
        wait_for(lambda: _served_by(plane, namespace, "chat") == "shared", what="chat served by the gateway")
        for index, fake in enumerate(fakes):
            _add_shared_pod(plane, namespace, fake, index)
        fakes[0].models, fakes[1].models = {"chat": 1, "other": 7}, {"chat": 1}
        wait_for(lambda: _replicas(plane, namespace, "chat") == 2, what="1 + 1 across two shared pods -> 2")
        fakes[0].models, fakes[1].models = {"chat": 0}, {"chat": 0}
        wait_for(lambda: _replicas(plane, namespace, "chat") == 0, timeout=15, what="back to zero")
    finally:
        for fake in fakes:
            fake.server.shutdown()


def _replicas(plane: ControlPlane, namespace: str, name: str) -> int:
    return int(((_get(plane, namespace, "deployment", name) or {}).get("spec") or {}).get("replicas") or 0)
