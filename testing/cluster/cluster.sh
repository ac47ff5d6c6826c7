#!/usr/bin/env bash
# Hearth's single-node Kubernetes test bed: a real cluster (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, bridge CNI, kubelet, kube-proxy,
# CoreDNS, and a dynamic volume provisioner with the default StorageClass) run as plain host processes on
# a machine without systemd or Docker.
#
#   testing/cluster/cluster.sh up               bring the cluster up (reuses it if already up)
#   testing/cluster/cluster.sh down             stop what `up` started, clean pods/network, keep caches
#   testing/cluster/cluster.sh status           PIDs, node readiness, `kubectl get pods -A`
#   testing/cluster/cluster.sh purge [--packages]  `down`, then remove everything `up` created
#   testing/cluster/cluster.sh load-image TAR   import an OCI tarball into containerd (k8s.io)
#   testing/cluster/cluster.sh kubectl ARGS...  run the matching kubectl with the admin kubeconfig
#   testing/cluster/cluster.sh fault restart kube-apiserver|kubelet   a fault for `hearth e2e` (X2-X4);
#   testing/cluster/cluster.sh fault pause etcd SECONDS               returns once the cluster is healthy
#
# Everything lives under HEARTH_CLUSTER_DIR (default /var/tmp/hearth-cluster); the admin
# kubeconfig is <dir>/admin.kubeconfig.  Must run as root.  See testing/README.md (the whole test bed)
# and testing/cluster/README.md (this cluster; "pitfall N" below refers to its numbered pitfalls).
#
# Network safety: every packet stays on 127.0.0.0/8, the cluster bridge 10.88.0.0/16 and the
# service range 10.96.0.0/12 (routed onto the bridge, never out of the machine).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}"
NODE_NAME="${HEARTH_NODE_NAME:-hearth-node}"
NODE_IP=10.88.0.1          # cni0's address: node IP, apiserver address, kubelet address (pitfall 2)
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/12
API_SERVICE_IP=10.96.0.1   # first address of SERVICE_CIDR: the `kubernetes` Service
DNS_SERVICE_IP=10.96.0.10
BRIDGE=cni0
PAUSE_REF=hearth.dev/pause:1
APISERVER_GRACE="${HEARTH_CLUSTER_APISERVER_GRACE:-15}"  # seconds before SIGKILL (it drains 40-60 s)
GRACE=10                                                  # the other components exit in ~1 s
EXTENDED_RESOURCE=hearth.dev/fake-accelerator
EXTENDED_COUNT=4
PACKAGES=(etcd-server containerd runc containernetworking-plugins iptables conntrack socat busybox-static)

# Host paths some component creates outside the run dir whatever we configure (pitfall 7);
# recorded before the first `up` so that `purge` removes only what did not exist.
HOST_PATHS=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/netns /etc/cni
  /opt/cni /opt/containerd /var/lib/containerd /run/containerd /etc/kubernetes
  /usr/libexec/kubernetes /var/lib/hearth)

PKI="$RUN/pki"
KCFG="$RUN/kubeconfigs"
ADMIN_KUBECONFIG="$RUN/admin.kubeconfig"
LOGS="$RUN/logs"
PIDS="$RUN/pids"
STATE="$RUN/state"          # what `up` changed on the host, for `down`/`purge` to restore
CACHE="$RUN/cache"          # kept by `down`: pause image
CTRD="$RUN/containerd"      # root/ (images, kept by `down`), state/ (wiped), config.toml, socket
CTR_SOCK="$CTRD/containerd.sock"
KUBELET_DIR="$RUN/kubelet"
CNI_CONF_DIR="$RUN/cni/net.d"
CNI_IPAM_DIR="$RUN/cni/ipam"
ETCD_DIR="$RUN/etcd"
VOLUMES_DIR="$RUN/volumes"     # local-provisioner's PersistentVolumes (wiped by `down`, as etcd is)
STORAGE_CLASS=hearth-local

# Start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy coredns
  local-provisioner)

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

# ---- output helpers ---------------------------------------------------------------------------
T0=$(date +%s.%N)
STEP_NAME="" STEP_T0=""
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[cluster %6ss] %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
step() { step_done; STEP_NAME="$1"; STEP_T0=$(now); log "-> $1"; }
step_done() {
  if [[ -n "$STEP_NAME" ]]; then log "   done: $STEP_NAME ($(elapsed "$STEP_T0") s)"; fi
  STEP_NAME=""
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: poll COMMAND every 0.25 s until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline; deadline=$(awk -v n="$(now)" -v t="$timeout" 'BEGIN { printf "%d", n + t }')
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= deadline)); then die "timed out after ${timeout}s waiting for $what"; fi
    sleep 0.25
  done
}

