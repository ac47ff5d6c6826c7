#!/usr/bin/env bash
# The main job, on this machine: a real single-node Kubernetes cluster (no Docker needed; root), Hearth
# installed into it from the single `hearth` image, and one LLMService (examples/quickstart.yaml) served by
# the CPU stub, scaled to zero until you call it. Stop everything with: bash testing/cluster/cluster.sh down
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "run: the local cluster needs root; without it, try the stub alone: bash scripts/build-binary.sh && dist/hearth stub" >&2
    exit 1
fi
bash scripts/system-deps.sh
bash scripts/build-binary.sh
bash testing/cluster/build-components.sh kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns >/dev/null
version=$(dist/hearth --version | awk '{print $2}')
cluster=testing/cluster/cluster.sh
kubeconfig=${HEARTH_CLUSTER_DIR:-/var/tmp/hearth-cluster}/admin.kubeconfig
bash "$cluster" up
python3 testing/image/build_oci_image.py --binary dist/hearth --ref "hearth.dev/hearth:$version" \
    --out dist/images/hearth.tar
bash testing/stub/build-image.sh
bash "$cluster" load-image dist/images/hearth.tar
bash "$cluster" load-image dist/images/vllm-stub.tar
dist/hearth install --kubeconfig "$kubeconfig" --image "hearth.dev/hearth:$version" --wait 180
bash "$cluster" kubectl apply -f examples/quickstart.yaml
echo "run: waiting for the demo gateway"
# The operator creates the gateway a moment after the LLMService exists; rollout status needs it to exist.
for _ in $(seq 60); do
    bash "$cluster" kubectl -n default get deployment/demo-gateway >/dev/null 2>&1 && break
    sleep 1
done
bash "$cluster" kubectl -n default rollout status deployment/demo-gateway --timeout=180s
ip=$(bash "$cluster" kubectl -n default get service demo -o jsonpath='{.spec.clusterIP}')
cat <<MSG

Hearth is running. The demo model starts with one replica and scales to zero after a minute without
requests; the next request then wakes it (SSE heartbeats while it loads):
  curl -N http://$ip/v1/chat/completions -d '{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}'
  bash $cluster kubectl get llmservices -A -o wide      # watch it go Ready, then back to ScaledToZero
  export KUBECONFIG=$kubeconfig                         # for your own kubectl
Stop everything: bash $cluster down
MSG
