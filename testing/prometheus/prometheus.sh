#!/usr/bin/env bash
# A real Prometheus (Debian's `prometheus` package) beside the test bed, as a host process like CoreDNS:
# it finds the gateways, backends and operators through the cluster's own Services and EndpointSlices and
# scrapes them the way monitoring/servicemonitor-*.yaml tell a prometheus-operator to. Debian builds
# Prometheus without kubernetes_sd, so discover.py (a second host process) reads them with the admin
# kubeconfig every 5 s and writes file_sd target files.
#
#   testing/prometheus/prometheus.sh up      start it (after `cluster.sh up`; reuses a running one)
#   testing/prometheus/prometheus.sh check   evaluate every dashboard panel query over the time since `up`
#                                            and every alert expression; fail on a parse error, an empty
#                                            panel or a series an alert needs that does not exist; print
#                                            one wake broken into phases and the accelerator accounting
#   testing/prometheus/prometheus.sh down    stop it (data and log stay in $RUN/prometheus until the next up)
#
# Environment: HEARTH_CLUSTER_DIR (default /var/tmp/hearth-cluster), HEARTH_PROMETHEUS_PORT (19090,
# on 127.0.0.1 only), HEARTH_PROMETHEUS_SCRAPE (1s).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CLUSTER="${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}"
RUN="$CLUSTER/prometheus"
PORT="${HEARTH_PROMETHEUS_PORT:-19090}"
# 1 s, not the 15 s of the monitors: the e2e's LLMServices live seconds after their last event (e.g. the
# first rejection of a reason creates its series), and rate() needs two samples of a series.
SCRAPE="${HEARTH_PROMETHEUS_SCRAPE:-1s}"
KUBECONFIG_FILE="$CLUSTER/admin.kubeconfig"
SA_NAMESPACE=kube-system
SA_NAME=hearth-prometheus
PID_FILE="$RUN/prometheus.pid"
DISCOVER_PID_FILE="$RUN/discover.pid"
URL="http://127.0.0.1:$PORT"

log() { printf 'prometheus: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

kc() { bash "$ROOT/testing/cluster/cluster.sh" kubectl "$@"; }

python_bin() {
  if [[ -x "$ROOT/.venv/bin/python" ]]; then echo "$ROOT/.venv/bin/python"; else echo python3; fi
}

running_pid() {
  [[ -r "$PID_FILE" ]] || return 1
  local pid; pid=$(cat "$PID_FILE")
  [[ -n "$pid" && -d "/proc/$pid" ]] && grep -q prometheus "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

# The operator's /metrics want a token allowed to `get /metrics` (hearth-metrics-reader, created by
# `hearth install`; a binding to it may exist before the role does).
scrape_token() {
  kc -n "$SA_NAMESPACE" create serviceaccount "$SA_NAME" --dry-run=client -o yaml | kc apply -f - >/dev/null
  kc create clusterrolebinding "$SA_NAME" --clusterrole=hearth-metrics-reader \
    --serviceaccount="$SA_NAMESPACE:$SA_NAME" --dry-run=client -o yaml | kc apply -f - >/dev/null
  kc -n "$SA_NAMESPACE" create token "$SA_NAME" --duration=24h >"$RUN/token"
  chmod 600 "$RUN/token"
}

write_config() {
  cat >"$RUN/prometheus.yml" <<EOF
global:
  scrape_interval: $SCRAPE
  evaluation_interval: $SCRAPE
rule_files:
  - $ROOT/monitoring/hearth-alerts.yaml
scrape_configs:
  # monitoring/servicemonitor-llmservices.yaml: the gateway and backend Services of every LLMService
  # (targets and their namespace/llmservice/pod/job labels from discover.py).
  - job_name: hearth-llmservices
    file_sd_configs:
      - {files: [$RUN/targets/llmservices.json], refresh_interval: 5s}
  # monitoring/servicemonitor-operator.yaml: every operator replica, HTTPS with a reader token.
  - job_name: hearth-operator
    scheme: https
    honor_labels: true
    authorization: {credentials_file: $RUN/token}
    tls_config: {insecure_skip_verify: true}
    file_sd_configs:
      - {files: [$RUN/targets/operator.json], refresh_interval: 5s}
EOF
}

up() {
  command -v prometheus >/dev/null || die "prometheus is missing: run scripts/system-deps.sh (Debian package prometheus)"
  [[ -r "$KUBECONFIG_FILE" ]] || die "no test bed at $CLUSTER (run testing/cluster/cluster.sh up first)"
  mkdir -p "$RUN/data"
  if pid=$(running_pid); then
    log "already running (pid $pid) at $URL"
    return 0
  fi
  # A fresh TSDB per run: samples of an earlier run would still answer queries (5 minutes of lookback)
  # and could make a panel look non-empty, or a wake look like this run's.
  rm -rf "$RUN/data" "$RUN/targets"
  mkdir -p "$RUN/data"
  scrape_token
  write_config
  promtool check config "$RUN/prometheus.yml" >/dev/null || die "invalid $RUN/prometheus.yml"
  date +%s >"$RUN/started"
  setsid "$(python_bin)" "$HERE/discover.py" --out "$RUN/targets" \
    --kubectl bash "$ROOT/testing/cluster/cluster.sh" kubectl >>"$RUN/discover.log" 2>&1 </dev/null &
  echo $! >"$DISCOVER_PID_FILE"
  setsid prometheus --config.file="$RUN/prometheus.yml" --storage.tsdb.path="$RUN/data" \
    --web.listen-address="127.0.0.1:$PORT" --storage.tsdb.retention.time=2d --log.level=warn \
    >>"$RUN/prometheus.log" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 150); do
    if curl -fsS "$URL/-/ready" >/dev/null 2>&1; then
      log "up (pid $(cat "$PID_FILE")) at $URL, scraping every $SCRAPE; log $RUN/prometheus.log"
      return 0
    fi
    running_pid >/dev/null || { tail -n 20 "$RUN/prometheus.log" >&2; die "exited during start-up"; }
    sleep 0.2
  done
  die "not ready after 30 s (log $RUN/prometheus.log)"
}

down() {
  local pid
  if [[ -r "$DISCOVER_PID_FILE" ]]; then
    pid=$(cat "$DISCOVER_PID_FILE")
    if [[ -n "$pid" ]] && grep -q discover.py "/proc/$pid/cmdline" 2>/dev/null; then kill -TERM "$pid"; fi
    rm -f "$DISCOVER_PID_FILE"
  fi
  if pid=$(running_pid); then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do [[ -d "/proc/$pid" ]] || break; sleep 0.1; done
    [[ -d "/proc/$pid" ]] && kill -KILL "$pid"
    log "stopped (pid $pid)"
  fi
  rm -f "$PID_FILE"
}

check() {
  running_pid >/dev/null || die "not running (prometheus.sh up first)"
  "$(python_bin)" "$HERE/check.py" --url "$URL" --since "$(cat "$RUN/started")" \
    --dashboard "$ROOT/dashboards/hearth-overview.json" --rules "$ROOT/monitoring/hearth-alerts.yaml" \
    --scrape-interval "$SCRAPE"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  check) check ;;
  *) echo "usage: $0 up|check|down" >&2; exit 2 ;;
esac
