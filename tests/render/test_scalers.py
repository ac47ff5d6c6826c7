"""The render side of the scaler-mode registry: each mode has builders that build what its traits say."""

from __future__ import annotations

from hearth.api import loading, scalermodes
from hearth.api.llmservice import LLMService
from hearth.render import scalers

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
