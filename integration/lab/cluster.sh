#!/usr/bin/env bash
# routelb cluster lab: N Kubernetes "nodes" and one upstream "router" on a shared L2
# segment, each in its own network namespace, running real routing daemons (FRR or BIRD
# on the nodes, always FRR on the router). The router's namespace holds a bridge with one
# veth port per node. Tests run routelb's node agent in the node namespaces and check the
# result in the router namespace: routes (ECMP when several nodes announce an address)
# and neighbour entries (gratuitous ARP).
#
#   bash integration/lab/cluster.sh up NAME --nodes N --proto bgp|ospf [--daemon frr|bird]
#                                           [--no-wait] [--timeout S]
#   bash integration/lab/cluster.sh down NAME
#   bash integration/lab/cluster.sh down-all
#   bash integration/lab/cluster.sh wait-ready NAME [timeout_s]
#   bash integration/lab/cluster.sh wait-route NAME PREFIX present|absent [timeout_s]
#                                              [--nexthops K] [--since EPOCHREALTIME]
#   bash integration/lab/cluster.sh env NAME      # print again what `up` printed
#   bash integration/lab/cluster.sh status NAME   # adjacencies and routes on the router
#   bash integration/lab/cluster.sh list
#
# NAME is 1-12 chars of [a-z0-9-] (namespaces NAME-rtr, NAME-n1..NAME-nN), N is 1..8.
# `up` prints shell-evaluable CLUSTER_*=... lines on stdout (everything else goes to
# stderr):   envs=$(bash integration/lab/cluster.sh up c1 --nodes 3 --proto bgp) && eval "$envs"
# (not eval "$(...)" directly: that hides a failed `up`)
# `wait-route` prints the elapsed ms on stdout; with --nexthops K it waits until the route
# has exactly K nexthops. See README.md beside this file for the layout and gotchas.
#
# Must run as root. Needs iproute2, util-linux, frr + frr-pythontools (>= 8.4) and, for
# --daemon bird, bird2 (>= 2.0.9). Like lab.sh it touches nothing of the host's own
# frr/bird: everything lives under the cluster dir, plus /var/run/frr/<pathspace>/ and a
# symlink /etc/frr/<pathspace> -> cluster dir per FRR instance, both removed by `down`.
# The CLUSTER_* variables are read indirectly (print_env uses ${!v}):
# shellcheck disable=SC2034
set -euo pipefail

CLUSTER_ROOT="${ROUTELB_CLUSTER_ROOT:-/tmp/routelb-cluster}"
LAB_ROOT="${ROUTELB_LAB_ROOT:-/tmp/routelb-lab}" # lab.sh's labs (NAME-rtr is taken there too)
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
LOG_TAG=cluster
# shellcheck source=integration/lab/lib.sh
. "$(dirname "$SELF")/lib.sh"

NODE_AS=64512
RTR_AS=64500
NODE_IF="eth0" # each node's veth end
RTR_IF="br0"   # the router's bridge, holding its addresses
MAX_NODES=8
MAX_PATHS=8
RTR_PRIORITY=255 # OSPF: the router is always the DR; nodes have priority 0
# OSPF retransmit-interval 1 (default 5): a node (priority 0) elects the router DR from its
# first hello and sends its first DD at once, while the router is still in its Wait
# state (= dead interval, 3 s) and drops it. The node has the higher router-id, so it is
# the DD master and ignores the router's DD; without this it resends only after 5 s and
# every adjacency takes ~7 s instead of ~4 s.
OSPF_RXMT=1

usage() {
  sed -n '2,/^set -euo/p' "$SELF" | sed -e '/^set -euo/d' -e '/shellcheck\|CLUSTER_\* variables/d' \
    -e 's/^# \{0,1\}//' >&2
  exit 2
}

check_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,11}$ ]] ||
    die "bad cluster name '$1': use 1-12 chars of [a-z0-9-], starting with a letter or digit"
}

