import pytest

from hearth.stub import vllm_args
from hearth.stub.vllm_args import VllmArgsError


def test_reads_the_nvidia_profile_form() -> None:
    parsed = vllm_args.parse(
        ["Qwen/Qwen3-8B", "--served-model-name", "qwen", "--port=8000", "--max-model-len", "4096"]
    )
    assert parsed.model == "Qwen/Qwen3-8B"
    assert parsed.served_model_names == ("qwen",)
    assert parsed.port == 8000
    assert parsed.ignored == ("--max-model-len 4096",)


def test_reads_the_ascend_profile_form_with_vllm_serve_prefix() -> None:
    parsed = vllm_args.parse(["vllm", "serve", "/models/qwen", "--host", "0.0.0.0", "--enforce-eager"])
    assert parsed.model == "/models/qwen"
    assert parsed.host == "0.0.0.0"
    assert parsed.ignored == ("--enforce-eager",)


def test_served_model_name_takes_several_names_and_model_flag_wins() -> None:
    parsed = vllm_args.parse(["--model=a", "--served-model-name", "x", "y", "--trust-remote-code"])
    assert parsed.model == "a"
    assert parsed.served_model_names == ("x", "y")


def test_empty_arguments_mean_defaults() -> None:
    assert vllm_args.parse([]) == vllm_args.VllmArgs()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "http"], 'port must be a number from 0 to 65535, got "http"'),
        (["--port=70000"], "port must be a number"),
        (["--served-model-name"], "--served-model-name needs a value"),
        (["m", "--model"], "--model needs a value"),
        (["m", "n"], 'unexpected argument "n"'),
    ],
)
def test_bad_arguments_name_the_problem(argv: list[str], message: str) -> None:
    with pytest.raises(VllmArgsError, match=message):
        vllm_args.parse(argv)
