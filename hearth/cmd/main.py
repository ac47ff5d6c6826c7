"""The ``hearth`` command group: one executable, one subcommand per role."""

from __future__ import annotations

import click

import hearth
from hearth.cmd import e2e, gateway, install, operator, render, stub, version


@click.group("hearth", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(hearth.__version__, "--version", prog_name="hearth", message="%(prog)s %(version)s")
def cli() -> None:
    """Hearth serves open LLMs on Kubernetes declaratively and scales them to zero when idle.

    Every role ships in this one executable: the operator, the per-model gateway, a CPU fake of vLLM,
    the installer and the end-to-end test driver.
    """


cli.add_command(e2e.command)
cli.add_command(gateway.command)
cli.add_command(install.install_command)
cli.add_command(install.uninstall_command)
cli.add_command(operator.command)
cli.add_command(render.command)
cli.add_command(stub.command)
cli.add_command(version.command)
