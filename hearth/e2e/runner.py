"""The scenarios of `hearth e2e`, run in order against the current kube-context; each records pass/fail,
its timing and a detail line, and a failure never stops the cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import aiohttp

from hearth.api import gatewayenv, scalermodes
from hearth.e2e import fixtures, promtext
from hearth.kube import resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.render import gateway, names

Report = Callable[[str], None]
#: The LLMService of the HostPath cache scenario, and the pod that prepares its directory on the node.
HOST_CACHE_SERVICE = "host-cache"
HOST_CACHE_PREPARE = "host-cache-prepare"
#: How long a new Service's ClusterIP is given to answer once ClusterIPs are known to be reachable.
CLUSTER_IP_SECONDS = 30.0
#: How long `kubectl port-forward` is given to say it listens.
PORT_FORWARD_SECONDS = 30.0


@dataclasses.dataclass
class Result:
    name: str
    passed: bool
    seconds: float
    detail: str
    skipped: bool = False

    @property
    def verdict(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"


class ScenarioFailedError(AssertionError):
    """A scenario's expectation did not hold."""


#: What fails a scenario (and only it): an unreachable API server too, since a scenario that breaks the
#: control plane on purpose (hearth.e2e.faults) must fail, not end the run.
FAILURES = (ScenarioFailedError, ApiError, ApiUnreachableError, aiohttp.ClientError, TimeoutError)


class ScenarioSkippedError(Exception):
    """The cluster lacks what a scenario needs (e.g. a second gateway replica); not a failure."""


class ScenarioNotPromisedError(ScenarioSkippedError):
    """The scaler mode in force does not promise what the scenario checks; skipped even under --no-skip."""


@dataclasses.dataclass(frozen=True)
class GatewayPod:
    name: str
    url: str


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryServers:
    """The test bed's model-delivery servers (:mod:`hearth.e2e.delivery`), at an address pods reach, as
    ``testing/delivery/serve.sh`` writes them (JSON with these keys)."""

    #: ``host:port`` of the registry (plain HTTP, htpasswd credentials).
    registry: str
    registry_user: str
    registry_password: str
    #: The ORAS CLI that pushes to it.
    oras: str
    #: ``http://host:port`` of the S3 store (SigV4 access keys).
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str

    def __repr__(self) -> str:  # never the passwords in a report
        return f"DeliveryServers(registry={self.registry!r}, s3_endpoint={self.s3_endpoint!r})"

    @classmethod
    def load(cls, path: str) -> DeliveryServers:
        """Read the JSON file ``testing/delivery/serve.sh`` writes; ValueError names what is wrong."""
        with open(path, encoding="utf-8") as source:
            data = json.load(source)
        fields = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in fields if not isinstance(data.get(name), str) or not data[name]]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}")
        return cls(**{name: data[name] for name in fields})


@dataclasses.dataclass
class Options:
    stub_image: str
    access: str = "auto"  # service | port-forward | auto
    timeout: float = 180.0
    keep: bool = False
    no_skip: bool = False  # a scenario that would be skipped fails instead (CI: the test bed has it all)
    #: Label the run's namespace to enforce the restricted Pod Security Standard; the HostPath cache
    #: scenario, whose pods need a host path, relaxes it to privileged while it runs.
    pod_security_restricted: bool = False
    #: The real engine's scenarios (hearth.e2e.engines): llama-server's image, and the GGUF it serves.
    engine_image: str | None = None
    gguf: str | None = None
    #: The delivery scenarios' registry and object store (None: they skip).
    delivery: DeliveryServers | None = None
    #: The NetworkPolicy implementation enforcing on the cluster, by name (None: the NetworkPolicy
    #: scenario is not promised, since an API server alone accepts policies and enforces none).
    network_policy_enforcer: str | None = None
    #: The test bed's fault hook (hearth.e2e.faults): a command that takes ``restart kube-apiserver``,
    #: ``restart kubelet`` or ``pause etcd SECONDS`` and returns once the cluster is healthy (empty: the
    #: scenarios that need it are not promised).
    fault_hook: tuple[str, ...] = ()
    #: The cluster the run was given, for the kubectl it starts (port-forwards) to reach the same one.
    kubeconfig: str | None = None
    context: str | None = None

    def kubectl_flags(self) -> list[str]:
        """kubectl's flags naming the run's cluster (none: kubectl's own default, as the run's client)."""
        flags = ["--kubeconfig", self.kubeconfig] if self.kubeconfig else []
        return flags + (["--context", self.context] if self.context else [])


