"""Gateway benchmark (run by hand: `.venv/bin/python -m bench.gateway`; not part of the tests).

Everything is measured from the client's side, with load generators that are not the bottleneck, against
two baselines measured in the same run: the backend directly, and Debian's nginx as a reverse proxy in
front of the same backend. Needs Debian's ``wrk`` and ``nginx-light`` and a C compiler
(``apt-get install -y wrk nginx-light gcc``); the bench says so and stops when one is missing.

- warm path (wrk): throughput at 32 connections, latency p50/p99 at one connection, and the proxy's CPU
  seconds per 10k requests (from /proc), for direct / nginx / gateway; the backend is an nginx answering a
  small static JSON body, so it is never what limits the proxies;
- streaming: per-token lateness (p99) against the stub streaming a token every 20 ms, via each target;
- cold path (bench/coldclient.c, compiled here): N clients arrive at once at a cold gateway (1, 1k, 5k,
  10k); how long until all are held, the gateway's RSS per held request, then from the moment the backend
  is ready until each client's first byte (first / median / last) and last byte.
- memory: the idle RSS of a dedicated gateway, the frozen dist/hearth in a fresh process once its start-up
  has settled, in probe mode and (when tests/cluster's kube-apiserver and etcd are at hand) with API access
  (EndpointSlice watch, its LLMService's status watch, the 0->1 waker), beside the Go reference's figure.
The budget of DESIGN.md is printed beside each figure. A 2-core VM is noisy: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiohttp

from hearth.common import bundle, durations, eventloop, netaddr
from hearth.gateway import server
from hearth.gateway.front import routing
from hearth.gateway.settings import GatewaySettings
from hearth.gateway.wake.readiness import ManualReadiness
from tests import helpers
from tests.cluster import controlplane

BENCH = Path(__file__).resolve().parent
PORTS = iter(range(21000, 21999))
TICKS = os.sysconf("SC_CLK_TCK")
#: What the warm path sends: a small completion request.
BODY = '{"model":"m","prompt":"hi","max_tokens":1}'
ANSWER = '{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"ok"}]}'
WRK_POST = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""

NGINX_CONF = """
worker_processes 1;
master_process off;
daemon off;
pid {root}/{name}.pid;
error_log {root}/{name}.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 32768; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  {body}
}}
"""
BACKEND_SERVER = """
  server {{
    listen 127.0.0.1:{port} backlog=65535;
    location / {{ default_type application/json; return 200 '{answer}'; }}
  }}
