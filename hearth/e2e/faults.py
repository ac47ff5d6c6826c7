"""Faults in the middle of a wake (issue 29): cold streaming requests are held on every gateway pod, and
while the backend wakes one thing breaks: X1 the operator leader is killed after the scale request, X2 the
kube-apiserver restarts, X3 the kubelet restarts while the backend pod starts, X4 etcd is paused 10 s,
X5 the backend pod is deleted the moment it is ready (between ready and the first byte), X6 a gateway
replica is killed. Each scenario prints what every held client saw (answered, or the error it got), when
the fault struck, the wake's time, and the end state; it passes when every held request on a surviving
gateway is answered and the model returns to zero replicas, ScaledToZero.

Builtin mode only (what is proven is the wake the gateways drive; CI time is tight). The control-plane
faults (X2-X4) need the test bed's fault hook, a command given as ``--fault-hook`` or
``HEARTH_E2E_FAULT_HOOK`` (scripts/e2e.sh sets it to ``testing/cluster/cluster.sh fault``) that takes
``restart kube-apiserver``, ``restart kubelet`` or ``pause etcd SECONDS`` and returns once the cluster is
healthy again; without it they are not promised. Hearth itself never learns how a cluster runs its
components."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from hearth.e2e import fixtures
from hearth.e2e.runner import GatewayPod, Options, Run, ScenarioFailedError, ScenarioNotPromisedError
from hearth.kube import resources
from hearth.kube.errors import ApiError, ApiUnreachableError
from hearth.render import names

FAULT_HOOK_ENV = "HEARTH_E2E_FAULT_HOOK"
#: The one LLMService every fault scenario wakes (made by the first one that runs).
MODEL = "faults"
#: A short window, so each scenario's end state (back to 0) comes soon after its answers.
STABILIZATION = "5s"
#: Held streams per gateway pod.
HELD_PER_GATEWAY = 2
#: Tokens each held stream asks for (50 ms apart in the stub runtime).
TOKENS = 8
#: The longest a held client waits for its answer (the wake is ~6 s; the faults add at most ~30 s).
CLIENT_SECONDS = 120.0
#: How long etcd stays paused in X4.
ETCD_PAUSE_SECONDS = 10
#: How often a trigger looks at the backend (the API server is local).
POLL_SECONDS = 0.05
#: The end state's wait: a window, the drain, and a new leader's first full window (X1).
END_STATE_SECONDS = 90.0
ANSWERED = "answered"
WHAT = "a fault in the middle of a wake"


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """What one held client saw."""

    gateway: str
    #: ANSWERED, or the error it got ("error <code>", "status <n>", "cut: <why>").
    result: str
    #: Whether it was told at least one progress comment before the end (it was held).
    held: bool
    #: Seconds from sending to its first token (None without one).
    first_token_s: float | None


def classify(events: Sequence[bytes]) -> str:
    """How a streamed answer ended, from its SSE events: ANSWERED with ``[DONE]``, the error event's code,
    or cut (the stream ended with neither)."""
    if events and events[-1] == b"data: [DONE]":
        return ANSWERED
    if events and events[-1].startswith(b"event: error\ndata: "):
        try:
            document = json.loads(events[-1].split(b"data: ", 1)[1])
            code = (document.get("error") or {}).get("code") or "unknown"
        except (ValueError, AttributeError):
            code = "unreadable"
        return f"error {code}"
    return f"cut after {len(events)} events"


def tally(seen: Sequence[Seen]) -> str:
    """E.g. ``3 of 4 answered (error shutting_down: 1)``."""
    answered = sum(one.result == ANSWERED for one in seen)
    others = collections.Counter(one.result for one in seen if one.result != ANSWERED)
    text = f"{answered} of {len(seen)} answered"
    if others:
        text += " (" + ", ".join(f"{result}: {count}" for result, count in sorted(others.items())) + ")"
    return text


def hook_fault(options: Options, *args: str) -> Callable[[], Awaitable[str]]:
    """The fault that runs the fault hook with *args*; the scenario is not promised without a hook."""
    if not options.fault_hook:
        raise ScenarioNotPromisedError(
            f"needs the test bed's fault hook (--fault-hook or {FAULT_HOOK_ENV}, e.g. "
            "'testing/cluster/cluster.sh fault'), which Hearth cannot know"
        )
    return functools.partial(_hook, [*options.fault_hook, *args], what=" ".join(args))


# ---- the scenarios ------------------------------------------------------------------------------------
async def leader_killed_after_scale(run: Run) -> str:
    """X1: the operator leader is killed (grace 0) once the backend's scale is set to 1."""

    async def fault() -> str:
        lease = await _leader_lease(run)
        if lease is None:
            run.skip(f"no Lease {names.LEADER_ELECTION_ID}: the operator does not run with --leader-elect")
        namespace = lease["metadata"]["namespace"]
        identity = str(lease.get("spec", {}).get("holderIdentity") or "")
        pod = identity.split("_", maxsplit=1)[0]
        killed = time.monotonic()
        await run.client.delete(resources.POD, pod, namespace, grace_period=0)

        async def new_holder() -> str | None:
            lease = await run.client.get(resources.LEASE, names.LEADER_ELECTION_ID, namespace)
            holder = str((lease or {}).get("spec", {}).get("holderIdentity") or "")
            return holder if holder and holder != identity else None

        holder = await run.wait("a new operator leader", new_holder, within=60)
        return (
            f"killed leader {pod}; {holder.split('_')[0]} took the Lease "
            f"{time.monotonic() - killed:.1f}s later"
        )

    return await _fault_during_wake(run, trigger=functools.partial(_scale_requested, run), fault=fault)


