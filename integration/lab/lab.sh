#!/usr/bin/env bash
# routelb routing lab: a Kubernetes "node" and its upstream "router", each in its own
# network namespace, joined by a veth, running real routing daemons (FRR or BIRD on the
# node, always FRR on the router). routelb's integration tests drive the node's daemon
# the way routelb does in production (vtysh / birdc + include file) and check the result
# in the router namespace's kernel routing table.
#
#   bash integration/lab/lab.sh up NAME --node frr|bird|bird1 --proto bgp|ospf|isis|rip [--router frr]
#                                       [--index N] [--fresh] [--no-wait] [--timeout S]
#                                       [--node-conf FILE] [--node6-conf FILE] [--router-conf FILE]
#                                       [--ready-sessions N] [--daemons "zebra bgpd bfdd"]
#        --node bird1: BIRD 1.6 (Debian's "bird", unpacked into ~/.cache/routelb/bird1 on first
#        use), `bird` with bird.conf for IPv4 and `bird6` with bird6.conf for IPv6, each with its
#        own control socket and routelb include (LAB_BIRD_* and LAB_BIRD6_*); --proto bgp only.
#        --node6-conf: bird6.conf's base (placeholders as below, plus @BIRD6_INCLUDE@).
#        --node-conf / --router-conf: the node's (frr.conf or bird.conf) or the router's
#        (frr.conf) base configuration instead of the built-in one, for bases in the shape other
#        tools generate. @NODE_V4@ @RTR_V4@ @NODE_V6@ @RTR_V6@ @NODE_AS@ @RTR_AS@ @NODE_IF@
#        @RTR_IF@ @LB_IF@ @HOSTNAME@ @BIRD_INCLUDE@ @BIRD_LOG@ in it are replaced by the lab's
#        values. With --router-conf and --proto bgp the lab is ready once the router has
#        --ready-sessions (default 2) BGP sessions Established, in any VRF.
#   bash integration/lab/lab.sh down NAME
#   bash integration/lab/lab.sh down-all
#   bash integration/lab/lab.sh wait-ready NAME [timeout_s]
#   bash integration/lab/lab.sh wait-route NAME PREFIX [present|absent] [timeout_s] [--since EPOCH]
#   bash integration/lab/lab.sh vtysh NAME node|rtr VTYSH-ARGS...
#   bash integration/lab/lab.sh birdc NAME BIRDC-ARGS...
#   bash integration/lab/lab.sh birdc6 NAME BIRDC-ARGS...   # --node bird1: bird6
#   bash integration/lab/lab.sh restart-daemon NAME DAEMON  # kill -9 one of the node's FRR
#                                       daemons, start it again and load frr.conf into it
#   bash integration/lab/lab.sh start-daemon NAME DAEMON    # one more FRR daemon on the node
#   bash integration/lab/lab.sh stop-daemon NAME DAEMON     # kill -9 it, leaving its socket
#                                       file behind as FRR does
#   bash integration/lab/lab.sh env NAME        # reprint the LAB_* variables
#   bash integration/lab/lab.sh status NAME     # protocol state on both sides
#   bash integration/lab/lab.sh list
#
# `up` prints shell-evaluable LAB_*=... lines on stdout (everything else goes to stderr), so
# a test does:   eval "$(bash integration/lab/lab.sh up t1 --node frr --proto bgp)"
# See README.md beside this file for the layout, addresses and gotchas.
#
# Must run as root (namespaces, daemons). Needs: iproute2, util-linux (unshare, flock),
# frr + frr-pythontools (>= 8.4) and, for --node bird, bird2 (>= 2.0.9, for
# "netlink rx buffer"). Nothing here touches the host's own frr/bird services: every
# daemon runs inside the lab's namespaces with its own pathspace, sockets, pid files and
# config directory, all under the lab directory (plus /var/run/frr/<pathspace>/ for the
# FRR sockets and a symlink /etc/frr/<pathspace> -> lab dir, both removed by `down`).
# The LAB_* variables are read indirectly (print_env uses ${!v}):
# shellcheck disable=SC2034
set -euo pipefail

LAB_ROOT="${ROUTELB_LAB_ROOT:-/tmp/routelb-lab}"
CLUSTER_ROOT="${ROUTELB_CLUSTER_ROOT:-/tmp/routelb-cluster}" # cluster.sh's labs
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
LOG_TAG=lab
# shellcheck source=integration/lab/lib.sh
. "$(dirname "$SELF")/lib.sh"

NODE_AS=64512
RTR_AS=64500
NODE_IF="eth-rtr"   # the node's veth end (it faces the router)
RTR_IF="eth-node"   # the router's veth end (it faces the node)
ISIS_TAG="LAB"

usage() {
  sed -n '2,/^set -euo/p' "$SELF" | sed -e '/^set -euo/d' -e '/shellcheck\|LAB_\* variables/d' \
    -e 's/^# \{0,1\}//' >&2
  exit 2
}

check_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,19}$ ]] ||
    die "bad lab name '$1': use 1-20 chars of [a-z0-9-], starting with a letter or digit"
}

