"""The backend NetworkPolicy enforced for real (issue 29): with Hearth installed with ``--network-policies``
(chart: ``networkPolicies.enabled``) and an enforcing implementation on the cluster, a warm backend answers
its own gateway, refuses a plain pod of the same namespace and one of an unlabelled namespace, and serves
its metrics to a pod of a namespace labelled ``metrics: enabled`` (Prometheus's, as the docs say). On the
drain sidecar's port it answers a pod labelled as Hearth's operator pods are (in another namespace: the
operator's, wherever installed) and refuses a plain pod of its namespace (issue 32: the operator's word
that an evicted pod's endpoints have settled).

Each probe is a one-shot pod of the stub image (``busybox``: no ``kubectl exec``) that GETs the backend
pod's ``/metrics`` on the runtime port, straight at the pod IP, a few times: its exit code says whether it
was ever answered. A refused probe must stay unanswered through every try (the enforcer knows a new pod's
IP once the API server has it, a moment after the pod starts), an accepted one must be answered within its
tries. An API server alone accepts a NetworkPolicy and enforces nothing, so the scenario runs only when the
run is told which implementation enforces them (``--network-policies-enforced``;
``testing/netpol/netpol.sh up`` prints it) and is not promised otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from typing import Any

from hearth.e2e import fixtures
from hearth.e2e.runner import Run, ScenarioFailedError, ScenarioNotPromisedError
from hearth.kube import resources
from hearth.kube.errors import ApiError
from hearth.render import backend, names

SERVICE = "netpol"
#: One try: the request, held open while the answer comes (busybox nc ends at its stdin's EOF), and the
#: connect timeout; a dropped SYN makes the try last the timeout.
TRY_TIMEOUT_SECONDS = 3
#: An accepted probe is answered within these tries (its IP reaches the enforcer a moment after start).
ACCEPT_TRIES = 20
#: A refused probe is refused this many times in a row, the last ones well after its IP is known.
REFUSE_TRIES = 5
PROBE_LABEL = "hearth-e2e-netpol-probe"


class Expect(enum.Enum):
    ANSWERED = "answered"
    REFUSED = "refused"

    @property
    def tries(self) -> int:
        return ACCEPT_TRIES if self is Expect.ANSWERED else REFUSE_TRIES


class Target(enum.Enum):
    """What a probe GETs: the engine's /metrics on the runtime port, or the drain sidecar's /healthz."""

    METRICS = "/metrics"
    DRAIN = "/healthz"


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One probe pod: from *namespace*, with *labels*, GET the backend's *target*; *expect* is what the
    policy says."""

    name: str
    namespace: str
    expect: Expect
    why: str
    target: Target = Target.METRICS
    labels: tuple[tuple[str, str], ...] = ()


def probe_script(ip: str, port: int, tries: int, path: str = Target.METRICS.value) -> str:
    """The probe's shell (busybox ``sh``; every tool called as a busybox applet, since the image sets no
    PATH): up to *tries* GETs of *path*; exit 0 at the first HTTP 200, 1 if none came. An answer is
    a 200 status line, so a reset or an empty reply is not taken for one."""
    bb = "/bin/busybox"
    request = rf"printf 'GET {path} HTTP/1.0\r\nHost: backend\r\n\r\n'"
    return (
        f"i=0; while [ $i -lt {tries} ]; do i=$((i+1)); "
        f"if ({request}; {bb} sleep 1) | {bb} nc -w {TRY_TIMEOUT_SECONDS} {ip} {port} "
        f"| {bb} head -n 1 | {bb} grep -q ' 200 '; "
        f'then echo "answered at try $i"; exit 0; fi; {bb} sleep 1; done; '
        f'echo "no answer in {tries} tries"; exit 1'
    )


def probe_pod(probe: Probe, *, image: str, ip: str, port: int) -> dict[str, Any]:
    """The probe's pod: the stub image's busybox, meeting the restricted Pod Security Standard (the run's
    namespace may enforce it), no API token, never restarted."""
    spec = fixtures.restricted(
        {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [
                        "/bin/busybox",
                        "sh",
                        "-c",
                        probe_script(ip, port, probe.expect.tries, probe.target.value),
                    ],
                }
            ],
        }
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": probe.name,
            "namespace": probe.namespace,
            "labels": {"app": PROBE_LABEL, **dict(probe.labels)},
        },
        "spec": spec,
    }


def scraper_namespace(name: str) -> dict[str, Any]:
    """A namespace labelled as the docs tell Prometheus's to be, so the backend policy admits its pods."""
    manifest = fixtures.namespace(name)
    manifest["metadata"]["labels"] = dict(names.METRICS_NAMESPACE_LABEL)
    return manifest


def outcome(pod: dict[str, Any] | None) -> Expect | None:
    """What a finished probe pod saw (its exit code), or None while it runs."""
    phase = ((pod or {}).get("status") or {}).get("phase")
    if phase == "Succeeded":
        return Expect.ANSWERED
    if phase == "Failed":
        return Expect.REFUSED
    return None


def verdict(results: dict[Probe, Expect]) -> list[str]:
    """The probes whose outcome the policy does not allow, each saying what it saw and what it should."""
    return [
        f"{probe.why}: {seen.value}, should be {probe.expect.value}"
        for probe, seen in results.items()
        if seen is not probe.expect
    ]


