# shellcheck shell=bash
# Shared helpers of the routelb labs: lab.sh (one node + router over a veth) and
# cluster.sh (N nodes + router on one bridge). Sourced, never run. The sourcing script
# sets LOG_TAG (prefix of its log lines) and `set -euo pipefail` itself.
#
# What lives here is what both labs do the same way: namespaces, FRR instances with their
# own pathspace, BIRD instances, the hard-won fast-convergence config pieces, wrappers,
# killing processes that are really in a lab namespace, and polling a kernel route.
# README.md beside this file explains the why of each setting ("Gotchas").

FRR_BIN="${ROUTELB_LAB_FRR_BIN:-/usr/lib/frr}"
FRR_RUN="/var/run/frr"
FRR_ETC="/etc/frr"
LB_IF="kube-lb0" # where routelb puts service addresses

log() { printf '%s: %s\n' "${LOG_TAG:-lab}" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "${LOG_TAG:-lab}" "$*" >&2
  exit 1
}

# Microseconds since the epoch without forking (bash >= 5).
now_us() { local t=${EPOCHREALTIME/./}; echo "${t}"; }

require_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

require_frr() {
  if ! command -v vtysh >/dev/null || [ ! -x "$FRR_BIN/zebra" ]; then
    die "FRR not installed (apt-get install -y frr frr-pythontools)"
  fi
}

require_bird() { command -v bird >/dev/null || die "BIRD not installed (apt-get install -y bird2)"; }

# BIRD 1.6 (Calico's node BGP: bird for IPv4, bird6 for IPv6). Debian 12 ships it as package
# "bird", which conflicts with bird2, so it is unpacked (not installed) into a cache directory.
BIRD1_DIR="${ROUTELB_BIRD1_DIR:-${HOME:-/root}/.cache/routelb/bird1}"
BIRD1_SBIN="$BIRD1_DIR/usr/sbin"

# Downloads and unpacks Debian's bird 1.6 once (idempotent), and installs the libraries its
# binaries miss (bird/bird6 need only libc; birdc/birdc6 readline and tinfo).
bird1_fetch() {
  local tmp missing
  if [ ! -x "$BIRD1_SBIN/bird6" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download bird >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get download bird >/dev/null; }; }) ||
      die "cannot download Debian's bird (1.6) package"
    mkdir -p "$BIRD1_DIR"
    dpkg -x "$tmp"/bird_*.deb "$BIRD1_DIR"
    rm -rf "$tmp"
    log "BIRD 1.6 unpacked in $BIRD1_DIR"
  fi
  missing=$(ldd "$BIRD1_SBIN"/bird "$BIRD1_SBIN"/bird6 "$BIRD1_SBIN"/birdc "$BIRD1_SBIN"/birdc6 |
    awk '/not found/ { print $1 }' | sort -u)
  if [ -n "$missing" ]; then
    log "BIRD 1.6 misses $(echo $missing); installing libreadline8 libtinfo6"
    apt-get install -y -qq --no-install-recommends libreadline8 libtinfo6 >/dev/null
  fi
}

# ---------------------------------------------------------------- processes

# Run a command in namespace $1 with its own UTS namespace whose hostname is $2.
# FRR started with -N takes its hostname from uname(); without a per-instance hostname
# every `show running-config` (and so frr-reload.py) sees a hostname diff.
ns_uts_exec() {
  local ns=$1 host=$2
  shift 2
  # shellcheck disable=SC2016 # expanded by the inner sh
  ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
}

# vtysh for the FRR instance with pathspace $2 (configs under $1/<ps>/), under the same
# hostname as its daemons.
frr_vtysh_at() {
  local confroot=$1 ps=$2
  shift 2
  # shellcheck disable=SC2016 # expanded by the inner sh
  unshare --uts sh -c 'ps=$0 dir=$1; shift; hostname "$ps" && exec vtysh --config_dir "$dir" -N "$ps" "$@"' \
    "$ps" "$confroot" "$@"
}

