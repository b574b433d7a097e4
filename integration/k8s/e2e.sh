#!/usr/bin/env bash
# integration/k8s/e2e.sh — issue 13, test 1: a client's HTTP request reaches a
# pod through an upstream BGP router, on the real cluster of nodes.sh.
#
# Why: the labs (integration/lab) drive routelb's agent directly; this is the
# first test of what a user runs: deploy/ applied unchanged (overlay
# frr-sidecar, its documented edit points only), images built here, a
# LoadBalancer Service whose address an upstream router learns over eBGP from
# every node (ECMP) and forwards a client's request to.
#
# Usage:
#   e2e.sh up      nodes.sh up 2 (control plane + nodes, idempotent), FRR in the
#                  router namespace kn-rtr (eBGP AS 64500, dynamic neighbours
#                  from the segment, IPv4 + IPv6, maximum-paths), a client
#                  namespace kn-client behind it (10.78.0.0/24, fd00:78::/64),
#                  deploy/overlays/frr-sidecar applied through a generated
#                  kustomization (images + frr.conf only), an AddressPool and a
#                  RoutingPolicy, a 2-replica Deployment of the HTTP image.
#   e2e.sh check   (re)creates the LoadBalancer Service (PreferDualStack, 80 ->
#                  8080) and measures: create -> address assigned -> route at
#                  the router (all nodes as ECMP next hops) -> first answer at
#                  the client; then checks every address from kn-client.
#   e2e.sh overlay NAME   applies deploy/overlays/NAME (frr-sidecar or bird-sidecar) in
#                  place of the one applied, and waits for the rollout. `up` applies
#                  ROUTELB_E2E_OVERLAY, else the last one applied, else frr-sidecar.
#   e2e.sh env     KUBECONFIG, KUBECTL, VTYSH_RTR (the router's vtysh) and NODES
#                  as NAME=value lines, for tests/real_cluster.rs.
#   e2e.sh down    stops the router's FRR, removes the client namespace, then
#                  nodes.sh down and control-plane.sh down. With
#                  ROUTELB_E2E_KEEP_CLUSTER=1 it keeps both and deletes instead
#                  what `up` applied (workload, pool, policy, deploy/).
#
# The control plane is control-plane.sh's, in controllers mode, apart from the
# bare one the other tests use: ROUTELB_E2E_K8S_STATE (default
# /tmp/routelb-kn-k8s), ROUTELB_E2E_K8S_PORT (6445), ROUTELB_E2E_K8S_ETCD_PORT
# (23890) are handed to control-plane.sh and nodes.sh as their ROUTELB_K8S_*.
# Other variables: ROUTELB_E2E_STATE
# (default /tmp/routelb-kn-e2e), ROUTELB_E2E_NODES (2), ROUTELB_E2E_TIMEOUT (s, 120),
# ROUTELB_E2E_BUILD=1 (`up` runs integration/images/build.sh all even when
# images.env exists; without it, only when images.env is missing).
#
# Example:
#   integration/k8s/e2e.sh up && integration/k8s/e2e.sh check; integration/k8s/e2e.sh down

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CP="$HERE/control-plane.sh"
NODES="$HERE/nodes.sh"
export ROUTELB_K8S_CONTROLLERS=1
export ROUTELB_K8S_STATE=${ROUTELB_E2E_K8S_STATE:-/tmp/routelb-kn-k8s}
export ROUTELB_K8S_PORT=${ROUTELB_E2E_K8S_PORT:-6445}
export ROUTELB_K8S_ETCD_PORT=${ROUTELB_E2E_K8S_ETCD_PORT:-23890}
export LOG_TAG=e2e # read by lib.sh
# shellcheck source-path=SCRIPTDIR source=../lab/lib.sh
source "$REPO/integration/lab/lib.sh"

STATE=${ROUTELB_E2E_STATE:-/tmp/routelb-kn-e2e}
N=${ROUTELB_E2E_NODES:-2}
TIMEOUT=${ROUTELB_E2E_TIMEOUT:-120}
CACHE_DIR=${ROUTELB_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/routelb}
IMAGES_ENV=${ROUTELB_KN_IMAGES_DIR:-$CACHE_DIR/images}/images.env

# nodes.sh's fixed layout
RTR_NS=kn-rtr
SEG4=10.77.0
SEG6=fd00:77:
RTR4=$SEG4.254
RTR6=${SEG6}:fe
node_ip4() { echo "$SEG4.$((10 + $1))"; }
node_ip6() { echo "${SEG6}:$((10 + $1))"; }

