#!/usr/bin/env bash
# The test bed's NetworkPolicy enforcer (issue 29): sigs.k8s.io/kube-network-policies as a host process
# beside an up cluster (testing/cluster/cluster.sh), so the NetworkPolicy `hearth install --network-policies`
# renders is enforced for real, not only accepted by the API server.
#
#   testing/netpol/netpol.sh up       start it (builds it if missing; reuses a running one), wait until it
#                                     listens, then hook it in; prints one word naming the enforcer,
#                                     the value `hearth e2e --network-policies-enforced` (env
#                                     HEARTH_E2E_NETWORK_POLICIES) takes, so N1 runs
#   testing/netpol/netpol.sh status   whether it runs, and its verdict counters
#   testing/netpol/netpol.sh down     unhook it, stop it, remove any nftables table it left, restore what
#                                     `up` changed
#
# How it enforces: the process watches NetworkPolicies, pods and namespaces and judges the first packet of
# each new connection that netfilter hands it on nfqueue $HEARTH_NETPOL_QUEUE, accepting or dropping it
# (later packets pass as established). Upstream hands it those packets with an nftables table (`inet
# kube-network-policies`, a `queue` rule per local pod a policy selects), but this bed's kernel has
# nfnetlink_queue without nftables' `queue` expression (CONFIG_NFT_QUEUE: `nft add rule ... queue num 100`
# fails with ENOENT, and so does the controller's whole nftables transaction, which it logs and retries).
# So this script installs the hook itself, with iptables' NFQUEUE target (x_tables, which the kernel has):
# chain HEARTH-NETPOL in mangle POSTROUTING (after DNAT, as upstream's chain) mirrors upstream's rules --
# DNS, packets the host's root sends (upstream exempts them for the kubelet's probes) and established
# flows pass, every other new connection from or to the pod range is queued. Upstream queues only pods
# with a policy; queueing all is the same verdict (no policy: accepted), judged in userspace. With
# --queue-bypass: if the process is gone, packets pass rather than being dropped (a shared bed must not
# go dark; N1 then fails, as it should). Pods on this bed share one L2 bridge (cni0), so a pod-to-pod
# packet is bridged, not routed: netfilter's IPv4 hooks see it only with br_netfilter's
# net.bridge.bridge-nf-call-iptables=1 (cluster.sh sets it for kube-proxy's ClusterIPs; `up` checks it and
# sets it if not, `down` restores it). The kernel needs nfnetlink_queue (`up` loads it if it is a module).
# Caveats of the implementation (v0.8.0): packets that processes of the host send as root are never judged
# (upstream exempts them for the kubelet's probes), so the e2e runner, the kubelet and the bed's Prometheus
# are not subject to policies; a pod's IP is known once the API server has it (NRI, which tells it sooner,
# needs containerd >= 1.7); a connection open before a policy keeps working.
#
# Nothing leaves the machine: the process talks to the API server on 127.0.0.1 and serves its /metrics on
# 127.0.0.1:$HEARTH_NETPOL_METRICS_PORT; packets are judged, never sent. Log and PID under
# $HEARTH_CLUSTER_DIR/netpol (default /var/tmp/hearth-cluster/netpol).
#
# Environment: HEARTH_CLUSTER_DIR, HEARTH_NETPOL_METRICS_PORT (19480; KEDA's adapter has 19080),
# HEARTH_NETPOL_QUEUE (100), HEARTH_NETPOL_POD_CIDR (10.88.0.0/16, the bed's pods),
# HEARTH_TESTBED_CACHE (where testing/netpol/build.sh caches the binary).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CLUSTER="${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}"
RUN="$CLUSTER/netpol"
KUBECONFIG_FILE="$CLUSTER/admin.kubeconfig"
METRICS_PORT="${HEARTH_NETPOL_METRICS_PORT:-19480}"
POD_CIDR="${HEARTH_NETPOL_POD_CIDR:-10.88.0.0/16}"
CHAIN=HEARTH-NETPOL
QUEUE="${HEARTH_NETPOL_QUEUE:-100}"
PID_FILE="$RUN/enforcer.pid"
LOG="$RUN/enforcer.log"
BRIDGE_NF=/proc/sys/net/bridge/bridge-nf-call-iptables
UPSTREAM_VERSION_FILE="$HERE/enforcer/go.mod"

log() { printf 'netpol: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

kc() { bash "$ROOT/testing/cluster/cluster.sh" kubectl "$@"; }

proc_starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# The recorded PID, if that process (same start time) still runs.
running_pid() {
  local pid start
  [[ -r "$PID_FILE" ]] || return 1
  read -r pid start <"$PID_FILE" || return 1
  [[ -n "$pid" && "$(proc_starttime "$pid")" == "$start" ]] || return 1
  echo "$pid"
}

# The line `up` prints: which enforcer, at which version.
describe() {
  echo "kube-network-policies@$(awk '$1 == "sigs.k8s.io/kube-network-policies" { print $2 }' "$UPSTREAM_VERSION_FILE")"
}

metrics() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())' \
    "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null
}

# Ready once its informers have synced (said in the log past byte $1, where this start's lines begin) and it
# listens on its nfqueue (the kernel lists a bound queue by number).
listening() {
  tail -c +"$(($1 + 1))" "$LOG" 2>/dev/null | grep -q "Caches are synced for kube-network-policies" &&
    awk -v q="$QUEUE" '$1 == q { found = 1 } END { exit !found }' /proc/net/netfilter/nfnetlink_queue
}

