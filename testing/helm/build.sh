#!/usr/bin/env bash
# Build Helm 4 and Helm 3 from the Go module proxy, cached outside the repo keyed by version.
#
#   testing/helm/build.sh            build what is missing; print both binaries' paths (helm 4 first)
#   testing/helm/build.sh 4          only Helm 4 (or: 3); prints that one path
#   testing/helm/build.sh --print    print the paths, build nothing (they may not exist yet)
#
# Layout under $HEARTH_TESTBED_CACHE (default ~/.cache/hearth-testbed), shared with
# testing/cluster/build-components.sh (same GOPATH module cache and GOCACHE):
#   store/helm-<version>       the built binaries (never overwritten)
#
# Progress and timings go to stderr; only the paths go to stdout, so
#   HELM=$(testing/helm/build.sh 4)
# works. Environment: HELM4_VERSION, HELM3_VERSION, HEARTH_TESTBED_CACHE, GO, GOPATH, GOCACHE.
set -euo pipefail

HELM4_VERSION="${HELM4_VERSION:-v4.3.1}"
HELM3_VERSION="${HELM3_VERSION:-v3.22.0}"

CACHE_ROOT="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}"
STORE="$CACHE_ROOT/store"

log() { printf '%s\n' "$*" >&2; }
die() { log "helm build: $*"; exit 1; }
# shellcheck source=testing/lib/go-build.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/go-build.sh"

MAJORS=()
PRINT=0
while (($#)); do
  case "$1" in
    3 | 4) MAJORS+=("$1") ;;
    --print) PRINT=1 ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
((${#MAJORS[@]})) || MAJORS=(4 3)

version_of() { [[ "$1" == 4 ]] && echo "$HELM4_VERSION" || echo "$HELM3_VERSION"; }
for major in "${MAJORS[@]}"; do
  [[ "$(version_of "$major")" =~ ^v$major\.[0-9]+\.[0-9]+$ ]] || die "HELM${major}_VERSION must look like v$major.Y.Z"
done

if ((PRINT)); then
  for major in "${MAJORS[@]}"; do printf '%s\n' "$STORE/helm-$(version_of "$major")"; done
  exit 0
fi

go_build_env
# `go install module@version` builds with Helm's own go.mod and go.sum; -mod must not be set for it.
unset GOFLAGS
mkdir -p "$STORE"

# One Helm build at a time per cache (a second caller waits, then finds the binaries cached). A lock of
# its own, so a Helm build does not queue behind a long Kubernetes build (the Go cache is safe to share).
go_build_lock "$CACHE_ROOT/.helm-build.lock" testing/helm/build.sh

# go_install_cached's CHECK: the binary reports the version it was built as.
reports_version() { "$2" version --short | grep -q "^$1"; }

build() {
  local major="$1" version module ldflags kmajor kminor gomod
  version="$(version_of "$major")"
  # Checked here too: Helm 3's ldflags below fetch a go.mod, which a cached binary does not need.
  if [[ -x "$STORE/helm-$version" ]]; then
    log "helm $version: cached"
    return 0
  fi
  module="helm.sh/helm/v$major"
  ldflags="-s -w -X $module/internal/version.version=$version -X $module/internal/version.metadata="
  ldflags+=" -X $module/internal/version.gitTreeState=clean"
  if [[ "$major" == 3 ]]; then
    # Helm 3 takes its default Kubernetes version (for `helm template` and lint) from ldflags, as its
    # Makefile derives it from the client-go it builds with; without them it assumes 1.20.
    gomod="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -f "$gomod" ]] || die "could not fetch go.mod of $module@$version"
    read -r kmajor kminor < <(awk '$1 == "k8s.io/client-go" { split(substr($2, 2), v, "."); print v[1] + 1, v[2] }' "$gomod")
    for pkg in pkg/lint/rules pkg/chartutil; do
      ldflags+=" -X $module/$pkg.k8sVersionMajor=$kmajor -X $module/$pkg.k8sVersionMinor=$kminor"
    done
  fi
  go_install_cached "helm $version" "$STORE/helm-$version" "$module/cmd/helm@$version" "$ldflags" \
    reports_version "$version"
}

for major in "${MAJORS[@]}"; do build "$major"; done
for major in "${MAJORS[@]}"; do printf '%s\n' "$STORE/helm-$(version_of "$major")"; done