# ---------------------------------------------------------------- state helpers
# Each lab has LAB_ROOT/NAME/ holding: state (the LAB_* variables, sourced back),
# frr/<pathspace>/ (frr.conf, vtysh.conf, frr.log per FRR instance), bird/ (bird.conf,
# routelb.conf include, control socket, pid, log) and bin/ (wrapper commands).

lab_dir() { echo "$LAB_ROOT/$1"; }

load_state() {
  local f
  f="$(lab_dir "$1")/state"
  [ -r "$f" ] || die "no lab named '$1' (no $f)"
  # shellcheck disable=SC1090
  . "$f"
}

# The LAB_* variables as shell assignments (what `up` and `env` print).
print_env() {
  local v
  for v in LAB_NAME LAB_INDEX LAB_DIR LAB_NODE_KIND LAB_ROUTER_KIND LAB_PROTO \
    LAB_NODE_NS LAB_RTR_NS LAB_NODE_IF LAB_RTR_IF LAB_LB_IF LAB_LB_IF_KIND \
    LAB_NODE_V4 LAB_RTR_V4 LAB_NODE_V6 LAB_RTR_V6 LAB_NODE_AS LAB_RTR_AS LAB_ISIS_TAG \
    LAB_FRR_BINDIR LAB_RTR_FRR LAB_RTR_FRR_CONFDIR LAB_RTR_FRR_CONF LAB_RTR_VTYSH \
    LAB_NODE_FRR LAB_NODE_FRR_CONFDIR LAB_NODE_FRR_CONF LAB_NODE_VTYSH \
    LAB_BIRD_SOCKET LAB_BIRD_CONF LAB_BIRD_INCLUDE LAB_BIRD_PID LAB_BIRDC \
    LAB_BIRD6_SOCKET LAB_BIRD6_CONF LAB_BIRD6_INCLUDE LAB_BIRD6_PID LAB_BIRDC6 LAB_BIRD1_SBIN \
    LAB_NODE6_CONF_SRC \
    LAB_NODE_CONF_SRC LAB_RTR_CONF_SRC LAB_READY_SESSIONS LAB_FRR_DAEMONS; do
    if [ -n "${!v:-}" ]; then
      printf '%s=%q\n' "$v" "${!v}"
    fi
  done
}

# ---------------------------------------------------------------- process helpers
# (ns_uts_exec, kill_in_ns, wait_for_path and the rest are in lib.sh)

# vtysh for FRR instance (pathspace) $1, under the same hostname as its daemons.
frr_vtysh() { frr_vtysh_at "$LAB_DIR/frr" "$@"; }

# ---------------------------------------------------------------- network

# The lab's subnet index X (172.30.X.0/24, fd00:30:X::/64): see pick_index in lib.sh.

# Create both namespaces, the veth between them and kube-lb0 on the node.
make_net() {
  netns_add "$LAB_NODE_NS"
  netns_add "$LAB_RTR_NS"
  ip link add "$NODE_IF" netns "$LAB_NODE_NS" type veth peer name "$RTR_IF" netns "$LAB_RTR_NS"
  ip -n "$LAB_NODE_NS" addr add "$LAB_NODE_V4/24" dev "$NODE_IF"
  ip -n "$LAB_NODE_NS" addr add "$LAB_NODE_V6/64" dev "$NODE_IF" nodad
  ip -n "$LAB_RTR_NS" addr add "$LAB_RTR_V4/24" dev "$RTR_IF"
  ip -n "$LAB_RTR_NS" addr add "$LAB_RTR_V6/64" dev "$RTR_IF" nodad
  ip -n "$LAB_NODE_NS" link set "$NODE_IF" up
  ip -n "$LAB_RTR_NS" link set "$RTR_IF" up

  # kube-lb0: a dummy where the kernel has the driver, else an ifb (no dummy module on
  # some CI kernels). Both carry addresses and give FRR/BIRD connected routes; an ifb
  # must be set up explicitly like a dummy.
  if ip -n "$LAB_NODE_NS" link add "$LB_IF" type dummy 2>/dev/null; then
    LAB_LB_IF_KIND=dummy
  elif ip -n "$LAB_NODE_NS" link add "$LB_IF" type ifb 2>/dev/null; then
    LAB_LB_IF_KIND=ifb
  else
    die "cannot create $LB_IF: neither the dummy nor the ifb driver is available"
  fi
  ip -n "$LAB_NODE_NS" link set "$LB_IF" up
}

# ---------------------------------------------------------------- FRR configs
# The shared fast-convergence pieces (frr_bgp_conf, frr_ospf_iface, frr_ospf_routers)
# are in lib.sh. The node's base config is what a network team would hand to routelb:
# the protocol and the adjacency, and no redistribution of its own.

