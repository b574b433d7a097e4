#!/usr/bin/env bash
# Proves the lab end to end and measures it: for each node/protocol combination it
# brings a lab up, does by hand what routelb does at run time (FRR: ROUTELB-* prefix-lists,
# route-maps and `redistribute connected route-map ...` through vtysh; BIRD: rewrite the
# routelb include file and `birdc configure`), then adds and deletes a service /32 and /128
# on kube-lb0 ROUNDS times, timing add -> route and del -> withdraw in the router
# namespace's kernel table. For BGP it also checks that applying the config did not reset
# the sessions. Prints a table of median/max times; exits non-zero if anything failed.
#
#   [GAP=seconds] bash integration/lab/selftest.sh [--rounds N] [COMBO...]
#   COMBO = frr:bgp frr:ospf frr:isis frr:rip bird:bgp bird:ospf bird:rip (default: all)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="$HERE/lab.sh"
ROUNDS=5
COMBOS=()
ONE=""
while [ $# -gt 0 ]; do
  case $1 in
  --rounds) ROUNDS=${2:?}; shift 2 ;;
  --one) ONE=${2:?}; shift 2 ;; # internal: run one combo, print its table row
  *) COMBOS+=("$1"); shift ;;
  esac
done
[ ${#COMBOS[@]} -gt 0 ] || COMBOS=(frr:bgp frr:ospf frr:isis frr:rip bird:bgp bird:ospf bird:rip)

V4=203.0.113.7/32
V6=2001:db8:ffff::7/128
TIMEOUT=60
GAP=${GAP:-1.5}

say() { printf '\n### %s\n' "$*" >&2; }

ms_stat() { # numbers... -> "median/max" (lower middle for even counts)
  printf '%s\n' "$@" | sort -n |
    awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)] "/" a[NR]}'
}

# What routelb does on an FRR node, per protocol.
frr_routelb_apply() {
  local proto=$1 c=(-c "conf t"
    -c "ip prefix-list ROUTELB-V4 seq 5 permit 203.0.113.0/24 le 32"
    -c "ipv6 prefix-list ROUTELB-V6 seq 5 permit 2001:db8:ffff::/48 le 128")
  local P=${proto^^}
  c+=(-c "route-map ROUTELB-$P-V4 permit 10" -c "match ip address prefix-list ROUTELB-V4" -c "exit"
    -c "route-map ROUTELB-$P-V6 permit 10" -c "match ipv6 address prefix-list ROUTELB-V6" -c "exit")
  case $proto in
  bgp)
    c+=(-c "router bgp $LAB_NODE_AS"
      -c "address-family ipv4 unicast" -c "redistribute connected route-map ROUTELB-BGP-V4" -c "exit-address-family"
      -c "address-family ipv6 unicast" -c "redistribute connected route-map ROUTELB-BGP-V6" -c "exit-address-family")
    ;;
  ospf)
    c+=(-c "router ospf" -c "redistribute connected route-map ROUTELB-OSPF-V4" -c "exit"
      -c "router ospf6" -c "redistribute connected route-map ROUTELB-OSPF-V6" -c "exit")
    ;;
  isis)
    c+=(-c "router isis $LAB_ISIS_TAG"
      -c "redistribute ipv4 connected level-2 route-map ROUTELB-ISIS-V4"
      -c "redistribute ipv6 connected level-2 route-map ROUTELB-ISIS-V6" -c "exit")
    ;;
  rip)
    c+=(-c "router rip" -c "redistribute connected route-map ROUTELB-RIP-V4" -c "exit"
      -c "router ripng" -c "redistribute connected route-map ROUTELB-RIP-V6" -c "exit")
    ;;
  esac
  "$LAB_NODE_VTYSH" "${c[@]}"
}