# ---------------------------------------------------------------- state
# CLUSTER_ROOT/NAME/ holds: state (the CLUSTER_* variables, sourced back), frr/<ps>/ per
# FRR instance (frr.conf, vtysh.conf, frr.log, startup.err), bird/n<i>/ per BIRD node
# (bird.conf, routelb.conf include, bird.ctl, bird.pid, bird.log) and bin/ (wrappers).

cluster_dir() { echo "$CLUSTER_ROOT/$1"; }

load_state() {
  local f
  f="$(cluster_dir "$1")/state"
  [ -r "$f" ] || die "no cluster named '$1' (no $f)"
  # shellcheck disable=SC1090
  . "$f"
}

NODE_VARS="NS V4 V6 MAC RTR_IF FRR FRR_CONF VTYSH BIRD_SOCKET BIRD_CONF BIRD_INCLUDE BIRD_PID BIRDC"

print_env() {
  local v i s
  for v in CLUSTER_NAME CLUSTER_INDEX CLUSTER_DIR CLUSTER_NODES CLUSTER_PROTO CLUSTER_DAEMON \
    CLUSTER_SUBNET_V4 CLUSTER_SUBNET_V6 CLUSTER_NODE_AS CLUSTER_RTR_AS \
    CLUSTER_NODE_IF CLUSTER_LB_IF CLUSTER_RTR_NS CLUSTER_RTR_IF CLUSTER_RTR_MAC \
    CLUSTER_RTR_V4 CLUSTER_RTR_V6 CLUSTER_RTR_FRR CLUSTER_RTR_FRR_CONF CLUSTER_RTR_VTYSH \
    CLUSTER_FRR_CONFDIR CLUSTER_FRR_BINDIR; do
    if [ -n "${!v:-}" ]; then printf '%s=%q\n' "$v" "${!v}"; fi
  done
  for i in $(seq 1 "${CLUSTER_NODES:-0}"); do
    for s in $NODE_VARS; do
      v="CLUSTER_NODE${i}_$s"
      if [ -n "${!v:-}" ]; then printf '%s=%q\n' "$v" "${!v}"; fi
    done
  done
}

node_var() { # I SUFFIX -> value of CLUSTER_NODE<I>_<SUFFIX>
  local v="CLUSTER_NODE${1}_$2"
  echo "${!v:-}"
}

node_pathspaces() { # the FRR pathspaces of the nodes (none for BIRD nodes)
  local i
  for i in $(seq 1 "$CLUSTER_NODES"); do
    node_var "$i" FRR
  done
}

rtr_vtysh() { frr_vtysh_at "$CLUSTER_FRR_CONFDIR" "$CLUSTER_RTR_FRR" "$@"; }

# ---------------------------------------------------------------- network

# The router namespace with br0 and its addresses, then one namespace per node with eth0,
# whose veth peer vN<i> is a port of br0.
make_net() {
  local i ns rtr=$CLUSTER_RTR_NS
  netns_add "$rtr"
  # arp_accept=1: create a neighbour entry from a gratuitous ARP for an address the router
  # has no entry for yet. routelb's L2 mode announces a service address with gratuitous
  # ARP from the node that holds it; without arp_accept the router would drop that
  # announcement (an existing entry is updated either way) and a test could not see
  # which node's MAC the address points at. The nodes keep the kernel's ARP defaults.
  ip netns exec "$rtr" sysctl -qw net.ipv4.conf.all.arp_accept=1 net.ipv4.conf.default.arp_accept=1
  # A fixed MAC: a bridge otherwise takes the lowest MAC of its ports and changes it as
  # ports come and go. No STP (ports forward at once) and no multicast snooping (OSPF's
  # and MLD-less IPv6 multicast reach every port without depending on snooping state).
  ip -n "$rtr" link add "$RTR_IF" address "$CLUSTER_RTR_MAC" type bridge \
    stp_state 0 forward_delay 0 mcast_snooping 0
  ip -n "$rtr" addr add "$CLUSTER_RTR_V4/24" dev "$RTR_IF"
  ip -n "$rtr" addr add "$CLUSTER_RTR_V6/64" dev "$RTR_IF" nodad
  ip -n "$rtr" link set "$RTR_IF" up
  for i in $(seq 1 "$CLUSTER_NODES"); do
    ns=$(node_var "$i" NS)
    netns_add "$ns"
    ip link add "$NODE_IF" address "$(node_var "$i" MAC)" netns "$ns" type veth \
      peer name "$(node_var "$i" RTR_IF)" netns "$rtr"
    ip -n "$rtr" link set "$(node_var "$i" RTR_IF)" master "$RTR_IF" up
    ip -n "$ns" addr add "$(node_var "$i" V4)/24" dev "$NODE_IF"
    ip -n "$ns" addr add "$(node_var "$i" V6)/64" dev "$NODE_IF" nodad
    ip -n "$ns" link set "$NODE_IF" up
  done
}