tail_logs() {
  local f
  for f in "$LOGS"/*.log; do
    [[ -e "$f" ]] || continue
    printf '\n===== last 25 lines of %s =====\n' "$f" >&2
    tail -n 25 "$f" >&2 || true
  done
}

# EXIT trap of `up`: any failure (set -e or die) prints each component's log tail.
on_up_exit() {
  local rc=$?
  trap - EXIT
  if ((rc != 0)); then
    log "up FAILED (exit $rc) during: ${STEP_NAME:-?}"
    tail_logs
    log "processes were left running for inspection; clean up with: $0 down"
  fi
  exit "$rc"
}

need_root() { ((EUID == 0)) || die "must run as root"; }

bindir() {
  if [[ -r "$STATE/bindir" ]]; then cat "$STATE/bindir"; else bash "$HERE/build-components.sh" --print-bindir; fi
}
kc() { "$(bindir)/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
ctrk() { ctr --address "$CTR_SOCK" -n k8s.io "$@"; }

# ---- process bookkeeping: "<pid> <starttime>" per component, so a recycled PID is never signalled
proc_starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

start_proc() {
  local name=$1; shift
  mkdir -p "$LOGS" "$PIDS"
  printf '\n===== %s start %s =====\n' "$name" "$(date -Is)" >>"$LOGS/$name.log"
  # setsid: own session, so a Ctrl-C in the calling terminal does not reach the cluster.  In a
  # non-interactive shell the background child is no process-group leader, so setsid does not
  # fork again and $! is the component's own PID.
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(proc_starttime "$pid")" >"$PIDS/$name.pid"
  log "   started $name (pid $pid, log $LOGS/$name.log)"
}

# recorded_pid NAME: print the PID if the recorded process is still the one we started.
recorded_pid() {
  local f="$PIDS/$1.pid" pid start
  [[ -r "$f" ]] || return 1
  read -r pid start <"$f" || return 1
  [[ -n "$pid" && "$(proc_starttime "$pid")" == "$start" ]] || return 1
  echo "$pid"
}

assert_alive() {
  recorded_pid "$1" >/dev/null || die "$1 exited; see $LOGS/$1.log"
}

# stop_procs GRACE NAME...: SIGTERM each recorded PID, wait up to GRACE s, then SIGKILL that PID.
stop_procs() {
  local grace=$1; shift
  local name pid pids=() names=()
  for name in "$@"; do
    if pid=$(recorded_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("$name")
    fi
  done
  local i t0; t0=$(date +%s)
  for i in "${!pids[@]}"; do
    while [[ "$(proc_starttime "${pids[$i]}")" != "" ]] && (($(date +%s) - t0 < grace)); do sleep 0.2; done
    if [[ -n "$(proc_starttime "${pids[$i]}")" ]]; then
      log "   ${names[$i]} (pid ${pids[$i]}) still running after ${grace}s: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
      while [[ -n "$(proc_starttime "${pids[$i]}")" ]]; do sleep 0.1; done
    fi
    log "   stopped ${names[$i]} (pid ${pids[$i]})"
  done
  for name in "$@"; do rm -f "$PIDS/$name.pid"; done
}

# ---- host state recording ------------------------------------------------------------------------
record_preexisting() {
  mkdir -p "$STATE"
  [[ -e "$STATE/preexisting" ]] && return 0   # keep the record of the very first `up`
  local p
  {
    for p in "${HOST_PATHS[@]}"; do [[ -e "$p" ]] && echo "$p"; done
    for p in /sys/fs/cgroup/*/kubepods; do [[ -e "$p" ]] && echo "$p"; done
    for p in /run/netns/*; do [[ -e "$p" ]] && echo "$p"; done
  } >"$STATE/preexisting.tmp" || true
  mv "$STATE/preexisting.tmp" "$STATE/preexisting"
}
preexisted() { grep -qxF "$1" "$STATE/preexisting" 2>/dev/null; }

# ---- up: steps -----------------------------------------------------------------------------------
install_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then log "   all Debian packages present"; return 0; fi
  log "   installing: ${missing[*]}"
  printf '%s\n' "${missing[@]}" >>"$STATE/installed-packages"
  apt-get update -qq >>"$LOGS/apt.log" 2>&1
  # policy-rc.d on this machine keeps Debian from starting etcd/containerd services: we start them.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1
}

locate_components() {
  local dir
  dir=$(bash "$HERE/build-components.sh" kube-apiserver kube-controller-manager kube-scheduler \
    kubelet kube-proxy kubectl coredns 2>>"$LOGS/build-components.log")
  [[ -x "$dir/kube-apiserver" ]] || die "build-components.sh gave no usable bin dir ($dir)"
  echo "$dir" >"$STATE/bindir"
  log "   bin dir: $dir"
}

check_ports() {
  # Refuse early and clearly rather than let a component die on "address already in use".
  local listening p busy=()
  listening=$(ss -Hltnu 2>/dev/null | awk '{print $5}')
  for p in 127.0.0.1:2379 127.0.0.1:2380 "$NODE_IP:6443" "$NODE_IP:10250" 127.0.0.1:10248 \
    127.0.0.1:10249 127.0.0.1:10256 127.0.0.1:10257 127.0.0.1:10259 "$NODE_IP:53" 127.0.0.1:18181; do
    local port=${p##*:}
    if grep -qE "(^|[^0-9])(${p//./\\.}|0\.0\.0\.0:$port|\*:$port|\[::\]:$port)$" <<<"$listening"; then busy+=("$p"); fi
  done
  ((${#busy[@]} == 0)) || die "ports already in use: ${busy[*]} (another cluster running?)"
}

# pki_cert NAME CN ORG USAGE SANS SIGNER: an EC P-256 key and a cert signed by SIGNER (ca|front-proxy-ca).
pki_cert() {
  local name=$1 cn=$2 org=$3 usage=$4 sans=$5 signer=$6 subj
  subj="/CN=$cn"; [[ -n "$org" ]] && subj="/O=$org$subj"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$signer.crt" -CAkey "$PKI/$signer.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -extfile "$PKI/$name.ext" \
    -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

pki_ca() {
  local name=$1 cn=$2
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  # Own minimal config: the distribution's default v3_ca section would clash with our extensions.
  cat >"$PKI/$name.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = v3_ca
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign
subjectKeyIdentifier = hash
EOF
  openssl req -x509 -new -key "$PKI/$name.key" -subj "/CN=$cn" -days 3650 -config "$PKI/$name.cnf" \
    -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.cnf"
}

generate_pki() {
  if [[ -s "$PKI/done" ]]; then log "   reusing $PKI"; return 0; fi
  rm -rf "$PKI"; mkdir -p "$PKI"; chmod 700 "$PKI"
  pki_ca ca kubernetes
  # A separate CA for the aggregation layer (front proxy), as kubeadm does: without the
  # requestheader CA the controller-manager and scheduler loop on a missing bundle.
  pki_ca front-proxy-ca front-proxy-ca
  pki_cert apiserver kube-apiserver "" serverAuth \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$NODE_IP" ca
  pki_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth "" ca
  pki_cert admin kubernetes-admin system:masters clientAuth "" ca
  pki_cert controller-manager system:kube-controller-manager "" clientAuth "" ca
  pki_cert scheduler system:kube-scheduler "" clientAuth "" ca
  pki_cert kubelet "system:node:$NODE_NAME" system:nodes clientAuth "" ca
  pki_cert kubelet-serving "$NODE_NAME" "" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP" ca
  pki_cert kube-proxy system:kube-proxy "" clientAuth "" ca       # bound to system:node-proxier by default
  pki_cert coredns system:coredns "" clientAuth "" ca             # bound by us (bootstrap_objects)
  pki_cert front-proxy-client front-proxy-client "" clientAuth "" front-proxy-ca
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
  date -Is >"$PKI/done"
}

# write_kubeconfig FILE CERTNAME USER
write_kubeconfig() {
  local file=$1 cert=$2 user=$3
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hearth
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: $user@hearth
  context: {cluster: hearth, user: $user}
current-context: $user@hearth
EOF
  chmod 600 "$file"
}

generate_kubeconfigs() {
  mkdir -p "$KCFG"
  write_kubeconfig "$ADMIN_KUBECONFIG" admin kubernetes-admin
  write_kubeconfig "$KCFG/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  write_kubeconfig "$KCFG/scheduler.kubeconfig" scheduler system:kube-scheduler
  write_kubeconfig "$KCFG/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
  write_kubeconfig "$KCFG/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
  write_kubeconfig "$KCFG/coredns.kubeconfig" coredns system:coredns
}

# The sandbox ("pause") image: a static C program as PID 1 of every pod sandbox, packed alone into an
# OCI image-layout tarball by testing/image/build_oci_image.py --bare (no registry here: containerd must
# never try to pull it). Cached under a key of the program's source and the packer, so a change of either
# rebuilds it.
PAUSE_C='/* PID 1 of a pod sandbox: hold the namespaces, reap orphans, exit on SIGINT/SIGTERM. */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_term(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction term = {0}, child = {0};
  term.sa_handler = on_term;
  sigaction(SIGINT, &term, NULL);
  sigaction(SIGTERM, &term, NULL);
  child.sa_handler = on_child;
  child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
}
'
OCI_PACKER="$HERE/../image/build_oci_image.py"

pause_tar() {
  local key
  key=$( { printf '%s' "$PAUSE_C"; cat "$OCI_PACKER"; } | sha256sum)
  echo "$CACHE/pause-${key:0:16}.tar"
}

build_pause_image() {
  local out; out=$(pause_tar)
  if [[ -s "$out" ]]; then log "   reusing $out"; return 0; fi
  local work="$CACHE/pause-build"
  rm -rf "$work"; mkdir -p "$work"
  printf '%s' "$PAUSE_C" >"$work/pause.c"
  gcc -Os -static -s -o "$work/pause" "$work/pause.c"
  SOURCE_DATE_EPOCH=0 python3 "$OCI_PACKER" --bare --binary "$work/pause" --binary-path /pause \
    --entrypoint '["/pause"]' --user 65535:65535 --ref "$PAUSE_REF" --out "$work/pause.tar" >/dev/null
  mv "$work/pause.tar" "$out"
  rm -rf "$work"
  log "   built $out ($(stat -c %s "$out") bytes)"
}

setup_network() {
  local f
  # Remember the host's original values once (the first `up`), to restore on `down`.
  [[ -e "$STATE/ip_forward" ]] || cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward"
  f=/proc/sys/net/bridge/bridge-nf-call-iptables
  if [[ -e "$f" && ! -e "$STATE/bridge-nf-call-iptables" ]]; then cat "$f" >"$STATE/bridge-nf-call-iptables"; fi

  # Pitfall 2: the node IP cannot be loopback and there are no dummy links, so the bridge the
  # CNI plugin uses is created first and its address is the node IP.
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    touch "$STATE/bridge-created"
  fi
  ip addr replace "$NODE_IP/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up

  # Pitfall 3 (network safety).  Pods get only a route to the service range (no default route,
  # see the CNI config); the mangle table runs before kube-proxy's filter rules, so its ACCEPTs
  # can never let a forwarded packet leave the bridge.
  iptables -t mangle -C FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment hearth-cluster -j DROP 2>/dev/null ||
    iptables -t mangle -I FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment hearth-cluster -j DROP
  # The service range goes onto the bridge instead of a blackhole: kube-proxy's DNAT happens
  # after the route lookup of locally generated packets, so a blackhole would make ClusterIPs
  # unreachable from the host; an un-DNATed packet merely ARPs on cni0 and dies there.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  # Pod -> ClusterIP -> pod on the same bridge needs bridged replies to see conntrack.
  if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables; fi
  # Pod -> ClusterIP is routed through the host (the bridge plugin would turn this on anyway).
  echo 1 >/proc/sys/net/ipv4/ip_forward

  mkdir -p "$CNI_CONF_DIR" "$CNI_IPAM_DIR"
  cat >"$CNI_CONF_DIR/10-hearth.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "hearth",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_IPAM_DIR",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}]
      }
    }
  ]
}
EOF
}

