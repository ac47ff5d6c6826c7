"""The built-in autoscaler against a real kube-apiserver + controller-manager: demand summed across gateway
replicas drives 1→N at once and N→0 only after the stabilization window; a restart does not flap."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import OperatorProcess, get_json, wait_for
from tests.operator.test_operator_cluster import runtime_yaml, service_yaml

StartOperator = Callable[..., OperatorProcess]


class FakeGateway:
    """A /hearth/queue endpoint with settable demand (threaded: the test waits synchronously)."""

    def __init__(self) -> None:
        self.pending = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"pending": gateway.pending}).encode() + b"\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def fake_gateways() -> Iterator[list[FakeGateway]]:
    gateways = [FakeGateway(), FakeGateway()]
    yield gateways
    for gateway in gateways:
        gateway.close()


def add_gateway_pod(
    plane: ControlPlane, namespace: str, service: str, gateway: FakeGateway, index: int
) -> None:
    """A pod that looks like a ready gateway replica of *service*, listening on the fake's port."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{service}-fake-gateway-{index}",
            "namespace": namespace,
            "labels": {"serving.hearth.dev/gateway": service},
        },
        "spec": {
            "containers": [
                {
                    "name": "gateway",
                    "image": "hearth.dev/hearth:test",
                    "ports": [{"name": "http", "containerPort": gateway.port}],
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
        pod["metadata"]["name"],
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def replicas(plane: ControlPlane, namespace: str, name: str) -> int:
    deployment = get_json(plane, "deployment", name, "-n", namespace) or {}
    return int(deployment.get("spec", {}).get("replicas") or 0)


def test_builtin_autoscaler_scales_on_summed_demand_and_waits_for_the_window(
    hearth_cluster: ControlPlane, start_operator: StartOperator, fake_gateways: list[FakeGateway]
) -> None:
    namespace = f"as-{uuid.uuid4().hex[:8]}"
    runtime = f"rt-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("create", "namespace", namespace)
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    scaling = "  scaling: {min: 0, max: 3, target: 1, scaleDownStabilization: 4s}\n"
    try:
        operator = start_operator("--scaler-mode=builtin", "--autoscale-interval=250ms")
        hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("auto", namespace, runtime, scaling))
        wait_for(lambda: get_json(hearth_cluster, "deployment", "auto", "-n", namespace), what="the backend")
        gateway_account = f"--as=system:serviceaccount:{namespace}:auto-gateway"
        wait_for(lambda: get_json(hearth_cluster, "role", "auto-gateway", "-n", namespace), what="its Role")
        for target, allowed in (("auto", "yes"), ("another-model", "no"), ("auto-gateway", "no")):
            answer = hearth_cluster.kubectl(
                "auth",
                "can-i",
                "update",
                f"deployments/{target}",
                "--subresource=scale",
                "-n",
                namespace,
                gateway_account,
                check=False,
            ).stdout.strip()
            assert answer == allowed, f"the gateway may scale {target}: {answer}, expected {allowed}"
        for index, gateway in enumerate(fake_gateways):
            add_gateway_pod(hearth_cluster, namespace, "auto", gateway, index)

        fake_gateways[0].pending, fake_gateways[1].pending = 1, 1
        wait_for(
            lambda: replicas(hearth_cluster, namespace, "auto") == 2,
            what="demand 1 + 1 across two gateways -> 2",
        )
        fake_gateways[0].pending = 5
        wait_for(lambda: replicas(hearth_cluster, namespace, "auto") == 3, timeout=5, what="max 3 at once")
        status = wait_for(
            lambda: (
                (
                    s := (get_json(hearth_cluster, "llmservice", "auto", "-n", namespace) or {}).get(
                        "status", {}
                    )
                ).get("desiredReplicas")
                == 3
                and s
            ),
            what="status",
        )
        assert "needs 3 replicas" in status["lastScaleReason"]

        fake_gateways[0].pending, fake_gateways[1].pending = 0, 0
        lowered = time.monotonic()
        time.sleep(2.5)
        assert replicas(hearth_cluster, namespace, "auto") == 3, (
            "no scale-down inside the stabilization window"
        )
        wait_for(lambda: replicas(hearth_cluster, namespace, "auto") == 0, timeout=10, what="scale to zero")
        # The window counts from the autoscaler's first sight of the lower demand, which is after we set it.
        assert time.monotonic() - lowered >= 4, "zero only after demand was 0 for the whole window"

        # A gateway's wake sets the scale 0 -> 1 itself; the status then says 1 is wanted, not the 0 of the
        # autoscaler's last decision.
        fake_gateways[0].pending = 1
        hearth_cluster.kubectl("scale", "deployment", "auto", "-n", namespace, "--replicas=1")
        wait_for(
            lambda: (
                (get_json(hearth_cluster, "llmservice", "auto", "-n", namespace) or {})
                .get("status", {})
                .get("desiredReplicas")
                == 1
            ),
            timeout=10,
            what="status.desiredReplicas follows a wake done by a gateway",
        )

        fake_gateways[0].pending = 2
        wait_for(
            lambda: replicas(hearth_cluster, namespace, "auto") == 2, timeout=5, what="scale up from zero"
        )
        fake_gateways[0].pending = 0
        operator.stop()
        start_operator("--scaler-mode=builtin", "--autoscale-interval=250ms", name="restarted")
        time.sleep(3)
        assert replicas(hearth_cluster, namespace, "auto") == 2, (
            "a restarted operator must not scale down at once"
        )
        wait_for(
            lambda: replicas(hearth_cluster, namespace, "auto") == 0,
            timeout=15,
            what="zero after a full window",
        )
        events = (
            get_json(
                hearth_cluster, "events", "-n", namespace, "--field-selector", "involvedObject.name=auto"
            )
            or {}
        )
        reasons = {event["reason"] for event in events.get("items", [])}
        assert {"ScaledUp", "ScaledDown"} <= reasons
    finally:
        hearth_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        hearth_cluster.kubectl("delete", "inferenceruntime", runtime, check=False)