# The hook (see the header): idempotent, the jump added once.
hook_up() {
  iptables -t mangle -N "$CHAIN" 2>/dev/null || iptables -t mangle -F "$CHAIN"
  iptables -t mangle -A "$CHAIN" -p udp --dport 53 -j RETURN
  iptables -t mangle -A "$CHAIN" -m owner --uid-owner 0 -j RETURN
  iptables -t mangle -A "$CHAIN" -m conntrack ! --ctstate NEW -j RETURN
  iptables -t mangle -A "$CHAIN" -s "$POD_CIDR" -j NFQUEUE --queue-num "$QUEUE" --queue-bypass
  iptables -t mangle -A "$CHAIN" -d "$POD_CIDR" -j NFQUEUE --queue-num "$QUEUE" --queue-bypass
  iptables -t mangle -C POSTROUTING -j "$CHAIN" 2>/dev/null || iptables -t mangle -A POSTROUTING -j "$CHAIN"
}

hook_down() {
  while iptables -t mangle -D POSTROUTING -j "$CHAIN" 2>/dev/null; do :; done
  iptables -t mangle -F "$CHAIN" 2>/dev/null || true
  iptables -t mangle -X "$CHAIN" 2>/dev/null || true
}

kernel_ready() {
  if [[ ! -e /proc/net/netfilter/nfnetlink_queue ]]; then
    modprobe nfnetlink_queue 2>/dev/null || true
    [[ -e /proc/net/netfilter/nfnetlink_queue ]] ||
      die "the kernel has no nfnetlink_queue (built in or module): the enforcer cannot judge packets"
  fi
  if [[ ! -e "$BRIDGE_NF" ]]; then
    modprobe br_netfilter 2>/dev/null || true
    [[ -e "$BRIDGE_NF" ]] ||
      die "no $BRIDGE_NF (br_netfilter): bridged pod-to-pod packets would bypass the enforcer"
  fi
  if [[ "$(cat "$BRIDGE_NF")" != 1 ]]; then
    [[ -e "$RUN/bridge-nf-call-iptables" ]] || cat "$BRIDGE_NF" >"$RUN/bridge-nf-call-iptables"
    echo 1 >"$BRIDGE_NF"
    log "set net.bridge.bridge-nf-call-iptables=1 (restored on down)"
  fi
}

cmd_up() {
  ((EUID == 0)) || die "must run as root (nftables, nfqueue)"
  [[ -r "$KUBECONFIG_FILE" ]] || die "no cluster at $CLUSTER (testing/cluster/cluster.sh up first)"
  mkdir -p "$RUN"
  if pid=$(running_pid); then
    log "already running (pid $pid)"
    hook_up
    describe
    return 0
  fi
  local binary node
  binary="$(bash "$HERE/build.sh")"
  node="$(kc get nodes -o jsonpath='{.items[0].metadata.name}')"
  [[ -n "$node" ]] || die "the cluster has no node yet"
  kernel_ready
  # A table a killed run left would judge packets with nobody answering the queue: start clean.
  "$binary" --cleanup
  printf '\n===== start %s =====\n' "$(date -Is)" >>"$LOG"
  local offset; offset=$(stat -c %s "$LOG")
  setsid "$binary" --kubeconfig "$KUBECONFIG_FILE" --hostname-override "$node" --nfqueue-id "$QUEUE" \
    --metrics-bind-address "127.0.0.1:$METRICS_PORT" >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(proc_starttime "$pid")" >"$PID_FILE"
  echo "$binary" >"$RUN/binary"
  local t0=$SECONDS
  until listening "$offset"; do
    running_pid >/dev/null || { tail -n 20 "$LOG" >&2; die "the enforcer exited; log $LOG"; }
    ((SECONDS - t0 < 60)) || { tail -n 20 "$LOG" >&2; die "the enforcer did not listen on nfqueue $QUEUE within 60 s"; }
    sleep 0.5
  done
  hook_up
  log "up: pid $pid, node $node, nfqueue $QUEUE (iptables mangle $CHAIN, pods $POD_CIDR), metrics 127.0.0.1:$METRICS_PORT, log $LOG ($((SECONDS - t0))s)"
  describe
}

cmd_down() {
  local pid binary t0
  hook_down
  if pid=$(running_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    t0=$SECONDS
    while [[ -n "$(proc_starttime "$pid")" ]] && ((SECONDS - t0 < 15)); do sleep 0.2; done
    if [[ -n "$(proc_starttime "$pid")" ]]; then
      log "pid $pid still running after 15 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while [[ -n "$(proc_starttime "$pid")" ]]; do sleep 0.1; done
    fi
    log "stopped the enforcer (pid $pid)"
  fi
  rm -f "$PID_FILE"
  # Its own shutdown deletes the table; a killed one leaves it, whose queue rules would then drop the
  # first packet of every connection of a pod with a policy.
  binary="$(cat "$RUN/binary" 2>/dev/null || true)"
  if [[ -x "$binary" ]]; then "$binary" --cleanup || log "could not delete the nftables table"; fi
  if [[ -r "$RUN/bridge-nf-call-iptables" ]]; then
    [[ -e "$BRIDGE_NF" ]] && cat "$RUN/bridge-nf-call-iptables" >"$BRIDGE_NF"
    rm -f "$RUN/bridge-nf-call-iptables"
    log "restored net.bridge.bridge-nf-call-iptables to $(cat "$BRIDGE_NF" 2>/dev/null || echo '?')"
  fi
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    echo "enforcer: running (pid $pid, $(describe), log $LOG)"
    metrics | grep -E '^kube_network_policies_packet_count' || echo "  no packet judged yet"
  else
    echo "enforcer: not running"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
