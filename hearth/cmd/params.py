"""click parameter types and option groups shared by every command.

Each type turns a flag or environment value into a typed value or fails with a message that names the
flag and its environment variable (click adds both), never falling back to a default silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from hearth.common import durations, logs, netaddr

F = TypeVar("F", bound=Callable[..., Any])


class GoDurationType(click.ParamType[durations.Duration, Any]):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> durations.Duration:
        if isinstance(value, durations.Duration):
            return value
        try:
            return durations.Duration.parse(str(value))
        except durations.DurationError as error:
            self.fail(str(error), param, ctx)


class ListenAddressType(click.ParamType[netaddr.ListenAddress, Any]):
    name = "[host]:port"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> netaddr.ListenAddress:
        if isinstance(value, netaddr.ListenAddress):
            return value
        try:
            return netaddr.ListenAddress.parse(str(value))
        except netaddr.AddressError as error:
            self.fail(str(error), param, ctx)


GO_DURATION = GoDurationType()
LISTEN_ADDRESS = ListenAddressType()


def logging_options(function: F) -> F:
    """Add ``--log-level`` and ``--log-format`` (env ``HEARTH_LOG_LEVEL`` / ``HEARTH_LOG_FORMAT``)."""
    function = click.option(
        "--log-format",
        type=click.Choice(logs.LOG_FORMATS),
        default="text",
        show_default=True,
        envvar="HEARTH_LOG_FORMAT",
        show_envvar=True,
        help="Log line format: logfmt-style text, or one JSON object per line.",
    )(function)
    return click.option(
        "--log-level",
        type=click.Choice(logs.LOG_LEVELS, case_sensitive=False),
        default="info",
        show_default=True,
        envvar="HEARTH_LOG_LEVEL",
        show_envvar=True,
        help="Least severe level logged.",
    )(function)
