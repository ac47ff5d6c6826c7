#!/usr/bin/env bash
# Re-resolve the dependency ranges of pyproject.toml in a throwaway venv and write the exact versions to
# constraints.txt, which bootstrap.sh installs from (so builds, CI and the frozen binary are reproducible).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${PYTHON:-python3} -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check '.[dev]'
{
    echo "# Exact versions for bootstrap.sh; regenerate with scripts/lock.sh after changing pyproject.toml."
    "$tmp/venv/bin/pip" freeze --exclude-editable | grep -viE '^(hearth|pip|setuptools|wheel)( *==| @ )'
} > constraints.txt
echo "lock: wrote $(grep -vc '^#' constraints.txt) pins to constraints.txt"