# ours
CLI_NS=kn-client
RTR_CLI_IF=kn-rtr-c   # router's leg towards the client
CLI4_NET=10.78.0
CLI6_NET=fd00:78:
RTR_AS=64500
NODE_AS=64512
POOL4=203.0.113.0/28
POOL6=2001:db8:100::/120
BENCH_POOL4=198.51.100.0/25  # room for benches/real_cluster.rs's 50 Services
BENCH_POOL6=2001:db8:200::/120
LPOOL4=10.77.0.240/29      # local pool: in the nodes' segment
LPOOL6=fd00:77::f0/125
APP_NS=kn-e2e
FRR_PS=kn-rtr          # FRR pathspace of the router
# the overlay applied: the one asked for, else the one applied last, else frr-sidecar
OVERLAY=${ROUTELB_E2E_OVERLAY:-$(cat "$STATE/overlay" 2>/dev/null || echo frr-sidecar)}
if [[ ${1:-} == overlay ]]; then OVERLAY=${2:-}; fi
[[ $OVERLAY == frr-sidecar || $OVERLAY == bird-sidecar ]] || { echo "overlay: frr-sidecar or bird-sidecar, not '$OVERLAY'" >&2; exit 2; }
FRR_ROOT=$STATE/frr

kubectl_() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

cp_env() {
  KUBECONFIG_PATH=$(bash "$CP" env | sed -n 's/^export KUBECONFIG=//p')
  KUBECTL=$(bash "$CP" kubectl-path)
  [[ -f $KUBECONFIG_PATH ]] || die "no control plane (e2e.sh up first)"
}

image_var() { sed -n "s/^$1=//p" "$IMAGES_ENV" | tr -d '"'"'" | tail -n1; }

ms_since() { echo $((($(now_us) - $1) / 1000)); }

