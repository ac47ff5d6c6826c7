"""The bundled data: generated CRDs match the models, every bundled runtime is valid and renderable, and
the examples are valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hearth.api import crd, loading, modeluri
from hearth.api.runtime import InferenceRuntime
from hearth.common import bundle
from hearth.render import gotemplate

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_bundled_crds_match_the_models() -> None:
    generated = crd.generated_files()
    assert bundle.names("crds") == sorted(generated)
    for name, text in generated.items():
        assert bundle.read_text("crds", name) == text, f"{name} is stale: run python -m hearth.api.crd"


def test_crd_generator_check_mode_reports_drift(tmp_path: pytest.TempPathFactory) -> None:
    out = tmp_path
    assert crd.main(["--out", str(out)]) == 0
    assert crd.main(["--check", "--out", str(out)]) == 0
    (out / "llmservices.serving.hearth.dev.yaml").write_text("stale")  # type: ignore[operator]
    assert crd.main(["--check", "--out", str(out)]) == 1


@pytest.mark.parametrize("kind", bundle.KINDS)
def test_the_checkout_folder_is_a_real_copy_of_the_bundle(kind: str) -> None:
    mirror = bundle.checkout_mirror(kind)
    assert mirror.is_dir(), f"{mirror} is missing"
    assert not mirror.is_symlink(), f"{mirror} must be a real folder: kubectl cannot apply a symlinked one"
    assert sorted(path.name for path in mirror.glob("*.yaml")) == bundle.names(kind)
    fix = "run python -m hearth.api.crd" if kind == "crds" else f"cp hearth/bundled/{kind}/*.yaml {kind}/"
    for name in bundle.names(kind):
        assert (mirror / name).read_text(encoding="utf-8") == bundle.read_text(kind, name), (
            f"{kind}/{name} differs from hearth/bundled/{kind}/{name}: {fix}"
        )


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
