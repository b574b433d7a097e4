#!/usr/bin/env bash
# One-command demo of routelb standalone mode (the README's first command). As root on Debian 12:
# installs FRR, builds routelb, starts a namespace lab (a node running FRR and an upstream
# router), runs `routelb standalone` on examples/quickstart inside the node, shows the routes the
# router learned, and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: the demo creates network namespaces" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
if ! command -v vtysh >/dev/null || ! command -v bird >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends frr frr-pythontools bird2 iproute2 >/dev/null
fi
cargo build --release --quiet
lab=demo
state=$(mktemp -d)
cleanup() { bash integration/lab/lab.sh down "$lab" >/dev/null 2>&1 || true; rm -rf "$state"; }
trap cleanup EXIT
echo "== starting a lab: node (FRR, AS 64512) <-> upstream router (FRR, AS 64500)"
eval "$(bash integration/lab/lab.sh up "$lab" --node frr --proto bgp 2>/dev/null | sed 's/^/export /')"
echo "== routelb standalone on examples/quickstart, inside the node"
ip netns exec "$LAB_NODE_NS" ./target/release/routelb standalone --config examples/quickstart \
  --state "$state/state.json" --daemon frr --frr-pathspace "$LAB_NODE_FRR" --once
echo "== kube-lb0 on the node"
ip -n "$LAB_NODE_NS" -br addr show dev kube-lb0
for i in $(seq 1 50); do
  ip -n "$LAB_RTR_NS" route show proto bgp | grep -q 203.0.113 && break
  sleep 0.1
done
echo "== the upstream router's kernel routing table (routes learned over BGP)"
ip -n "$LAB_RTR_NS" route show proto bgp
ip -n "$LAB_RTR_NS" -6 route show proto bgp
echo "== BGP at the router, with routelb's community"
vtysh -N "$LAB_RTR_FRR" -c "show bgp ipv4 unicast community 64512:100" | sed -n '1,20p'