# What routelb does on a BIRD node: rewrite the include, then `birdc configure`.
bird_routelb_apply() {
  local proto=$1 f
  cat >"$LAB_BIRD_INCLUDE.new" <<'EOF'
# Written by routelb (simulated by integration/lab/selftest.sh).
protocol direct routelb_direct {
  ipv4;
  ipv6;
  interface "kube-lb0";
}

# BIRD 2.0 prefix sets cannot mix IPv4 and IPv6 ("Mixed IPv4/IPv6 prefixes in prefix set").
function routelb_service() {
  if proto != "routelb_direct" || source != RTS_DEVICE then return false;
  if net.type = NET_IP4 then return net ~ [ 203.0.113.0/24+ ];
  if net.type = NET_IP6 then return net ~ [ 2001:db8:ffff::/48+ ];
  return false;
}
EOF
  for f in bgp ospf rip; do
    if [ "$f" = "$proto" ]; then
      echo "function routelb_export_$f() { return routelb_service(); }"
    else
      echo "function routelb_export_$f() { return false; }"
    fi
  done >>"$LAB_BIRD_INCLUDE.new"
  mv "$LAB_BIRD_INCLUDE.new" "$LAB_BIRD_INCLUDE"
  local out
  out=$("$LAB_BIRDC" configure)
  printf '%s\n' "$out" >&2
  grep -q "Reconfigured" <<<"$out"
}

# BGP session identity on the router side: "<established count>/<dropped count>/<uptime ms>"
bgp_sessions() {
  local n out
  for n in "$LAB_NODE_V4" "$LAB_NODE_V6"; do
    out=$("$LAB_RTR_VTYSH" -c "show bgp neighbors $n json")
    printf '%s:%s/%s/%s ' "$n" \
      "$(grep -o '"connectionsEstablished":[0-9]*' <<<"$out" | cut -d: -f2)" \
      "$(grep -o '"connectionsDropped":[0-9]*' <<<"$out" | cut -d: -f2)" \
      "$(grep -o '"bgpTimerUpMsec":[0-9]*' <<<"$out" | cut -d: -f2)"
  done
}

# BIRD's own view: its BGP protocols' state and "since" time (ms of the day), which moves
# on a session reset. BIRD converts its monotonic timestamps to wall-clock time when it
# prints them, so the same instant can print 1 ms apart: compare with a tolerance.
bird_bgp_since() {
  "$LAB_BIRDC" show protocols | awk '/^rtr[46] / {
    split($5, t, ":"); printf "%s:%s:%s:%d\n", $1, $4, $6, ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000 }'
}
bird_bgp_same() { # BEFORE AFTER (outputs of bird_bgp_since)
  paste -d' ' <(echo "$1") <(echo "$2") | awk '{
    split($1, a, ":"); split($2, b, ":"); d = a[4] - b[4]; if (d < 0) d = -d
    if (a[1] != b[1] || a[2] != "up" || b[2] != "up" || a[3] != "Established" || b[3] != "Established" || d > 10) bad = 1
  } END { exit bad }'
}

# Router-side uptime only, for the report.
bgp_uptimes() { bgp_sessions | grep -o '/[0-9]* ' | tr -d '/ ' | paste -sd, -; }
bgp_counters() { bgp_sessions | sed -E 's#/[0-9]+ # #g'; }

timed() { # ACTION(add|del) PREFIX WANT -> ms
  local t=$EPOCHREALTIME
  ip -n "$LAB_NODE_NS" addr "$1" "$2" dev "$LAB_LB_IF"
  bash "$LAB" wait-route "$LAB_NAME" "$2" "$3" "$TIMEOUT" --since "$t"
}

