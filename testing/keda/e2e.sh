#!/usr/bin/env bash
# `hearth e2e --no-skip --pod-security-restricted` under real KEDA, once per KEDA scaler mode, each on its fitting install:
#   metrics-api    --scaler-mode auto (KEDA is served, so auto must resolve to metrics-api), 2 gateways
#   external-push  --scaler-mode external-push, 2 gateways (each answers KEDA for both: issue 27), which
#                  also runs K1, KEDA <-> gateway mutual TLS (not promised in metrics-api)
# Both with 2 operators (one leads), NetworkPolicies and secure operator metrics, as scripts/e2e.sh.
#
#   testing/keda/e2e.sh --image REF [--hearth BIN] [MODE...]     (default modes: metrics-api external-push)
#
# Needs the test-bed cluster up with the hearth and stub images imported (scripts/e2e.sh does both),
# and root; starts KEDA (testing/keda/keda.sh up) if it is not running and leaves it running: the
# caller's `cluster.sh down` stops it.  Run it after the builtin-mode e2e, since `auto` picks KEDA once
# KEDA is served.  Prints each mode's verdict table (the cold wake's timeline is scenario 2's line) and
# exits 1 if any mode failed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}"
KUBECONFIG_FILE="$RUN/admin.kubeconfig"
HEARTH="$HERE/../../dist/hearth"
IMAGE=""
MODES=()

die() { echo "keda e2e: $*" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --image) IMAGE=${2:-}; shift ;;
    --hearth) HEARTH=${2:-}; shift ;;
    metrics-api | external-push) MODES+=("$1") ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (modes: metrics-api, external-push; see --help)" ;;
  esac
  shift
done
[[ -n "$IMAGE" ]] || die "--image REF is required (the hearth image imported into the cluster)"
[[ -x "$HEARTH" ]] || die "no hearth binary at $HEARTH (bash scripts/build-binary.sh, or --hearth BIN)"
((${#MODES[@]})) || MODES=(metrics-api external-push)
kc() { bash "$HERE/../cluster/cluster.sh" kubectl "$@"; }

# A running operator notices KEDA by asking discovery every 10 s; no scenario may start before each
# operator pod has (else its first LLMService renders in builtin mode, then switches).
operators_see_keda() {
  local pod
  for pod in $(kc -n hearth-system get pods -l app.kubernetes.io/component=operator -o name); do
    kc -n hearth-system logs "$pod" 2>/dev/null | grep -q "KEDA detected" || return 1
  done
}
wait_operators_see_keda() {
  local deadline=$(($(date +%s) + 60))
  until operators_see_keda; do
    (($(date +%s) < deadline)) || { echo "keda e2e: the operator did not notice KEDA in 60 s" >&2; return 1; }
    sleep 1
  done
}

bash "$HERE/keda.sh" up
failed=()
summary=()
for mode in "${MODES[@]}"; do
  started=$(date +%s)
  case "$mode" in
    metrics-api) flags=(--scaler-mode auto --gateway-replicas 2) ;;
    external-push) flags=(--scaler-mode external-push --gateway-replicas 2) ;;
  esac
  echo "==> keda e2e: $mode (hearth install ${flags[*]})"
  "$HEARTH" install --kubeconfig "$KUBECONFIG_FILE" --image "$IMAGE" --replicas 2 --network-policies \
    --metrics-port 8443 "${flags[@]}" --wait 180
  # Re-installing changes the operator's flags: no operator of the previous mode may still lead.
  kc -n hearth-system rollout status deployment/hearth-operator --timeout=180s
  wait_operators_see_keda
  log="$RUN/keda/logs/e2e-$mode.log"
  rc=0
  "$HEARTH" e2e --kubeconfig "$KUBECONFIG_FILE" --timeout 180 --no-skip --pod-security-restricted 2>&1 | tee "$log" || rc=$?
  if ! grep -qxF "scaler mode: $mode" "$log"; then
    echo "keda e2e: the verdict table does not name scaler mode $mode" >&2
    rc=1
  fi
  summary+=("$mode: exit $rc in $(($(date +%s) - started))s; $(grep '^e2e verdict' "$log" || echo 'no verdict')")
  ((rc == 0)) || failed+=("$mode")
done
printf '%s\n' "${summary[@]}"
((${#failed[@]} == 0)) || { echo "keda e2e: FAILED in ${failed[*]}" >&2; exit 1; }
