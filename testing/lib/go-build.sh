# shellcheck shell=bash
# Shared by the test bed's Go builds (testing/cluster/build-components.sh, testing/keda/build.sh,
# testing/helm/build.sh): the Go toolchain and caches they all use, and a per-build lock. Sourced, not
# run; the caller has set CACHE_ROOT and defined die().

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
