"""The real openai client against a shared endpoint, for `hearth e2e` (hearth/e2e/shared.py): lists the
models, then streams one chat completion from the model named, and prints what it saw as one JSON line.

Run with the project's Python (it has the `openai` package; the frozen binary does not):
    OPENAI_API_KEY=... python testing/e2e/openai_client.py http://<gateway>/v1 <model>
"""

from __future__ import annotations

import json
import sys

import openai


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, max_retries=0, timeout=300)
    models = sorted(entry.id for entry in client.models.list().data)
    chunks = 0
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    for chunk in stream:
        chunks += bool(chunk.choices and chunk.choices[0].delta.content)
    if chunks == 0:
        raise SystemExit(f"no content chunk streamed from {model}")
    print(json.dumps({"models": models, "chunks": chunks}))


if __name__ == "__main__":
    main()
