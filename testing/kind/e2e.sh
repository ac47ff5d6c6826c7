#!/usr/bin/env bash
# Hearth's end-to-end scenarios on a laptop with Docker and kind (Linux x86_64 or arm64: the image is built
# from the locally frozen binary and its host libraries, so the laptop must run Linux).
#   bash testing/kind/e2e.sh          # create the cluster, load images, install, run, delete the cluster
#   KEEP=1 bash testing/kind/e2e.sh   # keep the cluster afterwards
# Needs: docker, kind, kubectl, python3 >= 3.11, busybox-static (for /bin/sh in the image).
set -euo pipefail
cd "$(dirname "$0")/../.."
name=hearth-e2e
for tool in docker kind kubectl python3; do
    command -v "$tool" >/dev/null || { echo "kind e2e: $tool is required" >&2; exit 1; }
done
[ -x dist/hearth ] || bash scripts/build-binary.sh
version=$(dist/hearth --version | awk '{print $2}')
kubeconfig=$(mktemp)
cleanup() {
    rm -f "$kubeconfig"
    [ "${KEEP:-0}" = 1 ] || kind delete cluster --name "$name"
}
trap cleanup EXIT

kind create cluster --name "$name" --config testing/kind/kind-config.yaml --wait 120s
kind get kubeconfig --name "$name" > "$kubeconfig"
python3 testing/image/build_oci_image.py --binary dist/hearth --ref "hearth.dev/hearth:$version" \
    --out dist/images/hearth.tar
bash testing/stub/build-image.sh
# kind imports OCI archives into the node's containerd, so no registry is needed.
kind load image-archive dist/images/hearth.tar --name "$name"
kind load image-archive dist/images/vllm-stub.tar --name "$name"
# The stub runtime asks for a fake accelerator: advertise 4 on the node (capacity and allocatable).
node=$(kubectl --kubeconfig "$kubeconfig" get nodes -o jsonpath='{.items[0].metadata.name}')
kubectl --kubeconfig "$kubeconfig" patch node "$node" --subresource=status --type=merge \
    -p '{"status":{"capacity":{"hearth.dev/fake-accelerator":"4"},"allocatable":{"hearth.dev/fake-accelerator":"4"}}}'
dist/hearth install --kubeconfig "$kubeconfig" --image "hearth.dev/hearth:$version" \
    --replicas 2 --gateway-replicas 2 --network-policies --metrics-port 8443 --wait 180
# ClusterIPs are not reachable from the laptop: reach each gateway through kubectl port-forward.
dist/hearth e2e --kubeconfig "$kubeconfig" --access port-forward --timeout 180