start_etcd() {
  mkdir -p "$ETCD_DIR"; chmod 700 "$ETCD_DIR"
  # Plain HTTP on loopback only; a fresh data dir each `up` (down wipes it) keeps runs independent.
  start_proc etcd etcd --name=hearth --data-dir="$ETCD_DIR" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=hearth=http://127.0.0.1:2380 --listen-metrics-urls=http://127.0.0.1:2381 \
    --quota-backend-bytes=2147483648
  wait_for "etcd health" 30 curl -fsS http://127.0.0.1:2379/health
  assert_alive etcd
}

start_apiserver() {
  local bin; bin=$(bindir)
  start_proc kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address="$NODE_IP" --secure-port=6443 --advertise-address="$NODE_IP" \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --profiling=false --v=1
  # --enable-aggregator-routing: aggregated APIs (e.g. KEDA's metrics server) are reached at
  # their endpoint IPs rather than through a ClusterIP, which the host process need not route.
  wait_for "kube-apiserver /readyz" 90 curl -fsS --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://$NODE_IP:6443/readyz"
  assert_alive kube-apiserver
}

start_containerd() {
  mkdir -p "$CTRD/root" "$CTRD/state" "$CTRD/opt"
  cat >"$CTRD/config.toml" <<EOF
version = 2
# Own root/state/socket: nothing of the machine's default containerd (if any) is touched.
root = "$CTRD/root"
state = "$CTRD/state"
oom_score = 0
[grpc]
  address = "$CTR_SOCK"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_REF"
  # Pitfall 1: this VM withholds CAP_SYS_RESOURCE, so no negative oom_score_adj may be set.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd on this machine: cgroupfs, matching the kubelet's cgroupDriver.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
  start_proc containerd containerd --config "$CTRD/config.toml"
  wait_for "containerd socket" 30 ctr --address "$CTR_SOCK" version
  assert_alive containerd
  # Imported every time: a rebuilt pause image (same name, new digest) must replace the one kept by `down`.
  ctrk images import "$(pause_tar)" >/dev/null
  log "   imported $PAUSE_REF"
}

