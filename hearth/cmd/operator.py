"""``hearth operator``: the control loop (SPEC §2.10 flags, plus Hearth's own)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

import hearth
from hearth.api import meta, operatorsettings, scalermodes
from hearth.cmd import goflags, params
from hearth.common import durations, logs, netaddr
from hearth.operator import app
from hearth.operator.settings import OperatorSettings

F = TypeVar("F", bound=Callable[..., Any])
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


#: The settings the flags fill when not given (their defaults are the table's).
DEFAULTS = OperatorSettings()


class _OptionalAddress(click.ParamType[netaddr.ListenAddress | None, Any]):
    """Go-style bind addresses; "0" (the reference's spelling) or "" disables the endpoint."""

    name = "[host]:port|0"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> netaddr.ListenAddress | None:
        if value is None or isinstance(value, netaddr.ListenAddress):
            return value
        if str(value) in ("0", ""):
            return None
        try:
            return netaddr.ListenAddress.parse(str(value))
        except netaddr.AddressError as error:
            self.fail(str(error), param, ctx)


class _CertDirectory(click.ParamType[str | None, Any]):
    """An existing directory; "" (the reference's default spelling) means a self-signed pair."""

    name = "directory"
    _directory = click.Path(exists=True, file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | None:
        if value is None or value == "":
            return None
        return str(self._directory.convert(value, param, ctx))


OPTIONAL_ADDRESS = _OptionalAddress()
CERT_DIRECTORY = _CertDirectory()


def _default_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if _SERVICE_ACCOUNT_NAMESPACE.exists():
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return meta.DEFAULT_NAMESPACE


def _duration(setting: operatorsettings.Setting[object]) -> params.GoDurationType:
    return params.GoDurationType(
        minimum=None if setting.minimum is None else durations.Duration(setting.minimum)
    )


#: The click type reading each kind of setting (a switch takes no value).
_TYPES: dict[
    operatorsettings.Kind, Callable[[operatorsettings.Setting[object]], click.ParamType[Any, Any] | None]
] = {
    operatorsettings.Kind.ADDRESS_OR_OFF: lambda _: OPTIONAL_ADDRESS,
    operatorsettings.Kind.SWITCH: lambda _: None,
    operatorsettings.Kind.COUNT: lambda setting: click.IntRange(min=setting.minimum),
    operatorsettings.Kind.CHOICE: lambda setting: click.Choice(setting.choices),
    operatorsettings.Kind.TEXT: lambda _: params.TEXT,
    operatorsettings.Kind.OBJECT_NAME: lambda _: params.OBJECT_NAME,
    operatorsettings.Kind.NAMESPACE: lambda _: params.NAMESPACE,
    operatorsettings.Kind.DURATION: _duration,
    operatorsettings.Kind.DIRECTORY: lambda _: CERT_DIRECTORY,
}


def param_name(setting: operatorsettings.Setting[object]) -> str:
    """The click parameter's name: the flag's, as click derives it (tests and Go spellings use it)."""
    return setting.flag.removeprefix("--").replace("-", "_")


def setting_option(setting: operatorsettings.Setting[object]) -> Callable[[F], F]:
    """The flag of one setting of the table, with its variable, default and help."""
    if setting.default_help is not None:
        # A default the command works out (or a file it makes): the flag itself is unset.
        default, help = None, f"{setting.help.removesuffix('.')} [default: {setting.default_help}]."
    elif setting.kind is operatorsettings.Kind.SWITCH:
        default, help = setting.default, setting.help
    else:
        default, help = setting.default_text(), setting.help
    names = [f"{setting.flag}/{setting.off_flag}" if setting.off_flag else setting.flag, param_name(setting)]
    return click.option(
        *names,
        type=_TYPES[setting.kind](setting),
        default=default,
        show_default=setting.default_help is None,
        envvar=setting.env,
        show_envvar=setting.env is not None,
        help=help,
    )


def setting_options(function: F) -> F:
    """Every setting of the table as a flag, in its order."""
    for setting in reversed(operatorsettings.SETTINGS):
        function = setting_option(setting)(function)
    return function


def settings_from(values: dict[str, Any], *, kubeconfig: str | None, context: str | None) -> OperatorSettings:
    """The operator's settings from the parsed flags (ValueError for a combination it refuses)."""
    fields: dict[str, Any] = {}
    for setting in operatorsettings.SETTINGS:
        value = values[param_name(setting)]
        if value is not None:
            fields[setting.field] = value
    if "leader_election_namespace" not in fields:
        fields["leader_election_namespace"] = _default_namespace()
    # "" is the reference's spelling of metrics-api.
    fields["scaler"] = scalermodes.ScalerMode(fields["scaler"] or scalermodes.ScalerMode.METRICS_API)
    return OperatorSettings(**fields, kubeconfig=kubeconfig, context=context)


@goflags.command("operator", short_help="Run the control loop that turns LLMServices into workloads.")
@click.option("--version", "show_version", is_flag=True, help="Print the version and exit.")
@setting_options
# The reference's spelling, not a setting.
@click.option(
    "--enable-http2", is_flag=True, hidden=True, help="Accepted for compatibility; metrics use HTTP/1.1."
)
@params.kube_options
@click.option(
    "--zap-log-level",
    "zap_level",
    type=params.ZAP_LEVEL,
    default=None,
    hidden=True,
    help="controller-runtime's spelling of --log-level (debug, info, error, panic, or an integer > 0).",
)
@click.option(
    "--zap-encoder", "zap_encoder", type=click.Choice(["json", "console"]), default=None, hidden=True
)
@click.option("--zap-devel/--no-zap-devel", default=True, hidden=True, help="Accepted for compatibility.")
@click.option(
    "--zap-stacktrace-level",
    type=click.Choice(["info", "error", "panic"]),
    default=None,
    hidden=True,
    help="Accepted for compatibility.",
)
@click.option(
    "--zap-time-encoding",
    type=click.Choice(["epoch", "millis", "nano", "iso8601", "rfc3339", "rfc3339nano"]),
    default=None,
    hidden=True,
    help="Accepted for compatibility.",
)
@params.logging_options
def command(
    *,
    show_version: bool,
    kubeconfig: str | None,
    context: str | None,
    zap_level: str | None,
    zap_encoder: str | None,
    log_level: str,
    log_format: logs.LogFormat,
    **values: Any,
) -> None:
    """Run the control loop: reconcile every LLMService into its backend, gateway, cache and scaler.

    Go's flag spellings work too, as in the reference's manager: -scaler-mode=builtin, --leader-elect=false.
    """
    if show_version:
        click.echo(f"hearth {hearth.__version__}")
        return
    # --zap-log-level and --zap-encoder are the reference's spellings; given, they win.
    logs.configure(level=zap_level or log_level, fmt="json" if zap_encoder == "json" else log_format)
    try:
        settings = settings_from(values, kubeconfig=kubeconfig, context=context)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    raise SystemExit(asyncio.run(app.run(settings)))
