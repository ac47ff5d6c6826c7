"""The project's static checks, run as tests so CI and developers run the same gate."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
import typing
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


_CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")


def _is_type(value: object) -> bool:
    """A class (an enum, an exception, a Protocol, a pydantic model) or a type alias (``Annotated[...]``,
    ``tuple[str, str]``)."""
    return isinstance(value, type) or typing.get_origin(value) is not None


def _imported(module: str, name: str) -> object:
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError:  # a submodule its package has not imported
        return importlib.import_module(f"{module}.{name}")


def _names_imported_from_hearth() -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every ``from hearth.… import name`` in the package."""
    found = []
    for path in sorted((REPO / "hearth").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("hearth")
            ):
                relative = path.relative_to(REPO).as_posix()
                found += [(relative, node.lineno, node.module or "", alias.name) for alias in node.names]
    return found


def test_modules_are_imported_not_functions() -> None:
    """The style rule (docs/development/index.md): from ``hearth.*`` a module imports modules, types and
    UPPER_CASE constants by name; functions and other values through their module, so a call says where
    it lives (``durations.parse(text)``)."""
    imports = _names_imported_from_hearth()
    assert len(imports) > 100, "the scan must see the package's imports"
    broken = [
        f"{path}:{line}: from {module} import {name}"
        for path, line, module, name in imports
        if not (
            inspect.ismodule(value := _imported(module, name)) or _is_type(value) or _CONSTANT.fullmatch(name)
        )
    ]
    assert not broken, "import the module instead:\n" + "\n".join(broken)


def test_the_import_rule_sees_a_function() -> None:
    assert not _is_type(_imported("hearth.common.durations", "format_nanoseconds"))
    assert not _is_type(_imported("hearth.cmd.main", "cli")), "a click group is a value"
    assert _is_type(_imported("hearth.api.base", "Int32")), "an Annotated alias is a type"
    assert inspect.ismodule(_imported("hearth.cmd", "main"))


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
