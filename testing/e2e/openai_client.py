"""The real openai client against a Hearth endpoint, for `hearth e2e` (hearth/e2e/shared.py and engines.py):
lists the models, streams one chat completion from the model named and prints what it saw as one JSON line;
with --all also a non-streamed chat completion and a (legacy) completion, streamed and not.

Run with the project's Python (it has the `openai` package; the frozen binary does not):
    OPENAI_API_KEY=... python testing/e2e/openai_client.py http://<gateway>/v1 <model> [--all]
"""

from __future__ import annotations

import json
import os
import sys

import openai


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    every_call = "--all" in sys.argv[3:]
    # A keyless endpoint still needs the client to be given some key.
    client = openai.OpenAI(
        base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "none", max_retries=0, timeout=300
    )
    models = sorted(entry.id for entry in client.models.list().data)
    chunks = 0
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=16
    )
    for chunk in stream:
        chunks += bool(chunk.choices and chunk.choices[0].delta.content)
    if chunks == 0:
        raise SystemExit(f"no content chunk streamed from {model}")
    report: dict[str, object] = {"models": models, "chunks": chunks}
    if every_call:
        chat = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
        if chat.usage is None or not chat.choices or chat.choices[0].message.content is None:
            raise SystemExit(f"the non-streamed chat completion came back empty: {chat}")
        completion = client.completions.create(model=model, prompt="the model", max_tokens=8)
        if completion.usage is None or not completion.choices:
            raise SystemExit(f"the completion came back empty: {completion}")
        streamed = sum(
            bool(part.choices and part.choices[0].text)
            for part in client.completions.create(model=model, prompt="the model", max_tokens=8, stream=True)
        )
        report |= {
            "chat_tokens": chat.usage.completion_tokens,
            "completion_tokens": completion.usage.completion_tokens,
            "completion_chunks": streamed,
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