"""
PROXY_SERVER = """
  upstream {name} {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=65535;
    location / {{
      proxy_pass http://{name};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _serving_process(pid: int) -> int:
    """The process doing the work under *pid*: the frozen binary's bootloader (--binary) runs Hearth in its
    one child, and would show next to no CPU of its own."""
    while True:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) != 1:
            return pid
        pid = int(children[0])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def _nginx(root: Path, name: str, body: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    (root / f"{name}.conf").write_text(NGINX_CONF.format(root=root, name=name, body=body))
    process = subprocess.Popen(
        [_nginx_binary(), "-c", str(root / f"{name}.conf"), "-p", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield process
    finally:
        process.terminate()
        process.wait(30)


def _wait_port(port: int) -> None:
    import socket

    for _ in range(300):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


# ---- warm path -------------------------------------------------------------------------------------


_WRK_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_WRK_REQUESTS = re.compile(r"^\s*(\d+) requests in", re.M)


def wrk_report(url: str, *, connections: int, seconds: int, script: Path) -> str:
    """wrk's --latency report of one run of *script* against *url* (errors it counts are printed)."""
    result = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", result.stdout)
    if errors:
        print(f"wrk against {url}: {errors.group(0)}", file=sys.stderr)
    return result.stdout


def _wrk(url: str, *, connections: int, seconds: float, script: Path) -> tuple[int, dict[str, float]]:
    """Requests completed, and latency percentiles in ms (50, 99) from wrk's --latency report."""
    report = wrk_report(url, connections=connections, seconds=int(seconds), script=script)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = {m[0]: float(m[1]) * scale[m[2]] for m in _WRK_LATENCY.findall(report)}
    found = _WRK_REQUESTS.search(report)
    return (int(found.group(1)) if found else 0), latency


def _warm(
    options: argparse.Namespace, targets: dict[str, tuple[str, int]], script: Path
) -> list[tuple[str, str, str]]:
    """wrk against each target: (url, pid of the process whose CPU is counted). The targets take turns for
    ``--rounds`` rounds and each figure is the median of its rounds: a 2-core VM drifts by 10-20 % between
    runs, and interleaving keeps a drift from landing on one target only."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    cpus: dict[str, list[float]] = {name: [] for name in targets}
    p50s: dict[str, list[float]] = {name: [] for name in targets}
    p99s: dict[str, list[float]] = {name: [] for name in targets}
    for url, _ in targets.values():
        _wrk(url, connections=32, seconds=1, script=script)  # warm up: connections, caches
    for _ in range(options.rounds):
        for name, (url, pid) in targets.items():
            before = _cpu_seconds(pid)
            done, _ = _wrk(url, connections=32, seconds=options.seconds, script=script)
            cpus[name].append((_cpu_seconds(pid) - before) / done * 10_000)
            rates[name].append(done / options.seconds)
            _, latency = _wrk(url, connections=1, seconds=options.seconds, script=script)
            p50s[name].append(latency["50"])
            p99s[name].append(latency["99"])
    rate = {name: statistics.median(values) for name, values in rates.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    p50 = {name: statistics.median(values) for name, values in p50s.items()}
    p99 = {name: statistics.median(values) for name, values in p99s.items()}
    # Paired by round (nginx and the gateway measured back to back), then the median of those ratios.
    paired = [g / n for g, n in zip(rates["gateway"], rates["nginx"], strict=True)]
    ratios = ", ".join(f"{ratio:.2f}" for ratio in paired)
    return [
        (
            "throughput at 32 conns: direct / nginx / gateway",
            f"{rate['direct']:.0f} / {rate['nginx']:.0f} / {rate['gateway']:.0f} req/s",
            f"{statistics.median(paired):.2f}x nginx (budget >= 0.3x; rounds: {ratios})",
        ),
        (
            "CPU s per 10k requests: backend / nginx / gateway",
            f"{cpu['direct']:.2f} / {cpu['nginx']:.2f} / {cpu['gateway']:.2f} s",
            f"{cpu['gateway'] / cpu['nginx']:.1f}x nginx (budget <= 1.05 s, half of 2.1 s)",
        ),
        (
            "latency p50 at 1 conn: direct / nginx / gateway",
            f"{p50['direct']:.3f} / {p50['nginx']:.3f} / {p50['gateway']:.3f} ms",
            f"gateway adds {p50['gateway'] - p50['direct']:+.3f} ms, "
            f"nginx {p50['nginx'] - p50['direct']:+.3f}",
        ),
        (
            "latency p99 at 1 conn: direct / nginx / gateway",
            f"{p99['direct']:.3f} / {p99['nginx']:.3f} / {p99['gateway']:.3f} ms",
            f"gateway adds {p99['gateway'] - p99['direct']:+.3f} ms (budget <= +0.5 ms)",
        ),
    ]


async def _token_lateness(url: str, *, streams: int, tokens: int, delay: float) -> list[float]:
    """Per token: how much longer than *delay* after the token before it it arrived (gaps, not the
    distance from an ideal schedule: the backend's own drift must not accumulate into every later token)."""
    lateness: list[float] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(streams):
            async with http.post(
                f"{url}/v1/chat/completions?tokens={tokens}", json={"stream": True}
            ) as answer:
                arrivals = []
                buffer = b""
                async for chunk in answer.content.iter_any():
                    now = time.perf_counter()
                    buffer += chunk
                    while b"\n\n" in buffer:
                        event, buffer = buffer.split(b"\n\n", 1)
                        if event.startswith(b"data: {"):
                            arrivals.append(now)
            lateness.extend(
                max(0.0, later - earlier - delay) for earlier, later in itertools.pairwise(arrivals)
            )
    return lateness


async def _streaming(options: argparse.Namespace, urls: dict[str, str]) -> tuple[str, str, str]:
    late = {
        name: _percentile(await _token_lateness(url, streams=options.streams, tokens=50, delay=0.02), 0.99)
        * 1000
        for name, url in urls.items()
    }
    return (
        "token gap lateness p99: direct / nginx / gateway",
        f"{late['direct']:.2f} / {late['nginx']:.2f} / {late['gateway']:.2f} ms",
        f"gateway {late['gateway'] - late['nginx']:+.2f} ms vs nginx (budget <= +1 ms)",
    )


# ---- cold path -------------------------------------------------------------------------------------


def _client_binary(root: Path) -> Path:
    binary = root / "coldclient"
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(binary), str(BENCH / "coldclient.c")], check=True)
    return binary


async def _cold_one(count: int, *, backend: str, client: str) -> dict[str, float]:
    """One cold run in this process: a fresh gateway (as server.build wires it), *count* clients at once
    from the compiled client, readiness flipped by hand once all are held. Times in seconds."""
    settings = GatewaySettings(
        backend_url=backend,
        listen=netaddr.ListenAddress("127.0.0.1", 0),
        max_queue=count + 10,
        activation_timeout=durations.Duration.parse("5m"),
        drain_delay=durations.Duration(0),
    )
    readiness = ManualReadiness()
    async with server.build(settings, readiness=readiness) as assembly, assembly.serving() as url:
        server.pace_garbage_collection(assembly)  # as server.run does
        table = assembly.gateway.table
        assert isinstance(table, routing.SingleRoute)
        route = table.route
        port = url.rsplit(":", 1)[1]
        await asyncio.sleep(0.3)
        rss_before = _rss_kib(os.getpid())
        process = await asyncio.create_subprocess_exec(
            client, "127.0.0.1", port, str(count), "/v1/completions", stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        start = int((await process.stdout.readline()).split()[1]) / 1e9
        while route.held < count:  # noqa: ASYNC110 - the held counter of the gateway in this loop
            await asyncio.sleep(0.002)
        all_held = time.monotonic()
        rss_held = _rss_kib(os.getpid())
        await asyncio.sleep(0.2)  # let the burst's own work settle: the release must not pay for it
        ready_at = time.monotonic()
        readiness.set_endpoints([backend])
        output = (await process.stdout.read()).decode().split("\n")
        await process.wait()
    firsts = sorted(int(line.split()[1]) / 1e9 - ready_at for line in output if line.startswith("first"))
    dones = sorted(int(line.split()[1]) / 1e9 - ready_at for line in output if line.startswith("done"))
    failed = next(int(line.split()[1]) for line in output if line.startswith("failed"))
    return {
        "accepted_s": all_held - start,
        "rss_per_held_kib": (rss_held - rss_before) / count,
        "first_s": firsts[0],
        "median_s": statistics.median(firsts),
        "last_first_s": firsts[-1],
        "last_done_s": dones[-1],
        "failed": failed,
    }


def _cold(options: argparse.Namespace, *, backend: str, client: Path) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for count in options.held:
        # A fresh process per N: its RSS growth is the held requests', not an earlier run's leftovers.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.gateway",
                "--cold-one",
                str(count),
                "--backend",
                backend,
                "--client",
                str(client),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=BENCH.parent,
        )
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        ms = {key: value * 1000 for key, value in figures.items() if key.endswith("_s")}
        rows.append(
            (
                f"cold {count:>5}: burst accepted+held / RSS per held",
                f"{ms['accepted_s']:.0f} ms / {figures['rss_per_held_kib']:.1f} KiB",
                "budget 5000 in <= 2000 ms / <= 16 KiB",
            )
        )
        rows.append(
            (
                f"cold {count:>5}: ready -> first byte first/median/last; last done",
                f"{ms['first_s']:.1f} / {ms['median_s']:.0f} / {ms['last_first_s']:.0f}; "
                f"{ms['last_done_s']:.0f} ms",
                f"budget first <= 50 ms; failed {figures['failed']}",
            )
        )
    return rows


# ---- memory ----------------------------------------------------------------------------------------

#: What the Go reference gateway holds idle, and the budget (DESIGN.md), in MiB.
GO_IDLE_RSS_MIB = 13
IDLE_RSS_BUDGET_MIB = 40
#: RSS samples, this far apart, that must agree before start-up counts as settled.
SETTLE_INTERVAL_S = 0.5
SETTLE_SAMPLES = 4
SETTLE_LIMIT_S = 30.0


def _settled_rss_kib(pid: int) -> int:
    """The VmRSS of the process serving under *pid* once start-up has settled: the same figure several
    samples in a row (the background loops' first list/watch or probe done), or the last one after
    SETTLE_LIMIT_S."""
    serving = _serving_process(pid)
    samples = [_rss_kib(serving)]
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while time.monotonic() < deadline:
        time.sleep(SETTLE_INTERVAL_S)
        serving = _serving_process(pid)  # the bootloader's child may appear only now
        samples.append(_rss_kib(serving))
        recent = samples[-SETTLE_SAMPLES:]
        if len(recent) == SETTLE_SAMPLES and max(recent) - min(recent) <= 64:
            break
    return samples[-1]


def _memory_row(label: str, kib: int | None, note: str) -> tuple[str, str, str]:
    value = f"{kib / 1024:.1f} MiB" if kib is not None else "-"
    return (
        f"idle RSS, dedicated gateway (frozen), {label}",
        value,
        f"Go reference {GO_IDLE_RSS_MIB} MiB (budget <= {IDLE_RSS_BUDGET_MIB} MiB){note}",
    )


async def _idle_rss_probe(backend: str) -> int:
    async with helpers.running_hearth(
        ["gateway"], executable=(str(helpers.FROZEN_BINARY),), env=_gateway_env(backend)
    ) as gateway:
        return await asyncio.to_thread(_settled_rss_kib, gateway.pid)


async def _idle_rss_with_api(backend: str) -> tuple[int | None, str]:
    """A gateway that watches a real kube-apiserver (tests/cluster), as one in a cluster does."""
    try:
        plane = await asyncio.to_thread(controlplane.start)
    except controlplane.ControlPlaneError as error:
        return None, f"; skipped: {str(error).splitlines()[0]}"
    try:
        await asyncio.to_thread(_with_api_objects, plane)
        env = {
            **_gateway_env(backend),
            "KUBECONFIG": str(plane.kubeconfig),
            "HEARTH_READINESS": "endpointslices",
            "HEARTH_SCALER_MODE": "builtin",
            "HEARTH_NAMESPACE": "bench",
            "HEARTH_BACKEND_SERVICE": "qwen-backend",
            "HEARTH_BACKEND_DEPLOYMENT": "qwen-backend",
            "HEARTH_LLMSERVICE": "qwen",
        }
        async with helpers.running_hearth(
            ["gateway"], executable=(str(helpers.FROZEN_BINARY),), env=env
        ) as gateway:
            return await asyncio.to_thread(_settled_rss_kib, gateway.pid), ""
    finally:
        await asyncio.to_thread(plane.stop)


def _with_api_objects(plane: controlplane.ControlPlane) -> None:
    """The objects a gateway in a cluster watches: its LLMService (with a status to read) and the backend
    Service's EndpointSlice."""
    crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    plane.apply_crds(crds, "llmservices.serving.hearth.dev", "inferenceruntimes.serving.hearth.dev")
    plane.kubectl("create", "namespace", "bench")
    service = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "qwen", "namespace": "bench"},
        "spec": {"model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}}, "runtime": {"name": "vllm"}},
    }
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(service))
    history = {"recentSeconds": [30.0, 50.0], "count": 2, "p50Seconds": 30.0, "p90Seconds": 50.0}
    status = {"status": {"phase": "ScaledToZero", "wakeHistory": history}}
    plane.kubectl(
        "patch",
        "llmservice",
        "qwen",
        "-n",
        "bench",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "qwen-backend-1",
            "namespace": "bench",
            "labels": {"kubernetes.io/service-name": "qwen-backend"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False}}],
    }
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(endpoint_slice))


