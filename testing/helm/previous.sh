#!/usr/bin/env bash
# The previous Hearth the Helm stage upgrades from and rolls back to (testing/helm/e2e.sh, issue 29): the
# chart and the frozen binary of the commit named in testing/helm/previous.ref (the last one that landed
# before a release line existed; move it forward when a release is cut), built from this repository's own
# history and cached outside the repo keyed by commit.
#
#   testing/helm/previous.sh     build what is missing; print the folder holding `hearth` and `chart/`
#
# Exits 3 when the checkout does not hold that commit (a shallow clone): the caller says so and runs its
# same-version steps only. Progress goes to stderr, the folder to stdout. Environment: HEARTH_TESTBED_CACHE.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
commit=$(tr -d '[:space:]' <"$repo/testing/helm/previous.ref")
store="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}/store"
log() { printf 'helm previous: %s\n' "$*" >&2; }
if ! full=$(git -C "$repo" rev-parse --verify --quiet "$commit^{commit}"); then
    log "commit $commit (testing/helm/previous.ref) is not in this checkout (shallow?); fetch it with: git fetch --unshallow"
    exit 3
fi
out="$store/hearth-previous-$full"
if [ -x "$out/hearth" ] && [ -f "$out/chart/Chart.yaml" ]; then
    printf '%s\n' "$out"
    exit 0
fi
mkdir -p "$store"
exec 9>"$store/.hearth-previous.lock"
flock 9
started=$(date +%s)
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git -C "$repo" archive "$full" | tar -x -C "$src"
# This checkout's virtualenv, not the old tree's bootstrap: that would point the shared editable install
# at the temporary tree. The pinned dependencies are checked to be the same.
if ! git -C "$repo" diff --quiet "$full" HEAD -- constraints.txt pyproject.toml; then
    log "constraints.txt or pyproject.toml changed since $commit: build it with its own virtualenv first"
    exit 1
fi
ln -s "$repo/.venv" "$src/.venv"
(
    cd "$src"
    export SOURCE_DATE_EPOCH
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct "$full")
    PYTHONPATH="$src" .venv/bin/python scripts/compile.py >&2
    PYTHONPATH="$src" HEARTH_COMPILED=build/compiled .venv/bin/pyinstaller --noconfirm --clean --log-level WARN \
        --distpath dist --workpath build/pyinstaller hearth.spec >&2
)
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$src/dist/hearth" "$out.tmp/hearth"
cp -r "$src/charts/hearth" "$out.tmp/chart"
mv "$out.tmp" "$out"
log "built $("$out/hearth" --version) of $commit in $(($(date +%s) - started))s"
printf '%s\n' "$out"
