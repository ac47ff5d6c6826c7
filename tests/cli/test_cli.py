"""The ``hearth`` command line: help is accurate, unfinished roles fail loudly, version reports the build."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import hearth
from hearth.cmd import main, unavailable

ALL_COMMANDS = ["operator", "gateway", "stub", "install", "uninstall", "e2e", "render", "version"]


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


@pytest.mark.parametrize("name", [command.name for command in unavailable.COMMANDS])
def test_unfinished_commands_say_so_and_exit_non_zero(name: str) -> None:
    result = CliRunner().invoke(main.cli, [name, "--some-flag", "value"])
    assert result.exit_code == unavailable.EXIT_UNAVAILABLE
    assert f"hearth {name}: not available in this build yet" in result.output
    help_text = CliRunner().invoke(main.cli, [name, "--help"]).output
    assert "Not available in this build yet" in help_text


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
