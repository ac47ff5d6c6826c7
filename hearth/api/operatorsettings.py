"""The operator's settings, declared once: each one's field, flag, environment variable, kind, default and
help, and how ``hearth install`` and the Helm chart set it on the operator they deploy.

Everything else reads this table (as :mod:`hearth.api.gatewayenv` does for the gateway):
``hearth.operator.settings`` takes its field defaults from it, ``hearth operator`` turns each entry into a
flag (``hearth.cmd.operator``), ``hearth install`` into its pass-through flags and the operator's arguments
(``hearth.install.manifests``), ``python -m hearth.install.generate`` into the chart's operator arguments,
values schema and value defaults, and ``python -m hearth.docs`` into the settings reference. A setting is
added here and nowhere else.

The shared logging and kubeconfig flags (``hearth.cmd.params``) and the reference's hidden
``--zap-*``/``--enable-http2`` spellings are not settings of their own, so they are not in the table.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Generic, TypeVar

from hearth.api import meta, scalermodes
from hearth.common import durations, netaddr

T_co = TypeVar("T_co", covariant=True)

#: The reference's gateway image: the operator's default, which it renders unless told the hearth image.
DEFAULT_GATEWAY_IMAGE = "ghcr.io/hearth-project/hearth-gateway:latest"
#: Where ``hearth install`` and the chart serve ``/healthz`` and ``/readyz``: their probes' port.
HEALTH_PORT = 8081


class Kind(enum.Enum):
    """How a setting's text is read (``hearth.cmd.operator`` maps each to a click type)."""

    ADDRESS_OR_OFF = "address"  #: ``[host]:port``; ``0`` or empty turns the endpoint off
    SWITCH = "switch"  #: ``--name/--no-name``
    COUNT = "count"  #: a whole number, at least ``minimum``
    CHOICE = "choice"  #: one of ``choices``
    TEXT = "text"  #: non-empty, no whitespace (an image, a file name)
    OBJECT_NAME = "object-name"  #: a DNS subdomain
    NAMESPACE = "namespace"  #: a DNS label
    DURATION = "duration"  #: a Go duration, at least ``minimum`` nanoseconds
    DIRECTORY = "directory"  #: an existing directory; empty: none


@dataclasses.dataclass(frozen=True, slots=True)
class Deployed:
    """How ``hearth install`` and the chart set the setting on the operator Deployment they write. Both
    write the same argument; a test renders the chart against ``hearth install`` for equal choices."""

    #: ``hearth install``'s flag passing it through (same meaning, type and default as the operator's);
    #: None: install always passes ``fixed``.
    install_flag: str | None = None
    #: What ``hearth install --help`` says is the default, when it is not the operator's.
    install_default_help: str | None = None
    #: The chart value (a path under ``.Values``) passing it through; None: the chart passes ``fixed``.
    chart_value: str | None = None
    #: The Go template expression of the chart's value when it is not just ``.Values.<chart_value>``.
    chart_expression: str | None = None
    #: What install passes when the user has no choice, and the chart value's default (as a user writes
    #: it); None: the operator's default. A switch with a fixed value is always passed, ``--name`` or
    #: ``--no-name``; a switch users choose is passed when on (off is the operator's default).
    fixed: str | None = None

    def expression(self) -> str | None:
        """The Go template expression of the value the chart passes (None: ``fixed``, written as it is)."""
        if self.chart_expression is not None:
            return self.chart_expression
        return None if self.chart_value is None else f".Values.{self.chart_value}"


