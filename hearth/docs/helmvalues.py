"""The Helm values reference, from ``charts/hearth/values.yaml``: every key with its default and the
``# --`` comment above it (the chart's own documentation convention)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from hearth.docs import markdown as md

VALUES = "charts/hearth/values.yaml"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?: (?P<value>.*))?$")


def entries(text: str) -> Iterator[tuple[str, str, str]]:
    """(dotted key, default as written, description) for every key that has a value or a description."""
    path: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        # "# -- " opens a description; "# --flag" is a description's next line that starts with a flag.
        if stripped == "# --" or stripped.startswith("# -- "):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if comment:
                comment.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if not match:
            comment = []
            continue
        depth = len(match["indent"])
        path = [(indent, key) for indent, key in path if indent < depth]
        path.append((depth, match["key"]))
        value = (match["value"] or "").split(" #", 1)[0].strip()
        if value or comment:
            yield ".".join(key for _, key in path), value, " ".join(comment)
        comment = []


def page(root: Path) -> str:
    rows = [
        [md.code(key), md.code(value), md.text(description)]
        for key, value, description in entries((root / VALUES).read_text(encoding="utf-8"))
    ]
    return md.page(
        "Helm values",
        VALUES,
        "The values of the `charts/hearth` chart and their defaults; each `hearth install` flag is one of "
        "them (named in the description). A mistyped key or a wrong type is refused by "
        "`values.schema.json`, naming the key.",
        md.table(["key", "default", "meaning"], rows),
    )