# ------------------------------------------------------------- router + client
router_frr_running() {
  local pid
  pid=$(cat "$FRR_RUN/$FRR_PS/bgpd.pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && [[ $(ip netns identify "$pid" 2>/dev/null) == "$RTR_NS" ]]
}

setup_client() {
  if ! netns_exists_ "$CLI_NS"; then
    log "creating client $CLI_NS ($CLI4_NET.2, ${CLI6_NET}:2) behind $RTR_NS"
    ip netns add "$CLI_NS"
    ip -n "$CLI_NS" link set lo up
  fi
  if ! ip -n "$RTR_NS" link show "$RTR_CLI_IF" >/dev/null 2>&1; then
    ip link del kn-client-r 2>/dev/null || true
    ip link add kn-client-r type veth peer name kn-client-e
    ip link set kn-client-r netns "$RTR_NS"
    ip -n "$RTR_NS" link set kn-client-r name "$RTR_CLI_IF"
    ip link set kn-client-e netns "$CLI_NS"
    ip -n "$CLI_NS" link set kn-client-e name eth0
    ip netns exec "$RTR_NS" sysctl -qw "net.ipv6.conf.$RTR_CLI_IF.accept_dad=0"
    ip netns exec "$CLI_NS" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
    ip -n "$RTR_NS" addr add "$CLI4_NET.1/24" dev "$RTR_CLI_IF"
    ip -n "$RTR_NS" addr add "${CLI6_NET}:1/64" dev "$RTR_CLI_IF" nodad
    ip -n "$RTR_NS" link set "$RTR_CLI_IF" up
    ip -n "$CLI_NS" addr add "$CLI4_NET.2/24" dev eth0
    ip -n "$CLI_NS" addr add "${CLI6_NET}:2/64" dev eth0 nodad
    ip -n "$CLI_NS" link set eth0 up
    ip -n "$CLI_NS" route replace default via "$CLI4_NET.1" dev eth0
    ip -n "$CLI_NS" -6 route replace default via "${CLI6_NET}:1" dev eth0
  fi
  # A second client address: connections whose 5-tuples no load used before, so that
  # no conntrack entry left on a node (a dead pod's, say) can catch them.
  ip -n "$CLI_NS" addr replace "$CLI4_NET.3/24" dev eth0
  ip -n "$CLI_NS" addr replace "${CLI6_NET}:3/64" dev eth0 nodad
}

netns_exists_() { [[ -e /run/netns/$1 ]]; }

start_router_frr() {
  router_frr_running && { log "FRR already running in $RTR_NS"; return 0; }
  frr_forget "$FRR_PS"
  mkdir -p "$FRR_ROOT/$FRR_PS"
  {
    frr_conf_header "$FRR_PS"
    # peer-groups NODES4/NODES6 take every node that connects from the segment
    frr_bgp_conf "$RTR_AS" "$RTR4" "$NODE_AS" NODES4 NODES6 "$SEG4.0/24" "${SEG6}:/64" 16
  } >"$FRR_ROOT/$FRR_PS/frr.conf"
  log "starting FRR (AS $RTR_AS) in $RTR_NS"
  # shellcheck disable=SC2046 # word list
  frr_start "$RTR_NS" "$FRR_PS" "$FRR_ROOT" $(frr_daemons_for bgp)
  write_vtysh_wrapper "$STATE/vtysh-rtr" "$FRR_ROOT" "$FRR_PS" "the e2e router $RTR_NS"
}

# A /32 on every node's lo: the overlay's frr.conf asks for one, so that no node
# takes a Service address (the same on every node) as its BGP router id.
node_loopbacks() {
  local k
  for k in $(seq "$N"); do
    ip -n "kn-node$k" addr replace "10.77.255.$k/32" dev lo
  done
}

# ------------------------------------------------------------------ deploy/
# The node side of bird.conf: the overlay's file with the documented edits (neighbours, AS
# numbers, the IPv6 session its comment describes) and the timers of node_frr_conf.
node_bird_conf() {
  cat <<EOF
# Generated by integration/k8s/e2e.sh from deploy/overlays/bird-sidecar/bird.conf:
# neighbours $RTR4 and $RTR6 (the e2e router, AS $RTR_AS), an IPv6 session added.
log stderr all;
# the node's segment address, never a Service address on kube-lb0
router id from "eth0";

include "/etc/bird/routelb/routelb.conf";

protocol device {
  scan time 10;
}
protocol kernel {
  ipv4 { import none; export none; };
  netlink rx buffer 8388608;
}
protocol kernel {
  ipv6 { import none; export none; };
  netlink rx buffer 8388608;
}

protocol bgp upstream {
  local as $NODE_AS;
  neighbor $RTR4 as $RTR_AS;
  hold time 9;
  connect retry time 1;
  ipv4 { import none; export where routelb_export_bgp(); };
}
protocol bgp upstream6 {
  local as $NODE_AS;
  neighbor $RTR6 as $RTR_AS;
  hold time 9;
  connect retry time 1;
  ipv6 { import none; export where routelb_export_bgp(); };
}
EOF
}

# The node side of frr.conf: the overlay's file with the documented edits
# (neighbour and AS numbers), both families.
node_frr_conf() {
  cat <<EOF
! Generated by integration/k8s/e2e.sh from deploy/overlays/frr-sidecar/frr.conf:
! neighbours $RTR4 and $RTR6 (the e2e router, AS $RTR_AS), IPv6 activated.
frr defaults traditional
log file /etc/frr/frr.log informational
service integrated-vtysh-config
!
router bgp $NODE_AS
 bgp route-map delay-timer 1
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor UPSTREAM peer-group
 neighbor UPSTREAM remote-as $RTR_AS
 neighbor UPSTREAM timers connect 1
 neighbor UPSTREAM advertisement-interval 0
 neighbor $RTR4 peer-group UPSTREAM
 neighbor UPSTREAM6 peer-group
 neighbor UPSTREAM6 remote-as $RTR_AS
 neighbor UPSTREAM6 timers connect 1
 neighbor UPSTREAM6 advertisement-interval 0
 neighbor $RTR6 peer-group UPSTREAM6
 !
 address-family ipv4 unicast
  neighbor UPSTREAM activate
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor UPSTREAM6 activate
 exit-address-family
!
EOF
}

write_kustomization() {
  local dir=$STATE/deploy routelb_image frr_image base
  routelb_image=$(image_var ROUTELB_IMAGE)
  frr_image=$(image_var FRR_IMAGE)
  [[ -n $routelb_image && -n $frr_image ]] || die "images.env lacks ROUTELB_IMAGE/FRR_IMAGE (integration/images/build.sh)"
  rm -rf "$dir"
  mkdir -p "$dir"
  base=$(realpath --relative-to="$dir" "$REPO/deploy/overlays/$OVERLAY")
  # the daemon's startup files: the overlay's ConfigMap, replaced (kustomize v2, in kubectl
  # 1.20, loads generator files from the kustomization's own directory only: unchanged ones
  # are copied beside the generated one)
  local startup files f
  if [[ $OVERLAY == bird-sidecar ]]; then
    startup=routelb-bird-config files=(bird.conf)
    node_bird_conf >"$dir/bird.conf"
  else
    startup=routelb-frr-startup files=(daemons frr.conf vtysh.conf)
    cp "$REPO/deploy/overlays/frr-sidecar/daemons" "$REPO/deploy/overlays/frr-sidecar/vtysh.conf" "$dir/"
    node_frr_conf >"$dir/frr.conf"
  fi
  # The images keep their tags when rebuilt (deploy/ names routelb:0.1.0): the pod templates
  # carry the images' ids, so that a rebuilt image rolls the running pods.
  local ids kind name
  ids=$(cat "$(dirname "$IMAGES_ENV")"/routelb.tar.id "$(dirname "$IMAGES_ENV")"/frr.tar.id 2>/dev/null | sha256sum | cut -c1-16)
  for kind in DaemonSet/routelb-agent Deployment/routelb-allocator; do
    name=${kind#*/}
    cat >"$dir/$name-image-id.yaml" <<EOF
apiVersion: apps/v1
kind: ${kind%/*}
metadata: {name: $name, namespace: routelb-system}
spec:
  template:
    metadata:
      annotations: {routelb.test/image-ids: "$ids"}
EOF
  done
  {
    cat <<EOF
# Generated by integration/k8s/e2e.sh: deploy/overlays/$OVERLAY unchanged, with this
# machine's images and the e2e router as BGP neighbour.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
bases:
- $base
images:
- name: routelb
  newName: ${routelb_image%:*}
  newTag: ${routelb_image##*:}
- name: quay.io/frrouting/frr
  newName: ${frr_image%:*}
  newTag: ${frr_image##*:}
patchesStrategicMerge:
- routelb-agent-image-id.yaml
- routelb-allocator-image-id.yaml
configMapGenerator:
- name: $startup
  namespace: routelb-system
  behavior: replace
  files:
EOF
    for f in "${files[@]}"; do echo "  - $f"; done
  } >"$dir/kustomization.yaml"
  echo "$OVERLAY" >"$STATE/overlay"
}

apply_routelb() {
  write_kustomization
  log "kubectl apply -k $STATE/deploy"
  kubectl_ apply -k "$STATE/deploy" >&2
  local crd
  for crd in addresspools nodestates routingpolicies routingrollouts; do
    kubectl_ wait --for=condition=Established "crd/$crd.routelb.io" --timeout=60s >/dev/null
  done
  kubectl_ apply -f - >&2 <<EOF
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata:
  name: kn-e2e
  labels: {announce: bgp}
spec:
  mode: routed
  addresses: [$POOL4, $POOL6]
  avoidBuggyIPs: true
---
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata:
  name: kn-e2e-local
spec:
  mode: local
  addresses: [$LPOOL4, $LPOOL6]
  avoidBuggyIPs: true
---
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata:
  name: kn-e2e-bench
  labels: {announce: bgp}
spec:
  mode: routed
  addresses: [$BENCH_POOL4, $BENCH_POOL6]
  avoidBuggyIPs: true
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata:
  name: kn-e2e
spec:
  poolSelector:
    matchLabels: {announce: bgp}
  protocols: [bgp]
EOF
  kubectl_ -n routelb-system rollout status deploy/routelb-allocator --timeout="${TIMEOUT}s" >&2
  kubectl_ -n routelb-system rollout status ds/routelb-agent --timeout="${TIMEOUT}s" >&2
}

apply_workload() {
  local image port
  image=$(image_var HTTP_IMAGE)
  port=$(image_var HTTP_PORT)
  [[ -n $image ]] || die "images.env lacks HTTP_IMAGE"
  kubectl_ create namespace "$APP_NS" --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
  kubectl_ -n "$APP_NS" apply -f - >&2 <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: $N
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      # httpd runs as PID 1 and so ignores SIGTERM: a terminating pod serves until
      # the kill at the end of this period, by when kube-proxy has stopped sending
      # it new connections (about a second): no request is refused on the way out.
      terminationGracePeriodSeconds: 3
      # one replica per node
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: http
        image: $image
        imagePullPolicy: Never
        ports: [{containerPort: ${port:-8080}}]
        readinessProbe: {tcpSocket: {port: ${port:-8080}}, periodSeconds: 1}
EOF
  kubectl_ -n "$APP_NS" rollout status deploy/web --timeout="${TIMEOUT}s" >&2
}

# -------------------------------------------------------------------- up --
# What a failed `up` leaves for its reader (CI shows only the end of its log):
# the pods, the latest Events of routelb-system, and the end of the logs of
# every routelb pod that is not ready. Bounded, so that the cause stays on screen.
dump_cluster_state() {
  [[ -n ${KUBECTL:-} && -f ${KUBECONFIG_PATH:-} ]] || return 0
  log "${1:-up} failed; the cluster as it is:"
  kubectl_ get pods -A -o wide >&2 2>&1 || true
  kubectl_ -n routelb-system get events --sort-by=.lastTimestamp 2>&1 | tail -n 15 >&2 || true
  local pod
  for pod in $(kubectl_ -n routelb-system get pods -o jsonpath='{range .items[*]}{.metadata.name}{" "}{range .status.conditions[?(@.type=="Ready")]}{.status}{end}{"\n"}{end}' 2>/dev/null |
    awk '$2 != "True" { print $1 }'); do
    log "logs of routelb-system/$pod (end):"
    kubectl_ -n routelb-system logs "$pod" --all-containers --tail=8 2>&1 | cut -c1-300 >&2 || true
    # a pod stuck before its containers start (PodInitializing, ContainerCreating) has no
    # logs: its container states, its Events and what its node's kubelet said about it
    log "routelb-system/$pod as described (containers and Events):"
    kubectl_ -n routelb-system describe pod "$pod" 2>&1 |
      sed -n '/^Init Containers:/,/^Volumes:/p;/^Events:/,$p' | grep -v '^ *Mounts:\|^ *\/' | tail -n 40 >&2 || true
    local node kubelet_log
    node=$(kubectl_ -n routelb-system get pod "$pod" -o jsonpath='{.spec.nodeName}' 2>/dev/null || true)
    kubelet_log=${ROUTELB_KN_STATE:-/tmp/routelb-kn}/node${node##*node}/logs/kubelet.log
    if [[ -n $node && -f $kubelet_log ]]; then
      log "$node's kubelet on $pod (last 15 lines naming it):"
      grep -F "$pod" "$kubelet_log" | tail -n 15 | cut -c1-400 >&2 || true
    fi
  done
}

cmd_up() {
  local t0=$SECONDS
  trap 'status=$?; ((status == 0)) || dump_cluster_state; exit $status' EXIT
  require_root
  command -v vtysh >/dev/null || {
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends frr >&2
  }
  require_frr
  command -v curl >/dev/null || die "curl missing (nodes.sh installs it)"
  # images: built once (a fresh machine), or again on request (the routelb image
  # of this checkout's sources: build.sh rebuilds what changed)
  if [[ ! -f $IMAGES_ENV || ${ROUTELB_E2E_BUILD:-0} == 1 ]]; then
    log "integration/images/build.sh all"
    bash "$REPO/integration/images/build.sh" all >/dev/null
  fi
  [[ -f $IMAGES_ENV ]] || die "no $IMAGES_ENV after integration/images/build.sh"
  bash "$NODES" up "$N" >/dev/null
  cp_env
  mkdir -p "$STATE"
  netns_exists_ "$RTR_NS" || die "nodes.sh made no $RTR_NS"
  setup_client
  # ECMP by addresses and ports, as routers spread flows: every node gets a share
  # of the client's connections, not all of them the one its address hashes to
  ip netns exec "$RTR_NS" sysctl -qw net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
  start_router_frr
  node_loopbacks
  apply_routelb
  apply_workload
  kubectl_ -n routelb-system get pods -o wide >&2
  trap - EXIT
  log "up in $((SECONDS - t0)) s; next: $0 check"
}

# ----------------------------------------------------------------- check --
# next hops of PREFIX in the router's kernel, one per line
router_nexthops() {
  local fam=$1 prefix=$2
  ip -n "$RTR_NS" "$fam" route show "$prefix" proto bgp 2>/dev/null |
    grep -oE 'via [0-9a-f:.]+' | awk '{ print $2 }' | sort -u
}

# the addresses node K may use as BGP next hop for FAMILY (-4/-6)
node_nexthop_addrs() {
  local k=$1 fam=$2
  if [[ $fam == -4 ]]; then node_ip4 "$k"; return; fi
  node_ip6 "$k"
  ip -n "kn-node$k" -6 addr show dev eth0 scope link | awk '/inet6/ { sub(/\/.*/, "", $2); print $2 }'
}

# all nodes are next hops of PREFIX?
route_complete() {
  local fam=$1 prefix=$2 hops k a ok
  hops=$(router_nexthops "$fam" "$prefix")
  [[ -n $hops ]] || return 1
  for k in $(seq "$N"); do
    ok=0
    for a in $(node_nexthop_addrs "$k" "$fam"); do
      grep -qxF "$a" <<<"$hops" && ok=1
    done
    [[ $ok == 1 ]] || return 1
  done
}

url_of() { if [[ $1 == *:* ]]; then echo "http://[$1]/"; else echo "http://$1/"; fi; }

# Routed pool over BGP: create -> address -> route at the router with every
# node as ECMP next hop -> first answer at the client.
check_routed() {
  kubectl_ -n "$APP_NS" delete svc web --ignore-not-found --wait=true >&2
  # wait for the old addresses' routes to go (a re-run would time the old ones)
  local deadline=$((SECONDS + 30))
  while ip -n "$RTR_NS" route show proto bgp | grep -qF "${POOL4%.*}." ||
        ip -n "$RTR_NS" -6 route show proto bgp | grep -qF "${POOL6%::*}::"; do
    ((SECONDS < deadline)) || die "routes of a previous Service stay at the router"
    sleep 0.1
  done

  # Three observers, so that no one's latency delays another's timestamp: the
  # address (kubectl, ~50 ms a call) in the background; the router's routes
  # (from any BGP route into the pools: no need to know the address first) and
  # the client's first answer (to the address the route is for) here.
  local t0 t_addr="" t_route4="" t_route6="" ips="" rip4="" rip6=""
  # shellcheck disable=SC2034 # set and read by name in try_first_answer, log_first_answers
  local t_answer4="" t_answer6="" answer4="" answer6="" failed4=0 failed6=0 last_err4="" last_err6=""
  rm -f "$STATE/addr"
  t0=$(now_us)
  create_service web kn-e2e
  log "Service $APP_NS/web created (kubectl apply returned after $(ms_since "$t0") ms)"
  deadline=$((SECONDS + TIMEOUT))
  watch_address web "$STATE/addr" &
  local addr_pid=$! pfx4="${POOL4%.*}." pfx6="${POOL6%::*}:" r
  while [[ -z $t_route4 || -z $t_route6 || -z $t_answer4 || -z $t_answer6 ]]; do
    if ((SECONDS >= deadline)); then
      ip -n "$RTR_NS" route show proto bgp >&2
      ip -n "$RTR_NS" -6 route show proto bgp >&2
      "$STATE/vtysh-rtr" -c 'show bgp summary' >&2 || true
      break
    fi
    if [[ -z $t_route4 ]]; then
      for r in $(ip -n "$RTR_NS" -4 route show proto bgp | awk -v p="$pfx4" 'index($1, p) == 1 { print $1 }'); do
        if route_complete -4 "$r/32"; then t_route4=$(ms_since "$t0"); rip4=$r; break; fi
      done
    fi
    if [[ -z $t_route6 ]]; then
      for r in $(ip -n "$RTR_NS" -6 route show proto bgp | awk -v p="$pfx6" 'index($1, p) == 1 { print $1 }'); do
        if route_complete -6 "$r/128"; then t_route6=$(ms_since "$t0"); rip6=$r; break; fi
      done
    fi
    [[ -n $t_answer4 || -z $rip4 ]] || try_first_answer 4 "$rip4"
    [[ -n $t_answer6 || -z $rip6 ]] || try_first_answer 6 "$rip6"
    sleep 0.01
  done
  wait "$addr_pid" || true
  if [[ -f $STATE/addr ]]; then
    read -r t_addr ips <"$STATE/addr"
    t_addr=$(((t_addr - t0) / 1000))
  fi
  log "address(es) assigned after ${t_addr:-?} ms: ${ips:-none}"
  [[ -z $t_route4 ]] || log "route $rip4/32 at $RTR_NS, every node a next hop, after $t_route4 ms: $(ip -n "$RTR_NS" route show "$rip4" | tr -s ' \t\n' ' ')"
  [[ -z $t_route6 ]] || log "route $rip6/128 at $RTR_NS, every node a next hop, after $t_route6 ms: $(ip -n "$RTR_NS" -6 route show "$rip6" | tr -s ' \t\n' ' ')"
  log_first_answers ""
  [[ -n $t_route4 ]] || { log "FAIL no complete IPv4 route at $RTR_NS"; fails=$((fails + 1)); }
  [[ -n $t_route6 ]] || { log "FAIL no complete IPv6 route at $RTR_NS"; fails=$((fails + 1)); }
  [[ " $ips " == *" $rip4 "* && " $ips " == *" $rip6 "* ]] ||
    { log "FAIL the router's routes ($rip4 $rip6) are not the Service's addresses ($ips)"; fails=$((fails + 1)); }
  verify_answers "$ips"
  printf 'routed pool (ms from Service create): address %s; IPv4 route %s, answer %s; IPv6 route %s, answer %s\n' \
    "${t_addr:-?}" "${t_route4:-?}" "${t_answer4:-?}" "${t_route6:-?}" "${t_answer6:-?}"
}

# try_first_answer F ADDR (F: 4 or 6): one request from the client to ADDR.
# Sets the caller's t_answerF (ms since t0) and answerF on success, else counts
# failedF and keeps curl's message in last_errF. Each family is waited for on
# its own: kube-proxy programs iptables and ip6tables in separate syncs.
try_first_answer() {
  local f=$1 url o n
  url=$(url_of "$2")
  if o=$(ip netns exec "$CLI_NS" curl -fsS --max-time 1 "$url" 2>&1); then
    printf -v "t_answer$f" '%s' "$(ms_since "$t0")"
    printf -v "answer$f" '%s' "$url: $o"
  else
    n=failed$f
    printf -v "$n" '%s' "$((${!n} + 1))"
    printf -v "last_err$f" '%s' "${o##*curl: }"
  fi
}

# log_first_answers WHAT: the caller's first-answer figures, FAIL if missing
log_first_answers() {
  local f t a n e
  for f in 4 6; do
    t=t_answer$f a=answer$f n=failed$f e=last_err$f
    if [[ -n ${!t} ]]; then
      log "$1first IPv$f answer at $CLI_NS after ${!t} ms (${!a})${!e:+; ${!n} request(s) before it failed, the last with: ${!e}}"
    else
      log "FAIL $1no IPv$f answer at $CLI_NS${!e:+ (${!n} failed, the last with: ${!e})}"; fails=$((fails + 1))
    fi
  done
}

# every address of $1 (space-separated): answered by a workload pod; which
# pods answered over 20 requests each is logged
verify_answers() {
  local ips=$1 seen ip url out
  for ip in $ips; do
    url=$(url_of "$ip")
    seen=""
    for _ in $(seq 20); do
      if out=$(ip netns exec "$CLI_NS" curl -fsS --max-time 2 "$url" 2>&1); then
        [[ " $pods " == *" $out "* ]] || { log "FAIL $url answered '$out', not a pod name"; fails=$((fails + 1)); break; }
        [[ " $seen " == *" $out "* ]] || seen+=" $out"
      else log "FAIL $url: $out"; fails=$((fails + 1)); break; fi
    done
    log "$CLI_NS -> $url answered by:$seen"
  done
  [[ $ips == *:* ]] || { log "FAIL no IPv6 address assigned"; fails=$((fails + 1)); }
  [[ $ips =~ (^| )[0-9]+\. ]] || { log "FAIL no IPv4 address assigned"; fails=$((fails + 1)); }
}

# create_service NAME POOL: the PreferDualStack LoadBalancer Service
create_service() {
  kubectl_ -n "$APP_NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: $1
  annotations: {routelb.io/pool: $2}
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  externalTrafficPolicy: Cluster
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: ${port:-8080}, protocol: TCP}]
EOF
}

