"""The CLI reference: every command of the ``hearth`` group and every parameter, read from click."""

from __future__ import annotations

import dataclasses
import inspect

import click

from hearth.cmd import main
from hearth.docs import markdown as md


@dataclasses.dataclass(frozen=True, slots=True)
class Flag:
    """One option as ``--help`` shows it (or would, for a hidden one)."""

    names: tuple[str, ...]
    #: ``--name VALUE`` as ``--help`` writes it.
    synopsis: str
    help: str
    envvar: str | None
    hidden: bool


def commands() -> dict[str, tuple[click.Context, click.Command]]:
    """Every command of the group by name (``hearth`` itself too), with a context to render it in."""
    # As `hearth` makes them: the group's context settings (-h as well as --help) reach every command.
    root = click.Context(main.cli, info_name="hearth", **main.cli.context_settings)
    found: dict[str, tuple[click.Context, click.Command]] = {"hearth": (root, main.cli)}
    for name in main.cli.list_commands(root):
        command = main.cli.get_command(root, name)
        assert command is not None, name
        ctx = click.Context(command, parent=root, info_name=name, **command.context_settings)
        found[f"hearth {name}"] = (ctx, command)
    return found


def _envvar(option: click.Option) -> str | None:
    if isinstance(option.envvar, str):
        return option.envvar
    if option.envvar:
        return ", ".join(option.envvar)
    return None


def flags(ctx: click.Context, command: click.Command) -> list[Flag]:
    """Every option of *command*, hidden ones included (they are accepted, e.g. the reference's spellings)."""
    result = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(ctx)
        if record is None:  # hidden: --help skips it, the reference lists it as accepted
            synopsis, help_text = ", ".join([*param.opts, *param.secondary_opts]), param.help or ""
        else:
            synopsis, help_text = record
        names = (*param.opts, *param.secondary_opts)
        if "--help" in names:
            # As the context spells it: click caches a command's help option with the names of the first
            # context it met (one made without the group's -h, e.g. in a test), not this one's.
            names = tuple(ctx.help_option_names)
            synopsis = ", ".join(names)
        result.append(Flag(names, synopsis, help_text, _envvar(param), param.hidden))
    return result


def arguments(ctx: click.Context, command: click.Command) -> list[click.Argument]:
    return [param for param in command.get_params(ctx) if isinstance(param, click.Argument)]


def _help(command: click.Command) -> str:
    # click's "\b" marks a paragraph it must not rewrap; Markdown keeps line breaks only in code.
    text = inspect.cleandoc(command.help or command.short_help or "")
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b")


def _section(name: str, ctx: click.Context, command: click.Command) -> str:
    usage = " ".join(command.collect_usage_pieces(ctx))
    parts = [f"## `{name}`\n", md.text(_help(command)) + "\n", f"```\n{name} {usage}\n```\n"]
    params = arguments(ctx, command)
    if params:
        rows = [
            [md.code(param.make_metavar(ctx)), "required" if param.required else "optional"]
            for param in params
        ]
        parts.append(md.table(["argument", ""], rows))
    shown = [flag for flag in flags(ctx, command) if not flag.hidden]
    hidden = [flag for flag in flags(ctx, command) if flag.hidden]
    parts.append(
        md.table(["option", "meaning"], [[md.code(flag.synopsis), md.text(flag.help)] for flag in shown])
    )
    if hidden:
        parts.append("Also accepted, not listed by `--help` (compatibility spellings):\n")
        parts.append(
            md.table(["option", "meaning"], [[md.code(flag.synopsis), md.text(flag.help)] for flag in hidden])
        )
    return "\n".join(parts)


def page() -> str:
    intro = (
        "Every command and option of the `hearth` executable, as `hearth <command> --help` gives them. "
        "Options that read an environment variable say so (`env var`); an invalid value stops the "
        "command with exit status 2 naming the flag and the variable."
    )
    sections = [_section(name, ctx, command) for name, (ctx, command) in commands().items()]
    return md.page("Command line", "the click commands of hearth.cmd", intro, *sections)
