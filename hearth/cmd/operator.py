"""``hearth operator``: the control loop (SPEC §2.10 flags, plus Hearth's own)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

import hearth
from hearth.api import meta, scalermodes
from hearth.cmd import params
from hearth.common import durations, logs, netaddr
from hearth.operator import app
from hearth.operator.settings import OperatorSettings
from hearth.render.config import DEFAULT_GATEWAY_IMAGE
from hearth.render.names import LEADER_ELECTION_ID

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _address(value: str, flag: str) -> netaddr.ListenAddress | None:
    """Go-style bind addresses; "0" (the reference's spelling) disables the endpoint."""
    if value in ("0", ""):
        return None
    try:
        return netaddr.ListenAddress.parse(value)
    except netaddr.AddressError as error:
        raise click.BadParameter(str(error), param_hint=flag) from None


def _default_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if _SERVICE_ACCOUNT_NAMESPACE.exists():
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return meta.DEFAULT_NAMESPACE


@click.command("operator", short_help="Run the control loop that turns LLMServices into workloads.")
@click.option("--version", "show_version", is_flag=True, help="Print the version and exit.")
@click.option(
    "--health-probe-bind-address",
    default=":8081",
    show_default=True,
    help="Address of /healthz and /readyz; 0 disables them.",
)
@click.option(
    "--metrics-bind-address",
    default="0",
    show_default=True,
    help="Address of /metrics (e.g. :8443); 0 disables it. With --no-metrics-secure it may equal the "
    "health address.",
)
@click.option(
    "--metrics-secure/--no-metrics-secure",
    default=True,
    show_default=True,
    help="Serve metrics over HTTPS, only to callers the API server allows to get /metrics "
    "(TokenReview + SubjectAccessReview; bind the hearth-metrics-reader ClusterRole).",
)
@click.option(
    "--metrics-cert-path",
    default="",
    help="Directory with the metrics serving certificate and key, reloaded when they change "
    "[default: a self-signed pair made at start].",
)
@click.option("--metrics-cert-name", default="tls.crt", show_default=True, help="Certificate file name.")
@click.option("--metrics-cert-key", default="tls.key", show_default=True, help="Key file name.")
@click.option(
    "--enable-http2", is_flag=True, hidden=True, help="Accepted for compatibility; metrics use HTTP/1.1."
)
@click.option(
    "--leader-elect/--no-leader-elect",
    default=False,
    show_default=True,
    help="Hold a Lease so only one replica reconciles.",
)
@click.option(
    "--leader-election-id", default=LEADER_ELECTION_ID, show_default=True, help="Name of the Lease."
)
@click.option(
    "--leader-election-namespace",
    default=None,
    help="Namespace of the Lease [default: POD_NAMESPACE, else the pod's own namespace, else default].",
)
@click.option(
    "--gateway-image",
    default=DEFAULT_GATEWAY_IMAGE,
    show_default=True,
    envvar="HEARTH_GATEWAY_IMAGE",
    show_envvar=True,
    help="Image of every LLMService's gateway.",
)
@click.option(
    "--gateway-replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gateway replicas per LLMService (external-push requires 1).",
)
@click.option(
    "--network-policies/--no-network-policies",
    default=False,
    show_default=True,
    help="A NetworkPolicy per LLMService: only its gateway (and namespaces labelled metrics=enabled) may "
    "reach its backend pods. Needs a CNI that enforces NetworkPolicies.",
)
@click.option(
    "--scaler-mode",
    # "" is the reference's spelling of metrics-api.
    type=click.Choice([*(mode.value for mode in scalermodes.ScalerMode), ""]),
    default="auto",
    show_default=True,
    help="auto: KEDA metrics-api when KEDA is installed, else builtin. metrics-api/external-push: KEDA "
    "ScaledObjects. builtin: Hearth scales the backends itself.",
)
@click.option(
    "--concurrent-reconciles",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="LLMServices reconciled in parallel.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="KUBECONFIG",
    help="Kubeconfig to use outside a cluster [default: in-cluster, else ~/.kube/config].",
)
@click.option("--context", default=None, help="Kubeconfig context.")
@click.option("--zap-log-level", "zap_level", default=None, hidden=True, help="Alias of --log-level.")
@click.option(
    "--zap-encoder", "zap_encoder", type=click.Choice(["json", "console"]), default=None, hidden=True
)
@click.option("--zap-devel/--no-zap-devel", default=True, hidden=True, help="Accepted for compatibility.")
@click.option(
    "--autoscale-interval",
    type=params.GO_DURATION,
    default="2s",
    show_default=True,
    help="Built-in mode: how often gateway demand is read and backends are scaled.",
)
@params.logging_options
def command(
    *,
    show_version: bool,
    health_probe_bind_address: str,
    metrics_bind_address: str,
    metrics_secure: bool,
    metrics_cert_path: str,
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
    """Run the control loop: reconcile every LLMService into its backend, gateway, cache and scaler."""
    if show_version:
        click.echo(f"hearth {hearth.__version__}")
        return
    metrics_address = _address(metrics_bind_address, "--metrics-bind-address")
    level = zap_level if zap_level in logs.LOG_LEVELS else log_level
    logs.configure(level=level, fmt="json" if zap_encoder == "json" else log_format)
    try:
        settings = OperatorSettings(
            health_address=_address(health_probe_bind_address, "--health-probe-bind-address"),
            metrics_address=metrics_address,
            metrics_secure=metrics_secure,
            metrics_cert_dir=metrics_cert_path or None,
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
            autoscale_interval=max(0.1, autoscale_interval.seconds),
            kubeconfig=kubeconfig,
            context=context,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    raise SystemExit(asyncio.run(app.run(settings)))
