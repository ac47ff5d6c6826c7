"""An AcceleratorPool with the real operator against a real kube-apiserver + controller-manager: members
are woken by the operator (never by their gateway), a cold member evicts an idle one, a member with
demand is never evicted, and both statuses, the Events and the metrics say so (issue 16)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import OperatorProcess, get_json, wait_for
from tests.operator.test_autoscaler_cluster import FakeGateway, add_gateway_pod, replicas
from tests.operator.test_operator_cluster import runtime_yaml, service_yaml

StartOperator = Callable[..., OperatorProcess]


def _pool_yaml(name: str, devices: int = 1) -> str:
    return f"""
apiVersion: serving.hearth.dev/v1alpha1
kind: AcceleratorPool
metadata: {{name: {name}}}
spec: {{resourceName: hearth.dev/fake-accelerator, devices: {devices}, minWarm: 0s, idleGrace: 1s}}
"""


def _member(pool: str, priority: int = 0) -> str:
    return (
        "  scaling: {min: 0, max: 1, target: 1, scaleDownStabilization: 30m}\n"
        f"  pool: {{name: {pool}, priority: {priority}}}\n"
    )


def _status(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        (get_json(plane, "llmservice", name, "-n", namespace) or {}).get("status", {}).get("pool") or {}
    )


def _metrics(operator: OperatorProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def _assert_the_gateway_cannot_wake(plane: ControlPlane, namespace: str, name: str) -> None:
    deployment = get_json(plane, "deployment", f"{name}-gateway", "-n", namespace) or {}
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "HEARTH_BACKEND_DEPLOYMENT" not in {entry["name"] for entry in env}, (
        "a member's gateway never wakes"
    )
    answer = plane.kubectl(
        "auth",
        "can-i",
        "update",
        f"deployments/{name}",
        "--subresource=scale",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:{name}-gateway",
        check=False,
    ).stdout.strip()
    assert answer == "no", "a member's gateway may not scale its backend"


class _ScaleWatch:
    """Watches one Deployment and keeps the resourceVersion of the first write that set it to 0 replicas:
    resourceVersions are the store's revisions, so they order it against other objects' writes."""

    def __init__(self, plane: ControlPlane, namespace: str, name: str) -> None:
        self.at_zero: int | None = None
        self._process = subprocess.Popen(
            [
                str(plane.bin_dir / "kubectl"),
                f"--kubeconfig={plane.kubeconfig}",
                "get",
                "deployment",
                name,
                "-n",
                namespace,
                "--watch",
                '--output=jsonpath={.metadata.resourceVersion} {.spec.replicas}{"\\n"}',
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            version, _, replicas = line.strip().partition(" ")
            if replicas == "0" and self.at_zero is None:
                self.at_zero = int(version)

    def close(self) -> None:
        self._process.kill()
        self._process.wait()


def _event_versions(plane: ControlPlane, namespace: str, involved: str, reason: str) -> list[int]:
    events = get_json(plane, "events", "-n", namespace) or {"items": []}
    return [
        int(event["metadata"]["resourceVersion"])
        for event in events["items"]
        if event["reason"] == reason and event["involvedObject"]["name"] == involved
    ]


def _the_victims_scale_came_first(plane: ControlPlane, watch: _ScaleWatch, namespace: str, pool: str) -> None:
    """The victim's scale is the first write of its eviction (its drain, and the requester's start, wait on
    it); the Events and statuses that describe it come after it (issue 32)."""
    try:
        scaled = wait_for(lambda: watch.at_zero, what="the watch seeing a at 0")
    finally:
        watch.close()
    # (The pool is cluster-scoped: its Events are in the default namespace.)
    expected = ((namespace, "a", "PoolEvicted"), (namespace, "b", "PoolSwap"), ("default", pool, "Swap"))
    for where, involved, reason in expected:
        versions = _event_versions(plane, where, involved, reason)
        assert versions, f"no {reason} Event"
        assert min(versions) > scaled, f"the {reason} Event was written before the victim's scale"


def _the_swap_is_counted(operator: OperatorProcess, pool: str) -> None:
    metrics = _metrics(operator)
    assert f'hearth_pool_swaps_total{{pool="{pool}"}} 1.0' in metrics
    assert f'hearth_pool_devices_in_use{{pool="{pool}"}} 1.0' in metrics
    assert f'hearth_pool_wait_seconds_count{{pool="{pool}"}} 1.0' in metrics


def _a_new_operator_counts_evictions_on(
    plane: ControlPlane, start_operator: StartOperator, operator: OperatorProcess, pool: str
) -> None:
    """A new operator process (a restart, a new leader) counts on from the pool's status, not from 0."""
    operator.stop()
    restarted = start_operator("--scaler-mode=builtin", "--autoscale-interval=250ms", name="restarted")
    wait_for(
        lambda: f'hearth_pool_devices_in_use{{pool="{pool}"}} 1.0' in _metrics(restarted),
        what="the new operator arbitrating the pool",
    )
    time.sleep(1)  # a few more of its passes (250 ms each), each of which would write a wrong total
    listed = get_json(plane, "acceleratorpool", pool) or {}
    assert listed["status"]["evictions"] == 1