async def _memory(backend: str) -> list[tuple[str, str, str]]:
    if not helpers.FROZEN_BINARY.exists():
        note = "; skipped: no dist/hearth (bash scripts/build-binary.sh)"
        return [_memory_row("probe mode", None, note), _memory_row("with API", None, note)]
    with_api, note = await _idle_rss_with_api(backend)
    return [
        _memory_row("probe mode", await _idle_rss_probe(backend), ""),
        _memory_row("with API", with_api, note),
    ]


# ---- the run ---------------------------------------------------------------------------------------


async def _run_streaming(options: argparse.Namespace, root: Path) -> tuple[str, str, str]:
    stub_env = {"STUB_LISTEN_ADDR": "127.0.0.1:0", "STUB_TOKEN_DELAY": "20ms"}
    async with helpers.running_hearth(["stub"], env=stub_env) as stub:
        assert stub.url is not None
        stub_port = int(stub.url.rsplit(":", 1)[1])
        proxy_port = next(PORTS)
        proxy = PROXY_SERVER.format(name="stub", backend=stub_port, port=proxy_port)
        with _nginx(root, "nginx-stream", proxy, proxy_port):
            async with helpers.running_hearth(
                ["gateway"], executable=options.executable, env=_gateway_env(stub.url)
            ) as gateway:
                assert gateway.url is not None
                urls = {"direct": stub.url, "nginx": f"http://127.0.0.1:{proxy_port}", "gateway": gateway.url}
                return await _streaming(options, urls)