# watch_address NAME FILE (in the background): "<µs> <addresses>" into FILE
# once the Service has two addresses (or one for 2 s)
watch_address() {
  local first="" a=""
  while ((SECONDS < deadline)); do
    a=$(kubectl_ -n "$APP_NS" get svc "$1" -o 'jsonpath={.status.loadBalancer.ingress[*].ip}' 2>/dev/null) || a=""
    if [[ -n $a && -z $first ]]; then first=$(now_us); fi
    if [[ -n $first ]] && { [[ $(wc -w <<<"$a") -ge 2 ]] || (($(now_us) - first > 2000000)); }; then
      echo "$first $a" >"$2.tmp" && mv "$2.tmp" "$2"
      return 0
    fi
    sleep 0.02
  done
}

# the nodes holding address PREFIX-matching addresses of the local pool on
# eth0, as "kn-nodeK:ADDR" lines
local_holders() {
  local fam=$1 pfx=$2 k
  for k in $(seq "$N"); do
    ip -n "kn-node$k" -o "$fam" addr show dev eth0 2>/dev/null |
      awk -v p="$pfx" -v n="kn-node$k" '{ sub(/\/.*/, "", $4) } index($4, p) == 1 { print n ":" $4 }'
  done
}

# Local pool (in the nodes' subnet, held by one elected node, reached by
# ARP/NDP from the router): create -> address -> held by exactly one node ->
# first answer at the client.
check_local() {
  # the pools' addresses by prefix: 10.77.0.24[0-7], fd00:77::f[0-7]
  local pfx4="${LPOOL4%?/*}" pfx6="${LPOOL6%?/*}" h4="" h6=""
  kubectl_ -n "$APP_NS" delete svc web-local --ignore-not-found --wait=true >&2
  local deadline=$((SECONDS + 30))
  while [[ -n $(local_holders -4 "$pfx4")$(local_holders -6 "$pfx6") ]]; do
    ((SECONDS < deadline)) || die "a previous local Service's addresses stay on the nodes"
    sleep 0.1
  done
  local t0 t_addr="" t_held4="" t_held6="" ips=""
  # shellcheck disable=SC2034 # set and read by name in try_first_answer, log_first_answers
  local t_answer4="" t_answer6="" answer4="" answer6="" failed4=0 failed6=0 last_err4="" last_err6=""
  rm -f "$STATE/addr-local"
  t0=$(now_us)
  create_service web-local kn-e2e-local
  log "Service $APP_NS/web-local created (kubectl apply returned after $(ms_since "$t0") ms)"
  deadline=$((SECONDS + TIMEOUT))
  watch_address web-local "$STATE/addr-local" &
  local addr_pid=$!
  while [[ -z $t_held4 || -z $t_held6 || -z $t_answer4 || -z $t_answer6 ]]; do
    ((SECONDS < deadline)) || break
    if [[ -z $t_held4 ]]; then h4=$(local_holders -4 "$pfx4"); [[ -n $h4 ]] && t_held4=$(ms_since "$t0"); fi
    if [[ -z $t_held6 ]]; then h6=$(local_holders -6 "$pfx6"); [[ -n $h6 ]] && t_held6=$(ms_since "$t0"); fi
    [[ -n $t_answer4 || -z $h4 ]] || try_first_answer 4 "$(head -n1 <<<"$h4" | cut -d: -f2-)"
    [[ -n $t_answer6 || -z $h6 ]] || try_first_answer 6 "$(head -n1 <<<"$h6" | cut -d: -f2-)"
    sleep 0.01
  done
  wait "$addr_pid" || true
  if [[ -f $STATE/addr-local ]]; then
    read -r t_addr ips <"$STATE/addr-local"
    t_addr=$(((t_addr - t0) / 1000))
  fi
  # settled: who holds what now
  sleep 0.5
  h4=$(local_holders -4 "$pfx4"); h6=$(local_holders -6 "$pfx6")
  log "local: address(es) assigned after ${t_addr:-?} ms: ${ips:-none}"
  log "local: IPv4 held after ${t_held4:-?} ms by ${h4//$'\n'/ }, IPv6 after ${t_held6:-?} ms by ${h6//$'\n'/ }"
  log_first_answers "local: "
  [[ $(wc -l <<<"$h4") == 1 && -n $h4 ]] || { log "FAIL local IPv4: held by '${h4//$'\n'/ }', not by exactly one node"; fails=$((fails + 1)); }
  [[ $(wc -l <<<"$h6") == 1 && -n $h6 ]] || { log "FAIL local IPv6: held by '${h6//$'\n'/ }', not by exactly one node"; fails=$((fails + 1)); }
  [[ " $ips " == *" ${h4#*:} "* && " $ips " == *" ${h6#*:} "* ]] ||
    { log "FAIL local: the nodes hold ${h4#*:} ${h6#*:}, the Service has $ips"; fails=$((fails + 1)); }
  verify_answers "$ips"
  printf 'local pool (ms from Service create): address %s; IPv4 held %s, answer %s; IPv6 held %s, answer %s\n' \
    "${t_addr:-?}" "${t_held4:-?}" "${t_answer4:-?}" "${t_held6:-?}" "${t_answer6:-?}"
}

