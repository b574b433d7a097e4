#!/usr/bin/env bash
# The containerlab topologies of containerlab/ (bgp, ospf, isis), rebuilt with network
# namespaces, so that their router configs are exercised where Docker is not available (CI):
#
#   bash integration/lab/clab-netns.sh up TOPO [--timeout S]   build it, wait until the protocol is up
#   bash integration/lab/clab-netns.sh check TOPO [--keep]     up + announce/reach/ECMP/withdraw + down
#   bash integration/lab/clab-netns.sh status TOPO             adjacencies and routes
#   bash integration/lab/clab-netns.sh vtysh TOPO NODE ARGS... vtysh of one FRR instance
#   bash integration/lab/clab-netns.sh down TOPO
#   bash integration/lab/clab-netns.sh down-all
#
# TOPO is bgp|ospf|isis (containerlab/<TOPO>/topology.clab.yml), a topology directory or file.
#
# What becomes what (containerlab/clab_topology.py reads the topology for this script):
#   * every FRR router (a `linux` node binding /etc/frr/frr.conf) becomes a namespace named like
#     its container, clab-<lab>-<node>, running FRR (pathspace = namespace name) with the
#     very same frr.conf (copied unchanged) and the daemons its `daemons` file enables;
#   * every kind node (`ext-container`, label routelb.lab/role=k8s-node) becomes a namespace
#     named like its kind container, running FRR with configs/node/frr.conf, the base config
#     of routelb's FRR sidecar. Its `exec` lines (link address, loopback) run in the
#     namespace, as containerlab runs them in the kind container; IS-IS nodes get their NET
#     (label routelb.lab/isis-net) with one vtysh command, as the README does;
#   * hosts (the client) become namespaces and run their `exec` lines;
#   * each link is a veth pair with the topology's interface names.
#
# `check` then stands in for routelb on the first kind node: it creates kube-lb0 (dummy,
# else ifb), applies the FRR fragment routelb renders for manifests/example.yaml (with
# ROUTELB_BIN=path/to/routelb: `routelb apply` itself; otherwise the same fragment written
# out here), adds 198.51.100.10/32 and 2001:db8:100::10/128 and waits for both on every
# router, curls the address from the client (v4 and v6), checks the nodes kept their
# router-ids, announces the address from all kind nodes and waits for ECMP (2 next hops on
# each spine, one per node on each leaf), withdraws it everywhere, and tears the lab down.
# It prints one summary line on stdout.
#
# Must run as root (namespaces, daemons); needs iproute2, util-linux, curl, frr (>= 8.4) and
# PyYAML for /usr/bin/python3 (installed here from python3-yaml if missing). Files live in
# $ROUTELB_CLAB_NETNS_ROOT/<lab>/ (default /tmp/routelb-clab-netns), plus the FRR run dirs
# /var/run/frr/<ns>/ and symlinks /etc/frr/<ns>, which `down` removes. Everything stays inside
# the lab's namespaces.
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
HERE="$(dirname "$SELF")"
REPO="$(cd "$HERE/../.." && pwd)"
LOG_TAG=clab-netns
# shellcheck source=integration/lab/lib.sh
. "$HERE/lib.sh"

ROOT="${ROUTELB_CLAB_NETNS_ROOT:-/tmp/routelb-clab-netns}"
TOOL="$REPO/containerlab/clab_topology.py"
# What manifests/example.yaml asks for (pool clab: 198.51.100.0/24, 2001:db8:100::/120).
SVC4="198.51.100.10"
SVC6="2001:db8:100::10"
POOL4="198.51.100.0/24"
POOL6="2001:db8:100::/120"
ROUTELB_BIN="${ROUTELB_BIN:-}"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

