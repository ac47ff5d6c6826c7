"""``hearth gateway`` as a process: settings from the environment, graceful SIGTERM, mass disconnects."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess

import aiohttp
import pytest

from tests.gateway.conftest import running_stub, seconds
from tests.helpers import PYTHON_HEARTH, running_hearth, split_sse


def _env(backend: str, **extra: str) -> dict[str, str]:
    return {
        "HEARTH_BACKEND_URL": backend,
        "HEARTH_LISTEN_ADDR": "127.0.0.1:0",
        "HEARTH_READINESS": "probe",
        **extra,
    }


async def _wait_warm(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(100):
        async with http.post(f"{url}/v1/completions", json={}) as response:
            if response.status == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway never saw the backend ready")


async def test_sigterm_with_50_open_streams_loses_none() -> None:
    async with running_stub(token_count=30, token_delay=seconds("50ms")) as stub:
        env = _env(stub, HEARTH_DRAIN_DELAY="500ms", HEARTH_SHUTDOWN_TIMEOUT="20s")
        async with running_hearth(["gateway"], env=env) as gateway, aiohttp.ClientSession() as http:
            await _wait_warm(http, gateway.url)
            streams = [
                await http.post(f"{gateway.url}/v1/chat/completions", json={"stream": True})
                for _ in range(50)
            ]
            firsts = [await stream.content.readuntil(b"\n\n") for stream in streams]
            gateway.send_signal(signal.SIGTERM)
            await gateway.wait_for_line_async("shutting down")  # logged as the drain starts
            async with http.get(f"{gateway.url}/healthz") as response:
                assert response.status == 503, "readiness fails as soon as the drain starts"
            bodies = await asyncio.gather(*(stream.read() for stream in streams))
            for first, rest in zip(firsts, bodies, strict=True):
                events = split_sse(first + rest)
                assert len(events) == 31
                assert events[-1] == b"data: [DONE]\n\n"
            assert await gateway.wait_async() == 0
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(f"{gateway.url}/healthz")


async def test_10k_simultaneous_disconnects_produce_no_traceback_flood() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = min(10_000, hard - 1000)  # the gateway is another process, with its own descriptor limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env = _env("http://127.0.0.1:9", HEARTH_MAX_QUEUE=str(count + 100), HEARTH_DRAIN_DELAY="0s")
    try:
        async with running_hearth(["gateway"], env=env) as gateway, aiohttp.ClientSession() as http:
            host, port = gateway.url.removeprefix("http://").split(":")
            request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            writers = []
            for start in range(0, count, 500):
                batch = await asyncio.gather(
                    *(asyncio.open_connection(host, int(port)) for _ in range(min(500, count - start)))
                )
                for _, writer in batch:
                    writer.write(request)
                writers.extend(writer for _, writer in batch)

            async def metric(name: str) -> float:
                async with http.get(f"{gateway.url}/metrics") as response:
                    for line in (await response.text()).splitlines():
                        if line.startswith(name + " "):
                            return float(line.rsplit(" ", 1)[1])
                return 0.0

            for _ in range(600):
                if await metric("hearth_gateway_pending") == count:
                    break
                await asyncio.sleep(0.1)
            assert await metric("hearth_gateway_pending") == count, "every connection is held"
            for writer in writers:
                writer.transport.abort()
            for _ in range(600):
                if await metric("hearth_gateway_pending") == 0:
                    break
                await asyncio.sleep(0.1)
            assert await metric("hearth_gateway_pending") == 0, "every slot is released"
            assert await metric("hearth_gateway_client_disconnects_total") == count
            assert await metric('hearth_gateway_rejections_total{reason="activation_timeout"}') == 0
        log = "".join(gateway.log)
        assert "Traceback" not in log
        assert len(gateway.log) < 40, f"{len(gateway.log)} log lines for {count} disconnects"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "HEARTH_BACKEND_URL is required"),
        ({"HEARTH_BACKEND_URL": "backend:80"}, "must start with http://"),
        ({"HEARTH_BACKEND_URL": "http://b", "HEARTH_ACTIVATION_TIMEOUT": "5x"}, "HEARTH_ACTIVATION_TIMEOUT"),
        ({"HEARTH_BACKEND_URL": "http://b", "HEARTH_HEARTBEAT_INTERVAL": "10"}, "HEARTH_HEARTBEAT_INTERVAL"),
        ({"HEARTH_BACKEND_URL": "http://b", "HEARTH_MAX_QUEUE": "lots"}, "HEARTH_MAX_QUEUE"),
        ({"HEARTH_BACKEND_URL": "http://b", "HEARTH_LISTEN_ADDR": "8080"}, "HEARTH_LISTEN_ADDR"),
        ({"HEARTH_BACKEND_URL": "http://b", "HEARTH_SCALER_MODE": "keda"}, "HEARTH_SCALER_MODE"),
    ],
)
def test_bad_settings_exit_2_naming_the_variable(env: dict[str, str], message: str) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("HEARTH_")}
    result = subprocess.run(
        [*PYTHON_HEARTH, "gateway"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