# $1 = node|rtr
frr_conf() {
  local side=$1 me_v4 peer_v4 peer_v6 me_as peer_as ifname sysid host
  if [ "$side" = node ]; then
    me_v4=$LAB_NODE_V4 peer_v4=$LAB_RTR_V4 peer_v6=$LAB_RTR_V6
    me_as=$NODE_AS peer_as=$RTR_AS ifname=$NODE_IF sysid=0000.0000.0002 host=$LAB_NODE_FRR
  else
    me_v4=$LAB_RTR_V4 peer_v4=$LAB_NODE_V4 peer_v6=$LAB_NODE_V6
    me_as=$RTR_AS peer_as=$NODE_AS ifname=$RTR_IF sysid=0000.0000.0001 host=$LAB_RTR_FRR
  fi
  local custom=${LAB_RTR_CONF_SRC:-}
  [ "$side" = node ] && custom=${LAB_NODE_CONF_SRC:-}
  if [ -n "$custom" ]; then
    custom_conf "$custom" "$host"
    return
  fi
  frr_conf_header "$host"
  case $LAB_PROTO in
  bgp) frr_bgp_conf "$me_as" "$me_v4" "$peer_as" "$peer_v4" "$peer_v6" ;;
  ospf)
    frr_ospf_iface "$ifname" point-to-point
    frr_ospf_routers "$me_v4"
    ;;
  isis)
    # Level-2-only, wide metrics, single topology (IPv4 + IPv6 reachability in one LSP).
    cat <<EOC
interface $ifname
 ip router isis $ISIS_TAG
 ipv6 router isis $ISIS_TAG
 isis network point-to-point
 isis hello-interval 1
 isis hello-multiplier 3
exit
!
router isis $ISIS_TAG
 is-type level-2-only
 net 49.0001.$sysid.00
 metric-style wide
 lsp-gen-interval 1
 spf-interval 1
 spf-delay-ietf init-delay 0 short-delay 0 long-delay 100 holddown 100 time-to-learn 100
exit
!
EOC
    ;;
  rip)
    cat <<EOC
router rip
 version 2
 network $ifname
 timers basic 5 15 10
exit
!
router ripng
 network $ifname
 timers basic 5 15 10
exit
!
EOC
    ;;
  esac
}

# The FRR daemons both sides run: the protocol's, or --daemons.
frr_daemons() {
  if [ -n "${LAB_FRR_DAEMONS:-}" ]; then echo "$LAB_FRR_DAEMONS"; else frr_daemons_for "$LAB_PROTO"; fi
}

# Start one FRR instance: $1 = namespace, $2 = pathspace, $3 = node|rtr.
start_frr() {
  local ns=$1 ps=$2 side=$3
  mkdir -p "$LAB_DIR/frr/$ps"
  frr_conf "$side" >"$LAB_DIR/frr/$ps/frr.conf"
  # shellcheck disable=SC2046 # one daemon per word
  frr_start "$ns" "$ps" "$LAB_DIR/frr" $(frr_daemons)
}

# ---------------------------------------------------------------- BIRD configs

# A base configuration given with --node-conf/--router-conf, with the lab's values in it.
custom_conf() {
  local src=$1 host=$2
  sed -e "s|@NODE_V4@|$LAB_NODE_V4|g" -e "s|@RTR_V4@|$LAB_RTR_V4|g" \
    -e "s|@NODE_V6@|$LAB_NODE_V6|g" -e "s|@RTR_V6@|$LAB_RTR_V6|g" \
    -e "s|@NODE_AS@|$NODE_AS|g" -e "s|@RTR_AS@|$RTR_AS|g" \
    -e "s|@NODE_IF@|$NODE_IF|g" -e "s|@RTR_IF@|$RTR_IF|g" -e "s|@LB_IF@|$LB_IF|g" \
    -e "s|@HOSTNAME@|$host|g" -e "s|@BIRD_INCLUDE@|${LAB_BIRD_INCLUDE:-}|g" \
    -e "s|@BIRD6_INCLUDE@|${LAB_BIRD6_INCLUDE:-}|g" -e "s|@BIRD6_LOG@|$LAB_DIR/bird/bird6.log|g" \
    -e "s|@BIRD_LOG@|$LAB_DIR/bird/bird.log|g" "$src"
}

bird_conf() {
  if [ -n "${LAB_NODE_CONF_SRC:-}" ]; then
    custom_conf "$LAB_NODE_CONF_SRC" "$LAB_NAME-node"
    return
  fi
  bird_conf_base "$LAB_DIR/bird/bird.log" "$LAB_NODE_V4" "$LAB_BIRD_INCLUDE"
  case $LAB_PROTO in
  bgp) bird_bgp_block "$NODE_AS" "$RTR_AS" "$LAB_NODE_V4" "$LAB_RTR_V4" "$LAB_NODE_V6" "$LAB_RTR_V6" ;;
  ospf) bird_ospf_block "$NODE_IF" "type ptp; hello 1; dead 3;" ;;
  rip)
    cat <<EOC
protocol rip rip4 {
  ipv4 { import all; export where routelb_export_rip(); };
  interface "$NODE_IF" { update time 5; timeout time 15; garbage time 10; };
}

# RIPng runs over the interface's IPv6 link-local address.
protocol rip ng rip6 {
  ipv6 { import all; export where routelb_export_rip(); };
  interface "$NODE_IF" { update time 5; timeout time 15; garbage time 10; };
}
EOC
    ;;
  esac
}

