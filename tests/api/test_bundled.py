"""The bundled data: every bundled runtime is valid and renderable, and the examples are valid. (That each
copy matches its source is tests/install/test_generate.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hearth.api import loading, modeluri
from hearth.api.runtime import InferenceRuntime
from hearth.common import bundle
from hearth.render import gotemplate

EXAMPLES = Path(__file__).parents[2] / "examples"


EXPECTED_RUNTIMES = {
    "vllm-nvidia.yaml": ("nvidia", "nvidia.com/gpu"),
    "vllm-ascend-910b.yaml": ("ascend", "huawei.com/Ascend910"),
    "vllm-ascend-310p.yaml": ("ascend", "huawei.com/Ascend310P"),
    "vllm-stub.yaml": ("generic", "hearth.dev/fake-accelerator"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_RUNTIMES))
def test_bundled_runtime_is_valid_and_its_templates_render(name: str) -> None:
    (runtime,) = loading.load_all(bundle.read_text("runtimes", name), source=name)
    assert isinstance(runtime, InferenceRuntime)
    assert (runtime.spec.vendor, runtime.spec.accelerator.resource_name) == EXPECTED_RUNTIMES[name]
    context = gotemplate.service_context(
        model_path=modeluri.resolve_uri("hf://Qwen/Qwen3-8B").path,
        service_name="qwen",
        service_namespace="ml",
    )
    args = [gotemplate.render(arg, context) for arg in runtime.spec.container.args or []]
    assert "Qwen/Qwen3-8B" in args
    assert "--served-model-name=qwen" in args
    assert not any("{{" in arg for arg in args)
    for env in runtime.spec.container.env or []:
        if env.value is not None:
            gotemplate.render(env.value, context)


def test_ascend_profiles_pass_vllm_serve_explicitly() -> None:
    for name in ("vllm-ascend-910b.yaml", "vllm-ascend-310p.yaml"):
        (runtime,) = loading.load_all(bundle.read_text("runtimes", name), source=name)
        assert isinstance(runtime, InferenceRuntime)
        assert (runtime.spec.container.args or [])[:3] == ["vllm", "serve", "{{ .Model.Path }}"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda path: path.name)
def test_examples_are_valid_hearth_objects(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    hearth_objects = [doc for doc in documents if doc["apiVersion"].startswith("serving.hearth.dev/")]
    assert hearth_objects, f"{path.name} holds no Hearth object"
    for document in hearth_objects:
        loading.parse_object(document, source=path.name)