def test_a_cold_member_evicts_the_idle_one_and_never_one_with_demand(
    hearth_cluster: ControlPlane, start_operator: StartOperator
) -> None:
    namespace = f"pool-{uuid.uuid4().hex[:8]}"
    runtime = f"rt-{uuid.uuid4().hex[:8]}"
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    gateways = {"a": FakeGateway(), "b": FakeGateway()}
    hearth_cluster.kubectl("create", "namespace", namespace)
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    hearth_cluster.kubectl("apply", "-f", "-", stdin=_pool_yaml(pool))
    try:
        operator = start_operator("--scaler-mode=builtin", "--autoscale-interval=250ms")
        for name in gateways:
            hearth_cluster.kubectl(
                "apply", "-f", "-", stdin=service_yaml(name, namespace, runtime, _member(pool))
            )
        for index, (name, gateway) in enumerate(gateways.items()):
            wait_for(lambda n=name: get_json(hearth_cluster, "deployment", f"{n}-gateway", "-n", namespace))
            add_gateway_pod(hearth_cluster, namespace, name, gateway, index)
        _assert_the_gateway_cannot_wake(hearth_cluster, namespace, "a")

        gateways["a"].pending = 1
        wait_for(lambda: replicas(hearth_cluster, namespace, "a") == 1, what="the operator wakes a")
        wait_for(lambda: _status(hearth_cluster, namespace, "a").get("state") == "Holding", what="a Holding")

        # b needs the one device while a still has demand: b waits, a is kept.
        gateways["b"].pending = 1
        waiting = wait_for(
            lambda: (s := _status(hearth_cluster, namespace, "b")).get("state") == "Waiting" and s,
            what="b Waiting",
        )
        assert "request(s) waiting or in flight" in waiting["reason"]
        assert replicas(hearth_cluster, namespace, "a") == 1
        assert replicas(hearth_cluster, namespace, "b") == 0
        listed = get_json(hearth_cluster, "acceleratorpool", pool) or {}
        assert listed["status"]["waitingCount"] == 1
        assert listed["status"]["waiting"][0]["service"] == f"{namespace}/b"

        # a goes idle: after the idle grace it is evicted for b, and b gets the device.
        watch = _ScaleWatch(hearth_cluster, namespace, "a")
        gateways["a"].pending = 0
        wait_for(lambda: replicas(hearth_cluster, namespace, "b") == 1, timeout=30, what="b woken")
        assert replicas(hearth_cluster, namespace, "a") == 0
        _the_victims_scale_came_first(hearth_cluster, watch, namespace, pool)
        evicted = _status(hearth_cluster, namespace, "a")
        assert evicted["state"] == "Evicted"
        assert f"{namespace}/b" in evicted["reason"]
        wait_for(lambda: _status(hearth_cluster, namespace, "b").get("state") == "Holding", what="b Holding")
        listed = wait_for(
            lambda: (
                (p := get_json(hearth_cluster, "acceleratorpool", pool) or {})
                .get("status", {})
                .get("waitingCount")
                == 0
                and p
            ),
            what="nobody waits",
        )
        assert listed["status"]["devicesInUse"] == 1
        assert [holder["service"] for holder in listed["status"]["holders"]] == [f"{namespace}/b"]
        assert listed["status"]["evictions"] == 1
        _the_swap_is_counted(operator, pool)
        _a_new_operator_counts_evictions_on(hearth_cluster, start_operator, operator, pool)
    finally:
        for gateway in gateways.values():
            gateway.close()
        hearth_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        hearth_cluster.kubectl("delete", "acceleratorpool", pool, check=False)
        hearth_cluster.kubectl("delete", "inferenceruntime", runtime, check=False)


