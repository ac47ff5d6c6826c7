"""click parameter types and option groups shared by every command.

Each type turns a flag or environment value into a typed value or fails with a message that names the
flag and its environment variable (click adds both), never falling back to a default silently.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import click

from hearth.common import durations, logs, netaddr

F = TypeVar("F", bound=Callable[..., Any])


class GoDurationType(click.ParamType[durations.Duration, Any]):
    """A Go duration (``90s``, ``1m30s``), at least *minimum* when one is given."""

    name = "duration"

    def __init__(self, minimum: durations.Duration | None = None) -> None:
        self.minimum = minimum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> durations.Duration:
        if isinstance(value, durations.Duration):
            return value
        try:
            duration = durations.Duration.parse(str(value))
        except durations.DurationError as error:
            self.fail(str(error), param, ctx)
        if self.minimum is not None and duration < self.minimum:
            self.fail(f"{value} is shorter than the minimum {self.minimum}", param, ctx)
        return duration


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


class KubeNameType(click.ParamType[str, Any]):
    """A Kubernetes object name: an RFC 1123 label (namespaces) or a DNS subdomain (most other objects)."""

    _LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

    def __init__(self, *, subdomain: bool) -> None:
        self.subdomain = subdomain
        self.name = "subdomain" if subdomain else "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        parts = text.split(".") if self.subdomain else [text]
        limit = 253 if self.subdomain else 63
        if len(text) > limit or not all(len(part) <= 63 and self._LABEL.match(part) for part in parts):
            kind = "DNS subdomain" if self.subdomain else "DNS label"
            self.fail(
                f'"{text}" is not a valid {kind} (lower-case letters, digits and "-"'
                + (', labels joined by "."' if self.subdomain else "")
                + f", at most {limit} characters)",
                param,
                ctx,
            )
        return text


class TextType(click.ParamType[str, Any]):
    """Free text that must not be empty or contain whitespace (an image reference, a file name)."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text or any(character.isspace() for character in text):
            self.fail(f'"{text}" must be non-empty and contain no whitespace', param, ctx)
        return text


class CommandType(click.ParamType[tuple[str, ...], Any]):
    """A command line, split as a POSIX shell would (``bash testing/cluster/cluster.sh fault``): non-empty,
    quotes balanced."""

    name = "command"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        try:
            words = tuple(shlex.split(str(value)))
        except ValueError as error:
            self.fail(f'"{value}" is not a command line: {error}', param, ctx)
        if not words:
            self.fail(f'"{value}" must name a command', param, ctx)
        return words


class ZapLevelType(click.ParamType[str, Any]):
    """controller-runtime's ``--zap-log-level``: a zap level name, or an integer > 0 (debug verbosity),
    mapped onto Hearth's levels."""

    name = "level"
    _LEVELS: ClassVar[dict[str, str]] = {
        "debug": "debug",
        "info": "info",
        "warn": "warning",
        "error": "error",
        "dpanic": "error",
        "panic": "error",
        "fatal": "error",
    }

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text.isdigit() and int(text) > 0:
            return "debug"
        level = self._LEVELS.get(text.lower())
        if level is None:
            self.fail(f'"{text}" is not one of {", ".join(self._LEVELS)} or an integer > 0', param, ctx)
        return level


COMMAND = CommandType()
GO_DURATION = GoDurationType()
LISTEN_ADDRESS = ListenAddressType()
NAMESPACE = KubeNameType(subdomain=False)
OBJECT_NAME = KubeNameType(subdomain=True)
TEXT = TextType()
ZAP_LEVEL = ZapLevelType()


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


def kube_options(function: F) -> F:
    """Add ``--kubeconfig`` (env ``KUBECONFIG``) and ``--context``: how every command that talks to a
    cluster finds it."""
    function = click.option(
        "--context", default=None, help="Kubeconfig context [default: the kubeconfig's current one]."
    )(function)
    return click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        default=None,
        envvar="KUBECONFIG",
        show_envvar=True,
        help="Kubeconfig [default: in-cluster, else ~/.kube/config].",
    )(function)
