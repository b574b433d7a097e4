#!/usr/bin/env bash
# routelb routing lab: a Kubernetes "node" and its upstream "router", each in its own
# network namespace, joined by a veth, running real routing daemons (FRR or BIRD on the
# node, always FRR on the router). routelb's integration tests drive the node's daemon
# the way routelb does in production (vtysh / birdc + include file) and check the result
# in the router namespace's kernel routing table.
#
#   bash integration/lab/lab.sh up NAME --node frr|bird --proto bgp|ospf|isis|rip [--router frr]
#                                       [--index N] [--fresh] [--no-wait] [--timeout S]
#   bash integration/lab/lab.sh down NAME
#   bash integration/lab/lab.sh down-all
#   bash integration/lab/lab.sh wait-ready NAME [timeout_s]
#   bash integration/lab/lab.sh wait-route NAME PREFIX [present|absent] [timeout_s] [--since EPOCH]
#   bash integration/lab/lab.sh vtysh NAME node|rtr VTYSH-ARGS...
#   bash integration/lab/lab.sh birdc NAME BIRDC-ARGS...
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
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
FRR_BIN="${ROUTELB_LAB_FRR_BIN:-/usr/lib/frr}"
FRR_RUN="/var/run/frr"
FRR_ETC="/etc/frr"

NODE_AS=64512
RTR_AS=64500
NODE_IF="eth-rtr"   # the node's veth end (it faces the router)
RTR_IF="eth-node"   # the router's veth end (it faces the node)
LB_IF="kube-lb0"    # where routelb puts service addresses
ISIS_TAG="LAB"

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$SELF" | sed -e '/^set -euo/d' -e '/shellcheck\|LAB_\* variables/d' \
    -e 's/^# \{0,1\}//' >&2
  exit 2
}

# Milliseconds / microseconds since the epoch without forking (bash >= 5).
now_us() { local t=${EPOCHREALTIME/./}; echo "${t}"; }

check_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9-]{0,19}$ ]] ||
    die "bad lab name '$1': use 1-20 chars of [a-z0-9-], starting with a letter or digit"
}

require_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

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
    LAB_BIRD_SOCKET LAB_BIRD_CONF LAB_BIRD_INCLUDE LAB_BIRD_PID LAB_BIRDC; do
    if [ -n "${!v:-}" ]; then
      printf '%s=%q\n' "$v" "${!v}"
    fi
  done
}

# ---------------------------------------------------------------- process helpers

# Run a command in namespace $1 with its own UTS namespace whose hostname is $2.
# FRR started with -N takes its hostname from uname(); without a per-instance hostname
# every `show running-config` (and so frr-reload.py) sees a hostname diff.
ns_uts_exec() {
  local ns=$1 host=$2
  shift 2
  # shellcheck disable=SC2016 # expanded by the inner sh
  ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
}

# vtysh for FRR instance (pathspace) $1, under the same hostname as its daemons.
frr_vtysh() {
  local ps=$1
  shift
  # shellcheck disable=SC2016 # expanded by the inner sh
  unshare --uts sh -c 'ps=$0 dir=$1; shift; hostname "$ps" && exec vtysh --config_dir "$dir" -N "$ps" "$@"' \
    "$ps" "$LAB_DIR/frr" "$@"
}

