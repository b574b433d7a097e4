#!/usr/bin/env bash
# The load harness in one command (issue 17): for each point (SCALE_API_NODES ×
# SCALE_API_SERVICES), a fresh API server and etcd with an audit log of their own (state in
# /tmp/routelb-scale-k8s, port 6464, so the test API server is left alone), then
# `cargo bench --bench scale_api` on that point. Needs root and FRR (the lab node and router);
# the control plane is built or taken from the cache as for the tests.
#
#   integration/scale/run.sh                       # 100,1000 nodes × 1000,10000 Services
#   SCALE_API_NODES=5000 SCALE_API_SERVICES=50000 integration/scale/run.sh
#
# Results: the table on stdout, one JSON line per point in target/scale_api.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."

export ROUTELB_K8S_STATE=${ROUTELB_K8S_STATE:-/tmp/routelb-scale-k8s}
export ROUTELB_K8S_PORT=${ROUTELB_K8S_PORT:-6464}
export ROUTELB_K8S_ETCD_PORT=${ROUTELB_K8S_ETCD_PORT:-23870}
export ROUTELB_K8S_AUDIT=1
export SCALE_API_AUDIT_LOG=$ROUTELB_K8S_STATE/logs/audit.log
nodes=${SCALE_API_NODES:-100,1000}
services=${SCALE_API_SERVICES:-1000,10000}

cargo bench --no-run --bench scale_api
trap 'bash integration/k8s/control-plane.sh down >/dev/null 2>&1 || true' EXIT
for n in ${nodes//,/ }; do
  for s in ${services//,/ }; do
    bash integration/k8s/control-plane.sh down >/dev/null 2>&1 || true
    rm -rf "$ROUTELB_K8S_STATE"
    eval "$(bash integration/k8s/control-plane.sh up | tail -1)"
    SCALE_API_NODES=$n SCALE_API_SERVICES=$s cargo bench --bench scale_api
  done
done