async def apiserver_restarted_while_held(run: Run) -> str:
    """X2: the kube-apiserver is killed and started again once the scale is set, while requests are held
    and before the backend is ready."""
    await run.only_in_builtin(WHAT)
    fault = hook_fault(run.options, "restart", "kube-apiserver")
    return await _fault_during_wake(run, trigger=functools.partial(_scale_requested, run), fault=fault)


async def kubelet_restarted_while_starting(run: Run) -> str:
    """X3: the kubelet restarts once the backend pod is bound to the node, before it is ready."""
    await run.only_in_builtin(WHAT)
    fault = hook_fault(run.options, "restart", "kubelet")
    return await _fault_during_wake(run, trigger=functools.partial(_pod_bound, run), fault=fault)


async def etcd_paused_during_wake(run: Run) -> str:
    """X4: etcd is stopped (SIGSTOP) for ETCD_PAUSE_SECONDS once the scale is set, then continued."""
    await run.only_in_builtin(WHAT)
    fault = hook_fault(run.options, "pause", "etcd", str(ETCD_PAUSE_SECONDS))
    return await _fault_during_wake(run, trigger=functools.partial(_scale_requested, run), fault=fault)


async def backend_deleted_at_ready(run: Run) -> str:
    """X5: the backend pod is deleted (as kubectl delete does, with its grace) the moment it turns ready,
    between its readiness and the held requests' first byte."""
    victim: dict[str, str] = {}

    async def ready_pod() -> bool:
        for pod in await _backend_pods(run):
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                victim["name"] = pod["metadata"]["name"]
                return True
        return False

    async def fault() -> str:
        await run.client.delete(resources.POD, victim["name"], run.namespace)
        return f"deleted backend pod {victim['name']} as it turned ready"

    return await _fault_during_wake(run, trigger=ready_pod, fault=fault)