def _gateway_env(backend: str) -> dict[str, str]:
    return {
        "HEARTH_BACKEND_URL": backend,
        "HEARTH_LISTEN_ADDR": f"127.0.0.1:{next(PORTS)}",
        "HEARTH_READINESS": "probe",
        "HEARTH_DRAIN_DELAY": "0s",
    }


async def main_async(options: argparse.Namespace) -> list[tuple[str, str, str]]:
    root = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    rows: list[tuple[str, str, str]] = []
    backend_port, proxy_port = next(PORTS), next(PORTS)
    backend = f"http://127.0.0.1:{backend_port}"
    script = root / "post.lua"
    script.write_text(WRK_POST)
    try:
        client = _client_binary(root)
        with (
            _nginx(
                root, "backend", BACKEND_SERVER.format(port=backend_port, answer=ANSWER), backend_port
            ) as backend_process,
            _nginx(
                root,
                "proxy",
                PROXY_SERVER.format(name="b", backend=backend_port, port=proxy_port),
                proxy_port,
            ) as proxy_process,
        ):
            if "warm" in options.parts:
                async with helpers.running_hearth(
                    ["gateway"], executable=options.executable, env=_gateway_env(backend)
                ) as gateway:
                    assert gateway.url is not None
                    await asyncio.sleep(1)  # the probe has seen the backend
                    path = "/v1/completions"
                    targets = {
                        "direct": (backend + path, backend_process.pid),
                        "nginx": (f"http://127.0.0.1:{proxy_port}{path}", proxy_process.pid),
                        "gateway": (gateway.url + path, _serving_process(gateway.pid)),
                    }
                    rows.extend(await asyncio.to_thread(_warm, options, targets, script))
            if "stream" in options.parts:
                rows.append(await _run_streaming(options, root))
            if "memory" in options.parts:
                rows.extend(await _memory(backend))
            if "cold" in options.parts:
                rows.extend(await asyncio.to_thread(_cold, options, backend=backend, client=client))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("wrk", "cc") if shutil.which(tool) is None]
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        missing.append("nginx")
    return missing