cmd_check() {
  cp_env
  local port pods fails=0
  port=$(image_var HTTP_PORT)
  pods=$(kubectl_ -n "$APP_NS" get pods -l app=web -o 'jsonpath={.items[*].metadata.name}')
  [[ -n $pods ]] || die "no workload pods (e2e.sh up first)"
  check_routed
  check_local
  ((fails == 0)) || die "$fails failure(s)"
  log "check OK"
}

# ------------------------------------------------------------------- env --
# For the tests (tests/real_cluster.rs): the cluster's handles as NAME=value lines.
cmd_env() {
  cp_env
  printf 'KUBECONFIG=%s\nKUBECTL=%s\nVTYSH_RTR=%s\nNODES=%s\n' \
    "$KUBECONFIG_PATH" "$KUBECTL" "$STATE/vtysh-rtr" "$N"
}

# ------------------------------------------------------------------ down --
cmd_down() {
  local keep=${ROUTELB_E2E_KEEP_CLUSTER:-0}
  # Objects are deleted only from a cluster that stays (a later `up` must not
  # meet Terminating namespaces): ~50 s, mostly namespace deletion.
  if [[ $keep == 1 ]] &&
     KUBECONFIG_PATH=$(bash "$CP" env 2>/dev/null | sed -n 's/^export KUBECONFIG=//p') &&
     [[ -f $KUBECONFIG_PATH ]] && KUBECTL=$(bash "$CP" kubectl-path 2>/dev/null) &&
     kubectl_ get --raw /healthz >/dev/null 2>&1; then
    kubectl_ delete namespace "$APP_NS" --ignore-not-found --wait=true >&2 || true
    kubectl_ delete addresspool kn-e2e kn-e2e-local kn-e2e-bench --ignore-not-found >&2 || true
    kubectl_ delete routingpolicy kn-e2e --ignore-not-found >&2 || true
    [[ -f $STATE/deploy/kustomization.yaml ]] &&
      { kubectl_ delete -k "$STATE/deploy" --ignore-not-found --wait=true >&2 || true; }
  fi
  if netns_exists_ "$RTR_NS"; then
    # shellcheck disable=SC2046 # pid list
    kill_pids_in_ns "$RTR_NS" $(frr_pids "$FRR_PS")
    ip -n "$RTR_NS" link del "$RTR_CLI_IF" 2>/dev/null || true
  fi
  frr_forget "$FRR_PS"
  if netns_exists_ "$CLI_NS"; then kill_all_in_ns "$CLI_NS"; ip netns del "$CLI_NS"; fi
  rm -rf "$STATE"
  if [[ $keep != 1 ]]; then
    bash "$NODES" down
    bash "$CP" down
  fi
  log "down"
}

case ${1:-} in
  up)    cmd_up ;;
  check) cmd_check ;;
  down)  cmd_down ;;
  env)   cmd_env ;;
  overlay)
    trap 'status=$?; ((status == 0)) || dump_cluster_state overlay; exit $status' EXIT
    cp_env; mkdir -p "$STATE"; apply_routelb ;;
  *)     echo "usage: $0 up|check|overlay NAME|env|down" >&2; exit 2 ;;
esac
