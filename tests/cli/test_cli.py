"""The ``hearth`` command line: help is accurate, unfinished roles fail loudly, version reports the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import hearth
from hearth.cmd import main
from hearth.common import bundle

ALL_COMMANDS = [
    "operator",
    "gateway",
    "stub",
    "drainer",
    "install",
    "uninstall",
    "e2e",
    "render",
    "selftest",
    "version",
]


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main.cli, ["--help"])
    assert result.exit_code == 0
    for name in ALL_COMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_every_command_has_help(name: str) -> None:
    result = CliRunner().invoke(main.cli, [name, "--help"])
    assert result.exit_code == 0
    assert f"Usage: hearth {name}" in result.output


def test_version_flag_and_command_agree() -> None:
    assert CliRunner().invoke(main.cli, ["--version"]).output == f"hearth {hearth.__version__}\n"
    assert CliRunner().invoke(main.cli, ["version"]).output == f"hearth {hearth.__version__}\n"


def test_version_json_reports_build_details() -> None:
    result = CliRunner().invoke(main.cli, ["version", "-o", "json"])
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert info["version"] == hearth.__version__
    assert info["frozen"] is False
    assert info["aiohttp_c_parser"] is True, "aiohttp must run with its C HTTP parser"
    assert set(info["bundled"]) == {"crds", "runtimes"}


def test_stub_help_names_every_setting_variable() -> None:
    output = CliRunner().invoke(main.cli, ["stub", "--help"]).output
    for variable in (
        "STUB_LISTEN_ADDR",
        "STUB_STARTUP_DELAY",
        "STUB_TOKEN_COUNT",
        "STUB_TOKEN_DELAY",
        "STUB_READY_GATES_SERVING",
        "HEARTH_LOG_LEVEL",
        "HEARTH_LOG_FORMAT",
    ):
        assert variable in output


RENDER_INPUT = """\
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {name: qwen}
spec:
  model: {source: {uri: hf://Qwen/Qwen3-0.6B}}
  runtime: {selector: {vendor: [generic]}}
"""


def test_render_prints_every_child_in_apply_order(tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(RENDER_INPUT)
    result = CliRunner().invoke(
        main.cli, ["render", "-f", str(manifest), "-n", "ml", "--scaler-mode", "builtin"]
    )
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.output))
    assert [(doc["kind"], doc["metadata"]["name"]) for doc in documents] == [
        ("Deployment", "qwen"),
        ("Service", "qwen-backend"),
        ("ServiceAccount", "qwen-gateway"),
        ("Role", "qwen-gateway"),
        ("RoleBinding", "qwen-gateway"),
        ("Deployment", "qwen-gateway"),
        ("Service", "qwen"),
        ("PersistentVolumeClaim", "qwen-cache"),
    ]
    assert all(doc["metadata"]["namespace"] == "ml" for doc in documents)
    assert documents[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "hearth.dev/vllm-stub:e2e"


SHARED_INPUT = """\
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMGateway
metadata: {name: models}
spec:
  selector: {matchLabels: {endpoint: models}}
---
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {name: qwen, labels: {endpoint: models}}
spec:
  model: {source: {uri: hf://Qwen/Qwen3-0.6B}}
  runtime: {selector: {vendor: [generic]}}
---
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {name: alone}
spec:
  model: {source: {uri: hf://Qwen/Qwen3-0.6B}}
  runtime: {selector: {vendor: [generic]}}
"""


def test_render_an_llmgateway_and_the_services_it_routes(tmp_path: Path) -> None:
    manifest = tmp_path / "shared.yaml"
    manifest.write_text(SHARED_INPUT)
    result = CliRunner().invoke(
        main.cli, ["render", "-f", str(manifest), "-n", "ml", "--scaler-mode", "builtin"]
    )
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.output))
    kinds = [(doc["kind"], doc["metadata"]["name"]) for doc in documents]
    # The routed model has no gateway of its own; the unselected one keeps its dedicated gateway.
    assert ("Deployment", "qwen-gateway") not in kinds
    assert ("Deployment", "alone-gateway") in kinds
    shared = [doc for doc in documents if doc["metadata"]["name"].startswith("models")]
    assert [(doc["kind"], doc["metadata"]["name"]) for doc in shared] == [
        ("ServiceAccount", "models-gateway"),
        ("Role", "models-gateway"),
        ("RoleBinding", "models-gateway"),
        ("Deployment", "models-gateway"),
        ("Service", "models"),
    ]
    assert all(doc["metadata"]["namespace"] == "ml" for doc in documents)
    role = next(doc for doc in shared if doc["kind"] == "Role")
    scaled = {name for rule in role["rules"] for name in rule.get("resourceNames", [])}
    assert "qwen" in scaled, "the shared gateway wakes what it routes"
    assert "alone" not in scaled, "and nothing else"


def test_render_refuses_an_llmgateway_named_like_an_llmservice(tmp_path: Path) -> None:
    manifest = tmp_path / "shared.yaml"
    manifest.write_text(SHARED_INPUT.replace("metadata: {name: models}", "metadata: {name: alone}"))
    result = CliRunner().invoke(main.cli, ["render", "-f", str(manifest), "--scaler-mode", "builtin"])
    assert result.exit_code == 1
    assert "LLMGateway default/alone: " in result.output
    assert "an LLMService named alone exists" in result.output


def test_render_needs_an_llmservice_or_an_llmgateway(tmp_path: Path) -> None:
    manifest = tmp_path / "runtime.yaml"
    manifest.write_text(bundle.read_text("runtimes", bundle.names("runtimes")[0]))
    result = CliRunner().invoke(main.cli, ["render", "-f", str(manifest)])
    assert result.exit_code == 2
    assert "no LLMService or LLMGateway found in the -f files" in result.output


def test_render_shows_the_optional_guards_when_asked(tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(RENDER_INPUT)
    args = ["render", "-f", str(manifest), "--scaler-mode", "builtin", "--gateway-replicas", "2"]
    result = CliRunner().invoke(main.cli, [*args, "--network-policies"])
    assert result.exit_code == 0, result.output
    kinds = [(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(result.output)]
    assert kinds[2] == ("NetworkPolicy", "qwen-backend"), "right after the backend and its Service"
    assert ("PodDisruptionBudget", "qwen-gateway") in kinds


def test_render_json_and_explicit_runtime_file(tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(RENDER_INPUT.replace("selector: {vendor: [generic]}", "name: vllm-nvidia"))
    runtime = tmp_path / "rt.yaml"
    runtime.write_text(bundle.read_text("runtimes", "vllm-nvidia.yaml"))
    args = ["render", "-f", str(manifest), "-r", str(runtime), "-o", "json", "--keda"]
    result = CliRunner().invoke(main.cli, args)
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)["items"]
    assert items[-1]["kind"] == "ScaledObject"


def _rendered_mode(tmp_path: Path, *args: str) -> tuple[str, list[str]]:
    """The HEARTH_SCALER_MODE the gateway gets, and the kinds printed, for `hearth render` with *args*."""
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(RENDER_INPUT)
    result = CliRunner().invoke(main.cli, ["render", "-f", str(manifest), *args])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.output))
    (gateway,) = [
        doc for doc in documents if doc["metadata"]["name"] == "qwen-gateway" and doc["kind"] == "Deployment"
    ]
    env = {
        entry["name"]: entry.get("value")
        for entry in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    return env["HEARTH_SCALER_MODE"], [doc["kind"] for doc in documents]


@pytest.mark.parametrize(
    ("args", "mode", "scaled_object"),
    [
        ([], "builtin", False),  # the operator's default (auto) on a cluster without KEDA
        (["--keda"], "metrics-api", True),  # ... and with KEDA
        (["--scaler-mode=auto", "--no-keda"], "builtin", False),
        (["--scaler-mode=metrics-api"], "metrics-api", True),  # a KEDA mode assumes KEDA unless told
        (["--scaler-mode=external-push"], "external-push", True),
        (["--scaler-mode=metrics-api", "--no-keda"], "metrics-api", False),  # the operator skips it too
        (["--scaler-mode=builtin", "--keda"], "builtin", False),
    ],
)
def test_render_resolves_the_scaler_mode_as_the_operator_would(
    tmp_path: Path, args: list[str], mode: str, scaled_object: bool
) -> None:
    rendered, kinds = _rendered_mode(tmp_path, *args)
    assert rendered == mode
    assert ("ScaledObject" in kinds) is scaled_object


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            RENDER_INPUT.replace("hf://Qwen/Qwen3-0.6B", "gs://bucket/m"),
            "LLMService default/qwen: ModelResolution:",
        ),
        (
            RENDER_INPUT.replace("runtime: {selector: {vendor: [generic]}}", "runtime: {name: nope}"),
            'RuntimeResolution: get InferenceRuntime "nope": not found',
        ),
        (RENDER_INPUT.replace("model:", "modell:"), "spec.modell: Extra inputs are not permitted"),
        ("kind: Pod\nmetadata: {name: x}\n", "kind 'Pod' is not a Hearth kind"),
    ],
)
def test_render_errors_name_the_object_and_reason(tmp_path: Path, text: str, message: str) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(text)
    result = CliRunner().invoke(main.cli, ["render", "-f", str(manifest)])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_render_missing_file_is_a_usage_error() -> None:
    result = CliRunner().invoke(main.cli, ["render", "-f", "/nonexistent.yaml"])
    assert result.exit_code == 2
    assert "cannot read /nonexistent.yaml" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--metrics-bind-address=:8081"],
            "--metrics-bind-address must differ from --health-probe-bind-address",
        ),
        (["--scaler-mode=keda"], "Invalid value for '--scaler-mode'"),
        (["--health-probe-bind-address=8081"], 'invalid listen address "8081"'),
    ],
)
def test_operator_refuses_bad_flags_before_connecting(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main.cli, ["operator", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_operator_version_flag() -> None:
    result = CliRunner().invoke(main.cli, ["operator", "--version"])
    assert result.output == f"hearth {hearth.__version__}\n"


def test_e2e_soak_runs_only_the_soak_and_at_least_a_minute() -> None:
    together = CliRunner().invoke(main.cli, ["e2e", "--soak", "5m", "--scenario", "N1"])
    assert together.exit_code == 2
    assert "--soak runs only the soak" in together.output
    short = CliRunner().invoke(main.cli, ["e2e", "--soak", "30s"])
    assert short.exit_code == 2
    assert "shorter than the minimum" in short.output
