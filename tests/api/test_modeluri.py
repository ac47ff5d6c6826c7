"""SPEC §5.1: model URI resolution and its error cases."""

from __future__ import annotations

import pytest

from hearth.api import modeluri
from hearth.api.llmservice import ModelSource, ModelSpec
from hearth.api.modeluri import ModelResolutionError


@pytest.mark.parametrize(
    ("uri", "hub", "path", "claim", "repo", "file"),
    [
        ("hf://Qwen/Qwen3-8B", "huggingface", "Qwen/Qwen3-8B", None, "Qwen/Qwen3-8B", None),
        (
            "huggingface://deepseek-ai/DeepSeek-R1",
            "huggingface",
            "deepseek-ai/DeepSeek-R1",
            None,
            "deepseek-ai/DeepSeek-R1",
            None,
        ),
        # One file of a repository (a GGUF): the path stays verbatim for engines that load repositories.
        (
            "hf://Qwen/Qwen3-8B-GGUF/q4/Qwen3-8B-Q4_K_M.gguf",
            "huggingface",
            "Qwen/Qwen3-8B-GGUF/q4/Qwen3-8B-Q4_K_M.gguf",
            None,
            "Qwen/Qwen3-8B-GGUF",
            "q4/Qwen3-8B-Q4_K_M.gguf",
        ),
        ("modelscope://ZhipuAI/glm-4-9b", "modelscope", "ZhipuAI/glm-4-9b", None, "ZhipuAI/glm-4-9b", None),
        ("pvc://models", "pvc", "/models", "models", None, None),
        ("pvc://models/qwen/8b", "pvc", "/models/qwen/8b", "models", None, None),
        ("pvc://shared.store/q", "pvc", "/models/q", "shared.store", None, None),
    ],
)
def test_resolves_supported_schemes(  # noqa: PLR0917 (one parameter per column of the table)
    uri: str, hub: str, path: str, claim: str | None, repo: str | None, file: str | None
) -> None:
    resolved = modeluri.resolve_uri(uri)
    assert (resolved.hub, resolved.path, resolved.claim) == (hub, path, claim)
    assert (resolved.uri, resolved.repo, resolved.file) == (uri, repo, file)
    assert resolved.prewarmable is (hub != "pvc")


def test_the_fetched_file_path_is_known_before_the_download() -> None:
    assert (
        modeluri.fetched_file("/cache/hf", "org/repo", "m.gguf") == "/cache/hf/hearth-files/org/repo/m.gguf"
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("Qwen/Qwen3-8B", "is not a URI"),
        ("://x", "is not a URI"),
        ("hf://", 'has nothing after "hf://"'),
        ("s3://bucket/model", 'scheme "s3://" is not supported yet'),
        ("oci://registry/model", 'scheme "oci://" is not supported yet'),
        ("pvc://Models", "not a valid PersistentVolumeClaim name"),
        ("hf://org/repo/../x.gguf", "must be a clean path inside the repository"),
        ("pvc://bad_claim/x", "not a valid PersistentVolumeClaim name"),
        ("pvc://models//x", "must be relative and already clean"),
        ("pvc://models/a/../b", "must be relative and already clean"),
        ("pvc://models/a/", "must be relative and already clean"),
        ("pvc://models/..", "must stay inside the claim"),
        ("pvc://models/../etc", "must stay inside the claim"),
    ],
)
def test_refuses_bad_uris_naming_them(uri: str, message: str) -> None:
    with pytest.raises(ModelResolutionError, match=message) as caught:
        modeluri.resolve_uri(uri)
    assert f'"{uri}"' in str(caught.value)


def test_catalog_ref_without_source_explains_it_is_not_implemented() -> None:
    with pytest.raises(ModelResolutionError, match="catalog lookup is not implemented"):
        modeluri.resolve(ModelSpec(catalog_ref="qwen3"))
    with pytest.raises(ModelResolutionError, match=r"model.source.uri is required"):
        modeluri.resolve(ModelSpec())


def test_secret_ref_is_refused() -> None:
    spec = ModelSpec.model_validate({"source": {"uri": "hf://a/b", "secretRef": {"name": "token"}}})
    with pytest.raises(ModelResolutionError, match="secretRef is not supported yet"):
        modeluri.resolve(spec)


def test_source_wins_over_catalog_ref() -> None:
    spec = ModelSpec(catalog_ref="ignored", source=ModelSource(uri="hf://a/b"))
    assert modeluri.resolve(spec).path == "a/b"