# SIGTERM every given pid that is alive and lives in namespace $1 (the check guards
# against pid reuse), wait up to 5 s for all of them together, then SIGKILL the rest.
kill_pids_in_ns() {
  local ns=$1 pid i left
  shift
  local mine=()
  for pid in "$@"; do
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then continue; fi
    [ "$(ip netns identify "$pid" 2>/dev/null)" = "$ns" ] || continue
    kill -TERM "$pid" 2>/dev/null && mine+=("$pid")
  done
  [ ${#mine[@]} -gt 0 ] || return 0
  for i in $(seq 1 100); do
    left=()
    for pid in "${mine[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
    [ ${#left[@]} -gt 0 ] || return 0
    mine=("${left[@]}")
    sleep 0.05
  done
  log "pid(s) ${mine[*]} ($ns) ignored SIGTERM for 5 s, sending SIGKILL"
  kill -KILL "${mine[@]}" 2>/dev/null || true
}

# Kill pid $1 if it is alive and lives in namespace $2.
kill_in_ns() { kill_pids_in_ns "$2" "$1"; }

# Every process still in namespace $1 (the daemons, a test's agent, anything it spawned).
kill_all_in_ns() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086 # one pid per word
  kill_pids_in_ns "$ns" $pids
}

wait_for_path() { # PATH TIMEOUT_S WHAT
  local p=$1 deadline=$(($(date +%s) + $2))
  until [ -e "$p" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "timed out waiting for $3 ($p)"
    sleep 0.05
  done
}

# ---------------------------------------------------------------- network

# Pick a subnet index X in 1..254: a hash of NAME, moved on to the next free value if
# another lab under ROOT already holds it (read from VAR= in ROOT/*/state). Labs never see
# each other (separate namespaces), so this only keeps addresses distinct in logs.
# pick_index ROOT VAR NAME [WANT]
pick_index() {
  local root=$1 var=$2 name=$3 want=${4:-} x used i f
  used=" "
  for f in "$root"/*/state; do
    [ -r "$f" ] || continue
    [ "$(basename "$(dirname "$f")")" = "$name" ] && continue
    used+="$(sed -n "s/^$var=//p" "$f") "
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

# A fresh namespace with lo up, forwarding on and IPv6 DAD off.
netns_add() {
  local ns=$1
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  # No IPv6 DAD in the lab: link-local and global addresses are usable at once instead of
  # "tentative" for ~1-2 s (OSPFv3, RIPng and the IPv6 BGP session need them). kube-lb0
  # (dummy/ifb) is NOARP, so the kernel skips DAD there anyway. Set on "default" before
  # any interface exists so that all of them inherit it.
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.all.dad_transmits=0 net.ipv6.conf.default.dad_transmits=0
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}

# Poll namespace NS's kernel table every 5 ms until PREFIX is present (with exactly
# NEXTHOPS nexthops if that is not empty) or absent. Prints the ms elapsed since T0_US
# (microseconds since the epoch) on stdout; returns 1 after TIMEOUT_S, dumping the table.
# route_wait LABEL NS PREFIX present|absent TIMEOUT_S T0_US [NEXTHOPS]
route_wait() {
  local label=$1 ns=$2 prefix=$3 want=$4 timeout=$5 t0=$6 nh=${7:-} fam=-4 out n elapsed what
  [[ "$prefix" == *:* ]] && fam=-6
  what=$want
  [ -n "$nh" ] && what="present with $nh nexthop(s)"
  while :; do
    out=$(ip -n "$ns" "$fam" route show exact "$prefix") || die "$label: cannot read the routes of $ns"
    if [ "$want" = present ] && [ -n "$out" ]; then
      if [ -z "$nh" ]; then
        break
      fi
      # A multipath route prints one "nexthop via ..." line per path; a single path none.
      n=$(grep -c '^[[:space:]]*nexthop ' <<<"$out" || true)
      [ "$n" -gt 0 ] || n=1
      [ "$n" -eq "$nh" ] && break
    elif [ "$want" = absent ] && [ -z "$out" ]; then
      break
    fi
    if [ $(($(now_us) - t0)) -gt $((timeout * 1000000)) ]; then
      log "$label: timeout (${timeout}s) waiting for $prefix to be $what in $ns; its table:"
      ip -n "$ns" "$fam" route show >&2 || true
      return 1
    fi
    sleep 0.005
  done
  elapsed=$((($(now_us) - t0) / 1000))
  log "$label: $prefix $what in $ns after ${elapsed} ms${out:+: $(tr -s ' \t\n' ' ' <<<"$out")}"
  echo "$elapsed"
}

# ---------------------------------------------------------------- FRR
# Fast-convergence settings shared by every FRR instance. A node's base config is what a
# network team would hand to routelb: the protocol and the adjacency, and no
# redistribution of its own. routelb adds ROUTELB-* prefix-lists/route-maps and
# `redistribute connected route-map ROUTELB-...` inside these router contexts at run time.

frr_daemons_for() { # PROTO
  case $1 in
  bgp) echo "zebra bgpd" ;;
  ospf) echo "zebra ospfd ospf6d" ;;
  isis) echo "zebra isisd" ;;
  rip) echo "zebra ripd ripngd" ;;
  *) die "unknown protocol $1" ;;
  esac
}

frr_conf_header() { # HOSTNAME
  cat <<EOF
frr defaults traditional
hostname $1
service integrated-vtysh-config
!
EOF
}

# Two eBGP sessions: IPv4 unicast over the IPv4 session, IPv6 unicast over the IPv6
# session (no extended next hop needed). route-map delay-timer 1: bgpd otherwise holds
# route-map changes (and so routelb's new redistribute) for 5 s; 0 would disable
# route-map change processing altogether. ebgp-requires-policy is off: with FRR's default
# (on) nothing is sent to an eBGP peer without an outbound policy.
# frr_bgp_conf AS ROUTER_ID PEER_AS PEER4 PEER6 [LISTEN4 LISTEN6 [MAXPATHS]]
# PEER4/PEER6 are neighbor addresses or, with LISTEN4/LISTEN6 (subnets to accept dynamic
# neighbors from), the names of the peer-groups those neighbors join.
frr_bgp_conf() {
  local as=$1 rid=$2 peer_as=$3 p4=$4 p6=$5 l4=${6:-} l6=${7:-} maxpaths=${8:-} p
  cat <<EOF
bgp route-map delay-timer 1
!
router bgp $as
 bgp router-id $rid
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp log-neighbor-changes
 coalesce-time 100
 timers bgp 3 9
EOF
  for p in "$p4" "$p6"; do
    [ -n "$l4" ] && echo " neighbor $p peer-group"
    echo " neighbor $p remote-as $peer_as"
    echo " neighbor $p timers connect 1"
    echo " neighbor $p advertisement-interval 0"
  done
  if [ -n "$l4" ]; then
    echo " bgp listen range $l4 peer-group $p4"
    echo " bgp listen range $l6 peer-group $p6"
  fi
  cat <<EOF
 !
 address-family ipv4 unicast
  neighbor $p4 activate${maxpaths:+
  maximum-paths $maxpaths}
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor $p6 activate${maxpaths:+
  maximum-paths $maxpaths}
 exit-address-family
exit
!
EOF
}

# OSPFv2 + OSPFv3 on one interface.
# frr_ospf_iface IFNAME NETWORK-TYPE [PRIORITY [RETRANSMIT-INTERVAL]]
frr_ospf_iface() {
  local ifname=$1 type=$2 prio=${3:-} rxmt=${4:-}
  cat <<EOF
interface $ifname
 ip ospf area 0
 ip ospf network $type${prio:+
 ip ospf priority $prio}
 ip ospf hello-interval 1
 ip ospf dead-interval 3${rxmt:+
 ip ospf retransmit-interval $rxmt}
 ipv6 ospf6 area 0
 ipv6 ospf6 network $type${prio:+
 ipv6 ospf6 priority $prio}
 ipv6 ospf6 hello-interval 1
 ipv6 ospf6 dead-interval 3${rxmt:+
 ipv6 ospf6 retransmit-interval $rxmt}
exit
!
EOF
}

# The OSPF processes with fast SPF/LSA throttles. frr_ospf_routers ROUTER_ID [MAXPATHS]
# ospf6d has no `timers throttle lsa`; `timers lsa min-arrival 0` is enough there.
frr_ospf_routers() {
  local rid=$1 maxpaths=${2:-}
  cat <<EOF
router ospf
 ospf router-id $rid
 timers throttle spf 0 50 1000
 timers throttle lsa all 0
 timers lsa min-arrival 0${maxpaths:+
 maximum-paths $maxpaths}
exit
!
router ospf6
 ospf6 router-id $rid
 timers throttle spf 0 50 1000
 timers lsa min-arrival 0${maxpaths:+
 maximum-paths $maxpaths}
exit
!
EOF
}

# Start one FRR instance whose frr.conf is already in CONFROOT/PS/frr.conf:
# frr_start NS PS CONFROOT DAEMON...
# Layout: configs in CONFROOT/<ps>/ (frr.conf + vtysh.conf); /etc/frr/<ps> is a symlink
# to it so that plain `vtysh -N <ps>` (write memory, -b) and `frr-reload.py -N <ps>` find
# it too; sockets and pid files in /var/run/frr/<ps>/.
frr_start() {
  local ns=$1 ps=$2 confroot=$3 d out
  shift 3
  local cdir="$confroot/$ps"
  [ -r "$cdir/frr.conf" ] || die "$ps: no $cdir/frr.conf"
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
  for d in "$@"; do
    frr_start_daemon "$ns" "$ps" "$cdir" "$d"
  done
  frr_load_config "$confroot" "$ps"
}

# frr_start_daemon NS PS CDIR DAEMON: one daemon, with no configuration yet.
frr_start_daemon() {
  local ns=$1 ps=$2 cdir=$3 d=$4 extra=()
  [ "$d" = zebra ] && extra=(-s 90000000) # netlink receive buffer
  # -P 0: no TCP vty listener. The config comes from vtysh -b (frr_load_config), so the
  # daemons start with no config file of their own (-f /dev/null).
  # Startup chatter (e.g. zebra's "Disabling MPLS support") goes to startup.err.
  # 9>&-: fd 9 is the caller's creation lock; a daemon that inherited it would keep the
  # lock held for every later `up` if the creating script died before releasing it.
  if ! ns_uts_exec "$ns" "$ps" "$FRR_BIN/$d" -d -N "$ps" -P 0 -f /dev/null \
    --log "file:$cdir/frr.log" --log-level informational "${extra[@]}" 2>>"$cdir/startup.err" 9>&-; then
    cat "$cdir/startup.err" >&2
    die "$ps: $d failed to start"
  fi
  wait_for_path "$FRR_RUN/$ps/$d.vty" 10 "$ps $d"
  [ "$d" = zebra ] && wait_for_path "$FRR_RUN/$ps/zserv.api" 10 "$ps zebra API socket"
  return 0
}

# frr_load_config CONFROOT PS [DAEMON]: apply frr.conf through vtysh, as frrinit.sh does with
# integrated config (and watchfrr, for one restarted daemon, with -d DAEMON).
frr_load_config() {
  local confroot=$1 ps=$2 out only=()
  [ -n "${3:-}" ] && only=(-d "$3")
  if ! out=$(frr_vtysh_at "$confroot" "$ps" -b "${only[@]}" 2>&1); then
    printf '%s\n' "$out" >&2
    die "vtysh -b failed for $ps"
  fi
  if grep -qiE 'unknown command|error|warning: ' <<<"$out"; then
    printf '%s\n' "$out" >&2
    die "frr.conf of $ps did not apply cleanly"
  fi
}

frr_pids() { # PS...: the pids in the instances' pid files
  local ps f
  for ps in "$@"; do
    for f in "$FRR_RUN/$ps"/*.pid; do
      [ -r "$f" ] && cat "$f"
    done
  done
  return 0
}

# Remove what an FRR instance keeps outside the lab dir (after its daemons are gone).
frr_forget() { # PS...
  local ps
  for ps in "$@"; do
    rm -rf "${FRR_RUN:?}/$ps"
    if [ -L "$FRR_ETC/$ps" ]; then rm -f "${FRR_ETC:?}/$ps"; fi
  done
}

# /etc/frr symlinks into ROOT (and their run dirs) whose lab dir was removed by hand.
frr_forget_dangling() { # ROOT
  local f
  for f in "$FRR_ETC"/*; do
    if [ -L "$f" ] && [[ "$(readlink "$f")" == "$1"/* ]]; then
      frr_forget "$(basename "$f")"
    fi
  done
}

# vtysh wrapper bound to one FRR instance, with a matching hostname.
# write_vtysh_wrapper PATH CONFROOT PS DESCRIPTION
write_vtysh_wrapper() {
  cat >"$1" <<EOF
#!/bin/sh
# vtysh for $4 (pathspace $3) with a matching hostname.
exec unshare --uts sh -c 'hostname "\$0" && exec vtysh --config_dir "$2" -N "\$0" "\$@"' "$3" "\$@"
EOF
  chmod 0755 "$1"
}

# A drop-in "vtysh" in directory $1 for tools that call vtysh themselves with
# -N/--pathspace, above all frr-reload.py (--bindir DIR): it runs the real vtysh with the
# hostname set to the pathspace, so `show running-config` matches the daemons' hostname.
write_vtysh_dropin() {
  mkdir -p "$1"
  cat >"$1/vtysh" <<'EOF'
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
  sed -i "s#@VTYSH@#$(command -v vtysh)#g" "$1/vtysh"
  chmod 0755 "$1/vtysh"
}

# ---------------------------------------------------------------- BIRD

# Head of a node's bird.conf, up to the routing protocols.
# bird_conf_base LOGFILE ROUTER_ID INCLUDE
bird_conf_base() {
  cat <<EOF
# Base BIRD config of a lab node, as a network team would write it for routelb.
# routelb owns the included file: it defines the routelb_export_*() filter functions
# used below and "protocol direct routelb_direct" on $LB_IF. The include comes before the
# protocols because BIRD functions must be defined before they are used.
log "$1" all;
router id $2;

include "$3";

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

EOF
}

# bird_bgp_block LOCAL_AS PEER_AS SRC4 PEER4 SRC6 PEER6
bird_bgp_block() {
  cat <<EOF
# IPv4 unicast over the IPv4 session, IPv6 unicast over the IPv6 session.
template bgp rtr_tpl {
  local as $1;
  hold time 9;
  keepalive time 3;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
}

protocol bgp rtr4 from rtr_tpl {
  source address $3;
  neighbor $4 as $2;
  ipv4 { import all; export where routelb_export_bgp(); };
}

protocol bgp rtr6 from rtr_tpl {
  source address $5;
  neighbor $6 as $2;
  ipv6 { import all; export where routelb_export_bgp(); };
}
EOF
}

# bird_ospf_block IFNAME INTERFACE-OPTIONS (e.g. "type ptp; hello 1; dead 3;")
bird_ospf_block() {
  cat <<EOF
protocol ospf v2 ospf4 {
  ipv4 { import all; export where routelb_export_ospf(); };
  area 0 {
    interface "$1" { $2 };
  };
}

# OSPFv3 runs over the interface's IPv6 link-local address (kernel-generated on the veth).
protocol ospf v3 ospf6 {
  ipv6 { import all; export where routelb_export_ospf(); };
  area 0 {
    interface "$1" { $2 };
  };
}
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

# bird_start NS CONF SOCKET PIDFILE [BINARY] (CONF and its include already written; BINARY:
# bird by default, or BIRD 1.6's bird / bird6)
bird_start() {
  local bin=${5:-bird}
  "$bin" -p -c "$2" || die "$bin rejected $2"
  ip netns exec "$1" "$bin" -c "$2" -s "$3" -P "$4" 9>&- # 9: the creation lock, see frr_start
  wait_for_path "$3" 10 "$(basename "$bin") control socket"
}

write_birdc_wrapper() { # PATH SOCKET DESCRIPTION [BIRDC]
  cat >"$1" <<EOF
#!/bin/sh
# birdc for $3.
exec ${4:-birdc} -s "$2" "\$@"
EOF
  chmod 0755 "$1"
}

# The initial routelb include of a BIRD 1.x daemon, as bird_include_initial.
bird1_include_initial() {
  cat <<EOF
# Placeholder written by the lab; routelb rewrites this file and runs "configure".
protocol direct routelb_direct {
  interface "$LB_IF";
}

function routelb_export_bgp() { return false; }
function routelb_export_ospf() { return false; }
function routelb_export_rip() { return false; }
EOF
}

# A BIRD 1.x node's bird.conf (IPv4) or bird6.conf (IPv6) for BGP to the router.
# bird1_bgp_conf LOGFILE ROUTER_ID INCLUDE LOCAL_AS PEER_AS SRC PEER
bird1_bgp_conf() {
  cat <<EOF
# Base BIRD 1.x config of a lab node: one daemon per family, each including its own file.
log "$1" all;
router id $2;

include "$3";

protocol device {
  scan time 10;
}

protocol kernel {
  import none;
  export none;
}

template bgp rtr_tpl {
  local as $4;
  hold time 9;
  keepalive time 3;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
}

protocol bgp rtr from rtr_tpl {
  source address $6;
  neighbor $7 as $5;
  import all;
  export where routelb_export_bgp();
}
EOF
}