start_controller_manager() {
  local bin cfg="$KCFG/controller-manager.kubeconfig"; bin=$(bindir)
  start_proc kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$cfg" --authentication-kubeconfig="$cfg" --authorization-kubeconfig="$cfg" \
    --bind-address=127.0.0.1 --secure-port=10257 \
    --client-ca-file="$PKI/ca.crt" --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-account-private-key-file="$PKI/sa.key" \
    --use-service-account-credentials=true \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=false --profiling=false --v=1
  # --use-service-account-credentials: each controller acts under its own RBAC identity.
  # No --allocate-node-cidrs: host-local IPAM hands out pod IPs, nodes need no podCIDR.
}

start_scheduler() {
  local bin cfg="$KCFG/scheduler.kubeconfig"; bin=$(bindir)
  start_proc kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$cfg" --authentication-kubeconfig="$cfg" --authorization-kubeconfig="$cfg" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false --v=1
}

# Objects the cluster needs before kubelet/CoreDNS: RBAC for CoreDNS and the kube-dns Service.
# CoreDNS runs as a host process on $NODE_IP:53, so kube-dns has no selector and a hand-made
# EndpointSlice pointing at the node IP; kube-proxy then DNATs $DNS_SERVICE_IP to it.
bootstrap_objects() {
  kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_SERVICE_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: hearth-testbed
addressType: IPv4
endpoints:
- addresses: ["$NODE_IP"]
  conditions: {ready: true}
  nodeName: $NODE_NAME
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

start_kubelet() {
  local bin; bin=$(bindir)
  mkdir -p "$KUBELET_DIR/root" "$KUBELET_DIR/pod-logs" "$KUBELET_DIR/volume-plugins"
  cat >"$KUBELET_DIR/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CTR_SOCK
imageServiceEndpoint: unix://$CTR_SOCK
# No systemd: cgroupfs (containerd 1.6 cannot report its driver, pitfall 8).
cgroupDriver: cgroupfs
# Pitfall 1: the kubelet may not set a negative oom_score_adj on this VM.
oomScoreAdj: 0
failSwapOn: false
failCgroupV1: false
clusterDomain: cluster.local
clusterDNS: [$DNS_SERVICE_IP]
# Pods with dnsPolicy Default get no upstream resolver (there is none they may reach).
resolvConf: ""
# Hand-imported images cannot be re-pulled: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
# Pitfall 7: keep pod logs and flexvolume probing inside the run dir.
podLogsDir: $KUBELET_DIR/pod-logs
volumePluginDir: $KUBELET_DIR/volume-plugins
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
EOF
  start_proc kubelet "$bin/kubelet" --config="$KUBELET_DIR/config.yaml" \
    --kubeconfig="$KCFG/kubelet.kubeconfig" --root-dir="$KUBELET_DIR/root" \
    --cert-dir="$KUBELET_DIR/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
}

start_kube_proxy() {
  local bin; bin=$(bindir)
  mkdir -p "$RUN/kube-proxy"
  cat >"$RUN/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $KCFG/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on the bridge address, never on the machine's other interfaces; no localhost
# NodePorts (they would need the route_localnet sysctl).
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false}
# Leave the host's conntrack sysctls alone (0 = do not change).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start_proc kube-proxy "$bin/kube-proxy" --config="$RUN/kube-proxy/config.yaml" --v=1
}