# ---------------------------------------------------------------- daemons
# Everything protocol-specific is built from lib.sh's shared pieces, so the fast timers
# and the other hard-won settings are the same as in lab.sh.

rtr_frr_conf() {
  frr_conf_header "$CLUSTER_RTR_FRR"
  case $CLUSTER_PROTO in
  bgp)
    # Dynamic neighbours: any node on the segment may peer, v4 and v6 sessions in their own
    # peer-group. maximum-paths makes an address announced by several nodes an ECMP route.
    frr_bgp_conf "$RTR_AS" "$CLUSTER_RTR_V4" "$NODE_AS" NODES NODES6 \
      "$CLUSTER_SUBNET_V4" "$CLUSTER_SUBNET_V6" "$MAX_PATHS"
    ;;
  ospf)
    frr_ospf_iface "$RTR_IF" broadcast "$RTR_PRIORITY" "$OSPF_RXMT"
    frr_ospf_routers "$CLUSTER_RTR_V4" "$MAX_PATHS"
    ;;
  esac
}

node_frr_conf() { # I
  local i=$1 v4
  v4=$(node_var "$i" V4)
  frr_conf_header "$(node_var "$i" FRR)"
  case $CLUSTER_PROTO in
  bgp) frr_bgp_conf "$NODE_AS" "$v4" "$RTR_AS" "$CLUSTER_RTR_V4" "$CLUSTER_RTR_V6" ;;
  ospf)
    frr_ospf_iface "$NODE_IF" broadcast 0 "$OSPF_RXMT"
    frr_ospf_routers "$v4"
    ;;
  esac
}

node_bird_conf() { # I
  local i=$1 v4
  v4=$(node_var "$i" V4)
  bird_conf_base "$(dirname "$(node_var "$i" BIRD_CONF)")/bird.log" "$v4" "$(node_var "$i" BIRD_INCLUDE)"
  case $CLUSTER_PROTO in
  bgp)
    bird_bgp_block "$NODE_AS" "$RTR_AS" "$v4" "$CLUSTER_RTR_V4" "$(node_var "$i" V6)" "$CLUSTER_RTR_V6"
    ;;
  # BIRD refuses retransmit 1 ("must be greater than one").
  ospf) bird_ospf_block "$NODE_IF" "type broadcast; priority 0; hello 1; dead 3; retransmit 2;" ;;
  esac
}

# shellcheck disable=SC2046 # one daemon per word
start_rtr() {
  mkdir -p "$CLUSTER_FRR_CONFDIR/$CLUSTER_RTR_FRR"
  rtr_frr_conf >"$CLUSTER_RTR_FRR_CONF"
  frr_start "$CLUSTER_RTR_NS" "$CLUSTER_RTR_FRR" "$CLUSTER_FRR_CONFDIR" $(frr_daemons_for "$CLUSTER_PROTO")
}

