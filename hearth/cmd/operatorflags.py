"""The operator's settings as click flags, from their one declaration (:mod:`hearth.api.operatorsettings`):
``hearth operator`` takes them all, ``hearth install`` the ones it passes through to the operator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from hearth.api import operatorsettings
from hearth.cmd import params
from hearth.common import durations, netaddr

F = TypeVar("F", bound=Callable[..., Any])


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


def install_option(
    setting: operatorsettings.Setting[object],
    *,
    flag: str,
    says: str = "Passed to the operator",
    default_help: str | None = None,
) -> Callable[[F], F]:
    """Another command's flag standing for *setting* (``hearth install``'s passing it through to the
    operator it deploys, ``hearth render``'s rendering as the operator would): the operator's type and
    default, without its variable (only the operator reads one)."""
    parameter_type = _TYPES[setting.kind](setting)
    if isinstance(parameter_type, click.Choice):
        # The reference's empty spelling of a choice stays the operator's own.
        parameter_type = click.Choice([choice for choice in parameter_type.choices if choice])
    # As install says it: "Passed to the operator: gateway replicas per LLMService ...".
    said = f"{says}: {setting.help[:1].lower()}{setting.help[1:]}"
    if default_help is not None:
        default, help = (
            None,
            f"{said.removesuffix('.')} [default: {default_help}].",
        )
    elif setting.kind is operatorsettings.Kind.SWITCH:
        default, help = setting.default, said
    else:
        default, help = setting.default_text(), said
    names = [f"{flag}/--no-{flag.removeprefix('--')}" if setting.off_flag else flag]
    return click.option(
        *names,
        type=parameter_type,
        default=default,
        show_default=default_help is None,
        help=help,
    )


def install_options(function: F) -> F:
    """Every setting ``hearth install`` passes through, as its flag."""
    for setting, deployed in reversed(operatorsettings.deployed()):
        if deployed.install_flag is not None:
            option = install_option(
                setting, flag=deployed.install_flag, default_help=deployed.install_default_help
            )
            function = option(function)
    return function