start_coredns() {
  local bin; bin=$(bindir)
  mkdir -p "$RUN/coredns"
  # Bound to the node IP only.  No `forward`: names outside the cluster zones get NXDOMAIN (not
  # SERVFAIL, so resolvers carry on through their search list) and no query leaves the machine.
  cat >"$RUN/coredns/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KCFG/coredns.kubeconfig
        pods insecure
    }
    cache 5
}
.:53 {
    bind $NODE_IP
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
  start_proc coredns "$bin/coredns" -conf "$RUN/coredns/Corefile"
}

# A dynamic provisioner for this one node (testing/cluster/local_provisioner.py): PVCs of the default
# StorageClass get a directory under $VOLUMES_DIR as a `local` PersistentVolume, so cache PVCs bind.
start_local_provisioner() {
  local bin; bin=$(bindir)
  # Its own identity, least privilege (made here too, so a PKI from before this component gains it).
  [[ -s "$PKI/local-provisioner.crt" ]] ||
    pki_cert local-provisioner system:hearth-local-provisioner "" clientAuth "" ca
  write_kubeconfig "$KCFG/local-provisioner.kubeconfig" local-provisioner system:hearth-local-provisioner
  kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:hearth-local-provisioner"}
rules:
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:hearth-local-provisioner"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:hearth-local-provisioner"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:hearth-local-provisioner"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $STORAGE_CLASS
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: hearth.dev/local-path
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOF
  mkdir -p "$VOLUMES_DIR"
  start_proc local-provisioner python3 "$HERE/local_provisioner.py" --kubectl "$bin/kubectl" \
    --kubeconfig "$KCFG/local-provisioner.kubeconfig" --node "$NODE_NAME" --root "$VOLUMES_DIR"
}

