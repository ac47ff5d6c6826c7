"""Go's flag spellings for a click command, as the reference's manager accepts them (SPEC §2.10): a single
leading dash (``-scaler-mode=builtin``, ``-leader-elect``) and booleans with a value
(``--leader-elect=false``, ``--zap-devel=true``), so the reference's Helm chart, Kustomize overlay and
scripts start ``hearth operator`` unchanged. Click's own spellings (``--flag``, ``--no-flag``,
``--name value``) keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

#: The values Go's strconv.ParseBool accepts.
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _long_names(command: click.Command) -> dict[str, click.Option]:
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
        if name.startswith("--")
    }


def _boolean(ctx: click.Context, option: click.Option, name: str, value: str) -> list[str]:
    """The click spelling of ``name=value`` for a boolean flag."""
    if value in GO_TRUE:
        return [option.opts[0]] if name in option.opts else [name]
    if value in GO_FALSE:
        if name in option.secondary_opts:  # --no-flag=false: the flag itself
            return [option.opts[0]]
        if option.secondary_opts:
            return [option.secondary_opts[0]]
        if option.get_default(ctx) is True:
            raise click.BadParameter("it cannot be turned off", ctx=ctx, param=option)
        return []  # a plain switch that is off by default: false means leaving it out
    raise click.BadParameter(
        f'"{value}" is not a boolean (true or false, as Go parses them)', ctx=ctx, param=option
    )


def normalize(ctx: click.Context, command: click.Command, args: list[str]) -> list[str]:
    """*args* with Go's spellings rewritten into click's; anything else is passed through untouched."""
    options = _long_names(command)
    result: list[str] = []
    value_next = False
    for index, given in enumerate(args):
        if value_next or given == "--":
            # The value of the option before (``--gateway-image -x``), or everything after "--".
            value_next = False
            if given == "--":
                result.extend(args[index:])
                break
            result.append(given)
            continue
        arg = given
        name, equals, value = arg.partition("=")
        if name.startswith("-") and not name.startswith("--") and f"-{name}" in options:
            name, arg = f"-{name}", f"-{arg}"
        option = options.get(name)
        if option is not None and option.is_flag and option.is_bool_flag and equals:
            result.extend(_boolean(ctx, option, name, value))
            continue
        value_next = option is not None and not option.is_flag and not equals
        result.append(arg)
    return result


class GoFlagsCommand(click.Command):
    """A click command that also understands Go's flag spellings (see the module docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize(ctx, self, args))


def command(name: str, **attributes: Any) -> Callable[[Callable[..., Any]], GoFlagsCommand]:
    """``@click.command`` for a :class:`GoFlagsCommand`."""
    return click.command(name, cls=GoFlagsCommand, **attributes)
