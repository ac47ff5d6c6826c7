"""The operator's settings are declared once (hearth/api/operatorsettings.py), and every surface derived
from the table — ``hearth operator``'s flags, ``OperatorSettings``, ``hearth install``'s pass-through flags
and the operator arguments it writes, the chart's — still has the names and defaults it had when each was
a hand list (the literals below were taken from the hand lists before they were deleted)."""

from __future__ import annotations

import dataclasses

import click
import pytest
import yaml
from click.testing import CliRunner

from hearth.api import operatorsettings, scalermodes
from hearth.cmd import install, operator, render
from hearth.common import durations, netaddr
from hearth.install import generate, manifests
from hearth.operator import settings

#: flag -> (its --no- spelling, its variable, its value when not given), as the hand-written options had
#: them (hearth operator, install and render, before the table).
OPERATOR_SURFACE: dict[str, tuple[tuple[str, ...], str | None, str | None]] = {
    "--autoscale-interval": ((), None, "2s"),
    "--concurrent-reconciles": ((), None, "4"),
    "--context": ((), None, None),
    "--enable-http2": ((), None, "False"),
    "--gateway-image": ((), "HEARTH_GATEWAY_IMAGE", "ghcr.io/hearth-project/hearth-gateway:latest"),
    "--gateway-replicas": ((), None, "1"),
    "--health-probe-bind-address": ((), None, ":8081"),
    "--kubeconfig": ((), "KUBECONFIG", None),
    "--leader-elect": (("--no-leader-elect",), None, "False"),
    "--leader-election-id": ((), None, "6d7012cb.hearth.dev"),
    "--leader-election-namespace": ((), None, None),
    "--log-format": ((), "HEARTH_LOG_FORMAT", "text"),
    "--log-level": ((), "HEARTH_LOG_LEVEL", "info"),
    "--metrics-bind-address": ((), None, None),
    "--metrics-cert-key": ((), None, "tls.key"),
    "--metrics-cert-name": ((), None, "tls.crt"),
    "--metrics-cert-path": ((), None, None),
    "--metrics-secure": (("--no-metrics-secure",), None, "True"),
    "--network-policies": (("--no-network-policies",), None, "False"),
    "--scaler-mode": ((), None, "auto"),
    "--zap-devel": (("--no-zap-devel",), None, "True"),
    "--zap-encoder": ((), None, None),
    "--zap-log-level": ((), None, None),
    "--zap-stacktrace-level": ((), None, None),
    "--zap-time-encoding": ((), None, None),
}
INSTALL_SURFACE: dict[str, tuple[tuple[str, ...], str | None, str | None]] = {
    "--context": ((), None, None),
    "--dry-run": ((), None, "False"),
    "--gateway-image": ((), None, None),
    "--gateway-replicas": ((), None, "1"),
    "--image": ((), None, manifests.DEFAULT_IMAGE),
    "--image-pull-policy": ((), None, "IfNotPresent"),
    "--kubeconfig": ((), "KUBECONFIG", None),
    "--metrics-port": ((), None, "0"),
    "--namespace": ((), None, "hearth-system"),
    "--network-policies": (("--no-network-policies",), None, "False"),
    "--output": ((), None, "yaml"),
    "--replicas": ((), None, "1"),
    "--runtimes": (("--no-runtimes",), None, "True"),
    "--scaler-mode": ((), None, "auto"),
    "--wait": ((), None, None),
}
#: hearth render's flags standing for the operator's (the others are its own).
RENDER_SURFACE: dict[str, tuple[tuple[str, ...], str | None, str | None]] = {
    "--filename": ((), None, "('x.yaml',)"),
    "--gateway-image": ((), None, "ghcr.io/hearth-project/hearth-gateway:latest"),
    "--gateway-replicas": ((), None, "1"),
    "--keda": (("--no-keda",), None, None),
    "--namespace": ((), None, "default"),
    "--network-policies": (("--no-network-policies",), None, "False"),
    "--output": ((), None, "yaml"),
    "--runtime": ((), None, "()"),
    "--scaler-mode": ((), None, "auto"),
}
#: The operator arguments `hearth install` wrote with no flags, and with every pass-through flag set.
INSTALL_ARGS = {
    (): [
        "--leader-elect",
        "--health-probe-bind-address=:8081",
        "--scaler-mode=auto",
        f"--gateway-image={manifests.DEFAULT_IMAGE}",
        "--gateway-replicas=1",
        "--log-format=json",
    ],
    (
        "--scaler-mode=builtin",
        "--gateway-replicas=3",
        "--gateway-image=reg.example/gw:1",
        "--network-policies",
        "--metrics-port=9443",
    ): [
        "--leader-elect",
        "--health-probe-bind-address=:8081",
        "--scaler-mode=builtin",
        "--gateway-image=reg.example/gw:1",
        "--gateway-replicas=3",
        "--log-format=json",
        "--network-policies",
        "--metrics-bind-address=:9443",
    ],
}