FAILED=0
run_combo() {
  local node=${1%%:*} proto=${1##*:} name t0 up_ms
  name="st-$node-$proto"
  say "$node node, $proto"
  t0=$EPOCHREALTIME
  local envs
  envs=$(bash "$LAB" up "$name" --node "$node" --proto "$proto" --fresh --timeout 90)
  eval "$envs"
  up_ms=$(((${EPOCHREALTIME/./} - ${t0/./}) / 1000))

  local before="" after="" before_up="" after_up="" bird_before=""
  if [ "$proto" = bgp ]; then
    sleep 2 # let the uptime counters tick, so a reset would show
    before=$(bgp_counters) before_up=$(bgp_uptimes)
    [ "$node" = bird ] && bird_before=$(bird_bgp_since)
  fi
  if [ "$node" = frr ]; then frr_routelb_apply "$proto"; else bird_routelb_apply "$proto"; fi
  sleep 2 # settle (bgpd applies route-map changes after its delay timer, 1 s here)
  if [ "$proto" = bgp ]; then
    after=$(bgp_counters) after_up=$(bgp_uptimes)
    if [ "$node" = bird ]; then
      say "BIRD protocols (name:state:info:since-ms) before: $(echo "$bird_before" | paste -sd' ')"
      say "BIRD protocols (name:state:info:since-ms) after:  $(bird_bgp_since | paste -sd' ')"
      bird_bgp_same "$bird_before" "$(bird_bgp_since)" || { echo "FAIL: BIRD BGP session restarted" >&2; FAILED=1; }
    fi
    say "BGP sessions (router side, established/dropped) before: $before uptime ms $before_up"
    say "BGP sessions (router side, established/dropped) after:  $after uptime ms $after_up"
    [ "$before" = "$after" ] || { echo "FAIL: BGP session reset by config apply" >&2; FAILED=1; }
  fi

  local a4=() a6=() d4=() d6=()
  for _ in $(seq 1 "$ROUNDS"); do
    # GAP between changes, so each is measured on its own: IS-IS regenerates an LSP at
    # most once per lsp-gen-interval (>= 1 s), RIP rate-limits triggered updates.
    a4+=("$(timed add "$V4" present)") || { FAILED=1; break; }
    sleep "$GAP"
    a6+=("$(timed add "$V6" present)") || { FAILED=1; break; }
    sleep "$GAP"
    d4+=("$(timed del "$V4" absent)") || { FAILED=1; break; }
    sleep "$GAP"
    d6+=("$(timed del "$V6" absent)") || { FAILED=1; break; }
    sleep "$GAP"
  done
  if [ "$proto" = bgp ]; then
    after=$(bgp_counters)
    if [ "$node" = bird ]; then
      bird_bgp_same "$bird_before" "$(bird_bgp_since)" || { echo "FAIL: BIRD BGP session restarted" >&2; FAILED=1; }
    fi
    [ "$before" = "$after" ] || { echo "FAIL: BGP session reset during the rounds" >&2; FAILED=1; }
  fi
  say "$node/$proto samples ms: add4=${a4[*]} add6=${a6[*]} del4=${d4[*]} del6=${d6[*]}"
  printf '%-5s %-5s %8s %9s %9s %9s %9s  %s\n' "$node" "$proto" "$up_ms" \
    "$(ms_stat "${a4[@]}")" "$(ms_stat "${a6[@]}")" "$(ms_stat "${d4[@]}")" "$(ms_stat "${d6[@]}")" \
    "${before_up:+BGP uptime ms before/after apply: ${before_up} -> ${after_up}}"
  bash "$LAB" down "$name"
  return "$FAILED"
}

if [ -n "$ONE" ]; then
  run_combo "$ONE"
  exit
fi

# Each combination in its own bash process, so `set -e` holds inside it.
rows=()
for c in "${COMBOS[@]}"; do
  rc=0
  row=$(bash "$0" --rounds "$ROUNDS" --one "$c") || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: $c" >&2
    FAILED=1
    bash "$LAB" down "st-${c%%:*}-${c##*:}" || true
    if [ -n "$row" ]; then row="$row  <- FAILED (see stderr)"; else row="$(printf '%-5s %-5s  FAILED (see stderr)' "${c%%:*}" "${c##*:}")"; fi
  fi
  rows+=("$row")
done

printf '\nmedian/max of %s rounds, ms (up = lab up incl. adjacency)\n' "$ROUNDS"
printf '%-5s %-5s %8s %9s %9s %9s %9s\n' node proto up add-v4 add-v6 del-v4 del-v6
printf '%s\n' "${rows[@]}"
exit "$FAILED"
