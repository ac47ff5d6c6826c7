#!/usr/bin/env bash
# Build the test cluster's pinned Kubernetes components and CoreDNS from the Go module proxy.
#
#   testing/cluster/build-components.sh [COMPONENT...]   build (default: all), print the bin dir
#   testing/cluster/build-components.sh --print-bindir   only print the bin dir (builds nothing)
#
# Components: kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns
#
# Binaries are cached outside the repo, keyed by version; a binary already in the cache is not
# rebuilt, so a warm run takes seconds.  Layout under $HEARTH_TESTBED_CACHE
# (default ~/.cache/hearth-testbed):
#   store/<component>-<version>              the built binaries (never overwritten)
#   bin/kube-<kver>-coredns-<cver>/<component>  hard links to them: the "bin dir"
#   work/                                    scratch copies of the build modules
#   go/ (GOPATH, module cache), go-build/ (GOCACHE)  unless GOPATH/GOCACHE are set
#
# Progress goes to stderr; the bin dir is the only thing printed on stdout, so
#   BIN=$(testing/cluster/build-components.sh kube-apiserver kubectl)
# works.  Needs only Go (>= the go line of the modules) and the Go module proxy.
#
# Environment: KUBE_VERSION (k8s.io/kubernetes tag, default below), COREDNS_VERSION,
# HEARTH_TESTBED_CACHE, GO (path of the go binary), GOPATH, GOCACHE, GOTOOLCHAIN (default local).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"

ALL_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBE_MOD_SRC="$HERE/kube-build"
COREDNS_MOD_SRC="$HERE/coredns-build"
CACHE_ROOT="${HEARTH_TESTBED_CACHE:-$HOME/.cache/hearth-testbed}"
STORE="$CACHE_ROOT/store"
BINDIR="$CACHE_ROOT/bin/kube-${KUBE_VERSION}-coredns-${COREDNS_VERSION}"
WORK="$CACHE_ROOT/work"

log() { printf '%s\n' "$*" >&2; }
die() { log "build-components: $*"; exit 1; }
# shellcheck source=testing/lib/go-build.sh
source "$HERE/../lib/go-build.sh"

usage() {
  sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# ---- arguments -------------------------------------------------------------------------------
PRINT_BINDIR=0
REQUESTED=()
while (($#)); do
  case "$1" in
    --print-bindir) PRINT_BINDIR=1 ;;
    -h | --help) usage; exit 0 ;;
    all) REQUESTED+=("${ALL_COMPONENTS[@]}") ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *)
      known=0
      for c in "${ALL_COMPONENTS[@]}"; do [[ "$1" == "$c" ]] && known=1; done
      ((known)) || die "unknown component: $1 (known: ${ALL_COMPONENTS[*]})"
      REQUESTED+=("$1")
      ;;
  esac
  shift