usage() {
  sed -n '2,/^set -euo/p' "$SELF" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

ensure_pyyaml() {
  "$PY" -c 'import yaml' 2>/dev/null && return 0
  log "installing python3-yaml (PyYAML for $PY)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null; }; then
    die "cannot install python3-yaml"
  fi
  "$PY" -c 'import yaml' 2>/dev/null || die "PyYAML still missing for $PY"
}

# bgp|ospf|isis, a directory with topology.clab.yml, or a topology file -> absolute file path.
resolve_topo() {
  local a=${1:?TOPO required} f
  if [ -f "$a" ]; then
    f=$a
  elif [ -f "$a/topology.clab.yml" ]; then
    f=$a/topology.clab.yml
  elif [ -f "$REPO/containerlab/$a/topology.clab.yml" ]; then
    f=$REPO/containerlab/$a/topology.clab.yml
  else
    die "no topology '$a' (bgp, ospf, isis, a directory or a .clab.yml file)"
  fi
  echo "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"
}

# ---------------------------------------------------------------- the spec
# Globals filled by load_spec from the lines of `clab_topology.py spec` (see there).
LAB="" TOPO_DIR="" DIR=""
ORDER=() SPEAKERS=() K8S=() ROUTERS=() HOSTS=() LINKS=() EXECS=() CLIENT_ADDRS=()
declare -A ROLE=() NS=() CONF=() DAEMONS=() ISISNET=() LO4=() ADJ=() LOOP4=() LOOP6=()
PROTO="" ISIS_TAG="" NODE_AS=""

load_spec() { # FILE
  local kind a b c d e f g
  while IFS=$'\t' read -r kind a b c d e f g; do
    case $kind in
    lab) LAB=$a TOPO_DIR=$b ;;
    node)
      ORDER+=("$a")
      ROLE[$a]=$b NS[$a]=$c CONF[$a]=$d DAEMONS[$a]=$e ISISNET[$a]=$f LO4[$a]=$g
      case $b in
      router) ROUTERS+=("$a") SPEAKERS+=("$a") ;;
      k8s-node) K8S+=("$a") SPEAKERS+=("$a") ;;
      *) HOSTS+=("$a") ;;
      esac
      ;;
    exec) EXECS+=("$a"$'\t'"$b") ;;
    link) LINKS+=("$a $b $c $d") ;;
    adj) ADJ[$a]=$b ;;
    loop) LOOP4[$a]=$b LOOP6[$a]=$c ;;
    client) CLIENT_ADDRS+=("$a $b") ;;
    esac
  done <"$1"
  DIR="$ROOT/$LAB"
  [ ${#K8S[@]} -gt 0 ] || die "$LAB: the topology has no kind node (ext-container labelled routelb.lab/role=k8s-node)"
  local conf=${CONF[${K8S[0]}]}
  if grep -q '^router bgp ' "$conf"; then
    PROTO=bgp NODE_AS=$(sed -n 's/^router bgp \([0-9]*\).*/\1/p' "$conf" | head -n 1)
  elif grep -q '^router isis ' "$conf"; then
    PROTO=isis ISIS_TAG=$(sed -n 's/^router isis \([^ ]*\).*/\1/p' "$conf" | head -n 1)
  elif grep -q '^router ospf' "$conf"; then
    PROTO=ospf
  else
    die "$LAB: cannot tell the protocol from $conf"
  fi
}

# Parse TOPO into DIR/spec (fresh) or, with no TOPO file, reuse the recorded spec.
# Resolves TOPO (sets $topo), writes its spec to a new temporary file ($spec, which the caller
# removes) and loads it (LAB, DIR, the nodes and links).
load_topo() { # TOPO
  ensure_pyyaml
  topo=$(resolve_topo "${1:-}")
  spec=$(mktemp)
  spec_from_topo "$topo" "$spec"
  load_spec "$spec"
}

spec_from_topo() { # TOPO_FILE OUT
  "$PY" "$TOOL" spec "$1" >"$2" || die "cannot read topology $1"
}

vt() { # NODE VTYSH-ARGS...: vtysh of a node's FRR instance, under its hostname
  local n=$1
  shift
  frr_vtysh_at "$DIR/frr" "${NS[$n]}" "$@"
}

# ---------------------------------------------------------------- build

build_net() {
  local n l na ia nb ib
  for n in "${ORDER[@]}"; do
    netns_add "${NS[$n]}"
  done
  for l in "${LINKS[@]}"; do
    read -r na ia nb ib <<<"$l"
    ip link add "$ia" netns "${NS[$na]}" type veth peer name "$ib" netns "${NS[$nb]}"
    ip -n "${NS[$na]}" link set "$ia" up
    ip -n "${NS[$nb]}" link set "$ib" up
  done
}

# The `exec` lines of the kind nodes and hosts (only ip/sysctl; clab_topology.py refuses the
# rest for kind nodes). Routers have their addresses in frr.conf.
run_execs() {
  local e n cmd
  for e in "${EXECS[@]}"; do
    n=${e%%$'\t'*} cmd=${e#*$'\t'}
    local words=()
    eval "words=($cmd)" # shell-quoted by clab_topology.py (shlex.join)
    case ${words[0]} in
    ip | sysctl) ;;
    *) die "$n: exec '$cmd': only ip and sysctl commands run in the netns lab" ;;
    esac
    ip netns exec "${NS[$n]}" "${words[@]}" >/dev/null || die "$n: exec '$cmd' failed"
  done
}

