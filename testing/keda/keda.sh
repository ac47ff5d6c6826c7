#!/usr/bin/env bash
# Real KEDA beside the test-bed cluster: keda-operator and keda-adapter (testing/keda/build.sh) run as
# host processes against an already-up testing/cluster/cluster.sh cluster.
#
#   testing/keda/keda.sh up       install KEDA's CRDs and API objects, start both, wait until served
#   testing/keda/keda.sh down     stop both (recorded PIDs); remove the external metrics APIService
#   testing/keda/keda.sh status   PIDs, readiness, the external metrics API
#   testing/keda/keda.sh purge    `down`, then remove every object `up` added and <run dir>/keda
#
# State lives in <cluster run dir>/keda (HEARTH_CLUSTER_DIR, default /var/tmp/hearth-cluster):
# certs/ (one CA; one cert serves the adapter's API, the operator's gRPC and the adapter's gRPC client),
# logs/, pids/, resolv.conf.  Must run as root.  testing/keda/README.md records why each step is as
# it is ("pitfall N" below refers to its numbered list).
#
# Network safety: the processes resolve through the cluster's CoreDNS only (a private mount namespace
# bind-mounts a resolv.conf naming 10.88.0.1 over /etc/resolv.conf for them alone, pitfall 2), listen on
# 127.0.0.1 and on the node address 10.88.0.1:16443 (the aggregated API), and talk to nothing but the
# cluster.  The one exception KEDA allows no flag for: the adapter's own metrics server binds every
# interface (pitfall 3); it is put on port 19080.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}"
DIR="$RUN/keda"
CERTS="$DIR/certs"
LOGS="$DIR/logs"
PIDS="$DIR/pids"
ADMIN_KUBECONFIG="$RUN/admin.kubeconfig"
NODE_IP=10.88.0.1
DNS_IP=10.88.0.1            # CoreDNS of the test bed binds the node address
NAMESPACE=keda
ADAPTER_SECURE_PORT=16443   # 443 (default) and 6443 (KEDA's manifests) are not free here (pitfall 3)
ADAPTER_METRICS_PORT=19080
OPERATOR_METRICS=127.0.0.1:19081
OPERATOR_HEALTH=127.0.0.1:19082
OPERATOR_GRPC=127.0.0.1:19666
APISERVICE=v1beta1.external.metrics.k8s.io
HPA_READER="keda-external-metrics-reader"
PROCESSES=(keda-operator keda-adapter)
GRACE=10

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

T0=$(date +%s.%N)
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[keda %6ss] %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { ((EUID == 0)) || die "must run as root"; }

kubectl_bin() {
  if [[ -r "$RUN/state/bindir" ]]; then echo "$(cat "$RUN/state/bindir")/kubectl"
  else echo "$(bash "$HERE/../cluster/build-components.sh" --print-bindir)/kubectl"; fi
}
kc() { "$(kubectl_bin)" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
api_up() { [[ -r "$ADMIN_KUBECONFIG" ]] && kc get --raw /readyz >/dev/null 2>&1; }

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: poll COMMAND every 0.25 s until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.25
  done
}

# ---- process bookkeeping (as cluster.sh: "<pid> <starttime>", so a recycled PID is never signalled)
proc_starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
recorded_pid() {
  local f="$PIDS/$1.pid" pid start
  [[ -r "$f" ]] || return 1
  read -r pid start <"$f" || return 1
  [[ -n "$pid" && "$(proc_starttime "$pid")" == "$start" ]] || return 1
  echo "$pid"
}

# start_proc NAME COMMAND...: in its own session and its own mount namespace, where /etc/resolv.conf is
# the cluster's (pitfall 2).  unshare and sh both exec, so the recorded PID is KEDA's own process.
start_proc() {
  local name=$1; shift
  printf '\n===== %s start %s =====\n' "$name" "$(date -Is)" >>"$LOGS/$name.log"
  # shellcheck disable=SC2016  # $0 and $@ belong to the inner sh
  POD_NAMESPACE=$NAMESPACE KEDA_CLUSTER_OBJECT_NAMESPACE=$NAMESPACE WATCH_NAMESPACE="" \
    KUBECONFIG="$ADMIN_KUBECONFIG" \
    setsid unshare -m --propagation private \
    sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' "$DIR/resolv.conf" "$@" \
    >>"$LOGS/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(proc_starttime "$pid")" >"$PIDS/$name.pid"
  log "   started $name (pid $pid, log $LOGS/$name.log)"
}

