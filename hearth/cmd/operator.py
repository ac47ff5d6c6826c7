"""``hearth operator``: the control loop (SPEC §2.10 flags, plus Hearth's own)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import click

import hearth
from hearth.api import meta, scalermodes
from hearth.cmd import goflags, params
from hearth.common import durations, logs, netaddr
from hearth.operator import app
from hearth.operator.settings import OperatorSettings

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


#: The settings' own defaults are the flags' defaults (one declaration).
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
#: Shorter would make the built-in autoscaler hammer every gateway (and the API) for nothing.
MIN_AUTOSCALE_INTERVAL = durations.Duration(100 * durations.MILLISECOND)


def _default_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if _SERVICE_ACCOUNT_NAMESPACE.exists():
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return meta.DEFAULT_NAMESPACE


@goflags.command("operator", short_help="Run the control loop that turns LLMServices into workloads.")
@click.option("--version", "show_version", is_flag=True, help="Print the version and exit.")
@click.option(
    "--health-probe-bind-address",
    type=OPTIONAL_ADDRESS,
    default=str(DEFAULTS.health_address),
    show_default=True,
    help="Address of /healthz and /readyz; 0 disables them.",
)
@click.option(
    "--metrics-bind-address",
    type=OPTIONAL_ADDRESS,
    default="0",
    show_default=True,
    help="Address of /metrics (e.g. :8443); 0 disables it. With --no-metrics-secure it may equal the "
    "health address.",
)
@click.option(
    "--metrics-secure/--no-metrics-secure",
    default=DEFAULTS.metrics_secure,
    show_default=True,
    help="Serve metrics over HTTPS, only to callers the API server allows to get /metrics "
    "(TokenReview + SubjectAccessReview; bind the hearth-metrics-reader ClusterRole).",
)
@click.option(
    "--metrics-cert-path",
    type=CERT_DIRECTORY,
    default=None,
    help="Directory with the metrics serving certificate and key, reloaded when they change "
    "[default: a self-signed pair made at start].",
)
@click.option(
    "--metrics-cert-name",
    type=params.TEXT,
    default=DEFAULTS.metrics_cert_name,
    show_default=True,
    help="Certificate file name.",
)
@click.option(
    "--metrics-cert-key",
    type=params.TEXT,
    default=DEFAULTS.metrics_key_name,
    show_default=True,
    help="Key file name.",
)
@click.option(
    "--enable-http2", is_flag=True, hidden=True, help="Accepted for compatibility; metrics use HTTP/1.1."
)
@click.option(
    "--leader-elect/--no-leader-elect",
    default=DEFAULTS.leader_elect,
    show_default=True,
    help="Hold a Lease so only one replica reconciles.",
)
@click.option(
    "--leader-election-id",
    type=params.OBJECT_NAME,
    default=DEFAULTS.leader_election_id,
    show_default=True,
    help="Name of the Lease.",
)
@click.option(
    "--leader-election-namespace",
    type=params.NAMESPACE,
    default=None,
    help="Namespace of the Lease [default: POD_NAMESPACE, else the pod's own namespace, else default].",
)
@click.option(
    "--gateway-image",
    type=params.TEXT,
    default=DEFAULTS.gateway_image,
    show_default=True,
    envvar="HEARTH_GATEWAY_IMAGE",
    show_envvar=True,
    help="Image of every LLMService's gateway.",
)
@click.option(
    "--gateway-replicas",
    type=click.IntRange(min=1),
    default=DEFAULTS.gateway_replicas,
    show_default=True,
    help="Gateway replicas per LLMService (external-push requires 1).",
)
@click.option(
    "--network-policies/--no-network-policies",
    default=DEFAULTS.network_policies,
    show_default=True,
    help="A NetworkPolicy per LLMService: only its gateway (and namespaces labelled metrics=enabled) may "
    "reach its backend pods. Needs a CNI that enforces NetworkPolicies.",
)
@click.option(
    "--scaler-mode",
    # "" is the reference's spelling of metrics-api.
    type=click.Choice([*(mode.value for mode in scalermodes.ScalerMode), ""]),
    default=DEFAULTS.scaler.value,
    show_default=True,
    help="auto: KEDA metrics-api when KEDA is installed, else builtin (followed as KEDA comes and goes). "
    'metrics-api/external-push: KEDA ScaledObjects ("" means metrics-api, as in the reference). '
    "builtin: Hearth scales the backends itself.",
)
@click.option(
    "--concurrent-reconciles",
    type=click.IntRange(min=1),
    default=DEFAULTS.concurrent_reconciles,
    show_default=True,
    help="LLMServices reconciled in parallel.",
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
@click.option(
    "--autoscale-interval",
    type=params.GoDurationType(minimum=MIN_AUTOSCALE_INTERVAL),
    default=str(durations.Duration.from_seconds(DEFAULTS.autoscale_interval)),
    show_default=True,
    help=f"Built-in mode: how often gateway demand is read and backends are scaled (at least "
    f"{MIN_AUTOSCALE_INTERVAL}); a pass also runs at once when a gateway admits a cold request for a model "
    "the operator wakes (a pool member) or a pool member's pod goes away.",
)
@params.logging_options
def command(
    *,
    show_version: bool,
    health_probe_bind_address: netaddr.ListenAddress | None,
    metrics_bind_address: netaddr.ListenAddress | None,
    metrics_secure: bool,
    metrics_cert_path: str | None,
    metrics_cert_name: str,
    metrics_cert_key: str,
    leader_elect: bool,
    leader_election_id: str,
    leader_election_namespace: str | None,
    gateway_image: str,
    gateway_replicas: int,
    network_policies: bool,
    scaler_mode: str,
    concurrent_reconciles: int,
    autoscale_interval: durations.Duration,
    kubeconfig: str | None,
    context: str | None,
    zap_level: str | None,
    zap_encoder: str | None,
    log_level: str,
    log_format: logs.LogFormat,
    **_: object,
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
        settings = OperatorSettings(
            health_address=health_probe_bind_address,
            metrics_address=metrics_bind_address,
            metrics_secure=metrics_secure,
            metrics_cert_dir=metrics_cert_path,
            metrics_cert_name=metrics_cert_name,
            metrics_key_name=metrics_cert_key,
            leader_elect=leader_elect,
            leader_election_id=leader_election_id,
            leader_election_namespace=leader_election_namespace or _default_namespace(),
            gateway_image=gateway_image,
            gateway_replicas=gateway_replicas,
            network_policies=network_policies,
            scaler=scalermodes.ScalerMode(scaler_mode or scalermodes.ScalerMode.METRICS_API),
            concurrent_reconciles=concurrent_reconciles,
            autoscale_interval=autoscale_interval.seconds,
            kubeconfig=kubeconfig,
            context=context,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    raise SystemExit(asyncio.run(app.run(settings)))