daemons_of() { # DAEMONS-FILE -> zebra, then every daemon set to yes that FRR has here
  local d
  echo zebra
  sed -n 's/^\([a-z0-9]*\)=yes[[:space:]]*$/\1/p' "$1" | while read -r d; do
    case $d in zebra | staticd | watchfrr) continue ;; esac
    [ -x "$FRR_BIN/$d" ] || die "$1 enables $d, which this FRR does not have"
    echo "$d"
  done
}

start_speaker() { # NODE
  local n=$1 ps=${NS[$1]} ds
  ds=$(daemons_of "${DAEMONS[$n]}") || exit 1
  mkdir -p "$DIR/frr/$ps"
  cp "${CONF[$n]}" "$DIR/frr/$ps/frr.conf" # the topology's file, unchanged
  # shellcheck disable=SC2086 # one daemon per word
  frr_start "$ps" "$ps" "$DIR/frr" $ds
  if [ "$PROTO" = isis ] && [ "${ROLE[$n]}" = k8s-node ]; then
    [ "${ISISNET[$n]}" != - ] || die "$n: no routelb.lab/isis-net label"
    vt "$n" -c 'configure terminal' -c "router isis $ISIS_TAG" -c "net ${ISISNET[$n]}" >/dev/null
  fi
  write_vtysh_wrapper "$DIR/bin/vtysh-$n" "$DIR/frr" "$ps" "$n of $LAB"
}

start_all() { # in parallel, one subshell per FRR instance
  local n pids=() bad=0 i=0
  for n in "${SPEAKERS[@]}"; do
    start_speaker "$n" &
    pids+=($!)
  done
  for n in "${SPEAKERS[@]}"; do
    wait "${pids[$i]}" || { log "$n: FRR failed to start"; bad=1; }
    i=$((i + 1))
  done
  [ "$bad" = 0 ] || die "$LAB: not every FRR instance started"
}

# ---------------------------------------------------------------- readiness

# Adjacencies of one instance in the state that counts (BGP: Established sessions in both
# address families; OSPF: Full in OSPFv2 and OSPFv3; IS-IS: Up).
adjacencies_ok() { # NODE
  local n=$1 want=${ADJ[$1]:-0} out c
  [ "$want" -gt 0 ] || return 0
  case $PROTO in
  bgp)
    out=$(vt "$n" -c 'show bgp summary json' 2>/dev/null) || return 1
    c=$(grep -o '"state": *"Established"' <<<"$out" | wc -l)
    [ "$c" -ge $((2 * want)) ]
    ;;
  ospf)
    out=$(vt "$n" -c 'show ip ospf neighbor' 2>/dev/null) || return 1
    [ "$(grep -c 'Full' <<<"$out")" -ge "$want" ] || return 1
    out=$(vt "$n" -c 'show ipv6 ospf6 neighbor' 2>/dev/null) || return 1
    [ "$(grep -c 'Full' <<<"$out")" -ge "$want" ]
    ;;
  isis)
    out=$(vt "$n" -c 'show isis neighbor' 2>/dev/null) || return 1
    [ "$(grep -c ' Up ' <<<"$out")" -ge "$want" ]
    ;;
  esac
}