# shellcheck disable=SC2046 # one daemon per word
start_node() { # I
  local i=$1 ps conf
  if [ "$CLUSTER_DAEMON" = frr ]; then
    ps=$(node_var "$i" FRR)
    mkdir -p "$CLUSTER_FRR_CONFDIR/$ps"
    node_frr_conf "$i" >"$(node_var "$i" FRR_CONF)"
    # bfdd too: fast failover's BFD sessions between nodes (tests/failover.rs)
    frr_start "$(node_var "$i" NS)" "$ps" "$CLUSTER_FRR_CONFDIR" $(frr_daemons_for "$CLUSTER_PROTO") bfdd
  else
    conf=$(node_var "$i" BIRD_CONF)
    mkdir -p "$(dirname "$conf")"
    bird_include_initial >"$(node_var "$i" BIRD_INCLUDE)"
    node_bird_conf "$i" >"$conf"
    bird_start "$(node_var "$i" NS)" "$conf" "$(node_var "$i" BIRD_SOCKET)" "$(node_var "$i" BIRD_PID)"
  fi
}

# The nodes start in parallel (each in a subshell); fail if any of them failed.
start_nodes() {
  local i pids=() bad=0
  for i in $(seq 1 "$CLUSTER_NODES"); do
    start_node "$i" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { log "node $((i + 1)) failed to start"; bad=1; }
  done
  [ "$bad" = 0 ] || die "$CLUSTER_NAME: not all nodes started"
}

write_wrappers() {
  local i
  write_vtysh_wrapper "$CLUSTER_RTR_VTYSH" "$CLUSTER_FRR_CONFDIR" "$CLUSTER_RTR_FRR" \
    "cluster $CLUSTER_NAME's router FRR"
  write_vtysh_dropin "$CLUSTER_FRR_BINDIR"
  for i in $(seq 1 "$CLUSTER_NODES"); do
    if [ "$CLUSTER_DAEMON" = frr ]; then
      write_vtysh_wrapper "$(node_var "$i" VTYSH)" "$CLUSTER_FRR_CONFDIR" "$(node_var "$i" FRR)" \
        "cluster $CLUSTER_NAME's node $i FRR"
    else
      write_birdc_wrapper "$(node_var "$i" BIRDC)" "$(node_var "$i" BIRD_SOCKET)" \
        "cluster $CLUSTER_NAME's node $i BIRD"
    fi
  done
}

# ---------------------------------------------------------------- health and readiness

cluster_pids() {
  local i
  # shellcheck disable=SC2046 # one pathspace per word
  frr_pids "$CLUSTER_RTR_FRR" $(node_pathspaces)
  if [ "$CLUSTER_DAEMON" = bird ]; then
    for i in $(seq 1 "$CLUSTER_NODES"); do
      cat "$(node_var "$i" BIRD_PID)" 2>/dev/null || true
    done
  fi
  return 0
}

cluster_healthy() {
  local n=0 want per pid i
  [ -e "$CLUSTER_DIR/complete" ] || return 1
  ip netns pids "$CLUSTER_RTR_NS" >/dev/null 2>&1 || return 1
  for i in $(seq 1 "$CLUSTER_NODES"); do
    ip netns pids "$(node_var "$i" NS)" >/dev/null 2>&1 || return 1
  done
  per=$(wc -w <<<"$(frr_daemons_for "$CLUSTER_PROTO")")
  if [ "$CLUSTER_DAEMON" = frr ]; then want=$((per * (CLUSTER_NODES + 1) + CLUSTER_NODES)); else want=$((per + CLUSTER_NODES)); fi
  for pid in $(cluster_pids); do
    kill -0 "$pid" 2>/dev/null || return 1
    n=$((n + 1))
  done
  [ "$n" -eq "$want" ]
}

