#!/usr/bin/env bash
# Create .venv with every Python dependency at the versions pinned in constraints.txt, and install Hearth
# into it in editable mode. Safe to re-run: it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bootstrap: Hearth needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.hearth-deps
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: installing pinned dependencies (constraints.txt)"
    # pip's build backend prints pages of warnings for editable installs; keep them unless the install fails.
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]' \
        > .venv/pip-install.log 2>&1; then
        cat .venv/pip-install.log >&2
        echo "bootstrap: pip install failed (log above)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
echo "bootstrap: ready ($(.venv/bin/hearth --version))"