start_bird() {
  mkdir -p "$LAB_DIR/bird"
  if [ "$LAB_NODE_KIND" = bird1 ]; then
    start_bird1
    return
  fi
  bird_include_initial >"$LAB_BIRD_INCLUDE"
  bird_conf >"$LAB_BIRD_CONF"
  bird_start "$LAB_NODE_NS" "$LAB_BIRD_CONF" "$LAB_BIRD_SOCKET" "$LAB_BIRD_PID"
}

# BIRD 1.6: bird (IPv4 session) and bird6 (IPv6 session), each with its config and include.
start_bird1() {
  bird1_include_initial >"$LAB_BIRD_INCLUDE"
  bird1_include_initial >"$LAB_BIRD6_INCLUDE"
  if [ -n "${LAB_NODE_CONF_SRC:-}" ]; then
    custom_conf "$LAB_NODE_CONF_SRC" "$LAB_NAME-node" >"$LAB_BIRD_CONF"
  else
    bird1_bgp_conf "$LAB_DIR/bird/bird.log" "$LAB_NODE_V4" "$LAB_BIRD_INCLUDE" "$NODE_AS" "$RTR_AS" \
      "$LAB_NODE_V4" "$LAB_RTR_V4" >"$LAB_BIRD_CONF"
  fi
  if [ -n "${LAB_NODE6_CONF_SRC:-}" ]; then
    custom_conf "$LAB_NODE6_CONF_SRC" "$LAB_NAME-node" >"$LAB_BIRD6_CONF"
  else
    bird1_bgp_conf "$LAB_DIR/bird/bird6.log" "$LAB_NODE_V4" "$LAB_BIRD6_INCLUDE" "$NODE_AS" "$RTR_AS" \
      "$LAB_NODE_V6" "$LAB_RTR_V6" >"$LAB_BIRD6_CONF"
  fi
  bird_start "$LAB_NODE_NS" "$LAB_BIRD_CONF" "$LAB_BIRD_SOCKET" "$LAB_BIRD_PID" "$LAB_BIRD1_SBIN/bird"
  bird_start "$LAB_NODE_NS" "$LAB_BIRD6_CONF" "$LAB_BIRD6_SOCKET" "$LAB_BIRD6_PID" "$LAB_BIRD1_SBIN/bird6"
}

# ---------------------------------------------------------------- readiness

# True when the protocol is up between node and router (checked on the router, which is
# always FRR, so the same checks serve both node kinds).
proto_ready() {
  local out
  case $LAB_PROTO in
  bgp)
    if [ -n "${LAB_RTR_CONF_SRC:-}" ]; then
      out=$(frr_vtysh "$LAB_RTR_FRR" -c "show bgp vrf all neighbors json" 2>/dev/null) || return 1
      [ "$(grep -o '"bgpState":"Established"' <<<"$out" | wc -l)" -ge "${LAB_READY_SESSIONS:-2}" ]
      return
    fi
    out=$(frr_vtysh "$LAB_RTR_FRR" -c "show bgp neighbors $LAB_NODE_V4 json" \
      -c "show bgp neighbors $LAB_NODE_V6 json" 2>/dev/null) || return 1
    [ "$(grep -o '"bgpState":"Established"' <<<"$out" | wc -l)" -eq 2 ]
    ;;
  ospf)
    # Full adjacencies are not enough: the router can only use the node's external LSAs
    # once the node's router-LSA lists the link back to it. BIRD re-originates that LSA
    # at most every 5 s (MinLSInterval, not configurable), so a BIRD node needs ~5 s more.
    out=$(frr_vtysh "$LAB_RTR_FRR" -c "show ip ospf neighbor" 2>/dev/null) || return 1
    grep -q "Full" <<<"$out" || return 1
    out=$(frr_vtysh "$LAB_RTR_FRR" -c "show ipv6 ospf6 neighbor" 2>/dev/null) || return 1
    grep -q "Full" <<<"$out" || return 1
    out=$(frr_vtysh "$LAB_RTR_FRR" -c "show ip ospf database router $LAB_NODE_V4" 2>/dev/null) || return 1
    grep -q "another Router" <<<"$out" || return 1
    out=$(frr_vtysh "$LAB_RTR_FRR" \
      -c "show ipv6 ospf6 database router adv-router $LAB_NODE_V4 detail" 2>/dev/null) || return 1
    grep -q "Neighbor Router ID: $LAB_RTR_V4" <<<"$out"
    ;;
  isis)
    # Adjacency up and the node's LSP lists the router. The LSP ID column truncates
    # hostnames, so find the node's LSP by its "Hostname:" line.
    out=$(frr_vtysh "$LAB_RTR_FRR" -c "show isis neighbor" 2>/dev/null) || return 1
    grep -q " Up " <<<"$out" || return 1
    out=$(frr_vtysh "$LAB_RTR_FRR" -c "show isis database detail" 2>/dev/null) || return 1
    awk -v h="Hostname: $LAB_NODE_FRR" -v r="Extended Reachability: 0000.0000.0001.00" \
      'BEGIN { RS = "" } index($0, h "\n") && index($0, r) { found = 1 } END { exit !found }' <<<"$out"
    ;;
  rip)
    # RIP has no adjacency: ready once both routers run RIP/RIPng on the link.
    out=$(frr_vtysh "$LAB_RTR_FRR" -c "show ip rip status" -c "show ipv6 ripng status" 2>/dev/null) ||
      return 1
    [ "$(grep -c "^ *$RTR_IF " <<<"$out")" -ge 2 ] || return 1
    if [ "$LAB_NODE_KIND" = bird ]; then
      out=$(birdc -s "$LAB_BIRD_SOCKET" show protocols 2>/dev/null) || return 1
      [ "$(grep -cE '^rip[46] .* up ' <<<"$out")" -eq 2 ]
    else
      out=$(frr_vtysh "$LAB_NODE_FRR" -c "show ip rip status" -c "show ipv6 ripng status" 2>/dev/null) ||
        return 1
      [ "$(grep -c "^ *$NODE_IF " <<<"$out")" -ge 2 ]
    fi
    ;;
  esac
}

