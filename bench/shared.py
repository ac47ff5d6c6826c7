"""Shared gateway benchmark (run by hand: `.venv/bin/python -m bench.shared`; not part of the tests).

A shared gateway (HEARTH_LLMGATEWAY) against a real etcd + kube-apiserver started here
(tests/cluster/controlplane.py), with its LLMServices and their EndpointSlices written into it as the
operator and the EndpointSlice controller would write them; every figure comes with its budget from issue 24
and, where there is one, a baseline measured in the same run.

- memory: RSS of a ``hearth gateway`` process routing 1, 100 and 1000 idle LLMServices, read once it lists
  them all on /hearth/queues and has settled; twice: a process started with the models already there (a
  restarted pod) and one that saw them arrive one watch event at a time. Per additional idle model:
  (RSS(1000) - RSS(100)) / 900. ``--profile`` adds tracemalloc's view of that growth (an in-process build).
- warm: the same backend (nginx answering a small static JSON, never the bottleneck) directly, behind a
  dedicated gateway, and behind a shared gateway routing 100 models of which the benchmarked one is ready;
  wrk with a JSON body naming the model, in interleaved rounds, medians and paired ratios as bench/gateway.py.
- cold (an in-process build in a process of its own, fed by the real apiserver's watches): 1000 held requests
  over 100 cold models (bench/heldclient.c, compiled here), then the 100 backends' EndpointSlices made ready
  in the apiserver (one kubectl apply); per model, from the moment the gateway's watch saw its backend ready
  to the first byte of its first held request, and FIFO within each model. Then model Y's warm latency
  (wrk, one connection) with and without a burst of held requests on model X and their release.

Needs Debian's ``wrk`` and ``nginx-light``, a C compiler, etcd and the kube components of
testing/cluster/build-components.sh. Ports: 19000-19999 only. ``--quick`` runs every part small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import itertools
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import gateway as single
from hearth.common import bundle, durations, eventloop, netaddr
from tests import helpers
from tests.cluster import controlplane

BENCH = Path(__file__).resolve().parent
GROUP = "serving.hearth.dev/v1alpha1"
LLMGATEWAY = "shared"
SELECTED = {"tier": "shared"}
LLMSERVICE_LABEL = "serving.hearth.dev/llmservice"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: A shared gateway pod's address, as the EndpointSlice of each model's own Service lists it.
GATEWAY_POD_IP = "10.244.0.17"
COMPLETIONS = "/v1/completions"
MEMORY_BUDGET_KIB = 100
THROUGHPUT_BUDGET = 0.90
ADDED_P99_BUDGET_MS = 0.1
FIRST_BYTE_BUDGET_MS = 50.0
NEIGHBOUR_P99_BUDGET_MS = 1.0


# ---- ports (19000-19999 only) -----------------------------------------------------------------------


def _free_ports(first: int, last: int) -> Iterator[int]:
    for port in range(first, last + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))  # taken on any address: taken
            except OSError:
                continue  # someone else's
        yield port


_PORTS = _free_ports(19000, 19999)


def port() -> int:
    return next(_PORTS)


# ---- the objects, as the operator and the EndpointSlice controller write them --------------------------


def llmservice(namespace: str, name: str) -> dict[str, Any]:
    """An LLMService as a user writes it (the quickstart's fields), selected by the shared gateway."""
    return {
        "apiVersion": GROUP,
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(SELECTED)},
        "spec": {
            "model": {"source": {"uri": f"hf://Qwen/Qwen3-0.6B-{name}"}},
            "runtime": {"name": "vllm-stub"},
            "scaling": {"min": 0, "max": 2, "target": 4, "scaleDownStabilization": "1m"},
            "cache": {"strategy": "None"},
            "endpoint": {"coldStart": {"mode": "keepalive", "heartbeatInterval": "2s"}},
        },
    }


def idle_status(namespace: str, name: str) -> dict[str, Any]:
    """The status of a model scaled to zero after twenty wakes, as the operator writes it: the shared
    gateway keeps the phase and the wake history of it."""
    recent = [round(40 + (i * 7.3) % 25, 1) for i in range(20)]
    wake = {
        "startedAt": "2026-12-01T10:00:00Z",
        "boundAt": "2026-12-01T10:00:02Z",
        "containersStartedAt": "2026-12-01T10:00:09Z",
        "readyAt": "2026-12-01T10:00:51Z",
        "pod": f"{name}-7d9f8c6b5-x2x9k",
        "schedulingSeconds": 2.0,
        "creatingSeconds": 7.0,
        "loadingSeconds": 42.0,
        "totalSeconds": 51.0,
    }
    return {
        "apiVersion": GROUP,
        "kind": "LLMService",
        "metadata": {"name": name, "namespace": namespace},
        "status": {
            "phase": "ScaledToZero",
            "resolvedRuntime": "vllm-stub",
            "replicas": 0,
            "desiredReplicas": 0,
            "gateway": LLMGATEWAY,
            "endpointURL": f"http://{LLMGATEWAY}.{namespace}.svc/v1",
            "lastScaleTime": "2026-12-01T11:00:00Z",
            "lastScaleReason": "idle",
            "lastWake": wake,
            "wakeHistory": {
                "recentSeconds": recent,
                "count": 20,
                "p50Seconds": sorted(recent)[10],
                "p90Seconds": sorted(recent)[18],
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ScaledToZero",
                    "message": "scaled to zero; the next request wakes it",
                    "lastTransitionTime": "2026-12-01T11:00:00Z",
                }
            ],
        },
    }


