#!/usr/bin/env bash
# The project's whole test suite, as CI runs it (.ci/run calls exactly this).
# Run as root on Debian 12. Installs the system packages the tests need, starts the test
# Kubernetes control plane (built once from Debian's source, cached in ~/.cache/routelb),
# runs formatting and lint checks and every test, then stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: the tests create network namespaces and install packages" >&2
  exit 1
fi

log "system packages"
export DEBIAN_FRONTEND=noninteractive
need=()
for p in bc etcd-server golang-go golang-github-modern-go-reflect2-dev dpkg-dev build-essential rsync openssl curl iproute2 iputils-ping iptables python3-yaml frr frr-pythontools bird2 prometheus; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# BIRD 1.6 (Calico's node BGP) conflicts with bird2: unpacked into ~/.cache/routelb/bird1, once.
bash -c '. integration/lab/lib.sh && bird1_fetch'

# Labs and clusters left over by an interrupted run would hold namespaces and daemons.
bash integration/lab/lab.sh down-all >/dev/null 2>&1 || true
bash integration/lab/cluster.sh down-all >/dev/null 2>&1 || true
bash integration/lab/clab-netns.sh down-all >/dev/null 2>&1 || true

log "test control plane (kube-apiserver + etcd on loopback)"
# Stop it afterwards only if this run started it.
started_here=1
k8s_state=${ROUTELB_K8S_STATE:-/tmp/routelb-k8s}
if [ -s "$k8s_state/apiserver.pid" ] && kill -0 "$(cat "$k8s_state/apiserver.pid")" 2>/dev/null; then
  started_here=0
fi
eval "$(bash integration/k8s/control-plane.sh up | tail -n 1)"
export KUBECONFIG
cleanup() {
  if [ "$started_here" = 1 ]; then
    bash integration/k8s/control-plane.sh down >/dev/null 2>&1 || true
  fi
  # the real cluster's test takes it down itself; this is for an interrupted run
  if [ "${ROUTELB_E2E_KEEP:-0}" != 1 ]; then
    bash integration/k8s/e2e.sh down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

log "cargo fmt --check"
cargo fmt --check

log "cargo clippy -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

log "CRDs apply to the API server"
if command -v kubectl >/dev/null; then
  cargo run --quiet --locked -- crds | kubectl apply -f - >&2
fi

log "deploy manifests (kustomize v2.0.3 and current, server dry-run)"
bash integration/deploy-check.sh

log "containerlab topologies (static check, then each rebuilt in network namespaces)"
cargo build --quiet --locked
ROUTELB_BIN=${CARGO_TARGET_DIR:-target}/debug/routelb bash integration/containerlab-check.sh
for t in bgp ospf isis; do
  ROUTELB_BIN=${CARGO_TARGET_DIR:-target}/debug/routelb bash integration/lab/clab-netns.sh check "$t"
done

log "real cluster: images and node binaries (built once, then cached in ~/.cache/routelb)"
# tests/real_cluster.rs brings the cluster up (integration/k8s/e2e.sh) and down again; what
# it runs is built here first, so that its time shows apart (a fresh machine: ~8 min images,
# ~5 min kubelet and kube-proxy; later runs: seconds, or an incremental routelb image).
t0=$SECONDS
bash integration/images/build.sh all >/dev/null
bash integration/k8s/control-plane.sh node-binaries >/dev/null
echo "images and node binaries ready in $((SECONDS - t0)) s" >&2

log "cargo test"
out=$(mktemp)
set +e
cargo test --locked 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -E '^test result:' "$out" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ | bc)
failed=$(grep -E '^test result:' "$out" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ | bc)
rm -f "$out"
echo
echo "summary: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