# True when every node is up with the router, checked on the router (always FRR).
cluster_ready() {
  local i out c=() rid
  case $CLUSTER_PROTO in
  bgp)
    for i in $(seq 1 "$CLUSTER_NODES"); do
      c+=(-c "show bgp neighbors $(node_var "$i" V4) json" -c "show bgp neighbors $(node_var "$i" V6) json")
    done
    out=$(rtr_vtysh "${c[@]}" 2>/dev/null) || return 1
    [ "$(grep -o '"bgpState":"Established"' <<<"$out" | wc -l)" -eq $((2 * CLUSTER_NODES)) ]
    ;;
  ospf)
    # Full with every node in OSPFv2 and OSPFv3 (one line per protocol, starting with the
    # node's router-id), the router's network-LSAs (it is the DR) list every node, and
    # every node's router-LSAs list the link to the DR: only then can the router use the
    # node's external LSAs (a BIRD node re-originates its router-LSA at most every 5 s).
    out=$(rtr_vtysh -c "show ip ospf neighbor" -c "show ipv6 ospf6 neighbor" \
      -c "show ip ospf database network" -c "show ipv6 ospf6 database network detail" 2>/dev/null) ||
      return 1
    for i in $(seq 1 "$CLUSTER_NODES"); do
      rid=$(node_var "$i" V4)
      [ "$(grep -cE "^$rid .*Full" <<<"$out")" -eq 2 ] || return 1
      [ "$(grep -c "Attached Router: $rid\$" <<<"$out")" -eq 2 ] || return 1
    done
    for i in $(seq 1 "$CLUSTER_NODES"); do
      rid=$(node_var "$i" V4)
      out=$(rtr_vtysh -c "show ip ospf database router $rid" \
        -c "show ipv6 ospf6 database router adv-router $rid detail" 2>/dev/null) || return 1
      grep -q "Designated Router address: $CLUSTER_RTR_V4\$" <<<"$out" || return 1
      grep -q "Neighbor Router ID: $CLUSTER_RTR_V4\$" <<<"$out" || return 1
    done
    ;;
  esac
}

cmd_wait_ready() {
  local name=${1:?wait-ready NAME [timeout_s]} timeout=${2:-60} t0
  load_state "$name"
  t0=$(now_us)
  until cluster_ready; do
    if [ $(($(now_us) - t0)) -gt $((timeout * 1000000)) ]; then
      cmd_status "$name" >&2 || true
      die "$name: $CLUSTER_PROTO not ready with all $CLUSTER_NODES node(s) after ${timeout}s"
    fi
    sleep 0.2
  done
  log "$name: $CLUSTER_PROTO ready with all $CLUSTER_NODES node(s) after $((($(now_us) - t0) / 1000)) ms"
}

# ---------------------------------------------------------------- commands

# Set every CLUSTER_* variable for cluster NAME with N nodes and subnet index X.
define_cluster() {
  local name=$1 n=$2 proto=$3 daemon=$4 x=$5 i h xx dir
  dir=$(cluster_dir "$name")
  xx=$(printf '%02x' "$x")
  CLUSTER_NAME=$name CLUSTER_INDEX=$x CLUSTER_DIR=$dir CLUSTER_NODES=$n
  CLUSTER_PROTO=$proto CLUSTER_DAEMON=$daemon
  CLUSTER_SUBNET_V4="10.78.$x.0/24" CLUSTER_SUBNET_V6="fd00:78:$x::/64"
  CLUSTER_NODE_AS=$NODE_AS CLUSTER_RTR_AS=$RTR_AS
  CLUSTER_NODE_IF=$NODE_IF CLUSTER_LB_IF=$LB_IF
  CLUSTER_RTR_NS="$name-rtr" CLUSTER_RTR_IF=$RTR_IF CLUSTER_RTR_MAC="02:78:$xx:00:00:01"
  CLUSTER_RTR_V4="10.78.$x.1" CLUSTER_RTR_V6="fd00:78:$x::1"
  CLUSTER_RTR_FRR="$name-rtr" CLUSTER_RTR_FRR_CONF="$dir/frr/$name-rtr/frr.conf"
  CLUSTER_RTR_VTYSH="$dir/bin/vtysh-rtr"
  CLUSTER_FRR_CONFDIR="$dir/frr" CLUSTER_FRR_BINDIR="$dir/bin/frr"
  for i in $(seq 1 "$n"); do
    h=$((10 + i))
    printf -v "CLUSTER_NODE${i}_NS" '%s' "$name-n$i"
    printf -v "CLUSTER_NODE${i}_V4" '%s' "10.78.$x.$h"
    printf -v "CLUSTER_NODE${i}_V6" '%s' "fd00:78:$x::$h"
    # Locally administered, last byte = the host part of the node's address.
    printf -v "CLUSTER_NODE${i}_MAC" '02:78:%s:00:00:%02x' "$xx" "$h"
    printf -v "CLUSTER_NODE${i}_RTR_IF" '%s' "vN$i"
    if [ "$daemon" = frr ]; then
      printf -v "CLUSTER_NODE${i}_FRR" '%s' "$name-n$i"
      printf -v "CLUSTER_NODE${i}_FRR_CONF" '%s' "$dir/frr/$name-n$i/frr.conf"
      printf -v "CLUSTER_NODE${i}_VTYSH" '%s' "$dir/bin/vtysh-n$i"
    else
      printf -v "CLUSTER_NODE${i}_BIRD_SOCKET" '%s' "$dir/bird/n$i/bird.ctl"
      printf -v "CLUSTER_NODE${i}_BIRD_CONF" '%s' "$dir/bird/n$i/bird.conf"
      printf -v "CLUSTER_NODE${i}_BIRD_INCLUDE" '%s' "$dir/bird/n$i/routelb.conf"
      printf -v "CLUSTER_NODE${i}_BIRD_PID" '%s' "$dir/bird/n$i/bird.pid"
      printf -v "CLUSTER_NODE${i}_BIRDC" '%s' "$dir/bin/birdc-n$i"
    fi
  done
}

