"""The scaler modes: how backend replicas are driven, and what each mode asks of KEDA, the gateway and the
operator (SPEC §2.3, §2.10, DESIGN 2).

One table, read by plan/render, status, the autoscaler, the gateway and the CLI, so adding a mode means
adding an entry here plus its render builders (:mod:`hearth.render.scalers`), its goldens and its docs.
It sits below both roles: the operator writes ``HEARTH_SCALER_MODE`` and the gateway reads it.
"""

from __future__ import annotations

import dataclasses
import enum


class ScalerMode(enum.StrEnum):
    """``--scaler-mode``: a fixed mode, or ``auto`` (resolved against the cluster before anything renders)."""

    AUTO = "auto"
    METRICS_API = "metrics-api"
    EXTERNAL_PUSH = "external-push"
    BUILTIN = "builtin"

    def resolve(self, *, keda_installed: bool) -> ScalerMode:
        """The mode in force: ``auto`` is metrics-api with KEDA installed and builtin without."""
        if self is ScalerMode.AUTO:
            return ScalerMode.METRICS_API if keda_installed else ScalerMode.BUILTIN
        return self

    def candidates(self) -> tuple[ScalerMode, ...]:
        """Every mode this one may resolve to (whatever the cluster turns out to have)."""
        return tuple(dict.fromkeys(self.resolve(keda_installed=keda) for keda in (True, False)))


class Driver(enum.StrEnum):
    """Who moves the backend's replica count."""

    KEDA = "KEDA"
    GATEWAY = "gateway"
    OPERATOR = "operator"


@dataclasses.dataclass(frozen=True, slots=True)
class Traits:
    """What one (resolved) scaler mode is and needs."""

    mode: ScalerMode
    #: It renders a KEDA ScaledObject; without KEDA the backend stays at the API server's 1 replica.
    needs_keda: bool
    #: Who scales the backend 0→1 when a request arrives.
    wakes: Driver
    #: Who scales 1→N under load and N→0 after scaleDownStabilization.
    scales: Driver
    #: The most gateway replicas per LLMService it works with (None: any number).
    max_gateway_replicas: int | None
    #: Why there is a maximum (said when a setting exceeds it).
    max_gateway_replicas_why: str
    #: The gateway serves KEDA's ExternalScaler gRPC (env HEARTH_SCALER_LISTEN_ADDR, port ``grpc``, and
    #: Service ``<svc>-scaler``).
    gateway_serves_grpc: bool
    #: The gateway patches its backend Deployment's scale subresource (Role rule, Kubernetes API access).
    gateway_patches_scale: bool
    #: Each gateway replica answers KEDA with the demand summed over its peer replicas, found through the
    #: EndpointSlices of the gateway's own Service (HEARTH_PEERS_SERVICE; :mod:`hearth.gateway.scaler.peers`).
    gateway_sums_peers: bool
    #: The Scaling condition when the mode is in force: its reason and message.
    scaling_reason: str
    scaling_message: str
    #: LLMServices may join an AcceleratorPool (spec.pool): the operator alone sets their replicas.
    pools: bool = False
    #: Why not, when not (the refusal names it).
    pools_why: str = ""


_TABLE: dict[ScalerMode, Traits] = {
    ScalerMode.METRICS_API: Traits(
        mode=ScalerMode.METRICS_API,
        needs_keda=True,
        wakes=Driver.KEDA,
        scales=Driver.KEDA,
        max_gateway_replicas=None,
        max_gateway_replicas_why="",
        gateway_serves_grpc=False,
        gateway_patches_scale=False,
        gateway_sums_peers=False,
        scaling_reason="KEDA",
        scaling_message="scaled by KEDA (metrics-api)",
        pools_why="KEDA owns the backend's replicas in metrics-api mode, so the pool could not hold them",
    ),
    ScalerMode.EXTERNAL_PUSH: Traits(
        mode=ScalerMode.EXTERNAL_PUSH,
        needs_keda=True,
        wakes=Driver.KEDA,
        scales=Driver.KEDA,
        # KEDA's one connection reaches one replica, which answers for all of them (issue 27).
        max_gateway_replicas=None,
        max_gateway_replicas_why="",
        gateway_serves_grpc=True,
        gateway_patches_scale=False,
        gateway_sums_peers=True,
        scaling_reason="KEDA",
        scaling_message="scaled by KEDA (external-push)",
        pools_why="KEDA owns the backend's replicas in external-push mode, so the pool could not hold them",
    ),
    ScalerMode.BUILTIN: Traits(
        mode=ScalerMode.BUILTIN,
        needs_keda=False,
        wakes=Driver.GATEWAY,
        scales=Driver.OPERATOR,
        max_gateway_replicas=None,
        max_gateway_replicas_why="",
        gateway_serves_grpc=False,
        gateway_patches_scale=True,
        gateway_sums_peers=False,
        scaling_reason="Builtin",
        scaling_message="scaled by Hearth's built-in autoscaler",
        pools=True,
    ),
}

#: The modes that render (every mode but ``auto``), in table order.
RESOLVED: tuple[ScalerMode, ...] = tuple(_TABLE)


def traits(mode: ScalerMode) -> Traits:
    """The traits of a resolved mode; ``auto`` has none until :meth:`ScalerMode.resolve` picks one."""
    try:
        return _TABLE[mode]
    except KeyError:
        raise ValueError(f"scaler mode {mode} must be resolved first") from None


def parse_resolved(text: str) -> ScalerMode:
    """A resolved mode from its name (the gateway's HEARTH_SCALER_MODE); ValueError names the choices."""
    try:
        mode = ScalerMode(text)
    except ValueError:
        mode = None
    if mode not in _TABLE:
        raise ValueError(f'"{text}" is not one of {", ".join(RESOLVED)}')
    assert mode is not None
    return mode


def check_gateway_replicas(mode: ScalerMode, *, replicas: int) -> None:
    """ValueError when *mode* (whatever it resolves to) cannot run *replicas* gateway replicas."""
    for resolved in mode.candidates():
        limited = _TABLE[resolved]
        if _fits(resolved, replicas):
            continue
        assert limited.max_gateway_replicas is not None
        wanted = replicas_wanted(limited.max_gateway_replicas)
        roomier = " or ".join(other for other in RESOLVED if _fits(other, replicas))
        raise ValueError(
            f"--scaler-mode={mode} requires --gateway-replicas{wanted}: {limited.max_gateway_replicas_why}"
            + (f" (use {roomier} for more replicas)" if roomier else "")
        )


def replicas_wanted(limit: int) -> str:
    """A gateway-replica limit as it reads after the setting's name (``=1``, ``<=3``): the CLI's message
    and the Helm chart's guard say it alike."""
    return "=1" if limit == 1 else f"<={limit}"


def _fits(mode: ScalerMode, replicas: int) -> bool:
    limit = _TABLE[mode].max_gateway_replicas
    return limit is None or replicas <= limit