@dataclasses.dataclass(frozen=True, slots=True)
class Setting(Generic[T_co]):
    """One operator setting."""

    #: The field of ``OperatorSettings`` it fills.
    field: str
    #: The flag; for a switch also ``--no-<name>``.
    flag: str
    kind: Kind
    help: str
    #: The typed default (what the operator runs with when the flag is not given).
    default: T_co
    #: What ``--help`` says about a default that is not a plain value (None: the value itself).
    default_help: str | None = None
    env: str | None = None
    choices: tuple[str, ...] = ()
    #: The least value: a count, or a duration in nanoseconds.
    minimum: int | None = None
    deployed: Deployed | None = None

    @property
    def off_flag(self) -> str | None:
        """A switch's ``--no-`` spelling."""
        return "--no-" + self.flag.removeprefix("--") if self.kind is Kind.SWITCH else None

    def default_text(self) -> str | None:
        """The default as a user writes it (None: unset, e.g. a directory that is not given)."""
        return format_value(self.default, kind=self.kind)


def format_value(value: object, *, kind: Kind) -> str | None:
    """*value* as a user writes it for a setting of *kind* (None: not given)."""
    if kind is Kind.ADDRESS_OR_OFF:
        return "0" if value is None else str(value)
    if kind is Kind.SWITCH:
        return "true" if value else "false"
    if kind is Kind.DURATION and isinstance(value, durations.Duration):
        return str(value)
    return None if value is None else str(value)


