"""The render side of the scaler-mode registry: each mode has builders that build what its traits say."""

from __future__ import annotations

import pytest

from hearth.api import gatewayenv, loading, scalermodes
from hearth.api import pool as pool_api
from hearth.api.llmservice import LLMService
from hearth.render import gateway, scalers
from hearth.render.config import OperatorConfig
from hearth.render.errors import Reason, ReconcileError

SERVICE = loading.parse_object(
    {
        "apiVersion": "serving.hearth.dev/v1alpha1",
        "kind": "LLMService",
        "metadata": {"name": "qwen", "namespace": "ml"},
        "spec": {"model": {"source": {"uri": "hf://Qwen/Qwen3-8B"}}, "runtime": {"name": "vllm-nvidia"}},
    },
    source="test",
)


def test_builders_build_what_the_traits_say() -> None:
    assert isinstance(SERVICE, LLMService)
    for mode in scalermodes.RESOLVED:
        traits, builders = scalermodes.traits(mode), scalers.of(mode)
        assert (builders.trigger is not None) is traits.needs_keda, mode
        assert (builders.scaler_service is not None) is traits.gateway_serves_grpc, mode
        assert bool(builders.gateway_ports) is traits.gateway_serves_grpc, mode
        assert bool(builders.gateway_env) is traits.gateway_serves_grpc, mode
        assert bool(builders.gateway_rules(SERVICE)) is traits.gateway_patches_scale, mode
        if builders.trigger is not None:
            assert builders.trigger(SERVICE)["type"] == str(mode), "KEDA's trigger type is the mode's name"


assert isinstance(SERVICE, LLMService)
PLAIN: LLMService = SERVICE
MEMBER = PLAIN.model_copy(
    update={"spec": PLAIN.spec.model_copy(update={"pool": pool_api.PoolMembership(name="gpus")})}
)


def test_a_pool_members_gateway_may_not_wake_its_backend() -> None:
    config = OperatorConfig(scaler_mode=scalermodes.ScalerMode.BUILTIN)
    assert scalers.of(scalermodes.ScalerMode.BUILTIN).gateway_rules(MEMBER) == []
    env = {
        entry["name"]
        for entry in gateway.deployment(MEMBER, config)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert gatewayenv.BACKEND_DEPLOYMENT.env not in env
    plain = {
        entry["name"]
        for entry in gateway.deployment(PLAIN, config)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert gatewayenv.BACKEND_DEPLOYMENT.env in plain


def test_pools_are_refused_where_keda_owns_the_replicas_naming_the_field() -> None:
    for mode in scalermodes.RESOLVED:
        traits = scalermodes.traits(mode)
        if traits.pools:
            scalers.check_pool(MEMBER, mode)
            continue
        with pytest.raises(ReconcileError) as refused:
            scalers.check_pool(MEMBER, mode)
        assert refused.value.reason is Reason.RENDER
        assert refused.value.message.startswith(
            f"spec.pool: AcceleratorPool gpus cannot be used with --scaler-mode={mode}"
        )
        assert "--scaler-mode=builtin" in refused.value.message
        scalers.check_pool(PLAIN, mode)  # no pool, no refusal
