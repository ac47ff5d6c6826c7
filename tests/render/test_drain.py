"""The backend's preStop drain as rendered: UntilIdle (the drain sidecar answering the engine's preStop
httpGet), Sleep (the kubelet's sleep action, the reference's behaviour without a shell), and the cases in
between (no running metric, a numeric or unknown metrics port, a port clash, no drain at all)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from hearth.api import drain, loading
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.cmd import drainer as drainer_command
from hearth.common import durations
from hearth.render import plan
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError

CONFIG = OperatorConfig(gateway_image="hearth.dev/hearth:test")


def _runtime(lifecycle: dict[str, Any] | None, **changes: Any) -> InferenceRuntime:
    spec: dict[str, Any] = {
        "vendor": "generic",
        "container": {"image": "engine:1", "port": {"name": "http", "containerPort": 8000}},
        "accelerator": {"resourceName": "hearth.dev/fake-accelerator"},
        "metrics": {"queueDepth": "vllm:num_requests_waiting", "running": "vllm:num_requests_running"},
    }
    if lifecycle is not None:
        spec["lifecycle"] = lifecycle
    spec.update(changes)
    return InferenceRuntime.model_validate({"metadata": {"name": "engine"}, "spec": spec})


def _pod(
    runtime: InferenceRuntime,
    *,
    drain_timeout: str | None = None,
    config: OperatorConfig = CONFIG,
    uri: str = "hf://Qwen/Qwen3-8B",
) -> dict[str, Any]:
    scaling: dict[str, Any] = {} if drain_timeout is None else {"drainTimeout": drain_timeout}
    document = {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "qwen", "namespace": "ml", "uid": "0b5e7c1e-7b61-4b4b-9d4e-0a6f3c1d2e3f"},
        "spec": {
            "model": {"source": {"uri": uri}},
            "runtime": {"name": "engine"},
            "scaling": scaling,
        },
    }
    service = loading.parse_object(document, source="test")
    assert isinstance(service, LLMService)
    steps = plan.build(service, [runtime], config).steps
    (deployment,) = [
        step.manifest
        for step in steps
        if step.manifest["kind"] == "Deployment" and step.manifest["metadata"]["name"] == "qwen"
    ]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in container["env"]}


def test_until_idle_is_the_default_and_renders_a_native_sidecar_answering_the_prestop() -> None:
    pod = _pod(_runtime({"preStopDrain": True}))
    (sidecar,) = pod["initContainers"]
    assert sidecar["name"] == drain.CONTAINER_NAME
    assert sidecar["restartPolicy"] == "Always", "a native sidecar: alive until the engine has exited"
    assert sidecar["image"] == CONFIG.gateway_image
    assert sidecar["args"] == ["drainer"]
    assert _env(sidecar) == {
        drain.LISTEN_ENV: ":8091",
        drain.METRICS_URL_ENV: "http://127.0.0.1:8000/metrics",
        drain.RUNNING_ENV: "vllm:num_requests_running",
        drain.WAITING_ENV: "vllm:num_requests_waiting",
        drain.TIMEOUT_ENV: "2m0s",
    }
    (engine,) = pod["containers"]
    assert engine["lifecycle"] == {"preStop": {"httpGet": {"path": "/drain", "port": 8091}}}
    assert pod["terminationGracePeriodSeconds"] == 130
    assert pod["automountServiceAccountToken"] is False, "nothing in the pod talks to the API"
    assert pod["shareProcessNamespace"] is True, "the sidecar is not PID 1: an early SIGTERM is not lost"
    assert sidecar["resources"]["limits"]["memory"], "the sidecar is bounded"
    mounts = {mount["name"] for mount in sidecar["volumeMounts"]}
    assert mounts <= {volume["name"] for volume in pod["volumes"]}


def test_sleep_renders_the_kubelets_sleep_action_of_whole_seconds_and_no_sidecar() -> None:
    pod = _pod(_runtime({"preStopDrain": True, "drainMode": "Sleep"}), drain_timeout="45.9s")
    (engine,) = pod["containers"]
    assert engine["lifecycle"] == {"preStop": {"sleep": {"seconds": 45}}}
    assert "initContainers" not in pod
    assert pod["automountServiceAccountToken"] is False, "the engine never talks to the API, sidecar or not"
    assert "shareProcessNamespace" not in pod
    assert pod["terminationGracePeriodSeconds"] == 55


def test_until_idle_without_a_running_metric_sleeps() -> None:
    runtime = _runtime({"preStopDrain": True}, metrics={"queueDepth": "vllm:num_requests_waiting"})
    pod = _pod(runtime, drain_timeout="30s")
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 30}}}
    assert "initContainers" not in pod
    # trtllm-serve exports no Prometheus series by name, so a runtime of that family without metrics sleeps.
    no_metrics = _pod(_runtime({"preStopDrain": True}, metrics=None, family="trtllm"), drain_timeout="30s")
    assert no_metrics["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 30}}}


@pytest.mark.parametrize(
    ("family", "running", "waiting"),
    [
        ("vllm", "vllm:num_requests_running", "vllm:num_requests_waiting"),
        ("sglang", "sglang:num_running_reqs", "sglang:num_queue_reqs"),
        ("llamacpp", "llamacpp:requests_processing", "llamacpp:requests_deferred"),
    ],
)
def test_until_idle_reads_the_family_metrics_when_the_runtime_declares_none(
    family: str, running: str, waiting: str
) -> None:
    runtime = _runtime({"preStopDrain": True}, metrics=None, family=family)
    pod = _pod(runtime, drain_timeout="30s", uri="pvc://models/model.gguf")
    (sidecar,) = pod["initContainers"]
    env = {entry["name"]: entry["value"] for entry in sidecar["env"]}
    assert (env[drain.RUNNING_ENV], env[drain.WAITING_ENV]) == (running, waiting)


def test_no_drain_without_prestop_drain_or_with_a_zero_timeout() -> None:
    for pod in (_pod(_runtime(None)), _pod(_runtime({"preStopDrain": True}), drain_timeout="0s")):
        assert "lifecycle" not in pod["containers"][0]
        assert "initContainers" not in pod
        assert "terminationGracePeriodSeconds" not in pod


def test_a_longer_base_grace_period_is_kept() -> None:
    pod = _pod(_runtime({"preStopDrain": True, "terminationGracePeriodSeconds": 600}))
    assert pod["terminationGracePeriodSeconds"] == 600


def test_a_numeric_metrics_port_and_path_are_read_over_loopback() -> None:
    metrics = {"path": "stats", "port": "9100", "queueDepth": "q", "running": "r"}
    (sidecar,) = _pod(_runtime({"preStopDrain": True}, metrics=metrics))["initContainers"]
    assert _env(sidecar)[drain.METRICS_URL_ENV] == "http://127.0.0.1:9100/stats"


def test_the_sidecar_port_steps_aside_from_the_engines_ports() -> None:
    container = {"image": "engine:1", "port": {"name": "http", "containerPort": drain.DEFAULT_PORT}}
    metrics = {"port": str(drain.DEFAULT_PORT + 1), "queueDepth": "q", "running": "r"}
    pod = _pod(_runtime({"preStopDrain": True}, container=container, metrics=metrics))
    port = drain.DEFAULT_PORT + 2
    assert pod["containers"][0]["lifecycle"]["preStop"]["httpGet"]["port"] == port
    assert _env(pod["initContainers"][0])[drain.LISTEN_ENV] == f":{port}"


def test_a_metrics_port_naming_no_port_fails_render_and_says_how_to_fix_it() -> None:
    metrics = {"port": "prometheus", "queueDepth": "q", "running": "r"}
    with pytest.raises(ReconcileError) as caught:
        _pod(_runtime({"preStopDrain": True}, metrics=metrics))
    assert caught.value.reason is Reason.RENDER
    assert 'metrics.port "prometheus"' in str(caught.value)
    assert "drainMode: Sleep" in str(caught.value)


def test_an_unknown_drain_mode_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="UntilIdle"):
        _runtime({"preStopDrain": True, "drainMode": "Forever"})


def test_the_rendered_sidecar_environment_is_what_the_drainer_command_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (sidecar,) = _pod(_runtime({"preStopDrain": True}), drain_timeout="90s")["initContainers"]
    for name, value in _env(sidecar).items():
        monkeypatch.setenv(name, value)
    context = drainer_command.command.make_context("drainer", [])
    assert isinstance(context, click.Context)
    assert context.params["metrics_url"] == "http://127.0.0.1:8000/metrics"
    assert context.params["running_metric"] == "vllm:num_requests_running"
    assert context.params["waiting_metric"] == "vllm:num_requests_waiting"
    assert context.params["timeout"] == durations.Duration.parse("90s")
    assert context.params["listen"].port == drain.DEFAULT_PORT


def test_with_the_reference_gateway_image_no_sidecar_can_run_so_until_idle_sleeps() -> None:
    # The reference's gateway image has no drainer role: a preStop aimed at it would fail and cut streams.
    reference = OperatorConfig()
    assert reference.drainer_image is None
    runtime = _runtime({"preStopDrain": True})
    pod = _pod(runtime, drain_timeout="30s", config=reference)
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 30}}}
    assert "initContainers" not in pod


# ---- the engine's own drain (lifecycle.engineDrain, issue 32) -----------------------------------------
GOLDEN_DRAIN = Path(__file__).parent / "golden-drain"
UPDATE = os.environ.get("HEARTH_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize(
    "lifecycle",
    [
        {"preStopDrain": True, "engineDrain": True},
        {"preStopDrain": True, "drainMode": "Sleep", "engineDrain": True},
        {"engineDrain": True},
    ],
    ids=["until-idle", "sleep", "engine-only"],
)
def test_the_engines_own_drain_golden(lifecycle: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """vLLM's --shutdown-timeout at drainTimeout beside each preStop (the drain sidecar, the reference's
    sleep, none), and the grace period covering both."""
    pod = _pod(_runtime(lifecycle), drain_timeout="90s")
    (engine,) = pod["containers"]
    shown = {
        "args": engine["args"],
        "lifecycle": engine.get("lifecycle"),
        "initContainers": [each["name"] for each in pod.get("initContainers", [])],
        "terminationGracePeriodSeconds": pod["terminationGracePeriodSeconds"],
    }
    rendered = yaml.safe_dump(shown, sort_keys=False)
    golden = GOLDEN_DRAIN / f"vllm.{request.node.callspec.id}.yaml"
    if UPDATE:
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"{golden.name} differs: review, then HEARTH_UPDATE_GOLDEN=1"


def test_the_engines_drain_is_rendered_at_drain_timeout_and_covered_by_the_grace_period() -> None:
    pod = _pod(_runtime({"preStopDrain": True, "engineDrain": True}))
    (engine,) = pod["containers"]
    assert engine["args"][-1] == "--shutdown-timeout=120"
    assert pod["terminationGracePeriodSeconds"] == 120 + 120 + 10, "the preStop, then the engine's own"
    assert engine["lifecycle"] == {"preStop": {"httpGet": {"path": "/drain", "port": 8091}}}
    without = _pod(_runtime({"preStopDrain": True}))
    assert not any("shutdown" in argument for argument in without["containers"][0]["args"]), "opt-in only"


def test_the_runtimes_own_shutdown_flag_wins_and_no_drain_renders_none() -> None:
    own = _runtime(
        {"engineDrain": True},
        container={
            "image": "engine:1",
            "port": {"name": "http", "containerPort": 8000},
            "args": ["--model=x", "--shutdown-timeout=7"],
        },
    )
    args = _pod(own, drain_timeout="30s")["containers"][0]["args"]
    assert [argument for argument in args if "shutdown" in argument] == ["--shutdown-timeout=7"]
    none = _pod(_runtime({"engineDrain": True}), drain_timeout="0s")
    assert not any("shutdown" in argument for argument in none["containers"][0]["args"])


def test_a_family_without_a_shutdown_flag_is_refused_naming_the_field() -> None:
    with pytest.raises(ReconcileError) as refused:
        _pod(_runtime({"preStopDrain": True, "engineDrain": True}, family="sglang"))
    assert refused.value.reason is Reason.RENDER
    assert "lifecycle.engineDrain" in str(refused.value)
    assert "SGLang" in str(refused.value)