# A kind node is usable once its router-id is its loopback (the design of the shared base
# config) and, for link-state protocols, the spines see its side of the adjacency.
node_ready() { # NODE
  local n=$1 out s
  case $PROTO in
  bgp)
    out=$(vt "$n" -c 'show bgp summary json' 2>/dev/null) || return 1
    grep -q "\"routerId\": *\"${LO4[$n]}\"" <<<"$out"
    ;;
  ospf)
    out=$(vt "$n" -c 'show ip ospf' -c 'show ipv6 ospf6' 2>/dev/null) || return 1
    [ "$(grep -cE "Router ID: ${LO4[$n]}|Router-ID ${LO4[$n]}" <<<"$out")" -eq 2 ] || return 1
    for s in "${ROUTERS[@]}"; do
      [[ $s == spine* ]] || continue
      out=$(vt "$s" -c "show ip ospf database router ${LO4[$n]}" 2>/dev/null) || return 1
      grep -q 'another Router' <<<"$out" || return 1
      out=$(vt "$s" -c "show ipv6 ospf6 database router adv-router ${LO4[$n]} detail" 2>/dev/null) || return 1
      grep -q 'Neighbor Router ID' <<<"$out" || return 1
    done
    ;;
  isis)
    for s in "${ROUTERS[@]}"; do
      [[ $s == spine* ]] || continue
      out=$(vt "$s" -c 'show isis topology level-2' 2>/dev/null) || return 1
      grep -q "^${NS[$n]} " <<<"$out" || return 1
    done
    ;;
  esac
}

# Kernel routes: every router reaches the loopbacks of its neighbour routers, and every kind
# node reaches every router's loopback and every client address (the way replies go). Not
# every router reaches every other: in the eBGP fabric the spines share AS 65100, so they
# never accept each other's routes (RFC 7938).
has_route() { # NS V4-OR-V6-ADDR: an exact host route (not the default route)
  local fam=-4 len=32
  [[ $2 == *:* ]] && fam=-6 len=128
  [ -n "$(ip -n "$1" "$fam" route show exact "$2/$len")" ] || ip -n "$1" "$fam" route get "$2" >/dev/null 2>&1
}

routes_ok() {
  local r o c l na ia nb ib
  for l in "${LINKS[@]}"; do
    read -r na ia nb ib <<<"$l"
    for r in "$na $nb" "$nb $na"; do
      read -r r o <<<"$r"
      if [ "${ROLE[$r]}" != router ] || [ "${ROLE[$o]}" != router ]; then continue; fi
      [ "${LOOP4[$o]:--}" = - ] || has_route "${NS[$r]}" "${LOOP4[$o]}" || return 1
      [ "${LOOP6[$o]:--}" = - ] || has_route "${NS[$r]}" "${LOOP6[$o]}" || return 1
    done
  done
  for r in "${K8S[@]}"; do
    for o in "${ROUTERS[@]}"; do
      [ "${LOOP4[$o]:--}" = - ] || has_route "${NS[$r]}" "${LOOP4[$o]}" || return 1
      [ "${LOOP6[$o]:--}" = - ] || has_route "${NS[$r]}" "${LOOP6[$o]}" || return 1
    done
    for c in "${CLIENT_ADDRS[@]}"; do
      has_route "${NS[$r]}" "${c#* }" || return 1
    done
  done
}

wait_ready() { # TIMEOUT_S
  local timeout=$1 t0 n pending
  t0=$(now_us)
  while :; do
    pending=""
    for n in "${SPEAKERS[@]}"; do
      adjacencies_ok "$n" || pending+=" $n(adjacency)"
    done
    if [ -z "$pending" ]; then
      for n in "${K8S[@]}"; do
        node_ready "$n" || pending+=" $n(node)"
      done
    fi
    if [ -z "$pending" ]; then
      routes_ok && break
      pending=" routes"
    fi
    if [ $(($(now_us) - t0)) -gt $((timeout * 1000000)) ]; then
      cmd_status_loaded >&2 || true
      die "$LAB: $PROTO not ready after ${timeout}s; waiting for:$pending"
    fi
    sleep 0.2
  done
  READY_MS=$((($(now_us) - t0) / 1000))
  log "$LAB: $PROTO ready after $READY_MS ms (adjacencies, node router-ids, loopbacks, return routes)"
}

# ---------------------------------------------------------------- routelb's part

# The fragment routelb renders for manifests/example.yaml against configs/node/frr.conf
# (`routelb render --config manifests --daemon frr --base configs/node/frr.conf`).
standin_fragment() {
  local v4 v6
  cat <<EOF
ip prefix-list ROUTELB-POOL-clab-V4 seq 5 permit $POOL4 le 32
ipv6 prefix-list ROUTELB-POOL-clab-V6 seq 5 permit $POOL6 le 128
EOF
  case $PROTO in
  bgp) v4=ROUTELB-BGP-V4 v6=ROUTELB-BGP-V6 ;;
  ospf) v4=ROUTELB-OSPF-V4 v6=ROUTELB-OSPF-V6 ;;
  isis) v4=ROUTELB-ISIS-L2-V4 v6=ROUTELB-ISIS-L2-V6 ;;
  esac
  cat <<EOF
