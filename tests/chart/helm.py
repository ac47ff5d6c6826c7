"""Running the real Helm 4 and Helm 3 binaries (testing/helm/build.sh) on the chart, and putting what Helm
renders next to what `hearth install --dry-run` prints."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hearth.cmd import main

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hearth"
BUILD_SCRIPT = REPO / "testing" / "helm" / "build.sh"
#: Labels only Helm adds (and `hearth install`'s own managed-by): the parity comparison ignores them.
INSTALLER_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
    }
)
HELM_ANNOTATION_PREFIXES = ("helm.sh/", "meta.helm.sh/")


def binaries() -> dict[str, Path]:
    """Major version -> path of each Helm that testing/helm/build.sh built (scripts/test.sh builds both)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=True
    )
    paths = [Path(line) for line in result.stdout.split()]
    return {major: path for major, path in zip(("4", "3"), paths, strict=True) if path.is_file()}


def binary(major: str) -> Path:
    path = binaries().get(major)
    if path is None:
        pytest.skip(f"Helm {major} is not built: run testing/helm/build.sh (scripts/test.sh does)")
    return path


def environment(home: Path) -> dict[str, str]:
    """An environment whose Helm and kubectl caches and configs live in *home* (nothing of the user's)."""
    return {
        **os.environ,
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def run(
    helm: Path, *args: str, home: Path, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm), *args],
        capture_output=True,
        text=True,
        env=environment(home),
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def template(
    helm: Path,
    *,
    home: Path,
    values: Sequence[str] = (),
    namespace: str = "hearth-system",
    release: str = "hearth",
) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set", value]
    return [document for document in yaml.safe_load_all(run(helm, *args, home=home).stdout) if document]


def hearth_install(*flags: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        main.cli, ["install", "--dry-run", "-o", "yaml", *flags], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return [document for document in yaml.safe_load_all(result.output) if document]


def is_test_hook(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"


def _strip_labels(labels: dict[str, str] | None) -> dict[str, str]:
    return {key: value for key, value in (labels or {}).items() if key not in INSTALLER_LABELS}


def normalized(obj: dict[str, Any]) -> dict[str, Any]:
    """*obj* without what only says which installer made it (Helm's labels and annotations)."""
    obj = yaml.safe_load(yaml.safe_dump(obj))  # a deep copy
    metadata = obj["metadata"]
    metadata["labels"] = _strip_labels(metadata.get("labels"))
    annotations = {
        key: value
        for key, value in (metadata.pop("annotations", None) or {}).items()
        if not key.startswith(HELM_ANNOTATION_PREFIXES)
    }
    if annotations:
        metadata["annotations"] = annotations
    spec = obj.get("spec")
    if isinstance(spec, dict):
        if obj["kind"] == "Service":
            spec["selector"] = _strip_labels(spec.get("selector"))
        selector = spec.get("selector")
        if isinstance(selector, dict) and "matchLabels" in selector:
            selector["matchLabels"] = _strip_labels(selector["matchLabels"])
        pod = spec.get("template", {}).get("metadata") if isinstance(spec.get("template"), dict) else None
        if isinstance(pod, dict):
            pod["labels"] = _strip_labels(pod.get("labels"))
    return obj


def by_identity(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]): normalized(obj)
        for obj in objects
    }
