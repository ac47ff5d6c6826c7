"""The settings reference: each process's settings with their environment variables, from their
declarations (the gateway's table in :mod:`hearth.api.gatewayenv`, the operator's in
:mod:`hearth.api.operatorsettings`, the drainer's and stub's click options)."""

from __future__ import annotations

from hearth.api import gatewayenv, operatorsettings
from hearth.docs import cli
from hearth.docs import markdown as md


def _gateway() -> str:
    rows = [
        [md.code(setting.env), md.code(setting.flag), setting.kind.value, md.text(setting.describe())]
        for setting in gatewayenv.SETTINGS
    ]
    return md.table(["variable", "flag", "kind", "meaning"], rows)


def _command(name: str, *, leave_out: frozenset[str] = frozenset()) -> str:
    ctx, command = cli.commands()[name]
    rows = [
        [md.code(flag.envvar or ""), md.code(flag.synopsis), md.text(flag.help)]
        for flag in cli.flags(ctx, command)
        if not flag.hidden and "--help" not in flag.names and not leave_out & set(flag.names)
    ]
    return md.table(["variable", "flag", "meaning"], rows)


def _deployed(setting: operatorsettings.Setting[object]) -> str:
    """How ``hearth install`` and the chart set *setting*."""
    deployed = setting.deployed
    if deployed is None:
        return ""
    install = md.code(deployed.install_flag) if deployed.install_flag else f"always {md.code(deployed.fixed)}"
    if deployed.chart_value:
        chart = md.code(deployed.chart_value)
    elif deployed.chart_expression:
        chart = md.code(f"{{{{ {deployed.chart_expression} }}}}")
    else:
        chart = f"always {md.code(deployed.fixed)}"
    return f"install: {install}; chart: {chart}"


def _operator() -> str:
    rows = []
    for setting in operatorsettings.SETTINGS:
        flag = f"{setting.flag} / {setting.off_flag}" if setting.off_flag else setting.flag
        default = setting.default_help or setting.default_text() or ""
        choices = (
            f" One of: {', '.join(repr(choice) for choice in setting.choices)}." if setting.choices else ""
        )
        rows.append(
            [
                md.code(setting.env or ""),
                md.code(flag),
                setting.kind.value,
                md.text(default),
                _deployed(setting),
                md.text(setting.help + choices),
            ]
        )
    table = md.table(
        ["variable", "flag", "kind", "default", "set by hearth install / the chart", "meaning"], rows
    )
    flags = frozenset(setting.flag for setting in operatorsettings.SETTINGS)
    return (
        table.rstrip("\n")
        + "\n\nThe flags every command shares (version, kubeconfig, logging):\n\n"
        + _command("hearth operator", leave_out=flags)
    )


def page() -> str:
    return md.page(
        "Settings",
        "hearth.api.gatewayenv, hearth.api.operatorsettings and the click options of hearth.cmd",
        "Every setting of each process, as a flag and (where it has one) an environment variable. A value "
        "that does not parse stops the process with exit status 2 and a message naming the flag and the "
        "variable; there is no silent fallback to a default. Durations use Go syntax (`500ms`, `10s`, "
        "`5m0s`, `1h30m`).",
        "## Gateway (`hearth gateway`)\n\nThe operator renders the variables each gateway needs; "
        "`hearth gateway --help` lists the same settings as flags.\n\n" + _gateway(),
        "## Operator (`hearth operator`)\n\nDeclared once in `hearth/api/operatorsettings.py`; the last but "
        "one column says how `hearth install` and the Helm chart set each on the operator they deploy.\n\n"
        + _operator(),
        "## Drain sidecar (`hearth drainer`)\n\nRendered by the operator into backend pods whose runtime "
        "drains `UntilIdle`.\n\n" + _command("hearth drainer"),
        "## CPU stub (`hearth stub`)\n\n" + _command("hearth stub"),
    )
