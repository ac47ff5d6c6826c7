"""Gateway benchmark (run by hand: `.venv/bin/python -m bench.gateway`; not part of the tests).

Measures in one run, on this machine, against two baselines: the stub directly, and Debian's nginx as a
reverse proxy in front of the same stub (`apt-get install nginx-light`). Prints one table:
- added latency p50/p99 of small non-streaming requests (sequential), vs direct and vs nginx;
- non-streaming throughput with 32 concurrent clients, as a ratio of nginx's;
- streaming: per-token delay added (p99 of the lateness of each token vs the direct stream), vs nginx;
- memory per held cold request at 1k and 10k held connections (gateway RSS growth / requests);
- wake: from "backend ready" to the first forwarded byte, and the time to release all held requests.
The budget of DESIGN.md is printed beside each ratio. Numbers on a 2-core VM are noisy: run it twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from hearth.common import durations, netaddr
from hearth.gateway import server
from hearth.gateway.readiness import ManualReadiness
from hearth.gateway.settings import GatewaySettings
from tests import helpers
from tests.cluster.controlplane import free_port

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.asynccontextmanager
async def _nginx(command: list[str], port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """nginx, the baseline (hearth processes run with tests.helpers.running_hearth)."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    try:
        yield process
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _latencies(http: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    results = []
    for _ in range(count):
        started = time.perf_counter()
        async with http.post(f"{url}/v1/completions", data=b'{"prompt":"hi"}') as response:
            await response.read()
        results.append(time.perf_counter() - started)
    return results


async def _throughput(url: str, seconds: float, concurrency: int = 32) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with http.post(f"{url}/v1/completions", data=b'{"prompt":"hi"}') as response:
                    await response.read()
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


async def _token_lateness(
    http: aiohttp.ClientSession, url: str, streams: int, tokens: int, delay: float
) -> list[float]:
    """Per token: how much later than the ideal schedule (first token + i * delay) it arrived."""
    lateness: list[float] = []
    for _ in range(streams):
        async with http.post(f"{url}/v1/chat/completions?tokens={tokens}", json={"stream": True}) as response:
            arrivals = []
            buffer = b""
            async for chunk in response.content.iter_any():
                now = time.perf_counter()
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    if event.startswith(b"data: {"):
                        arrivals.append(now)
        first = arrivals[0]
        lateness.extend(max(0.0, at - (first + index * delay)) for index, at in enumerate(arrivals))
    return lateness


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _held_memory(count: int) -> float:
    """KiB of gateway RSS per held cold request, holding *count* connections."""
    env = {
        "HEARTH_BACKEND_URL": "http://127.0.0.1:9",
        "HEARTH_LISTEN_ADDR": "127.0.0.1:0",
        "HEARTH_READINESS": "probe",
        "HEARTH_MAX_QUEUE": str(count + 10),
        "HEARTH_DRAIN_DELAY": "0s",
    }
    async with helpers.running_hearth(["gateway"], env=env) as gateway:
        assert gateway.url is not None
        port = int(gateway.url.rsplit(":", 1)[1])
        await asyncio.sleep(0.5)
        before = _rss_kib(gateway.pid)
        request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        writers = []
        for start in range(0, count, 500):
            batch = await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(500, count - start)))
            )
            for _, writer in batch:
                writer.write(request)
                writers.append(writer)
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                async with http.get(f"http://127.0.0.1:{port}/hearth/queue") as response:
                    if f'"pending":{count}' in await response.text():
                        break
                await asyncio.sleep(0.1)
        after = _rss_kib(gateway.pid)
        for writer in writers:
            writer.transport.abort()
    return (after - before) / count


async def _wake(held: int, backend: str) -> tuple[float, float]:
    """In-process gateway with *held* cold requests: seconds from readiness to the first forwarded byte of a
    lone request, and until every one of the *held* requests has left its hold (is being forwarded)."""
    settings = GatewaySettings(
        backend_url=backend,
        listen=netaddr.ListenAddress("127.0.0.1", 0),
        max_queue=held + 10,
        activation_timeout=durations.Duration.parse("60s"),
        drain_delay=durations.Duration(0),
    )
    readiness = ManualReadiness()
    async with server.build(settings, readiness=readiness) as assembly, assembly.serving() as url:
        gateway = assembly.gateway
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            # 1. One held request: the gateway-attributable delay from readiness to the first forwarded byte.
            lone = asyncio.create_task(http.post(f"{url}/v1/completions?tokens=1", data=b"{}"))
            while gateway.held < 1:  # noqa: ASYNC110 - polling a counter of another task, once per bench
                await asyncio.sleep(0.01)
            ready_at = time.perf_counter()
            readiness.set_endpoints([backend])
            response = await lone
            await response.content.read(1)
            first_byte = time.perf_counter() - ready_at
            await response.read()
            # 2. Many held requests: the time until every hold has ended.
            readiness.set_endpoints([])
            body = b"{}"
            requests = [
                asyncio.create_task(http.post(f"{url}/v1/completions?tokens=1", data=body))
                for _ in range(held)
            ]
            while gateway.held < held:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            ready_at = time.perf_counter()
            readiness.set_endpoints([backend])
            while gateway.held > 0:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            released = time.perf_counter() - ready_at
            for answer in await asyncio.gather(*requests):
                await answer.read()
    return first_byte, released