node_ready() {
  [[ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

patch_extended_resource() {
  # Pitfall 5: capacity and allocatable both, else allocatable lags ~10 s behind.
  kc patch node "$NODE_NAME" --subresource=status --type=merge -p \
    "{\"status\":{\"capacity\":{\"$EXTENDED_RESOURCE\":\"$EXTENDED_COUNT\"},\"allocatable\":{\"$EXTENDED_RESOURCE\":\"$EXTENDED_COUNT\"}}}" >/dev/null
}

dns_ready() {
  curl -fsS http://127.0.0.1:18181/ready >/dev/null &&
    busybox nslookup kubernetes.default.svc.cluster.local "$NODE_IP" 2>/dev/null | grep -q "$API_SERVICE_IP"
}

# ---- subcommands ---------------------------------------------------------------------------------
cluster_state() {  # prints up | down | partial
  local c alive=0
  for c in "${COMPONENTS[@]}"; do recorded_pid "$c" >/dev/null && alive=$((alive + 1)); done
  if ((alive == ${#COMPONENTS[@]})); then echo up; elif ((alive == 0)); then echo down; else echo partial; fi
}

cmd_up() {
  need_root
  case "$(cluster_state)" in
    up) log "cluster already up (run dir $RUN); reusing it"; echo "$ADMIN_KUBECONFIG"; return 0 ;;
    partial) die "cluster partially running (see '$0 status'); run '$0 down' first" ;;
  esac
  trap on_up_exit EXIT
  mkdir -p "$RUN" "$LOGS/previous" "$PIDS" "$STATE" "$CACHE"
  # Fresh logs per `up`, so a failure shows this run's lines; the last run's stay in previous/.
  find "$LOGS" -maxdepth 1 -name '*.log' -exec mv -f {} "$LOGS/previous/" \;
  log "up: run dir $RUN"
  step "record pre-existing host paths"; record_preexisting
  step "Debian packages"; install_packages; record_iptables
  step "Kubernetes components"; locate_components
  step "port check"; check_ports
  step "PKI"; generate_pki
  step "kubeconfigs"; generate_kubeconfigs
  step "pause image"; build_pause_image
  step "network (bridge, routes, safety rules)"; setup_network
  step "etcd"; start_etcd
  step "kube-apiserver"; start_apiserver
  step "containerd, controller-manager, scheduler"
  start_containerd; start_controller_manager; start_scheduler
  step "bootstrap objects (CoreDNS RBAC, kube-dns Service)"
  wait_for "default namespace" 30 kc get namespace kube-system
  bootstrap_objects
  step "kubelet, kube-proxy, CoreDNS"
  start_kubelet; start_kube_proxy; start_coredns
  step "node $NODE_NAME Ready"
  wait_for "node $NODE_NAME Ready" 120 node_ready
  local c; for c in "${COMPONENTS[@]}"; do [[ "$c" == local-provisioner ]] || assert_alive "$c"; done
  step "extended resource $EXTENDED_RESOURCE=$EXTENDED_COUNT"; patch_extended_resource
  step "CoreDNS answering"; wait_for "CoreDNS to resolve kubernetes.default" 60 dns_ready
  step "volume provisioner, default StorageClass $STORAGE_CLASS"; start_local_provisioner
  assert_alive local-provisioner
  step_done
  log "cluster up in $(elapsed "$T0") s; node $NODE_NAME Ready; admin kubeconfig:"
  echo "$ADMIN_KUBECONFIG"
}

remove_pod_containers() {
  # crictl is not available: remove every task and container in containerd's k8s.io namespace
  # (pod sandboxes are containers too) while containerd still runs.
  [[ -S "$CTR_SOCK" ]] && recorded_pid containerd >/dev/null || return 0
  local ids id n=0
  ids=$(ctrk tasks ls -q 2>/dev/null || true)
  for id in $ids; do ctrk tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in $ids; do
    ctrk tasks delete -f "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctrk containers ls -q 2>/dev/null || true); do
    ctrk containers delete "$id" >/dev/null 2>&1 || true
    n=$((n + 1))
  done
  log "   removed $n containers/sandboxes"
}

unmount_under() {
  # Deepest first.  Mount points are read from mountinfo (field 5).
  local prefix=$1 m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "   could not unmount $m"
  done < <(awk -v p="$prefix/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

remove_netns() {
  # CNI network namespaces containerd created (/run/netns/cni-*); removing the last reference
  # deletes the pod's veth pair.
  local ns n=0
  for ns in /run/netns/cni-*; do
    [[ -e "$ns" ]] || continue
    preexisted "$ns" && continue
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
    rm -f "$ns"; n=$((n + 1))
  done
  ((n == 0)) || log "   removed $n network namespaces"
}

# The kubelet adds chains of its own (KUBE-FIREWALL with jumps from INPUT/OUTPUT, canaries, a
# hint) that `kube-proxy --cleanup` leaves; remove them unless the host had KUBE-* chains before
# the first `up` (then they are not ours to touch).
record_iptables() {
  local ipt
  [[ -e "$STATE/iptables-recorded" ]] && return 0
  for ipt in iptables ip6tables; do
    if "$ipt-save" 2>/dev/null | grep -q '^:KUBE-'; then echo "$ipt" >>"$STATE/iptables-had-kube"; fi
  done
  touch "$STATE/iptables-recorded"
}

remove_kubelet_chains() {
  local ipt table chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    grep -qxF "$ipt" "$STATE/iptables-had-kube" 2>/dev/null && continue
    while "$ipt" -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    while "$ipt" -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    for table in filter nat mangle; do
      for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
        if "$ipt" -t "$table" -F "$chain" 2>/dev/null; then "$ipt" -t "$table" -X "$chain" 2>/dev/null || true; fi
      done
    done
  done
}

teardown_network() {
  iptables -t mangle -D FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m comment --comment hearth-cluster -j DROP 2>/dev/null || true
  local bin; bin=$(bindir)
  # Removes every KUBE-* chain and rule kube-proxy created (iptables, and nft/ipvs leftovers).
  if [[ -x "$bin/kube-proxy" ]]; then "$bin/kube-proxy" --cleanup >>"$LOGS/kube-proxy-cleanup.log" 2>&1 || true; fi
  remove_kubelet_chains
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  if [[ -e "$STATE/bridge-created" ]] && ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"; rm -f "$STATE/bridge-created"
  fi
  if [[ -r "$STATE/ip_forward" ]]; then cat "$STATE/ip_forward" >/proc/sys/net/ipv4/ip_forward; fi
  if [[ -r "$STATE/bridge-nf-call-iptables" && -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
    cat "$STATE/bridge-nf-call-iptables" >/proc/sys/net/bridge/bridge-nf-call-iptables
  fi
  log "   ip_forward restored to $(cat /proc/sys/net/ipv4/ip_forward)"
}

# KEDA beside the cluster (testing/keda/keda.sh), if it was ever started here: it goes with the cluster.
keda() { [[ -d "$RUN/keda" ]] || return 0; HEARTH_CLUSTER_DIR="$RUN" bash "$HERE/../keda/keda.sh" "$@"; }

cmd_down() {
  need_root
  [[ -d "$RUN" ]] || { log "nothing to stop ($RUN does not exist)"; return 0; }
  log "down: run dir $RUN"
  keda down || log "   stopping KEDA failed; continuing"
  step "node agents (kubelet, kube-proxy, CoreDNS, volume provisioner)"
  stop_procs "$GRACE" local-provisioner kubelet kube-proxy coredns
  step "pod containers and sandboxes"
  # The apiserver drains for a while after SIGTERM: let that run while containers are removed.
  local api_pid=""
  if api_pid=$(recorded_pid kube-apiserver); then kill -TERM "$api_pid" 2>/dev/null || true; fi
  stop_procs "$GRACE" kube-scheduler kube-controller-manager &
  local ctl=$!
  remove_pod_containers
  wait "$ctl" || true
  step "kube-apiserver, etcd, containerd"
  stop_procs "$APISERVER_GRACE" kube-apiserver
  stop_procs "$GRACE" etcd containerd
  step "mounts, network namespaces, network"
  unmount_under "$RUN"
  remove_netns
  teardown_network
  step "state (etcd data, kubelet/containerd state; images and PKI are kept)"
  rm -rf "$ETCD_DIR" "$VOLUMES_DIR" "$KUBELET_DIR" "$CTRD/state" "$CNI_IPAM_DIR" "$CTR_SOCK" "$CTR_SOCK.ttrpc"
  step_done
  log "cluster down in $(elapsed "$T0") s (cache kept in $RUN)"
}

cmd_status() {
  local c pid any=0
  printf '%-26s %s\n' COMPONENT PID
  for c in "${COMPONENTS[@]}"; do
    if pid=$(recorded_pid "$c"); then printf '%-26s %s\n' "$c" "$pid"; any=1
    else printf '%-26s %s\n' "$c" "-"; fi
  done
  echo "state: $(cluster_state)   run dir: $RUN"
  ((any)) || return 0
  if recorded_pid kube-apiserver >/dev/null; then
    echo "node $NODE_NAME Ready: $(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || echo unknown)"
    kc get pods -A -o wide || true
  fi
  keda status || true
}

cmd_purge() {
  need_root
  local packages=0
  [[ "${1:-}" == --packages ]] && packages=1
  cmd_down
  T0=$(now)
  log "purge: removing what up created"
  local p
  if [[ ! -s "$STATE/preexisting" ]]; then
    # Without the record of what existed before, no host path can be proven ours: touch none.
    log "   no record of pre-existing host paths in $STATE: removing only $RUN"
    rm -rf "$RUN"
    return 0
  fi
  for p in "${HOST_PATHS[@]}"; do
    [[ -e "$p" ]] || continue
    preexisted "$p" && continue
    [[ "$p" == /run/netns ]] && { umount /run/netns 2>/dev/null || true; }   # pitfall 10
    unmount_under "$p"
    rm -rf "$p" && log "   removed $p"
  done
  # Empty kubepods cgroups (pitfall 7), deepest first; rmdir only ever removes empty cgroups.
  for p in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$p" ]] || continue
    preexisted "$p" && continue
    find "$p" -depth -type d -exec rmdir {} + 2>/dev/null || true
    if [[ -d "$p" ]]; then log "   could not remove $p (still in use?)"; else log "   removed $p"; fi
  done
  if [[ -s "$STATE/installed-packages" ]]; then
    if ((packages)); then
      # shellcheck disable=SC2046
      DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $(sort -u "$STATE/installed-packages") >/dev/null
      log "   purged packages: $(sort -u "$STATE/installed-packages" | tr '\n' ' ')"
    else
      log "   kept Debian packages up installed ($(sort -u "$STATE/installed-packages" | tr '\n' ' ')); purge --packages removes them"
    fi
  fi
  unmount_under "$RUN"
  rm -rf "$RUN"
  log "purged $RUN in $(elapsed "$T0") s (component cache kept: $(dirname "$(dirname "$(bindir 2>/dev/null || echo /x/y)")"))"
}

cmd_load_image() {
  need_root
  local tar=${1:-}
  [[ -r "$tar" ]] || die "usage: $0 load-image TAR (readable OCI/docker image tarball)"
  recorded_pid containerd >/dev/null || die "containerd is not running (run '$0 up')"
  ctrk images import "$tar"
}

# ---- fault: break one component of the running cluster, then wait until it is healthy again --------
# For the e2e's fault scenarios (hearth/e2e/faults.py, HEARTH_E2E_FAULT_HOOK): the product never learns how
# this bed runs its processes. A restarted component is started exactly as `up` starts it (same function,
# same flags, same log). Every fault ends only when the apiserver is ready and the node Ready again, so the
# next user of the bed finds it whole; a fault that cannot heal fails loudly (exit 1) instead.
cluster_healthy() {
  curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$NODE_IP:6443/readyz" && node_ready
}

cmd_fault() {
  need_root
  [[ "$(cluster_state)" == up ]] || die "fault: the cluster is not up (see '$0 status')"
  local action=${1:-} target=${2:-} pid
  # A restarted component outlives the caller: never leave it in the caller's (maybe temporary) directory.
  cd /
  case "$action $target" in
    "restart kube-apiserver")
      # SIGKILL, as a crash: SIGTERM would drain watches for 40-60 s, longer than any wake.
      pid=$(recorded_pid kube-apiserver)
      log "fault: killing kube-apiserver (pid $pid) and starting it again"
      stop_procs 0 kube-apiserver
      start_apiserver
      ;;
    "restart kubelet")
      # SIGTERM, as a service manager restarts it; its pods' containers keep running meanwhile.
      log "fault: restarting the kubelet"
      stop_procs "$GRACE" kubelet
      start_kubelet
      wait_for "kubelet /healthz" 60 curl -fsS http://127.0.0.1:10248/healthz
      ;;
    "pause etcd")
      local seconds=${3:-}
      if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 60)); then
        die "fault pause etcd SECONDS: SECONDS must be a whole number from 1 to 60, not '${seconds}'"
      fi
      pid=$(recorded_pid etcd)
      log "fault: pausing etcd (pid $pid, SIGSTOP) for ${seconds}s"
      # Resume etcd whatever happens to this script meanwhile: a stopped etcd stops the whole bed.
      trap 'kill -CONT "$pid" 2>/dev/null || true' EXIT
      kill -STOP "$pid"
      sleep "$seconds"
      kill -CONT "$pid"
      trap - EXIT
      log "fault: etcd resumed (SIGCONT)"
      wait_for "etcd health" 30 curl -fsS http://127.0.0.1:2379/health
      ;;
    *) die "usage: $0 fault restart kube-apiserver|kubelet | fault pause etcd SECONDS" ;;
  esac
  wait_for "the apiserver ready and node $NODE_NAME Ready" 120 cluster_healthy
  local c; for c in "${COMPONENTS[@]}"; do assert_alive "$c"; done
  log "fault: $action $target done; cluster healthy again in $(elapsed "$T0") s"
}

main() {
  local cmd=${1:-}; shift || true
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    purge) cmd_purge "$@" ;;
    load-image) cmd_load_image "$@" ;;
    kubectl) kc "$@" ;;
    fault) cmd_fault "$@" ;;
    -h | --help | help | "") sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (see --help)" ;;
  esac
}

main "$@"
