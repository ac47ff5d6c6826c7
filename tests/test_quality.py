"""The project's static checks, run as tests so CI and developers run the same gate."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import hearth
from tests.helpers import REPO

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
        [str(BIN / "lint-imports")],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict", "layer-contracts"],
)
def test_static_check_passes(command: list[str]) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def _contract(name: str) -> dict[str, Any]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return next(contract for contract in contracts if contract["name"] == name)


def test_only_hearth_kube_may_import_the_kubernetes_client_and_every_other_module_is_checked() -> None:
    contract = _contract("Only hearth.kube imports the Kubernetes client")
    everything = {f"hearth.{module.name}" for module in pkgutil.iter_modules(hearth.__path__)}
    assert "hearth.gateway" in everything
    assert set(contract["source_modules"]) == everything - {"hearth.kube"}
    assert set(contract["forbidden_modules"]) == {"kubernetes_asyncio", "kubernetes"}


def test_the_gateway_and_the_operator_are_independent() -> None:
    contract = _contract("The gateway and the operator are independent")
    assert contract["type"] == "independence"
    assert contract["modules"] == ["hearth.gateway", "hearth.operator"]


def _shell_scripts() -> list[str]:
    """Every tracked shell script: the *.sh files and the extension-less ones with a shell shebang."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    scripts = []
    for name in filter(None, tracked.split("\0")):
        path = REPO / name
        if name.endswith(".sh"):
            scripts.append(name)
        elif "." not in path.name and path.is_file():
            with path.open("rb") as file:
                first = file.readline()
            if first.startswith(b"#!") and first.rstrip().endswith((b"sh", b"bash")):
                scripts.append(name)
    return sorted(scripts)


def test_every_shell_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: apt-get install shellcheck (scripts/system-deps.sh does)"
    scripts = _shell_scripts()
    assert "testing/cluster/cluster.sh" in scripts
    # -x follows `source`d files; every severity, style included, must be clean.
    command = [shellcheck, "--external-sources", "--severity=style", *scripts]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"shellcheck failed:\n{result.stdout}\n{result.stderr}"