route-map $v4 permit 50000
 match ip address prefix-list ROUTELB-POOL-clab-V4
exit
route-map $v6 permit 50000
 match ipv6 address prefix-list ROUTELB-POOL-clab-V6
exit
EOF
  case $PROTO in
  bgp)
    cat <<EOF
router bgp $NODE_AS
 address-family ipv4 unicast
  redistribute connected route-map $v4
 exit-address-family
 address-family ipv6 unicast
  redistribute connected route-map $v6
 exit-address-family
exit
EOF
    ;;
  ospf)
    printf 'router ospf\n redistribute connected route-map %s\nexit\n' "$v4"
    printf 'router ospf6\n redistribute connected route-map %s\nexit\n' "$v6"
    ;;
  isis)
    cat <<EOF
router isis $ISIS_TAG
 redistribute ipv4 connected level-2 route-map $v4
 redistribute ipv6 connected level-2 route-map $v6
exit
EOF
    ;;
  esac
}

# What the routelb agent does on a node before any service: kube-lb0 and the fragment.
routelb_standin() { # NODE
  local n=$1 ns=${NS[$1]} f
  if ! ip -n "$ns" link add "$LB_IF" type dummy 2>/dev/null; then
    ip -n "$ns" link add "$LB_IF" type ifb 2>/dev/null ||
      die "$n: cannot create $LB_IF: neither the dummy nor the ifb driver is available"
  fi
  ip -n "$ns" link set "$LB_IF" up
  if [ -n "$ROUTELB_BIN" ]; then
    "$ROUTELB_BIN" apply --config "$TOPO_DIR/manifests" --daemon frr --frr-pathspace "$ns" >&2 ||
      die "$n: routelb apply failed"
  else
    f="$DIR/fragment-$n.conf"
    standin_fragment >"$f"
    vt "$n" -f "$f" >&2 || die "$n: the stand-in fragment was refused"
  fi
}

# The router a kind node peers with (its link's other end).
leaf_of() { # NODE
  local l na ia nb ib
  for l in "${LINKS[@]}"; do
    read -r na ia nb ib <<<"$l"
    [ "$na" = "$1" ] && [ "${ROLE[$nb]}" = router ] && { echo "$nb"; return; }
    [ "$nb" = "$1" ] && [ "${ROLE[$na]}" = router ] && { echo "$na"; return; }
  done
  die "$1 has no router neighbour"
}

# A node originating the whole pool as one BGP route, which routelb never announces.
originate_pool() { # NODE add|del
  local no=""
  [ "$2" = del ] && no="no "
  vt "$1" -c 'configure terminal' -c "router bgp $NODE_AS" -c 'no bgp network import-check' \
    -c 'address-family ipv4 unicast' -c "${no}network $POOL4" >&2
}

svc_addrs() { # NODE add|del
  ip -n "${NS[$1]}" addr "$2" "$SVC4/32" dev "$LB_IF"
  ip -n "${NS[$1]}" -6 addr "$2" "$SVC6/128" dev "$LB_IF"
}

# The interfaces router R should use for the service route when every kind node announces
# it: those to its kind nodes (a leaf), else those to neighbour routers that have kind nodes
# (a spine: one path per leaf).
expected_devs() { # ROUTER
  local r=$1 l na ia nb ib direct="" via=""
  declare -A has=()
  for l in "${LINKS[@]}"; do
    read -r na ia nb ib <<<"$l"
    [ "${ROLE[$na]}" = k8s-node ] && has[$nb]=1
    [ "${ROLE[$nb]}" = k8s-node ] && has[$na]=1
  done
  for l in "${LINKS[@]}"; do
    read -r na ia nb ib <<<"$l"
    if [ "$nb" = "$r" ]; then read -r na ia nb ib <<<"$nb $ib $na $ia"; fi
    [ "$na" = "$r" ] || continue
    case ${ROLE[$nb]} in
    k8s-node) direct+=" $ia" ;;
    router) [ -z "${has[$nb]:-}" ] || via+=" $ia" ;;
    esac
  done
  # shellcheck disable=SC2086 # trims the leading space
  echo ${direct:-$via}
}