def _variant(executable: Sequence[str]) -> tuple[str, str]:
    """Which gateway the warm and streaming figures are of: the frozen binary carries its request path
    compiled (hearth.cmd.compiled), ``python -m hearth`` runs it interpreted. The cold path always runs
    interpreted, in a process of the bench's own."""
    info = json.loads(
        subprocess.run([*executable, "version", "-o", "json"], capture_output=True, check=True).stdout
    )
    kind = "frozen dist/hearth" if info["frozen"] else "python -m hearth"
    return kind, f"{len(info['compiled_modules'])} modules compiled by mypyc"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each wrk run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="warm-path rounds (the targets take turns; medians reported)"
    )
    parser.add_argument("--streams", type=int, default=20, help="streams per target for token lateness")
    parser.add_argument(
        "--held",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 1000, 5000, 10000],
        help="held counts of the cold path, comma-separated",
    )
    parser.add_argument("--parts", default="warm,stream,memory,cold", help="which parts to run")
    parser.add_argument(
        "--binary", action="store_true", help="run the frozen dist/hearth instead of python -m hearth"
    )
    parser.add_argument("--cold-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    options = parser.parse_args()
    options.executable = (str(helpers.FROZEN_BINARY),) if options.binary else helpers.PYTHON_HEARTH
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if options.cold_one is not None:
        figures = eventloop.run(_cold_one(options.cold_one, backend=options.backend, client=options.client))
        print(json.dumps(figures))
        return 0
    missing = _missing_tools()
    if missing:
        print(
            f"the bench needs {', '.join(missing)}: apt-get install -y wrk nginx-light gcc", file=sys.stderr
        )
        return 2
    load = os.getloadavg()
    rows = asyncio.run(main_async(options))
    rows.append(("gateway under test (warm, stream)", *_variant(options.executable)))
    rows.append(
        ("load average before / after", f"{load[0]:.2f} / {os.getloadavg()[0]:.2f}", f"{os.cpu_count()} CPUs")
    )
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
