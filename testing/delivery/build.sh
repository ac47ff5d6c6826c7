#!/usr/bin/env bash
# Build the model-delivery test servers (issue 26) from the Go module proxy: an OCI registry (CNCF
# distribution), an S3-compatible object store that checks SigV4 signatures (versitygw, posix backend) and
# the ORAS CLI that pushes test models to the registry.
#
#   testing/delivery/build.sh                  build what is missing, print the three binaries' paths
#   testing/delivery/build.sh --print          only print the paths (builds nothing)
#   testing/delivery/build.sh registry oras    only these (of registry, versitygw, oras)
#
# Cached outside the repo, keyed by version, under $HEARTH_TESTBED_CACHE (default ~/.cache/hearth-testbed):
#   store/registry-<version>  store/versitygw-<version>  store/oras-<version>   (never overwritten)
# sharing testing/lib/go-build.sh's module and build caches. Paths are printed one per line, in the order
# registry, versitygw, oras (of those asked for). A binary already in the store is not rebuilt.
#
# Environment: REGISTRY_VERSION, VERSITYGW_VERSION, ORAS_VERSION (defaults below), HEARTH_TESTBED_CACHE,
# GO, GOPATH, GOCACHE, GOTOOLCHAIN (default local).
set -euo pipefail

REGISTRY_VERSION="${REGISTRY_VERSION:-v3.1.2}"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
ORAS_VERSION="${ORAS_VERSION:-v1.3.6}"

CACHE_ROOT="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}"
STORE="$CACHE_ROOT/store"

log() { printf '%s\n' "$*" >&2; }
die() { log "delivery build: $*"; exit 1; }
# shellcheck source=testing/lib/go-build.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/go-build.sh"

TOOLS=()
PRINT=0
while (($#)); do
  case "$1" in
    registry | versitygw | oras) TOOLS+=("$1") ;;
    --print) PRINT=1 ;;
    -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
((${#TOOLS[@]})) || TOOLS=(registry versitygw oras)

version_of() {
  case "$1" in
    registry) echo "$REGISTRY_VERSION" ;;
    versitygw) echo "$VERSITYGW_VERSION" ;;
    oras) echo "$ORAS_VERSION" ;;
  esac
}
# The package `go install` builds, and the module it belongs to.
package_of() {
  case "$1" in
    registry) echo "github.com/distribution/distribution/v3/cmd/registry" ;;
    versitygw) echo "github.com/versity/versitygw/cmd/versitygw" ;;
    oras) echo "oras.land/oras/cmd/oras" ;;
  esac
}
for tool in "${TOOLS[@]}"; do
  [[ "$(version_of "$tool")" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "the $tool version must look like vX.Y.Z"
done

if ((PRINT)); then
  for tool in "${TOOLS[@]}"; do printf '%s\n' "$STORE/$tool-$(version_of "$tool")"; done
  exit 0
fi

go_build_env
# `go install pkg@version` builds the module as released (its own go.mod), not in a work module.
unset GOFLAGS
mkdir -p "$STORE"
go_build_lock "$CACHE_ROOT/.delivery-build.lock" testing/delivery/build.sh

# The module each tool belongs to, whose version the built binary must carry.
module_of() {
  case "$1" in
    registry) echo "github.com/distribution/distribution/v3" ;;
    versitygw) echo "github.com/versity/versitygw" ;;
    oras) echo "oras.land/oras" ;;
  esac
}

for tool in "${TOOLS[@]}"; do
  version="$(version_of "$tool")"
  go_install_cached "$tool $version" "$STORE/$tool-$version" "$(package_of "$tool")@$version" "-s -w" \
    go_binary_has_module "$(module_of "$tool")" "$version"
done
for tool in "${TOOLS[@]}"; do printf '%s\n' "$STORE/$tool-$(version_of "$tool")"; done
