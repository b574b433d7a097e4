#!/usr/bin/env bash
# One-command demo of the allocator on a real (local) Kubernetes API server: starts the test
# control plane, installs the CRDs, applies examples/allocator/, runs `routelb allocator` for a
# few seconds and shows what it did. Run as root on Debian 12; cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
command -v kubectl >/dev/null || { echo "kubectl is needed for the demo's output" >&2; exit 1; }
# Stop the control plane afterwards only if this demo started it.
was_up=0
[ -s /tmp/routelb-k8s/apiserver.pid ] && kill -0 "$(cat /tmp/routelb-k8s/apiserver.pid)" 2>/dev/null && was_up=1
eval "$(bash integration/k8s/control-plane.sh up | tail -n 1)"
export KUBECONFIG
cleanup() {
  kill "${pid:-0}" 2>/dev/null || true
  [ "$was_up" = 1 ] || bash integration/k8s/control-plane.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
cargo build --release --quiet
./target/release/routelb crds | kubectl apply -f -
kubectl apply -f deploy/base/namespace.yaml   # routelb-system, routelb-node-lease
kubectl wait --for condition=established crd/addresspools.routelb.io >/dev/null
kubectl apply -f examples/allocator/pools-and-services.yaml
./target/release/routelb allocator --metrics-addr 127.0.0.1:9090 &
pid=$!
sleep 3
echo; kubectl get addresspools
echo; kubectl -n demo get services
echo; kubectl -n demo get events --sort-by=.lastTimestamp | tail -n 8
echo; kubectl -n demo get service impossible -o jsonpath='{.metadata.annotations.routelb\.io/allocation-error}{"\n"}'
echo; curl -s 127.0.0.1:9090/metrics | grep -E '^routelb_(allocations|pool_addresses)' | head -n 8
