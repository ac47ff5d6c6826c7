"""``hearth operator``: the control loop (SPEC §2.10 flags, plus Hearth's own)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import click

import hearth
from hearth.api import meta, operatorsettings, scalermodes
from hearth.cmd import goflags, operatorflags, params
from hearth.common import logs
from hearth.operator import app
from hearth.operator.settings import OperatorSettings

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


#: The settings the flags fill when not given (their defaults are the table's).
DEFAULTS = OperatorSettings()


def _default_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if _SERVICE_ACCOUNT_NAMESPACE.exists():
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return meta.DEFAULT_NAMESPACE


def settings_from(values: dict[str, Any], *, kubeconfig: str | None, context: str | None) -> OperatorSettings:
    """The operator's settings from the parsed flags (ValueError for a combination it refuses)."""
    fields: dict[str, Any] = {}
    for setting in operatorsettings.SETTINGS:
        value = values[operatorflags.param_name(setting)]
        if value is not None:
            fields[setting.field] = value
    if "leader_election_namespace" not in fields:
        fields["leader_election_namespace"] = _default_namespace()
    # "" is the reference's spelling of metrics-api.
    fields["scaler"] = scalermodes.ScalerMode(fields["scaler"] or scalermodes.ScalerMode.METRICS_API)
    return OperatorSettings(**fields, kubeconfig=kubeconfig, context=context)


@goflags.command("operator", short_help="Run the control loop that turns LLMServices into workloads.")
@click.option("--version", "show_version", is_flag=True, help="Print the version and exit.")
@operatorflags.setting_options
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
