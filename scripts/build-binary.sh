#!/usr/bin/env bash
# Freeze Hearth into one executable, dist/hearth, with PyInstaller (spec: hearth.spec).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
started=$(date +%s)
# SOURCE_DATE_EPOCH keeps timestamps inside the archive stable across builds of the same tree.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
# The gateway's request path compiled to C first (mypyc; build/compiled, reused while the sources are unchanged).
.venv/bin/python scripts/compile.py
# PYTHONPATH: this tree's hearth package, even when the shared .venv's editable install points at another
# checkout (git worktrees): hearth.spec collects submodules and data files by importing the package.
PYTHONPATH="$PWD" HEARTH_COMPILED=build/compiled .venv/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller hearth.spec
size=$(du -h dist/hearth | cut -f1)
echo "build-binary: dist/hearth ($size) built in $(( $(date +%s) - started ))s: $(dist/hearth --version)"