def test_a_pool_member_is_refused_when_its_pool_is_missing(
    hearth_cluster: ControlPlane, start_operator: StartOperator
) -> None:
    namespace = f"pool-{uuid.uuid4().hex[:8]}"
    runtime = f"rt-{uuid.uuid4().hex[:8]}"
    gateway = FakeGateway()
    hearth_cluster.kubectl("create", "namespace", namespace)
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    try:
        start_operator("--scaler-mode=builtin", "--autoscale-interval=250ms")
        hearth_cluster.kubectl(
            "apply", "-f", "-", stdin=service_yaml("lone", namespace, runtime, _member("nowhere"))
        )
        wait_for(lambda: get_json(hearth_cluster, "deployment", "lone-gateway", "-n", namespace))
        add_gateway_pod(hearth_cluster, namespace, "lone", gateway, 0)
        gateway.pending = 1
        refused = wait_for(
            lambda: (s := _status(hearth_cluster, namespace, "lone")).get("state") == "Refused" and s,
            what="Refused",
        )
        assert refused["reason"] == "AcceleratorPool nowhere does not exist"
        assert replicas(hearth_cluster, namespace, "lone") == 0
    finally:
        gateway.close()
        hearth_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        hearth_cluster.kubectl("delete", "inferenceruntime", runtime, check=False)


def test_keda_modes_refuse_a_pool_member_naming_the_field(
    hearth_cluster: ControlPlane, start_operator: StartOperator
) -> None:
    namespace = f"pool-{uuid.uuid4().hex[:8]}"
    runtime = f"rt-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("create", "namespace", namespace)
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    try:
        start_operator("--scaler-mode=metrics-api")
        hearth_cluster.kubectl(
            "apply", "-f", "-", stdin=service_yaml("keda", namespace, runtime, _member("gpus"))
        )
        status = wait_for(
            lambda: (
                (
                    s := (get_json(hearth_cluster, "llmservice", "keda", "-n", namespace) or {}).get(
                        "status", {}
                    )
                ).get("phase")
                == "Degraded"
                and s
            ),
            what="Degraded",
        )
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "Render"
        assert ready["message"].startswith(
            "spec.pool: AcceleratorPool gpus cannot be used with --scaler-mode=metrics-api"
        )
        assert "--scaler-mode=builtin" in ready["message"]
        assert get_json(hearth_cluster, "deployment", "keda", "-n", namespace) is None
    finally:
        hearth_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        hearth_cluster.kubectl("delete", "inferenceruntime", runtime, check=False)


