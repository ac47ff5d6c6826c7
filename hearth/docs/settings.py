"""The settings reference: each process's settings with their environment variables, from their
declarations (the gateway's table in :mod:`hearth.api.gatewayenv`, the operator's, drainer's and stub's
click options)."""

from __future__ import annotations

from hearth.api import gatewayenv
from hearth.docs import cli
from hearth.docs import markdown as md


def _gateway() -> str:
    rows = [
        [md.code(setting.env), md.code(setting.flag), setting.kind.value, md.text(setting.describe())]
        for setting in gatewayenv.SETTINGS
    ]
    return md.table(["variable", "flag", "kind", "meaning"], rows)


def _command(name: str) -> str:
    ctx, command = cli.commands()[name]
    rows = [
        [md.code(flag.envvar or ""), md.code(flag.synopsis), md.text(flag.help)]
        for flag in cli.flags(ctx, command)
        if not flag.hidden and "--help" not in flag.names
    ]
    return md.table(["variable", "flag", "meaning"], rows)


def page() -> str:
    return md.page(
        "Settings",
        "hearth.api.gatewayenv and the click options of hearth.cmd",
        "Every setting of each process, as a flag and (where it has one) an environment variable. A value "
        "that does not parse stops the process with exit status 2 and a message naming the flag and the "
        "variable; there is no silent fallback to a default. Durations use Go syntax (`500ms`, `10s`, "
        "`5m0s`, `1h30m`).",
        "## Gateway (`hearth gateway`)\n\nThe operator renders the variables each gateway needs; "
        "`hearth gateway --help` lists the same settings as flags.\n\n" + _gateway(),
        "## Operator (`hearth operator`)\n\n" + _command("hearth operator"),
        "## Drain sidecar (`hearth drainer`)\n\nRendered by the operator into backend pods whose runtime "
        "drains `UntilIdle`.\n\n" + _command("hearth drainer"),
        "## CPU stub (`hearth stub`)\n\n" + _command("hearth stub"),
    )