cmd_up() {
  local name="" nodes="" proto="" daemon=frr wait=1 timeout=60
  while [ $# -gt 0 ]; do
    case $1 in
    --nodes) nodes=${2:?}; shift 2 ;;
    --proto) proto=${2:?}; shift 2 ;;
    --daemon) daemon=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --no-wait) wait=0; shift ;;
    -*) die "up: unknown option $1" ;;
    *) [ -z "$name" ] || die "up: extra argument $1"; name=$1; shift ;;
    esac
  done
  [ -n "$name" ] || die "up: NAME required"
  check_name "$name"
  if ! [[ "$nodes" =~ ^[0-9]+$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt $MAX_NODES ]; then
    die "up: --nodes 1..$MAX_NODES required"
  fi
  case $proto in bgp | ospf) ;; *) die "up: --proto bgp|ospf required" ;; esac
  case $daemon in frr | bird) ;; *) die "up: --daemon must be frr or bird" ;; esac
  [[ "$timeout" =~ ^[0-9]+$ ]] || die "up: --timeout takes whole seconds"
  require_frr
  [ "$daemon" = frr ] || require_bird
  [ ! -e "$LAB_ROOT/$name/state" ] || die "up: '$name' is a lab.sh lab (NAME-rtr is taken); pick another name"

  mkdir -p "$CLUSTER_ROOT"
  # Serialise creation so parallel `up`s pick distinct indexes.
  exec 9>"$CLUSTER_ROOT/.lock"
  flock -w 300 9 || die "up: $CLUSTER_ROOT/.lock still held after 300 s"

  # Idempotence: an existing healthy cluster of the same shape is reused as it is.
  if [ -r "$(cluster_dir "$name")/state" ]; then
    (
      load_state "$name"
      [ "$CLUSTER_NODES" = "$nodes" ] && [ "$CLUSTER_PROTO" = "$proto" ] &&
        [ "$CLUSTER_DAEMON" = "$daemon" ] && cluster_healthy
    ) && {
      log "$name: already up, reusing it"
      flock -u 9
      load_state "$name"
      [ "$wait" = 1 ] && cmd_wait_ready "$name" "$timeout"
      print_env
      return 0
    }
    log "$name: exists with another shape or unhealthy; recreating"
    down_one "$name"
  fi
  remove_stale "$name"

  local t0 x
  t0=$(now_us)
  x=$(pick_index "$CLUSTER_ROOT" CLUSTER_INDEX "$name")
  define_cluster "$name" "$nodes" "$proto" "$daemon" "$x"
  rm -rf "$CLUSTER_DIR"
  mkdir -p "$CLUSTER_DIR/bin" "$CLUSTER_FRR_CONFDIR"
  chmod 0755 "$CLUSTER_DIR" "$CLUSTER_FRR_CONFDIR"
  # The state file exists from here on, so `down` can clean up a half-built cluster.
  print_env >"$CLUSTER_DIR/state"

  # From here on a failure tears the half-built cluster down again, also when `up` is
  # interrupted or terminated (e.g. by a test's timeout) while it builds.
  trap 'log "$CLUSTER_NAME: up failed, cleaning up"; down_one "$CLUSTER_NAME" || true' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  make_net
  start_rtr
  start_nodes
  write_wrappers
  touch "$CLUSTER_DIR/complete" # an `up` killed before this point left a broken cluster
  trap - EXIT INT TERM HUP
  flock -u 9
  log "$name: $nodes $daemon node(s), $proto, started in $((($(now_us) - t0) / 1000)) ms (10.78.$x.0/24)"
  [ "$wait" = 1 ] && cmd_wait_ready "$name" "$timeout"
  print_env
}

