"""Starting the gateway and the stub on a port that is already taken (issue 17): one line naming the
setting, exit 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PYTHON_HEARTH


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield blocker.getsockname()[1]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("HEARTH_", "STUB_"))}
    return subprocess.run(
        [*PYTHON_HEARTH, *args], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_gateway_on_a_busy_port_exits_2_naming_the_variable(busy_port: int) -> None:
    result = _run(
        ["gateway"],
        {"HEARTH_BACKEND_URL": "http://127.0.0.1:1", "HEARTH_LISTEN_ADDR": f"127.0.0.1:{busy_port}"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        f"HEARTH_LISTEN_ADDR: cannot listen on 127.0.0.1:{busy_port}: address already in use" in result.stderr
    )


def test_the_stub_on_a_busy_port_exits_2_naming_the_setting(busy_port: int) -> None:
    result = _run(["stub"], {"STUB_LISTEN_ADDR": f"127.0.0.1:{busy_port}"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "STUB_LISTEN_ADDR: cannot listen on" in result.stderr


def test_a_shared_gateway_without_api_access_exits_2_saying_it_needs_one(tmp_path: Path) -> None:
    result = _run(
        ["gateway"],
        {
            "HEARTH_LLMGATEWAY": "models",
            "HEARTH_NAMESPACE": "ml",
            "HEARTH_LISTEN_ADDR": "127.0.0.1:0",
            "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
            "KUBERNETES_SERVICE_HOST": "",
        },
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "HEARTH_LLMGATEWAY: a shared gateway needs the Kubernetes API" in result.stderr