class PollingGateway:
    """A gateway pod's ``/hearth/queue`` and ``/hearth/queues`` with the long-poll (issue 32): ``call()`` is a
    cold request for the member, which the gateway does not wake itself."""

    def __init__(self, model: str) -> None:
        self.pending = 0
        self.calls = 0
        self.held = threading.Event()
        self.routing_asked = threading.Event()
        self._changed = threading.Condition()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                if url.path == "/hearth/queue":
                    document: dict[str, Any] = {"pending": gateway.pending}
                else:
                    since = int(query["since"][0]) if "since" in query else None
                    if since is not None and since == gateway.calls:
                        gateway.held.set()
                        with gateway._changed:
                            gateway._changed.wait_for(
                                lambda: gateway.calls != since, timeout=float(query["wait"][0])
                            )
                    called = [model] if since is not None and gateway.calls != since else []
                    document = {"calls": gateway.calls, "called": called, "models": {model: gateway.pending}}
                    if "routing" in query:
                        gateway.routing_asked.set()
                        view = {"addressesPods": True, "endpoints": 0, "outstanding": 0}
                        document["routing"] = {model: view}
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def call(self) -> None:
        with self._changed:
            self.pending = 1
            self.calls += 1
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.calls += 1  # ends a held poll
            self._changed.notify_all()
        self.server.shutdown()


def test_a_cold_member_is_woken_at_once_not_at_the_next_pass(
    hearth_cluster: ControlPlane, start_operator: StartOperator
) -> None:
    """With passes 20 s apart, a cold request at a member's gateway wakes it within a second (the leader's
    long-poll kicks a pass); a second member's cold request evicts the first, asks the first's gateway where
    it routes (the drain's endpoint delay may be skipped), and wakes the second as soon as the first's pod
    is gone (issue 32)."""
    namespace = f"pool-{uuid.uuid4().hex[:8]}"
    runtime = f"rt-{uuid.uuid4().hex[:8]}"
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    gateways = {"a": PollingGateway("a"), "b": PollingGateway("b")}
    hearth_cluster.kubectl("create", "namespace", namespace)
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime))
    hearth_cluster.kubectl("apply", "-f", "-", stdin=_pool_yaml(pool))
    try:
        start_operator("--scaler-mode=builtin", "--autoscale-interval=20s")
        for index, (name, gateway) in enumerate(gateways.items()):
            hearth_cluster.kubectl(
                "apply", "-f", "-", stdin=service_yaml(name, namespace, runtime, _member(pool))
            )
            wait_for(lambda n=name: get_json(hearth_cluster, "deployment", f"{n}-gateway", "-n", namespace))
            add_gateway_pod(hearth_cluster, namespace, name, gateway, index)  # type: ignore[arg-type]
        # A periodic pass takes the new members to zero and starts polling their gateway pods.
        for name, gateway in gateways.items():
            wait_for(gateway.held.is_set, timeout=60, what=f"the operator's long-poll of {name}")
            wait_for(lambda n=name: replicas(hearth_cluster, namespace, n) == 0, what=f"{name} at zero")
        called = time.monotonic()
        gateways["a"].call()
        wait_for(lambda: replicas(hearth_cluster, namespace, "a") == 1, timeout=15, what="a woken")
        assert time.monotonic() - called < 2, "woken by the kicked pass, not the next periodic one"

        gateways["a"].pending = 0
        time.sleep(1.5)  # past the idle grace (1 s)
        called = time.monotonic()
        gateways["b"].call()
        wait_for(lambda: replicas(hearth_cluster, namespace, "a") == 0, timeout=15, what="a evicted")
        assert gateways["a"].routing_asked.wait(5), "the victim's gateway is asked where it routes"
        # No kubelet here: a's pod is deleted at once, and its going kicks the pass that wakes b.
        wait_for(lambda: replicas(hearth_cluster, namespace, "b") == 1, timeout=15, what="b woken")
        assert time.monotonic() - called < 4, "the swap took kicked passes, not periodic ones"
    finally:
        for gateway in gateways.values():
            gateway.close()
        hearth_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        hearth_cluster.kubectl("delete", "acceleratorpool", pool, check=False)
        hearth_cluster.kubectl("delete", "inferenceruntime", runtime, check=False)
