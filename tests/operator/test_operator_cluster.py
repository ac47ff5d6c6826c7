"""``hearth operator`` against a real kube-apiserver + controller-manager (SPEC §2, issue 4's checks)."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.operator.conftest import OperatorProcess, get_json, wait_for

StartOperator = Callable[..., OperatorProcess]
CHILDREN = [
    ("deployment", "{svc}"),
    ("service", "{svc}-backend"),
    ("deployment", "{svc}-gateway"),
    ("service", "{svc}"),
    ("serviceaccount", "{svc}-gateway"),
    ("role", "{svc}-gateway"),
    ("rolebinding", "{svc}-gateway"),
    ("persistentvolumeclaim", "{svc}-cache"),
]


def runtime_yaml(name: str, image: str = "hearth.dev/vllm-stub:e2e", vendor: str = "generic") -> str:
    return f"""
apiVersion: serving.hearth.dev/v1alpha1
kind: InferenceRuntime
metadata: {{name: {name}}}
spec:
  vendor: {vendor}
  container:
    image: {image}
    args: ["{{{{ .Model.Path }}}}", "--served-model-name={{{{ .Service.Name }}}}"]
  accelerator: {{resourceName: hearth.dev/fake-accelerator}}
  lifecycle: {{preStopDrain: true}}