async def gateway_killed_while_holding(run: Run) -> str:
    """X6: one of two gateway pods is killed (grace 0) while both hold; the other's clients must all be
    answered. What the killed one's clients saw is printed (the kubelet stops it within its 2 s minimum,
    inside the gateway's drain: they are told it is shutting down, or cut)."""
    killed: list[str] = []

    async def fault() -> str:
        victim = (await run.gateway_pods(MODEL))[0].name
        killed.append(victim)
        await run.client.delete(resources.POD, victim, run.namespace, grace_period=0)
        return f"killed gateway pod {victim}"

    detail = await _fault_during_wake(
        run, trigger=functools.partial(_scale_requested, run), fault=fault, victims=killed, gateways_needed=2
    )
    await run.wait("2 ready gateway pods again", lambda: _gateways_replaced(run, killed), within=120)
    return detail


# ---- the shared course of a fault scenario ---------------------------------------------------------------
async def _fault_during_wake(
    run: Run,
    *,
    trigger: Callable[[], Awaitable[bool]],
    fault: Callable[[], Awaitable[str]],
    victims: Sequence[str] = (),
    gateways_needed: int = 1,
) -> str:
    """Hold HELD_PER_GATEWAY cold streams on every gateway pod of MODEL, strike *fault* once *trigger*
    holds (while the backend is not ready yet, unless the trigger is readiness itself), then check that
    every client of a gateway pod not in *victims* (filled by the fault) was answered and that the model
    ends at zero replicas, ScaledToZero."""
    await run.only_in_builtin(WHAT)
    pods = await _cold_model(run)
    if len(pods) < gateways_needed:
        run.skip(
            f"needs {gateways_needed} gateway replicas, found {len(pods)} "
            "(hearth install --gateway-replicas 2)"
        )
    started = time.monotonic()
    clients = [asyncio.create_task(_held_client(run, pod)) for pod in pods for _ in range(HELD_PER_GATEWAY)]
    try:
        await _poll("the moment to strike", trigger, within=60)
        struck = time.monotonic() - started
        before = await run.replicas(MODEL)
        what = await fault()
        healed = time.monotonic() - started
        done, _ = await asyncio.wait(clients, timeout=CLIENT_SECONDS)
        if len(done) < len(clients):
            missing = len(clients) - len(done)
            raise ScenarioFailedError(f"{missing} held clients had no end within {CLIENT_SECONDS:.0f}s")
        seen = [client.result() for client in clients]
    finally:
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    survivors = [one for one in seen if one.gateway not in victims]
    lost = [one for one in survivors if one.result != ANSWERED]
    tokens = [one.first_token_s for one in seen if one.first_token_s is not None]
    wake = f"first token {min(tokens):.1f}s after sending" if tokens else "no token at all"
    fault_line = (
        f"{what} at +{struck:.1f}s (backend {before[0]} wanted, {before[1]} ready), healed +{healed:.1f}s"
    )
    if lost:
        raise ScenarioFailedError(
            f"{fault_line}; on surviving gateways {tally(survivors)}; {wake}; "
            f"{sum(one.held for one in seen)} of {len(seen)} were held"
        )
    victims_line = ""
    if victims:
        theirs = [one for one in seen if one.gateway in victims]
        victims_line = f"; the killed gateway's clients: {tally(theirs)}"
    ended = time.monotonic()
    phase = await run.wait(
        "the model back at 0 replicas, ScaledToZero", lambda: _scaled_to_zero(run), within=END_STATE_SECONDS
    )
    return (
        f"{fault_line}; surviving gateways {tally(survivors)}{victims_line}; "
        f"{sum(one.held for one in seen)} of {len(seen)} held; wake: {wake}; end: 0 replicas, {phase} "
        f"{time.monotonic() - ended:.1f}s after the answers"
    )


async def _cold_model(run: Run) -> list[GatewayPod]:
    """MODEL's gateway pods once MODEL is cold: at 0 replicas with no backend pod left (so no gateway can
    still route to a leaving one), applying MODEL first if no scenario did."""
    if not await _model_exists(run):
        manifest = fixtures.service(MODEL, run.namespace, run.runtime)
        manifest["spec"]["scaling"]["scaleDownStabilization"] = STABILIZATION
        await run.client.apply(manifest)
        await run.gateway_url(MODEL)  # waits for a ready gateway
    await run.wait(f"{MODEL} at 0 replicas", lambda: _at_zero(run), within=END_STATE_SECONDS)
    await run.wait(f"no {MODEL} backend pod left", lambda: _no_backend_pod(run), within=120)
    return await run.gateway_pods(MODEL)


