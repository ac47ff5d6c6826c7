#!/usr/bin/env bash
# Build the test bed's pinned KEDA (keda-operator and keda-adapter only) from the Go module proxy.
#
#   testing/keda/build.sh                 build what is missing, print the KEDA dir
#   testing/keda/build.sh --print-dir     only print the KEDA dir (builds nothing)
#
# Cached outside the repo, keyed by version, under $HEARTH_TESTBED_CACHE (default
# ~/.cache/hearth-testbed), beside the Kubernetes components of testing/cluster/build-components.sh
# and sharing its GOPATH (module cache) and GOCACHE, so common dependencies compile once:
#   store/keda-{operator,adapter}-<version>   the built binaries (never overwritten)
#   keda/<version>/bin/{keda-operator,keda-adapter}  hard links to them
#   keda/<version>/config/                   KEDA's config/ tree (CRDs + kustomization, RBAC)
#   work/keda-<version>/                     scratch copy of the build module
# The KEDA dir (keda/<version>) is the only thing printed on stdout:
#   KEDA=$(testing/keda/build.sh)
# A binary already in the store is not rebuilt, so a warm run takes about a second.
#
# Environment: KEDA_VERSION (default below; another version re-pins a copy of keda-build/go.mod),
# HEARTH_TESTBED_CACHE, GO, GOPATH, GOCACHE, GOTOOLCHAIN (default local).
set -euo pipefail

KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
KEDA_MODULE=github.com/kedacore/keda/v2
COMPONENTS=(operator adapter)   # cmd/webhooks is not used: the test bed runs no admission webhook

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MOD_SRC="$HERE/keda-build"
CACHE_ROOT="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}"
STORE="$CACHE_ROOT/store"
KEDA_DIR="$CACHE_ROOT/keda/$KEDA_VERSION"
WORK="$CACHE_ROOT/work/keda-$KEDA_VERSION"

log() { printf '%s\n' "$*" >&2; }
die() { log "keda build: $*"; exit 1; }
# shellcheck source=testing/lib/go-build.sh
source "$HERE/../lib/go-build.sh"

case "${1:-}" in
  "") ;;
  --print-dir) printf '%s\n' "$KEDA_DIR"; exit 0 ;;
  -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) log "keda build: unknown argument: $1 (see --help)"; exit 2 ;;
esac
[[ "$KEDA_VERSION" =~ ^v2\.[0-9]+\.[0-9]+$ ]] || { log "keda build: KEDA_VERSION must look like v2.Y.Z, got '$KEDA_VERSION'"; exit 2; }

# The same toolchain, module cache and build cache as build-components.sh.
go_build_env

mkdir -p "$STORE" "$KEDA_DIR/bin" "$WORK"

# One KEDA build at a time per cache.  A lock of its own, not build-components.sh's: the Go caches
# are safe for concurrent use, and KEDA need not wait for a whole Kubernetes build.
go_build_lock "$CACHE_ROOT/.keda-build.lock" testing/keda/build.sh

CURRENT_TMP=""
trap '[[ -z "$CURRENT_TMP" ]] || rm -f "$CURRENT_TMP"' EXIT

all_cached() {
  local c
  for c in "${COMPONENTS[@]}"; do [[ -x "$STORE/keda-$c-$KEDA_VERSION" ]] || return 1; done
  [[ -f "$KEDA_DIR/config/crd/kustomization.yaml" ]]
}

total_start=$SECONDS
if ! all_cached; then
  pinned="$(awk -v m="$KEDA_MODULE" '$1 == "require" && $2 == m { print $3 } $1 == m { print $2 }' "$MOD_SRC/go.mod" | head -n1)"
  if [[ "$pinned" == "$KEDA_VERSION" ]]; then
    cp "$MOD_SRC/go.mod" "$WORK/go.mod"
    [[ ! -f "$MOD_SRC/go.sum" ]] || cp "$MOD_SRC/go.sum" "$WORK/go.sum"
  elif [[ ! -f "$WORK/.prepared" ]]; then
    log "re-pinning the KEDA build module from $pinned to $KEDA_VERSION ..."
    cp "$MOD_SRC/go.mod" "$WORK/go.mod"
    rm -f "$WORK/go.sum"
    (cd "$WORK" && go mod edit -require="$KEDA_MODULE@$KEDA_VERSION") >&2
  fi
  start=$SECONDS
  log "resolving modules (go mod tidy) ..."
  (cd "$WORK" && nice -n 19 go mod tidy) >&2 || die "go mod tidy failed"
  touch "$WORK/.prepared"
  log "resolving modules ... done in $((SECONDS - start))s"
  moddir="$(cd "$WORK" && go list -m -f '{{.Dir}}' "$KEDA_MODULE")"
  [[ -d "$moddir/config/crd" ]] || die "no config/crd in $moddir"

  for c in "${COMPONENTS[@]}"; do
    out="$STORE/keda-$c-$KEDA_VERSION"
    if [[ -x "$out" ]]; then log "keda-$c $KEDA_VERSION: cached"; continue; fi
    log "building keda-$c $KEDA_VERSION ..."
    start=$SECONDS
    CURRENT_TMP="$out.tmp.$$"
    (cd "$WORK" && nice -n 19 go build -trimpath \
      -ldflags "-s -w -X=$KEDA_MODULE/version.Version=${KEDA_VERSION#v}" \
      -o "$CURRENT_TMP" "$KEDA_MODULE/cmd/$c") >&2 || die "building keda-$c $KEDA_VERSION failed"
    # Sanity check: a Go binary built from the pinned KEDA module.
    go version -m "$CURRENT_TMP" | grep -q "${KEDA_MODULE}[[:space:]]*${KEDA_VERSION}" ||
      die "keda-$c was built but does not carry $KEDA_MODULE $KEDA_VERSION"
    mv -f "$CURRENT_TMP" "$out"
    CURRENT_TMP=""
    log "building keda-$c $KEDA_VERSION ... done in $((SECONDS - start))s"
  done

  # KEDA's config tree (read-only in the module cache): CRDs with their kustomization, RBAC.
  rm -rf "$KEDA_DIR/config.tmp"
  cp -r "$moddir/config" "$KEDA_DIR/config.tmp"
  chmod -R u+w "$KEDA_DIR/config.tmp"
  rm -rf "$KEDA_DIR/config"
  mv "$KEDA_DIR/config.tmp" "$KEDA_DIR/config"
fi

for c in "${COMPONENTS[@]}"; do
  src="$STORE/keda-$c-$KEDA_VERSION" dst="$KEDA_DIR/bin/keda-$c"
  [[ ! "$dst" -ef "$src" ]] || continue
  ln -f "$src" "$dst.tmp.$$" 2>/dev/null || cp -f "$src" "$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
done
log "KEDA $KEDA_VERSION ready in $((SECONDS - total_start))s; dir:"
printf '%s\n' "$KEDA_DIR"