# Kill pid $1 if it is alive and lives in namespace $2 (guards against pid reuse).
kill_in_ns() {
  local pid=$1 ns=$2 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  [ "$(ip netns identify "$pid" 2>/dev/null)" = "$ns" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid ($ns) ignored SIGTERM for 5 s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

wait_for_path() { # PATH TIMEOUT_S WHAT
  local p=$1 deadline=$(($(date +%s) + $2))
  until [ -e "$p" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out waiting for $3 ($p)"
    sleep 0.05
  done
}

# ---------------------------------------------------------------- network

# Pick the lab's subnet index X (172.30.X.0/24, fd00:30:X::/64): a hash of the name,
# moved on to the next free value if another lab already holds it. Labs never see each
# other (separate namespaces), so this only keeps addresses distinct in logs/diagnostics.
pick_index() {
  local name=$1 want=${2:-} x used i
  used=" "
  for f in "$LAB_ROOT"/*/state; do
    [ -r "$f" ] || continue
    [ "$(basename "$(dirname "$f")")" = "$name" ] && continue
    used+="$(sed -n 's/^LAB_INDEX=//p' "$f") "
  done
  if [ -n "$want" ]; then
    if ! [[ "$want" =~ ^[0-9]+$ ]] || [ "$want" -lt 1 ] || [ "$want" -gt 254 ]; then
      die "--index must be 1..254"
    fi
    [[ "$used" != *" $want "* ]] || die "index $want is used by another lab"
    echo "$want"
    return
  fi
  x=$(($(printf '%s' "$name" | cksum | cut -d' ' -f1) % 250 + 1))
  for i in $(seq 0 253); do
    local c=$(((x - 1 + i) % 254 + 1))
    if [[ "$used" != *" $c "* ]]; then
      echo "$c"
      return
    fi
  done
  die "no free lab index"
}

# Create both namespaces, the veth between them and kube-lb0 on the node.
make_net() {
  local ns
  for ns in "$LAB_NODE_NS" "$LAB_RTR_NS"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # No IPv6 DAD in the lab: the veth's link-local and global addresses are usable at
    # once instead of "tentative" for ~1-2 s (OSPFv3, RIPng and the IPv6 BGP session need
    # them). kube-lb0 (dummy/ifb) is NOARP, so the kernel skips DAD there anyway. Set on
    # "default" before any interface exists so that all of them inherit it.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
      net.ipv6.conf.all.dad_transmits=0 net.ipv6.conf.default.dad_transmits=0
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  done
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
# Shared fast-convergence settings. The node's base config is what a network team would
# hand to routelb: the protocol and the adjacency, and no redistribution of its own.
# routelb adds ROUTELB-* prefix-lists/route-maps and `redistribute connected route-map
# ROUTELB-...` inside these router contexts at run time.

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
  cat <<EOF
frr defaults traditional
hostname $host
service integrated-vtysh-config
!
EOF
  case $LAB_PROTO in
  bgp)
    # Two eBGP sessions: IPv4 unicast over the IPv4 session, IPv6 unicast over the IPv6
    # session (no extended next hop needed). route-map delay-timer 1: bgpd otherwise holds
    # route-map changes (and so routelb's new redistribute) for 5 s; 0 would disable
    # route-map change processing altogether. ebgp-requires-policy is off: with FRR's
    # default (on) nothing is sent to an eBGP peer without an outbound policy.
    cat <<EOF
bgp route-map delay-timer 1
!
router bgp $me_as
 bgp router-id $me_v4
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp log-neighbor-changes
 coalesce-time 100
 timers bgp 3 9
 neighbor $peer_v4 remote-as $peer_as
 neighbor $peer_v4 timers connect 1
 neighbor $peer_v4 advertisement-interval 0
 neighbor $peer_v6 remote-as $peer_as
 neighbor $peer_v6 timers connect 1
 neighbor $peer_v6 advertisement-interval 0
 !
 address-family ipv4 unicast
  neighbor $peer_v4 activate
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor $peer_v6 activate
 exit-address-family
exit
!
EOF
    ;;
  ospf)
    cat <<EOF
interface $ifname
 ip ospf area 0
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 3
 ipv6 ospf6 area 0
 ipv6 ospf6 network point-to-point
 ipv6 ospf6 hello-interval 1
 ipv6 ospf6 dead-interval 3
exit
!
router ospf
 ospf router-id $me_v4
 timers throttle spf 0 50 1000
 timers throttle lsa all 0
 timers lsa min-arrival 0
exit
!
router ospf6
 ospf6 router-id $me_v4
 timers throttle spf 0 50 1000
 timers lsa min-arrival 0
exit
!
EOF
    ;;
  isis)
    # Level-2-only, wide metrics, single topology (IPv4 + IPv6 reachability in one LSP).
    cat <<EOF
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
EOF
    ;;
  rip)
    cat <<EOF
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
EOF
    ;;
  esac
}

frr_daemons() {
  case $LAB_PROTO in
  bgp) echo "zebra bgpd" ;;
  ospf) echo "zebra ospfd ospf6d" ;;
  isis) echo "zebra isisd" ;;
  rip) echo "zebra ripd ripngd" ;;
  esac
}

# Start one FRR instance: $1 = namespace, $2 = pathspace.
# Layout: configs in LAB_DIR/frr/<ps>/ (frr.conf + vtysh.conf); /etc/frr/<ps> is a
# symlink to it so that plain `vtysh -N <ps>` (write memory, -b) and
# `frr-reload.py -N <ps>` find it too; sockets and pid files in /var/run/frr/<ps>/.
start_frr() {
  local ns=$1 ps=$2 side=$3 d cdir="$LAB_DIR/frr/$2" out
  mkdir -p "$cdir"
  frr_conf "$side" >"$cdir/frr.conf"
  printf 'service integrated-vtysh-config\n' >"$cdir/vtysh.conf"
  chown -R frr:frr "$cdir"
  chmod 0750 "$cdir"
  if [ -e "$FRR_ETC/$ps" ] && [ ! -L "$FRR_ETC/$ps" ]; then
    die "$FRR_ETC/$ps exists and is not a lab symlink; refusing to touch it"
  fi
  ln -sfn "$cdir" "$FRR_ETC/$ps"
  install -d -o frr -g frr -m 0755 "$FRR_RUN"
  rm -rf "${FRR_RUN:?}/$ps"
  install -d -o frr -g frr -m 0755 "$FRR_RUN/$ps"
  for d in $(frr_daemons); do
    local extra=()
    [ "$d" = zebra ] && extra=(-s 90000000) # netlink receive buffer
    # -P 0: no TCP vty listener. The config comes from vtysh -b below, so the daemons
    # start with no config file of their own (-f /dev/null).
    # Startup chatter (e.g. zebra's "Disabling MPLS support") goes to startup.err.
    if ! ns_uts_exec "$ns" "$ps" "$FRR_BIN/$d" -d -N "$ps" -P 0 -f /dev/null \
      --log "file:$cdir/frr.log" --log-level informational "${extra[@]}" 2>>"$cdir/startup.err"; then
      cat "$cdir/startup.err" >&2
      die "$ps: $d failed to start"
    fi
    wait_for_path "$FRR_RUN/$ps/$d.vty" 10 "$ps $d"
    [ "$d" = zebra ] && wait_for_path "$FRR_RUN/$ps/zserv.api" 10 "$ps zebra API socket"
  done
  # Apply frr.conf through vtysh, as frrinit.sh does with integrated config.
  if ! out=$(frr_vtysh "$ps" -b 2>&1); then
    printf '%s\n' "$out" >&2
    die "vtysh -b failed for $ps"
  fi
  if grep -qiE 'unknown command|error|warning: ' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "frr.conf of $ps did not apply cleanly"
  fi
}

# ---------------------------------------------------------------- BIRD configs

bird_conf() {
  local proto_block
  case $LAB_PROTO in
  bgp)
    proto_block=$(
      cat <<EOF
# IPv4 unicast over the IPv4 session, IPv6 unicast over the IPv6 session.
template bgp rtr_tpl {
  local as $NODE_AS;
  hold time 9;
  keepalive time 3;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
}

protocol bgp rtr4 from rtr_tpl {
  source address $LAB_NODE_V4;
  neighbor $LAB_RTR_V4 as $RTR_AS;
  ipv4 { import all; export where routelb_export_bgp(); };
}

protocol bgp rtr6 from rtr_tpl {
  source address $LAB_NODE_V6;
  neighbor $LAB_RTR_V6 as $RTR_AS;
  ipv6 { import all; export where routelb_export_bgp(); };
}
EOF
    )
    ;;
  ospf)
    proto_block=$(
      cat <<EOF
protocol ospf v2 ospf4 {
  ipv4 { import all; export where routelb_export_ospf(); };
  area 0 {
    interface "$NODE_IF" { type ptp; hello 1; dead 3; };
  };
}

# OSPFv3 runs over the interface's IPv6 link-local address (kernel-generated on the veth).
protocol ospf v3 ospf6 {
  ipv6 { import all; export where routelb_export_ospf(); };
  area 0 {
    interface "$NODE_IF" { type ptp; hello 1; dead 3; };
  };
}
EOF
    )
    ;;
  rip)
    proto_block=$(
      cat <<EOF
protocol rip rip4 {
  ipv4 { import all; export where routelb_export_rip(); };
  interface "$NODE_IF" { update time 5; timeout time 15; garbage time 10; };
}

# RIPng runs over the interface's IPv6 link-local address.
protocol rip ng rip6 {
  ipv6 { import all; export where routelb_export_rip(); };
  interface "$NODE_IF" { update time 5; timeout time 15; garbage time 10; };
}
EOF
    )
    ;;
  esac
  cat <<EOF
# Base BIRD config of the lab node, as a network team would write it for routelb.
# routelb owns the included file: it defines the routelb_export_*() filter functions
# used below and "protocol direct routelb_direct" on $LB_IF. The include comes before the
# protocols because BIRD functions must be defined before they are used.
log "$LAB_DIR/bird/bird.log" all;
router id $LAB_NODE_V4;

include "$LAB_BIRD_INCLUDE";

protocol device {
  scan time 10;
}

# Nothing goes to the node's kernel; the large netlink buffer keeps BIRD from losing
# netlink messages on bursts of address/route changes.
protocol kernel kernel4 {
  ipv4 { import none; export none; };
  netlink rx buffer 8388608;
}

protocol kernel kernel6 {
  ipv6 { import none; export none; };
  netlink rx buffer 8388608;
}

$proto_block
EOF
}

# The initial routelb include: export nothing, and the direct protocol routelb uses.
bird_include_initial() {
  cat <<EOF
# Placeholder written by the lab; routelb rewrites this file and runs "birdc configure".
protocol direct routelb_direct {
  ipv4;
  ipv6;
  interface "$LB_IF";
}

function routelb_export_bgp() { return false; }
function routelb_export_ospf() { return false; }
function routelb_export_rip() { return false; }
EOF
}

start_bird() {
  mkdir -p "$LAB_DIR/bird"
  bird_include_initial >"$LAB_BIRD_INCLUDE"
  bird_conf >"$LAB_BIRD_CONF"
  bird -p -c "$LAB_BIRD_CONF" || die "bird rejected $LAB_BIRD_CONF"
  ip netns exec "$LAB_NODE_NS" bird -c "$LAB_BIRD_CONF" -s "$LAB_BIRD_SOCKET" -P "$LAB_BIRD_PID"
  wait_for_path "$LAB_BIRD_SOCKET" 10 "bird control socket"
}

# ---------------------------------------------------------------- readiness

# True when the protocol is up between node and router (checked on the router, which is
# always FRR, so the same checks serve both node kinds).
proto_ready() {
  local out
  case $LAB_PROTO in
  bgp)
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
    ${LAB_BIRD_PID:+"$LAB_BIRD_PID"}; do
    [ -r "$f" ] && cat "$f"
  done
  return 0
}

lab_healthy() {
  local n=0 want pid
  ip netns pids "$LAB_NODE_NS" >/dev/null 2>&1 || return 1
  ip netns pids "$LAB_RTR_NS" >/dev/null 2>&1 || return 1
  want=$(wc -w <<<"$(frr_daemons)")
  if [ "$LAB_NODE_KIND" = frr ]; then want=$((want * 2)); else want=$((want + 1)); fi
  for pid in $(lab_pids); do
    kill -0 "$pid" 2>/dev/null || return 1
    n=$((n + 1))
  done
  [ "$n" -eq "$want" ]
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local name="" node="" router=frr proto="" index="" fresh=0 wait=1 timeout=60
  while [ $# -gt 0 ]; do
    case $1 in
    --node) node=${2:?}; shift 2 ;;
    --router) router=${2:?}; shift 2 ;;
    --proto) proto=${2:?}; shift 2 ;;
    --index) index=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --no-wait) wait=0; shift ;;
    -*) die "up: unknown option $1" ;;
    *) [ -z "$name" ] || die "up: extra argument $1"; name=$1; shift ;;
    esac
  done
  [ -n "$name" ] || die "up: NAME required"
  check_name "$name"
  case $node in frr | bird) ;; *) die "up: --node frr|bird required" ;; esac
  [ "$router" = frr ] || die "up: only --router frr is supported (the router side is always FRR)"
  case $proto in bgp | ospf | isis | rip) ;; *) die "up: --proto bgp|ospf|isis|rip required" ;; esac
  if [ "$node" = bird ] && [ "$proto" = isis ]; then
    die "up: BIRD has no IS-IS implementation; use --node frr for --proto isis"
  fi
  if ! command -v vtysh >/dev/null || [ ! -x "$FRR_BIN/zebra" ]; then
    die "FRR not installed (apt-get install -y frr frr-pythontools)"
  fi
  if [ "$node" = bird ]; then
    command -v bird >/dev/null || die "BIRD not installed (apt-get install -y bird2)"
  fi

  mkdir -p "$LAB_ROOT"
  # Serialise creation so parallel `up`s pick distinct indexes.
  exec 9>"$LAB_ROOT/.lock"
  flock 9

  # Idempotence: an existing healthy lab with the same shape is reused as it is.
  if [ -r "$(lab_dir "$name")/state" ]; then
    (
      load_state "$name"
      [ "$fresh" = 0 ] && [ "$LAB_NODE_KIND" = "$node" ] && [ "$LAB_PROTO" = "$proto" ] &&
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
  x=$(pick_index "$name" "$index")
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
  if [ "$node" = frr ]; then
    LAB_NODE_FRR="$name-node" LAB_NODE_FRR_CONFDIR="$LAB_DIR/frr"
    LAB_NODE_FRR_CONF="$LAB_DIR/frr/$name-node/frr.conf" LAB_NODE_VTYSH="$LAB_DIR/bin/vtysh-node"
  else
    LAB_BIRD_SOCKET="$LAB_DIR/bird/bird.ctl" LAB_BIRD_CONF="$LAB_DIR/bird/bird.conf"
    LAB_BIRD_INCLUDE="$LAB_DIR/bird/routelb.conf" LAB_BIRD_PID="$LAB_DIR/bird/bird.pid"
    LAB_BIRDC="$LAB_DIR/bin/birdc"
  fi
  LAB_LB_IF_KIND=""

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
  cat >"$LAB_DIR/bin/vtysh-rtr" <<EOF
#!/bin/sh
# vtysh for lab $LAB_NAME's router FRR (pathspace $LAB_RTR_FRR) with a matching hostname.
exec unshare --uts sh -c 'hostname "\$0" && exec vtysh --config_dir "$LAB_DIR/frr" -N "\$0" "\$@"' "$LAB_RTR_FRR" "\$@"
EOF
  if [ -n "$LAB_NODE_FRR" ]; then
    cat >"$LAB_DIR/bin/vtysh-node" <<EOF
#!/bin/sh
# vtysh for lab $LAB_NAME's node FRR (pathspace $LAB_NODE_FRR) with a matching hostname.
exec unshare --uts sh -c 'hostname "\$0" && exec vtysh --config_dir "$LAB_DIR/frr" -N "\$0" "\$@"' "$LAB_NODE_FRR" "\$@"
EOF
  fi
  # A drop-in "vtysh" for tools that call vtysh themselves with -N/--pathspace, above all
  # frr-reload.py (--bindir LAB_FRR_BINDIR): it runs the real vtysh with the hostname set
  # to the pathspace, so `show running-config` matches the daemons' hostname.
  mkdir -p "$LAB_DIR/bin/frr"
  cat >"$LAB_DIR/bin/frr/vtysh" <<'EOF'
#!/bin/sh
# vtysh under a UTS namespace whose hostname is the -N/--pathspace argument (if any).
ps=""
prev=""
for a in "$@"; do
  case $prev in -N | --pathspace) ps=$a ;; esac
  case $a in --pathspace=*) ps=${a#--pathspace=} ;; -N?*) ps=${a#-N} ;; esac
  prev=$a
done
[ -n "$ps" ] || exec @VTYSH@ "$@"
exec unshare --uts sh -c 'hostname "$0" && exec @VTYSH@ "$@"' "$ps" "$@"
EOF
  sed -i "s#@VTYSH@#$(command -v vtysh)#g" "$LAB_DIR/bin/frr/vtysh"
  if [ -n "$LAB_BIRDC" ]; then
    cat >"$LAB_DIR/bin/birdc" <<EOF
#!/bin/sh
# birdc for lab $LAB_NAME's node BIRD.
exec birdc -s "$LAB_BIRD_SOCKET" "\$@"
EOF
  fi
  chmod 0755 "$LAB_DIR"/bin/vtysh-* "$LAB_DIR/bin/frr/vtysh" ${LAB_BIRDC:+"$LAB_BIRDC"}
}

# Tear one lab down: daemons (by pid file, checked to live in the lab's namespace), any
# other process left in its namespaces, the namespaces, FRR run dirs/symlinks, the lab dir.
down_one() {
  local name=$1 pid ns ps
  (
    load_state "$name"
    for pid in $(lab_pids); do
      for ns in "$LAB_NODE_NS" "$LAB_RTR_NS"; do kill_in_ns "$pid" "$ns"; done
    done
    for ns in "$LAB_NODE_NS" "$LAB_RTR_NS"; do
      for pid in $(ip netns pids "$ns" 2>/dev/null); do
        log "$name: stopping leftover pid $pid in $ns"
        kill_in_ns "$pid" "$ns"
      done
      ip netns del "$ns" 2>/dev/null || true
    done
    for ps in "$LAB_RTR_FRR" ${LAB_NODE_FRR:+"$LAB_NODE_FRR"}; do
      rm -rf "${FRR_RUN:?}/$ps"
      if [ -L "$FRR_ETC/$ps" ]; then rm -f "${FRR_ETC:?}/$ps"; fi
    done
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
    # Nothing recorded; still remove namespaces of that name if they linger.
    ip netns del "$name-node" 2>/dev/null || true
    ip netns del "$name-rtr" 2>/dev/null || true
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
  for f in "$FRR_ETC"/*; do
    if [ -L "$f" ] && [[ "$(readlink "$f")" == "$LAB_ROOT"/* ]]; then
      rm -f "$f"
      rm -rf "${FRR_RUN:?}/$(basename "$f")"
    fi
  done
  log "down-all: $n lab(s) removed"
}

cmd_wait_route() {
  local name="" prefix="" want=present timeout=30 since="" pos=() fam out elapsed t0
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
  fam=-4
  [[ "$prefix" == *:* ]] && fam=-6
  # --since takes a bash $EPOCHREALTIME value (seconds.micro) taken before the change.
  if [ -n "$since" ]; then t0=${since/./}; else t0=$(now_us); fi
  while :; do
    out=$(ip -n "$LAB_RTR_NS" "$fam" route show exact "$prefix")
    if { [ "$want" = present ] && [ -n "$out" ]; } || { [ "$want" = absent ] && [ -z "$out" ]; }; then
      elapsed=$((($(now_us) - t0) / 1000))
      log "$name: $prefix $want in $LAB_RTR_NS after ${elapsed} ms${out:+: $out}"
      echo "$elapsed"
      return 0
    fi
    if [ $(($(now_us) - t0)) -gt $((timeout * 1000000)) ]; then
      log "$name: timeout (${timeout}s) waiting for $prefix to be $want in $LAB_RTR_NS; its table:"
      ip -n "$LAB_RTR_NS" "$fam" route show >&2 || true
      return 1
    fi
    sleep 0.005
  done
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

cmd_birdc() {
  local name=${1:?birdc NAME ARGS...}
  shift
  load_state "$name"
  [ -n "$LAB_BIRD_SOCKET" ] || die "$name: the node runs FRR, not BIRD"
  birdc -s "$LAB_BIRD_SOCKET" "$@"
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
    birdc -s "$LAB_BIRD_SOCKET" show protocols || true
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
  env) cmd_env "$@" ;;
  status) cmd_status "$@" ;;
  list) cmd_list ;;
  *) die "unknown command '$cmd' (see --help)" ;;
  esac
}

main "$@"