cmd_wait_ready() {
  local name=$1 timeout=${2:-60} t0
  load_state "$name"
  t0=$(now_us)
  until proto_ready; do
    if [ $(($(now_us) - t0)) -gt $((timeout * 1000000)) ]; then
      cmd_status "$name" >&2 || true
      die "$name: $LAB_PROTO not ready after ${timeout}s"
    fi
    sleep 0.2
  done
  log "$name: $LAB_PROTO ready after $((($(now_us) - t0) / 1000)) ms"
}

# ---------------------------------------------------------------- health

lab_pids() { # prints "pid" lines of the lab's daemons
  local f
  for f in "$FRR_RUN/$LAB_RTR_FRR"/*.pid ${LAB_NODE_FRR:+"$FRR_RUN/$LAB_NODE_FRR"/*.pid} \
    ${LAB_BIRD_PID:+"$LAB_BIRD_PID"} ${LAB_BIRD6_PID:+"$LAB_BIRD6_PID"}; do
    [ -r "$f" ] && cat "$f"
  done
  return 0
}

lab_healthy() {
  local n=0 want pid
  ip netns pids "$LAB_NODE_NS" >/dev/null 2>&1 || return 1
  ip netns pids "$LAB_RTR_NS" >/dev/null 2>&1 || return 1
  want=$(wc -w <<<"$(frr_daemons)")
  case $LAB_NODE_KIND in
  frr) want=$((want * 2)) ;;
  bird1) want=$((want + 2)) ;;
  *) want=$((want + 1)) ;;
  esac
  for pid in $(lab_pids); do
    kill -0 "$pid" 2>/dev/null || return 1
    n=$((n + 1))
  done
  [ "$n" -eq "$want" ]
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local name="" node="" router=frr proto="" index="" fresh=0 wait=1 timeout=60
  local node_conf="" node6_conf="" router_conf="" ready_sessions=2 daemons=""
  while [ $# -gt 0 ]; do
    case $1 in
    --node) node=${2:?}; shift 2 ;;
    --router) router=${2:?}; shift 2 ;;
    --proto) proto=${2:?}; shift 2 ;;
    --index) index=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --no-wait) wait=0; shift ;;
    --node-conf) node_conf=$(realpath "${2:?}"); shift 2 ;;
    --node6-conf) node6_conf=$(realpath "${2:?}"); shift 2 ;;
    --router-conf) router_conf=$(realpath "${2:?}"); shift 2 ;;
    --ready-sessions) ready_sessions=${2:?}; shift 2 ;;
    --daemons) daemons=${2:?}; shift 2 ;;
    -*) die "up: unknown option $1" ;;
    *) [ -z "$name" ] || die "up: extra argument $1"; name=$1; shift ;;
    esac
  done
  [ -n "$name" ] || die "up: NAME required"
  check_name "$name"
  case $node in frr | bird | bird1) ;; *) die "up: --node frr|bird|bird1 required" ;; esac
  if [ "$node" = bird1 ] && [ "$proto" != bgp ]; then
    die "up: --node bird1 runs --proto bgp only"
  fi
  [ "$router" = frr ] || die "up: only --router frr is supported (the router side is always FRR)"
  case $proto in bgp | ospf | isis | rip) ;; *) die "up: --proto bgp|ospf|isis|rip required" ;; esac
  if [ "$node" = bird ] && [ "$proto" = isis ]; then
    die "up: BIRD has no IS-IS implementation; use --node frr for --proto isis"
  fi
  require_frr
  [ "$node" = bird ] && require_bird
  [ "$node" = bird1 ] && bird1_fetch
  # cluster.sh names its router namespace and FRR pathspace NAME-rtr as well.
  [ ! -e "$CLUSTER_ROOT/$name/state" ] || die "up: '$name' is a cluster.sh cluster; pick another name"

  mkdir -p "$LAB_ROOT"
  # Serialise creation so parallel `up`s pick distinct indexes.
  exec 9>"$LAB_ROOT/.lock"
  flock 9

  # Idempotence: an existing healthy lab with the same shape is reused as it is.
  if [ -r "$(lab_dir "$name")/state" ]; then
    (
      load_state "$name"
      [ "$fresh" = 0 ] && [ "$LAB_NODE_KIND" = "$node" ] && [ "$LAB_PROTO" = "$proto" ] &&
        [ "${LAB_NODE_CONF_SRC:-}" = "$node_conf" ] && [ "${LAB_RTR_CONF_SRC:-}" = "$router_conf" ] &&
        [ "${LAB_NODE6_CONF_SRC:-}" = "$node6_conf" ] &&
        [ "${LAB_FRR_DAEMONS:-}" = "$daemons" ] &&
        { [ -z "$index" ] || [ "$LAB_INDEX" = "$index" ]; } && lab_healthy
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
  # Stale pieces with this lab's names (e.g. its dir was removed by hand).
  ip netns del "$name-node" 2>/dev/null || true
  ip netns del "$name-rtr" 2>/dev/null || true

  local x t0
  t0=$(now_us)
  x=$(pick_index "$LAB_ROOT" LAB_INDEX "$name" "$index")
  LAB_NAME=$name LAB_INDEX=$x LAB_DIR=$(lab_dir "$name")
  LAB_NODE_KIND=$node LAB_ROUTER_KIND=$router LAB_PROTO=$proto
  LAB_NODE_NS="$name-node" LAB_RTR_NS="$name-rtr"
  LAB_NODE_IF=$NODE_IF LAB_RTR_IF=$RTR_IF LAB_LB_IF=$LB_IF
  LAB_NODE_V4="172.30.$x.2" LAB_RTR_V4="172.30.$x.1"
  LAB_NODE_V6="fd00:30:$x::2" LAB_RTR_V6="fd00:30:$x::1"
  LAB_NODE_AS=$NODE_AS LAB_RTR_AS=$RTR_AS
  LAB_ISIS_TAG=""
  [ "$proto" = isis ] && LAB_ISIS_TAG=$ISIS_TAG
  LAB_FRR_BINDIR="$LAB_DIR/bin/frr"
  LAB_RTR_FRR="$name-rtr" LAB_RTR_FRR_CONFDIR="$LAB_DIR/frr"
  LAB_RTR_FRR_CONF="$LAB_DIR/frr/$name-rtr/frr.conf" LAB_RTR_VTYSH="$LAB_DIR/bin/vtysh-rtr"
  LAB_NODE_FRR="" LAB_NODE_FRR_CONFDIR="" LAB_NODE_FRR_CONF="" LAB_NODE_VTYSH=""
  LAB_BIRD_SOCKET="" LAB_BIRD_CONF="" LAB_BIRD_INCLUDE="" LAB_BIRD_PID="" LAB_BIRDC=""
  LAB_BIRD6_SOCKET="" LAB_BIRD6_CONF="" LAB_BIRD6_INCLUDE="" LAB_BIRD6_PID="" LAB_BIRDC6=""
  LAB_BIRD1_SBIN=""
  if [ "$node" = frr ]; then
    LAB_NODE_FRR="$name-node" LAB_NODE_FRR_CONFDIR="$LAB_DIR/frr"
    LAB_NODE_FRR_CONF="$LAB_DIR/frr/$name-node/frr.conf" LAB_NODE_VTYSH="$LAB_DIR/bin/vtysh-node"
  else
    LAB_BIRD_SOCKET="$LAB_DIR/bird/bird.ctl" LAB_BIRD_CONF="$LAB_DIR/bird/bird.conf"
    LAB_BIRD_INCLUDE="$LAB_DIR/bird/routelb.conf" LAB_BIRD_PID="$LAB_DIR/bird/bird.pid"
    LAB_BIRDC="$LAB_DIR/bin/birdc"
  fi
  if [ "$node" = bird1 ]; then
    LAB_BIRD6_SOCKET="$LAB_DIR/bird/bird6.ctl" LAB_BIRD6_CONF="$LAB_DIR/bird/bird6.conf"
    LAB_BIRD6_INCLUDE="$LAB_DIR/bird/routelb6.conf" LAB_BIRD6_PID="$LAB_DIR/bird/bird6.pid"
    LAB_BIRDC6="$LAB_DIR/bin/birdc6" LAB_BIRD1_SBIN=$BIRD1_SBIN
  fi
  LAB_LB_IF_KIND=""
  LAB_NODE_CONF_SRC=$node_conf LAB_RTR_CONF_SRC=$router_conf LAB_READY_SESSIONS=$ready_sessions
  LAB_NODE6_CONF_SRC=$node6_conf
  LAB_FRR_DAEMONS=$daemons

  rm -rf "$LAB_DIR"
  mkdir -p "$LAB_DIR/bin" "$LAB_DIR/frr"
  chmod 0755 "$LAB_DIR" "$LAB_DIR/frr"
  # The state file exists from here on, so `down` can clean up a half-built lab.
  print_env >"$LAB_DIR/state"

  # From here on a failure tears the half-built lab down again.
  trap 'log "$LAB_NAME: up failed, cleaning up"; down_one "$LAB_NAME" || true' EXIT
  make_net
  print_env >"$LAB_DIR/state"

  start_frr "$LAB_RTR_NS" "$LAB_RTR_FRR" rtr
  if [ "$node" = frr ]; then
    start_frr "$LAB_NODE_NS" "$LAB_NODE_FRR" node
  else
    start_bird
  fi
  write_wrappers
  trap - EXIT
  flock -u 9
  log "$name: $node/$proto lab started in $((($(now_us) - t0) / 1000)) ms (index $x)"
  [ "$wait" = 1 ] && cmd_wait_ready "$name" "$timeout"
  print_env
}

# Small executables a test can hand to routelb as its vtysh/birdc command.
write_wrappers() {
  write_vtysh_wrapper "$LAB_DIR/bin/vtysh-rtr" "$LAB_DIR/frr" "$LAB_RTR_FRR" "lab $LAB_NAME's router FRR"
  if [ -n "$LAB_NODE_FRR" ]; then
    write_vtysh_wrapper "$LAB_DIR/bin/vtysh-node" "$LAB_DIR/frr" "$LAB_NODE_FRR" "lab $LAB_NAME's node FRR"
  fi
  write_vtysh_dropin "$LAB_FRR_BINDIR"
  if [ -n "$LAB_BIRDC6" ]; then
    write_birdc_wrapper "$LAB_BIRDC" "$LAB_BIRD_SOCKET" "lab $LAB_NAME's node bird (1.6)" "$LAB_BIRD1_SBIN/birdc"
    write_birdc_wrapper "$LAB_BIRDC6" "$LAB_BIRD6_SOCKET" "lab $LAB_NAME's node bird6 (1.6)" "$LAB_BIRD1_SBIN/birdc6"
  elif [ -n "$LAB_BIRDC" ]; then
    write_birdc_wrapper "$LAB_BIRDC" "$LAB_BIRD_SOCKET" "lab $LAB_NAME's node BIRD"
  fi
}

# Tear one lab down: daemons (by pid file, checked to live in the lab's namespace), any
# other process left in its namespaces, the namespaces, FRR run dirs/symlinks, the lab dir.
down_one() {
  local name=$1 ns pids
  (
    load_state "$name"
    pids=$(lab_pids)
    for ns in "$LAB_NODE_NS" "$LAB_RTR_NS"; do
      # shellcheck disable=SC2086 # one pid per word
      kill_pids_in_ns "$ns" $pids
    done
    for ns in "$LAB_NODE_NS" "$LAB_RTR_NS"; do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] || log "$name: stopping leftover pid(s) ${pids//$'\n'/ } in $ns"
      kill_all_in_ns "$ns"
      ip netns del "$ns" 2>/dev/null || true
    done
    frr_forget "$LAB_RTR_FRR" ${LAB_NODE_FRR:+"$LAB_NODE_FRR"}
  )
  rm -rf "$(lab_dir "$name")"
}

cmd_down() {
  local name=${1:?down: NAME required}
  check_name "$name"
  if [ -r "$(lab_dir "$name")/state" ]; then
    down_one "$name"
    log "$name: down"
  else
    # Nothing recorded; still remove namespaces of that name if they linger (but not
    # those of a cluster.sh cluster of the same name).
    ip netns del "$name-node" 2>/dev/null || true
    [ -e "$CLUSTER_ROOT/$name/state" ] || ip netns del "$name-rtr" 2>/dev/null || true
    log "$name: not running"
  fi
}

cmd_down_all() {
  local f n=0
  for f in "$LAB_ROOT"/*/state; do
    [ -r "$f" ] || continue
    down_one "$(basename "$(dirname "$f")")"
    n=$((n + 1))
  done
  # Dangling /etc/frr symlinks into the lab root (from a lab dir removed by hand).
  frr_forget_dangling "$LAB_ROOT"
  log "down-all: $n lab(s) removed"
}

