"""Compile the gateway's request path to C with mypyc, for the frozen binary (hearth.cmd.compiled).

The source tree stays pure Python. The package is copied to build/compiled/hearth and the modules that
``hearth.cmd.compiled.MODULES`` names are compiled there, next to their sources. hearth.spec then
freezes those extension modules in place of the interpreted ones. The result is stamped with what it was
built from (every source of the package, the interpreter, mypy), so an unchanged tree is not compiled again.

    .venv/bin/python scripts/compile.py                      # build/compiled/hearth
    .venv/bin/python scripts/compile.py --test tests/gateway  # and run those tests against it

With ``--test``, the tests run from a copy next to the compiled package. Python puts a test package's
parent first on sys.path, so every ``import hearth`` there, in the tests and in the processes they start,
finds the compiled modules.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "build" / "compiled"
STAMP = OUT / ".stamp"
#: Repository folders the tests read by path (test beds, the bench); linked, not copied.
LINKED = ("testing", "bench")


def _stamp() -> str:
    digest = hashlib.sha256()
    digest.update(f"{sys.version}\nmypy {importlib.metadata.version('mypy')}\n".encode())
    # The mypy settings mypyc compiles with, and every file of the package (the compiled modules import the
    # rest, and the copy next to them is what the tests and the spec read).
    for path in [REPO / "pyproject.toml", *sorted((REPO / "hearth").rglob("*"))]:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def _compiled() -> types.ModuleType:
    sys.path.insert(0, str(REPO))
    from hearth.cmd import compiled

    return compiled


def build() -> None:
    want = _stamp()
    if STAMP.is_file() and STAMP.read_text() == want:
        print(f"compile: {OUT.relative_to(REPO)} is up to date")
        return
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not headers.is_file():
        sys.exit(f"compile: mypyc needs the interpreter's C headers, and {headers} is missing (python3-dev)")
    started = time.monotonic()
    shutil.rmtree(OUT / "hearth", ignore_errors=True)
    for old in OUT.glob("*__mypyc*"):
        old.unlink()
    STAMP.unlink(missing_ok=True)
    shutil.copytree(REPO / "hearth", OUT / "hearth", ignore=shutil.ignore_patterns("__pycache__"))
    sources = [str(Path(*name.split(".")).with_suffix(".py")) for name in _compiled().MODULES]
    # mypyc type-checks as it compiles, with the project's own mypy settings (strict); its setuptools run
    # must not see the project's pyproject.toml, hence the config passed by path from a folder without one.
    command = [sys.executable, "-m", "mypyc", "--config-file", str(REPO / "pyproject.toml"), *sources]
    result = subprocess.run(command, check=False, cwd=OUT, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-6000:], sep="\n", file=sys.stderr)
        sys.exit(f"compile: mypyc failed (exit {result.returncode}); output above")
    missing = [name for name in _compiled().MODULES if _compiled().extension_file(OUT, name) is None]
    if missing:
        sys.exit(f"compile: mypyc ran but built no extension module for {', '.join(missing)}")
    STAMP.write_text(want)
    print(f"compile: {len(sources)} modules compiled in {time.monotonic() - started:.0f}s")


def run_tests(paths: list[str], pytest_args: list[str]) -> int:
    shutil.rmtree(OUT / "tests", ignore_errors=True)
    shutil.copytree(REPO / "tests", OUT / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for name in LINKED:
        link = OUT / name
        if not link.is_symlink():
            link.symlink_to(REPO / name)
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # The tests below mean something only if they import the compiled modules: check that they do.
    probe = "from hearth.cmd import compiled; print(sorted(n for n, c in compiled.loaded().items() if not c))"
    interpreted = subprocess.run(
        [sys.executable, "-c", probe], cwd=OUT, env=environment, capture_output=True, text=True, check=True
    ).stdout.strip()
    if interpreted != "[]":
        sys.exit(f"compile: from {OUT}, these modules still load interpreted: {interpreted}")
    command = [
        sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(OUT),
        "-p", "no:cacheprovider", *pytest_args, *paths,
    ]  # fmt: skip
    print(f"compile: running {' '.join(paths)} against the compiled modules")
    return subprocess.run(command, check=False, cwd=OUT, env=environment).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", nargs="+", metavar="PATH", help="test paths to run against the result")
    args, pytest_args = parser.parse_known_args()
    build()
    return run_tests(args.test, pytest_args) if args.test else 0


if __name__ == "__main__":
    sys.exit(main())