# Poll the routers' kernel tables together until every condition holds, and record when
# each one first did (one loop, so the timings of the routers do not queue behind each other).
# A condition is "ROUTER PREFIX present|absent" or "ROUTER PREFIX via DEV..." (exactly those
# interfaces, the ECMP check). Sets WAITED[condition]=ms since T0_US.
declare -A WAITED=()
multi_wait() { # TIMEOUT_S T0_US CONDITION...
  local timeout=$1 t0=$2 c r p mode want out have fam left
  shift 2
  local pending=("$@")
  WAITED=()
  while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for c in "${pending[@]}"; do
      read -r r p mode want <<<"$c"
      fam=-4
      [[ $p == *:* ]] && fam=-6
      out=$(ip -n "${NS[$r]}" "$fam" route show exact "$p")
      case $mode in
      present) [ -n "$out" ] ;;
      absent) [ -z "$out" ] ;;
      via)
        have=$(grep -o 'dev [^ ]*' <<<"$out" | awk '{ print $2 }' | sort | xargs)
        [ "$have" = "$want" ]
        ;;
      esac && {
        WAITED[$c]=$((($(now_us) - t0) / 1000))
        log "$r: $p $mode${want:+ $want} after ${WAITED[$c]} ms${out:+: $(tr -s ' \t\n' ' ' <<<"$out")}"
        continue
      }
      left+=("$c")
    done
    pending=("${left[@]}")
    [ ${#pending[@]} -gt 0 ] || break
    if [ $(($(now_us) - t0)) -gt $((timeout * 1000000)) ]; then
      for c in "${pending[@]}"; do
        read -r r p mode want <<<"$c"
        log "$r: timeout (${timeout}s) waiting for $p $mode${want:+ $want}; its route: $(ip -n "${NS[$r]}" route show exact "$p" | tr -s ' \n' ' ')"
      done
      return 1
    fi
    sleep 0.005
  done
}

max_waited() { # the largest WAITED value
  local m=0 v
  for v in "${WAITED[@]}"; do [ "$v" -le "$m" ] || m=$v; done
  echo "$m"
}

http_serve() { # NODE: a web server on the node answering its name, like the example's pods
  local n=$1
  mkdir -p "$DIR/www/$n"
  echo "$n" >"$DIR/www/$n/index.html"
  ip netns exec "${NS[$n]}" "$PY" -m http.server 80 --bind :: --directory "$DIR/www/$n" \
    >"$DIR/www/$n.log" 2>&1 9>&- &
}

curl_from() { # HOST URL EXPECT: retried for up to 5 s (the server may still be starting)
  local h=$1 url=$2 want=$3 out="" i
  for i in $(seq 1 50); do
    out=$(ip netns exec "${NS[$h]}" curl -sS -g --max-time 2 "$url" 2>&1) && [ "$out" = "$want" ] && return 0
    sleep 0.1
  done
  log "$h: curl $url answered '$out', want '$want'"
  return 1
}

# ---------------------------------------------------------------- commands

cmd_up() { # TOPO [--timeout S]
  local topo="" timeout=90 t0
  while [ $# -gt 0 ]; do
    case $1 in
    --timeout) timeout=${2:?}; shift 2 ;;
    -*) die "up: unknown option $1" ;;
    *) topo=$1; shift ;;
    esac
  done
  require_frr
  mkdir -p "$ROOT"
  local spec
  load_topo "$topo"
  exec 9>"$ROOT/.lock"
  flock -w 300 9 || die "$ROOT/.lock still held after 300 s"
  # Always fresh: a previous lab of this name (or stale namespaces with its names) goes first.
  if [ -r "$DIR/spec" ]; then down_lab "$LAB" "$DIR/spec"; fi
  down_lab "$LAB" "$spec"
  t0=$(now_us)
  mkdir -p "$DIR/bin" "$DIR/frr"
  chmod 0755 "$DIR" "$DIR/frr"
  mv "$spec" "$DIR/spec"
  echo "$topo" >"$DIR/topology"
  trap 'log "$LAB: up failed, cleaning up"; down_lab "$LAB" "$DIR/spec" || true' EXIT
  build_net
  run_execs
  start_all
  trap - EXIT
  flock -u 9
  UP_MS=$((($(now_us) - t0) / 1000))
  log "$LAB: ${#ROUTERS[@]} routers, ${#K8S[@]} kind nodes, ${#HOSTS[@]} host(s), ${#LINKS[@]} links; FRR started in $UP_MS ms"
  wait_ready "$timeout"
}