async def main_async(options: argparse.Namespace) -> list[tuple[str, str, str]]:
    nginx_port = free_port()
    stub_env = {"STUB_LISTEN_ADDR": "127.0.0.1:0", "STUB_TOKEN_DELAY": "20ms"}
    root = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    rows: list[tuple[str, str, str]] = []
    async with helpers.running_hearth(["stub"], env=stub_env) as stub:
        assert stub.url is not None
        stub_url = stub.url
        gateway_env = {
            "HEARTH_BACKEND_URL": stub_url,
            "HEARTH_LISTEN_ADDR": "127.0.0.1:0",
            "HEARTH_READINESS": "probe",
            "HEARTH_DRAIN_DELAY": "0s",
        }
        stub_port = int(stub_url.rsplit(":", 1)[1])
        (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, backend=stub_port, port=nginx_port))
        async with (
            helpers.running_hearth(["gateway"], env=gateway_env) as gateway,
            _nginx([nginx, "-c", str(root / "nginx.conf"), "-p", str(root)], nginx_port),
        ):
            assert gateway.url is not None
            urls = {"direct": stub_url, "gateway": gateway.url, "nginx": f"http://127.0.0.1:{nginx_port}"}
            rows.extend(await _measure(options, urls))
        first, last = await _wake(options.held, stub_url)
        rows.append(
            (
                f"wake: ready -> first byte (one) / all {options.held} released",
                f"{first * 1000:.1f} / {last * 1000:.0f} ms",
                "budget 50 ms / 1000 ms",
            )
        )
    for count in (1000, options.max_held):
        per = await _held_memory(count)
        rows.append((f"memory per held cold request ({count})", f"{per:.1f} KiB", "budget <= 16 KiB"))
    shutil.rmtree(root, ignore_errors=True)
    return rows


async def _measure(options: argparse.Namespace, urls: dict[str, str]) -> list[tuple[str, str, str]]:
    """Latency, throughput and token lateness of each target."""
    rows: list[tuple[str, str, str]] = []
    async with aiohttp.ClientSession() as http:
        for url in urls.values():
            await _latencies(http, url, 50)  # warm up connections
        lat = {name: await _latencies(http, url, options.requests) for name, url in urls.items()}
        p50 = {name: statistics.median(values) * 1000 for name, values in lat.items()}
        p99 = {name: _percentile(values, 0.99) * 1000 for name, values in lat.items()}
        rows.append(
            (
                "latency p50 direct / nginx / gateway",
                f"{p50['direct']:.2f} / {p50['nginx']:.2f} / {p50['gateway']:.2f} ms",
                f"gateway adds {p50['gateway'] - p50['direct']:+.2f} ms (budget +1 ms)",
            )
        )
        rows.append(
            (
                "latency p99 direct / nginx / gateway",
                f"{p99['direct']:.2f} / {p99['nginx']:.2f} / {p99['gateway']:.2f} ms",
                f"gateway adds {p99['gateway'] - p99['direct']:+.2f} ms (budget +5 ms)",
            )
        )
        rate = {name: await _throughput(url, options.seconds) for name, url in urls.items()}
        rows.append(
            (
                "throughput direct / nginx / gateway",
                f"{rate['direct']:.0f} / {rate['nginx']:.0f} / {rate['gateway']:.0f} req/s",
                f"{rate['gateway'] / rate['nginx']:.2f}x nginx (budget >= 0.5x)",
            )
        )
        late = {
            name: _percentile(await _token_lateness(http, url, options.streams, 50, 0.02), 0.99) * 1000
            for name, url in urls.items()
        }
        rows.append(
            (
                "token lateness p99 direct / nginx / gateway",
                f"{late['direct']:.2f} / {late['nginx']:.2f} / {late['gateway']:.2f} ms",
                f"gateway {late['gateway'] / max(late['nginx'], 0.001):.2f}x nginx (budget <= 2x)",
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=2000, help="sequential requests per target for latency"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--streams", type=int, default=20, help="streams per target for token lateness")
    parser.add_argument(
        "--held", type=int, default=5000, help="held requests released at once for the wake test"
    )
    parser.add_argument("--max-held", type=int, default=9000, help="held connections for the memory test")
    options = parser.parse_args()
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        print("nginx is the baseline: apt-get install -y nginx-light", file=sys.stderr)
        return 2
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = asyncio.run(main_async(options))
    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
