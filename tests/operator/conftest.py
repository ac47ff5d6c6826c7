"""Running ``hearth operator`` as a real process against the test control plane."""

from __future__ import annotations

import contextlib
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hearth.common import bundle
from tests import helpers
from tests.cluster.controlplane import ControlPlane, free_port

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], *, timeout: float = 30, what: str = "condition") -> T:
    """Poll *check* until it returns something truthy (integration tests only; unit tests use fake time)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class OperatorProcess:
    def __init__(self, plane: ControlPlane, log_path: Path, *extra: str, wait: bool = True) -> None:
        self.metrics_port = free_port()
        self.log_path = log_path
        self.hearth = helpers.HearthProcess(
            [
                "operator",
                f"--kubeconfig={plane.kubeconfig}",
                f"--health-probe-bind-address=127.0.0.1:{self.metrics_port}",
                f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
                "--no-metrics-secure",
                "--gateway-image=hearth.dev/hearth:test",
                *extra,
            ],
            env={"POD_NAME": log_path.stem},
            log_path=log_path,
        )
        if wait:
            wait_for(self.ready, timeout=60, what="operator readiness")

    def readyz(self) -> tuple[int, str] | None:
        """(status, body) of /readyz, None while it does not answer."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2
            ) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except OSError:
            return None

    def ready(self) -> bool:
        if self.hearth.returncode is not None:
            raise AssertionError(f"operator exited {self.hearth.returncode}:\n{self.log()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2
            ) as response:
                return bool(response.status == 200)
        return False

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def writes(self) -> float:
        return self.metrics()["hearth_operator_api_writes_total"]

    def log(self) -> str:
        return self.hearth.text(5000)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        return self.hearth.stop(sig, within_s=20)


@pytest.fixture(scope="module")
def hearth_cluster(control_plane: ControlPlane) -> ControlPlane:
    crds = "---\n".join(bundle.read_text("crds", name) for name in bundle.names("crds"))
    control_plane.apply_crds(
        crds,
        "llmservices.serving.hearth.dev",
        "inferenceruntimes.serving.hearth.dev",
        "acceleratorpools.serving.hearth.dev",
        "llmgateways.serving.hearth.dev",
    )
    return control_plane


@pytest.fixture
def start_operator(hearth_cluster: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(*extra: str, name: str = "operator") -> OperatorProcess:
        process = OperatorProcess(hearth_cluster, tmp_path / f"{name}-{len(started)}.log", *extra)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def get_json(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    result = plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None
