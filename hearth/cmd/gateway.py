"""``hearth gateway``: the per-LLMService data plane, configured by the environment the operator renders.

Every setting of :mod:`hearth.api.gatewayenv` is a flag with its environment variable, so ``--help`` lists
each variable the gateway reads, and a bad value exits 2 naming both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from hearth.api import gatewayenv
from hearth.cmd import params
from hearth.common import eventloop, logs, serve
from hearth.gateway import background, server
from hearth.gateway import settings as gateway_settings

F = TypeVar("F", bound=Callable[..., Any])


class SettingType(click.ParamType[object, Any]):
    """Reads a flag or variable as its declared setting does (the error names both, click adds them)."""

    def __init__(self, setting: gatewayenv.Setting) -> None:
        self.setting = setting
        self.name = setting.kind.value

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        if self.setting.choices:
            return "[" + "|".join(self.setting.choices) + "]"
        return self.setting.kind.value.upper()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> object:
        if not isinstance(value, str):
            return value
        try:
            return self.setting.parse(value)
        except gatewayenv.SettingError as error:
            self.fail(str(error), param, ctx)


def setting_options(function: F) -> F:
    """One option per declared gateway setting, in the declared order."""
    for setting in reversed(gatewayenv.SETTINGS):
        function = click.option(
            setting.flag,
            setting.field,
            type=SettingType(setting),
            envvar=setting.env,
            show_envvar=True,
            help=setting.describe(),
        )(function)
    return function


@click.command("gateway", short_help="Run the scale-to-zero OpenAI-compatible gateway of one LLMService.")
@setting_options
@params.logging_options
def command(*, log_level: str, log_format: logs.LogFormat, **values: object) -> None:
    """Run the OpenAI-compatible gateway of one LLMService: admit, hold or reject cold requests while the
    backend wakes, raise demand, stream answers back, drain on SIGTERM.

    The operator sets the environment variables; a flag, when given, wins over its variable.
    """
    logs.configure(level=log_level, fmt=log_format)
    try:
        settings = gateway_settings.from_values(values)
    except gateway_settings.SettingsError as error:
        raise click.UsageError(str(error)) from None
    try:
        eventloop.run(server.run(settings))
    except serve.ListenError as error:
        raise click.UsageError(f"HEARTH_LISTEN_ADDR: {error}") from None
    except gateway_settings.SettingsError as error:
        raise click.UsageError(str(error)) from None
    except background.BackgroundFailedError as error:
        # Logged when it happened; exit non-zero so Kubernetes restarts the container.
        raise click.ClickException(str(error)) from None