class Run:
    def __init__(self, client: KubeClient, options: Options, report: Report) -> None:
        self.client = client
        self.options = options
        self.report = report
        suffix = uuid.uuid4().hex[:6]
        self.namespace = f"hearth-e2e-{suffix}"
        self.runtime = f"e2e-stub-{suffix}"
        self.unschedulable = f"e2e-never-{suffix}"
        #: The API key of the "rejecting" LLMService (random per run; never printed).
        self.api_key = f"sk-e2e-{uuid.uuid4().hex}"
        self.results: list[Result] = []
        #: The HostPath cache directory of the HOST_CACHE_SERVICE LLMService, under the node's cache root.
        self.host_cache = f"{self.namespace}-{HOST_CACHE_SERVICE}"
        self._forwards: list[asyncio.subprocess.Process] = []
        #: Whether a Service's ClusterIP has answered from where the runner runs (see gateway_url).
        self._cluster_ips_answer = False
        self._pod_urls: dict[str, str] = {}
        #: When the last scenario that drove load stopped it (monotonic), for scale-down timing.
        self.load_ended_at: float | None = None
        #: The scaler mode the operator rendered into the gateways, once a scenario has read it.
        self.mode: scalermodes.ScalerMode | None = None
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))

    # ---- helpers ------------------------------------------------------------------------------------
    async def wait(self, what: str, check: Callable[[], Awaitable[Any]], within: float | None = None) -> Any:
        deadline = time.monotonic() + (within or self.options.timeout)
        while time.monotonic() < deadline:
            value = await check()
            if value:
                return value
            await asyncio.sleep(1)
        raise ScenarioFailedError(f"timed out waiting for {what}")

    async def replicas(self, name: str) -> tuple[int, int]:
        """(desired, ready) replicas of a Deployment; (-1, 0) while it does not exist yet. Ready counts only
        once the status describes the current spec, and never above desired: right after a scale to 0 the
        status may still report the pods ready before it (a scenario that then waits for 2 ready replicas
        would see them at once)."""
        deployment = await self.client.get(resources.DEPLOYMENT, name, self.namespace)
        if deployment is None:
            return -1, 0
        desired = int(deployment.get("spec", {}).get("replicas") or 0)
        status = deployment.get("status", {})
        generation = int(deployment.get("metadata", {}).get("generation") or 0)
        if int(status.get("observedGeneration") or 0) < generation:
            return desired, 0
        return desired, min(desired, int(status.get("readyReplicas") or 0))

    async def gateway_url(self, name: str) -> str:
        """How a user reaches the gateway: its Service's ClusterIP, else `kubectl port-forward`."""
        await self.wait(f"gateway {name} ready", lambda: self._gateway_ready(name))
        service = await self.client.get(resources.SERVICE, name, self.namespace)
        ip = (service or {}).get("spec", {}).get("clusterIP")
        if self.options.access in ("auto", "service") and ip:
            # kube-proxy programs a new Service a moment after it exists (longer on a busy node): once one
            # ClusterIP has answered here, they are reachable, so a new one is given time rather than
            # replaced by a port-forward at its first silence.
            patience = CLUSTER_IP_SECONDS if self._cluster_ips_answer else 0.0
            deadline = time.monotonic() + patience
            while True:
                if await self._healthy(f"http://{ip}"):
                    self._cluster_ips_answer = True
                    return f"http://{ip}"
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(1.0)
            if self.options.access == "service":
                raise ScenarioFailedError(f"Service {name} ({ip}) is not reachable from here")
        return await self._port_forward(f"service/{name}")

    async def _gateway_ready(self, name: str) -> bool:
        return (await self.replicas(names.gateway(name)))[1] > 0

    async def gateway_pods(self, name: str) -> list[GatewayPod]:
        """The ready gateway pods of an LLMService, each reachable on its own (pod IP, else port-forward)."""
        pods, _ = await self.client.list(
            resources.POD, namespace=self.namespace, label_selector=f"{names.LABEL_GATEWAY}={name}"
        )
        found = []
        for pod in sorted(pods, key=lambda pod: str(pod["metadata"]["name"])):
            status = pod.get("status", {})
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            if ready and status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
                found.append(GatewayPod(pod["metadata"]["name"], await self._pod_url(pod)))
        return found

    async def _pod_url(self, pod: dict[str, Any]) -> str:
        name = pod["metadata"]["name"]
        if name not in self._pod_urls:
            url = f"http://{pod['status']['podIP']}:{gateway.HTTP_PORT}"
            if self.options.access == "port-forward" or not await self._healthy(url):
                if self.options.access == "service":
                    raise ScenarioFailedError(f"gateway pod {name} ({url}) is not reachable from here")
                url = await self._port_forward(f"pod/{name}", gateway.HTTP_PORT)
            self._pod_urls[name] = url
        return self._pod_urls[name]

    async def _healthy(self, url: str) -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.http.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=3)) as response:
                return response.status == 200
        return False

    async def metrics(self, url: str) -> promtext.Samples:
        async with self.http.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise ScenarioFailedError(f"{url}/metrics answered {response.status}")
            return promtext.parse(await response.text())

    async def gateway_metrics(self, name: str) -> dict[str, promtext.Samples]:
        """Every ready gateway pod's metrics, by pod name."""
        return {pod.name: await self.metrics(pod.url) for pod in await self.gateway_pods(name)}

    async def scaler_mode(self, name: str) -> scalermodes.ScalerMode:
        """The scaler mode the operator rendered into this LLMService's gateway (waiting for the gateway
        Deployment, so a scenario may ask right after applying its LLMService)."""
        gateway_name = names.gateway(name)

        async def rendered() -> str | None:
            deployment = await self.client.get(resources.DEPLOYMENT, gateway_name, self.namespace)
            for container in (deployment or {}).get("spec", {}).get("template", {}).get("spec", {}).get(
                "containers"
            ) or []:
                for variable in container.get("env") or []:
                    if variable.get("name") == gatewayenv.SCALER_MODE.env:
                        return str(variable.get("value"))
            return None

        text = await self.wait(f"{gatewayenv.SCALER_MODE.env} of gateway {gateway_name}", rendered)
        try:
            self.mode = scalermodes.parse_resolved(text)
        except ValueError as error:
            raise ScenarioFailedError(f"gateway {gateway_name}: {error}") from None
        return self.mode

    async def traits(self, name: str) -> scalermodes.Traits:
        """What the scaler mode of this LLMService's gateway does (the registry's traits of it)."""
        return scalermodes.traits(await self.scaler_mode(name))

    def pools_promised(self) -> bool:
        """Whether the scaler mode a scenario has read lets LLMServices join an AcceleratorPool."""
        return self.mode is not None and scalermodes.traits(self.mode).pools

    async def only_in_builtin(self, what: str) -> None:
        """End the scenario in the KEDA modes: *what* is proven in builtin mode, and who scales the backend
        does not change it (CI runs it once, to keep its time)."""
        if (await self.traits("cold")).mode is not scalermodes.ScalerMode.BUILTIN:
            self.not_promised(f"{what} is proven in builtin mode; who scales the backend does not change it")

    def skip(self, reason: str) -> NoReturn:
        """End a scenario the cluster cannot run: skipped, or failed under --no-skip."""
        if self.options.no_skip:
            raise ScenarioFailedError(f"cannot run (and --no-skip is set): {reason}")
        raise ScenarioSkippedError(reason)

    def not_promised(self, reason: str) -> NoReturn:
        """End a scenario the scaler mode in force does not promise (README, "Scaling modes"): skipped,
        also under --no-skip, since no install of that mode could run it."""
        raise ScenarioNotPromisedError(f"not promised in {self.mode or 'this'} mode: {reason}")

    async def service_url(self, name: str, namespace: str, port: int, scheme: str = "http") -> str:
        """Any Service (e.g. the operator's metrics) by ClusterIP, else through kubectl port-forward."""
        service = await self.client.get(resources.SERVICE, name, namespace)
        ip = (service or {}).get("spec", {}).get("clusterIP")
        if self.options.access in ("auto", "service") and ip:
            with contextlib.suppress(OSError, TimeoutError):
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 3)
                writer.close()
                return f"{scheme}://{ip}:{port}"
            if self.options.access == "service":
                raise ScenarioFailedError(f"Service {namespace}/{name} ({ip}) is not reachable from here")
        url = await self._port_forward(f"service/{name}", port, namespace=namespace)
        return url.replace("http://", f"{scheme}://", 1)

    async def _port_forward(self, target: str, port: int = 80, *, namespace: str | None = None) -> str:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ScenarioFailedError(
                f"{target} is not reachable and kubectl (for port-forward) is not on PATH"
            )
        process = await asyncio.create_subprocess_exec(
            kubectl,
            *self.options.kubectl_flags(),
            "port-forward",
            "-n",
            namespace or self.namespace,
            target,
            f":{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._forwards.append(process)
        assert process.stdout is not None
        assert process.stderr is not None
        # kubectl prints "Forwarding from 127.0.0.1:PORT -> ..." once it listens (and an [::1] line after).
        deadline = time.monotonic() + PORT_FORWARD_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = (await asyncio.wait_for(process.stdout.readline(), left)).decode()
            except TimeoutError:
                break
            if not line:  # kubectl ended without forwarding: what it said is the reason
                await process.wait()
                said = (await process.stderr.read()).decode(errors="replace").strip()
                raise ScenarioFailedError(
                    f"kubectl port-forward {target} exited {process.returncode} without forwarding: "
                    f"{said or 'it printed nothing'}"
                )
            if "127.0.0.1:" in line:
                local_port = line.split("127.0.0.1:", 1)[1].split()[0]
                return f"http://127.0.0.1:{local_port}"
        raise ScenarioFailedError(
            f"kubectl port-forward {target} did not say it was forwarding within {PORT_FORWARD_SECONDS:.0f} s"
        )

    async def stream(
        self,
        url: str,
        tokens: int,
        *,
        model: str = "e2e",
        key: str | None = None,
        events: list[bytes] | None = None,
    ) -> tuple[list[bytes], float | None]:
        """Send a streaming chat completion (for *model*, with API *key* if given); return its SSE events
        and when the first token arrived. Events are appended to *events* (if given) as they arrive, so a
        caller still knows what a stream said before it was cut."""
        started = time.monotonic()
        first_token: float | None = None
        events = [] if events is None else events
        # The stub answers ?tokens= tokens; a real engine stops at max_tokens (without it llama-server would
        # generate until its context is full, and fail streams that share it).
        body = {
            "model": model,
            "stream": True,
            "max_tokens": tokens,
            "messages": [{"role": "user", "content": "hi"}],
        }
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        chat = f"{url}/v1/chat/completions?tokens={tokens}"
        async with self.http.post(chat, json=body, headers=headers) as response:
            if response.status != 200:
                raise ScenarioFailedError(f"status {response.status}: {await response.text()}")
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    events.append(event)
                    if first_token is None and event.startswith(b"data: {"):
                        first_token = time.monotonic() - started
        return events, first_token

    # ---- running ------------------------------------------------------------------------------------
    async def scenario(self, name: str, body: Callable[[], Awaitable[str]]) -> None:
        started = time.monotonic()
        skipped = False
        try:
            detail = await body()
            passed = True
        except ScenarioSkippedError as reason:
            detail, passed, skipped = f"skipped: {reason}", True, True
        except FAILURES as error:
            detail, passed = str(error) or type(error).__name__, False
        result = Result(name, passed, time.monotonic() - started, detail, skipped)
        self.results.append(result)
        self.report(f"{result.verdict} {name} ({result.seconds:.1f}s): {detail}")

    async def setup(self) -> None:
        restricted = self.options.pod_security_restricted
        await self.client.apply(fixtures.namespace(self.namespace, enforce_restricted=restricted))
        await self.client.apply(fixtures.runtime(self.runtime, image=self.options.stub_image))
        await self.client.apply(
            fixtures.runtime(
                self.unschedulable, image=self.options.stub_image, resource="hearth.dev/never-available"
            )
        )
        await self.client.apply(fixtures.service("cold", self.namespace, self.runtime))
        await self.client.apply(fixtures.api_keys("rejecting-keys", self.namespace, self.api_key))
        await self.client.apply(
            fixtures.service(
                "rejecting", self.namespace, self.unschedulable, mode="reject", auth_secret="rejecting-keys"
            )
        )
        # The cache scenarios' hub, and their HostPath directory, get ready while the others run.
        gguf = None
        if self.options.gguf:
            gguf = fixtures.gguf_config_map(self.namespace, self.options.gguf)
            await self.client.apply(gguf)
        for manifest in fixtures.hub(self.namespace, image=self.options.stub_image, gguf=gguf):
            await self.client.apply(manifest)
        if not restricted:  # a root pod with a host path: what restricted refuses (the HostPath scenario)
            await self.prepare_host_cache()
        enforced = " (enforcing the restricted Pod Security Standard)" if restricted else ""
        self.report(
            f"created namespace {self.namespace}{enforced}, runtimes, LLMServices and the stand-in hub"
        )

    async def prepare_host_cache(self) -> None:
        """Start the root pod that makes the HostPath cache directory writable (fixtures.host_cache_pod)."""
        await self.client.apply(
            fixtures.host_cache_pod(
                HOST_CACHE_PREPARE,
                self.namespace,
                image=self.options.stub_image,
                script=f"mkdir -p /host/{self.host_cache} && chmod 0777 /host/{self.host_cache}",
            )
        )

    async def cleanup(self) -> None:
        for process in self._forwards:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            await process.wait()
        await self.http.close()
        if self.options.keep:
            return
        for name in (self.runtime, self.unschedulable):
            with contextlib.suppress(ApiError):
                await self.client.delete(resources.INFERENCE_RUNTIME, name)
        with contextlib.suppress(ApiError):
            await self.client.delete(resources.NAMESPACE, self.namespace)


@contextlib.asynccontextmanager
async def run(client: KubeClient, options: Options, report: Report) -> AsyncIterator[Run]:
    session = Run(client, options, report)
    try:
        await session.setup()
        yield session
    finally:
        await session.cleanup()


def verdict_table(results: list[Result], *, mode: str | None = None) -> str:
    width = max(len(result.name) for result in results)
    lines = [f"scaler mode: {mode}"] if mode else []
    lines.append(f"{'scenario':<{width}}  result  seconds  detail")
    for result in results:
        lines.append(f"{result.name:<{width}}  {result.verdict:<6}  {result.seconds:7.1f}  {result.detail}")
    passed = sum(result.passed and not result.skipped for result in results)
    skipped = sum(result.skipped for result in results)
    # Worded unlike a test runner's summary line, which CI reads for the unit-test count.
    verdict = f"e2e verdict: {passed} of {len(results)} scenarios passed"
    lines.append(verdict + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)


__all__ = ["Options", "Result", "Run", "json", "run", "verdict_table"]
