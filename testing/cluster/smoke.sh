#!/usr/bin/env bash
# Smoke test of a running test-bed cluster (testing/cluster/cluster.sh up):
#   1. imports dist/images/vllm-stub.tar (builds it with testing/stub/build-image.sh if missing);
#   2. runs the vLLM stub as a Deployment asking for hearth.dev/fake-accelerator: 1, with a
#      readiness probe, behind a ClusterIP Service, and waits for it to be Ready;
#   3. GETs /v1/models from the host through the ClusterIP (kube-proxy) and the pod IP;
#   4. from a pod: resolves <svc>.<ns>.svc.cluster.local (CoreDNS via the kube-dns ClusterIP)
#      with busybox nslookup, then GETs /v1/models by that name with busybox nc
#      (busybox wget segfaults, pitfall 9 of testing/cluster/README.md);
#   5. a claim of the default StorageClass (no storageClassName) binds once a pod uses it (the test bed's
#      provisioner, WaitForFirstConsumer), as the non-root stub user writes a file that a second pod reads.
#   testing/cluster/smoke.sh [--keep]     --keep leaves the namespace in place
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NS=hearth-smoke
IMAGE=hearth.dev/vllm-stub:e2e
TAR="${STUB_IMAGE_OUT:-$ROOT/dist/images/vllm-stub.tar}"
KEEP=0
[[ "${1:-}" == --keep ]] && KEEP=1

T0=$(date +%s.%N)
log() { printf '[smoke %5.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" "$*" >&2; }
kc() { bash "$HERE/cluster.sh" kubectl "$@"; }
fail() { log "FAIL: $*"; kc -n "$NS" get pods -o wide >&2 || true; kc -n "$NS" describe pods >&2 || true; exit 1; }

if [[ ! -s "$TAR" ]]; then log "building $TAR"; bash "$ROOT/testing/stub/build-image.sh"; fi
log "importing $TAR"
bash "$HERE/cluster.sh" load-image "$TAR" >/dev/null

kc delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
kc create namespace "$NS" >/dev/null
kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: stub}
spec:
  replicas: 1
  selector: {matchLabels: {app: stub}}
  template:
    metadata: {labels: {app: stub}}
    spec:
      containers:
      - name: vllm
        image: $IMAGE
        imagePullPolicy: Never
        args: ["--served-model-name=x"]
        env: [{name: STUB_LISTEN_ADDR, value: ":8000"}]
        ports: [{containerPort: 8000, name: http}]
        resources:
          limits: {hearth.dev/fake-accelerator: "1"}
        readinessProbe:
          httpGet: {path: /health, port: 8000}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: stub}
spec:
  selector: {app: stub}
  ports: [{name: http, port: 8000, targetPort: 8000}]
EOF
log "waiting for the stub Deployment"
kc -n "$NS" rollout status deployment/stub --timeout=120s >&2 || fail "stub not ready"
log "stub Ready"

cluster_ip=$(kc -n "$NS" get svc stub -o jsonpath='{.spec.clusterIP}')
pod_ip=$(kc -n "$NS" get pods -l app=stub -o jsonpath='{.items[0].status.podIP}')
log "host -> ClusterIP $cluster_ip:8000/v1/models"
# kube-proxy programs the endpoint a moment after the pod turns Ready: retry briefly.
for _ in $(seq 1 20); do
  curl -fsS --max-time 2 "http://$cluster_ip:8000/v1/models" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 5 "http://$cluster_ip:8000/v1/models" >&2 || fail "ClusterIP fetch"
echo >&2
log "host -> pod IP $pod_ip:8000/v1/models"
curl -fsS --max-time 5 "http://$pod_ip:8000/v1/models" >&2 || fail "pod IP fetch"
echo >&2

name="stub.$NS.svc.cluster.local"
log "pod -> DNS $name, then GET /v1/models by name (busybox nslookup + nc)"
kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: dns-probe}
spec:
  restartPolicy: Never
  containers:
  - name: probe
    image: $IMAGE
    imagePullPolicy: Never
    command: ["/bin/busybox", "sh", "-c"]
    args:
    - |
      set -e
      cat /etc/resolv.conf
      /bin/busybox nslookup $name
      /bin/busybox nslookup kubernetes.default.svc.cluster.local
      # busybox nc quits at EOF on stdin before the reply arrives: keep stdin open a moment.
      echo "--- GET http://$name:8000/v1/models"
      (printf 'GET /v1/models HTTP/1.0\r\nHost: stub\r\n\r\n'; sleep 2) | /bin/busybox nc -w 5 $name 8000
      echo; echo "--- GET http://stub:8000/v1/models (short name, through the search list)"
      (printf 'GET /v1/models HTTP/1.0\r\nHost: stub\r\n\r\n'; sleep 2) | /bin/busybox nc -w 5 stub 8000
      echo; echo "--- TCP connect to kubernetes.default:443 (the apiserver through its ClusterIP)"
      /bin/busybox nc -w 3 kubernetes.default 443 </dev/null && echo connected
EOF
for _ in $(seq 1 120); do
  phase=$(kc -n "$NS" get pod dns-probe -o jsonpath='{.status.phase}')
  [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
  sleep 0.5
done
kc -n "$NS" logs dns-probe >&2 || true
[[ "$phase" == Succeeded ]] || fail "dns-probe pod phase: $phase"
kc -n "$NS" logs dns-probe | grep -q '"id"' || fail "no model list in the in-pod response"

log "PVC of the default StorageClass, written by one pod and read by the next"
volume_pod() {  # volume_pod NAME SCRIPT
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 65532, runAsGroup: 65532}
  containers:
  - name: c
    image: $IMAGE
    imagePullPolicy: Never
    command: ["/bin/busybox", "sh", "-c", "$2"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
EOF
}
pod_done() {  # pod_done NAME: wait for it to finish; fail unless it Succeeded
  local phase=""
  for _ in $(seq 1 240); do
    phase=$(kc -n "$NS" get pod "$1" -o jsonpath='{.status.phase}')
    [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
    sleep 0.5
  done
  [[ "$phase" == Succeeded ]] || { kc -n "$NS" describe pvc data >&2 || true; fail "$1 pod phase: $phase"; }
}
{
  cat <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
EOF
  volume_pod writer "echo warm > /data/weights"
} | kc -n "$NS" apply -f - >/dev/null
pod_done writer
class=$(kc -n "$NS" get pvc data -o jsonpath='{.spec.storageClassName} {.status.phase}')
[[ "$class" == "hearth-local Bound" ]] || fail "claim: $class (want the default class hearth-local, Bound)"
volume_pod reader "grep -qx warm /data/weights" | kc -n "$NS" apply -f - >/dev/null
pod_done reader
log "claim bound to $(kc -n "$NS" get pvc data -o jsonpath='{.spec.volumeName}'); data survived the pod"

if ((KEEP == 0)); then kc delete namespace "$NS" --wait=false >/dev/null; fi
log "PASS: Deployment Ready, ClusterIP and pod IP reachable from the host, DNS and Service by name from a pod, PVC of the default StorageClass"