HEALTH_ADDRESS: Setting[netaddr.ListenAddress | None] = Setting(
    "health_address",
    "--health-probe-bind-address",
    Kind.ADDRESS_OR_OFF,
    "Address of /healthz and /readyz; 0 disables them.",
    default=netaddr.ListenAddress(host=None, port=HEALTH_PORT),
    deployed=Deployed(fixed=f":{HEALTH_PORT}"),
)
METRICS_ADDRESS: Setting[netaddr.ListenAddress | None] = Setting(
    "metrics_address",
    "--metrics-bind-address",
    Kind.ADDRESS_OR_OFF,
    "Address of /metrics (e.g. :8443); 0 disables it. With --no-metrics-secure it may equal the health "
    "address.",
    # The reference's default "0": no metrics endpoint.
    default=None,
    # hearth install --metrics-port and the chart's metrics.enabled/port also make a Service: set there.
)
METRICS_SECURE: Setting[bool] = Setting(
    "metrics_secure",
    "--metrics-secure",
    Kind.SWITCH,
    "Serve metrics over HTTPS, only to callers the API server allows to get /metrics (TokenReview + "
    "SubjectAccessReview; bind the hearth-metrics-reader ClusterRole).",
    default=True,
)
METRICS_CERT_DIR: Setting[str | None] = Setting(
    "metrics_cert_dir",
    "--metrics-cert-path",
    Kind.DIRECTORY,
    "Directory with the metrics serving certificate and key, reloaded when they change.",
    default=None,
    default_help="a self-signed pair made at start",
)
METRICS_CERT_NAME: Setting[str] = Setting(
    "metrics_cert_name", "--metrics-cert-name", Kind.TEXT, "Certificate file name.", default="tls.crt"
)
METRICS_KEY_NAME: Setting[str] = Setting(
    "metrics_key_name", "--metrics-cert-key", Kind.TEXT, "Key file name.", default="tls.key"
)
LEADER_ELECT: Setting[bool] = Setting(
    "leader_elect",
    "--leader-elect",
    Kind.SWITCH,
    "Hold a Lease so only one replica reconciles.",
    default=False,
    # Always on where replicas overlap (a rolling upgrade): only the leader may act.
    deployed=Deployed(chart_value="operator.leaderElect", fixed="true"),
)
LEADER_ELECTION_ID: Setting[str] = Setting(
    "leader_election_id",
    "--leader-election-id",
    Kind.OBJECT_NAME,
    "Name of the Lease.",
    # The reference's name; its holderIdentity starts with the pod name.
    default="6d7012cb.hearth.dev",
)
LEADER_ELECTION_NAMESPACE: Setting[str] = Setting(
    "leader_election_namespace",
    "--leader-election-namespace",
    Kind.NAMESPACE,
    "Namespace of the Lease.",
    # The command looks for the pod's namespace first (it is an I/O default, resolved at start).
    default=meta.DEFAULT_NAMESPACE,
    default_help="POD_NAMESPACE, else the pod's own namespace, else default",
)
GATEWAY_IMAGE: Setting[str] = Setting(
    "gateway_image",
    "--gateway-image",
    Kind.TEXT,
    "Image of every LLMService's gateway.",
    default=DEFAULT_GATEWAY_IMAGE,
    env="HEARTH_GATEWAY_IMAGE",
    # install's and the chart's default is the hearth image itself (one image runs every role).
    deployed=Deployed(
        install_flag="--gateway-image",
        install_default_help="--image",
        chart_expression='include "hearth.gatewayImage" .',
    ),
)
GATEWAY_REPLICAS: Setting[int] = Setting(
    "gateway_replicas",
    "--gateway-replicas",
    Kind.COUNT,
    "Gateway replicas per LLMService (external-push requires 1).",
    default=1,
    minimum=1,
    deployed=Deployed(install_flag="--gateway-replicas", chart_value="gateway.replicas"),
)
NETWORK_POLICIES: Setting[bool] = Setting(
    "network_policies",
    "--network-policies",
    Kind.SWITCH,
    "A NetworkPolicy per LLMService: only its gateway (and namespaces labelled metrics=enabled) may reach "
    "its backend pods. Needs a CNI that enforces NetworkPolicies.",
    default=False,
    deployed=Deployed(install_flag="--network-policies", chart_value="networkPolicies.enabled"),
)
SCALER: Setting[scalermodes.ScalerMode] = Setting(
    "scaler",
    "--scaler-mode",
    Kind.CHOICE,
    "auto: KEDA metrics-api when KEDA is installed, else builtin (followed as KEDA comes and goes). "
    'metrics-api/external-push: KEDA ScaledObjects ("" means metrics-api, as in the reference). builtin: '
    "Hearth scales the backends itself.",
    default=scalermodes.ScalerMode.AUTO,
    # "" is the reference's spelling of metrics-api (the operator's flag only; install and the chart
    # offer the modes).
    choices=(*(str(mode) for mode in scalermodes.ScalerMode), ""),
    deployed=Deployed(install_flag="--scaler-mode", chart_value="gateway.scalerMode"),
)
CONCURRENT_RECONCILES: Setting[int] = Setting(
    "concurrent_reconciles",
    "--concurrent-reconciles",
    Kind.COUNT,
    "LLMServices reconciled in parallel.",
    default=4,
    minimum=1,
)
#: Shorter would make the built-in autoscaler hammer every gateway (and the API) for nothing.
MIN_AUTOSCALE_INTERVAL = durations.Duration(100 * durations.MILLISECOND)
AUTOSCALE_INTERVAL: Setting[durations.Duration] = Setting(
    "autoscale_interval",
    "--autoscale-interval",
    Kind.DURATION,
    f"Built-in mode: how often gateway demand is read and backends are scaled (at least "
    f"{MIN_AUTOSCALE_INTERVAL}); a pass also runs at once when a gateway admits a cold request for a model "
    "the operator wakes (a pool member) or a pool member's pod goes away.",
    default=durations.Duration(2 * durations.SECOND),
    minimum=MIN_AUTOSCALE_INTERVAL.nanoseconds,
)

#: Every setting, in the order ``--help`` lists them.
SETTINGS: tuple[Setting[object], ...] = (
    HEALTH_ADDRESS,
    METRICS_ADDRESS,
    METRICS_SECURE,
    METRICS_CERT_DIR,
    METRICS_CERT_NAME,
    METRICS_KEY_NAME,
    LEADER_ELECT,
    LEADER_ELECTION_ID,
    LEADER_ELECTION_NAMESPACE,
    GATEWAY_IMAGE,
    GATEWAY_REPLICAS,
    NETWORK_POLICIES,
    SCALER,
    CONCURRENT_RECONCILES,
    AUTOSCALE_INTERVAL,
)


def deployed() -> list[tuple[Setting[object], Deployed]]:
    """The settings ``hearth install`` and the chart set, in the order the operator's arguments list them."""
    return [(setting, setting.deployed) for setting in SETTINGS if setting.deployed is not None]
