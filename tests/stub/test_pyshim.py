"""The stub image's python3 runs exactly the prewarm Job's statement, and refuses everything else."""

from __future__ import annotations

import pytest

from hearth.api import loading, modeluri
from hearth.api.llmservice import LLMService
from hearth.api.runtime import InferenceRuntime
from hearth.e2e import fixtures
from hearth.render import cache
from hearth.stub import pyshim


def _rendered_script(uri: str) -> str:
    """The command the operator renders into a prewarm Job for the e2e's cached LLMService."""
    service = loading.parse_object(
        fixtures.cached_service("warm", "default", "rt", strategy="NodeLocalPVC"), source="test"
    )
    runtime = loading.parse_object(fixtures.runtime("rt", image="stub"), source="test")
    assert isinstance(service, LLMService)
    assert isinstance(runtime, InferenceRuntime)
    model = modeluri.resolve_uri(uri)
    # The reference's form: rendered when the operator does not know the hearth image.
    job = cache.prewarm_job(service, runtime, model, cache.plan(service), hearth_image=None)
    assert job is not None
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["python3", "-c"]
    return str(command[2])


def test_the_rendered_prewarm_command_is_understood() -> None:
    assert pyshim.parse(_rendered_script("hf://hearth/e2e-model")) == pyshim.Download("hearth/e2e-model")


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("import os; os.system('x')", "from huggingface_hub import snapshot_download"),
        ("from modelscope import snapshot_download; snapshot_download('a/b')", "huggingface_hub"),
        ("from huggingface_hub import snapshot_download; print('a/b')", "a call of snapshot_download"),
        ("from huggingface_hub import snapshot_download; snapshot_download(x)", "string literal"),
        (
            "from huggingface_hub import snapshot_download; snapshot_download('a/b', local_dir='/')",
            "local_dir",
        ),
        ("from huggingface_hub import snapshot_download; snapshot_download(", "not valid Python"),
    ],
)
def test_any_other_script_is_refused_with_exit_2(
    script: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(pyshim.UnsupportedScriptError, match=problem):
        pyshim.parse(script)
    assert pyshim.main(["-c", script], {}) == 2
    assert "stand-in" in capsys.readouterr().err


def test_a_revision_keyword_is_passed_on() -> None:
    script = "from huggingface_hub import snapshot_download; snapshot_download(repo_id='a/b', revision='v1')"
    assert pyshim.parse(script) == pyshim.Download("a/b", "v1")


def test_an_unreachable_hub_exits_1_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    script = 'from huggingface_hub import snapshot_download; snapshot_download("a/b")'
    code = pyshim.main(["-c", script], {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": "/nonexistent"})
    assert code == 1
    assert "from http://127.0.0.1:9 failed" in capsys.readouterr().err
