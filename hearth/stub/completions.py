"""The bodies the stub answers with: OpenAI chat and text completion shapes, streamed or whole.

The reference stub's shapes are kept (``id: stub-cmpl``, ``tok<i> `` tokens, keys sorted, compact JSON) and
the fields real OpenAI clients read are added (``model``, ``created``, ``usage``, ``finish_reason``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

COMPLETION_ID = "stub-cmpl"
DONE_EVENT = b"data: [DONE]\n\n"


class Kind(enum.Enum):
    """Which OpenAI endpoint is being answered."""

    CHAT = "chat"
    TEXT = "text"


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """What the stub reads from a completion request body; everything else in it is ignored."""

    stream: bool = False
    model: str | None = None
    max_tokens: int | None = None
    include_usage: bool = False
    prompt_tokens: int = 0

    @classmethod
    def from_body(cls, body: bytes) -> Request:
        """Lenient, like the reference stub: a body that is not a JSON object is a plain request."""
        try:
            data = json.loads(body) if body else {}
        except (ValueError, RecursionError):  # nested deeper than the parser goes: not a usable request
            return cls()
        if not isinstance(data, dict):
            return cls()
        options = data.get("stream_options")
        max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
        return cls(
            stream=data.get("stream") is True,
            model=data["model"] if isinstance(data.get("model"), str) and data["model"] else None,
            max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            prompt_tokens=_count_prompt_tokens(data),
        )


def _count_prompt_tokens(data: dict[str, Any]) -> int:
    """A whitespace word count of the prompt: enough for plausible, deterministic usage numbers."""
    texts: list[str] = []
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        texts.append(prompt)
    elif isinstance(prompt, list):
        texts.extend(p for p in prompt if isinstance(p, str))
    messages = data.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(
                    part["text"]
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
    return sum(len(text.split()) for text in texts)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """One answer: how many tokens, and the fields shared by every chunk of it."""

    kind: Kind
    tokens: int
    finish_reason: str
    model: str
    created: int
    prompt_tokens: int

    @property
    def object_name(self) -> str:
        if self.kind is Kind.CHAT:
            return "chat.completion"
        return "text_completion"

    def usage(self) -> dict[str, int]:
        return {
            "completion_tokens": self.tokens,
            "prompt_tokens": self.prompt_tokens,
            "total_tokens": self.prompt_tokens + self.tokens,
        }


def plan(*, kind: Kind, request: Request, requested_tokens: int, served_model: str, created: int) -> Plan:
    """Decide the answer: ``requested_tokens`` capped by the request's ``max_tokens``, as vLLM does."""
    tokens = requested_tokens
    finish_reason = "stop"
    if request.max_tokens is not None and request.max_tokens < tokens:
        tokens = request.max_tokens
        finish_reason = "length"
    return Plan(
        kind=kind,
        tokens=tokens,
        finish_reason=finish_reason,
        model=request.model or served_model,
        created=created,
        prompt_tokens=request.prompt_tokens,
    )


def token_text(index: int) -> str:
    return f"tok{index} "


def encode(document: dict[str, Any]) -> bytes:
    """Compact JSON with sorted keys, as Go's encoder writes a map."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def whole_response(answer: Plan) -> bytes:
    """The non-streaming body, newline-terminated like Go's ``json.Encoder``."""
    text = "".join(token_text(i) for i in range(answer.tokens))
    choice: dict[str, Any] = {"finish_reason": answer.finish_reason, "index": 0}
    if answer.kind is Kind.CHAT:
        choice["message"] = {"content": text, "role": "assistant"}
    else:
        choice["logprobs"] = None
        choice["text"] = text
    return encode(_envelope(answer, object_name=answer.object_name, choices=[choice], usage=True)) + b"\n"


def stream_event(answer: Plan, index: int) -> bytes:
    """The SSE event carrying token *index*: ``data: <json>`` and a blank line."""
    last = index == answer.tokens - 1
    choice: dict[str, Any] = {"finish_reason": answer.finish_reason if last else None, "index": 0}
    if answer.kind is Kind.CHAT:
        delta: dict[str, Any] = {"content": token_text(index)}
        if index == 0:
            delta["role"] = "assistant"
        choice["delta"] = delta
        object_name = "chat.completion.chunk"
    else:
        choice["logprobs"] = None
        choice["text"] = token_text(index)
        object_name = "text_completion"
    return _sse(_envelope(answer, object_name=object_name, choices=[choice], usage=False))


def usage_event(answer: Plan) -> bytes:
    """The final usage-only chunk sent when ``stream_options.include_usage`` is true."""
    object_name = "chat.completion.chunk" if answer.kind is Kind.CHAT else "text_completion"
    return _sse(_envelope(answer, object_name=object_name, choices=[], usage=True))


def _envelope(
    answer: Plan, *, object_name: str, choices: list[dict[str, Any]], usage: bool
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "choices": choices,
        "created": answer.created,
        "id": COMPLETION_ID,
        "model": answer.model,
        "object": object_name,
    }
    if usage:
        document["usage"] = answer.usage()
    return document


def _sse(document: dict[str, Any]) -> bytes:
    return b"data: " + encode(document) + b"\n\n"


def models_list(*, served_model_names: tuple[str, ...], root: str, created: int) -> bytes:
    """``GET /v1/models``: one entry per served name, rooted at the model path, as vLLM lists them."""
    data = [
        {"created": created, "id": name, "object": "model", "owned_by": "vllm", "parent": None, "root": root}
        for name in served_model_names
    ]
    return encode({"data": data, "object": "list"}) + b"\n"


def error_body(*, message: str, error_type: str, code: int) -> bytes:
    """An error in vLLM's OpenAI-compatible shape."""
    return encode({"error": {"code": code, "message": message, "param": None, "type": error_type}}) + b"\n"