cmd_check() { # TOPO [--keep]
  local topo="" keep=0 t0 r n want spines="" worst_ecmp=0 worst_wd=0 c h
  while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=1; shift ;;
    -*) die "check: unknown option $1" ;;
    *) topo=$1; shift ;;
    esac
  done
  t0=$(now_us)
  cmd_up "$topo"
  if [ "$keep" = 0 ]; then trap 'log "$LAB: check failed, tearing down"; down_lab "$LAB" "$DIR/spec" || true' EXIT; fi
  local n1=${K8S[0]}

  # 0. What the routelb agent does on every node before any service: kube-lb0 + fragment.
  for n in "${K8S[@]}"; do routelb_standin "$n"; done

  # 1. One node announces: the route reaches every router, v4 and v6. (BGP: before it, the
  #    node also sends the pool's /24, which routelb never announces: its leaf's filter,
  #    rendered by `routelb peer-config`, must refuse it.)
  local ts=$EPOCHREALTIME conds=() leaf1=""
  [ "$PROTO" = bgp ] && leaf1=$(leaf_of "$n1") && originate_pool "$n1" add
  svc_addrs "$n1" add
  conds=()
  for r in "${ROUTERS[@]}"; do conds+=("$r $SVC4/32 present" "$r $SVC6/128 present"); done
  multi_wait 30 "${ts/./}" "${conds[@]}" || die "$LAB: the service address did not reach every router"
  if [ -n "$leaf1" ]; then
    # Sent (n1 advertises it) and refused (its leaf has the host route sent after it, not it).
    vt "$n1" -c "show bgp ipv4 unicast neighbors eth1 advertised-routes" | grep -qF "$POOL4" ||
      die "$n1 did not send $POOL4: the leaf's filter is not tested"
    [ -z "$(ip -n "${NS[$leaf1]}" route show exact "$POOL4")" ] ||
      die "$leaf1 accepted $POOL4 from $n1: its routelb peer-config filter lets through what routelb never announces"
    log "$leaf1: refused $POOL4 from $n1 (its routelb peer-config filter), took $SVC4/32"
    originate_pool "$n1" del
  fi
  for r in "${ROUTERS[@]}"; do
    [[ $r == spine* ]] && spines+=" $r ${WAITED["$r $SVC4/32 present"]}/${WAITED["$r $SVC6/128 present"]}ms"
  done
  local first
  first=$(max_waited)

  # 2. routelb's address on kube-lb0 did not become a router-id (BGP, OSPF).
  for n in "${K8S[@]}"; do
    node_ready "$n" || die "$n: router-id or adjacency changed after $SVC4 was added to $LB_IF"
  done

  # 3. The client reaches the service address through the fabric (and the reply comes back).
  http_serve "$n1"
  for c in "${CLIENT_ADDRS[@]}"; do
    h=${c%% *}
    [[ "${c#* }" == *:* ]] && continue
    curl_from "$h" "http://$SVC4/" "$n1" || die "$LAB: $h cannot reach http://$SVC4/"
    curl_from "$h" "http://[$SVC6]/" "$n1" || die "$LAB: $h cannot reach http://[$SVC6]/"
  done

  # 4. Every node announces: ECMP on the spines (one path per leaf) and leaves (one per node).
  ts=$EPOCHREALTIME
  for n in "${K8S[@]:1}"; do svc_addrs "$n" add; done
  conds=()
  for r in "${ROUTERS[@]}"; do
    want=$(expected_devs "$r" | tr ' ' '\n' | sort | xargs)
    [ -z "$want" ] || conds+=("$r $SVC4/32 via $want" "$r $SVC6/128 via $want")
  done
  multi_wait 30 "${ts/./}" "${conds[@]}" || die "$LAB: no ECMP over every announcing node"
  worst_ecmp=$(max_waited)

  # 5. Withdraw everywhere: gone from every router.
  ts=$EPOCHREALTIME
  for n in "${K8S[@]}"; do svc_addrs "$n" del; done
  conds=()
  for r in "${ROUTERS[@]}"; do conds+=("$r $SVC4/32 absent" "$r $SVC6/128 absent"); done
  multi_wait 30 "${ts/./}" "${conds[@]}" || die "$LAB: the service address stayed on some router"
  worst_wd=$(max_waited)

  trap - EXIT
  if [ "$keep" = 0 ]; then down_lab "$LAB" "$DIR/spec"; fi
  printf 'clab-netns check %s: ok in %d ms (FRR up %d ms, %s ready %d ms; %s/32+/128 on every router in %d ms, on the spines v4/v6:%s; curl v4+v6 from the client ok; ECMP on every router %d ms; withdrawn from every router %d ms%s)\n' \
    "$LAB" $((($(now_us) - t0) / 1000)) "$UP_MS" "$PROTO" "$READY_MS" "$SVC4" "$first" "$spines" \
    "$worst_ecmp" "$worst_wd" "$([ -n "$ROUTELB_BIN" ] && echo '; fragment by routelb apply' || echo '; stand-in fragment')"
}