async def _held_client(run: Run, pod: GatewayPod) -> Seen:
    events: list[bytes] = []
    try:
        _, first_token = await run.stream(pod.url, TOKENS, model=MODEL, events=events)
        result = classify(events)
    except ScenarioFailedError as refused:  # a status other than 200
        first_token, result = None, str(refused)[:60]
    except (aiohttp.ClientError, TimeoutError) as error:
        first_token, result = None, f"cut: {type(error).__name__}"
    held = any(event.startswith(b": hearth ") for event in events)
    return Seen(pod.name, result, held=held, first_token_s=first_token)


async def _hook(command: list[str], *, what: str) -> str:
    """Run the fault hook; its last line of output says what it did. A hook that fails fails the scenario
    (the cluster may not be whole: its output says why)."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    lines = output.decode(errors="replace").strip().splitlines()
    if process.returncode != 0:
        raise ScenarioFailedError(f"the fault hook {command} exited {process.returncode}: {lines[-3:]}")
    return f"{what} ({time.monotonic() - started:.1f}s until healthy)"


async def _poll(what: str, check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise ScenarioFailedError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


async def _scale_requested(run: Run) -> bool:
    return (await run.replicas(MODEL))[0] >= 1


async def _pod_bound(run: Run) -> bool:
    """A backend pod is bound to the node (the kubelet is starting it) and not ready yet."""
    return any(pod.get("spec", {}).get("nodeName") for pod in await _backend_pods(run))


async def _backend_pods(run: Run) -> list[dict[str, Any]]:
    pods, _ = await run.client.list(
        resources.POD,
        namespace=run.namespace,
        label_selector=f"{names.LABEL_LLMSERVICE}={MODEL},!{names.LABEL_GATEWAY}",
    )
    return pods


async def _no_backend_pod(run: Run) -> bool:
    return not await _backend_pods(run)


async def _model_exists(run: Run) -> bool:
    return await run.client.get(resources.LLMSERVICE, MODEL, run.namespace) is not None


async def _at_zero(run: Run) -> bool:
    return (await run.replicas(MODEL))[0] == 0


async def _scaled_to_zero(run: Run) -> str | None:
    """The phase once the backend is at 0 and the LLMService says ScaledToZero; None before."""
    try:
        if not await _at_zero(run):
            return None
        service = await run.client.get(resources.LLMSERVICE, MODEL, run.namespace)
    except (ApiError, ApiUnreachableError):
        return None
    phase = (service or {}).get("status", {}).get("phase")
    return str(phase) if phase == "ScaledToZero" else None


async def _leader_lease(run: Run) -> dict[str, Any] | None:
    leases, _ = await run.client.list(
        resources.LEASE, field_selector=f"metadata.name={names.LEADER_ELECTION_ID}"
    )
    return leases[0] if leases else None


async def _gateways_replaced(run: Run, killed: Sequence[str]) -> bool:
    pods = await run.gateway_pods(MODEL)
    return len(pods) >= 2 and not any(pod.name in killed for pod in pods)


SCENARIOS = [
    ("X1 fault: operator leader killed after the scale request", leader_killed_after_scale),
    ("X2 fault: kube-apiserver restarted while requests are held", apiserver_restarted_while_held),
    ("X3 fault: kubelet restarted while the backend pod starts", kubelet_restarted_while_starting),
    ("X4 fault: etcd paused 10s during a wake", etcd_paused_during_wake),
    ("X5 fault: backend pod deleted between ready and first byte", backend_deleted_at_ready),
    ("X6 fault: a gateway replica killed while holding", gateway_killed_while_holding),
]
