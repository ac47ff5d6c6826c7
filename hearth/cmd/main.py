"""The ``hearth`` command group: one executable, one subcommand per role.

Subcommands are imported only when used: each role pulls in heavy libraries (the Kubernetes client,
gRPC) that the others do not need, and every pod start (a stub, a gateway) pays for what it imports.
"""

from __future__ import annotations

import importlib

import click

import hearth

# name -> (module, attribute). Keep sorted: this is the order `hearth --help` lists them in.
_COMMANDS = {
    "drainer": ("hearth.cmd.drainer", "command"),
    "e2e": ("hearth.cmd.e2e", "command"),
    "fetch": ("hearth.cmd.fetch", "command"),
    "gateway": ("hearth.cmd.gateway", "command"),
    "install": ("hearth.cmd.install", "install_command"),
    "operator": ("hearth.cmd.operator", "command"),
    "render": ("hearth.cmd.render", "command"),
    "selftest": ("hearth.cmd.selftest", "command"),
    "stub": ("hearth.cmd.stub", "command"),
    "stub-hub": ("hearth.cmd.stubhub", "command"),
    "uninstall": ("hearth.cmd.install", "uninstall_command"),
    "version": ("hearth.cmd.version", "command"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attribute = _COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(
    "hearth",
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(hearth.__version__, "--version", prog_name="hearth", message="%(prog)s %(version)s")
def cli() -> None:
    """Hearth serves open LLMs on Kubernetes declaratively and scales them to zero when idle.

    Every role ships in this one executable: the operator, the per-model gateway, a CPU fake of vLLM,
    the installer and the end-to-end test driver.
    """