stop_procs() {
  local name pid pids=() names=() i t0
  for name in "$@"; do
    if pid=$(recorded_pid "$name"); then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); names+=("$name"); fi
  done
  t0=$(date +%s)
  for i in "${!pids[@]}"; do
    while [[ -n "$(proc_starttime "${pids[$i]}")" ]] && (($(date +%s) - t0 < GRACE)); do sleep 0.2; done
    if [[ -n "$(proc_starttime "${pids[$i]}")" ]]; then
      log "   ${names[$i]} (pid ${pids[$i]}) still running after ${GRACE}s: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
      while [[ -n "$(proc_starttime "${pids[$i]}")" ]]; do sleep 0.1; done
    fi
    log "   stopped ${names[$i]} (pid ${pids[$i]})"
  done
  for name in "$@"; do rm -f "$PIDS/$name.pid"; done
}

# ---- up: steps -----------------------------------------------------------------------------------
check_ports() {
  local listening p busy=()
  listening=$(ss -Hltn 2>/dev/null | awk '{print $4}')
  for p in "$NODE_IP:$ADAPTER_SECURE_PORT" "0.0.0.0:$ADAPTER_METRICS_PORT" "$OPERATOR_METRICS" "$OPERATOR_HEALTH" \
    "$OPERATOR_GRPC"; do
    local port=${p##*:}
    if grep -qE "(^|[^0-9])(${p//./\\.}|0\.0\.0\.0:$port|\*:$port|\[::\]:$port)$" <<<"$listening"; then busy+=("$p"); fi
  done
  ((${#busy[@]} == 0)) || die "ports already in use: ${busy[*]} (another KEDA running?)"
}

# One CA and one EC cert for every TLS end (pitfall 6: the adapter's gRPC client reads ca.crt, tls.crt
# and tls.key from --cert-dir whatever else is given).  Kept across up/down, like the cluster's PKI.
generate_certs() {
  [[ -s "$CERTS/tls.crt" && -s "$CERTS/ca.crt" ]] && { log "   reusing $CERTS"; return 0; }
  mkdir -p "$CERTS"
  openssl ecparam -name prime256v1 -genkey -noout -out "$CERTS/ca.key" 2>/dev/null
  printf '[req]\ndistinguished_name=dn\nx509_extensions=v3_ca\n[dn]\n[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nsubjectKeyIdentifier=hash\n' \
    >"$CERTS/ca.cnf"
  openssl req -x509 -new -key "$CERTS/ca.key" -subj "/CN=keda-testbed-ca" -days 3650 \
    -config "$CERTS/ca.cnf" -out "$CERTS/ca.crt" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$CERTS/tls.key" 2>/dev/null
  openssl req -new -key "$CERTS/tls.key" -subj "/CN=keda-operator" -out "$CERTS/tls.csr" 2>/dev/null
  local svc sans="IP:127.0.0.1,IP:$NODE_IP,DNS:localhost"
  for svc in keda-operator keda-metrics-apiserver; do
    sans+=",DNS:$svc.$NAMESPACE.svc,DNS:$svc.$NAMESPACE.svc.cluster.local"
  done
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' \
    "$sans" >"$CERTS/tls.ext"
  openssl x509 -req -in "$CERTS/tls.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -extfile "$CERTS/tls.ext" -out "$CERTS/tls.crt" 2>/dev/null
  rm -f "$CERTS/ca.cnf" "$CERTS/tls.csr" "$CERTS/tls.ext"
  chmod 600 "$CERTS"/*.key
}

crds_established() {
  local crd
  for crd in scaledobjects.keda.sh scaledjobs.keda.sh triggerauthentications.keda.sh \
    clustertriggerauthentications.keda.sh; do
    [[ "$(kc get crd "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" == True ]] ||
      return 1
  done
}

install_objects() {
  local keda=$1 ca
  kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f - >/dev/null
  # Server-side: the ScaledJob CRD is too big for client-side apply's annotation.  -k: KEDA's
  # kustomization adds the HPA window's 0-3600 bounds to the ScaledObject CRD.
  kc apply --server-side --force-conflicts -k "$keda/config/crd" >/dev/null
  # Polled, not `kubectl wait`: that fails at once on a CRD with no conditions yet (pitfall 4).
  wait_for "KEDA's CRDs to be Established" 60 crds_established
  ca=$(base64 -w0 <"$CERTS/ca.crt")
  kc apply --server-side --force-conflicts -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $HPA_READER, labels: {app.kubernetes.io/part-of: keda-testbed}}
rules:
- apiGroups: [external.metrics.k8s.io]
  resources: ["*"]
  verbs: ["*"]
---
# The HPA controller runs under its own ServiceAccount (--use-service-account-credentials).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: keda-hpa-controller-external-metrics, labels: {app.kubernetes.io/part-of: keda-testbed}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $HPA_READER}
subjects:
- {kind: ServiceAccount, name: horizontal-pod-autoscaler, namespace: kube-system}
---
# No selector: the adapter is a host process; the EndpointSlice below points at it.
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: $NAMESPACE, labels: {app.kubernetes.io/part-of: keda-testbed}}
spec:
  ports: [{name: https, port: 443, targetPort: $ADAPTER_SECURE_PORT, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keda-metrics-apiserver-host
  namespace: $NAMESPACE
  labels: {kubernetes.io/service-name: keda-metrics-apiserver, app.kubernetes.io/part-of: keda-testbed}
addressType: IPv4
ports: [{name: https, port: $ADAPTER_SECURE_PORT, protocol: TCP}]
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
---
# The apiserver dials the EndpointSlice address (--enable-aggregator-routing) and checks the adapter's
# cert against caBundle: no insecureSkipTLSVerify.
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: $APISERVICE, labels: {app.kubernetes.io/part-of: keda-testbed}}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: keda-metrics-apiserver, namespace: $NAMESPACE, port: 443}
  caBundle: $ca
EOF
}

operator_ready() { curl -fsS "http://$OPERATOR_HEALTH/readyz" >/dev/null; }
external_metrics_served() { kc get --raw /apis/external.metrics.k8s.io/v1beta1 | grep -q externalmetrics; }

cmd_up() {
  need_root
  api_up || die "no cluster answers at $ADMIN_KUBECONFIG (run testing/cluster/cluster.sh up first)"
  if recorded_pid keda-operator >/dev/null && recorded_pid keda-adapter >/dev/null; then
    log "KEDA already running (see $0 status); reusing it"
    return 0
  fi
  stop_procs "${PROCESSES[@]}"   # a half-running pair from before
  mkdir -p "$DIR" "$LOGS" "$PIDS"
  local t keda
  log "-> KEDA build"; t=$(now)
  keda=$(bash "$HERE/build.sh" 2>>"$LOGS/build.log") || die "testing/keda/build.sh failed; see $LOGS/build.log"
  log "   $keda ($(elapsed "$t") s)"
  log "-> port check"; check_ports
  log "-> certificates"; generate_certs
  log "-> namespace, CRDs, APIService, HPA binding"; t=$(now)
  install_objects "$keda"
  log "   done ($(elapsed "$t") s)"
  printf 'nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n' \
    "$DNS_IP" "$NAMESPACE" >"$DIR/resolv.conf"
  log "-> processes"; t=$(now)
  start_proc keda-operator "$keda/bin/keda-operator" --kubeconfig="$ADMIN_KUBECONFIG" --leader-elect=false \
    --enable-cert-rotation=false --cert-dir="$CERTS" --metrics-bind-address="$OPERATOR_METRICS" \
    --health-probe-bind-address="$OPERATOR_HEALTH" --metrics-service-bind-address="$OPERATOR_GRPC" \
    --zap-encoder=console --zap-time-encoding=rfc3339nano
  start_proc keda-adapter "$keda/bin/keda-adapter" --kubeconfig="$ADMIN_KUBECONFIG" \
    --lister-kubeconfig="$ADMIN_KUBECONFIG" --authentication-kubeconfig="$ADMIN_KUBECONFIG" \
    --authorization-kubeconfig="$ADMIN_KUBECONFIG" --bind-address="$NODE_IP" \
    --secure-port="$ADAPTER_SECURE_PORT" --cert-dir="$CERTS" --tls-cert-file="$CERTS/tls.crt" \
    --tls-private-key-file="$CERTS/tls.key" --port="$ADAPTER_METRICS_PORT" \
    --metrics-service-address="$OPERATOR_GRPC"
  wait_for "keda-operator /readyz (log $LOGS/keda-operator.log)" 120 operator_ready
  log "   operator ready ($(elapsed "$t") s)"
  # Available=True comes with the adapter's discovery alone (pitfall 5); a metric read (e.g. by the
  # HPA) is what proves the adapter -> operator gRPC path.
  wait_for "the external metrics API (log $LOGS/keda-adapter.log)" 120 external_metrics_served
  log "   external metrics API served ($(elapsed "$t") s)"
  local p; for p in "${PROCESSES[@]}"; do recorded_pid "$p" >/dev/null || die "$p exited; see $LOGS/$p.log"; done
  log "KEDA up in $(elapsed "$T0") s"
}

# With the adapter gone, an APIService left behind makes discovery fail, and with it the namespace
# controller: namespaces would hang in Terminating.  So `down` removes it; `up` puts it back.
remove_apiservice() {
  api_up || return 0
  kc delete apiservice "$APISERVICE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}

cmd_down() {
  need_root
  [[ -d "$PIDS" ]] || return 0
  local running=0 p
  for p in "${PROCESSES[@]}"; do recorded_pid "$p" >/dev/null && running=1; done
  ((running)) || return 0
  log "down: stopping KEDA"
  remove_apiservice
  stop_procs "${PROCESSES[@]}"
  log "KEDA down in $(elapsed "$T0") s"
}

cmd_status() {
  local p pid
  for p in "${PROCESSES[@]}"; do
    if pid=$(recorded_pid "$p"); then printf '%-26s %s\n' "$p" "$pid"; else printf '%-26s %s\n' "$p" "-"; fi
  done
  recorded_pid keda-operator >/dev/null || return 0
  echo "keda-operator /readyz: $(curl -fsS "http://$OPERATOR_HEALTH/readyz" 2>/dev/null || echo 'not ready')"
  if api_up; then
    echo "APIService $APISERVICE Available: $(kc get apiservice "$APISERVICE" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null || echo absent)"
    kc get scaledobjects -A 2>/dev/null || true
  fi
}

cmd_purge() {
  need_root
  cmd_down
  if api_up; then
    log "purge: removing KEDA's objects"
    remove_apiservice
    kc delete clusterrolebinding keda-hpa-controller-external-metrics --ignore-not-found >/dev/null || true
    kc delete clusterrole "$HPA_READER" --ignore-not-found >/dev/null || true
    kc delete namespace "$NAMESPACE" --ignore-not-found --wait=false >/dev/null || true
    local crd
    for crd in scaledobjects.keda.sh scaledjobs.keda.sh triggerauthentications.keda.sh \
      clustertriggerauthentications.keda.sh cloudeventsources.eventing.keda.sh \
      clustercloudeventsources.eventing.keda.sh; do
      kc delete crd "$crd" --ignore-not-found --wait=false >/dev/null || true
    done
  fi
  rm -rf "$DIR"
  log "purged $DIR in $(elapsed "$T0") s (KEDA build cache kept: $(bash "$HERE/build.sh" --print-dir))"
}

main() {
  local cmd=${1:-}; shift || true
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    purge) cmd_purge "$@" ;;
    -h | --help | help | "") sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) log "ERROR: unknown command '$cmd' (see --help)"; exit 2 ;;
  esac
}

main "$@"
