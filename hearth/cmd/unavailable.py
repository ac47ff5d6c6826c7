"""Commands whose implementation has not landed yet.

They exist so ``hearth --help`` shows the whole shape of the tool, and they fail loudly (exit 3) instead of
pretending to work.
"""

from __future__ import annotations

import click

EXIT_UNAVAILABLE = 3


def _unavailable(name: str, summary: str) -> click.Command:
    def callback(args: tuple[str, ...]) -> None:
        click.echo(f"hearth {name}: not available in this build yet ({summary}).", err=True)
        raise SystemExit(EXIT_UNAVAILABLE)

    return click.Command(
        name,
        callback=callback,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True},
        help=f"{summary}\n\nNot available in this build yet: it exits with status {EXIT_UNAVAILABLE}.",
        short_help=f"{summary} [not available yet]",
    )


COMMANDS = [
    _unavailable("e2e", "Drive the 0->1->N->0 loop against the current kube-context"),
]
