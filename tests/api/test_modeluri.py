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
        (
            "gs://bucket/model",
            r'scheme "gs://" is not supported \(use hf://, huggingface://, modelscope://, pvc://, oci://, s3://\)',
        ),
        ("oci://registry/model", "names no digest"),
        ("oci://reg.io/models/tiny:v1", "tags are not accepted"),
        ("oci://reg.io/models/tiny@sha256:abc", "is not a sha256 digest"),
        ("oci://reg.io/Models@sha256:" + "a" * 64, "is not an OCI repository name"),
        ("oci://reg.io/m@sha256:" + "a" * 64 + "/../x", "must be a clean path"),
        ("oci://reg.io/m@sha256:" + "a" * 64 + "?plainHTTP=maybe", "plainHTTP=maybe must be true or false"),
        ("oci://reg.io/m@sha256:" + "a" * 64 + "?insecure=true", 'unknown parameter "insecure"'),
        ("s3://Bucket/model", "is not an S3 bucket name"),
        ("s3://bucket", "name an object or prefix"),
        ("s3://bucket/a/../b", "name an object or prefix"),
        ("s3://bucket/m?endpoint=ftp://x", "must be an http"),
        ("s3://bucket/m?endpoint=http://10.0.0.1:9000&use_path_style=false", "needs use_path_style=true"),
        ("s3://bucket/m?region=a&region=b", "given twice"),
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


def test_secret_ref_is_taken_only_by_sources_with_credentials() -> None:
    spec = ModelSpec.model_validate({"source": {"uri": "hf://a/b", "secretRef": {"name": "token"}}})
    with pytest.raises(ModelResolutionError, match=r"hf:// sources take no Secret \(only oci://, s3:// do\)"):
        modeluri.resolve(spec)
    oci = "oci://reg.io/m@sha256:" + "a" * 64
    spec = ModelSpec.model_validate({"source": {"uri": oci, "secretRef": {"name": "pull"}}})
    assert modeluri.resolve(spec).scheme.credentials is modeluri.Credentials.DOCKER_CONFIG


DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_an_oci_artifact_is_pinned_by_digest_and_fetched_into_a_folder_named_by_it() -> None:
    resolved = modeluri.resolve_uri(f"oci://10.88.0.1:5000/models/tiny@{DIGEST}/tiny.gguf?plainHTTP=true")
    assert resolved.oci == modeluri.OciReference("10.88.0.1:5000", "models/tiny", DIGEST, plain_http=True)
    assert resolved.folder == f"oci/10.88.0.1_5000/models/tiny/sha256-{DIGEST[7:]}"
    assert resolved.file == "tiny.gguf"
    assert resolved.scheme.local_only
    assert modeluri.resolve_uri(f"oci://ghcr.io/org/model@{DIGEST}").oci == modeluri.OciReference(
        "ghcr.io", "org/model", DIGEST
    )


def test_an_s3_prefix_takes_endpoint_region_and_addressing_from_the_query() -> None:
    resolved = modeluri.resolve_uri("s3://models/tiny/v1?endpoint=http://10.88.0.1:7070/&region=eu-1")
    assert resolved.s3 == modeluri.S3Location(
        bucket="models", key="tiny/v1", endpoint="http://10.88.0.1:7070", region="eu-1", path_style=True
    )
    assert resolved.folder == "s3/10.88.0.1_7070/models/tiny/v1"
    aws = modeluri.resolve_uri("s3://models/tiny/m.gguf")
    assert aws.s3 == modeluri.S3Location("models", "tiny/m.gguf", None, "us-east-1", path_style=False)
    assert (aws.folder, aws.file) == ("s3/aws/models/tiny/m.gguf", "m.gguf")
    forced = modeluri.resolve_uri("s3://models/x?endpoint=https://s3.example&use_path_style=false")
    assert forced.s3 is not None
    assert not forced.s3.path_style


def test_every_scheme_names_its_source_and_form() -> None:
    for scheme, entry in modeluri.SCHEMES.items():
        assert scheme in entry.schemes
        assert entry.form.startswith(f"{entry.schemes[0]}://")
        # A source the engine cannot read where it is must be fetched by hearth.
        assert entry.fetched or not entry.local_only


def test_source_wins_over_catalog_ref() -> None:
    spec = ModelSpec(catalog_ref="ignored", source=ModelSource(uri="hf://a/b"))
    assert modeluri.resolve(spec).path == "a/b"
