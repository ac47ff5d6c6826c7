"""The scaler-mode registry: auto's resolution, the one gateway-replica guard, and the gateway's parse."""

from __future__ import annotations

import dataclasses

import pytest

from hearth.api import scalermodes
from hearth.api.scalermodes import ScalerMode
from hearth.render import scalers
from hearth.render.config import OperatorConfig


def test_auto_resolves_to_metrics_api_with_keda_and_builtin_without() -> None:
    assert ScalerMode.AUTO.resolve(keda_installed=True) is ScalerMode.METRICS_API
    assert ScalerMode.AUTO.resolve(keda_installed=False) is ScalerMode.BUILTIN
    assert ScalerMode.AUTO.candidates() == (ScalerMode.METRICS_API, ScalerMode.BUILTIN)
    for mode in scalermodes.RESOLVED:
        assert mode.resolve(keda_installed=False) is mode
        assert mode.candidates() == (mode,)


def test_every_mode_but_auto_has_traits() -> None:
    assert set(scalermodes.RESOLVED) == set(ScalerMode) - {ScalerMode.AUTO}
    for mode in scalermodes.RESOLVED:
        assert scalermodes.traits(mode).mode is mode
    with pytest.raises(ValueError, match="auto must be resolved first"):
        scalermodes.traits(ScalerMode.AUTO)


def test_traits_agree_with_who_does_what() -> None:
    for mode in scalermodes.RESOLVED:
        traits = scalermodes.traits(mode)
        # KEDA drives both directions or neither; without KEDA the gateway wakes and the operator scales.
        assert (traits.wakes is scalermodes.Driver.KEDA) is traits.needs_keda
        assert (traits.scales is scalermodes.Driver.KEDA) is traits.needs_keda
        assert traits.gateway_patches_scale is (traits.wakes is scalermodes.Driver.GATEWAY)
        assert bool(traits.max_gateway_replicas_why) is (traits.max_gateway_replicas is not None)
        # Summing the peers is what the gRPC scaler answers with; a mode that reads every gateway pod itself
        # (metrics-api, the builtin autoscaler) must not sum them again.
        assert traits.gateway_sums_peers is traits.gateway_serves_grpc


@pytest.mark.parametrize(
    ("mode", "replicas", "message"),
    [
        (
            ScalerMode.METRICS_API,
            2,
            "--scaler-mode=metrics-api requires --gateway-replicas=1: one reason (use external-push or "
            "builtin for more replicas)",
        ),
        (ScalerMode.METRICS_API, 1, None),
        (ScalerMode.EXTERNAL_PUSH, 5, None),
        (ScalerMode.BUILTIN, 5, None),
        (
            ScalerMode.AUTO,
            2,
            "--scaler-mode=auto requires --gateway-replicas=1: one reason (use external-push or builtin for "
            "more replicas)",
        ),
    ],
)
def test_gateway_replicas_guard_comes_from_the_traits(
    mode: ScalerMode, replicas: int, message: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No mode limits its gateways since external-push sums its peers (issue 27); the guard stays for a
    # mode that would, so one is limited here.
    limited = dataclasses.replace(
        scalermodes.traits(ScalerMode.METRICS_API),
        max_gateway_replicas=1,
        max_gateway_replicas_why="one reason",
    )
    monkeypatch.setitem(scalermodes._TABLE, ScalerMode.METRICS_API, limited)
    if message is None:
        scalermodes.check_gateway_replicas(mode, replicas=replicas)
        return
    with pytest.raises(ValueError, match="requires") as caught:
        scalermodes.check_gateway_replicas(mode, replicas=replicas)
    assert str(caught.value) == message


@pytest.mark.parametrize("text", ["auto", "keda", "", "BUILTIN"])
def test_the_gateway_accepts_only_resolved_modes(text: str) -> None:
    with pytest.raises(ValueError, match="is not one of metrics-api, external-push, builtin"):
        scalermodes.parse_resolved(text)
    assert scalermodes.parse_resolved("builtin") is ScalerMode.BUILTIN


def test_rendering_takes_only_a_resolved_mode() -> None:
    with pytest.raises(ValueError, match="auto must be resolved first"):
        OperatorConfig(scaler_mode=ScalerMode.AUTO)
    with pytest.raises(ValueError, match="auto must be resolved first"):
        scalers.of(ScalerMode.AUTO)
