"""Every setting of ``hearth gateway`` and ``hearth stub``, table-driven through the real command line: a
valid value becomes the typed setting, an invalid one exits 2 naming the flag and the variable, and the
gateway's settings are declared once (``hearth.api.gatewayenv``) for parsing, ``--help`` and rendering."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hearth.api import drain, gatewayenv, modeluri
from hearth.api.scalermodes import ScalerMode
from hearth.cmd import main
from hearth.cmd import stub as stub_command
from hearth.common import durations, netaddr
from hearth.gateway import server as gateway_server
from hearth.gateway import settings as gateway_settings
from hearth.stub import server as stub_server
from hearth.stub.settings import StubSettings
from tests.helpers import REPO

BACKEND = {"HEARTH_BACKEND_URL": "http://backend:80"}
#: With a namespace too, so a shared gateway's setting (HEARTH_LLMGATEWAY needs one) runs as well.
ANY_GATEWAY = {**BACKEND, "HEARTH_NAMESPACE": "default"}
LOGGING_VARIABLES = {"HEARTH_LOG_LEVEL", "HEARTH_LOG_FORMAT"}
DECLARED = {setting.env for setting in gatewayenv.SETTINGS}


def _seconds(text: str) -> durations.Duration:
    return durations.Duration.parse(text)


def _clean_env(variables: dict[str, str]) -> dict[str, str | None]:
    """Exactly *variables*: every other variable a command reads is unset for the run."""
    unset: dict[str, str | None] = dict.fromkeys(DECLARED | LOGGING_VARIABLES)
    unset.update(dict.fromkeys(_stub_variables()))
    return {**unset, **variables}


def _stub_variables() -> set[str]:
    return {name for param in stub_command.command.params for name in _envvars(param)}


def _envvars(param: Any) -> list[str]:
    envvar = getattr(param, "envvar", None)
    if envvar is None:
        return []
    return [envvar] if isinstance(envvar, str) else list(envvar)


@pytest.fixture
def gateway_runs(monkeypatch: pytest.MonkeyPatch) -> list[gateway_settings.GatewaySettings]:
    """The settings ``hearth gateway`` would serve with (the server itself is not started)."""
    started: list[gateway_settings.GatewaySettings] = []

    async def run(settings: gateway_settings.GatewaySettings) -> None:
        started.append(settings)

    monkeypatch.setattr(gateway_server, "run", run)
    return started


@pytest.fixture
def stub_runs(monkeypatch: pytest.MonkeyPatch) -> list[StubSettings]:
    started: list[StubSettings] = []
    monkeypatch.setattr(stub_server, "run", started.append)
    return started


def _gateway(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main.cli, ["gateway", *args], env=_clean_env(env))


# (variable, text, field, expected value)
GATEWAY_VALID: list[tuple[str, str, str, object]] = [
    (
        "HEARTH_BACKEND_URL",
        "https://qwen-backend.ml.svc:80/",
        "backend_url",
        "https://qwen-backend.ml.svc:80",
    ),
    ("HEARTH_LISTEN_ADDR", "127.0.0.1:9000", "listen", netaddr.ListenAddress("127.0.0.1", 9000)),
    ("HEARTH_SCALER_LISTEN_ADDR", ":9090", "scaler_listen", netaddr.ListenAddress(None, 9090)),
    ("HEARTH_SCALER_TLS_DIR", "/etc/hearth/scaler-tls", "scaler_tls_dir", "/etc/hearth/scaler-tls"),
    ("HEARTH_PEERS_SERVICE", "qwen", "peers_service", "qwen"),
    ("HEARTH_MAX_QUEUE", "7", "max_queue", 7),
    ("HEARTH_MAX_QUEUE", "0", "max_queue", 100),
    ("HEARTH_MAX_QUEUE", "-3", "max_queue", 100),
    ("HEARTH_ACTIVATION_TIMEOUT", "90s", "activation_timeout", _seconds("90s")),
    ("HEARTH_ACTIVATION_TIMEOUT", "0s", "activation_timeout", _seconds("5m")),
    ("HEARTH_ACTIVATION_TIMEOUT", "-1m", "activation_timeout", _seconds("5m")),
    ("HEARTH_COLDSTART_MODE", "reject", "cold_start_mode", gateway_settings.ColdStartMode.REJECT),
    ("HEARTH_COLDSTART_MODE", "keepalive", "cold_start_mode", gateway_settings.ColdStartMode.KEEPALIVE),
    ("HEARTH_HEARTBEAT_INTERVAL", "2s", "heartbeat_interval", _seconds("2s")),
    ("HEARTH_HEARTBEAT_INTERVAL", "0s", "heartbeat_interval", _seconds("10s")),
    ("HEARTH_PROGRESS_INTERVAL", "2s", "progress_interval", _seconds("2s")),
    ("HEARTH_PROGRESS_INTERVAL", "0s", "progress_interval", _seconds("0s")),
    ("HEARTH_NAMESPACE", "ml", "namespace", "ml"),
    ("HEARTH_BACKEND_SERVICE", "qwen-backend", "backend_service", "qwen-backend"),
    ("HEARTH_BACKEND_DEPLOYMENT", "qwen", "backend_deployment", "qwen"),
    ("HEARTH_LLMSERVICE", "qwen", "llmservice", "qwen"),
    ("HEARTH_SCALER_MODE", "builtin", "scaler_mode", ScalerMode.BUILTIN),
    ("HEARTH_SCALER_MODE", "external-push", "scaler_mode", ScalerMode.EXTERNAL_PUSH),
    ("HEARTH_READINESS", "probe", "readiness", "probe"),
    ("HEARTH_MODEL_NAME", "qwen", "model_name", "qwen"),
    ("HEARTH_MAX_BODY_BYTES", "1024", "max_body_bytes", 1024),
    ("HEARTH_MAX_BUFFERED_BYTES", "2048", "max_buffered_bytes", 2048),
    ("HEARTH_BODY_TIMEOUT", "5s", "body_timeout", _seconds("5s")),
    ("HEARTH_READINESS_PATH", "/v1/models", "readiness_path", "/v1/models"),
    ("HEARTH_STREAM_RULE", "strict", "stream_rule", "strict"),
    ("HEARTH_UPSTREAM_AFTER_STREAM", "close", "upstream_after_stream", "close"),
    ("HEARTH_SHUTDOWN_TIMEOUT", "3s", "shutdown_timeout", _seconds("3s")),
    ("HEARTH_DRAIN_DELAY", "0s", "drain_delay", _seconds("0s")),
    ("HEARTH_DRAIN_DELAY", "750ms", "drain_delay", _seconds("750ms")),
    ("HEARTH_LISTEN_BACKLOG", "8192", "listen_backlog", 8192),
    ("HEARTH_RELEASE_WAVE", "16", "release_wave", 16),
    ("HEARTH_API_KEYS_DIR", "/etc/hearth/api-keys", "api_keys_dir", "/etc/hearth/api-keys"),
    ("HEARTH_API_KEY_FILE", "/etc/hearth/api-key/api-key", "api_key_file", "/etc/hearth/api-key/api-key"),
    ("HEARTH_LLMGATEWAY", "models", "llmgateway", "models"),
    ("HEARTH_API_KEY_SETS_DIR", "/etc/hearth/api-key-sets", "api_key_sets_dir", "/etc/hearth/api-key-sets"),
    (
        "HEARTH_FALLBACK_BASE_URL",
        "http://small.ml.svc/v1/",
        "fallback_base_url",
        "http://small.ml.svc/v1",
    ),
    ("HEARTH_FALLBACK_MODEL", "small", "fallback_model", "small"),
    ("HEARTH_FALLBACK_WHILE_COLD", "AfterHold", "fallback_while_cold", "AfterHold"),
    ("HEARTH_FALLBACK_HOLD", "20s", "fallback_hold", _seconds("20s")),
    ("HEARTH_FALLBACK_WHEN_FULL", "false", "fallback_when_full", "false"),
    ("HEARTH_FALLBACK_API_KEY", "sk-fallback", "fallback_api_key", "sk-fallback"),
]

# (variable, text, what the message says besides the flag and the variable); a variable without an
# invalid value (free text) is listed in GATEWAY_FREE_TEXT instead.
GATEWAY_INVALID: list[tuple[str, str, str]] = [
    ("HEARTH_BACKEND_URL", "backend:80", "must start with http://"),
    ("HEARTH_LISTEN_ADDR", "8080", "8080"),
    ("HEARTH_SCALER_LISTEN_ADDR", "grpc", "grpc"),
    ("HEARTH_MAX_QUEUE", "lots", "not a whole number"),
    ("HEARTH_ACTIVATION_TIMEOUT", "5x", "5x"),
    ("HEARTH_COLDSTART_MODE", "Reject", "not one of keepalive, reject"),
    ("HEARTH_COLDSTART_MODE", "hold", "not one of keepalive, reject"),
    ("HEARTH_HEARTBEAT_INTERVAL", "10", "10"),
    ("HEARTH_PROGRESS_INTERVAL", "-1s", "less than 0s"),
    ("HEARTH_PROGRESS_INTERVAL", "often", "often"),
    ("HEARTH_SCALER_MODE", "keda", "not one of metrics-api, external-push, builtin"),
    ("HEARTH_READINESS", "always", "not one of auto, endpointslices, probe"),
    ("HEARTH_MAX_BODY_BYTES", "0", "less than 1"),
    ("HEARTH_MAX_BODY_BYTES", "64Mi", "not a whole number"),
    ("HEARTH_MAX_BUFFERED_BYTES", "0", "less than 1"),
    ("HEARTH_BODY_TIMEOUT", "0s", "less than 1ns"),
    ("HEARTH_BODY_TIMEOUT", "a minute", "a minute"),
    ("HEARTH_READINESS_PATH", "health", "must be a URL path"),
    ("HEARTH_STREAM_RULE", "json", "not one of lax, strict"),
    ("HEARTH_UPSTREAM_AFTER_STREAM", "keep", "not one of reuse, close"),
    ("HEARTH_READINESS_PATH", "/he alth", "must be a URL path"),
    ("HEARTH_SHUTDOWN_TIMEOUT", "-1s", "less than 0s"),
    ("HEARTH_SHUTDOWN_TIMEOUT", "soon", "soon"),
    ("HEARTH_DRAIN_DELAY", "-5s", "less than 0s"),
    ("HEARTH_LISTEN_BACKLOG", "0", "less than 1"),
    ("HEARTH_LISTEN_BACKLOG", "big", "not a whole number"),
    ("HEARTH_RELEASE_WAVE", "0", "less than 1"),
    ("HEARTH_FALLBACK_BASE_URL", "small.ml.svc", "must start with http://"),
    ("HEARTH_FALLBACK_WHILE_COLD", "immediately", "not one of Immediately, AfterHold, Never"),
    ("HEARTH_FALLBACK_HOLD", "-1s", "less than 0s"),
    ("HEARTH_FALLBACK_WHEN_FULL", "yes", "not one of true, false"),
    ("HEARTH_LOG_LEVEL", "verbose", "verbose"),
    ("HEARTH_LOG_FORMAT", "xml", "xml"),
]
GATEWAY_FREE_TEXT = {
    "HEARTH_NAMESPACE",
    "HEARTH_BACKEND_SERVICE",
    "HEARTH_BACKEND_DEPLOYMENT",
    "HEARTH_LLMSERVICE",
    "HEARTH_MODEL_NAME",
    "HEARTH_API_KEYS_DIR",
    "HEARTH_API_KEY_FILE",
    "HEARTH_SCALER_TLS_DIR",
    "HEARTH_PEERS_SERVICE",
    "HEARTH_LLMGATEWAY",
    "HEARTH_API_KEY_SETS_DIR",
    "HEARTH_FALLBACK_MODEL",
    "HEARTH_FALLBACK_API_KEY",
}


def _flag_of(variable: str) -> str:
    for setting in gatewayenv.SETTINGS:
        if setting.env == variable:
            return setting.flag
    return "--" + variable.removeprefix("HEARTH_").lower().replace("_", "-")


def test_the_tables_cover_every_gateway_setting() -> None:
    assert {row[0] for row in GATEWAY_VALID} == DECLARED
    assert {row[0] for row in GATEWAY_INVALID} | GATEWAY_FREE_TEXT == DECLARED | LOGGING_VARIABLES


@pytest.mark.parametrize(("variable", "text", "field", "expected"), GATEWAY_VALID)
def test_a_valid_gateway_variable_becomes_its_setting(
    gateway_runs: list[gateway_settings.GatewaySettings],
    variable: str,
    text: str,
    field: str,
    expected: object,
) -> None:
    result = _gateway({**ANY_GATEWAY, variable: text})
    assert result.exit_code == 0, result.output
    (settings,) = gateway_runs
    assert getattr(settings, field) == expected


@pytest.mark.parametrize(("variable", "text", "field", "expected"), GATEWAY_VALID)
def test_a_flag_sets_the_same_setting_as_its_variable(
    gateway_runs: list[gateway_settings.GatewaySettings],
    variable: str,
    text: str,
    field: str,
    expected: object,
) -> None:
    result = _gateway(ANY_GATEWAY, f"{_flag_of(variable)}={text}")
    assert result.exit_code == 0, result.output
    assert getattr(gateway_runs[0], field) == expected


@pytest.mark.parametrize(("variable", "text", "message"), GATEWAY_INVALID)
def test_an_invalid_gateway_variable_exits_2_naming_flag_and_variable(
    gateway_runs: list[gateway_settings.GatewaySettings], variable: str, text: str, message: str
) -> None:
    result = _gateway({**BACKEND, variable: text})
    assert result.exit_code == 2
    assert f"'{_flag_of(variable)}'" in result.output
    assert f"'{variable}'" in result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert gateway_runs == [], "the gateway never starts"


@pytest.mark.parametrize(("variable", "text", "message"), GATEWAY_INVALID)
def test_an_invalid_gateway_flag_exits_2_naming_flag_and_variable(
    variable: str, text: str, message: str
) -> None:
    result = _gateway(ANY_GATEWAY, f"{_flag_of(variable)}={text}")
    assert result.exit_code == 2
    assert f"'{_flag_of(variable)}'" in result.output
    assert f"'{variable}'" in result.output
    assert message in result.output


def test_a_missing_backend_url_exits_2_naming_flag_and_variable(
    gateway_runs: list[gateway_settings.GatewaySettings],
) -> None:
    for env in ({}, {"HEARTH_BACKEND_URL": "   "}):
        result = _gateway(env)
        assert result.exit_code == 2
        assert "HEARTH_BACKEND_URL is required" in result.output
        assert "--backend-url" in result.output
    assert gateway_runs == []


def test_a_shared_gateway_needs_no_backend_url_but_its_namespace(
    gateway_runs: list[gateway_settings.GatewaySettings],
) -> None:
    result = _gateway({"HEARTH_LLMGATEWAY": "models"})
    assert result.exit_code == 2
    assert "HEARTH_NAMESPACE is required with HEARTH_LLMGATEWAY" in result.output
    assert _gateway({"HEARTH_LLMGATEWAY": "models", "HEARTH_NAMESPACE": "ml"}).exit_code == 0
    (settings,) = gateway_runs
    assert (settings.llmgateway, settings.namespace, settings.backend_url) == ("models", "ml", None)


def test_api_keys_come_from_one_place(gateway_runs: list[gateway_settings.GatewaySettings]) -> None:
    env = {
        "HEARTH_BACKEND_URL": "http://b",
        "HEARTH_API_KEYS_DIR": "/etc/hearth/api-keys",
        "HEARTH_API_KEY_FILE": "/etc/hearth/api-key/api-key",
    }
    result = _gateway(env)
    assert result.exit_code == 2
    assert "--api-keys-dir and --api-key-file: API keys come from one place" in result.output
    assert gateway_runs == []


def test_defaults_are_the_declared_ones(gateway_runs: list[gateway_settings.GatewaySettings]) -> None:
    assert _gateway(BACKEND).exit_code == 0
    (settings,) = gateway_runs
    for setting in gatewayenv.SETTINGS:
        if setting.required or setting.required_unless:
            continue
        declared = setting.default_value()
        value = getattr(settings, setting.field)
        assert (str(value) if isinstance(value, ScalerMode | gateway_settings.ColdStartMode) else value) == (
            declared
        ), setting.env
    assert settings.max_queue == 100
    assert settings.activation_timeout == _seconds("5m")
    assert settings.heartbeat_interval == _seconds("10s")
    assert settings.cold_start_mode is gateway_settings.ColdStartMode.KEEPALIVE
    assert settings.listen == netaddr.ListenAddress(None, 8080)
    assert settings.scaler_listen is None


def test_the_settings_object_has_exactly_the_declared_fields() -> None:
    fields = {field.name for field in dataclasses.fields(gateway_settings.GatewaySettings)}
    assert fields == {setting.field for setting in gatewayenv.SETTINGS}


def test_the_declared_scaler_modes_are_scaler_modes() -> None:
    assert {ScalerMode(choice) for choice in gatewayenv.SCALER_MODE.choices} <= set(ScalerMode)


def _help_variables(command: str) -> set[str]:
    output = CliRunner().invoke(main.cli, [command, "--help"], terminal_width=400).output
    return set(re.findall(r"\b((?:HEARTH|STUB)_[A-Z_]+)\b", output))


def test_gateway_help_lists_every_variable_the_gateway_reads() -> None:
    assert _help_variables("gateway") == DECLARED | LOGGING_VARIABLES


def test_gateway_help_says_where_a_value_at_or_below_zero_means_the_default() -> None:
    output = CliRunner().invoke(main.cli, ["gateway", "--help"], terminal_width=400).output
    lenient = [line for line in output.splitlines() if "<= 0 means the default" in line]
    assert len(lenient) == 3
    for variable in ("HEARTH_MAX_QUEUE", "HEARTH_ACTIVATION_TIMEOUT", "HEARTH_HEARTBEAT_INTERVAL"):
        assert any(variable in line for line in lenient), variable


ENV_READ = re.compile(r"\benviron\b|\bgetenv\b|[\"']HEARTH_[A-Z_]+[\"']")


def test_the_gateway_reads_no_variable_outside_the_declaration() -> None:
    """A new ``os.environ``/``getenv`` read or a variable name written in the gateway's code (instead of
    declared in hearth.api.gatewayenv) fails here."""
    sources = [*sorted((REPO / "hearth" / "gateway").rglob("*.py")), REPO / "hearth" / "cmd" / "gateway.py"]
    offending = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ENV_READ.search(line)
    ]
    assert offending == []


def test_the_operator_renders_only_declared_gateway_variables() -> None:
    golden = Path(REPO / "tests" / "render" / "golden")
    rendered = {
        name
        for path in golden.glob("*.yaml")
        for name in re.findall(r"name: (HEARTH_[A-Z_]+)", path.read_text())
    }
    assert rendered, "the goldens render gateway variables"
    # The backend's drain sidecar has its own declared variables (hearth.api.drain; tests/render/test_drain.py
    # checks that `hearth drainer` reads them).
    sidecar = {name for name in rendered if name.startswith("HEARTH_DRAINER_")}
    assert sidecar <= {value for key, value in vars(drain).items() if key.endswith("_ENV")}
    # The model fetch containers' (`hearth fetch`): the plain-file model cache (hearth.api.modeluri).
    fetch = {modeluri.MODEL_CACHE_ENV} & rendered
    assert rendered - sidecar - fetch <= DECLARED
    render_source = (REPO / "hearth" / "render" / "gateway.py").read_text()
    assert re.findall(r"[\"']HEARTH_[A-Z_]+[\"']", render_source) == [], "names come from the declaration"


# ---- hearth stub ---------------------------------------------------------------------------------------

# (variable, text, field, expected)
STUB_VALID: list[tuple[str, str, str, object]] = [
    ("STUB_LISTEN_ADDR", "127.0.0.1:8001", "listen", netaddr.ListenAddress("127.0.0.1", 8001)),
    ("STUB_STARTUP_DELAY", "15s", "startup_delay", _seconds("15s")),
    ("STUB_TOKEN_COUNT", "4", "token_count", 4),
    ("STUB_TOKEN_DELAY", "5ms", "token_delay", _seconds("5ms")),
    ("STUB_READY_GATES_SERVING", "true", "ready_gates_serving", True),
    ("STUB_READY_GATES_SERVING", "0", "ready_gates_serving", False),
    ("STUB_SHUTDOWN_TIMEOUT", "2s", "shutdown_timeout", _seconds("2s")),
    ("STUB_CRASH_ON_START", "true", "crash_on_start", True),
    ("STUB_ALLOCATE_MIB", "64", "allocate_mib", 64),
]
STUB_INVALID: list[tuple[str, str, str]] = [
    ("STUB_LISTEN_ADDR", "8000", "8000"),
    ("STUB_STARTUP_DELAY", "15", "15"),
    ("STUB_TOKEN_COUNT", "many", "many"),
    ("STUB_TOKEN_COUNT", "0", "0"),
    ("STUB_TOKEN_DELAY", "5x", "5x"),
    ("STUB_READY_GATES_SERVING", "maybe", "maybe"),
    ("STUB_SHUTDOWN_TIMEOUT", "later", "later"),
    ("STUB_CRASH_ON_START", "sometimes", "sometimes"),
    ("STUB_ALLOCATE_MIB", "-1", "-1"),
    ("HEARTH_LOG_LEVEL", "loud", "loud"),
    ("HEARTH_LOG_FORMAT", "xml", "xml"),
]


def _stub_flag(variable: str) -> str:
    for param in stub_command.command.params:
        if variable in _envvars(param):
            return str(param.opts[0])
    raise AssertionError(f"no stub flag reads {variable}")


def test_the_stub_tables_cover_every_stub_setting() -> None:
    assert {row[0] for row in STUB_VALID} == _stub_variables() - LOGGING_VARIABLES
    assert {row[0] for row in STUB_INVALID} == _stub_variables()


@pytest.mark.parametrize(("variable", "text", "field", "expected"), STUB_VALID)
def test_a_valid_stub_variable_becomes_its_setting(
    stub_runs: list[StubSettings], variable: str, text: str, field: str, expected: object
) -> None:
    result = CliRunner().invoke(main.cli, ["stub"], env=_clean_env({variable: text}))
    assert result.exit_code == 0, result.output
    assert getattr(stub_runs[0], field) == expected


@pytest.mark.parametrize(("variable", "text", "message"), STUB_INVALID)
def test_an_invalid_stub_variable_exits_2_naming_flag_and_variable(
    stub_runs: list[StubSettings], variable: str, text: str, message: str
) -> None:
    result = CliRunner().invoke(main.cli, ["stub"], env=_clean_env({variable: text}))
    assert result.exit_code == 2
    assert f"'{_stub_flag(variable)}'" in result.output
    assert f"'{variable}'" in result.output
    assert message in result.output
    assert stub_runs == []


def test_stub_help_lists_every_variable_the_stub_reads() -> None:
    assert _help_variables("stub") == _stub_variables()