def _slice(
    namespace: str, name: str, service: str, model: str, *, endpoints: list[dict[str, Any]], port: int
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                SERVICE_NAME_LABEL: service,
                LLMSERVICE_LABEL: model,
                "app.kubernetes.io/managed-by": "hearth",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-12-01T11:00:00Z"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def backend_slice(namespace: str, model: str, ready_at: tuple[str, int] | None) -> dict[str, Any]:
    """The backend Service's slice: no endpoint while the model is cold, or ready at (address, port)."""
    endpoints = (
        [
            {
                "addresses": [ready_at[0]],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": f"{model}-7d9f8c6b5-x2x9k"},
                "nodeName": "node-1",
            }
        ]
        if ready_at is not None
        else []
    )
    return _slice(
        namespace,
        f"{model}-backend-x7k2p",
        f"{model}-backend",
        model,
        endpoints=endpoints,
        port=ready_at[1] if ready_at is not None else 8000,
    )


def front_slice(namespace: str, model: str) -> dict[str, Any]:
    """The slice of the model's own Service (it selects the shared gateway's pods): it carries the
    LLMService label too, so the shared gateway's slice watch sees it and must skip it."""
    endpoint = {
        "addresses": [GATEWAY_POD_IP],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": namespace, "name": f"{LLMGATEWAY}-gateway-5c7d-abcde"},
        "nodeName": "node-1",
    }
    return _slice(namespace, f"{model}-q8r4t", model, model, endpoints=[endpoint], port=8080)


def llmgateway(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "LLMGateway",
        "metadata": {"name": LLMGATEWAY, "namespace": namespace},
        "spec": {"selector": {"matchLabels": dict(SELECTED)}},
    }


# ---- the API server ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Kubectl:
    """The version-matched kubectl against the bench's API server."""

    binary: str
    kubeconfig: str

    def command(self, *args: str) -> list[str]:
        return [self.binary, f"--kubeconfig={self.kubeconfig}", *args]

    def run(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            self.command(*args), input=stdin, capture_output=True, text=True, timeout=900, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def apply(self, items: Sequence[dict[str, Any]], *, status: bool = False) -> None:
        """Server-side apply of *items* in one kubectl call per list of at most 500 (a List, not one
        process per object: the bench writes thousands)."""
        args = ["apply", "--server-side", "--force-conflicts", "--field-manager=hearth-bench", "-f", "-"]
        if status:
            # Client-side validation would ask for the spec, which a status write leaves alone.
            args[1:1] = ["--subresource=status", "--validate=false"]
        for start in range(0, len(items), 500):
            chunk = list(items[start : start + 500])
            self.run(*args, stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk}))

    async def apply_async(self, items: Sequence[dict[str, Any]]) -> None:
        """:meth:`apply` from an event loop that must keep running (an in-process gateway's)."""
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)}).encode()
        process = await asyncio.create_subprocess_exec(
            *self.command(
                "apply", "--server-side", "--force-conflicts", "--field-manager=hearth-bench", "-f", "-"
            ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await process.communicate(document)
        if process.returncode != 0:
            raise RuntimeError(f"kubectl apply: {errors.decode()[-2000:]}")


def add_models(
    kubectl: Kubectl,
    namespace: str,
    models: Sequence[str],
    *,
    ready: dict[str, tuple[str, int]] | None = None,
) -> None:
    """LLMServices with their status and both EndpointSlices; *ready*: model -> backend (address, port)
    of those whose backend is ready."""
    ready = ready or {}
    kubectl.apply([llmservice(namespace, model) for model in models])
    kubectl.apply([idle_status(namespace, model) for model in models], status=True)
    slices = [backend_slice(namespace, model, ready.get(model)) for model in models]
    kubectl.apply(slices + [front_slice(namespace, model) for model in models])


def new_namespace(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("create", "namespace", namespace)
    kubectl.apply([llmgateway(namespace)])


@contextlib.contextmanager
def api_server() -> Iterator[Kubectl]:
    """etcd and kube-apiserver with Hearth's CRDs, on ports of the bench's range."""
    # The control plane picks its ports with free_port(); the bench keeps to its own range.
    controlplane.free_port = port
    with controlplane.running() as plane:
        crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
        plane.apply_crds(crds, "llmservices.serving.hearth.dev", "llmgateways.serving.hearth.dev")
        yield Kubectl(str(plane.bin_dir / "kubectl"), str(plane.kubeconfig))


# ---- measuring a spawned gateway ----------------------------------------------------------------------


def shared_env(kubectl: Kubectl, namespace: str, listen: int) -> dict[str, str]:
    return {
        "HEARTH_LLMGATEWAY": LLMGATEWAY,
        "HEARTH_NAMESPACE": namespace,
        "KUBECONFIG": kubectl.kubeconfig,
        "HEARTH_LISTEN_ADDR": f"127.0.0.1:{listen}",
        "HEARTH_DRAIN_DELAY": "0s",
    }


def routed(url: str) -> int:
    """How many models the gateway at *url* routes (its /hearth/queues), -1 before it answers."""
    try:
        with urllib.request.urlopen(url + "/hearth/queues", timeout=5) as answer:
            return len(json.loads(answer.read())["models"])
    except OSError:
        return -1


def wait_routed(url: str, count: int, within_s: float = 300) -> float:
    """Wait until the gateway at *url* routes *count* models; seconds it took."""
    started = time.monotonic()
    while (seen := routed(url)) != count:
        if time.monotonic() - started > within_s:
            raise RuntimeError(f"{url} routes {seen} models, not {count}, after {within_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def settled_rss_kib(pid: int, settle_s: float) -> int:
    """RSS once the process has been idle for *settle_s* (the median of three readings after that)."""
    time.sleep(settle_s)
    readings = []
    for _ in range(3):
        readings.append(single._rss_kib(single._serving_process(pid)))
        time.sleep(0.2)
    return int(statistics.median(readings))


@contextlib.contextmanager
def spawned(executable: Sequence[str], env: dict[str, str]) -> Iterator[tuple[helpers.HearthProcess, str]]:
    process = helpers.HearthProcess(["gateway"], executable=executable, env=env)
    try:
        yield process, process.wait_listening(120)
    finally:
        process.stop()


# ---- 1. memory ------------------------------------------------------------------------------------


def model_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{index:04d}" for index in range(count)]


def memory(options: argparse.Namespace, kubectl: Kubectl) -> list[tuple[str, str, str]]:
    namespace = "bench-memory"
    new_namespace(kubectl, namespace)
    counts: list[int] = options.models
    fresh: dict[int, int] = {}
    grown: dict[int, int] = {}
    listed_s: dict[int, float] = {}
    have = 0
    with contextlib.ExitStack() as later:
        watcher: tuple[helpers.HearthProcess, str] | None = None
        for count in counts:
            add_models(kubectl, namespace, model_names("m", count)[have:])
            have = count
            if watcher is None:
                # Started with the first count, it sees every later model arrive as a watch event.
                watcher = later.enter_context(
                    spawned(options.executable, shared_env(kubectl, namespace, port()))
                )
            with spawned(options.executable, shared_env(kubectl, namespace, port())) as (process, url):
                listed_s[count] = wait_routed(url, count)
                fresh[count] = settled_rss_kib(process.pid, options.settle)
            wait_routed(watcher[1], count)
            grown[count] = settled_rss_kib(watcher[0].pid, options.settle)
    low, high = counts[-2], counts[-1]
    rows = [
        (
            f"RSS, shared gateway, {count:>4} idle models: started / grown",
            f"{fresh[count] / 1024:.1f} / {grown[count] / 1024:.1f} MiB",
            f"all listed {listed_s[count]:.1f} s after start",
        )
        for count in counts
    ]
    for name, figures in (("started with them", fresh), ("grown by watch events", grown)):
        per_model = (figures[high] - figures[low]) / (high - low)
        verdict = "within" if per_model <= MEMORY_BUDGET_KIB else "OVER"
        rows.append(
            (
                f"per additional idle model ({name})",
                f"{per_model:.1f} KiB",
                f"(RSS({high}) - RSS({low})) / {high - low}; budget <= {MEMORY_BUDGET_KIB} KiB: {verdict}",
            )
        )
    return rows


# ---- 1b. what the per-model memory is made of (--profile) ------------------------------------------


def profile(options: argparse.Namespace, kubectl: Kubectl) -> list[str]:
    """tracemalloc over an in-process shared gateway growing from the next-to-last count of models to
    the last, in a process of its own; the lines it prints."""
    namespace = "bench-profile"
    new_namespace(kubectl, namespace)
    low, high = options.models[-2], options.models[-1]
    add_models(kubectl, namespace, model_names("p", low))
    config = {"kubectl": dataclasses.asdict(kubectl), "namespace": namespace, "low": low, "high": high}
    return _child("--profile-run", config)["lines"]  # type: ignore[no-any-return]


async def profile_run(config: dict[str, Any]) -> dict[str, Any]:
    from hearth.gateway import server
    from hearth.gateway.front import shared
    from hearth.gateway.settings import GatewaySettings
    from hearth.kube.client import KubeClient

    kubectl = Kubectl(**config["kubectl"])
    namespace, low, high = config["namespace"], config["low"], config["high"]
    tracemalloc.start(30)
    client = await KubeClient.connect(kubeconfig=kubectl.kubeconfig)
    settings = GatewaySettings(
        listen=netaddr.ListenAddress("127.0.0.1", 0),
        drain_delay=durations.Duration(0),
        namespace=namespace,
        llmgateway=LLMGATEWAY,
    )
    async with server.build(settings, client=client) as assembly, assembly.serving():
        table = assembly.gateway.table
        assert isinstance(table, shared.SharedTable)

        async def routes(count: int) -> tracemalloc.Snapshot:
            while len(list(table.routes())) != count:  # noqa: ASYNC110 - the table of this very loop
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            gc.collect()
            return tracemalloc.take_snapshot()

        before = await routes(low)
        await asyncio.to_thread(add_models, kubectl, namespace, model_names("p", high)[low:])
        after = await routes(high)
    await client.close()
    return {"lines": _profile_lines(before, after, high - low)}


def _profile_lines(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, added: int) -> list[str]:
    """The growth per added model, attributed to the innermost frame in Hearth's code (what allocated it,
    from Hearth's side) and, separately, to the allocating line itself."""
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(filters).compare_to(before.filter_traces(filters), "traceback")
    by_hearth: dict[str, int] = {}
    by_line: dict[str, int] = {}
    total = 0
    for stat in stats:
        total += stat.size_diff
        frames = list(reversed(stat.traceback))  # tracemalloc lists the oldest first
        hearth_frame = next((f for f in frames if "/hearth/" in f.filename), None)
        where = (
            f"{_short(hearth_frame.filename)}:{hearth_frame.lineno}" if hearth_frame else "(no Hearth frame)"
        )
        by_hearth[where] = by_hearth.get(where, 0) + stat.size_diff
        line = f"{_short(frames[0].filename)}:{frames[0].lineno}" if frames else "?"
        by_line[line] = by_line.get(line, 0) + stat.size_diff
    lines = [f"traced Python heap growth per added model: {total / added / 1024:.1f} KiB ({added} models)"]
    for title, table in (("by innermost Hearth frame", by_hearth), ("by allocating line", by_line)):
        lines.append(f"  {title}:")
        for where, size in sorted(table.items(), key=lambda item: -item[1])[:14]:
            lines.append(f"    {size / added / 1024:7.2f} KiB  {where}")
    return lines


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ---- 2. warm path ---------------------------------------------------------------------------------------


_WRK_MAX = re.compile(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", re.M)
_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclasses.dataclass
class WrkRun:
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def wrk(url: str, *, connections: int, seconds: float, script: Path) -> WrkRun:
    report = single.wrk_report(url, connections=connections, seconds=max(1, round(seconds)), script=script)
    latency = {m[0]: float(m[1]) * _SCALE[m[2]] for m in single._WRK_LATENCY.findall(report)}
    found = single._WRK_REQUESTS.search(report)
    most = _WRK_MAX.search(report)
    return WrkRun(
        requests=int(found.group(1)) if found else 0,
        p50_ms=latency.get("50", float("nan")),
        p99_ms=latency.get("99", float("nan")),
        max_ms=float(most.group(1)) * _SCALE[most.group(2)] if most else float("nan"),
    )


def post_script(root: Path, model: str) -> Path:
    """wrk's Lua for a POST whose JSON body names *model*."""
    body = json.dumps({"model": model, "prompt": "hi", "max_tokens": 1})
    script = root / f"post-{model}.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = \'{body}\'\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def warm(
    options: argparse.Namespace, kubectl: Kubectl, root: Path, backend: tuple[str, int], backend_pid: int
) -> list[tuple[str, str, str]]:
    base = f"http://{backend[0]}:{backend[1]}"
    namespace = "bench-warm"
    new_namespace(kubectl, namespace)
    models = model_names("w", options.warm_models)
    add_models(kubectl, namespace, models, ready={models[0]: backend})
    script = post_script(root, models[0])
    dedicated_env = {
        "HEARTH_BACKEND_URL": base,
        "HEARTH_LISTEN_ADDR": f"127.0.0.1:{port()}",
        "HEARTH_DRAIN_DELAY": "0s",
        # Readiness from the same EndpointSlice the shared gateway reads: both send to the pod address.
        "HEARTH_READINESS": "endpointslices",
        "HEARTH_NAMESPACE": namespace,
        "HEARTH_BACKEND_SERVICE": f"{models[0]}-backend",
        "KUBECONFIG": kubectl.kubeconfig,
    }
    with (
        spawned(options.executable, dedicated_env) as (dedicated, dedicated_url),
        spawned(options.executable, shared_env(kubectl, namespace, port())) as (shared_process, shared_url),
    ):
        wait_routed(shared_url, len(models))
        time.sleep(1)  # both have seen the ready slice
        targets = {
            "direct": (base + COMPLETIONS, backend_pid),
            "dedicated": (dedicated_url + COMPLETIONS, single._serving_process(dedicated.pid)),
            "shared": (shared_url + COMPLETIONS, single._serving_process(shared_process.pid)),
        }
        return warm_rounds(options, targets, script, len(models))


def warm_rounds(
    options: argparse.Namespace, targets: dict[str, tuple[str, int]], script: Path, routes: int
) -> list[tuple[str, str, str]]:
    """Each round runs every target back to back (32 connections, then 1); figures are medians over the
    rounds and the shared/dedicated comparisons are paired by round."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    cpus: dict[str, list[float]] = {name: [] for name in targets}
    p50s: dict[str, list[float]] = {name: [] for name in targets}
    p99s: dict[str, list[float]] = {name: [] for name in targets}
    for url, _ in targets.values():
        wrk(url, connections=32, seconds=1, script=script)  # warm up: connections, caches
    for number in range(options.rounds):
        # Alternate which gateway goes first, so a drift within a round favours neither.
        order = list(targets) if number % 2 == 0 else ["direct", "shared", "dedicated"]
        for name in order:
            url, pid = targets[name]
            before = single._cpu_seconds(pid)
            loaded = wrk(url, connections=32, seconds=options.seconds, script=script)
            cpus[name].append((single._cpu_seconds(pid) - before) / max(1, loaded.requests) * 10_000)
            rates[name].append(loaded.requests / options.seconds)
            one = wrk(url, connections=1, seconds=options.seconds, script=script)
            p50s[name].append(one.p50_ms)
            p99s[name].append(one.p99_ms)
    med = {name: statistics.median(v) for name, v in rates.items()}
    cpu = {name: statistics.median(v) for name, v in cpus.items()}
    p50 = {name: statistics.median(v) for name, v in p50s.items()}
    p99 = {name: statistics.median(v) for name, v in p99s.items()}
    ratios = [s / d for s, d in zip(rates["shared"], rates["dedicated"], strict=True)]
    added = [s - d for s, d in zip(p99s["shared"], p99s["dedicated"], strict=True)]
    ratio, extra = statistics.median(ratios), statistics.median(added)
    return [
        (
            "throughput at 32 conns: direct / dedicated / shared",
            f"{med['direct']:.0f} / {med['dedicated']:.0f} / {med['shared']:.0f} req/s",
            f"shared {ratio:.2f}x dedicated (budget >= {THROUGHPUT_BUDGET:.2f}x: "
            f"{'within' if ratio >= THROUGHPUT_BUDGET else 'OVER'}; rounds: {_join(ratios, '.2f')}); "
            f"{routes} models routed",
        ),
        (
            "gateway CPU s per 10k requests: dedicated / shared",
            f"{cpu['dedicated']:.2f} / {cpu['shared']:.2f} s",
            f"shared {cpu['shared'] / cpu['dedicated']:.2f}x dedicated",
        ),
        (
            "latency p50 at 1 conn: direct / dedicated / shared",
            f"{p50['direct']:.3f} / {p50['dedicated']:.3f} / {p50['shared']:.3f} ms",
            f"shared adds {p50['shared'] - p50['dedicated']:+.3f} ms to dedicated",
        ),
        (
            "latency p99 at 1 conn: direct / dedicated / shared",
            f"{p99['direct']:.3f} / {p99['dedicated']:.3f} / {p99['shared']:.3f} ms",
            f"shared adds {extra:+.3f} ms (paired median; budget <= +{ADDED_P99_BUDGET_MS} ms: "
            f"{'within' if extra <= ADDED_P99_BUDGET_MS else 'OVER'}; rounds: {_join(added, '+.3f')})",
        ),
    ]


def _join(values: Sequence[float], spec: str) -> str:
    return ", ".join(format(value, spec) for value in values)


# ---- 3. cold path (an in-process gateway in a process of its own) -----------------------------------------


def cold(
    options: argparse.Namespace,
    kubectl: Kubectl,
    root: Path,
    backends: list[tuple[str, int]],
    client: Path,
) -> list[tuple[str, str, str]]:
    namespace = "bench-cold"
    new_namespace(kubectl, namespace)
    models = model_names("c", options.cold_models)
    # X and Y share the first backend port; Y is warm from the start.
    add_models(kubectl, namespace, [*models, "x", "y"], ready={"y": backends[0]})
    config = {
        "kubectl": dataclasses.asdict(kubectl),
        "namespace": namespace,
        "models": models,
        "per_model": options.per_model,
        "backends": backends,
        "listen": port(),
        "client": str(client),
        "burst": options.burst,
        "rounds": options.burst_rounds,
        "seconds": options.burst_seconds,
        "script": str(post_script(root, "y")),
    }
    figures = _child("--cold-run", config)
    return cold_rows(options, figures)


def _child(flag: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run a part in a fresh interpreter of its own (its own event loop and its own memory), the
    configuration in, one JSON line of figures out."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.shared", flag, json.dumps(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=BENCH.parent,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.shared {flag} failed:\n{result.stderr[-6000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cold_rows(options: argparse.Namespace, figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    held, burst = figures["held"], figures["burst"]
    firsts = sorted(held["first_byte_ms"].values())
    within = sum(1 for value in firsts if value <= FIRST_BYTE_BUDGET_MS)
    models = len(firsts)
    quiet = [each["p99_ms"] for each in burst["quiet"]]
    busy = [each["p99_ms"] for each in burst["busy"]]
    added = statistics.median(b - q for b, q in zip(busy, quiet, strict=True))
    return [
        (
            f"cold: {held['requests']} held over {models} models: all held after",
            f"{held['all_held_ms']:.0f} ms",
            f"answers: {held['ok']} 200, {held['not_ok']} other, {held['failed']} failed",
        ),
        (
            "cold: apiserver apply -> gateway saw ready (first / last model)",
            f"{held['ready_seen_first_ms']:.0f} / {held['ready_seen_last_ms']:.0f} ms",
            f"one kubectl apply of the {models} backend slices; the watch delivers them one by one",
        ),
        (
            "cold: per model, ready seen -> 1st held 1st byte: median / p90 / max",
            f"{statistics.median(firsts):.1f} / {single._percentile(firsts, 0.9):.1f} / {firsts[-1]:.1f} ms",
            f"budget <= {FIRST_BYTE_BUDGET_MS:.0f} ms: {within}/{models} models within",
        ),
        (
            "cold: FIFO within a model (arrival vs forwarded; vs first byte)",
            f"{held['forward_out_of_order']} / {held['first_byte_inversions']} inverted",
            f"forwarded out of arrival order (models: {held['forward_models_out_of_order']}); pairs whose "
            f"first bytes came strictly in the other order (models: {held['first_byte_models_inverted']})",
        ),
        (
            f"burst: Y warm p99 at 1 conn, quiet / with {options.burst} held on X",
            f"{statistics.median(quiet):.3f} / {statistics.median(busy):.3f} ms",
            f"burst adds {added:+.3f} ms (paired median; budget <= +{NEIGHBOUR_P99_BUDGET_MS:.0f} ms: "
            f"{'within' if added <= NEIGHBOUR_P99_BUDGET_MS else 'OVER'}); Y max "
            f"{statistics.median(each['max_ms'] for each in burst['quiet']):.1f} / "
            f"{statistics.median(each['max_ms'] for each in burst['busy']):.1f} ms",
        ),
        (
            "burst: longest loop stall: quiet / accepting / releasing",
            f"{statistics.median(burst['stall_quiet_ms']):.1f} / "
            f"{statistics.median(burst['stall_held_ms']):.1f} / "
            f"{statistics.median(burst['stall_release_ms']):.1f} ms",
            "how late a 1 ms sleep of the gateway's event loop woke (medians over rounds): every request "
            "of every model waits out a stall",
        ),
        (
            "burst: longest stall while accepting: the loop's own CPU in it",
            f"{statistics.median(burst['stall_held_cpu_ms']):.1f} ms",
            "the rest of the stall the process waited for a CPU (the burst's client, wrk and the API "
            "server share this machine's CPUs)",
        ),
        (
            "burst: longest garbage collection pause: young / middle / oldest",
            " / ".join(
                f"{statistics.median(each[generation] for each in burst['collections_ms']):.1f}"
                for generation in range(3)
            )
            + " ms",
            "during the burst, its hold and its release (gc.callbacks, medians over rounds); the oldest "
            "generation is collected on a timer only (hearth.gateway.gcpacing)",
        ),
        (
            "burst: X held after / released in (ready -> last done)",
            f"{statistics.median(burst['held_ms']):.0f} / {statistics.median(burst['released_ms']):.0f} ms",
            f"within Y's {options.burst_seconds:.0f} s wrk run: {burst['inside']}/{len(busy)} rounds; "
            f"X answers not 200: {burst['not_ok']}",
        ),
    ]


@dataclasses.dataclass
class Recorder:
    """What the in-process gateway saw: arrivals and forwards per model (by the client's seq), and
    readiness flips."""

    arrivals: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    forwards: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    flips: dict[str, list[tuple[bool, float]]] = dataclasses.field(default_factory=dict)

    def watch(self, route: Any) -> None:
        """Wrap the route's admission and forwarding (bench instrumentation, not a gateway hook)."""
        model = route.model
        arrivals = self.arrivals.setdefault(model, [])
        forwards = self.forwards.setdefault(model, [])
        flips = self.flips.setdefault(model, [])
        admit, forward = route.admit, route.proxy.forward

        async def admitted(request: Any, *args: Any, **kwargs: Any) -> Any:
            arrivals.append(int(request.query.get("seq", -1)))
            return await admit(request, *args, **kwargs)

        async def forwarded(request: Any, *args: Any, **kwargs: Any) -> Any:
            forwards.append(int(request.query.get("seq", -1)))
            return await forward(request, *args, **kwargs)

        route.admit = admitted
        route.proxy.forward = forwarded
        # Registered after the route's own callback: the route has released its first places already.
        route.readiness.on_change(lambda ready: flips.append((ready, time.monotonic())))


async def _until(condition: Callable[[], bool], *, within_s: float, what: str) -> float:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.002)
    return time.monotonic()


async def _held_client(client: str, port: int, plan: list[str]) -> tuple[asyncio.subprocess.Process, float]:
    process = await asyncio.create_subprocess_exec(
        client,
        "127.0.0.1",
        str(port),
        COMPLETIONS,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(("\n".join(plan) + "\n").encode())
    await process.stdin.drain()
    process.stdin.close()
    start = int((await process.stdout.readline()).split()[1]) / 1e9
    return process, start


async def _answers(process: asyncio.subprocess.Process) -> tuple[dict[int, tuple[int, float, float]], int]:
    """seq -> (status, first byte, done) in monotonic seconds, and the failed count."""
    assert process.stdout is not None
    output = (await process.stdout.read()).decode().splitlines()
    await process.wait()
    answers: dict[int, tuple[int, float, float]] = {}
    failed = 0
    for line in output:
        fields = line.split()
        if fields[0] == "r":
            answers[int(fields[1])] = (int(fields[2]), int(fields[3]) / 1e9, int(fields[4]) / 1e9)
        elif fields[0] == "failed":
            failed = int(fields[1])
    return answers, failed


def _inversions(times: list[float]) -> int:
    """Pairs (i < j) whose times came strictly in the other order."""
    return sum(1 for i, j in itertools.combinations(range(len(times)), 2) if times[j] < times[i])


async def cold_run(config: dict[str, Any]) -> dict[str, Any]:
    from hearth.gateway import server
    from hearth.gateway.front import shared
    from hearth.gateway.settings import GatewaySettings
    from hearth.kube.client import KubeClient

    kubectl = Kubectl(**config["kubectl"])
    namespace, models = config["namespace"], config["models"]
    settings = GatewaySettings(
        listen=netaddr.ListenAddress("127.0.0.1", config["listen"]),
        drain_delay=durations.Duration(0),
        namespace=namespace,
        llmgateway=LLMGATEWAY,
        max_queue=max(config["burst"], config["per_model"]) + 100,
        activation_timeout=durations.Duration.parse("5m"),
    )
    client = await KubeClient.connect(kubeconfig=kubectl.kubeconfig)
    recorder = Recorder()
    try:
        async with server.build(settings, client=client) as assembly, assembly.serving():
            server.pace_garbage_collection(assembly)  # as server.run does
            table = assembly.gateway.table
            assert isinstance(table, shared.SharedTable)
            await _until(lambda: len(list(table.routes())) == len(models) + 2, within_s=120, what="routes")
            for route in table.routes():
                recorder.watch(route)
            await asyncio.sleep(0.5)
            held = await _held_phase(config, kubectl, table, recorder)
            burst = await _burst_phase(config, kubectl, table, recorder)
    finally:
        await client.close()
    return {"held": held, "burst": burst}


async def _held_phase(
    config: dict[str, Any], kubectl: Kubectl, table: Any, recorder: Recorder
) -> dict[str, Any]:
    models, namespace = config["models"], config["namespace"]
    # Round robin over the models: the requests of one model arrive among everyone else's.
    plan = [models[index % len(models)] for index in range(len(models) * config["per_model"])]
    routes = [table.get(model) for model in models]
    process, start = await _held_client(config["client"], config["listen"], plan)
    all_held = await _until(lambda: sum(r.held for r in routes) == len(plan), within_s=120, what="all held")
    await asyncio.sleep(0.3)  # the burst's own work settles: the release must not pay for it
    backends = [tuple(each) for each in config["backends"]]
    ready_slices = [
        backend_slice(namespace, model, backends[index % len(backends)]) for index, model in enumerate(models)
    ]
    applied = time.monotonic()
    await kubectl.apply_async(ready_slices)
    answers, failed = await _answers(process)
    first_byte: dict[str, float] = {}
    seen = []
    forward_out = inverted = 0
    forward_models: set[str] = set()
    inverted_models: set[str] = set()
    for model in models:
        ready_at = next(at for ready, at in recorder.flips[model] if ready)
        seen.append(ready_at)
        arrived = [seq for seq in recorder.arrivals[model] if seq in answers]
        first_byte[model] = (answers[arrived[0]][1] - ready_at) * 1000
        if recorder.forwards[model] != recorder.arrivals[model]:
            forward_out += 1
            forward_models.add(model)
        pairs = _inversions([answers[seq][1] for seq in arrived])
        if pairs:
            inverted += pairs
            inverted_models.add(model)
    return {
        "requests": len(plan),
        "all_held_ms": (all_held - start) * 1000,
        "ok": sum(1 for status, _, _ in answers.values() if status == 200),
        "not_ok": sum(1 for status, _, _ in answers.values() if status != 200),
        "failed": failed,
        "ready_seen_first_ms": (min(seen) - applied) * 1000,
        "ready_seen_last_ms": (max(seen) - applied) * 1000,
        "first_byte_ms": first_byte,
        "forward_out_of_order": forward_out,
        "forward_models_out_of_order": len(forward_models),
        "first_byte_inversions": inverted,
        "first_byte_models_inverted": len(inverted_models),
    }


class LoopLag:
    """How late a 1 ms sleep of the gateway's own event loop wakes: a stall of the loop delays every
    request it serves, the neighbour model's too, by as much."""

    def __init__(self) -> None:
        #: (when the sleep woke, how late, the loop thread's CPU seconds meanwhile) in seconds.
        self.samples: list[tuple[float, float, float]] = []

    async def run(self) -> None:
        while True:
            before, cpu_before = time.monotonic(), time.thread_time()
            await asyncio.sleep(0.001)
            after = time.monotonic()
            self.samples.append((after, after - before - 0.001, time.thread_time() - cpu_before))

    def worst_ms(self, start: float, end: float) -> float:
        """The longest stall that ended between *start* and *end*."""
        return max((lag for at, lag, _ in self.samples if start <= at <= end), default=0.0) * 1000

    def worst_cpu_ms(self, start: float, end: float) -> float:
        """The loop's own CPU during that stall: the rest of it, the process waited for a CPU."""
        stalls = [(lag, cpu) for at, lag, cpu in self.samples if start <= at <= end]
        return max(stalls, default=(0.0, 0.0))[1] * 1000


class CollectorPauses:
    """How long each garbage collection stopped the process (``gc.callbacks``), by generation."""

    def __init__(self) -> None:
        #: (when it ended, generation, seconds)
        self.pauses: list[tuple[float, int, float]] = []
        self._began = 0.0

    def __enter__(self) -> CollectorPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
        else:
            self.pauses.append((time.monotonic(), info["generation"], now - self._began))

    def worst_ms(self, start: float, end: float) -> list[float]:
        """The longest pause of each generation (young, middle, oldest) that ended between *start* and
        *end*."""
        window = [(gen, took) for at, gen, took in self.pauses if start <= at <= end]
        return [
            max((took for gen, took in window if gen == generation), default=0) * 1000
            for generation in range(3)
        ]


async def _burst_phase(
    config: dict[str, Any], kubectl: Kubectl, table: Any, recorder: Recorder
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "quiet": [],
        "busy": [],
        "held_ms": [],
        "released_ms": [],
        "stall_quiet_ms": [],
        "stall_held_ms": [],
        "stall_held_cpu_ms": [],
        "stall_release_ms": [],
        "collections_ms": [],  # per busy round: the longest pause of each generation, burst to release
        "inside": 0,
        "not_ok": 0,
    }
    lag = LoopLag()
    probe = asyncio.create_task(lag.run())
    try:
        with CollectorPauses() as pauses:
            await _burst_rounds(
                config, kubectl, table=table, recorder=recorder, lag=lag, pauses=pauses, figures=figures
            )
    finally:
        probe.cancel()
    return figures


async def _burst_rounds(
    config: dict[str, Any],
    kubectl: Kubectl,
    *,
    table: Any,
    recorder: Recorder,
    lag: LoopLag,
    pauses: CollectorPauses,
    figures: dict[str, Any],
) -> None:
    seconds = config["seconds"]
    url = f"http://127.0.0.1:{config['listen']}{COMPLETIONS}"
    script = Path(config["script"])
    for number in range(config["rounds"]):
        for kind in ("quiet", "busy") if number % 2 == 0 else ("busy", "quiet"):
            measured = asyncio.create_task(
                asyncio.to_thread(wrk, url, connections=1, seconds=seconds, script=script)
            )
            began = time.monotonic()
            if kind == "busy":
                await asyncio.sleep(min(0.5, seconds / 5))
                figures["not_ok"] += await _burst(
                    config, kubectl, x=table.get("x"), recorder=recorder, lag=lag, figures=figures
                )
                figures["inside"] += time.monotonic() - began < seconds
                figures["collections_ms"].append(pauses.worst_ms(began, time.monotonic()))
            run = await measured
            if kind == "quiet":
                figures["stall_quiet_ms"].append(lag.worst_ms(began, time.monotonic()))
            figures[kind].append(dataclasses.asdict(run))


async def _burst(
    config: dict[str, Any],
    kubectl: Kubectl,
    *,
    x: Any,
    recorder: Recorder,
    lag: LoopLag,
    figures: dict[str, list[float]],
) -> int:
    """*burst* held requests on X, released by X's backend slice turning ready, then X cold again; the
    answers that were not a 200."""
    namespace, count = config["namespace"], config["burst"]
    process, start = await _held_client(config["client"], config["listen"], ["x"] * count)
    held = await _until(lambda: x.held == count, within_s=60, what="the burst held")
    figures["held_ms"].append((held - start) * 1000)
    figures["stall_held_ms"].append(lag.worst_ms(start, held))
    figures["stall_held_cpu_ms"].append(lag.worst_cpu_ms(start, held))
    await kubectl.apply_async([backend_slice(namespace, "x", tuple(config["backends"][0]))])
    answers, failed = await _answers(process)
    ready_at = next(at for ready, at in reversed(recorder.flips["x"]) if ready)
    last_done = max(done for _, _, done in answers.values())
    figures["released_ms"].append((last_done - ready_at) * 1000)
    figures["stall_release_ms"].append(lag.worst_ms(ready_at, last_done))
    await kubectl.apply_async([backend_slice(namespace, "x", None)])
    await _until(lambda: not x.readiness.ready, within_s=30, what="X cold again")
    return failed + sum(1 for status, _, _ in answers.values() if status != 200)


# ---- the run ---------------------------------------------------------------------------------------


BACKENDS_SERVER = """
  server {{
{listens}
    location / {{ default_type application/json; return 200 '{answer}'; }}
  }}
"""


def host_address() -> str:
    """The machine's own IPv4 address (the source address of a route out; nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        raise RuntimeError("no non-loopback IPv4 address: an EndpointSlice cannot name a loopback one")
    return address


def run(options: argparse.Namespace) -> list[tuple[str, str, str]]:
    root = Path(tempfile.mkdtemp(prefix="hearth-bench-shared-"))
    rows: list[tuple[str, str, str]] = []
    try:
        client = root / "heldclient"
        subprocess.run(["cc", "-O2", "-Wall", "-o", str(client), str(BENCH / "heldclient.c")], check=True)
        # One nginx serves every backend: a port of its own per cold model (each route its own upstream),
        # on the machine's own address: an EndpointSlice may not name a loopback one.
        host = host_address()
        backends = [(host, port()) for _ in range(max(1, options.cold_models))]
        # Plus loopback on the first port, where the nginx helper of bench/gateway.py checks it listens.
        listens = "\n".join(
            f"    listen {address}:{number} backlog=65535;"
            for address, number in [("127.0.0.1", backends[0][1]), *backends]
        )
        server_block = BACKENDS_SERVER.format(listens=listens, answer=single.ANSWER)
        with (
            api_server() as kubectl,
            single._nginx(root, "backends", server_block, backends[0][1]) as nginx,
        ):
            if "memory" in options.parts:
                rows.extend(memory(options, kubectl))
            if "profile" in options.parts:
                rows.extend(("profile", "", line) for line in profile(options, kubectl))
            if "warm" in options.parts:
                rows.extend(warm(options, kubectl, root, backends[0], nginx.pid))
            if "cold" in options.parts:
                rows.extend(cold(options, kubectl, root, backends, client))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _counts(text: str) -> list[int]:
    return [int(each) for each in text.split(",")]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every part, small and short (a smoke run)")
    parser.add_argument(
        "--parts", default="memory,warm,cold", help="memory, profile, warm, cold (comma-separated)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="add the profile part: what an idle model's memory is"
    )
    parser.add_argument(
        "--binary", action="store_true", help="spawn the frozen dist/hearth, not python -m hearth"
    )
    parser.add_argument(
        "--models", type=_counts, default=[1, 100, 1000], help="idle model counts of the memory part"
    )
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before RSS is read")
    parser.add_argument(
        "--warm-models", type=int, default=100, help="models the warm part's shared gateway routes"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each warm wrk run")
    parser.add_argument("--rounds", type=int, default=5, help="warm rounds (interleaved; medians)")
    parser.add_argument("--cold-models", type=int, default=100, help="cold models of the cold part")
    parser.add_argument("--per-model", type=int, default=10, help="held requests per cold model")
    parser.add_argument("--burst", type=int, default=2000, help="held requests of the burst on X")
    parser.add_argument("--burst-rounds", type=int, default=3, help="rounds of Y quiet / Y beside X's burst")
    parser.add_argument("--burst-seconds", type=float, default=5.0, help="duration of each wrk run on Y")
    parser.add_argument("--cold-run", help=argparse.SUPPRESS)
    parser.add_argument("--profile-run", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.quick:
        options.models, options.settle, options.warm_models = [1, 10, 50], 0.5, 10
        options.seconds, options.rounds = 1.0, 1
        options.cold_models, options.per_model, options.burst = 10, 3, 100
        options.burst_rounds, options.burst_seconds = 1, 2.0
    options.parts = set(options.parts.split(",")) | ({"profile"} if options.profile else set())
    options.executable = (str(helpers.FROZEN_BINARY),) if options.binary else helpers.PYTHON_HEARTH
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for flag, part in ((options.cold_run, cold_run), (options.profile_run, profile_run)):
        if flag is not None:
            print(json.dumps(eventloop.run(part(json.loads(flag)))))
            return 0
    missing = single._missing_tools()
    if missing:
        print(
            f"the bench needs {', '.join(missing)}: apt-get install -y wrk nginx-light gcc", file=sys.stderr
        )
        return 2
    load = os.getloadavg()
    started = time.monotonic()
    rows = run(options)
    rows.append(("gateway under test (memory, warm)", *single._variant(options.executable)))
    rows.append(
        ("cold part", "in-process build", f"interpreted, {eventloop.name()}; readiness via the apiserver")
    )
    rows.append(
        (
            "load average before / after; wall time",
            f"{load[0]:.2f} / {os.getloadavg()[0]:.2f}",
            f"{os.cpu_count()} CPUs; {time.monotonic() - started:.0f} s",
        )
    )
    print_table(rows)
    return 0


def print_table(rows: Sequence[tuple[str, str, str]]) -> None:
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}".rstrip())


if __name__ == "__main__":
    raise SystemExit(main())