async def enforced_network_policy(run: Run) -> str:
    """N1: the backend answers its gateway and a metrics namespace's pod, and refuses other pods; its drain
    sidecar answers the operator's pods and refuses others."""
    enforcer = run.options.network_policy_enforcer
    if not enforcer:
        raise ScenarioNotPromisedError(
            "not promised: no NetworkPolicy enforcer on this cluster is named (--network-policies-enforced; "
            "testing/netpol/netpol.sh up starts one on the test bed); an API server alone enforces nothing"
        )
    await run.only_in_builtin("NetworkPolicy enforcement")
    metrics_namespace = f"{run.namespace}-metrics"
    other_namespace = f"{run.namespace}-other"
    try:
        service = fixtures.service(SERVICE, run.namespace, run.runtime)
        service["spec"]["scaling"]["min"] = 1  # warm: the backend is there to be probed
        await run.client.apply(service)
        policy = await run.wait(
            f"NetworkPolicy {names.backend_network_policy(SERVICE)}", lambda: _policy(run), within=60
        )
        # (a) its gateway reaches it.
        url = await run.gateway_url(SERVICE)
        await run.wait(f"{SERVICE} warm", lambda: _warm(run))
        events, first_token = await run.stream(url, 4, model=SERVICE)
        if first_token is None or events[-1] != b"data: [DONE]":
            raise ScenarioFailedError(f"the request through the gateway was not answered: {events[-2:]}")
        ip, port, drain_port = await _backend_address(run)

        await run.client.apply(scraper_namespace(metrics_namespace))
        await run.client.apply(fixtures.namespace(other_namespace))
        probes = [
            Probe("netpol-same-ns", run.namespace, Expect.REFUSED, "a plain pod of the backend's namespace"),
            Probe(
                "netpol-metrics-ns",
                metrics_namespace,
                Expect.ANSWERED,
                f"a pod of a namespace labelled {_label_text()}",
            ),
            Probe("netpol-other-ns", other_namespace, Expect.REFUSED, "a pod of an unlabelled namespace"),
            Probe(
                "netpol-operator-drain",
                other_namespace,
                Expect.ANSWERED,
                "a pod labelled as Hearth's operator, at the drain sidecar's port",
                Target.DRAIN,
                tuple(names.OPERATOR_POD_SELECTOR.items()),
            ),
            Probe(
                "netpol-same-ns-drain",
                run.namespace,
                Expect.REFUSED,
                "a plain pod of the backend's namespace, at the drain sidecar's port",
                Target.DRAIN,
            ),
        ]
        for probe in probes:
            at = drain_port if probe.target is Target.DRAIN else port
            await run.client.apply(probe_pod(probe, image=run.options.stub_image, ip=ip, port=at))
        seen = await run.wait(
            "the probe pods to finish", lambda: _outcomes(run, probes), within=(ACCEPT_TRIES + 5) * 5
        )
        wrong = verdict(seen)
        if wrong:
            raise ScenarioFailedError(
                f"{enforcer} with NetworkPolicy {policy}: " + "; ".join(wrong) + f" (backend {ip}:{port})"
            )
        return (
            f"{enforcer} enforcing {policy}: the gateway's request answered; /metrics at the backend pod "
            f"{ip}:{port} answered a pod of a namespace labelled {_label_text()}, refused "
            f"{REFUSE_TRIES} times of {REFUSE_TRIES} a plain pod of the namespace and one of an unlabelled "
            f"namespace; the drain sidecar's /healthz at {ip}:{drain_port} answered a pod labelled as the "
            f"operator and refused a plain pod of the namespace"
        )
    finally:
        for namespace in (metrics_namespace, other_namespace):
            with contextlib.suppress(ApiError):
                await run.client.delete(resources.NAMESPACE, namespace)
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMSERVICE, SERVICE, run.namespace)


def _label_text() -> str:
    return ",".join(f"{key}={value}" for key, value in names.METRICS_NAMESPACE_LABEL.items())


async def _policy(run: Run) -> str | None:
    name = names.backend_network_policy(SERVICE)
    if await run.client.get(resources.NETWORK_POLICY, name, run.namespace) is None:
        return None
    return name


async def _warm(run: Run) -> bool:
    return (await run.replicas(names.backend(SERVICE)))[1] >= 1


async def _backend_address(run: Run) -> tuple[str, int, int]:
    """The ready backend pod's IP, its serving container's port and its drain sidecar's."""
    pods, _ = await run.client.list(
        resources.POD,
        namespace=run.namespace,
        label_selector=",".join(f"{key}={value}" for key, value in names.backend_selector(SERVICE).items()),
    )
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or pod["metadata"].get("deletionTimestamp"):
            continue
        drain_port = backend.drain_port(pod["spec"])
        for container in pod["spec"]["containers"]:
            if container["name"] == backend.CONTAINER_NAME and container.get("ports") and drain_port:
                return str(ip), int(container["ports"][0]["containerPort"]), drain_port
    raise ScenarioFailedError(f"no running backend pod of {SERVICE} with a port and a drain sidecar")


async def _outcomes(run: Run, probes: list[Probe]) -> dict[Probe, Expect] | None:
    seen: dict[Probe, Expect] = {}
    for probe in probes:
        result = outcome(await run.client.get(resources.POD, probe.name, probe.namespace))
        if result is None:
            return None
        seen[probe] = result
    return seen


SCENARIOS = [
    (
        "N1 the backend NetworkPolicy, enforced: its gateway and metrics scrapers in, other pods out",
        enforced_network_policy,
    ),
]
