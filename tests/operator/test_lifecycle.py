"""The operator process owns every task it starts: stopping it leaves none behind, and a task that dies of
an unexpected error stops the operator with that error logged instead of being lost. The operator runs
in-process (so its tasks are visible) against the real test apiserver."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hearth.common import netaddr
from hearth.operator import app
from hearth.operator.reconcile import controller
from hearth.operator.settings import OperatorSettings
from tests.cluster.controlplane import ControlPlane, free_port

KEDA_CRD = Path(__file__).parent / "keda-crd.yaml"


def _settings(plane: ControlPlane, port: int) -> OperatorSettings:
    address = netaddr.ListenAddress.parse(f"127.0.0.1:{port}")
    return OperatorSettings(
        kubeconfig=str(plane.kubeconfig),
        health_address=address,
        metrics_address=address,
        metrics_secure=False,
        gateway_image="hearth.dev/hearth:test",
    )


def _new_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task not in before and task is not asyncio.current_task()}


async def _until_metric(port: int, line: str, *, operator: asyncio.Task[int]) -> None:
    """Poll the in-process operator's metrics page (it waits on the real apiserver) until *line* shows."""
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert not operator.done(), "the operator stopped early"
            try:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    if line in (await response.text()).splitlines():
                        return
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            await asyncio.sleep(0.1)
    raise AssertionError(f"the operator's metrics never showed {line!r}")


@pytest.fixture
def keda_installed(hearth_cluster: ControlPlane) -> Iterator[None]:
    hearth_cluster.kubectl("apply", "-f", "-", stdin=KEDA_CRD.read_text())
    hearth_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/scaledobjects.keda.sh", "--timeout=30s"
    )
    yield
    hearth_cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "--ignore-not-found", check=False)


@pytest.mark.usefixtures("keda_installed")
async def test_stopping_the_operator_cancels_and_awaits_every_task_it_started(
    hearth_cluster: ControlPlane,
) -> None:
    port = free_port()
    stop = asyncio.Event()
    before = asyncio.all_tasks()
    operator = asyncio.create_task(app.run(_settings(hearth_cluster, port), stop=stop))
    # Once KEDA is seen, the operator has started every kind of task, the ScaledObject informer included.
    await _until_metric(port, "hearth_operator_keda_installed 1.0", operator=operator)
    await _until_metric(port, "hearth_operator_leader 1.0", operator=operator)
    stop.set()
    assert await asyncio.wait_for(operator, 60) == 0
    left = {task.get_name(): task.get_coro() for task in _new_tasks(before) if not task.done()}
    assert left == {}, "tasks still pending after the operator returned"


async def test_a_background_task_that_crashes_stops_the_operator_with_its_error_logged(
    hearth_cluster: ControlPlane, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A fault the apiserver's validation never lets through: an informer handler that raises.
    def crash(self: controller.Controller, _kind: str, obj: dict[str, Any]) -> None:
        raise RuntimeError(f"handler crashed on {obj['metadata']['name']}")

    monkeypatch.setattr(controller.Controller, "_on_service", crash)
    namespace = f"life-{uuid.uuid4().hex[:8]}"
    hearth_cluster.kubectl("create", "namespace", namespace)
    try:
        hearth_cluster.kubectl(
            "apply",
            "-f",
            "-",
            stdin=f"""
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {{name: doomed, namespace: {namespace}}}
spec:
  model: {{source: {{uri: hf://Qwen/Qwen3-0.6B}}}}
  runtime: {{name: any}}
""",
        )
        before = asyncio.all_tasks()
        with caplog.at_level(logging.ERROR, logger=app.__name__):
            code = await asyncio.wait_for(app.run(_settings(hearth_cluster, free_port())), 60)
    finally:
        hearth_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    assert code == 1
    failures = [record for record in caplog.records if "background task" in record.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "handler crashed on" in "".join(logging.Formatter().formatException(failures[0].exc_info))
    assert not [task for task in _new_tasks(before) if not task.done()]
