"""Regenerates ``core_v1.json``: the few Kubernetes core/v1 definitions the Hearth API embeds, trimmed from
the upstream OpenAPI v3 document of one Kubernetes release (see README.md in this folder).

    python -m hearth.api.k8s_schema.generate [--source FILE] [--kubernetes-version v1.Y.Z] [--check]

The source defaults to ``api/openapi-spec/v3/api__v1_openapi.json`` of the ``k8s.io/kubernetes`` module
that ``testing/cluster/build-components.sh`` downloads into the Go module cache; an API server's
``/openapi/v3/api/v1`` (``kubectl get --raw /openapi/v3/api/v1 > file``) is the same document.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from hearth.api import k8s_schema

DEFAULT_VERSION = "v1.34.4"
_SPEC_PATH = "api/openapi-spec/v3/api__v1_openapi.json"
_REF_PREFIX = "#/components/schemas/"


def default_source(version: str) -> Path:
    cache = Path.home() / ".cache" / "hearth-testbed" / "go" / "pkg" / "mod" / "k8s.io"
    return cache / f"kubernetes@{version}" / _SPEC_PATH


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"].removeprefix(_REF_PREFIX)] if "$ref" in value else []
        for item in value.values():
            found.extend(_references(item))
        return found
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    return []


_ENUM_NOTE = "\n\nPossible enum values:"


def _without_enums(value: Any) -> Any:
    """A served document lists enum values (the API server's OpenAPIEnums) that the module's checked-in
    document leaves out; drop them so both sources give the same file. They only restate what Go
    validation checks, and an enum would refuse values a Pod accepts (a toleration's empty effect)."""
    if isinstance(value, dict):
        result = {key: _without_enums(item) for key, item in value.items() if key != "enum"}
        if isinstance(result.get("description"), str):
            result["description"] = result["description"].split(_ENUM_NOTE, 1)[0]
        return result
    if isinstance(value, list):
        return [_without_enums(item) for item in value]
    return value


def trim(openapi: dict[str, Any]) -> dict[str, Any]:
    """The definitions and fields Hearth uses (k8s_schema.ROOTS, k8s_schema.FIELDS) and everything they
    reference, as upstream wrote them (without enum lists, see :func:`_without_enums`)."""
    schemas: dict[str, Any] = _without_enums(openapi["components"]["schemas"])
    fields: dict[str, Any] = {}
    pending = list(k8s_schema.ROOTS)
    for owner, name in k8s_schema.FIELDS:
        field = schemas[owner]["properties"][name]
        fields[f"{owner}.{name}"] = field
        pending.extend(_references(field))
    definitions: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in definitions:
            continue
        definitions[name] = schemas[name]
        pending.extend(_references(schemas[name]))
    return {"definitions": dict(sorted(definitions.items())), "fields": dict(sorted(fields.items()))}


def document(*, openapi_text: bytes, version: str, source: str) -> dict[str, Any]:
    trimmed = trim(json.loads(openapi_text))
    return {
        "provenance": {
            "kubernetesVersion": version,
            "source": source,
            "sourceSha256": hashlib.sha256(openapi_text).hexdigest(),
            "generator": "python -m hearth.api.k8s_schema.generate",
        },
        **trimmed,
    }


def to_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) hearth/api/k8s_schema/core_v1.json.")
    parser.add_argument("--kubernetes-version", default=DEFAULT_VERSION, help="release the source is from")
    parser.add_argument(
        "--source", type=Path, help="upstream api__v1_openapi.json (default: Go module cache)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if core_v1.json differs")
    options = parser.parse_args(argv)
    source: Path = options.source or default_source(options.kubernetes_version)
    try:
        text = source.read_bytes()
    except OSError as error:
        print(
            f"cannot read the upstream OpenAPI document {source}: {error.strerror}; "
            "run testing/cluster/build-components.sh (it downloads k8s.io/kubernetes) or pass --source",
            file=sys.stderr,
        )
        return 2
    label = f"k8s.io/kubernetes@{options.kubernetes_version}/{_SPEC_PATH}"
    wanted = to_text(document(openapi_text=text, version=options.kubernetes_version, source=label))
    target = k8s_schema.source_file()
    if options.check:
        if target.read_text(encoding="utf-8") != wanted:
            print(f"out of date: {target}; run: python -m hearth.api.k8s_schema.generate", file=sys.stderr)
            return 1
        print(f"checked {target}")
        return 0
    target.write_text(wanted, encoding="utf-8")
    print(f"wrote {target} from {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
