#!/usr/bin/env bash
# Build the test bed's NetworkPolicy enforcer (issue 29): sigs.k8s.io/kube-network-policies' controller from
# the Go module proxy, behind testing/netpol/enforcer/main.go (a host-process main: upstream's takes only
# in-cluster credentials). Cached outside the repo; prints the binary's path.
#
#   testing/netpol/build.sh            build it if missing, print its path
#   testing/netpol/build.sh --print    only print the path (builds nothing)
#
# Cached under $HEARTH_TESTBED_CACHE (default ~/.cache/hearth-testbed), sharing testing/lib/go-build.sh's
# module and build caches:
#   store/kube-network-policies-<version>-<hash of enforcer/>   (never overwritten)
# keyed by the upstream version (pinned in enforcer/go.mod; v0.8.0, the newest the module proxy serves)
# and by the wrapper's own files, so an edit of main.go or go.sum builds anew.
# Environment: HEARTH_TESTBED_CACHE, GO, GOPATH, GOCACHE, GOTOOLCHAIN (default local).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODULE_DIR="$HERE/enforcer"
UPSTREAM=sigs.k8s.io/kube-network-policies
CACHE_ROOT="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}"
STORE="$CACHE_ROOT/store"

log() { printf '%s\n' "$*" >&2; }
die() { log "netpol build: $*"; exit 1; }
# shellcheck source=testing/lib/go-build.sh
source "$HERE/../lib/go-build.sh"

PRINT=0
while (($#)); do
  case "$1" in
    --print) PRINT=1 ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

VERSION="$(awk -v m="$UPSTREAM" '$1 == m { print $2 } $1 == "require" && $2 == m { print $3 }' "$MODULE_DIR/go.mod")"
[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$MODULE_DIR/go.mod does not pin $UPSTREAM at vX.Y.Z"
HASH="$(cat "$MODULE_DIR/go.mod" "$MODULE_DIR/go.sum" "$MODULE_DIR/main.go" | sha256sum | cut -c1-8)"
OUT="$STORE/kube-network-policies-$VERSION-$HASH"

if ((PRINT)); then
  printf '%s\n' "$OUT"
  exit 0
fi

go_build_env
# Build with the wrapper's go.mod and go.sum as committed (-mod=readonly): the repo is never rewritten.
unset GOFLAGS
mkdir -p "$STORE"
go_build_lock "$CACHE_ROOT/.netpol-build.lock" testing/netpol/build.sh
cd "$MODULE_DIR"
go_install_cached "kube-network-policies $VERSION ($HASH)" "$OUT" . "-s -w" go_binary_has_module "$UPSTREAM" "$VERSION"
printf '%s\n' "$OUT"
