"""The stub as a process: settings from flags and STUB_* variables, and graceful SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import PYTHON_HEARTH, running_hearth, split_sse


async def test_sigterm_lets_an_in_flight_stream_finish_and_refuses_new_connections() -> None:
    env = {"STUB_LISTEN_ADDR": "127.0.0.1:0", "STUB_TOKEN_COUNT": "20", "STUB_TOKEN_DELAY": "50ms"}
    async with running_hearth(["stub"], env=env) as stub, aiohttp.ClientSession() as http:
        async with http.post(f"{stub.url}/v1/chat/completions", json={"stream": True}) as response:
            first = await response.content.readuntil(b"\n\n")
            stub.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)  # let the process act on the signal while the stream is mid-way
            with pytest.raises(aiohttp.ClientConnectionError):
                async with aiohttp.ClientSession() as fresh:
                    await fresh.get(f"{stub.url}/health")
            rest = await response.read()
        events = split_sse(first + rest)
        assert len(events) == 21, "all 20 tokens and [DONE] arrive after SIGTERM"
        assert events[-1] == b"data: [DONE]\n\n"
        assert await stub.wait_async() == 0
    assert any("shutting down" in line for line in stub.log)


async def test_vllm_arguments_set_model_names_and_port() -> None:
    env = {"STUB_LISTEN_ADDR": "127.0.0.1:1"}
    args = [
        "stub",
        "vllm",
        "serve",
        "/models/qwen",
        "--served-model-name",
        "qwen",
        "--port",
        "0",
        "--dtype=auto",
    ]
    async with running_hearth(args, env=env) as stub, aiohttp.ClientSession() as http:
        async with http.get(f"{stub.url}/v1/models") as response:
            document = await response.json()
        assert [(m["id"], m["root"]) for m in document["data"]] == [("qwen", "/models/qwen")]
    assert any("ignoring vLLM options" in line and "--dtype=auto" in line for line in stub.log)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STUB_TOKEN_DELAY": "5x"}, "STUB_TOKEN_DELAY"),
        ({"STUB_STARTUP_DELAY": "15"}, "STUB_STARTUP_DELAY"),
        ({"STUB_TOKEN_COUNT": "many"}, "STUB_TOKEN_COUNT"),
        ({"STUB_TOKEN_COUNT": "0"}, "STUB_TOKEN_COUNT"),
        ({"STUB_LISTEN_ADDR": "8000"}, "STUB_LISTEN_ADDR"),
        ({"STUB_READY_GATES_SERVING": "maybe"}, "STUB_READY_GATES_SERVING"),
        ({"STUB_ALLOCATE_MIB": "-1"}, "STUB_ALLOCATE_MIB"),
        ({"STUB_CRASH_ON_START": "sometimes"}, "STUB_CRASH_ON_START"),
    ],
)
def test_invalid_settings_exit_2_naming_the_variable(env: dict[str, str], named: str) -> None:
    result = subprocess.run(
        [*PYTHON_HEARTH, "stub"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_vllm_arguments_are_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hearth", "stub", "--port", "http"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert '--port must be a number from 0 to 65535, got "http"' in result.stderr


def test_told_to_crash_it_exits_1_at_start_saying_why() -> None:
    result = subprocess.run(
        [*PYTHON_HEARTH, "stub", "--listen", "127.0.0.1:0"],
        env={**os.environ, "STUB_CRASH_ON_START": "true"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "crashing at start, as told" in result.stderr
    assert "Traceback" not in result.stderr


async def test_told_to_allocate_it_holds_that_much_memory_while_it_serves() -> None:
    env = {"STUB_LISTEN_ADDR": "127.0.0.1:0"}
    async with running_hearth(["stub"], env=env) as plain:
        baseline = _rss_mib(plain.pid)
    async with running_hearth(["stub"], env={**env, "STUB_ALLOCATE_MIB": "200"}) as ballasted:
        # 200 MiB more, give or take what each process happened to load besides.
        assert _rss_mib(ballasted.pid) >= baseline + 190


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
