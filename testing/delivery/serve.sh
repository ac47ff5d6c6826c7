#!/usr/bin/env bash
# The test bed's model-delivery servers (issue 26), as host processes beside the cluster: the CNCF
# distribution registry (htpasswd credentials) and versitygw (an S3 store that checks SigV4 access keys,
# posix backend), listening on the cluster bridge address so pods reach them, and the ORAS CLI that pushes
# test models. Built by testing/delivery/build.sh (cached by version).
#
#   testing/delivery/serve.sh up        start both (reuses them if up); writes delivery.json, prints its path
#   testing/delivery/serve.sh down      stop what `up` started, remove their data
#   testing/delivery/serve.sh status    PIDs and addresses
#
# `hearth e2e --delivery <dir>/delivery.json` runs the delivery scenarios against them (scripts/e2e.sh does).
# Everything lives under HEARTH_DELIVERY_DIR (default /var/tmp/hearth-delivery). Addresses: only
# 127.0.0.0/8 and the cluster bridge 10.88.0.0/16 are accepted (HEARTH_DELIVERY_ADDRESS, default 10.88.0.1).
# Ports: HEARTH_REGISTRY_PORT (default 5000), HEARTH_S3_PORT (default 7070).
#
# The registry's user is a fixed test credential (its bcrypt hash below: no bcrypt tool is needed on the
# machine); the S3 keys are random per `up`. Both are written to delivery.json (mode 0600).
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN="${HEARTH_DELIVERY_DIR:-/var/tmp/hearth-delivery}"
ADDRESS="${HEARTH_DELIVERY_ADDRESS:-10.88.0.1}"
REGISTRY_PORT="${HEARTH_REGISTRY_PORT:-5000}"
S3_PORT="${HEARTH_S3_PORT:-7070}"
REGISTRY_USER=hearth
REGISTRY_PASSWORD=hearth-test-password
# bcrypt (cost 10) of REGISTRY_PASSWORD; tests/fetch/servers.py uses the same line.
# shellcheck disable=SC2016  # a bcrypt hash, not an expansion
REGISTRY_HASH='$2a$10$3.tvIpN.AwvBiz4iL.Yew.DRDTeA8LTj2JKYKjVUndL1uk3bexyV6'

log() { printf '%s\n' "$*" >&2; }
die() { log "delivery serve: $*"; exit 1; }

case "$ADDRESS" in
  127.* | 10.88.*) ;;
  *) die "HEARTH_DELIVERY_ADDRESS must be in 127.0.0.0/8 or 10.88.0.0/16, got $ADDRESS" ;;
esac

pid_of() {
  local file="$RUN/$1.pid" pid
  [[ -r "$file" ]] || return 1
  read -r pid <"$file"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# wait_http URL NAME: seconds until URL answers (any HTTP status), or die after 30 s.
wait_http() {
  local url=$1 name=$2 start=$SECONDS
  while ((SECONDS - start < 30)); do
    if curl -s -o /dev/null --max-time 2 "$url"; then
      log "$name answering after $((SECONDS - start))s"
      return 0
    fi
    pid_of "$name" >/dev/null || die "$name exited; see $RUN/$name.log"
    sleep 0.2
  done
  die "$name did not answer at $url within 30 s; see $RUN/$name.log"
}

up() {
  local bins registry versitygw oras access secret started
  mapfile -t bins < <(bash "$HERE/build.sh")
  registry=${bins[0]} versitygw=${bins[1]} oras=${bins[2]}
  mkdir -p "$RUN/registry" "$RUN/s3/data" "$RUN/s3/meta"
  if ! pid_of registry >/dev/null; then
    printf '%s:%s\n' "$REGISTRY_USER" "$REGISTRY_HASH" >"$RUN/registry/htpasswd"
    cat >"$RUN/registry/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $RUN/registry/data
http:
  addr: $ADDRESS:$REGISTRY_PORT
  secret: hearth-test-bed
auth:
  htpasswd:
    realm: hearth-test-bed
    path: $RUN/registry/htpasswd
YAML
    started=$(date +%s%N)
    setsid "$registry" serve "$RUN/registry/config.yml" >>"$RUN/registry.log" 2>&1 </dev/null &
    echo $! >"$RUN/registry.pid"
    wait_http "http://$ADDRESS:$REGISTRY_PORT/v2/" registry
    log "registry started in $((($(date +%s%N) - started) / 1000000)) ms"
  fi
  if ! pid_of versitygw >/dev/null; then
    access="hearth$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    secret="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    printf '%s %s\n' "$access" "$secret" >"$RUN/s3/keys"
    chmod 0600 "$RUN/s3/keys"
    started=$(date +%s%N)
    # The keys go by environment, not argv (ps would show them).
    ROOT_ACCESS_KEY_ID="$access" ROOT_SECRET_ACCESS_KEY="$secret" setsid "$versitygw" \
      --port "$ADDRESS:$S3_PORT" --quiet posix --sidecar "$RUN/s3/meta" "$RUN/s3/data" \
      >>"$RUN/versitygw.log" 2>&1 </dev/null &
    echo $! >"$RUN/versitygw.pid"
    wait_http "http://$ADDRESS:$S3_PORT/" versitygw
    log "versitygw started in $((($(date +%s%N) - started) / 1000000)) ms"
  fi
  read -r access secret <"$RUN/s3/keys"
  umask 077
  cat >"$RUN/delivery.json" <<JSON
{
  "registry": "$ADDRESS:$REGISTRY_PORT",
  "registry_user": "$REGISTRY_USER",
  "registry_password": "$REGISTRY_PASSWORD",
  "oras": "$oras",
  "s3_endpoint": "http://$ADDRESS:$S3_PORT",
  "s3_access_key": "$access",
  "s3_secret_key": "$secret"
}
JSON
  printf '%s\n' "$RUN/delivery.json"
}

down() {
  local name pid
  for name in versitygw registry; do
    if pid=$(pid_of "$name"); then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "stopped $name (pid $pid)"
    fi
    rm -f "$RUN/$name.pid"
  done
  rm -rf "$RUN/registry" "$RUN/s3" "$RUN/delivery.json"
}

status() {
  local name pid
  for name in registry versitygw; do
    if pid=$(pid_of "$name"); then echo "$name: running (pid $pid)"; else echo "$name: stopped"; fi
  done
  echo "registry: http://$ADDRESS:$REGISTRY_PORT  s3: http://$ADDRESS:$S3_PORT"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
  *) log "usage: $0 up|down|status (see --help)"; exit 2 ;;
esac