cmd_wait_route() {
  local name="" prefix="" want=present timeout=30 since="" pos=() t0
  while [ $# -gt 0 ]; do
    case $1 in
    --since) since=${2:?}; shift 2 ;;
    *) pos+=("$1"); shift ;;
    esac
  done
  name=${pos[0]:-} prefix=${pos[1]:-}
  if [ -z "$name" ] || [ -z "$prefix" ]; then
    die "wait-route NAME PREFIX [present|absent] [timeout_s] [--since EPOCHREALTIME]"
  fi
  [ -n "${pos[2]:-}" ] && want=${pos[2]}
  [ -n "${pos[3]:-}" ] && timeout=${pos[3]}
  case $want in present | absent) ;; *) die "wait-route: want present|absent, got $want" ;; esac
  load_state "$name"
  # --since takes a bash $EPOCHREALTIME value (seconds.micro) taken before the change.
  if [ -n "$since" ]; then t0=${since/./}; else t0=$(now_us); fi
  route_wait "$name" "$LAB_RTR_NS" "$prefix" "$want" "$timeout" "$t0"
}

cmd_vtysh() {
  local name=${1:?vtysh NAME node|rtr ARGS...} side=${2:?vtysh NAME node|rtr ARGS...}
  shift 2
  load_state "$name"
  case $side in
  node) [ -n "$LAB_NODE_FRR" ] || die "$name: the node runs BIRD, not FRR"; frr_vtysh "$LAB_NODE_FRR" "$@" ;;
  rtr | router) frr_vtysh "$LAB_RTR_FRR" "$@" ;;
  *) die "vtysh: side must be node or rtr" ;;
  esac
}

