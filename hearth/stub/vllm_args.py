"""Reading the vLLM command line the stub is started with.

InferenceRuntime profiles pass vLLM's own arguments (``vllm serve MODEL --served-model-name NAME --port 8000
…``) to the serving container. The stub stands in for vLLM, so it honours the arguments that change what a
client sees (model names, host and port) and accepts every other vLLM flag without acting on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

# vLLM flags whose value the stub uses; every other flag is recognised only to be skipped.
_VALUE_FLAGS = ("--model", "--served-model-name", "--host", "--port")


class VllmArgsError(ValueError):
    """Arguments the stub cannot make sense of (e.g. a non-numeric ``--port``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class VllmArgs:
    model: str | None = None
    served_model_names: tuple[str, ...] = ()
    host: str | None = None
    port: int | None = None
    ignored: tuple[str, ...] = ()


def parse(argv: tuple[str, ...] | list[str]) -> VllmArgs:
    """Parse ``[vllm serve] [MODEL] [--flag value… | --flag=value | --switch]…``.

    A positional model is recognised only first (after an optional ``vllm serve`` prefix, as the Ascend
    profiles pass it), as in ``vllm serve``. ``--served-model-name`` takes one or more names, as in vLLM.
    """
    args = list(argv)
    if args[:2] == ["vllm", "serve"]:
        args = args[2:]
    model = args.pop(0) if args and not args[0].startswith("-") else None
    names: list[str] = []
    host: str | None = None
    port: int | None = None
    ignored: list[str] = []
    for flag, values, original in _options(args):
        if flag in _VALUE_FLAGS and not values:
            raise VllmArgsError(f"{flag} needs a value")
        if flag == "--model":
            model = values[-1]
        elif flag == "--served-model-name":
            names.extend(values)
        elif flag == "--host":
            host = values[-1]
        elif flag == "--port":
            port = _port(values[-1])
        else:
            ignored.append(original)
    return VllmArgs(
        model=model, served_model_names=tuple(names), host=host, port=port, ignored=tuple(ignored)
    )


def _options(args: list[str]) -> Iterator[tuple[str, list[str], str]]:
    """Yield ``(flag, values, original text)`` for each ``--flag=value`` or ``--flag value…`` group."""
    index = 0
    while index < len(args):
        token = args[index]
        if not token.startswith("--"):
            raise VllmArgsError(
                f'unexpected argument "{token}": the model may only be given first or with --model'
            )
        index += 1
        flag, has_inline, inline = token.partition("=")
        if has_inline:
            yield flag, [inline], token
            continue
        values: list[str] = []
        while index < len(args) and not args[index].startswith("--"):
            values.append(args[index])
            index += 1
        yield flag, values, " ".join([token, *values])


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise VllmArgsError(f'--port must be a number from 0 to 65535, got "{text}"')
    return int(text)