"""


def service_yaml(name: str, namespace: str, runtime: str, extra: str = "") -> str:
    return f"""
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  model: {{source: {{uri: hf://Qwen/Qwen3-0.6B}}}}
  runtime: {{name: {runtime}}}
{extra}"""


@pytest.fixture
def namespace(hearth_cluster: ControlPlane) -> Iterator[str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("create", "namespace", name)
    yield name
    hearth_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def runtime(hearth_cluster: ControlPlane) -> Iterator[str]:
    name = f"rt-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(name))
    yield name
    hearth_cluster.kubectl("delete", "inferenceruntime", name, "--ignore-not-found", check=False)


def status_of(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    obj = get_json(plane, "llmservice", name, "-n", namespace) or {}
    return dict(obj.get("status") or {})


def events_of(plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    listing = (
        get_json(plane, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}") or {}
    )
    return list(listing.get("items", []))


def settled_writes(operator: OperatorProcess, quiet_seconds: float = 3.0) -> float:
    """The write count once it has stopped moving for *quiet_seconds*."""
    last, since = operator.writes(), time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = operator.writes()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return now
    raise AssertionError("the operator kept writing")


def test_creates_every_child_with_owner_references_and_the_spec_phase(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("qwen", namespace, runtime))
    owner = get_json(hearth_cluster, "llmservice", "qwen", "-n", namespace)
    assert owner is not None
    for kind, pattern in CHILDREN:
        name = pattern.format(svc="qwen")
        child = wait_for(
            lambda k=kind, n=name: get_json(hearth_cluster, k, n, "-n", namespace), what=f"{kind} {name}"
        )
        (reference,) = child["metadata"]["ownerReferences"]
        assert reference["uid"] == owner["metadata"]["uid"]
        assert reference["controller"] is True
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hearth"
    backend = get_json(hearth_cluster, "deployment", "qwen", "-n", namespace, "--show-managed-fields")
    assert backend is not None
    managers = {(entry["manager"], entry["operation"]) for entry in backend["metadata"]["managedFields"]}
    assert ("hearth-operator", "Apply") in managers
    status = wait_for(
        lambda: (
            status_of(hearth_cluster, namespace, "qwen").get("phase")
            and status_of(hearth_cluster, namespace, "qwen")
        )
    )
    # No kubelet runs here: the Deployment has a replica that never becomes ready.
    assert status["phase"] == "Loading"
    assert status["resolvedRuntime"] == runtime
    # What shared gateways act on, published because they read no InferenceRuntime (the stub is vLLM's).
    assert status["engine"] == {"family": "vllm", "streamRule": "lax", "upstreamAfterStream": "reuse"}
    assert status["endpointURL"] == f"http://qwen.{namespace}.svc/v1"
    assert status["observedGeneration"] == owner["metadata"]["generation"]
    conditions = {condition["type"]: condition for condition in status["conditions"]}
    assert conditions["Ready"]["reason"] == "Deploying"
    assert conditions["RuntimeResolved"]["status"] == "True"
    assert conditions["Scaling"]["reason"] == "Builtin", "no KEDA here, so scaler mode auto means builtin"
    # The reference v0.4's conditions, beside ours, each for the generation it describes.
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == ("False", "Progressing")
    assert (conditions["AutoscalingReady"]["status"], conditions["AutoscalingReady"]["reason"]) == (
        "True",
        "Builtin",
    )
    assert {c["observedGeneration"] for c in conditions.values()} == {owner["metadata"]["generation"]}
    reasons = {event["reason"] for event in events_of(hearth_cluster, namespace, "qwen")}
    assert "Loading" in reasons


def test_editing_the_runtime_rerenders_the_backend(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("edit", namespace, runtime))

    def image() -> str | None:
        deployment = get_json(hearth_cluster, "deployment", "edit", "-n", namespace)
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"] if deployment else None

    wait_for(lambda: image() == "hearth.dev/vllm-stub:e2e", what="the first render")
    hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(runtime, image="hearth.dev/vllm-stub:v2"))
    wait_for(lambda: image() == "hearth.dev/vllm-stub:v2", what="the re-render after the runtime changed")


def test_deleting_the_llmservice_garbage_collects_its_children(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("gone", namespace, runtime))
    wait_for(lambda: get_json(hearth_cluster, "deployment", "gone-gateway", "-n", namespace), what="children")
    hearth_cluster.kubectl("delete", "llmservice", "gone", "-n", namespace)
    for kind, pattern in CHILDREN:
        name = pattern.format(svc="gone")
        wait_for(
            lambda k=kind, n=name: get_json(hearth_cluster, k, n, "-n", namespace) is None,
            timeout=60,
            what=f"garbage collection of {kind} {name}",
        )


def test_a_missing_runtime_degrades_with_an_event_and_fixing_it_recovers(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str
) -> None:
    start_operator()
    missing = f"rt-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("lost", namespace, missing))
    status = wait_for(
        lambda: (s := status_of(hearth_cluster, namespace, "lost")).get("phase") == "Degraded" and s,
        what="Degraded",
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "RuntimeResolution"
    assert f'get InferenceRuntime "{missing}": not found' in ready["message"]
    warning = wait_for(
        lambda: [e for e in events_of(hearth_cluster, namespace, "lost") if e["type"] == "Warning"],
        what="a Warning event",
    )
    assert warning[0]["reason"] == "RuntimeResolution"
    try:
        hearth_cluster.kubectl("apply", "-f", "-", stdin=runtime_yaml(missing))
        wait_for(
            lambda: status_of(hearth_cluster, namespace, "lost").get("phase") == "Loading", what="recovery"
        )
        assert get_json(hearth_cluster, "deployment", "lost", "-n", namespace) is not None
    finally:
        hearth_cluster.kubectl("delete", "inferenceruntime", missing, check=False)


def test_reconciling_a_steady_state_makes_no_api_writes(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    operator = start_operator()
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("steady", namespace, runtime))
    wait_for(lambda: status_of(hearth_cluster, namespace, "steady").get("phase") == "Loading", what="Loading")
    before = settled_writes(operator)
    reconciles = operator.metrics().get('hearth_operator_reconcile_total{result="success"}', 0)
    for round_number in range(2):
        # A metadata-only change triggers a reconcile without changing anything the operator renders.
        hearth_cluster.kubectl(
            "annotate", "llmservice", "steady", "-n", namespace, f"poke={round_number}", "--overwrite"
        )
        wait_for(
            lambda n=round_number: (
                operator.metrics().get('hearth_operator_reconcile_total{result="success"}', 0)
                >= reconciles + n + 1
            ),
            what="another reconcile",
        )
    assert settled_writes(operator) == before, "two reconciles of an unchanged service must write nothing"


def test_a_deleted_child_is_recreated(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("heal", namespace, runtime))
    first = wait_for(
        lambda: get_json(hearth_cluster, "service", "heal-backend", "-n", namespace), what="the Service"
    )
    hearth_cluster.kubectl("delete", "service", "heal-backend", "-n", namespace)
    again = wait_for(
        lambda: (
            (s := get_json(hearth_cluster, "service", "heal-backend", "-n", namespace))
            and s["metadata"]["uid"] != first["metadata"]["uid"]
            and s
        ),
        what="the Service to be recreated",
    )
    assert again["spec"]["ports"][0]["targetPort"] == "http"


def test_killing_the_operator_mid_way_and_restarting_converges(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    manifests = "---".join(service_yaml(f"svc{i}", namespace, runtime) for i in range(12))
    hearth_cluster.kubectl("apply", "-f", "-", stdin=manifests)
    first = start_operator(name="first")
    time.sleep(0.3)
    first.stop(signal.SIGKILL)
    start_operator(name="second")
    for index in range(12):
        wait_for(
            lambda i=index: status_of(hearth_cluster, namespace, f"svc{i}").get("phase") == "Loading",
            timeout=60,
            what=f"svc{index} to converge",
        )
        assert get_json(hearth_cluster, "deployment", f"svc{index}-gateway", "-n", namespace) is not None


def test_two_leader_electing_operators_never_both_reconcile(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    flags = ("--leader-elect", f"--leader-election-namespace={namespace}")
    first = start_operator(*flags, name="a")
    wait_for(lambda: first.metrics().get("hearth_operator_leader") == 1, what="a leader")
    second = start_operator(*flags, name="b")
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("elected", namespace, runtime))
    wait_for(
        lambda: status_of(hearth_cluster, namespace, "elected").get("phase"), what="a reconcile by the leader"
    )
    time.sleep(2)
    follower = second.metrics()
    assert follower.get("hearth_operator_leader") == 0
    assert follower.get('hearth_operator_reconcile_total{result="success"}', 0) == 0
    assert follower.get('hearth_operator_reconcile_total{result="error"}', 0) == 0
    lease = get_json(hearth_cluster, "lease", "6d7012cb.hearth.dev", "-n", namespace)
    assert lease is not None
    holder = lease["spec"]["holderIdentity"]
    assert first.stop() == 0, "a clean stop releases the lease"
    wait_for(
        lambda: second.metrics().get("hearth_operator_leader") == 1,
        timeout=20,
        what="the standby to take over",
    )
    lease = get_json(hearth_cluster, "lease", "6d7012cb.hearth.dev", "-n", namespace)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] not in ("", holder)
    hearth_cluster.kubectl("annotate", "llmservice", "elected", "-n", namespace, "poke=1")
    wait_for(
        lambda: second.metrics().get('hearth_operator_reconcile_total{result="success"}', 0) > 0,
        what="the new leader to reconcile",
    )


def test_a_keda_crd_installed_while_running_starts_producing_scaled_objects(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    hearth_cluster.kubectl(
        "apply", "-f", "-", stdin=service_yaml("keda", namespace, runtime, "  scaling: {max: 3, target: 2}\n")
    )
    wait_for(
        lambda: get_json(hearth_cluster, "deployment", "keda-gateway", "-n", namespace), what="the gateway"
    )
    crd = (Path(__file__).parent / "keda-crd.yaml").read_text()
    try:
        hearth_cluster.kubectl("apply", "-f", "-", stdin=crd)
        hearth_cluster.kubectl(
            "wait", "--for=condition=Established", "crd/scaledobjects.keda.sh", "--timeout=30s"
        )
        scaled = wait_for(
            lambda: get_json(hearth_cluster, "scaledobject", "keda", "-n", namespace),
            timeout=40,
            what="a ScaledObject once KEDA appeared",
        )
        assert scaled["spec"]["maxReplicaCount"] == 3
        trigger = scaled["spec"]["triggers"][0]
        assert trigger["type"] == "metrics-api"
        assert trigger["metadata"]["url"] == f"http://keda.{namespace}.svc:8080/hearth/queue"
        assert trigger["metadata"]["aggregationType"] == "sum"
        assert trigger["metadata"]["targetValue"] == "2"
        status = wait_for(
            lambda: (
                (s := status_of(hearth_cluster, namespace, "keda"))
                and any(c["type"] == "Scaling" and c["reason"] == "KEDA" for c in s.get("conditions", []))
                and s
            ),
            what="the Scaling condition to say KEDA",
        )
        assert status["phase"] == "Loading"
        (scaling,) = [c for c in status["conditions"] if c["type"] == "Scaling"]
        assert scaling["message"] == "scaled by KEDA (metrics-api)", "auto means metrics-api under KEDA"
        env = (get_json(hearth_cluster, "deployment", "keda-gateway", "-n", namespace) or {})["spec"][
            "template"
        ]["spec"]["containers"][0]["env"]
        assert {"name": "HEARTH_SCALER_MODE", "value": "metrics-api"} in env

        def mode_events() -> set[str] | None:
            found = {
                e["message"]
                for e in events_of(hearth_cluster, namespace, "keda")
                if e["reason"] == "ScalerMode"
            }
            return found if "scaled by KEDA (metrics-api)" in found else None

        messages = wait_for(mode_events, what="a ScalerMode event naming metrics-api")
        assert "scaled by Hearth's built-in autoscaler" in messages, "the mode in force before KEDA came"
    finally:
        hearth_cluster.kubectl("delete", "-f", "-", stdin=crd, check=False)
    json.dumps(scaled)


def test_a_new_service_records_a_wake_only_once_its_backend_really_left_zero(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("fresh", namespace, runtime))
    loading = wait_for(
        lambda: (s := status_of(hearth_cluster, namespace, "fresh")).get("phase") == "Loading" and s,
        what="Loading",
    )
    assert "lastActivationTime" not in loading, "no request reached it: its first rollout is not a wake"
    # Scale it to zero and back by hand, as an autoscaler does, on the real API server.
    hearth_cluster.kubectl("scale", "deployment", "fresh", "-n", namespace, "--replicas=0")
    wait_for(
        lambda: status_of(hearth_cluster, namespace, "fresh").get("phase") == "ScaledToZero",
        what="ScaledToZero",
    )
    assert "lastActivationTime" not in status_of(hearth_cluster, namespace, "fresh")
    hearth_cluster.kubectl("scale", "deployment", "fresh", "-n", namespace, "--replicas=1")
    woken = wait_for(
        lambda: (s := status_of(hearth_cluster, namespace, "fresh")).get("phase") == "Loading" and s,
        what="Loading after the wake",
    )
    assert woken.get("lastActivationTime"), "leaving a real zero is a wake"


def test_a_degraded_service_names_its_runtime_and_does_not_claim_scaling(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    start_operator()
    manifest = service_yaml("broken", namespace, runtime).replace("hf://Qwen/Qwen3-0.6B", "gs://bucket/model")
    hearth_cluster.kubectl("apply", "-f", "-", stdin=manifest)
    status = wait_for(
        lambda: (s := status_of(hearth_cluster, namespace, "broken")).get("phase") == "Degraded" and s,
        what="Degraded",
    )
    conditions = {condition["type"]: condition for condition in status["conditions"]}
    assert conditions["Ready"]["reason"] == "ModelResolution"
    assert conditions["ModelResolved"]["status"] == "False"
    assert conditions["RuntimeResolved"]["status"] == "True"
    assert conditions["RuntimeResolved"]["message"] == f"using InferenceRuntime {runtime}"
    assert conditions["Scaling"]["status"] != "True", "nothing is scaled while reconcile fails"
    degraded = conditions["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ModelResolution")
    assert degraded["message"] == conditions["Ready"]["message"]
    assert conditions["AutoscalingReady"]["status"] == conditions["Scaling"]["status"]


SHARED_CACHE = """  cache: {strategy: SharedPVC, prewarm: true, size: 1Gi%s}
"""


def _ready_condition(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    conditions = status_of(plane, namespace, name).get("conditions") or []
    return next((dict(c) for c in conditions if c["type"] == "Ready"), {})


def test_a_shared_cache_that_cannot_be_shared_is_refused_naming_why(
    hearth_cluster: ControlPlane, start_operator: StartOperator, namespace: str, runtime: str
) -> None:
    """SharedPVC (issue 26): a named claim missing or ReadWriteOnce, or a claim its provisioner refused,
    degrades the service with reason Cache and a Warning Event, instead of replicas stuck Pending."""
    start_operator()
    named = SHARED_CACHE % ", claimName: team-models"
    hearth_cluster.kubectl("apply", "-f", "-", stdin=service_yaml("shared", namespace, runtime, named))

    def reason_says(text: str) -> dict[str, Any] | None:
        ready = _ready_condition(hearth_cluster, namespace, "shared")
        return ready if ready.get("reason") == "Cache" and text in ready.get("message", "") else None

    wait_for(lambda: reason_says(f"no PersistentVolumeClaim {namespace}/team-models"), what="missing claim")
    hearth_cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: team-models, namespace: {namespace}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
""",
    )
    # A touch of the service reconciles it again (the named claim is not one of its children).
    hearth_cluster.kubectl("annotate", "llmservice", "shared", "-n", namespace, "touch=1")
    wait_for(lambda: reason_says("asks for ReadWriteOnce, not ReadWriteMany"), what="an RWO claim refused")
    warnings = [e for e in events_of(hearth_cluster, namespace, "shared") if e["reason"] == "Cache"]
    assert warnings, "a Warning Event names it"

    # A claim the operator creates, which the StorageClass's provisioner refuses.
    hearth_cluster.kubectl(
        "apply", "-f", "-", stdin=service_yaml("refused", namespace, runtime, SHARED_CACHE % "")
    )
    claim = wait_for(
        lambda: get_json(hearth_cluster, "persistentvolumeclaim", "refused-cache", "-n", namespace),
        what="the shared claim",
    )
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    said = (
        "failed to provision volume: invalid AccessModes [ReadWriteMany]: only [ReadWriteOnce] are supported"
    )
    hearth_cluster.kubectl(
        "create",
        "-f",
        "-",
        stdin=f"""
apiVersion: v1
kind: Event
metadata: {{name: refused-cache.provisioning, namespace: {namespace}}}
involvedObject: {{kind: PersistentVolumeClaim, name: refused-cache, namespace: {namespace},
  uid: {claim["metadata"]["uid"]}, apiVersion: v1}}
reason: ProvisioningFailed
type: Warning
message: "{said}"
source: {{component: example.com/local-provisioner}}
""",
    )
    hearth_cluster.kubectl("annotate", "llmservice", "refused", "-n", namespace, "touch=1")
    wait_for(
        lambda: (
            (ready := _ready_condition(hearth_cluster, namespace, "refused")).get("reason") == "Cache"
            and said in ready.get("message", "")
        ),
        what="the provisioner's refusal",
    )