# The lab NAME's node FRR daemon DAEMON: sets d and loads the lab's state.
node_daemon_args() { # CMD NAME DAEMON
  if [ -z "${2:-}" ] || [ -z "${3:-}" ]; then die "$1 NAME DAEMON"; fi
  load_state "$2"
  [ -n "$LAB_NODE_FRR" ] || die "$2: the node runs BIRD, not FRR"
  d=$3
}

# kill -9 the node's daemon $d and wait for it; its vty socket file stays, as FRR leaves it.
kill_node_daemon() {
  local pid
  pid=$(cat "$FRR_RUN/$LAB_NODE_FRR/$d.pid") || die "$LAB_NAME: no $d running"
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$FRR_RUN/$LAB_NODE_FRR/$d.pid"
}

start_node_daemon() {
  frr_start_daemon "$LAB_NODE_NS" "$LAB_NODE_FRR" "$LAB_DIR/frr/$LAB_NODE_FRR" "$d"
}

cmd_restart_daemon() {
  local d
  node_daemon_args restart-daemon "$@"
  kill_node_daemon
  rm -f "$FRR_RUN/$LAB_NODE_FRR/$d.vty"
  start_node_daemon
  frr_load_config "$LAB_DIR/frr" "$LAB_NODE_FRR" "$d"
}

