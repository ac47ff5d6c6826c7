# shellcheck shell=bash
# Shared by the test bed's Go builds (testing/cluster/build-components.sh, testing/keda/build.sh,
# testing/helm/build.sh, testing/delivery/build.sh, testing/netpol/build.sh): the Go toolchain and caches
# they all use, a per-build lock, and one cached `go install`. Sourced, not run; the caller has set
# CACHE_ROOT and defined log() and die().

# Put the Go toolchain on PATH and point every build at the one module cache and build cache under
# $CACHE_ROOT (so dependencies common to Kubernetes, KEDA and Helm download and compile once). Pure-Go
# static binaries: no C compiler needed, the same result on every machine.
go_build_env() {
  GO="${GO:-$(command -v go || true)}"
  [[ -n "$GO" ]] || GO=/usr/local/go/bin/go
  [[ -x "$GO" ]] || die "no go toolchain found (set GO=/path/to/go)"
  PATH="$(dirname "$GO"):$PATH"
  export PATH
  export GOPATH="${GOPATH:-$CACHE_ROOT/go}"
  export GOCACHE="${GOCACHE:-$CACHE_ROOT/go-build}"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  export GOFLAGS="-mod=mod -buildvcs=false"
  export CGO_ENABLED=0
}

# One build of a kind at a time per cache: take the lock file $1 on descriptor 9, and if another run holds
# it, say so ($2 names that run) and wait; the waiting run then finds the binaries cached.
go_build_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$1"
  if ! flock -n 9; then
    log "waiting for another $2 run on $CACHE_ROOT ..."
    flock 9
  fi
}

# Build TARGET with `go install` into the cache file OUT, unless OUT is already there (never rebuilt or
# overwritten: the file name carries the version). TARGET is a package at a version (`pkg@vX.Y.Z`, built
# with that module's own go.mod and go.sum) or a main package of the module in the current directory
# (`.`). LDFLAGS go to the linker, beside -trimpath. The binary is built into a temporary directory beside
# OUT and moved into place only once CHECK (a command; the new binary's path is appended to it) succeeds,
# so OUT is never a half-built or wrong binary. LABEL names it in the progress lines (stderr). The caller
# has run go_build_env (and unset GOFLAGS for a `pkg@version` TARGET) and defined log() and die(); this
# sets the EXIT trap that removes the temporary directory.
#   go_install_cached LABEL OUT TARGET LDFLAGS CHECK...
_GO_INSTALL_TMP=""
go_install_cached() {
  local label="$1" out="$2" target="$3" ldflags="$4" start built
  shift 4
  if [[ -x "$out" ]]; then
    log "$label: cached"
    return 0
  fi
  log "building $label ..."
  start=$SECONDS
  mkdir -p "$(dirname "$out")"
  trap '[[ -z "$_GO_INSTALL_TMP" ]] || rm -rf "$_GO_INSTALL_TMP"' EXIT
  _GO_INSTALL_TMP="$(mktemp -d "$(dirname "$out")/.$(basename "$out").XXXXXX")"
  GOBIN="$_GO_INSTALL_TMP" nice -n 10 go install -trimpath -ldflags "$ldflags" "$target" ||
    die "building $label failed"
  built=("$_GO_INSTALL_TMP"/*)
  if ((${#built[@]} != 1)) || [[ ! -x "${built[0]}" ]]; then
    die "building $label left ${#built[@]} files, not one binary"
  fi
  "$@" "${built[0]}" || die "$label was built but failed its check ($*)"
  mv -f "${built[0]}" "$out"
  rm -rf "$_GO_INSTALL_TMP"
  _GO_INSTALL_TMP=""
  log "building $label ... done in $((SECONDS - start))s"
}

# A CHECK for go_install_cached: the binary BIN was built from MODULE at VERSION (its main module or a
# dependency, as `go version -m` lists them).
#   go_binary_has_module MODULE VERSION BIN
go_binary_has_module() {
  go version -m "$3" | grep -Eq "^[[:space:]]+(mod|dep)[[:space:]]+${1//./\\.}[[:space:]]+${2//./\\.}([[:space:]]|$)"
}