def _surface(command: click.Command, name: str) -> dict[str, tuple[tuple[str, ...], str | None, str | None]]:
    with command.make_context(name, ["-f", "x.yaml"] if name == "render" else []) as ctx:
        values = ctx.params
    return {
        max(param.opts, key=len): (
            tuple(param.secondary_opts),
            param.envvar if isinstance(param.envvar, str) else None,
            None if values[param.name or ""] is None else str(values[param.name or ""]),
        )
        for param in command.params
        if isinstance(param, click.Option) and param.name not in ("show_version", "help")
    }


@pytest.mark.parametrize(
    ("command", "name", "expected"),
    [
        (operator.command, "operator", OPERATOR_SURFACE),
        (install.install_command, "install", INSTALL_SURFACE),
        (render.command, "render", RENDER_SURFACE),
    ],
    ids=["operator", "install", "render"],
)
def test_every_flag_keeps_its_name_variable_and_default(
    command: click.Command, name: str, expected: dict[str, object]
) -> None:
    assert _surface(command, name) == expected


@pytest.mark.parametrize("flags", sorted(INSTALL_ARGS), ids=lambda flags: " ".join(flags) or "defaults")
def test_install_passes_the_operator_the_same_arguments(flags: tuple[str, ...]) -> None:
    result = CliRunner().invoke(install.install_command, [*flags, "--dry-run"])
    assert result.exit_code == 0, result.output
    deployment = next(obj for obj in yaml.safe_load_all(result.output) if obj["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "operator"
    # The table's order, not the old hand list's: the same arguments, so the same operator.
    assert sorted(args[1:]) == sorted(INSTALL_ARGS[flags])


def test_the_settings_defaults_are_the_tables() -> None:
    defaults = settings.OperatorSettings()
    assert defaults.health_address == netaddr.ListenAddress(host=None, port=8081)
    assert defaults.metrics_address is None
    assert defaults.metrics_secure is True
    assert defaults.leader_elect is False
    assert defaults.scaler is scalermodes.ScalerMode.AUTO
    assert defaults.autoscale_interval == durations.Duration(2 * durations.SECOND)
    for setting in operatorsettings.SETTINGS:
        assert getattr(defaults, setting.field) == setting.default, setting.field


def test_every_field_with_a_flag_is_in_the_table() -> None:
    # Not flags: the kubeconfig options every command shares, and the informers' resync.
    fields = {field.name for field in dataclasses.fields(settings.OperatorSettings)}
    assert fields - {"kubeconfig", "context", "resync_seconds"} == {
        setting.field for setting in operatorsettings.SETTINGS
    }
    flags = [setting.flag for setting in operatorsettings.SETTINGS]
    assert len(set(flags)) == len(flags)


def test_install_passes_each_setting_under_its_field_with_the_operators_default() -> None:
    config = manifests.InstallConfig()
    for setting, deployed in operatorsettings.deployed():
        if deployed.install_flag is None or setting is operatorsettings.GATEWAY_IMAGE:
            continue
        assert getattr(config, setting.field) == setting.default, setting.field
        if setting.kind is operatorsettings.Kind.SWITCH and deployed.fixed is None:
            # Passed only when on: the operator must be off without it.
            assert setting.default is False, setting.field


def test_a_setting_added_to_the_table_reaches_install_and_the_chart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replicas = dataclasses.replace(operatorsettings.GATEWAY_REPLICAS, default=2, minimum=2)
    table = tuple(
        replicas if each is operatorsettings.GATEWAY_REPLICAS else each for each in operatorsettings.SETTINGS
    )
    monkeypatch.setattr(operatorsettings, "SETTINGS", table)
    files = generate.expected_files(generate.checkout())
    assert '"replicas": {"type": "integer", "minimum": 2}' in files[generate.VALUES_SCHEMA]
    assert "\n  replicas: 2\n  # -- auto" in files[generate.VALUES]
    assert generate.drift(generate.checkout()) == [generate.VALUES_SCHEMA, generate.VALUES]
    switch = dataclasses.replace(
        operatorsettings.NETWORK_POLICIES,
        deployed=operatorsettings.Deployed(
            install_flag="--network-policies", chart_value="operator.leaderElect"
        ),
    )
    monkeypatch.setattr(operatorsettings, "SETTINGS", (switch,))
    assert generate.operator_args().splitlines()[:3] == [
        "            {{- if .Values.operator.leaderElect }}",
        "            - --network-policies",
        "            {{- end }}",
    ]
    assert manifests.operator_args(manifests.InstallConfig(network_policies=True))[:2] == [
        "operator",
        "--network-policies",
    ]


def test_the_chart_readme_maps_each_value_to_its_install_flag_and_default() -> None:
    """The chart README's table is prose, but its rows for the operator's settings must say what the table
    says (the value, its default and the `hearth install` flag it stands for)."""
    readme = (generate.checkout() / "charts/hearth/README.md").read_text()
    for setting, deployed in operatorsettings.deployed():
        if deployed.chart_value is None:
            continue
        flag = f"`{deployed.install_flag}`" if deployed.install_flag else "(always on)"
        row = f"| `{deployed.chart_value}` | `{generate.value_default(setting, deployed)}` | {flag} |"
        assert row in readme, row