cmd_stop_daemon() {
  local d
  node_daemon_args stop-daemon "$@"
  kill_node_daemon
}

cmd_start_daemon() {
  local d
  node_daemon_args start-daemon "$@"
  [ ! -e "$FRR_RUN/$LAB_NODE_FRR/$d.pid" ] || die "$LAB_NAME: $d already runs"
  start_node_daemon
}

cmd_birdc() {
  local name=${1:?birdc NAME ARGS...}
  shift
  load_state "$name"
  [ -n "$LAB_BIRD_SOCKET" ] || die "$name: the node runs FRR, not BIRD"
  "$LAB_BIRDC" "$@"
}

cmd_birdc6() {
  local name=${1:?birdc6 NAME ARGS...}
  shift
  load_state "$name"
  [ -n "${LAB_BIRD6_SOCKET:-}" ] || die "$name: the node runs no bird6 (--node bird1)"
  "$LAB_BIRDC6" "$@"
}

cmd_env() {
  load_state "${1:?env NAME}"
  print_env
}

cmd_status() {
  load_state "${1:?status NAME}"
  echo "== $LAB_NAME: node=$LAB_NODE_KIND proto=$LAB_PROTO index=$LAB_INDEX healthy=$(lab_healthy && echo yes || echo no)"
  local c=()
  case $LAB_PROTO in
  bgp) c=(-c "show bgp summary") ;;
  ospf) c=(-c "show ip ospf neighbor" -c "show ipv6 ospf6 neighbor") ;;
  isis) c=(-c "show isis neighbor") ;;
  rip) c=(-c "show ip rip" -c "show ipv6 ripng") ;;
  esac
  echo "-- router ($LAB_RTR_FRR)"
  frr_vtysh "$LAB_RTR_FRR" "${c[@]}" || true
  echo "-- node"
  if [ "$LAB_NODE_KIND" = frr ]; then
    frr_vtysh "$LAB_NODE_FRR" "${c[@]}" || true
  else
    "$LAB_BIRDC" show protocols || true
    [ -z "${LAB_BIRDC6:-}" ] || "$LAB_BIRDC6" show protocols || true
  fi
  echo "-- router kernel routes"
  ip -n "$LAB_RTR_NS" -4 route show || true
  ip -n "$LAB_RTR_NS" -6 route show || true
}

cmd_list() {
  local f
  for f in "$LAB_ROOT"/*/state; do
    [ -r "$f" ] || continue
    (
      # shellcheck disable=SC1090
      . "$f"
      printf '%s\tnode=%s\tproto=%s\tindex=%s\n' "$LAB_NAME" "$LAB_NODE_KIND" "$LAB_PROTO" "$LAB_INDEX"
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
  vtysh) cmd_vtysh "$@" ;;
  birdc) cmd_birdc "$@" ;;
  birdc6) cmd_birdc6 "$@" ;;
  restart-daemon) cmd_restart_daemon "$@" ;;
  start-daemon) cmd_start_daemon "$@" ;;
  stop-daemon) cmd_stop_daemon "$@" ;;
  env) cmd_env "$@" ;;
  status) cmd_status "$@" ;;
  list) cmd_list ;;
  *) die "unknown command '$cmd' (see --help)" ;;
  esac
}

main "$@"