done
[[ "$KUBE_VERSION" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "KUBE_VERSION must look like v1.Y.Z, got '$KUBE_VERSION'"
[[ "$COREDNS_VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "COREDNS_VERSION must look like vX.Y.Z, got '$COREDNS_VERSION'"

if ((PRINT_BINDIR)); then
  printf '%s\n' "$BINDIR"
  exit 0
fi
((${#REQUESTED[@]})) || REQUESTED=("${ALL_COMPONENTS[@]}")

# ---- toolchain and caches ----------------------------------------------------------------------
go_build_env

mkdir -p "$STORE" "$BINDIR" "$WORK"

# One build at a time per cache (a second caller waits, then finds the binaries cached).
go_build_lock "$CACHE_ROOT/.build.lock" build-components.sh

CURRENT_TMP=""
cleanup() { [[ -z "$CURRENT_TMP" ]] || rm -f "$CURRENT_TMP"; }
trap cleanup EXIT

version_of() { [[ "$1" == coredns ]] && echo "$COREDNS_VERSION" || echo "$KUBE_VERSION"; }

# Version of <module> required by the go.mod at <file>.
required_version() { awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { v = ($1 == "require") ? $3 : $2 } END { print v }' "$1"; }

# ---- module preparation (once per run, only when something must be built) ------------------------
KUBE_MOD=""
KUBE_LDFLAGS=""
prepare_kube_module() {
  [[ -z "$KUBE_MOD" ]] || return 0
  local dir="$WORK/kube-$KUBE_VERSION" pinned
  pinned="$(required_version "$KUBE_MOD_SRC/go.mod" k8s.io/kubernetes)"
  mkdir -p "$dir"
  if [[ "$pinned" == "$KUBE_VERSION" ]]; then
    cp "$KUBE_MOD_SRC/go.mod" "$dir/go.mod"
    [[ ! -f "$KUBE_MOD_SRC/go.sum" ]] || cp "$KUBE_MOD_SRC/go.sum" "$dir/go.sum"
  elif [[ ! -f "$dir/.prepared" ]]; then
    # Re-pin a copy of the module to another release: require it, and replace every staging
    # module that upstream's go.mod points at ./staging with its published v0.Y.Z tag.
    log "re-pinning the kube build module from $pinned to $KUBE_VERSION ..."
    cp "$KUBE_MOD_SRC/go.mod" "$dir/go.mod"
    rm -f "$dir/go.sum"
    local upstream_mod staging_ver m godebug_default
    upstream_mod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
      sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -f "$upstream_mod" ]] || die "could not fetch go.mod of k8s.io/kubernetes@$KUBE_VERSION"
    staging_ver="v0.${KUBE_VERSION#v1.}"
    (
      cd "$dir"
      while read -r m; do
        go mod edit -dropreplace="$m"
      done < <(awk '$1 ~ /^k8s\.io\// && $2 == "=>" { print $1 }' go.mod)
      go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
      while read -r m; do
        go mod edit -replace="$m=$m@$staging_ver"
      done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$upstream_mod")
      godebug_default="$(awk '$1 == "godebug" && $2 ~ /^default=/ { sub(/^default=/, "", $2); print $2 }' "$upstream_mod")"
      [[ -z "$godebug_default" ]] || go mod edit -godebug="default=$godebug_default"
      go mod tidy
    ) >&2
    touch "$dir/.prepared"
  fi
  KUBE_MOD="$dir"

  # What hack/lib/version.sh would stamp in; the build date is the tag's date, for reproducibility.
  local minor build_date
  minor="${KUBE_VERSION#v1.}"
  minor="${minor%%.*}"
  build_date="$( (cd "$KUBE_MOD" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes) 2>/dev/null || true)"
  local kv
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    for kv in "gitVersion=$KUBE_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" \
      ${build_date:+"buildDate=$build_date"}; do
      KUBE_LDFLAGS+=" -X '$pkg.$kv'"
    done
  done
}

COREDNS_MOD=""
prepare_coredns_module() {
  [[ -z "$COREDNS_MOD" ]] || return 0
  local dir="$WORK/coredns-$COREDNS_VERSION" pinned
  pinned="$(required_version "$COREDNS_MOD_SRC/go.mod" github.com/coredns/coredns)"
  mkdir -p "$dir"
  if [[ "$pinned" == "$COREDNS_VERSION" ]]; then
    cp "$COREDNS_MOD_SRC/go.mod" "$dir/go.mod"
    [[ ! -f "$COREDNS_MOD_SRC/go.sum" ]] || cp "$COREDNS_MOD_SRC/go.sum" "$dir/go.sum"
  elif [[ ! -f "$dir/.prepared" ]]; then
    log "re-pinning the coredns build module from $pinned to $COREDNS_VERSION ..."
    cp "$COREDNS_MOD_SRC/go.mod" "$dir/go.mod"
    rm -f "$dir/go.sum"
    (cd "$dir" && go mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION" && go mod tidy) >&2
    touch "$dir/.prepared"
  fi
  COREDNS_MOD="$dir"
}

# ---- build -------------------------------------------------------------------------------------
build_one() {
  local comp="$1" ver out pkg moddir ldflags start
  ver="$(version_of "$comp")"
  out="$STORE/$comp-$ver"
  if [[ -x "$out" ]]; then
    log "$comp $ver: cached"
    return 0
  fi
  if [[ "$comp" == coredns ]]; then
    prepare_coredns_module
    moddir="$COREDNS_MOD"
    pkg=github.com/coredns/coredns
    ldflags="-s -w -X 'github.com/coredns/coredns/coremain.GitCommit=$ver'"
  else
    prepare_kube_module
    moddir="$KUBE_MOD"
    pkg="k8s.io/kubernetes/cmd/$comp"
    ldflags="-s -w$KUBE_LDFLAGS"
  fi
  log "building $comp $ver ..."
  start=$SECONDS
  CURRENT_TMP="$out.tmp.$$"
  (cd "$moddir" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$CURRENT_TMP" "$pkg") ||
    die "building $comp $ver failed"
  # Sanity check: the binary runs and reports a version.
  case "$comp" in
    coredns) "$CURRENT_TMP" -version >/dev/null ;;
    kubectl) "$CURRENT_TMP" version --client >/dev/null ;;
    *) "$CURRENT_TMP" --version >/dev/null ;;
  esac || die "$comp $ver was built but does not run"
  mv -f "$CURRENT_TMP" "$out"
  CURRENT_TMP=""
  log "building $comp $ver ... done in $((SECONDS - start))s"
}

# Point the bin dir at every cached binary of the pinned versions (atomic hard-link replace).
link_bindir() {
  local comp ver src dst
  for comp in "${ALL_COMPONENTS[@]}"; do
    ver="$(version_of "$comp")"
    src="$STORE/$comp-$ver"
    dst="$BINDIR/$comp"
    [[ -x "$src" ]] || continue
    [[ ! "$dst" -ef "$src" ]] || continue
    ln -f "$src" "$dst.tmp.$$" 2>/dev/null || cp -f "$src" "$dst.tmp.$$"
    mv -f "$dst.tmp.$$" "$dst"
  done
}

total_start=$SECONDS
declare -A seen=()
for comp in "${REQUESTED[@]}"; do
  [[ -z "${seen[$comp]:-}" ]] || continue
  seen[$comp]=1
  build_one "$comp"
done
link_bindir
log "components ready in $((SECONDS - total_start))s; bin dir:"
printf '%s\n' "$BINDIR"