# Stop everything in the lab's namespaces, delete them, forget the FRR pathspaces, remove
# the lab dir. SPEC names the namespaces (the recorded one, or a fresh parse).
down_lab() { # LAB SPEC
  local lab=$1 spec=$2 ns pids=()
  [ -r "$spec" ] || return 0
  local nss
  nss=$(awk -F'\t' '$1 == "node" { print $4 }' "$spec")
  for ns in $nss; do
    (
      kill_all_in_ns "$ns"
      ip netns del "$ns" 2>/dev/null || true
    ) &
    pids+=($!)
  done
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" || true
  # shellcheck disable=SC2086 # one pathspace per word
  frr_forget $nss
  rm -rf "${ROOT:?}/$lab"
}

cmd_down() { # TOPO
  local topo spec
  load_topo "${1:-}"
  if [ -r "$DIR/spec" ]; then down_lab "$LAB" "$DIR/spec"; fi
  down_lab "$LAB" "$spec" # namespaces with the topology's names, even without a record
  rm -f "$spec"
  log "$LAB: down"
}

cmd_down_all() {
  local f n=0
  for f in "$ROOT"/*/spec; do
    [ -r "$f" ] || continue
    down_lab "$(basename "$(dirname "$f")")" "$f"
    n=$((n + 1))
  done
  frr_forget_dangling "$ROOT"
  log "down-all: $n lab(s) removed"
}

load_lab() { # TOPO: the spec recorded by `up`
  local topo spec
  load_topo "${1:-}"
  rm -f "$spec"
  [ -r "$DIR/spec" ] || die "$LAB is not up"
}

cmd_status_loaded() {
  local n c=()
  case $PROTO in
  bgp) c=(-c 'show bgp summary') ;;
  ospf) c=(-c 'show ip ospf neighbor' -c 'show ipv6 ospf6 neighbor') ;;
  isis) c=(-c 'show isis neighbor') ;;
  esac
  for n in "${SPEAKERS[@]}"; do
    echo "== $n (${ROLE[$n]}, netns ${NS[$n]})"
    vt "$n" "${c[@]}" 2>&1 || true
    ip -n "${NS[$n]}" -4 route show 2>&1 || true
    ip -n "${NS[$n]}" -6 route show 2>&1 | grep -v '^fe80' || true
  done
}

main() {
  [ $# -gt 0 ] || usage
  local cmd=$1
  shift
  case $cmd in -h | --help | help) usage ;; esac
  require_root
  case $cmd in
  up) cmd_up "$@" ;;
  check) cmd_check "$@" ;;
  down) cmd_down "$@" ;;
  down-all) cmd_down_all ;;
  status)
    load_lab "$@"
    cmd_status_loaded
    ;;
  vtysh)
    load_lab "${1:-}"
    [ -n "${ROLE[${2:-}]:-}" ] || die "vtysh TOPO NODE ARGS...: no node '${2:-}'"
    n=$2
    shift 2
    vt "$n" "$@"
    ;;
  *) die "unknown command '$cmd' (see --help)" ;;
  esac
}

main "$@"
