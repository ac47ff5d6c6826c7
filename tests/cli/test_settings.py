"""Every setting of operator, install, uninstall, render, e2e and selftest: an invalid value, given as a
flag or through its environment variable, exits 2 with a message naming the flag (and the variable, where
there is one), before anything connects; and the table lists every option of those commands, so a new
flag without a case fails here. The operator also takes the Go spellings the reference's manifests use."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hearth.cmd import e2e, goflags, install, main, operator, operatorflags, render, selftest

COMMANDS: dict[str, click.Command] = {
    "operator": operator.command,
    "install": install.install_command,
    "uninstall": install.uninstall_command,
    "render": render.command,
    "e2e": e2e.command,
    "selftest": selftest.command,
}
MANIFEST = """\
apiVersion: serving.hearth.dev/v1alpha1
kind: LLMService
metadata: {name: qwen}
spec:
  model: {source: {uri: hf://Qwen/Qwen3-0.6B}}
  runtime: {selector: {vendor: [generic]}}
"""


@dataclasses.dataclass(frozen=True)
class Case:
    command: str
    #: The option under test (its longest spelling), which the message must name.
    flag: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    #: What else the message must say.
    says: str = ""
    #: Other flags the message must name (a check across settings).
    also: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        source = "env" if self.env and not self.args else "flag"
        return f"{self.command}{self.flag}-{source}-{'-'.join(self.args + tuple(v for _, v in self.env))}"


def _bad(command: str, flag: str, value: str, says: str = "") -> Case:
    return Case(command, flag, args=(f"{flag}={value}",), says=says)


def _env(command: str, flag: str, variable: str, value: str, says: str = "") -> Case:
    return Case(command, flag, env=((variable, value),), says=says)


_KUBE = [
    case
    for command in ("operator", "install", "uninstall", "e2e", "selftest")
    for case in (
        _bad(command, "--kubeconfig", "/", "is a directory"),
        _env(command, "--kubeconfig", "KUBECONFIG", "/", "is a directory"),
    )
]
_OPERATOR = [
    _bad("operator", "--version", "maybe", "not a boolean"),
    _bad("operator", "--health-probe-bind-address", "8081", 'invalid listen address "8081"'),
    _bad("operator", "--metrics-bind-address", "localhost", "invalid listen address"),
    _bad("operator", "--metrics-secure", "maybe", '"maybe" is not a boolean'),
    _bad("operator", "--metrics-cert-path", "/nonexistent", "does not exist"),
    _bad("operator", "--metrics-cert-name", "", "must be non-empty"),
    _bad("operator", "--metrics-cert-key", "a key", "contain no whitespace"),
    _bad("operator", "--enable-http2", "sometimes", "not a boolean"),
    _bad("operator", "--leader-elect", "yes please", "not a boolean"),
    _bad("operator", "--leader-election-id", "Lease_ID", "not a valid DNS subdomain"),
    _bad("operator", "--leader-election-namespace", "Kube_System", "not a valid DNS label"),
    _bad("operator", "--gateway-image", "", "must be non-empty"),
    _env("operator", "--gateway-image", "HEARTH_GATEWAY_IMAGE", "an image", "contain no whitespace"),
    _bad("operator", "--gateway-replicas", "0", "x>=1"),
    _bad("operator", "--network-policies", "maybe", "not a boolean"),
    _bad("operator", "--scaler-mode", "keda", "is not one of"),
    _bad("operator", "--concurrent-reconciles", "0", "x>=1"),
    _bad("operator", "--zap-log-level", "loud", "is not one of debug, info"),
    _bad("operator", "--zap-log-level", "0", "or an integer > 0"),
    _bad("operator", "--zap-encoder", "xml", "is not one of"),
    _bad("operator", "--zap-devel", "maybe", "not a boolean"),
    _bad("operator", "--zap-stacktrace-level", "debug", "is not one of"),
    _bad("operator", "--zap-time-encoding", "unix", "is not one of"),
    _bad("operator", "--autoscale-interval", "10ms", "shorter than the minimum 100ms"),
    _bad("operator", "--autoscale-interval", "2", "missing unit"),
    _bad("operator", "--autoscale-interval", "-1s", "shorter than the minimum"),
    _bad("operator", "--log-level", "loud", "is not one of"),
    _env("operator", "--log-level", "HEARTH_LOG_LEVEL", "loud", "is not one of"),
    _bad("operator", "--log-format", "xml", "is not one of"),
    _env("operator", "--log-format", "HEARTH_LOG_FORMAT", "xml", "is not one of"),
    Case(
        "operator",
        "--metrics-bind-address",
        args=("--metrics-bind-address=:8081",),
        says="must differ from --health-probe-bind-address",
        also=("--health-probe-bind-address",),
    ),
    # Go's single-dash spelling reaches the same checks.
    Case("operator", "--scaler-mode", args=("-scaler-mode=keda",), says="is not one of"),
]
_INSTALL = [
    *(
        case
        for command in ("install", "uninstall")
        for case in (
            _bad(command, "--namespace", "Hearth_System", "not a valid DNS label"),
            Case(command, "--namespace", args=("-n", "-x-"), says="not a valid DNS label"),
        )
    ),
    _bad("install", "--image", "", "must be non-empty"),
    _bad("install", "--gateway-image", "a b", "contain no whitespace"),
    _bad("install", "--image-pull-policy", "Sometimes", "is not one of"),
    _bad("install", "--scaler-mode", "keda", "is not one of"),
    _bad("install", "--gateway-replicas", "0", "x>=1"),
    _bad("install", "--replicas", "0", "x>=1"),
    _bad("install", "--metrics-port", "70000", "0<=x<=65535"),
    _bad("install", "--wait", "-1", "x>=0"),
    _bad("install", "--output", "xml", "is not one of"),
]
_RENDER = [
    Case("render", "--filename", args=("-f", "/nonexistent.yaml"), says="cannot read /nonexistent.yaml"),
    Case("render", "--runtime", args=("-f", "{manifest}", "-r", "/nope.yaml"), says="cannot read /nope.yaml"),
    Case("render", "--namespace", args=("-f", "{manifest}", "-n", "ML"), says="not a valid DNS label"),
    Case("render", "--scaler-mode", args=("-f", "{manifest}", "--scaler-mode=keda"), says="is not one of"),
    Case("render", "--gateway-image", args=("-f", "{manifest}", "--gateway-image="), says="non-empty"),
    Case("render", "--gateway-replicas", args=("-f", "{manifest}", "--gateway-replicas=0"), says="x>=1"),
    Case("render", "--output", args=("-f", "{manifest}", "-o", "xml"), says="is not one of"),
]
_E2E = [
    _bad("e2e", "--stub-image", "", "must be non-empty"),
    _bad("e2e", "--access", "ssh", "is not one of"),
    _env("e2e", "--engine-image", "HEARTH_E2E_ENGINE_IMAGE", " ", "must be non-empty"),
    _env("e2e", "--gguf", "HEARTH_E2E_GGUF", "/nonexistent/model.gguf", "does not exist"),
    _bad("e2e", "--timeout", "5", "x>=10"),
    _bad("e2e", "--scenario", "", "must be non-empty"),
    _env("e2e", "--delivery", "HEARTH_E2E_DELIVERY", "/nonexistent/delivery.json", "does not exist"),
    _bad("e2e", "--soak", "30s", "shorter than the minimum 1m"),
    _bad("e2e", "--soak-seed", "-1", "x>=0"),
    _bad("e2e", "--soak-max-requests", "0", "x>=1"),
    _bad("e2e", "--soak-report", "/", "is a directory"),
    _env(
        "e2e",
        "--network-policies-enforced",
        "HEARTH_E2E_NETWORK_POLICIES",
        "kube network policies",
        "whitespace",
    ),
    _bad("e2e", "--fault-hook", "bash 'cluster.sh fault", "No closing quotation"),
    _env("e2e", "--fault-hook", "HEARTH_E2E_FAULT_HOOK", " ", "must name a command"),
]
_SELFTEST = [
    _bad("selftest", "--namespace", "Hearth_System", "not a valid DNS label"),
    _env("selftest", "--namespace", "POD_NAMESPACE", "Not Valid", "not a valid DNS label"),
    _bad("selftest", "--name", "self.test", "not a valid DNS label"),
    _bad("selftest", "--image", "", "must be non-empty"),
    _bad("selftest", "--timeout", "0", "x>=1"),
]
CASES = [*_KUBE, *_OPERATOR, *_INSTALL, *_RENDER, *_E2E, *_SELFTEST]

#: Options with no invalid value, and why.
ANY_VALUE = {
    **{
        (command, "--context"): "any name; the kubeconfig loader says when it has no such context"
        for command in ("operator", "install", "uninstall", "e2e", "selftest")
    },
}


def _option(command: str, flag: str) -> click.Option:
    for param in COMMANDS[command].params:
        if isinstance(param, click.Option) and flag in (*param.opts, *param.secondary_opts):
            return param
    raise AssertionError(f"hearth {command} has no option {flag}")


def _is_switch(command: str, option: click.Option) -> bool:
    """A click switch (--x/--no-x) cannot be given a wrong value, except through Go's --x=value spelling,
    which only the operator takes (and which the table then covers)."""
    return option.is_flag and not option.envvar and not isinstance(COMMANDS[command], goflags.GoFlagsCommand)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_an_invalid_setting_exits_2_naming_the_flag_and_variable(case: Case, tmp_path: Path) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(MANIFEST)
    args = [arg.replace("{manifest}", str(manifest)) for arg in case.args]
    env = {"KUBECONFIG": str(tmp_path / "no-kubeconfig"), **dict(case.env)}
    result = CliRunner().invoke(main.cli, [case.command, *args], env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    option = _option(case.command, case.flag)
    named = [name for name in (*option.opts, *option.secondary_opts) if f"{name}" in result.output]
    assert case.flag in named or (not case.also and named), f"{case.flag} not named:\n{result.output}"
    if isinstance(option.envvar, str) and not case.also:
        assert option.envvar in result.output, f"{option.envvar} not named:\n{result.output}"
    for other in case.also:
        assert other in result.output
    assert case.says in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_the_table_covers_every_option(command: str) -> None:
    covered = {case.flag for case in CASES if case.command == command}
    missing = []
    for param in COMMANDS[command].params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        longest = max(param.opts, key=len)
        if longest in covered or (command, longest) in ANY_VALUE or _is_switch(command, param):
            continue
        missing.append(longest)
    assert not missing, f"hearth {command}: no invalid-value case for {missing}"
    for case in CASES:
        if case.command == command and isinstance(_option(command, case.flag).envvar, str):
            assert any(
                other.flag == case.flag and other.env for other in CASES if other.command == command
            ), f"hearth {command} {case.flag}: no case through its environment variable"


# The spellings the reference's Helm chart, Kustomize overlay and scripts pass to its manager (SPEC §2.10,
# §7), and what each means here.
GO_SPELLINGS = [
    (["--leader-elect=false"], {"leader_elect": False}),
    (["--leader-elect=true"], {"leader_elect": True}),
    (["--leader-elect"], {"leader_elect": True}),
    (["-leader-elect"], {"leader_elect": True}),
    (["--no-leader-elect"], {"leader_elect": False}),
    (["--no-leader-elect=false"], {"leader_elect": True}),
    (["--metrics-secure=false"], {"metrics_secure": False}),
    (["--metrics-secure=0"], {"metrics_secure": False}),
    (["-metrics-secure=False"], {"metrics_secure": False}),
    (["--zap-devel=true"], {"zap_devel": True}),
    (["--zap-devel=false"], {"zap_devel": False}),
    (["--enable-http2=false"], {"enable_http2": False}),
    (["--enable-http2=T"], {"enable_http2": True}),
    (["-scaler-mode=builtin"], {"scaler_mode": "builtin"}),
    (["--scaler-mode="], {"scaler_mode": ""}),  # the reference's spelling of metrics-api
    (["-gateway-replicas", "1"], {"gateway_replicas": 1}),
    (["--health-probe-bind-address=:8081", "--metrics-bind-address=0"], {"metrics_bind_address": None}),
    (
        ["-metrics-bind-address=:8443"],
        {"metrics_bind_address": operatorflags.OPTIONAL_ADDRESS.convert(":8443", None, None)},
    ),
    (["-zap-log-level=debug", "-zap-encoder=json"], {"zap_level": "debug", "zap_encoder": "json"}),
    (["--zap-log-level=3"], {"zap_level": "debug"}),
    (["--zap-stacktrace-level=panic", "--zap-time-encoding=rfc3339"], {}),
    (["--metrics-cert-path="], {"metrics_cert_path": None}),  # the reference's default: self-signed
    (["--metrics-cert-path=/"], {"metrics_cert_path": "/"}),
]


@pytest.mark.parametrize(("args", "expected"), GO_SPELLINGS, ids=[" ".join(args) for args, _ in GO_SPELLINGS])
def test_the_operator_takes_the_go_spellings_of_the_reference(
    args: list[str], expected: dict[str, object]
) -> None:
    with operator.command.make_context("operator", list(args)) as ctx:
        for name, value in expected.items():
            assert ctx.params[name] == value, name


def test_go_spellings_leave_option_values_alone() -> None:
    with operator.command.make_context("operator", ["--gateway-image", "-leader-elect"]) as ctx:
        assert ctx.params["gateway_image"] == "-leader-elect", "a value, as Go takes it too"
        assert ctx.params["leader_elect"] is False
    with operator.command.make_context("operator", ["-gateway-image", "-x", "-leader-elect"]) as ctx:
        assert (ctx.params["gateway_image"], ctx.params["leader_elect"]) == ("-x", True)


def test_defaults_are_the_settings_defaults() -> None:
    with operator.command.make_context("operator", []) as ctx:
        params = ctx.params
    defaults = operator.DEFAULTS
    assert params["metrics_secure"] is defaults.metrics_secure is True, "the reference's default (SPEC §2.10)"
    assert params["leader_elect"] is defaults.leader_elect
    assert params["scaler_mode"] == defaults.scaler.value == "auto"
    assert params["gateway_replicas"] == defaults.gateway_replicas
    assert params["concurrent_reconciles"] == defaults.concurrent_reconciles
    assert params["autoscale_interval"] == defaults.autoscale_interval
    assert params["health_probe_bind_address"] == defaults.health_address
    assert params["gateway_image"] == defaults.gateway_image