# Namespaces and FRR pathspaces of this name without a state file (e.g. the dir was
# removed by hand). Namespaces and pathspaces share their names.
remove_stale() {
  local name=$1 ns i
  for ns in "$name-rtr" $(for i in $(seq 1 $MAX_NODES); do echo "$name-n$i"; done); do
    [ "$ns" = "$name-rtr" ] && [ -e "$LAB_ROOT/$name/state" ] && continue
    if [ -e "/var/run/netns/$ns" ]; then
      log "$name: removing stale namespace $ns"
      kill_all_in_ns "$ns"
      ip netns del "$ns" 2>/dev/null || true
    fi
    if [[ "$(readlink "$FRR_ETC/$ns" 2>/dev/null)" == "$CLUSTER_ROOT"/* ]]; then frr_forget "$ns"; fi
  done
}

# Tear one cluster down: every process in its namespaces (daemons and whatever a test ran
# there), the namespaces, FRR run dirs and /etc/frr symlinks, the cluster dir. The
# namespaces are emptied in parallel; kill_pids_in_ns only kills a pid that really is in
# the namespace.
down_one() {
  local name=$1
  (
    load_state "$name"
    local ns i pids
    for ns in "$CLUSTER_RTR_NS" $(for i in $(seq 1 "$CLUSTER_NODES"); do node_var "$i" NS; done); do
      (
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -z "$pids" ] || log "$name: stopping pid(s) ${pids//$'\n'/ } in $ns"
        kill_all_in_ns "$ns"
        ip netns del "$ns" 2>/dev/null || true
      ) &
    done
    wait
    # shellcheck disable=SC2046 # one pathspace per word
    frr_forget "$CLUSTER_RTR_FRR" $(node_pathspaces)
  )
  rm -rf "$(cluster_dir "$name")"
}

cmd_down() {
  local name=${1:?down: NAME required}
  check_name "$name"
  if [ -r "$(cluster_dir "$name")/state" ]; then
    down_one "$name"
    log "$name: down"
  else
    remove_stale "$name"
    log "$name: not running"
  fi
}

cmd_down_all() {
  local f n=0 d
  if [ -d "$CLUSTER_ROOT" ]; then
    # Wait for an `up` in progress (it holds the lock while it builds).
    exec 9>"$CLUSTER_ROOT/.lock"
    flock -w 120 9 || log "down-all: lock still held after 120 s, going ahead"
    for f in "$CLUSTER_ROOT"/*/state; do
      [ -r "$f" ] || continue
      down_one "$(basename "$(dirname "$f")")"
      n=$((n + 1))
    done
    # Dirs without a state file (an `up` killed right after creating its dir).
    for d in "$CLUSTER_ROOT"/*/; do
      [ -d "$d" ] && rm -rf "$d"
    done
  fi
  frr_forget_dangling "$CLUSTER_ROOT"
  log "down-all: $n cluster(s) removed"
}

cmd_wait_route() {
  local pos=() nh="" since="" name prefix want timeout=30 t0
  while [ $# -gt 0 ]; do
    case $1 in
    --nexthops) nh=${2:?--nexthops K}; shift 2 ;;
    --since) since=${2:?--since EPOCHREALTIME}; shift 2 ;;
    -*) die "wait-route: unknown option $1" ;;
    *) pos+=("$1"); shift ;;
    esac
  done
  name=${pos[0]:-} prefix=${pos[1]:-} want=${pos[2]:-}
  [ -n "${pos[3]:-}" ] && timeout=${pos[3]}
  if [ -z "$name" ] || [ -z "$prefix" ] || [ ${#pos[@]} -gt 4 ]; then
    die "wait-route NAME PREFIX present|absent [timeout_s] [--nexthops K] [--since EPOCHREALTIME]"
  fi
  case $want in present | absent) ;; *) die "wait-route: want present|absent, got '$want'" ;; esac
  [[ "$timeout" =~ ^[0-9]+$ ]] || die "wait-route: timeout takes whole seconds"
  if [ -n "$nh" ]; then
    [[ "$nh" =~ ^[1-9][0-9]*$ ]] || die "wait-route: --nexthops takes a count >= 1"
    [ "$want" = present ] || die "wait-route: --nexthops goes with present"
  fi
  load_state "$name"
  # --since takes a bash $EPOCHREALTIME value (seconds.micro) taken before the change.
  if [ -n "$since" ]; then t0=${since/./}; else t0=$(now_us); fi
  route_wait "$name" "$CLUSTER_RTR_NS" "$prefix" "$want" "$timeout" "$t0" "$nh"
}

cmd_env() {
  load_state "${1:?env NAME}"
  print_env
}

cmd_status() {
  load_state "${1:?status NAME}"
  echo "== $CLUSTER_NAME: $CLUSTER_NODES $CLUSTER_DAEMON node(s), $CLUSTER_PROTO, $CLUSTER_SUBNET_V4" \
    "healthy=$(cluster_healthy && echo yes || echo no)"
  echo "-- router ($CLUSTER_RTR_FRR)"
  case $CLUSTER_PROTO in
  bgp) rtr_vtysh -c "show bgp summary" || true ;;
  ospf) rtr_vtysh -c "show ip ospf neighbor" -c "show ipv6 ospf6 neighbor" || true ;;
  esac
  echo "-- router kernel routes and neighbours"
  ip -n "$CLUSTER_RTR_NS" -4 route show || true
  ip -n "$CLUSTER_RTR_NS" -6 route show || true
  ip -n "$CLUSTER_RTR_NS" neigh show || true
}

cmd_list() {
  local f
  for f in "$CLUSTER_ROOT"/*/state; do
    [ -r "$f" ] || continue
    (
      # shellcheck disable=SC1090
      . "$f"
      printf '%s\tnodes=%s\tdaemon=%s\tproto=%s\tsubnet=%s\n' "$CLUSTER_NAME" "$CLUSTER_NODES" \
        "$CLUSTER_DAEMON" "$CLUSTER_PROTO" "$CLUSTER_SUBNET_V4"
    )
  done
}

main() {
  [ $# -gt 0 ] || usage
  local cmd=$1
  shift
  case $cmd in
  -h | --help | help) usage ;;
  esac
  require_root
  case $cmd in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  down-all) cmd_down_all ;;
  wait-ready) cmd_wait_ready "$@" ;;
  wait-route) cmd_wait_route "$@" ;;
  env) cmd_env "$@" ;;
  status) cmd_status "$@" ;;
  list) cmd_list ;;
  *) die "unknown command '$cmd' (see --help)" ;;
  esac
}

main "$@"
